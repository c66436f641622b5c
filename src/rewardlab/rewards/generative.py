"""Generative verifiers: a policy that writes a verification chain and ends with a verdict.

A generative verifier (GenRM, Zhang et al. 2024; GenPRM; DeepSeek-GRM) is a :class:`Policy`
plus a :class:`VerifierFormat`: the format turns (problem, candidate) into a verification
prompt and reads a finished chain back into a :class:`Judgment` (a Yes/No verdict and,
where the chain judges steps, one judgment per step). The verifier samples ``V`` chains per
candidate; its score is the mean verdict over the chains that could be parsed, and its step
scores the per-step means. A chain that cannot be parsed never becomes a guess: it is left
out of the mean, and a candidate none of whose chains parse is ``Score(None, reason)``.

Two ways to read a verdict (``verdict=``):

- ``"parse"`` (any policy backend): the format's parser reads Yes/No from the chain text.
- ``"p_yes"`` / ``"p_yes_norm"`` (HF policies only, :mod:`rewardlab.policies.hf_scoring`):
  after the chain, the text up to the format's verdict cue (``"Is the answer correct
  (Yes/No)?"``; appended when the chain lacks it, as in Singhi et al. 2025's hybrid mode) is
  read once more and the verdict is the probability of the ``yes`` token there: p(Yes)
  (Singhi et al.) or p(Yes) / (p(Yes) + p(No)) (GenPRM). Step judgments still come from the
  parser.

Two optional extensions of the format, found by duck typing:

- :class:`ProbeFormat`: a "chain" is several short prompts (probes), e.g. one per step of
  the candidate (:mod:`rewardlab.rewards.recompute`); ``parse_probes`` reads their outputs.
- ``parse_batch(chains, candidates)``: parse many chains in one go (the code-checked format
  executes every chain's Python in one sandbox run); ``parse_probes_batch(outputs,
  candidates)`` likewise for a probe format (``outputs``: one list of probe outputs per
  verification).

Every verification token is the verifier's cost. What a call actually spent is recorded in
``ledger`` (if given) under the verifier's own name; what verifying each candidate costs on
its own is kept in ``Score.info`` (``verify_prompt_tokens``, ``verify_generated_tokens``,
``verify_scored_tokens``: summed over its V chains) so ``rewardlab scale`` charges the
verifier its real FLOPs per candidate; the last call's (prompt, generated) tokens per
candidate are in :attr:`GenerativeVerifier.last_tokens`. The two differ only when candidates
of one call share a prompt (probes over equal earlier steps), which is generated once. Give
the policy itself no ledger, or another one, or the tokens are counted twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from rewardlab.compute import Ledger
from rewardlab.policies.base import Policy
from rewardlab.types import Candidate, Completion, Problem, Sampling, Score

VerdictMode = Literal["parse", "p_yes", "p_yes_norm"]
VERDICT_MODES: tuple[str, ...] = ("parse", "p_yes", "p_yes_norm")
DEFAULT_CUE = "\nIs the answer correct (Yes/No)?"


@dataclass(frozen=True)
class Judgment:
    """What one verification chain says.

    Attributes:
        verdict: 1.0 (the candidate is right), 0.0 (wrong), a probability in between, or None
            when the chain has no readable verdict.
        steps: one judgment per step of the candidate (1.0 right, 0.0 wrong, None unread);
            empty when the format judges only the outcome.
        reason: why the verdict is None (or any note from the parser).
    """

    verdict: float | None
    steps: tuple[float | None, ...] = ()
    reason: str = ""


@runtime_checkable
class VerifierFormat(Protocol):
    """How a verifier is prompted and how its chain is read.

    ``stop`` ends a chain (kept in the text); ``judges_steps`` says whether ``parse`` returns
    per-step judgments. ``parse`` never raises on any text: an unreadable chain is a
    :class:`Judgment` with ``verdict=None`` and a reason.

    Optional attributes for the probability verdicts: ``verdict_cue`` (the text after which
    the verdict token is read; default :data:`DEFAULT_CUE`), ``yes`` / ``no`` (default
    ``" Yes"`` / ``" No"``); for chains that end without a verdict: ``finish_cue`` (appended,
    then ``finish_tokens`` more tokens are generated and the chain parsed again).
    """

    @property
    def name(self) -> str: ...
    @property
    def stop(self) -> tuple[str, ...]: ...
    @property
    def judges_steps(self) -> bool: ...

    def prompt(self, problem: Problem, candidate: Candidate) -> str: ...

    def parse(self, chain: str, candidate: Candidate) -> Judgment: ...


@runtime_checkable
class ProbeFormat(Protocol):
    """A format whose verification is several short generations (probes) per candidate.

    One verification "chain" is one output per probe; ``parse_probes`` reads them (in probe
    order) into a :class:`Judgment` and never raises. A candidate with no probe is judged by
    ``parse_probes([], candidate)`` alone (the format's rules).
    """

    @property
    def name(self) -> str: ...
    @property
    def stop(self) -> tuple[str, ...]: ...
    @property
    def judges_steps(self) -> bool: ...

    def probes(self, problem: Problem, candidate: Candidate) -> list[str]: ...

    def parse_probes(self, outputs: Sequence[str], candidate: Candidate) -> Judgment: ...


@dataclass(frozen=True)
class _Chains:
    """The V chains of one candidate: texts (one per probe for probe formats) and tokens."""

    texts: list[list[str]]  # [V][probes] (one entry per chain for plain formats)
    prompts: list[str]  # the prompt of each probe (one for plain formats)
    prompt_tokens: int
    generated_tokens: int
    logprobs: list[tuple[float, ...] | None] | None = None  # per chain (plain formats)


class GenerativeVerifier:
    """A policy + a verification format as a ``Reward`` (and a ``StepReward`` when the format
    judges steps: ``score_steps`` exists only then, so the scale job enters it as a process
    reward exactly when it has step scores).

    Args:
        policy: the model that writes the chains.
        fmt: the prompt and parser (a :class:`VerifierFormat` or a :class:`ProbeFormat`).
        n_verifications: ``V``, chains sampled per candidate.
        sampling: temperature, top-p, length and seed of the chains (T = 0 with V = 1 is a
            greedy verifier). The seed is mixed with the prompt's text by the policy's own
            per-row seeding, so scores are deterministic for a seed.
        name: the reward's name (defaults to ``genrm-`` + the format's name).
        verdict: ``"parse"``, ``"p_yes"`` or ``"p_yes_norm"`` (see the module docstring;
            the probability modes need an HF policy).
        ledger: where the verification tokens are recorded, under ``name``.
        fingerprint: identifies the verifier's weights and settings in the store (scores of a
            verifier with another fingerprint are never reused); defaults to a hash of the
            policy's name and size, the format's name, V, the sampling and the verdict mode.
    """

    text_only = True  # the score depends only on the problem and the candidate's text

    def __init__(
        self,
        policy: Policy,
        fmt: VerifierFormat | ProbeFormat,
        *,
        n_verifications: int = 1,
        sampling: Sampling | None = None,
        name: str | None = None,
        verdict: VerdictMode = "parse",
        ledger: Ledger | None = None,
        fingerprint: str | None = None,
        meta_reward: Any = None,
        k_meta: int | None = None,
    ) -> None:
        if n_verifications < 1:
            raise ValueError(f"n_verifications must be >= 1, got {n_verifications}")
        if verdict not in VERDICT_MODES:
            raise ValueError(f"verdict must be one of {VERDICT_MODES}, got {verdict!r}")
        if verdict != "parse":
            from rewardlab.policies.hf_scoring import require_hf

            require_hf(policy, f"verdict={verdict!r}")
            if isinstance(fmt, ProbeFormat):
                raise ValueError(f"format {fmt.name!r} uses probes: only verdict='parse' fits")
        self.policy = policy
        self.fmt = fmt
        self.n_verifications = n_verifications
        self.sampling = sampling or Sampling(temperature=0.0 if n_verifications == 1 else 1.0)
        self.name = name or f"genrm-{fmt.name}"
        self.verdict = verdict
        self.ledger = ledger
        if k_meta is not None and not 1 <= k_meta <= n_verifications:
            raise ValueError(f"k_meta must be in 1..V={n_verifications}, got {k_meta}")
        if meta_reward is not None and isinstance(fmt, ProbeFormat):
            raise ValueError("a meta-RM filter needs whole chains, not probes")
        self.meta_reward = meta_reward
        self.k_meta = k_meta if meta_reward is not None else None
        self.params = int(policy.params)
        self.last_tokens: list[tuple[int, int]] = []
        self._spent = [0, 0]  # tokens actually generated by the current call
        self.fingerprint = fingerprint or self._default_fingerprint()

    def _default_fingerprint(self) -> str:
        key = {
            "policy": self.policy.name,
            "policy_params": self.params,
            "policy_fingerprint": str(getattr(self.policy, "fingerprint", "") or ""),
            "format": self.fmt.name,
            "format_settings": _settings(self.fmt),
            "V": self.n_verifications,
            "sampling": asdict(self.sampling),
            "verdict": self.verdict,
            "meta": None if self.meta_reward is None else [self.meta_reward.name, self.k_meta],
        }
        blob = json.dumps(key, sort_keys=True, default=str).encode()
        return hashlib.blake2b(blob, digest_size=6).hexdigest()

    # -- the chains ------------------------------------------------------------------------

    def _sample(self, prompts: list[str]) -> list[list[Completion]]:
        """V completions per prompt, each ended at the format's first stop string (kept).

        Equal prompts (two candidates sharing a probe) are generated once and share their
        chains, so a chain depends only on its prompt and the seed (never on the batch); the
        tokens actually spent are added to ``self._spent``.
        """
        if not prompts:
            return []
        v = self.n_verifications
        unique = list(dict.fromkeys(prompts))
        stop = tuple(s for s in self.fmt.stop if s)
        if not stop:
            rows = self.policy.sample(unique, v, self.sampling)
        else:
            # extend() stops at the stop strings; a prompt repeated V times gets V distinct
            # per-row random streams (the backend numbers repeats of a text)
            flat = self.policy.extend([p for p in unique for _ in range(v)], self.sampling, stop)
            rows = [flat[i * v : (i + 1) * v] for i in range(len(unique))]
        self._spent[0] += sum(c.prompt_tokens for r in rows for c in r)
        self._spent[1] += sum(c.generated_tokens for r in rows for c in r)
        by_prompt = dict(zip(unique, rows, strict=True))
        return [by_prompt[p] for p in prompts]

    def _chains(
        self, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> list[_Chains]:
        v = self.n_verifications
        if isinstance(self.fmt, ProbeFormat):
            probes = [self.fmt.probes(p, c) for p, c in zip(problems, candidates, strict=True)]
            flat = [q for row in probes for q in row]
            rows = self._sample(flat)
            out, at = [], 0
            for row in probes:
                mine = rows[at : at + len(row)]
                at += len(row)
                texts = [[mine[j][k].text for j in range(len(row))] for k in range(v)]
                out.append(
                    _Chains(
                        texts,
                        row,
                        sum(c.prompt_tokens for r in mine for c in r),
                        sum(c.generated_tokens for r in mine for c in r),
                    )
                )
            return out
        prompts = [self.fmt.prompt(p, c) for p, c in zip(problems, candidates, strict=True)]
        rows = self._sample(prompts)
        return [
            _Chains(
                [[c.text] for c in chains],
                [prompt],
                sum(c.prompt_tokens for c in chains),
                sum(c.generated_tokens for c in chains),
                [c.logprobs for c in chains],
            )
            for prompt, chains in zip(prompts, rows, strict=True)
        ]

    def _parse(
        self, chains: list[_Chains], candidates: Sequence[Candidate]
    ) -> list[list[Judgment]]:
        """Every chain's judgment, grouped per candidate: one ``parse_batch`` (chains) or
        ``parse_probes_batch`` (probe outputs) call for all of them where the format has one,
        else one ``parse`` / ``parse_probes`` call per chain."""
        fmt: Any = self.fmt
        if isinstance(self.fmt, ProbeFormat):  # a chain is the list of its probes' outputs
            items: list[Any] = [texts for ch in chains for texts in ch.texts]
            batch_name, single = "parse_probes_batch", fmt.parse_probes
        else:
            items = [t[0] for ch in chains for t in ch.texts]
            batch_name, single = "parse_batch", fmt.parse
        cands = [cand for ch, cand in zip(chains, candidates, strict=True) for _ in ch.texts]
        batch: Callable[..., list[Judgment]] | None = getattr(fmt, batch_name, None)
        if batch is not None:
            flat = list(batch(items, cands))
            if len(flat) != len(items):
                raise RuntimeError(f"{fmt.name}.{batch_name} returned {len(flat)} judgments")
        else:
            flat = [single(x, c) for x, c in zip(items, cands, strict=True)]
        out, at = [], 0
        for ch in chains:
            out.append(flat[at : at + len(ch.texts)])
            at += len(ch.texts)
        return out

    def _finish(
        self, chains: list[_Chains], judged: list[list[Judgment]], candidates: Sequence[Candidate]
    ) -> tuple[list[_Chains], list[list[Judgment]]]:
        """Give each chain without a verdict one more chance: append the format's
        ``finish_cue`` (e.g. ``"\nVerdict:"``) and let the policy write a few tokens (Singhi et
        al.'s hybrid reading of "Is the answer correct (Yes/No)? ..."). Small models often
        run out of tokens mid-check; their verdict is then read, not dropped. The extra
        tokens are the candidate's cost like any other."""
        cue = str(getattr(self.fmt, "finish_cue", "") or "")
        if not cue or isinstance(self.fmt, ProbeFormat) or self.verdict != "parse":
            return chains, judged  # (a probability verdict is read after the chain anyway)
        todo = [
            (i, k) for i, js in enumerate(judged) for k, j in enumerate(js) if j.verdict is None
        ]
        if not todo:
            return chains, judged
        heads = {
            (i, k): chains[i].texts[k][0].rstrip() + cue for i, k in todo
        }  # the chain as finished so far
        prefixes = [chains[i].prompts[0] + heads[i, k] for i, k in todo]
        unique = list(dict.fromkeys(prefixes))
        params = replace(self.sampling, max_new_tokens=int(getattr(self.fmt, "finish_tokens", 8)))
        outs = dict(zip(unique, self.policy.extend(unique, params, ("\n",)), strict=True))
        self._spent[0] += sum(c.prompt_tokens for c in outs.values())
        self._spent[1] += sum(c.generated_tokens for c in outs.values())
        texts = [[list(t) for t in ch.texts] for ch in chains]
        extra = [[0, 0] for _ in chains]
        for (i, k), prefix in zip(todo, prefixes, strict=True):
            out = outs[prefix]
            texts[i][k] = [heads[i, k] + out.text]
            extra[i][0] += out.prompt_tokens
            extra[i][1] += out.generated_tokens
        new_chains = [
            _Chains(t, ch.prompts, ch.prompt_tokens + e[0], ch.generated_tokens + e[1], ch.logprobs)
            for ch, t, e in zip(chains, texts, extra, strict=True)
        ]
        again = self._parse(new_chains, candidates)
        return new_chains, [
            [again[i][k] if (i, k) in heads else j for k, j in enumerate(js)]
            for i, js in enumerate(judged)
        ]

    def _probabilities(
        self, chains: list[_Chains], judged: list[list[Judgment]]
    ) -> tuple[list[list[Judgment]], list[int]]:
        """Replace each verdict by p(Yes) (or the normalised form) read after the cue."""
        from rewardlab.policies.hf_scoring import next_token_probs

        cue = str(getattr(self.fmt, "verdict_cue", DEFAULT_CUE))
        yes = str(getattr(self.fmt, "yes", " Yes"))
        no = str(getattr(self.fmt, "no", " No"))
        prefixes = [ch.prompts[0] + _upto_cue(t[0], cue) for ch in chains for t in ch.texts]
        if not prefixes:
            return judged, []
        read = next_token_probs(self.policy, prefixes, (yes, no))
        out: list[list[Judgment]] = []
        scored: list[int] = []
        at = 0
        for js in judged:
            row = []
            n_scored = 0
            for j in js:
                p_yes, p_no = (float(x) for x in read.probs[at])
                n_scored += read.scored_tokens[at]
                at += 1
                value: float | None
                if self.verdict == "p_yes":
                    value = p_yes
                else:
                    total = p_yes + p_no
                    value = p_yes / total if total > 0 else None
                reason = "" if value is not None else "p(Yes) + p(No) is 0 at the verdict token"
                row.append(Judgment(value, j.steps, reason or j.reason))
            out.append(row)
            scored.append(n_scored)
        return out, scored

    def _meta_filter(
        self,
        problems: Sequence[Problem],
        candidates: Sequence[Candidate],
        chains: list[_Chains],
        judged: list[list[Judgment]],
    ) -> list[list[Judgment]]:
        """Keep each candidate's ``k_meta`` judgments the meta-RM scores highest.

        DeepSeek-GRM (Liu et al. 2025): a meta-RM rates each sampled principle + critique and
        only the top ``k_meta`` of the ``k`` samples vote. The meta-RM is any ``Reward``; it
        sees the chain as a candidate (text, one step, the chain's logprobs) to a problem whose
        question is the original question followed by the judged solution. A chain the
        meta-RM cannot grade ranks last; ties keep the earlier chain.
        """
        meta = self.meta_reward
        k = self.k_meta or max(1, self.n_verifications // 2)
        m_problems: list[Problem] = []
        m_cands: list[Candidate] = []
        for prob, cand, ch in zip(problems, candidates, chains, strict=True):
            judged_problem = replace(prob, question=f"{prob.question}\n\nSolution:\n{cand.text}")
            for v, texts in enumerate(ch.texts):
                logprobs = ch.logprobs[v] if ch.logprobs else None
                m_problems.append(judged_problem)
                m_cands.append(
                    Candidate(prob.id, texts[0], (texts[0],), None, logprobs=logprobs, index=v)
                )
        scores = meta.score(m_problems, m_cands) if m_cands else []
        out, at = [], 0
        for js in judged:
            mine = scores[at : at + len(js)]
            at += len(js)
            ranked = sorted(
                range(len(js)),
                key=lambda i: (-(mine[i].value if mine[i].value is not None else -np.inf), i),
            )
            out.append([js[i] for i in sorted(ranked[:k])])
        return out

    # -- the Reward ------------------------------------------------------------------------

    def judge(
        self, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> list[list[Judgment]]:
        """``V`` judgments per candidate (one batched policy call for all of them)."""
        return [j for j, _ in self._judge(problems, candidates)]

    def _judge(
        self, problems: Sequence[Problem], candidates: Sequence[Candidate]
    ) -> list[tuple[list[Judgment], dict[str, int]]]:
        if len(problems) != len(candidates):
            raise ValueError("problems and candidates must have the same length")
        self._spent = [0, 0]
        chains = self._chains(problems, candidates)
        judged = self._parse(chains, candidates)
        chains, judged = self._finish(chains, judged, candidates)
        scored = [0] * len(chains)
        if self.verdict != "parse":
            judged, scored = self._probabilities(chains, judged)
        if self.meta_reward is not None:
            judged = self._meta_filter(problems, candidates, chains, judged)
        tokens = [
            {
                "verify_prompt_tokens": ch.prompt_tokens,
                "verify_generated_tokens": ch.generated_tokens,
                "verify_scored_tokens": s,
            }
            for ch, s in zip(chains, scored, strict=True)
        ]
        self.last_tokens = [
            (t["verify_prompt_tokens"], t["verify_generated_tokens"]) for t in tokens
        ]
        if self.ledger is not None and tokens:
            self.ledger.record(
                self.name,
                params=self.params,
                prompt_tokens=self._spent[0],
                generated_tokens=self._spent[1],
                scored_tokens=sum(t["verify_scored_tokens"] for t in tokens),
            )
        return list(zip(judged, tokens, strict=True))

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        """Mean verdict over the readable chains; per-step means in ``Score.steps``; the
        verification tokens of this candidate (summed over its V chains) in ``Score.info``."""
        out = []
        for (js, tokens), c in zip(self._judge(problems, candidates), candidates, strict=True):
            s = _combine(js, c)
            out.append(Score(s.value, s.steps, {**s.info, **tokens, "V": self.n_verifications}))
        return out

    @property
    def score_steps(
        self,
    ) -> Callable[[Sequence[Problem], Sequence[Candidate]], list[Score]]:
        """Step scores (the mean per-step judgment); only for formats that judge steps.

        Raises AttributeError otherwise, so ``hasattr(verifier, "score_steps")`` says whether
        the verifier is a process reward.
        """
        if not self.fmt.judges_steps:
            raise AttributeError(
                f"{self.name}: format {self.fmt.name!r} does not judge steps (no score_steps)"
            )
        return self.score


def _settings(fmt: Any) -> dict[str, str]:
    """A format's simple settings (for the fingerprint): its public str/int/float fields."""
    try:
        items = vars(fmt).items()
    except TypeError:
        return {}
    return {
        k: str(v)
        for k, v in sorted(items)
        if not k.startswith("_") and isinstance(v, str | int | float | bool | tuple)
    }


def _upto_cue(chain: str, cue: str) -> str:
    """The chain up to and including the last occurrence of ``cue``; the chain + ``cue``
    when it has none (the cue is appended, Singhi et al.'s hybrid reading); nothing when the
    cue is empty (the verdict is the chain's first token: a direct verifier)."""
    if not cue:
        return ""
    at = chain.rfind(cue.strip())
    if cue.strip() and at >= 0:
        return chain[: at + len(cue.strip())]
    return chain.rstrip() + cue


def _combine(judgments: Sequence[Judgment], candidate: Candidate) -> Score:
    """Mean verdict of the readable chains, and per step the mean of the judgments read for it.

    Chains without a verdict are left out. A step that no readable chain judged takes the mean
    verdict, so the step vector is exactly as long as the candidate's steps (never NaN).
    """
    verdicts = [j.verdict for j in judgments if j.verdict is not None]
    if not verdicts:
        reasons = sorted({j.reason or "no verdict" for j in judgments})
        return Score.ungraded(
            "no verification chain could be read: " + "; ".join(reasons),
            verdicts=[None] * len(judgments),
            n_read=0,
        )
    value = float(np.mean(verdicts))
    n_steps = len(candidate.steps)
    steps: list[float] = []
    if any(j.steps for j in judgments):
        for i in range(n_steps):
            seen = [
                s
                for j in judgments
                if j.verdict is not None and i < len(j.steps)
                for s in [j.steps[i]]
                if s is not None
            ]
            steps.append(float(np.mean(seen)) if seen else value)
    info = {"verdicts": [j.verdict for j in judgments], "n_read": len(verdicts)}
    return Score(value, tuple(steps), info)
