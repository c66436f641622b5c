"""Preference models beyond a scalar reward: GPM (preference embeddings) and VPL (user latents).

- :class:`EmbeddingModel`: a backbone with a ``D``-output sequence-classification head read at
  the last non-pad token; ``forward(input_ids, attention_mask) -> [B, D]``.
- **GPM** (Zhang et al. 2024, "General Preference Modeling with Preference Representations"):
  v(x, y) = normalise(head output) ∈ R^{2k}; the preference score s(y_i ≻ y_j | x) =
  (R·v_i)·v_j with R = blockdiag([[0, −1], [1, 0]]), P(y_i ≻ y_j) = σ(s/τ). s is
  skew-symmetric, so cyclic (intransitive) preferences are representable; a scalar reward
  (Bradley-Terry) is not. :class:`GPMReward` exposes ``preference`` (the pairwise probability)
  and, for the scalar ``Reward`` contract, scores a response by s(y ≻ anchor | x) against a
  fixed anchor response (default: the empty response); that scalar view is transitive, so it
  keeps only part of what the model represents.
- **VPL** (Poddar et al. 2024, "Personalizing RLHF with Variational Preference Learning"): an
  encoder maps a user's context pairs (embedding differences e_c − e_r) to q(z | C) =
  N(μ, diag σ²) (mean-pooled over the pairs), and the reward r(x, y, z) = (w + U·z)·e(x, y) +
  b + c·z weighs the response embedding with user-dependent weights. :class:`VPLReward`
  scores with z = μ(C) for the context pairs it is given (a file of that user's labelled
  pairs), and with z = 0 (the prior mean) without one.

Checkpoints hold the backbone (transformers files), ``heads.safetensors`` (VPL's encoder,
base and decoder heads) and ``rewardlab.json`` (kind ``gpm`` | ``vpl``, ``loader``, ``dim``,
``template``, ``max_length`` ...), so ``load_reward(DIR)`` loads them like any reward.

>>> r = load_vpl("runs/vpl", context="user_a.jsonl")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardlab.rewards.preference_rm import (
    DEFAULT_TEMPLATE,
    META_FILE,
    encode_texts,
    length_sorted_batches,
    pad_right,
    param_count,
)
from rewardlab.types import Candidate, Problem, Score


class EmbeddingModel(torch.nn.Module):
    """``forward(input_ids, attention_mask) -> [B, dim]`` float32 from a seqcls head."""

    def __init__(self, backbone: Any) -> None:
        super().__init__()
        self.backbone = backbone
        self.dim = int(backbone.config.num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask
        ).logits.float()
        return out


def build_embedding_model(backbone_dir: str | Path, dim: int, seed: int = 0) -> Any:
    """A fresh :class:`EmbeddingModel` (``dim`` outputs, head seeded by ``seed``) + tokenizer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    tok = AutoTokenizer.from_pretrained(str(backbone_dir), local_files_only=True)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    torch.manual_seed(seed)
    backbone = AutoModelForSequenceClassification.from_pretrained(
        str(backbone_dir), num_labels=dim, local_files_only=True, dtype=torch.float32
    )
    backbone.config.pad_token_id = tok.pad_token_id
    return EmbeddingModel(backbone), tok


def _load_backbone(path: Path) -> tuple[EmbeddingModel, Any, dict[str, Any]]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    meta_path = path / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path} is not a reward checkpoint: no {META_FILE}")
    meta = json.loads(meta_path.read_text())
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    backbone = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True)
    return EmbeddingModel(backbone), tok, meta


def embed_texts(
    model: EmbeddingModel, tokenizer: Any, texts: Sequence[str], max_length: int
) -> torch.Tensor:
    """Embeddings [n, dim] of formatted texts in input order (length-sorted batches, no grad)."""
    out = torch.zeros(len(texts), model.dim)
    if not texts:
        return out
    ids = encode_texts(tokenizer, texts, max_length)
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    with torch.inference_mode():
        for batch in length_sorted_batches([len(x) for x in ids], 2048, 64):
            input_ids, mask = pad_right([ids[i] for i in batch], tokenizer.pad_token_id)
            out[batch] = model(input_ids.to(device), mask.to(device)).cpu()
    model.train(was)
    return out


