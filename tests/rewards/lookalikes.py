"""Tiny randomly initialised look-alikes of published reward models, built in-process.

Each has the published model's architecture class (Qwen2, Mistral, Llama), its special tokens
(added to the tiny policy's byte-level BPE), a chat template of the same shape, and its head
saved under the published tensor names (``score.0/score.2`` for Qwen2.5-Math-PRM,
``regression_layer`` / ``gating.layers.*`` / ``reward_transform_matrix`` for ArmoRM), so the
loaders read them exactly as they read the real checkpoints. The original torch modules are
returned too, for the tests' hand-computed reference forwards.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import torch

from tinymodels import TinyLlamaSpec, build_tiny_llama

QWEN_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for m in messages %}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
LLAMA3_TEMPLATE = (
    "{% for message in messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)
SMALL = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}


def _tokenizer(
    root: Path,
    specials: list[str],
    *,
    template: str | None = None,
    bos: str | None = None,
    plain: list[str] | None = None,
) -> Any:
    """The tiny policy's BPE with ``specials`` added (and ``bos`` prepended on encode)."""
    from tokenizers import AddedToken, processors
    from transformers import AutoTokenizer

    base = build_tiny_llama(root / "base", TinyLlamaSpec(train_steps=0))
    tok = AutoTokenizer.from_pretrained(base)
    tok.add_special_tokens({"additional_special_tokens": specials})
    if plain:
        tok.add_tokens([AddedToken(t, normalized=False) for t in plain])
    if bos is not None:
        tok.bos_token = bos
        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, tok.convert_tokens_to_ids(bos))]
        )
    if template is not None:
        tok.chat_template = template
    return tok


def _save(model: Any, tok: Any, out: Path, **config: Any) -> Path:
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    cfg = json.loads((out / "config.json").read_text())
    cfg.update(config)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    return out


def qwen_prm(root: Path, seed: int = 0) -> tuple[Path, Any, Any]:
    """Qwen2.5-Math-PRM look-alike: Qwen2 + ``score = Linear, ReLU, Linear(h, 2)``, ChatML,
    ``<extra_0>``; saved with the published ``architectures`` and ``auto_map`` (whose code
    files are absent: loading must not need them)."""
    from transformers import Qwen2Config, Qwen2Model, Qwen2PreTrainedModel

    class Qwen2ForProcessRewardModel(Qwen2PreTrainedModel):
        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.model = Qwen2Model(config)
            h = config.hidden_size
            self.score = torch.nn.Sequential(
                torch.nn.Linear(h, h), torch.nn.ReLU(), torch.nn.Linear(h, 2)
            )
            self.post_init()

        def forward(self, input_ids: Any, attention_mask: Any = None) -> Any:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask)[0]
            return self.score(hidden)

    tok = _tokenizer(root, ["<|im_start|>", "<|im_end|>", "<extra_0>"], template=QWEN_TEMPLATE)
    tok.pad_token = "<|im_end|>"
    cfg = Qwen2Config(
        vocab_size=len(tok), num_attention_heads=2, num_key_value_heads=1,
        max_position_embeddings=512, pad_token_id=tok.pad_token_id, **SMALL,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = Qwen2ForProcessRewardModel(cfg).eval()
    out = _save(
        model, tok, root / "qwen-prm",
        architectures=["Qwen2ForProcessRewardModel"],
        auto_map={
            "AutoConfig": "configuration_qwen2_rm.Qwen2RMConfig",
            "AutoModel": "modeling_qwen2_rm.Qwen2ForProcessRewardModel",
        },
    )  # fmt: skip
    return out, model, tok


def math_shepherd(root: Path) -> tuple[Path, Any, Any]:
    """Math-Shepherd look-alike: a Mistral causal LM; ``ки`` an ordinary vocabulary token (as
    in Mistral's), a BOS prepended on encode."""
    from transformers import MistralConfig, MistralForCausalLM

    tok = _tokenizer(root, ["<s>"], bos="<s>", plain=["ки"])
    cfg = MistralConfig(
        vocab_size=len(tok), num_attention_heads=2, num_key_value_heads=1,
        max_position_embeddings=512, **SMALL,
    )  # fmt: skip
    torch.manual_seed(1)
    model = MistralForCausalLM(cfg).eval()
    return _save(model, tok, root / "math-shepherd"), model, tok


def _llama3_tokenizer(root: Path) -> Any:
    tok = _tokenizer(
        root,
        ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "[PAD]"],
        template=LLAMA3_TEMPLATE,
        bos="<|begin_of_text|>",
    )
    tok.pad_token = "[PAD]"
    return tok


