"""Learned rewards on disk: the checkpoint's ``rewardlab.json``, saving, loading, the defaults.

A checkpoint directory (written by ``rewardlab train``) holds the model in transformers format
(``config.json`` + ``model.safetensors``), its tokenizer, and ``rewardlab.json``, which names
the scoring recipe and everything scoring must repeat from training::

    {
      "schema": 1,
      "recipe": "prm-classifier",        # orm | prm-classifier | prm-tag | ovm | implicit-prm
      "name": "prm_arith",               # optional; else the directory's name
      "separator": "\\n",                 # the step format (rewards/step_format.py)
      "template": "Question: {question}\\nAnswer:\\n",
      "aggregate": "last",               # how `score` turns step scores into one value
      "params": 3407106,                 # parameters run per scored token (FLOPs accounting)
      "good_token": null, "bad_token": null,   # prm-tag only ("+", "-")
      "beta": null, "ref": null,         # implicit-prm only (beta; reference model directory,
                                         # relative to this one: "ref" or "../tiny_policy")
      "backbone": "...",                 # provenance: the directory it was trained from
      "training": {...}                  # provenance: objective, labels, steps, lr, loss ...
    }

``load_reward(dir)`` in :mod:`rewardlab.rewards.registry` comes here. A ``rewardlab.json``
without ``recipe`` but with ``loader`` (``"module:callable"``, written by other trainers: the
preference RMs, ensembles) is handed to that loader. Nothing is downloaded: every
``from_pretrained`` call is ``local_files_only=True``.

A model directory *without* ``rewardlab.json`` (a published PRM or reward model in
transformers format) is loaded by naming its recipe: :func:`load_hf_reward` with a recipe
of :data:`RECIPES` or a preset of :data:`PRESETS` (``qwen-prm``: Qwen2.5-Math-PRM's chat
prompt and ``<extra_0>`` step separator, 2-class head; ``math-shepherd``: the ``ки`` tag and
``+``/``-`` tokens; ``seq-cls``: a 1-output sequence classifier, i.e. an ORM), with
``trust_remote_code`` for models that ship their own modeling code and ``dtype``.

>>> reward = load_learned_reward("src/rewardlab/assets/prm_arith")  # doctest: +SKIP
>>> reward.score_steps(problems, candidates)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from rewardlab.policies.prompts import PLAIN_PROMPT
from rewardlab.rewards.step_format import StepFormat

MANIFEST = "rewardlab.json"
SCHEMA = 1

# recipe -> (transformers auto class of the model, "module:Class" of the reward)
RECIPES: dict[str, tuple[str, str]] = {
    "orm": ("AutoModelForSequenceClassification", "rewardlab.rewards.orm:ORM"),
    "prm-classifier": ("AutoModelForTokenClassification", "rewardlab.rewards.prm:ClassifierPRM"),
    "prm-tag": ("AutoModelForCausalLM", "rewardlab.rewards.prm:TagPRM"),
    "ovm": ("AutoModelForTokenClassification", "rewardlab.rewards.prm:OVM"),
    "implicit-prm": ("AutoModelForCausalLM", "rewardlab.rewards.implicit:ImplicitPRM"),
}


QWEN_PRM_TEMPLATE = (
    "<|im_start|>system\nPlease reason step by step, and put your final answer within "
    "\\boxed{{}}.<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
)
#: Presets for published models: recipe + manifest fields (what their model cards prescribe).
PRESETS: dict[str, dict[str, Any]] = {
    # Qwen2.5-Math-PRM (Zhang et al. 2025): chat prompt, "<extra_0>" after every step,
    # P(class 1) of its 2-class head at each separator.
    "qwen-prm": {
        "recipe": "prm-classifier",
        "separator": "<extra_0>",
        "template": QWEN_PRM_TEMPLATE,
    },
    # Math-Shepherd (Wang et al. 2024): question, then steps each followed by the tag "ки";
    # the LM's "+" vs "-" at the tag.
    "math-shepherd": {
        "recipe": "prm-tag",
        "separator": "ки",
        "template": "{question} ",
        "good_token": "+",
        "bad_token": "-",
    },
    # Any AutoModelForSequenceClassification with one output: an outcome RM.
    "seq-cls": {"recipe": "orm"},
}


@dataclass(frozen=True)
class Manifest:
    """The contents of ``rewardlab.json`` (see the module docstring for the schema)."""

    recipe: str
    separator: str = "\n"
    template: str = PLAIN_PROMPT
    aggregate: str = "last"
    params: int = 0
    name: str | None = None
    good_token: str | None = None
    bad_token: str | None = None
    beta: float | None = None
    ref: str | None = None
    backbone: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; choose one of {sorted(RECIPES)}")
        if self.recipe == "prm-tag" and not (self.good_token and self.bad_token):
            raise ValueError("recipe prm-tag needs good_token and bad_token")
        if self.recipe == "implicit-prm" and (self.beta is None or self.ref is None):
            raise ValueError("recipe implicit-prm needs beta and ref")

    @property
    def fmt(self) -> StepFormat:
        return StepFormat(self.separator, self.template)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Build from parsed json; unknown keys are an error (a typo must not pass silently)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{MANIFEST}: unknown keys {unknown}")
        if int(data.get("schema", SCHEMA)) > SCHEMA:
            raise ValueError(f"{MANIFEST}: schema {data['schema']} is newer than this rewardlab")
        return cls(**data)


def read_manifest(path: str | Path) -> Manifest:
    """The manifest of a checkpoint directory."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise FileNotFoundError(f"{path} has no {MANIFEST}: not a rewardlab checkpoint")
    return Manifest.from_dict(json.loads(file.read_text()))


