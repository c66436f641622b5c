"""Semantic-similarity reward against a reference text (SecRepair-style, MiniLM embeddings).

SecRepair (papers.md §71) rewards a generated fix or description by its semantic similarity to
a reference; the exact composition is unverified there. This reward is that similarity alone:

    r(x, y) = cos(e(y), e(ref(x))),   e = L2-normalised mean-pooled encoder embedding

(all-MiniLM-L6-v2 by default, :class:`~rewardlab.rewards.encoder_rm.EncoderFeaturizer.embed`),
so r ∈ [−1, 1] and r = 1 for a response identical to the reference. The reference is
``problem.answer`` by default, or ``problem.meta[reference_key]``; a problem without one is
ungraded (with the reason), never scored against an empty string.

>>> SemanticSimilarityReward().score(problems, candidates)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewardlab.types import Candidate, Problem, Score


class SemanticSimilarityReward:
    """Cosine similarity of response and reference embeddings (see the module docstring)."""

    def __init__(
        self,
        *,
        encoder: str | Path = "minilm",
        reference_key: str | None = None,
        max_length: int = 256,
        device: str | None = None,
        name: str = "semantic-similarity",
        featurizer: Any = None,
    ) -> None:
        from rewardlab.rewards.encoder_rm import EncoderFeaturizer

        self.featurizer = featurizer or EncoderFeaturizer(
            encoder, max_length=max_length, response_tokens=max(1, max_length - 3), device=device
        )
        self.reference_key = reference_key
        self.name = name
        self.params = self.featurizer.params

    def reference(self, problem: Problem) -> str | None:
        """The reference text of a problem (None when it has none)."""
        ref: Any = problem.answer
        if self.reference_key is not None:
            ref = problem.meta.get(self.reference_key)
        return ref if isinstance(ref, str) and ref.strip() else None

    def similarities(self, responses: Sequence[str], references: Sequence[str]) -> np.ndarray:
        """cos(e(response_i), e(reference_i)) for each i, float [n]."""
        if len(responses) != len(references):
            raise ValueError(f"{len(responses)} responses for {len(references)} references")
        if not responses:
            return np.zeros(0)
        refs = list(dict.fromkeys(references))
        e_ref = self.featurizer.embed(refs)
        where = {r: i for i, r in enumerate(refs)}
        e_resp = self.featurizer.embed(list(responses))
        e_match = e_ref[[where[r] for r in references]]
        sims: np.ndarray = np.clip((e_resp * e_match).sum(axis=1).astype(float), -1.0, 1.0)
        return sims

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        if len(problems) != len(candidates):
            raise ValueError(f"{len(problems)} problems for {len(candidates)} candidates")
        refs = [self.reference(p) for p in problems]
        graded = [i for i, r in enumerate(refs) if r is not None]
        sims = self.similarities(
            [candidates[i].text for i in graded], [refs[i] or "" for i in graded]
        )
        where = "answer" if self.reference_key is None else f"meta[{self.reference_key!r}]"
        out = [
            Score.ungraded(f"problem {p.id!r} has no reference text ({where})") for p in problems
        ]
        for i, v in zip(graded, sims, strict=True):
            out[i] = Score(float(v))
        return out
