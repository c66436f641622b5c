"""Verifiable instruction constraints checked by rule: the RLVR reward of Tülu 3 (Lambert et al.
2024) for IFEval-style prompts.

RLVR rewards a response only when a verifier says it satisfies the prompt: r = α if every
constraint holds, else 0 (Tülu 3 uses α = 10; papers.md marks the value unverified, so α is a
parameter, default 1). With ``partial=True`` the reward is α times the fraction satisfied
instead (a denser signal; not Tülu 3's).

A problem carries its constraints in ``problem.meta["constraints"]``: a list of dicts, each with
a ``type`` and its arguments. ``relation`` is ``"at least"``, ``"at most"`` or ``"exactly"``.

==============  ==========================================  =====================================
type            arguments                                   holds when
==============  ==========================================  =====================================
length          unit (words | sentences | paragraphs |      count(unit) relation n
                chars), relation, n
keyword         include: [str], exclude: [str]              every include word occurs, no exclude
                                                            word occurs (case-insensitive, whole
                                                            words)
frequency       keyword, relation, n                        occurrences (as above) relation n
case            case (lower | upper)                        no upper- (lower-) case letter
format          format: json                                the whole response parses as JSON
                                                            (``json`` code fences allowed)
format          format: bullets, n                          exactly n lines start ``*`` / ``-``
format          format: title                               a ``<<title>>`` is present
format          format: no_commas                           no ``,``
format          format: quoted                              wrapped in double quotes
format          format: end_with, phrase                    ends with phrase (trailing space ok)
==============  ==========================================  =====================================

Counting rules: words are runs of ``\\w`` characters (``[\\w']+``); sentences end at ``.``, ``!`` or
``?`` followed by space or the end (a non-empty tail without one counts as a sentence);
paragraphs are blocks separated by a blank line, or by ``***`` lines (IFEval's separator).
A malformed constraint raises ValueError naming it (a grader must not silently pass a
constraint it cannot read); a problem with no constraints is ungraded, with a reason.

>>> check_constraint({"type": "length", "unit": "words", "relation": "at most", "n": 3}, "one two")
True
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rewardlab.types import Candidate, Problem, Score

RELATIONS = ("at least", "at most", "exactly")
UNITS = ("words", "sentences", "paragraphs", "chars")
FORMATS = ("json", "bullets", "title", "no_commas", "quoted", "end_with")
TYPES = ("length", "keyword", "frequency", "case", "format")

_WORD = re.compile(r"[\w']+")
_SENT_END = re.compile(r"[.!?]+(?=\s|$)")


def _relation(count: int, relation: str, n: int) -> bool:
    if relation == "at least":
        return count >= n
    if relation == "at most":
        return count <= n
    if relation == "exactly":
        return count == n
    raise ValueError(f"unknown relation {relation!r}; expected one of {RELATIONS}")


def count_words(text: str) -> int:
    """Runs of word characters (apostrophes kept inside words).

    >>> count_words("It's a dog-friendly place.")
    5
    """
    return len(_WORD.findall(text))


def count_sentences(text: str) -> int:
    """Sentence ends (``.!?`` runs before space or end), plus a trailing unterminated sentence.

    >>> count_sentences("Hi. How are you? Fine")
    3
    """
    ends = list(_SENT_END.finditer(text))
    tail = text[ends[-1].end() :] if ends else text
    return len(ends) + (1 if tail.strip() else 0)


def count_paragraphs(text: str) -> int:
    """Non-empty blocks between blank lines or ``***`` separator lines.

    >>> count_paragraphs("a\\n\\nb\\n***\\nc")
    3
    """
    blocks = re.split(r"\n\s*\n|\n\s*\*\*\*\s*\n", text)
    return sum(1 for b in blocks if b.strip() and b.strip() != "***")


def _count(text: str, unit: str) -> int:
    if unit == "words":
        return count_words(text)
    if unit == "sentences":
        return count_sentences(text)
    if unit == "paragraphs":
        return count_paragraphs(text)
    if unit == "chars":
        return len(text)
    raise ValueError(f"unknown length unit {unit!r}; expected one of {UNITS}")


def _occurrences(text: str, keyword: str) -> int:
    if not keyword.strip():
        raise ValueError("empty keyword")
    return len(re.findall(rf"(?<!\w){re.escape(keyword)}(?!\w)", text, flags=re.IGNORECASE))


def _strip_fence(text: str) -> str:
    m = re.fullmatch(r"\s*```(?:json)?\s*\n(.*)\n\s*```\s*", text, flags=re.DOTALL)
    return m.group(1) if m else text


def _arg(c: Mapping[str, Any], key: str) -> Any:
    if key not in c:
        raise ValueError(f"constraint {dict(c)} needs {key!r}")
    return c[key]


def _int_arg(c: Mapping[str, Any], key: str) -> int:
    v = _arg(c, key)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"constraint {dict(c)}: {key!r} must be a non-negative integer")
    return v


def _check_format(c: Mapping[str, Any], text: str) -> bool:
    fmt = _arg(c, "format")
    if fmt == "json":
        try:
            json.loads(_strip_fence(text))
        except ValueError:
            return False
        return True
    if fmt == "bullets":
        bullets = [ln for ln in text.splitlines() if re.match(r"\s*[*-]\s+\S", ln)]
        return len(bullets) == _int_arg(c, "n")
    if fmt == "title":
        return re.search(r"<<[^<>\n]+>>", text) is not None
    if fmt == "no_commas":
        return "," not in text
    if fmt == "quoted":
        s = text.strip()
        return len(s) >= 2 and s[0] == '"' and s[-1] == '"'
    if fmt == "end_with":
        phrase = str(_arg(c, "phrase"))
        return text.rstrip().endswith(phrase.strip())
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")


def check_constraint(constraint: Mapping[str, Any], text: str) -> bool:
    """Whether ``text`` satisfies one constraint (the table in the module docstring)."""
    kind = constraint.get("type")
    if kind == "length":
        unit = _arg(constraint, "unit")
        return _relation(
            _count(text, unit), _arg(constraint, "relation"), _int_arg(constraint, "n")
        )
    if kind == "keyword":
        include = list(constraint.get("include", ()))
        exclude = list(constraint.get("exclude", ()))
        if not include and not exclude:
            raise ValueError(f"constraint {dict(constraint)} needs 'include' or 'exclude'")
        return all(_occurrences(text, k) > 0 for k in include) and not any(
            _occurrences(text, k) > 0 for k in exclude
        )
    if kind == "frequency":
        count = _occurrences(text, str(_arg(constraint, "keyword")))
        return _relation(count, _arg(constraint, "relation"), _int_arg(constraint, "n"))
    if kind == "case":
        case = _arg(constraint, "case")
        if case == "lower":
            return not any(ch.isupper() for ch in text)
        if case == "upper":
            return not any(ch.islower() for ch in text)
        raise ValueError(f"unknown case {case!r}: lower | upper")
    if kind == "format":
        return _check_format(constraint, text)
    raise ValueError(f"unknown constraint type {kind!r}; expected one of {TYPES}")


def validate_constraints(constraints: Any) -> list[Mapping[str, Any]]:
    """The constraint list, checked by running each on an empty string (ValueError if bad)."""
    if not isinstance(constraints, Sequence) or isinstance(constraints, str):
        raise ValueError(f"constraints must be a list of dicts, got {type(constraints).__name__}")
    out = []
    for c in constraints:
        if not isinstance(c, Mapping):
            raise ValueError(f"constraint {c!r} is not a dict")
        check_constraint(c, "")
        out.append(c)
    return out


class InstructionConstraintReward:
    """RLVR reward for verifiable instruction constraints (see the module docstring)."""

    def __init__(
        self, *, alpha: float = 1.0, partial: bool = False, name: str = "instruction-constraints"
    ) -> None:
        if alpha <= 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        self.alpha = float(alpha)
        self.partial = partial
        self.name = name

    def _one(self, problem: Problem, text: str) -> Score:
        raw = problem.meta.get("constraints")
        if not raw:
            return Score.ungraded(f"problem {problem.id!r} has no constraints in meta")
        constraints = validate_constraints(raw)
        passed = [check_constraint(c, text) for c in constraints]
        frac = sum(passed) / len(passed)
        value = self.alpha * (frac if self.partial else float(all(passed)))
        return Score(value, info={"passed": passed, "satisfied": frac})

    def score(self, problems: Sequence[Problem], candidates: Sequence[Candidate]) -> list[Score]:
        if len(problems) != len(candidates):
            raise ValueError(f"{len(problems)} problems for {len(candidates)} candidates")
        return [self._one(p, c.text) for p, c in zip(problems, candidates, strict=True)]
