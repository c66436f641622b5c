"""Reward shaping and combination for RL: small pure transforms that compose.

Everything here maps numbers to numbers (numpy in, numpy or tuples out) and never looks at a
model, so it can sit between any rewardlab reward (or a served one) and any trainer.

Process-reward shaping against reward hacking ("On Designing Effective RL Reward at Training
Time for LLM Reasoning", Gao et al. 2024; papers.md §5). With r_k the PRM score of prefix k:

- :class:`Clip`: r̃_k = min(r_k − η, 0): every step reward is ≤ 0, so adding (repeated, empty)
  steps can never raise the return. η is the paper's threshold on a [0, 1] PRM; its value is
  unverified (we default to 0.5, the decision boundary of a sigmoid PRM).
- :class:`Delta`: r̃_k = r_k − r_{k+1} for k < K, r̃_K = r_K: the suffix sums telescope to r_k,
  so the return is bounded by one step's score however many steps there are.
- ``compose(Clip(η), Delta())``: Clip-Delta. :func:`shaped_return` adds the outcome reward.

Combining rewards ("Transforming and Combining Rewards", Wang et al. 2024; papers.md §27):
:func:`log_sigmoid_centered` u = log σ(r − r_ref(x)) against a per-prompt reference reward
(:func:`reference_reward`, a quantile of the base policy's rewards for that prompt; 0.85 is the
paper's example, exact choice unverified), and :func:`combine_log_sigmoid` Σ_i log σ(r_i − r_i^ref)
(a soft AND: the log-probability that the response is good on every property).

Ensembles at RL time (Coste et al. 2024, papers.md §53; Yan et al. 2024 "Reward-Robust RLHF",
papers.md §61): :func:`ensemble` ``mean`` / ``wco`` (min over members) / ``uwo`` (mean − λ·Var;
Coste et al.'s PPO code uses the unbiased variance, ddof=1, the default here) and :func:`brme`
(λ·nominal + (1 − λ)·min, the nominal reward from the member with the lowest stated std).

Filtering and calibration: :func:`pf_ppo_select` (PF-PPO, papers.md §28: keep the best of N
responses per prompt plus a random one (BR) or the worst (BW), or only the best (BoN)) with
:func:`r_squared` to choose the strategy; :func:`ppo_c_adjust` and :class:`PPOCBaseline`
(PPO-C, "Taming Overconfidence", papers.md §45, constants w = 0.5, α = 0.1 from the authors'
code) with :func:`parse_confidence`.

Length: :func:`linear_length_penalty` (r − α·|y|) and :func:`overlong_penalty` (DAPO's soft
overlong punishment, Yu et al. 2025).

Dense rewards: :func:`step_end_tokens` finds the token that ends each step (from a fast
tokenizer's offset mapping) and :func:`step_rewards_to_tokens` puts each step's reward there and
0 elsewhere, the per-token reward a PPO trainer takes.

>>> Clip(0.5)((0.9, 0.2, 0.7))
(0.0, -0.3, 0.0)
>>> [round(x, 2) for x in Delta()((0.9, 0.2, 0.7))]
[0.7, -0.5, 0.7]
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

# ----------------------------------------------------------------------- step transforms


class StepTransform(Protocol):
    """Maps one candidate's step rewards to shaped step rewards (same length)."""

    def __call__(self, steps: Sequence[float]) -> tuple[float, ...]: ...


