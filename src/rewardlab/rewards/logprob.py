"""The policy's own mean token log-probability as a reward: a verifier-free baseline.

It costs nothing beyond sampling (the logprobs come with the tokens). Candidates without
logprobs (e.g. imported from elsewhere) are ungraded, not scored 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from rewardlab.types import Candidate, Problem, Score


class MeanLogprobReward:
    """Score = mean log-probability of the generated tokens under the sampling policy."""

    name = "logprob"
    params = 0  # no extra model: costs no FLOPs beyond sampling

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        out = []
        for c in candidates:
            m = c.mean_logprob
            out.append(Score.ungraded("no logprobs") if m is None else Score(m))
        return out
