"""One explicit registry of rewards by name, imported lazily, with "did you mean" on typos.

A reward on the command line is a registry name or a checkpoint directory (a learned reward
saved by ``rewardlab train``; its ``rewardlab.json`` names the scoring recipe). A registry name
may carry keyword arguments after a colon, ``name:key=value,key=value`` (values are read as
int, float, true/false, else kept as text): ``oracle-prm:q=0.8``, ``genrm:V=4``.

>>> parse_spec("exact:q=0.8,seed=3")
('exact', {'q': 0.8, 'seed': 3})
>>> parse_spec("orm")
('orm', {})
"""

from __future__ import annotations

import difflib
import importlib
import json
import re
from pathlib import Path
from typing import Any

REWARDS: dict[str, str] = {
    "exact": "rewardlab.rewards.exact:ArithExactReward",
    "math-verify": "rewardlab.rewards.math_answer:MathVerifyReward",
    "logprob": "rewardlab.rewards.logprob:MeanLogprobReward",
    "orm": "rewardlab.rewards.learned:load_default_orm",
    "prm": "rewardlab.rewards.learned:load_default_prm",
    "implicit-prm": "rewardlab.rewards.learned:load_default_implicit_prm",
    "code": "rewardlab.rewards.code:CodeReward",
    "code-steps": "rewardlab.rewards.code_steps:CodeStepReward",
    "oracle-prm": "rewardlab.rewards.oracle:OraclePRM",
    "oracle-orm": "rewardlab.rewards.oracle:OracleORM",
    "recompute": "rewardlab.rewards.recompute:load_recompute",
    "codecheck": "rewardlab.rewards.codecheck:load_codecheck",
    "judge-yes-no": "rewardlab.rewards.judges:load_yes_no_judge",
    "judge-yes-no-direct": "rewardlab.rewards.judges:load_direct_judge",
    "judge-grm": "rewardlab.rewards.judges:load_grm_judge",
    "genrm": "rewardlab.rewards.genrm_arith:load_default_genrm",
    "genprm": "rewardlab.rewards.genprm_arith:load_default_genprm",
    # published reward models by their own recipes, from a local directory (path=DIR)
    "qwen-prm": "rewardlab.rewards.presets.qwen_prm:load_qwen_prm",
    "math-shepherd": "rewardlab.rewards.presets.math_shepherd:load_math_shepherd",
    "seqcls-rm": "rewardlab.rewards.presets.outcome:load_seqcls_rm",
    "armorm": "rewardlab.rewards.presets.outcome:load_armorm",
    "eurus-prm": "rewardlab.rewards.presets.eurus:load_eurus_prm",
    # Qwen2.5-Math-PRM's recipe on vLLM's pooling engine (GPU, optional extra rewardlab[vllm])
    "vllm-prm": "rewardlab.rewards.presets.vllm_prm:load_vllm_prm",
    "dpo-implicit": "rewardlab.rewards.dpo_implicit:load_dpo_implicit",
    "vpl": "rewardlab.rewards.pref_models:load_vpl",
    "hrm": "rewardlab.rewards.hrm:load_hrm",
    "chi2": "rewardlab.rewards.chi2:load_chi2",
    "flr": "rewardlab.rewards.followup:load_flr",
    "semantic-similarity": "rewardlab.rewards.similarity:SemanticSimilarityReward",
    "unit-test-quality": "rewardlab.rewards.unit_tests:UnitTestQualityReward",
    "instruction-constraints": "rewardlab.rewards.instruction:InstructionConstraintReward",
}

#: registry targets that load model weights (they take ``device``)
_LEARNED_PREFIXES = ("rewardlab.rewards.learned:", "rewardlab.rewards.presets.")


def register(name: str, target: str) -> None:
    """Add a reward ``"module:Class"`` under ``name``; refuses to shadow an existing name."""
    if name in REWARDS and REWARDS[name] != target:
        raise ValueError(f"reward name {name!r} is already registered to {REWARDS[name]}")
    REWARDS[name] = target