def _finite(steps: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray(steps, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{what}: step rewards must be a flat sequence, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: step rewards must be finite, got {list(arr)}")
    return arr


@dataclass(frozen=True)
class Clip:
    """r̃_k = min(r_k − η, 0) (Gao et al. 2024, the Clip mechanism)."""

    eta: float = 0.5

    def __post_init__(self) -> None:
        if not math.isfinite(self.eta):
            raise ValueError(f"Clip eta must be finite, got {self.eta}")

    def __call__(self, steps: Sequence[float]) -> tuple[float, ...]:
        arr = _finite(steps, "Clip")
        return tuple(float(x) for x in np.minimum(arr - self.eta, 0.0))


@dataclass(frozen=True)
class Delta:
    """r̃_k = r_k − r_{k+1} for k < K and r̃_K = r_K (Gao et al. 2024, the Delta mechanism)."""

    def __call__(self, steps: Sequence[float]) -> tuple[float, ...]:
        arr = _finite(steps, "Delta")
        if arr.size == 0:
            return ()
        out = np.empty_like(arr)
        out[:-1] = arr[:-1] - arr[1:]
        out[-1] = arr[-1]
        return tuple(float(x) for x in out)


@dataclass(frozen=True)
class Chain:
    """Apply ``transforms`` left to right (``Chain((Clip(0.5), Delta()))`` is Clip-Delta)."""

    transforms: tuple[StepTransform, ...]

    def __call__(self, steps: Sequence[float]) -> tuple[float, ...]:
        out = tuple(float(x) for x in steps)
        for t in self.transforms:
            out = t(out)
        return out


def compose(*transforms: StepTransform) -> Chain:
    """The transforms applied in order, as one :class:`StepTransform`."""
    return Chain(tuple(transforms))


def shaped_return(
    outcome: float,
    steps: Sequence[float],
    transform: StepTransform | None = None,
    weight: float = 1.0,
) -> float:
    """r_success + weight·Σ_k r̃_k: the episode return with shaped process rewards (weighting of
    the process term is unverified in the paper; 1.0 by default)."""
    shaped = transform(steps) if transform is not None else tuple(_finite(steps, "steps"))
    return float(outcome + weight * sum(shaped))


# --------------------------------------------------------- log-sigmoid against a reference


def log_sigmoid(x: np.ndarray | float) -> np.ndarray:
    """log σ(x), computed stably (−log1p(e^{−x}) for x ≥ 0, x − log1p(e^{x}) below)."""
    a = np.asarray(x, dtype=float)
    soft = np.log1p(np.exp(-np.abs(a)))
    return np.asarray(np.where(a >= 0, -soft, a - soft), dtype=float)


def reference_reward(samples: Sequence[float], quantile: float = 0.85) -> float:
    """r_ref(x): a quantile of the rewards of base-policy samples for one prompt (Wang et al.
    2024 use e.g. the 85% quantile; linear interpolation between order statistics)."""
    arr = _finite(samples, "reference_reward")
    if arr.size == 0:
        raise ValueError("reference_reward: no samples for this prompt")
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], got {quantile}")
    return float(np.quantile(arr, quantile))


def log_sigmoid_centered(rewards: Sequence[float], reference: float) -> np.ndarray:
    """u = log σ(r − r_ref(x)) for the responses of one prompt (Wang et al. 2024)."""
    return np.asarray(log_sigmoid(_finite(rewards, "log_sigmoid_centered") - reference))


def combine_log_sigmoid(rewards: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Σ_i log σ(r_i − r_i^ref): ``rewards`` is (k rewards, n responses), ``references`` is
    (k,) (one prompt) or (k, n) (a per-response prompt reference). Returns (n,)."""
    r = np.asarray(rewards, dtype=float)
    ref = np.asarray(references, dtype=float)
    if r.ndim != 2:
        raise ValueError(f"rewards must be (k, n), got shape {r.shape}")
    if ref.ndim == 1:
        ref = ref[:, None]
    if ref.shape[0] != r.shape[0] or ref.shape[1] not in (1, r.shape[1]):
        raise ValueError(f"references shape {ref.shape} does not fit rewards {r.shape}")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(ref))):
        raise ValueError("rewards and references must be finite")
    return np.asarray(log_sigmoid(r - ref).sum(axis=0))


# ----------------------------------------------------------------------------- ensembles

EnsembleHow = Literal["mean", "wco", "uwo"]


def ensemble(matrix: np.ndarray, how: EnsembleHow, lam: float = 0.1, ddof: int = 1) -> np.ndarray:
    """Members × candidates → one reward per candidate (Coste et al. 2024): ``mean``; ``wco``
    = min_i R_i; ``uwo`` = mean − λ·Var_i(R_i) (``ddof=1`` as their PPO code; 0 as their BoN
    code; λ = 0.1 their PPO example)."""
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[0] < 1:
        raise ValueError(f"matrix must be (members, candidates), got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("ensemble member rewards must be finite")
    if how == "mean":
        return np.asarray(m.mean(axis=0))
    if how == "wco":
        return np.asarray(m.min(axis=0))
    if how == "uwo":
        if m.shape[0] <= ddof:
            raise ValueError(f"uwo with ddof={ddof} needs more than {ddof} members")
        return np.asarray(m.mean(axis=0) - lam * m.var(axis=0, ddof=ddof))
    raise ValueError(f"unknown ensemble {how!r}; choose mean, wco or uwo")


def brme(means: np.ndarray, stds: np.ndarray, lam: float = 0.5) -> np.ndarray:
    """BRME (Yan et al. 2024): λ·r_nominal + (1 − λ)·min_i r_i per candidate, the nominal reward
    from the head with the lowest std for that candidate. λ is unverified (0.5 here)."""
    mu, sd = np.asarray(means, dtype=float), np.asarray(stds, dtype=float)
    if mu.ndim != 2 or mu.shape != sd.shape:
        raise ValueError(f"means {mu.shape} and stds {sd.shape} must both be (heads, candidates)")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    if np.any(sd < 0) or not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sd))):
        raise ValueError("means must be finite and stds finite and >= 0")
    nominal = mu[np.argmin(sd, axis=0), np.arange(mu.shape[1])]
    return np.asarray(lam * nominal + (1.0 - lam) * mu.min(axis=0))


# ---------------------------------------------------------------------------- PF-PPO

FilterHow = Literal["bon", "br", "bw"]


def pf_ppo_select(
    rewards: Sequence[float], how: FilterHow, rng: np.random.Generator | None = None
) -> tuple[int, ...]:
    """Indices kept from one prompt's N responses (PF-PPO): ``bon`` the best; ``br`` the best and
    one other chosen at random; ``bw`` the best and the worst. Ties go to the lower index."""
    arr = _finite(rewards, "pf_ppo_select")
    if arr.size == 0:
        raise ValueError("pf_ppo_select: no responses")
    best = int(np.argmax(arr))
    if how == "bon" or arr.size == 1:
        return (best,)
    if how == "bw":
        worst = int(np.argmin(arr))
        return (best,) if worst == best else tuple(sorted((best, worst)))
    if how == "br":
        if rng is None:
            raise ValueError("pf_ppo_select('br') needs an rng")
        others = [i for i in range(arr.size) if i != best]
        return tuple(sorted((best, int(rng.choice(others)))))
    raise ValueError(f"unknown filter {how!r}; choose bon, br or bw")


def r_squared(rewards: Sequence[float], actual: Sequence[float]) -> float:
    """R² of the least-squares line from reward to actual score (the squared Pearson
    correlation): PF-PPO picks the filter whose kept samples have the highest R²."""
    x, y = _finite(rewards, "r_squared"), _finite(actual, "r_squared")
    if x.size != y.size or x.size < 2:
        raise ValueError(f"r_squared needs two equal-length series of >= 2, got {x.size}, {y.size}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise ValueError("r_squared: a constant series has no correlation")
    return float(np.corrcoef(x, y)[0, 1] ** 2)


# ----------------------------------------------------------------------------- PPO-C

_CONF = re.compile(r"confidence\s*[:=]\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)


def parse_confidence(text: str) -> float:
    """c = X/10 from the last ``Confidence: X`` (0-10) in ``text``; X clamped to [0, 10]; 0.5
    when none is stated (PPO-C's default of 5)."""
    found = _CONF.findall(text)
    if not found:
        return 0.5
    return min(max(float(found[-1]), 0.0), 10.0) / 10.0


def strip_confidence(text: str) -> str:
    """The text with its ``Confidence: X`` statements removed (PPO-C scores the response
    without them)."""
    return _CONF.sub("", text).rstrip()


def ppo_c_adjust(
    reward: float,
    confidence: float,
    baseline: float,
    w: float = 0.5,
    mode: Literal["threshold", "difference"] = "threshold",
    clamp: float = 10.0,
) -> float:
    """PPO-C's calibrated reward (Leng et al. 2024). r is first clamped to [−clamp, clamp].
    ``threshold``: r + w·|r|·(c − 0.5) if r ≥ r̄ else r − w·|r|·(c − 0.5); ``difference``:
    r + w·(r − r̄)·(c − 0.5)."""
    if not 0.0 <= confidence <= 1.0:
        raise ValueError(f"confidence must be in [0, 1], got {confidence}")
    if not (math.isfinite(reward) and math.isfinite(baseline)):
        raise ValueError(f"reward and baseline must be finite, got {reward}, {baseline}")
    r = min(max(reward, -clamp), clamp)
    if mode == "threshold":
        sign = 1.0 if r >= baseline else -1.0
        return r + sign * w * abs(r) * (confidence - 0.5)
    if mode == "difference":
        return r + w * (r - baseline) * (confidence - 0.5)
    raise ValueError(f"unknown PPO-C mode {mode!r}; choose threshold or difference")


@dataclass(frozen=True)
class PPOCBaseline:
    """The EMA baseline r̄ ← α·mean(r_batch) + (1 − α)·r̄ (α = 0.1), immutable: ``update``
    returns the next one. Rewards are clamped like :func:`ppo_c_adjust` before averaging."""

    value: float = 0.0
    alpha: float = 0.1
    clamp: float = 10.0

    def update(self, batch: Sequence[float]) -> PPOCBaseline:
        arr = np.clip(_finite(batch, "PPOCBaseline"), -self.clamp, self.clamp)
        if arr.size == 0:
            return self
        nxt = self.alpha * float(arr.mean()) + (1.0 - self.alpha) * self.value
        return PPOCBaseline(nxt, self.alpha, self.clamp)

    def adjust(
        self,
        rewards: Sequence[float],
        confidences: Sequence[float],
        w: float = 0.5,
        mode: Literal["threshold", "difference"] = "threshold",
    ) -> tuple[list[float], PPOCBaseline]:
        """Adjust a batch against the current r̄, then the baseline updated with this batch (the
        order within a step is our choice; the paper does not pin it)."""
        if len(rewards) != len(confidences):
            raise ValueError(f"{len(rewards)} rewards for {len(confidences)} confidences")
        out = [
            ppo_c_adjust(r, c, self.value, w, mode, self.clamp)
            for r, c in zip(rewards, confidences, strict=True)
        ]
        return out, self.update(rewards)


# ---------------------------------------------------------------------------- length


def linear_length_penalty(reward: float, length: int, alpha: float) -> float:
    """r − α·|y| (|y| in tokens)."""
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    return reward - alpha * length


def overlong_penalty(length: int, max_length: int, cache: int) -> float:
    """DAPO's soft overlong punishment (Yu et al. 2025), added to the reward: 0 while |y| ≤
    L_max − L_cache, ((L_max − L_cache) − |y|)/L_cache up to L_max, −1 beyond."""
    if not 0 < cache <= max_length:
        raise ValueError(f"need 0 < cache <= max_length, got cache={cache}, max={max_length}")
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    free = max_length - cache
    if length <= free:
        return 0.0
    if length <= max_length:
        return (free - length) / cache
    return -1.0


# --------------------------------------------------------------------- dense step rewards


def step_end_tokens(
    text: str, steps: Sequence[str], offsets: Sequence[tuple[int, int]]
) -> tuple[int, ...]:
    """The index of the token holding each step's last character.

    ``steps`` must occur in ``text`` in order (as :func:`rewardlab.steps.segment` gives them);
    ``offsets`` is the tokenizer's ``offset_mapping`` (char start, end) per token of ``text``.
    Raises ValueError naming the step that is not found or that no token covers."""
    ends: list[int] = []
    pos = 0
    for k, step in enumerate(steps):
        if not step:
            raise ValueError(f"step {k} is empty")
        at = text.find(step, pos)
        if at < 0:
            raise ValueError(f"step {k} ({step[:40]!r}) is not in the text after char {pos}")
        last = at + len(step) - 1
        pos = last + 1
        tok = next((i for i, (s, e) in enumerate(offsets) if s <= last < e), None)
        if tok is None:
            raise ValueError(f"no token covers the last char of step {k} (char {last})")
        ends.append(tok)
    return tuple(ends)


def step_rewards_to_tokens(
    step_rewards: Sequence[float], end_tokens: Sequence[int], n_tokens: int
) -> np.ndarray:
    """Per-token rewards: step k's reward at token ``end_tokens[k]``, 0 elsewhere (two steps
    ending on one token add up)."""
    r = _finite(step_rewards, "step_rewards_to_tokens")
    if len(end_tokens) != r.size:
        raise ValueError(f"{r.size} step rewards for {len(end_tokens)} step-end tokens")
    out = np.zeros(n_tokens, dtype=float)
    for value, tok in zip(r, end_tokens, strict=True):
        if not 0 <= tok < n_tokens:
            raise ValueError(f"step-end token {tok} outside 0..{n_tokens - 1}")
        out[tok] += value
    return out


def transform_scores(
    step_lists: Sequence[Sequence[float]], transform: Callable[[Sequence[float]], tuple[float, ...]]
) -> list[tuple[float, ...]]:
    """``transform`` applied to each candidate's step rewards."""
    return [transform(s) for s in step_lists]
