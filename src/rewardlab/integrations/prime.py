"""PRIME's online implicit PRM as a TRL ``GRPOTrainer`` reward function.

"Process Reinforcement through Implicit Rewards" (Cui et al. 2025, papers.md §14): the process
reward comes from an implicit PRM, r_t = β·log(π_φ(y_t|y_<t)/π_ref(y_t|y_<t)) (Yuan et al. 2024,
papers.md §37), and the PRM is **updated online from the outcome labels of the policy's own
rollouts**: after scoring a batch (PRIME's default "update after scoring"), one optimiser step on
the cross-entropy L = −[l·log σ(r_φ(y)) + (1 − l)·log(1 − σ(r_φ(y)))], r_φ(y) = β·Σ_t log ratio_t,
l = the verifier's 0/1 outcome. The PRM therefore tracks the policy's distribution as it moves,
which is PRIME's answer to a frozen PRM being hacked.

One departure, forced by the trainer: GRPO gives each *sequence* one advantage, so the process
reward enters as its sum over the response, Σ_t r_t = r_φ(y) (times ``coef``), not as PRIME's
per-token returns with RLOO per reward source. PRIME's online prompt filter (keep prompts whose
accuracy is in [0.2, 0.8]) is not applied: GRPO already gives a group of equal outcomes zero
outcome advantage.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardlab.integrations.common import make_pair
from rewardlab.integrations.trl import message_text
from rewardlab.rewards.implicit import ImplicitPRM, log_ratio, response_mask
from rewardlab.rewards.prm import batch_tensors, encode_candidates
from rewardlab.rewards.step_format import Encoded
from rewardlab.types import Candidate, Problem


@dataclass
class OnlinePRMStats:
    """Running record of the online updates (for logs and reports)."""

    updates: int = 0
    last_loss: float = float("nan")
    losses: list[float] = field(default_factory=list)


class OnlineImplicitPRM:
    """``reward_funcs=[outcome, OnlineImplicitPRM(prm, outcome_of, ...)]``.

    Args:
        prm: an :class:`~rewardlab.rewards.implicit.ImplicitPRM` (e.g. the shipped
            ``implicit-prm``); its ``model`` is trained in place, its ``ref`` stays frozen.
        outcome: the 0/1 verifier, called as ``outcome(kwargs, i, text)`` with TRL's keyword
            arguments (dataset columns), the row index and the completion text.
        lr: the PRM's learning rate (PRIME: 1e-6 for 7B models; a tiny model needs more).
        coef: weight of the process reward in the returned value (GRPO also takes
            ``reward_weights``; keep one of the two at 1).
        question_column: the dataset column with the bare question (the PRM's template wraps
            it); None: the prompt text.
        update: False scores with a frozen PRM (the ablation).
    """

    def __init__(
        self,
        prm: ImplicitPRM,
        outcome: Callable[[dict[str, Any], int, str], bool],
        lr: float = 1e-5,
        coef: float = 1.0,
        question_column: str | None = "question",
        update: bool = True,
        name: str = "prime_implicit_prm",
    ) -> None:
        import torch

        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.prm = prm
        self.outcome = outcome
        self.coef = coef
        self.question_column = question_column
        self.update = update
        self.stats = OnlinePRMStats()
        self.__name__ = name
        for p in prm.ref.parameters():
            p.requires_grad_(False)
        self.opt = torch.optim.AdamW(
            [p for p in prm.model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0
        )

    def _pairs(
        self, prompts: Sequence[Any], completions: Sequence[Any], kwargs: dict[str, Any]
    ) -> tuple[list[Problem], list[Candidate]]:
        questions = prompts
        if self.question_column is not None:
            questions = kwargs.get(self.question_column) or []
            if len(questions) != len(completions):
                raise ValueError(
                    f"column {self.question_column!r}: {len(questions)} values for "
                    f"{len(completions)} completions"
                )
        pairs = [
            make_pair(message_text(q), message_text(c), pid=f"s{i}", segmentation="lines")
            for i, (q, c) in enumerate(zip(questions, completions, strict=True))
        ]
        return [p for p, _ in pairs], [c for _, c in pairs]

    def learn(
        self, problems: Sequence[Problem], candidates: Sequence[Candidate], labels: Sequence[bool]
    ) -> float | None:
        """One optimiser step of the CE loss on the graded candidates; returns the loss (None
        when no candidate could be encoded)."""
        import torch

        items = encode_candidates(self.prm, problems, candidates)
        keep = [i for i, it in enumerate(items) if isinstance(it, Encoded)]
        if not keep:
            return None
        batch: list[Encoded] = [items[i] for i in keep]  # type: ignore[misc]
        model = self.prm.model
        model.train()
        with torch.enable_grad():
            ids, mask, _, _ = batch_tensors(model, self.prm.tokenizer, batch)
            ratio = log_ratio(model, self.prm.ref, ids, mask)
            sums = (ratio * response_mask(batch, ids.shape[1]).to(ratio.device)).sum(-1)
            y = torch.tensor([float(labels[i]) for i in keep], device=sums.device)
            loss: Any = torch.nn.functional.binary_cross_entropy_with_logits(
                self.prm.beta * sums, y
            )
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        model.eval()
        value = float(loss.detach())
        self.stats.updates += 1
        self.stats.last_loss = value
        self.stats.losses.append(value)
        return value

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Sequence[Sequence[int]] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        problems, candidates = self._pairs(prompts, completions, kwargs)
        scores = self.prm.score_steps(problems, candidates)
        out = [None if s.value is None else self.coef * float(s.value) for s in scores]
        if self.update:
            labels = [bool(self.outcome(kwargs, i, c.text)) for i, c in enumerate(candidates)]
            loss = self.learn(problems, candidates, labels)
            log_metric = kwargs.get("log_metric")
            if loss is not None and callable(log_metric):
                log_metric(f"{self.__name__}/loss", loss)
        return out