def save_checkpoint(
    out: str | Path, model: Any, tokenizer: Any, manifest: Manifest, ref: Any | None = None
) -> Path:
    """Write model (safetensors), tokenizer, ``ref`` (into ``manifest.ref``) and the json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if ref is not None:
        if manifest.ref is None:
            raise ValueError("a reference model needs manifest.ref (its subdirectory)")
        ref.save_pretrained(out / manifest.ref, safe_serialization=True)
        tokenizer.save_pretrained(out / manifest.ref)
    (out / MANIFEST).write_text(manifest.to_json())
    return out


def _import(target: str) -> Any:
    """``"module:attr"`` or ``"module:Class.method"``, imported on use."""
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


DTYPES = ("float32", "bfloat16", "float16")


def load_model(
    path: str | Path,
    auto_class: str,
    device: str | None = None,
    *,
    dtype: str = "float32",
    trust_remote_code: bool = False,
) -> Any:
    """A transformers model from a local directory (eval mode, on ``device``).

    With ``trust_remote_code`` a model whose config maps ``AutoModel`` to its own code (as
    Qwen2.5-Math-PRM's does) is loaded through that class.
    """
    import torch
    import transformers

    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {list(DTYPES)}")
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if trust_remote_code and "AutoModel" in _auto_map(path):
        auto_class = "AutoModel"
    cls = getattr(transformers, auto_class)
    model = cls.from_pretrained(
        str(path),
        local_files_only=True,
        dtype=getattr(torch, dtype),
        trust_remote_code=trust_remote_code,
    )
    return model.to(dev).eval()


def _auto_map(path: str | Path) -> dict[str, Any]:
    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    found = config.get("auto_map", {}) if isinstance(config, dict) else {}
    return found if isinstance(found, dict) else {}


def preset_manifest(recipe: str, **overrides: Any) -> Manifest:
    """A manifest for a model directory without one: a :data:`PRESETS` name or a recipe of
    :data:`RECIPES`, with non-None ``overrides`` (separator, template, aggregate, ...)."""
    if recipe in PRESETS:
        base = dict(PRESETS[recipe])
    elif recipe in RECIPES:
        base = {"recipe": recipe}
    else:
        raise ValueError(
            f"unknown recipe {recipe!r}; choose a preset {sorted(PRESETS)} or a recipe "
            f"{sorted(RECIPES)}"
        )
    return Manifest(**{**base, **{k: v for k, v in overrides.items() if v is not None}})


def check_hf_dir(path: str | Path, recipe: str, trust_remote_code: bool = False) -> Manifest:
    """Check (without loading weights) that ``path`` is a transformers model directory that
    ``recipe`` can score; returns the manifest it would be scored with."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"reward model directory {path} does not exist")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} has no config.json: not a transformers model directory")
    man = preset_manifest(recipe)
    if _auto_map(path) and not trust_remote_code:
        raise ValueError(
            f"{path} ships its own modeling code (config.json auto_map); add "
            "--trust-remote-code if you trust it"
        )
    if man.recipe == "implicit-prm":
        raise ValueError("recipe implicit-prm needs a reference model: write a rewardlab.json")
    return man


