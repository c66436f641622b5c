"""A causal reward model's forward pass that computes its last layer at the pooled token only.

A scalar reward model reads one hidden state per text: the last layer's output at the pooled
(last non-pad) token. In a causal decoder every layer but the last must run on every token
(later tokens attend to their keys and values), but the last layer needs only its keys and
values for every token; its query, attention output, MLP and the final norm are needed at the
pooled token alone. On the shipped 4-layer tiny policy the last layer is ~24% of scoring time;
skipping its other rows saves most of that (``benchmarks/results/rm_scoring.md``). No layer
needs an attention mask either: with right padding a real token never attends to a later pad,
so the plain causal path of SDPA (which skips the masked blocks) gives the same scores.

Supported: ``LlamaModel`` trunks (Llama, SmolLM2, the tiny policy) with SDPA attention, under
``torch.inference_mode``/``no_grad``; :func:`supports_pooled_forward` says when, and
:class:`~rewardlab.rewards.preference_rm.PreferenceRM` falls back to the full forward
otherwise. Scores agree with the full forward to float rounding (the tests bound the gap).
"""

from __future__ import annotations

import sys
from typing import Any

import torch

SUPPORTED_TRUNKS = ("LlamaModel",)


def _trunk(model: Any) -> Any:
    """The decoder trunk of a ``ScalarRewardModel`` (seqcls: ``backbone.model``)."""
    return model.backbone.model if model.head == "seqcls" else model.backbone


def supports_pooled_forward(model: Any) -> bool:
    """True when :func:`pooled_rewards` applies: a supported causal trunk with SDPA attention."""
    try:
        trunk = _trunk(model)
    except AttributeError:
        return False
    if type(trunk).__name__ not in SUPPORTED_TRUNKS or not len(trunk.layers):
        return False
    if trunk.config._attn_implementation != "sdpa":
        return False  # eager attention needs an explicit causal mask
    if model.head == "seqcls" and not isinstance(
        getattr(model.backbone, "score", None), torch.nn.Linear
    ):
        return False
    return all(getattr(layer.self_attn, "is_causal", False) for layer in trunk.layers)


def pooled_index(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The row each text's reward is read at, as the full forward reads it: the last token
    that is not the pad token for ``seqcls`` (transformers' rule), the last masked-in token
    for ``value``."""
    if model.head == "value":
        last: torch.Tensor = attention_mask.long().sum(dim=1) - 1
        return last
    pad = model.backbone.config.pad_token_id
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)
    if pad is None:  # transformers reads the last position then (one row at a time)
        return positions[-1].expand(input_ids.shape[0])
    pooled: torch.Tensor = (positions * (input_ids != pad).int()).argmax(-1)
    return pooled


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, rotate_half: Any) -> torch.Tensor:
    rotated: torch.Tensor = x * cos + rotate_half(x) * sin
    return rotated


def _last_layer_at(
    layer: Any, hidden: torch.Tensor, idx: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> torch.Tensor:
    """The decoder layer's output [B, D] at row ``idx[b]`` of each sequence ``b``."""
    attn = layer.self_attn
    rotate_half = sys.modules[type(attn).__module__].rotate_half
    b, t, _ = hidden.shape
    rows = torch.arange(b, device=hidden.device)
    x = layer.input_layernorm(hidden)
    k = attn.k_proj(x).view(b, t, -1, attn.head_dim).transpose(1, 2)
    v = attn.v_proj(x).view(b, t, -1, attn.head_dim).transpose(1, 2)
    q = attn.q_proj(x[rows, idx]).view(b, 1, -1, attn.head_dim).transpose(1, 2)
    k = _rope(k, cos.unsqueeze(1), sin.unsqueeze(1), rotate_half)
    q = _rope(q, cos[0, idx][:, None, None], sin[0, idx][:, None, None], rotate_half)
    keys = torch.arange(t, device=hidden.device)
    visible = (keys[None, :] <= idx[:, None])[:, None, None, :]
    out = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=visible, scale=attn.scaling, enable_gqa=q.shape[1] != k.shape[1]
    )
    h: torch.Tensor = hidden[rows, idx] + attn.o_proj(out.transpose(1, 2).reshape(b, -1))
    mlp: torch.Tensor = layer.mlp(layer.post_attention_layernorm(h))
    return h + mlp


def pooled_rewards(
    model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Rewards [B] (float32) of right-padded inputs, the last layer computed at the pooled
    token only; the same values as ``model(input_ids, attention_mask)``. Requires
    :func:`supports_pooled_forward`; call it without autograd."""
    trunk = _trunk(model)
    idx = pooled_index(model, input_ids, attention_mask)
    hidden = trunk.embed_tokens(input_ids)
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
    cos, sin = trunk.rotary_emb(hidden, positions)
    for layer in trunk.layers[:-1]:  # attention_mask None: SDPA's causal path
        hidden = layer(
            hidden, attention_mask=None, position_ids=positions, position_embeddings=(cos, sin)
        )
    pooled = trunk.norm(_last_layer_at(trunk.layers[-1], hidden, idx, cos, sin))
    head = model.backbone.score if model.head == "seqcls" else model.value_head
    out: torch.Tensor = head(pooled)[:, 0].float()
    return out