def _import(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``name:key=value,...`` into the name and its keyword arguments.

    Raises ValueError naming the bad part when an argument is not ``key=value``.
    """
    name, sep, rest = spec.partition(":")
    if not sep or name not in REWARDS:
        return spec, {}
    kwargs: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise ValueError(
                f"reward {spec!r}: argument {part!r} is not key=value (e.g. {name}:q=0.8)"
            )
        kwargs[key.strip()] = _value(value)
    return name, kwargs


_ARG = re.compile(r"^\s*[A-Za-z_]\w*=")


def split_specs(text: str) -> tuple[str, ...]:
    """Comma-separated reward specs, where a spec's own ``key=value`` arguments are also
    comma-separated: a piece that reads ``key=...`` continues the spec before it when that
    spec has arguments (``a:x=1,y=2,b`` is ``a:x=1,y=2`` and ``b``).

    >>> split_specs("logprob,qwen-prm:path=/m/prm,dtype=bfloat16,prm")
    ('logprob', 'qwen-prm:path=/m/prm,dtype=bfloat16', 'prm')
    """
    out: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        if out and ":" in out[-1] and _ARG.match(piece) and ":" not in piece.split("=", 1)[0]:
            out[-1] = f"{out[-1]},{piece}"
        else:
            out.append(piece)
    return tuple(out)


def load_reward(spec: str, **kwargs: Any) -> Any:
    """A reward by registry name (with optional ``:key=value,...``) or checkpoint directory."""
    name, spec_kwargs = parse_spec(spec)
    if name in REWARDS:
        factory = _import(REWARDS[name])
        try:
            return factory(**{**kwargs, **spec_kwargs})
        except TypeError as e:
            if spec_kwargs and "argument" in str(e):
                raise ValueError(f"reward {spec!r}: {e}") from None
            raise
    path = Path(spec)
    if path.is_dir() and (path / "rewardlab.json").exists():
        return _import("rewardlab.rewards.learned:load_learned_reward")(path, **kwargs)
    raise ValueError(_unknown(spec))


def _unknown(spec: str) -> str:
    hint = difflib.get_close_matches(spec, list(REWARDS), n=1)
    did_you_mean = f"; did you mean {hint[0]!r}?" if hint else ""
    where = ""
    if Path(spec).is_dir():
        where = f" ({spec} is a directory without rewardlab.json: name its recipe, see --help)"
    return (
        f"unknown reward {spec!r}: not a registered name {sorted(REWARDS)} nor a checkpoint "
        f"directory with rewardlab.json{did_you_mean}{where}"
    )


def is_learned(spec: str) -> bool:
    """Whether ``spec`` names a learned reward (a model that takes a ``device``)."""
    name, _ = parse_spec(spec)
    if name in REWARDS:
        return REWARDS[name].startswith(_LEARNED_PREFIXES)
    return Path(spec).is_dir()


def check_reward(spec: str) -> tuple[str, ...]:
    """The names a reward spec may score under, checked without loading any model.

    A registry name gives itself (and the full spec when it carries arguments); a checkpoint
    directory its manifest's ``name`` and the directory's name.

    Raises:
        ValueError: an unknown name (with a "did you mean"), an argument that is not
            ``key=value``, or an unreadable manifest.
    """
    name, kwargs = parse_spec(spec)
    if name in REWARDS:
        if REWARDS[name].startswith("rewardlab.rewards.presets."):
            _check_preset_dirs(spec, name, kwargs)
        return tuple(dict.fromkeys((str(kwargs.get("name", name)), name, spec)))
    path = Path(spec)
    manifest = path / "rewardlab.json"
    if path.is_dir() and manifest.is_file():
        try:
            raw = json.loads(manifest.read_text())
        except (ValueError, OSError) as e:
            raise ValueError(f"reward {spec!r}: unreadable {manifest}: {e}") from None
        named = raw.get("name") if isinstance(raw, dict) else None
        return tuple(dict.fromkeys([n for n in (named, path.resolve().name) if n]))
    raise ValueError(_unknown(spec))


def _check_preset_dirs(spec: str, name: str, kwargs: dict[str, Any]) -> None:
    """A published-model spec names its local model directory (``path``, and ``ref`` for
    ``eurus-prm``); both must exist with a config.json (nothing is downloaded)."""
    needed = ("path", "ref") if name == "eurus-prm" else ("path",)
    for key in needed:
        if key not in kwargs:
            raise ValueError(f"reward {spec!r}: needs {key}=DIR (a local model directory)")
        where = Path(str(kwargs[key]))
        if not (where / "config.json").is_file():
            raise ValueError(
                f"reward {spec!r}: {key}={where} is not a local model directory with a "
                "config.json (nothing is downloaded)"
            )
    if name == "vllm-prm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise ValueError(
                f"reward {spec!r} runs on vLLM, which is not installed: pip install "
                "'rewardlab[vllm]' on a machine with a CUDA GPU, or use 'qwen-prm:path=DIR' "
                "(the same recipe on transformers)"
            )