def load_hf_reward(
    path: str | Path,
    recipe: str,
    *,
    trust_remote_code: bool = False,
    dtype: str = "float32",
    device: str | None = None,
    name: str | None = None,
    separator: str | None = None,
    template: str | None = None,
    aggregate: str | None = None,
    batch_size: int = 8,
) -> Any:
    """A reward from a model directory that has no ``rewardlab.json``, scored with ``recipe``
    (a :data:`PRESETS` name or a recipe of :data:`RECIPES`); nothing is downloaded."""
    from transformers import AutoTokenizer

    path = Path(path)
    check_hf_dir(path, recipe, trust_remote_code)
    man = preset_manifest(recipe, separator=separator, template=template, aggregate=aggregate)
    auto_class, target = RECIPES[man.recipe]
    model = load_model(path, auto_class, device, dtype=dtype, trust_remote_code=trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(
        str(path), local_files_only=True, trust_remote_code=trust_remote_code
    )
    kwargs: dict[str, Any] = {
        "model": model,
        "tokenizer": tokenizer,
        "fmt": man.fmt,
        "name": name or path.resolve().name,
        "batch_size": batch_size,
        "aggregate": man.aggregate,
        "fingerprint": weights_fingerprint(path),
    }
    if man.recipe == "prm-tag":
        kwargs.update(good=man.good_token, bad=man.bad_token)
    return _import(target)(**kwargs)


def load_learned_reward(path: str | Path, **kwargs: Any) -> Any:
    """The reward object a checkpoint directory's ``rewardlab.json`` names, ready to score.

    Args:
        path: the checkpoint directory.
        **kwargs: ``name`` (default: the json's ``name``, else the directory's name),
            ``device`` (default: CUDA when available), ``aggregate`` (override the json's step
            aggregation: last, min, mean, prod, sum), ``batch_size`` (candidates per forward
            pass, 32). A checkpoint of another trainer (json with a ``loader``) gets the
            keyword arguments as given.

    Returns:
        an :class:`~rewardlab.rewards.orm.ORM`, :class:`~rewardlab.rewards.prm.ClassifierPRM`,
        :class:`~rewardlab.rewards.prm.TagPRM`, :class:`~rewardlab.rewards.prm.OVM` or
        :class:`~rewardlab.rewards.implicit.ImplicitPRM`; its ``params`` counts the parameters.
    """
    path = Path(path)
    raw = json.loads((path / MANIFEST).read_text()) if (path / MANIFEST).is_file() else {}
    if "recipe" not in raw and isinstance(raw.get("loader"), str):
        return _import(raw["loader"])(path, **kwargs)
    return _load_recipe(path, **kwargs)


def _load_recipe(
    path: Path,
    *,
    name: str | None = None,
    device: str | None = None,
    aggregate: str | None = None,
    batch_size: int = 32,
) -> Any:
    from transformers import AutoTokenizer

    man = read_manifest(path)
    auto_class, target = RECIPES[man.recipe]
    model = load_model(path, auto_class, device)
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    kwargs: dict[str, Any] = {
        "model": model,
        "tokenizer": tokenizer,
        "fmt": man.fmt,
        "name": name or man.name or path.resolve().name,
        "batch_size": batch_size,
        "aggregate": aggregate or man.aggregate,
        "fingerprint": weights_fingerprint(path, man.ref),
    }
    if man.recipe == "prm-tag":
        kwargs.update(good=man.good_token, bad=man.bad_token)
    if man.recipe == "implicit-prm":
        assert man.ref is not None and man.beta is not None
        kwargs.update(ref=load_model(path / man.ref, auto_class, device), beta=man.beta)
    return _import(target)(**kwargs)


def weights_fingerprint(path: Path, ref: str | None = None) -> str:
    """First 16 hex digits of the SHA-256 of a checkpoint's weight files, its reference model's
    (``ref``, relative to ``path``; it may live beside the checkpoint) and its manifest: two
    checkpoints with the same name but other weights get different fingerprints."""
    digest = hashlib.sha256()
    files = sorted(path.glob("*.safetensors"))
    if ref is not None:
        files += sorted((path / ref).glob("*.safetensors"))
    for f in [*files, path / MANIFEST]:
        if f.is_file():
            digest.update(f.name.encode())
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def asset_dir(name: str) -> Path:
    """A shipped checkpoint under ``rewardlab/assets`` (raises if this install lacks it)."""
    path = Path(str(resources.files("rewardlab") / "assets" / name))
    if not (path / MANIFEST).is_file():
        raise FileNotFoundError(
            f"the default reward model {name!r} is not installed at {path}; make it with "
            "`python scripts/train_default_rms.py`"
        )
    return path


def load_default_orm(**kwargs: Any) -> Any:
    """The shipped testbed ORM (``assets/orm_arith``), named ``orm``."""
    return load_learned_reward(asset_dir("orm_arith"), **{"name": "orm", **kwargs})


def load_default_prm(**kwargs: Any) -> Any:
    """The shipped testbed PRM (``assets/prm_arith``), named ``prm``; aggregation ``last``."""
    return load_learned_reward(asset_dir("prm_arith"), **{"name": "prm", **kwargs})


def load_default_implicit_prm(**kwargs: Any) -> Any:
    """The shipped testbed implicit PRM (``assets/implicit_prm_arith``, reference: the shipped
    tiny policy), named ``implicit-prm``; aggregation ``sum`` (= its outcome reward r(y))."""
    return load_learned_reward(
        asset_dir("implicit_prm_arith"), **{"name": "implicit-prm", **kwargs}
    )
