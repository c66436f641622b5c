"""The implicit reward of a DPO-trained policy, β·log(π(y|x)/π_ref(y|x)), as a Reward.

Rafailov et al. 2023 (DPO) show that a policy trained with DPO defines the reward
r(x, y) = β·[log π(y|x) − log π_ref(y|x)] (up to a per-prompt constant); RewardBench scores DPO
models this way, and Lin et al. 2024 ("On the limited generalization capability of the implicit
reward model induced by DPO") compare it with an explicit BT model. Without a reference model
the score is β·log π(y|x) (RewardBench's "reference-free" mode).

log π(y|x) is the sum of the response tokens' log-probabilities: the text is
``prompt_template.format(prompt=question)`` followed by the candidate text and the eos token;
the response tokens are those after the prompt's tokens (the longest common prefix of the two
tokenisations, so a merge across the boundary is not miscounted). Texts are scored in length-
sorted batches under ``torch.inference_mode()``.

From the command line it is the registry's ``dpo-implicit:policy=DIR,ref=DIR,beta=0.1``, or
the directory a ``rewardlab train --objective dpo`` run wrote (its ``rewardlab.json`` names the
reference and β).

>>> r = DPOImplicitReward.from_dirs("runs/dpo", ref_dir="base", beta=0.1)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewardlab.rewards.preference_rm import length_sorted_batches, pad_right, param_count
from rewardlab.types import Candidate, Problem, Score

PROMPT_TEMPLATE = "Question: {prompt}\nAnswer:\n"


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def sequence_logprobs(
    model: Any,
    ids: Sequence[Sequence[int]],
    starts: Sequence[int],
    pad_id: int,
    max_tokens: int = 16384,
    max_batch: int = 32,
) -> np.ndarray:
    """Sum of log p(token_t | tokens_<t) over t >= starts[i], for each id sequence."""
    out = np.zeros(len(ids))
    device = next(model.parameters()).device
    with torch.inference_mode():
        for batch in length_sorted_batches([len(x) for x in ids], max_tokens, max_batch):
            input_ids, mask = pad_right([ids[i] for i in batch], pad_id)
            input_ids, mask = input_ids.to(device), mask.to(device)
            logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            tok = logp.gather(-1, input_ids[:, 1:, None])[..., 0]
            pos = torch.arange(1, input_ids.shape[1], device=device)[None, :]
            start = torch.tensor([starts[i] for i in batch], device=device)[:, None]
            keep = (pos >= start) & mask[:, 1:].bool()
            out[batch] = (tok * keep).sum(dim=1).cpu().numpy()
    return out


class DPOImplicitReward:
    """β·(log π(y|x) − log π_ref(y|x)) of a causal LM policy (ref-free when ``ref_model`` is None).

    ``params`` counts both models (each scores every candidate).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        ref_model: Any | None = None,
        *,
        beta: float = 0.1,
        name: str = "dpo-implicit",
        prompt_template: str = PROMPT_TEMPLATE,
        append_eos: bool = True,
        max_tokens: int = 16384,
        max_batch: int = 32,
    ) -> None:
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.model = model
        self.tokenizer = tokenizer
        self.ref_model = ref_model
        self.beta = beta
        self.name = name
        self.prompt_template = prompt_template
        self.append_eos = append_eos
        self.max_tokens = max_tokens
        self.max_batch = max_batch
        self.params = param_count(model) + (param_count(ref_model) if ref_model is not None else 0)

    @classmethod
    def from_dirs(
        cls,
        policy_dir: str | Path,
        ref_dir: str | Path | None = None,
        *,
        device: str | None = None,
        **kwargs: Any,
    ) -> DPOImplicitReward:
        """Load a policy (and reference) from local transformers directories."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        tok = AutoTokenizer.from_pretrained(str(policy_dir), local_files_only=True)
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token

        def load(d: str | Path) -> Any:
            m: Any = AutoModelForCausalLM.from_pretrained(str(d), local_files_only=True)
            return m.to(dev).eval()

        ref = load(ref_dir) if ref_dir is not None else None
        kwargs.setdefault("name", f"dpo[{Path(policy_dir).name}]")
        return cls(load(policy_dir), tok, ref, **kwargs)

    def encode(self, prompt: str, response: str) -> tuple[list[int], int]:
        """Token ids of prompt + response (+ eos) and the index of the first response token."""
        head = self.prompt_template.format(prompt=prompt)
        p_ids = self.tokenizer(head)["input_ids"]
        full = list(self.tokenizer(head + response)["input_ids"])
        if self.append_eos and self.tokenizer.eos_token_id is not None:
            full.append(self.tokenizer.eos_token_id)
        return full, max(1, _common_prefix(p_ids, full))

    def score_pairs(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """Implicit rewards (float [n]) for (prompt, response) pairs."""
        enc = [self.encode(p, r) for p, r in zip(prompts, responses, strict=True)]
        ids, starts = [e[0] for e in enc], [e[1] for e in enc]
        pad = self.tokenizer.pad_token_id
        logp = sequence_logprobs(self.model, ids, starts, pad, self.max_tokens, self.max_batch)
        if self.ref_model is not None:
            logp = logp - sequence_logprobs(
                self.ref_model, ids, starts, pad, self.max_tokens, self.max_batch
            )
        return self.beta * logp

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        if len(problems) != len(candidates):
            raise ValueError(f"{len(problems)} problems for {len(candidates)} candidates")
        vals = self.score_pairs([p.question for p in problems], [c.text for c in candidates])
        return [Score(float(v)) for v in vals]


def load_dpo_implicit(
    policy: str | Path | None = None,
    ref: str | Path | None = None,
    beta: float = 0.1,
    **kwargs: Any,
) -> DPOImplicitReward:
    """The registry's ``dpo-implicit:policy=DIR,ref=DIR,beta=0.1`` (``ref`` optional).

    A ``policy`` directory that is a checkpoint of ``rewardlab train --objective dpo`` (its
    ``rewardlab.json`` names the reference and β) needs no ``ref``/``beta``.
    """
    if policy is None:
        raise ValueError("dpo-implicit needs policy=DIR (e.g. dpo-implicit:policy=runs/dpo)")
    p = Path(policy)
    if not p.is_dir():
        raise ValueError(f"dpo-implicit: policy {str(p)!r} is not a directory")
    if ref is None and (p / "rewardlab.json").is_file():
        return load_dpo_checkpoint(p, **kwargs)
    if ref is not None and not Path(ref).is_dir():
        raise ValueError(f"dpo-implicit: ref {str(ref)!r} is not a directory")
    return DPOImplicitReward.from_dirs(p, ref, beta=beta, **kwargs)


def load_dpo_checkpoint(
    path: str | Path, beta: float | None = None, **kwargs: Any
) -> DPOImplicitReward:
    """A ``dpo-implicit`` checkpoint (written by :mod:`rewardlab.train.dpo`) as its reward.

    Its ``rewardlab.json`` gives the reference directory (``ref``), ``beta`` and the
    ``prompt_template``; ``beta`` here overrides the saved one.
    """
    import json

    p = Path(path)
    meta = json.loads((p / "rewardlab.json").read_text())
    if meta.get("kind") != "dpo-implicit":
        raise ValueError(f"{p}: kind {meta.get('kind')!r} is not a dpo-implicit checkpoint")
    ref = meta.get("ref")
    if ref is not None and not Path(ref).is_dir():
        raise ValueError(f"{p}: its reference model {ref!r} is not there any more")
    kwargs.setdefault("name", str(meta.get("name") or p.resolve().name))
    kwargs.setdefault("prompt_template", meta.get("prompt_template", PROMPT_TEMPLATE))
    b = float(meta.get("beta", 0.1)) if beta is None else beta
    return DPOImplicitReward.from_dirs(p, ref, beta=b, **kwargs)