def skywork(root: Path) -> tuple[Path, Any, Any]:
    """Skywork-Reward look-alike: ``LlamaForSequenceClassification`` (1 label), Llama-3 chat."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    tok = _llama3_tokenizer(root)
    cfg = LlamaConfig(
        vocab_size=len(tok), num_attention_heads=2, num_key_value_heads=2, num_labels=1,
        max_position_embeddings=512, pad_token_id=tok.pad_token_id, **SMALL,
    )  # fmt: skip
    torch.manual_seed(2)
    model = LlamaForSequenceClassification(cfg).eval()
    return _save(model, tok, root / "skywork"), model, tok


class Gate(torch.nn.Module):
    """ArmoRM's gating network layout: ``layers`` (Linear x4) and ``logit_scale``."""

    def __init__(self, h: int, k: int, hidden: int = 16, n_hidden: int = 3) -> None:
        super().__init__()
        sizes = [h] + [hidden] * n_hidden
        layers = [torch.nn.Linear(a, b) for a, b in itertools.pairwise(sizes)]
        self.layers = torch.nn.ModuleList([*layers, torch.nn.Linear(sizes[-1], k)])
        self.logit_scale = torch.nn.Parameter(torch.tensor([1.7]))


def armorm(root: Path, k: int = 3) -> tuple[Path, Any, Any]:
    """ArmoRM look-alike: Llama backbone, ``regression_layer`` (k x h), ``gating``, a
    non-identity ``reward_transform_matrix`` (a verbosity-style penalty row)."""
    from transformers import LlamaConfig, LlamaModel, LlamaPreTrainedModel

    class LlamaForRewardModelWithGating(LlamaPreTrainedModel):
        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.model = LlamaModel(config)
            self.regression_layer = torch.nn.Linear(config.hidden_size, k, bias=False)
            self.gating = Gate(config.hidden_size, k)
            t = torch.eye(k)
            t[k - 1, :] -= torch.linspace(0.1, 0.3, k)
            self.reward_transform_matrix = torch.nn.Parameter(t, requires_grad=False)
            self.post_init()

    tok = _llama3_tokenizer(root)
    cfg = LlamaConfig(
        vocab_size=len(tok), num_attention_heads=2, num_key_value_heads=2,
        max_position_embeddings=512, pad_token_id=tok.pad_token_id, **SMALL,
    )  # fmt: skip
    torch.manual_seed(3)
    model = LlamaForRewardModelWithGating(cfg).eval()
    with torch.no_grad():  # post_init leaves some heads at zero; make every weight count
        for p in [*model.gating.parameters(), model.regression_layer.weight]:
            if p is not model.gating.logit_scale:
                p.normal_(0, 0.5)
    out = _save(
        model, tok, root / "armorm",
        architectures=["LlamaForRewardModelWithGating"], num_objectives=k,
        gating_temperature=10, gating_hidden_dim=16, gating_n_hidden=3,
        auto_map={"AutoModelForSequenceClassification": "modeling_custom.Gating"},
    )  # fmt: skip
    return out, model, tok


def eurus(root: Path) -> tuple[Path, Path, Any, Any, Any]:
    """EurusPRM look-alike: two Qwen2 causal LMs (pi and pi_ref, other seeds), one ChatML
    tokenizer with Qwen's default system message."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = _tokenizer(root, ["<|im_start|>", "<|im_end|>"], template=QWEN_TEMPLATE)
    tok.pad_token = "<|im_end|>"
    cfg = Qwen2Config(
        vocab_size=len(tok), num_attention_heads=2, num_key_value_heads=1,
        max_position_embeddings=512, pad_token_id=tok.pad_token_id, **SMALL,
    )  # fmt: skip
    models = []
    for seed in (4, 5):
        torch.manual_seed(seed)
        models.append(Qwen2ForCausalLM(cfg).eval())
    pi = _save(models[0], tok, root / "eurus")
    ref = _save(models[1], tok, root / "eurus-ref")
    return pi, ref, models[0], models[1], tok