# ------------------------------------------------------------------------------ GPM


def gpm_rotate(v: torch.Tensor) -> torch.Tensor:
    """R·v for R = blockdiag of [[0, −1], [1, 0]] over the last dimension (even size 2k).

    Each block maps (a, b) to (−b, a).
    """
    if v.shape[-1] % 2:
        raise ValueError(f"a GPM embedding needs an even dimension, got {v.shape[-1]}")
    pairs = v.reshape(*v.shape[:-1], -1, 2)
    return torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).reshape(v.shape)


def gpm_score(v_i: torch.Tensor, v_j: torch.Tensor) -> torch.Tensor:
    """s(y_i ≻ y_j) = (R·v_i)·v_j; for k = 1 this is v_i0·v_j1 − v_i1·v_j0. s(i,j) = −s(j,i)."""
    return (gpm_rotate(v_i) * v_j).sum(dim=-1)


def gpm_embed(raw: torch.Tensor) -> torch.Tensor:
    """The GPM preference embedding: the head output, L2-normalised."""
    return torch.nn.functional.normalize(raw, dim=-1)


def save_embedding_checkpoint(
    model: EmbeddingModel, tokenizer: Any, out: str | Path, **meta: Any
) -> Path:
    """Backbone + tokenizer + ``rewardlab.json`` (``meta`` merged in)."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    model.backbone.save_pretrained(path)
    tokenizer.save_pretrained(path)
    info = {"dim": model.dim, "template": DEFAULT_TEMPLATE, "max_length": 512, **meta}
    info["params"] = param_count(model)
    (path / META_FILE).write_text(json.dumps(info, indent=2, default=str))
    return path


class GPMReward:
    """A trained GPM as a Reward: score = s(y ≻ anchor | x) (see the module docstring)."""

    def __init__(
        self,
        model: EmbeddingModel,
        tokenizer: Any,
        *,
        name: str = "gpm",
        template: str = DEFAULT_TEMPLATE,
        max_length: int = 512,
        tau: float = 0.1,
        anchor: str = "",
    ) -> None:
        if model.dim % 2:
            raise ValueError(f"a GPM needs an even embedding dimension, got {model.dim}")
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.template = template
        self.max_length = max_length
        self.tau = tau
        self.anchor = anchor
        self.params = param_count(model)

    def embed(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        pairs = zip(prompts, responses, strict=True)
        texts = [self.template.format(prompt=p, response=r) for p, r in pairs]
        return gpm_embed(embed_texts(self.model, self.tokenizer, texts, self.max_length))

    def preference_scores(
        self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]
    ) -> np.ndarray:
        """s(a ≻ b | prompt) for each row (skew-symmetric: swapping a and b negates it)."""
        va, vb = self.embed(prompts, a), self.embed(prompts, b)
        return gpm_score(va, vb).numpy().astype(float)

    def preference(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """P(a ≻ b | prompt) = σ(s/τ)."""
        s = self.preference_scores(prompts, a, b)
        return np.asarray(1.0 / (1.0 + np.exp(-s / self.tau)))

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        if len(problems) != len(candidates):
            raise ValueError(f"{len(problems)} problems for {len(candidates)} candidates")
        prompts = [p.question for p in problems]
        anchors = [self.anchor] * len(prompts)
        s = self.preference_scores(prompts, [c.text for c in candidates], anchors)
        return [Score(float(v)) for v in s]


def load_gpm(path: str | Path, *, device: str | None = None, **kwargs: Any) -> GPMReward:
    """A GPM checkpoint (``rewardlab.json`` kind ``gpm``) as a :class:`GPMReward`."""
    p = Path(path)
    model, tok, meta = _load_backbone(p)
    if meta.get("kind") != "gpm":
        raise ValueError(f"{p}: kind {meta.get('kind')!r} is not a gpm checkpoint")
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
    kwargs.setdefault("name", str(meta.get("name") or p.resolve().name))
    kwargs.setdefault("template", meta.get("template", DEFAULT_TEMPLATE))
    kwargs.setdefault("max_length", int(meta.get("max_length", 512)))
    kwargs.setdefault("tau", float(meta.get("tau", 0.1)))
    return GPMReward(model, tok, **kwargs)


# ------------------------------------------------------------------------------ VPL


class VPLModel(torch.nn.Module):
    """Embedder + posterior encoder q(z | context pairs) + user-conditioned reward head.

    The encoder is an MLP (tanh) over e_c − e_r of each context pair, mean-pooled over the
    pairs, to (μ, log σ²). The reward is linear in the embedding with user-dependent weights:
    r(x, y, z) = (w + U·z)·e(x, y) + b + c·z, so two users whose z differ can weigh the same
    features with opposite signs (the VPL paper's decoder is an MLP of [e; z]; this bilinear
    head is the smallest that lets z flip a preference, and trains from scratch here).
    """

    def __init__(self, embedder: EmbeddingModel, latent: int = 8, hidden: int = 64) -> None:
        super().__init__()
        if latent < 1 or hidden < 1:
            raise ValueError("latent and hidden must be >= 1")
        d = embedder.dim
        self.embedder = embedder
        self.latent = latent
        self.hidden = hidden
        out_layer = torch.nn.Linear(hidden, 2 * latent)
        with torch.no_grad():  # start with σ ≈ 0.05: z ≈ μ, so the decoder learns to read z
            out_layer.bias[latent:] = -6.0
        self.encoder = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.Tanh(), out_layer)
        self.base = torch.nn.Linear(d, 1)  # w, b
        self.decoder = torch.nn.Linear(latent, d + 1)  # z -> (U·z, c·z)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The embeddings e(x, y) [B, dim] (the trainer and the reward combine them)."""
        out: torch.Tensor = self.embedder(input_ids, attention_mask)
        return out

    def posterior(self, e_c: torch.Tensor, e_r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²) [G, latent] from context embeddings [G, K, dim]: the encoder reads each
        pair's difference e_c − e_r (a user who prefers the other side gives the opposite
        input), and its outputs are averaged over the K pairs."""
        h = self.encoder(e_c - e_r).mean(dim=-2)
        mu, logvar = h.chunk(2, dim=-1)
        return mu, logvar.clamp(-8.0, 8.0)

    def reward(self, e: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """r(x, y, z) for embeddings [..., dim] and latents broadcastable to [..., latent]."""
        z = z.expand(*e.shape[:-1], z.shape[-1])
        uz = self.decoder(z)
        out: torch.Tensor = self.base(e)[..., 0] + (uz[..., :-1] * e).sum(dim=-1) + uz[..., -1]
        return out


def save_vpl(model: VPLModel, tokenizer: Any, out: str | Path, **meta: Any) -> Path:
    """Backbone, ``heads.safetensors`` (encoder + decoder) and ``rewardlab.json`` (kind vpl)."""
    from safetensors.torch import save_file

    path = save_embedding_checkpoint(
        model.embedder,
        tokenizer,
        out,
        kind="vpl",
        loader="rewardlab.rewards.pref_models:load_vpl",
        latent=model.latent,
        hidden=model.hidden,
        **meta,
    )
    heads = {
        f"{part}.{k}": v
        for part in ("encoder", "base", "decoder")
        for k, v in getattr(model, part).state_dict().items()
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in heads.items()}
    save_file(tensors, str(path / "heads.safetensors"))
    info = json.loads((path / META_FILE).read_text())
    info["params"] = param_count(model)
    (path / META_FILE).write_text(json.dumps(info, indent=2, default=str))
    return path


class VPLReward:
    """A trained VPL model as a Reward, conditioned on one user's context pairs.

    ``context`` is a list of ``(prompt, chosen, rejected)`` of that user; z = μ(context). With no
    context z = 0, the prior mean.
    """

    def __init__(
        self,
        model: VPLModel,
        tokenizer: Any,
        context: Sequence[tuple[str, str, str]] = (),
        *,
        name: str = "vpl",
        template: str = DEFAULT_TEMPLATE,
        max_length: int = 512,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.template = template
        self.max_length = max_length
        self.params = param_count(model)
        self.z = self.infer_latent(context)

    def _embed(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        pairs = zip(prompts, responses, strict=True)
        texts = [self.template.format(prompt=p, response=r) for p, r in pairs]
        return embed_texts(self.model.embedder, self.tokenizer, texts, self.max_length)

    def infer_latent(self, context: Sequence[tuple[str, str, str]]) -> torch.Tensor:
        """z = μ(context) [latent]; zeros without context."""
        if not context:
            return torch.zeros(self.model.latent)
        prompts = [c[0] for c in context]
        e_c = self._embed(prompts, [c[1] for c in context])
        e_r = self._embed(prompts, [c[2] for c in context])
        dev = next(self.model.parameters()).device
        with torch.inference_mode():
            mu, _ = self.model.posterior(e_c[None].to(dev), e_r[None].to(dev))
        return mu[0].cpu()

    def score_pairs(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """r(x, y, z) for each (prompt, response)."""
        e = self._embed(prompts, responses)
        dev = next(self.model.parameters()).device
        with torch.inference_mode():
            r = self.model.reward(e.to(dev), self.z.to(dev)[None])
        return r.cpu().numpy().astype(float)

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        if len(problems) != len(candidates):
            raise ValueError(f"{len(problems)} problems for {len(candidates)} candidates")
        vals = self.score_pairs([p.question for p in problems], [c.text for c in candidates])
        return [Score(float(v)) for v in vals]


def read_context(path: str | Path, user: str | None = None) -> list[tuple[str, str, str]]:
    """``(prompt, chosen, rejected)`` rows of a pairwise JSONL file (``user`` filters rows).

    Raises ValueError naming the file and line of a malformed row, or when no row is left.
    """
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or not all(
            isinstance(row.get(k), str) for k in ("prompt", "chosen", "rejected")
        ):
            raise ValueError(f"{path}:{n}: a context row needs strings prompt, chosen, rejected")
        if user is None or str(row.get("user")) == user:
            out.append((row["prompt"], row["chosen"], row["rejected"]))
    if not out:
        raise ValueError(f"{path}: no context rows" + (f" with user == {user!r}" if user else ""))
    return out


def load_vpl(
    path: str | Path,
    *,
    context: str | Path | Sequence[tuple[str, str, str]] | None = None,
    user: str | None = None,
    device: str | None = None,
    **kwargs: Any,
) -> VPLReward:
    """A VPL checkpoint as a :class:`VPLReward`.

    Args:
        context: that user's labelled pairs: a pairwise JSONL file (prompt, chosen,
            rejected) or a list of triples; none gives z = 0.
        user: keep only the context rows whose ``user`` column equals this.
    """
    from safetensors.torch import load_file

    p = Path(path)
    embedder, tok, meta = _load_backbone(p)
    if meta.get("kind") != "vpl":
        raise ValueError(f"{p}: kind {meta.get('kind')!r} is not a vpl checkpoint")
    model = VPLModel(embedder, int(meta["latent"]), int(meta["hidden"]))
    heads = load_file(str(p / "heads.safetensors"))
    for part in ("encoder", "base", "decoder"):
        n = len(part) + 1
        getattr(model, part).load_state_dict(
            {k[n:]: v for k, v in heads.items() if k.startswith(f"{part}.")}
        )
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
    triples: list[tuple[str, str, str]] = []
    if isinstance(context, str | Path):
        triples = read_context(context, user)
    elif context is not None:
        triples = [tuple(t) for t in context]  # type: ignore[misc]
    kwargs.setdefault("name", str(meta.get("name") or p.resolve().name))
    kwargs.setdefault("template", meta.get("template", DEFAULT_TEMPLATE))
    kwargs.setdefault("max_length", int(meta.get("max_length", 512)))
    return VPLReward(model, tok, triples, **kwargs)
