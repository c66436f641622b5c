"""Step segmentation: one small pluggable function per format, recorded with each candidate.

A segmenter maps a solution text to its steps. The name of the segmenter used is stored in
``Candidate.segmentation`` so that scores can be reproduced later.

>>> segment("12 + 5 = 17\\nThe answer is 17.", "lines")
('12 + 5 = 17', 'The answer is 17.')
>>> segment("First.\\n\\nSecond\\nline.", "paragraphs")
('First.', 'Second\\nline.')
"""

from __future__ import annotations

import re
from collections.abc import Callable

Segmenter = Callable[[str], tuple[str, ...]]


def split_lines(text: str) -> tuple[str, ...]:
    """One step per non-blank line (the testbed's format)."""
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def split_paragraphs(text: str) -> tuple[str, ...]:
    """One step per blank-line-separated paragraph (default for real model output)."""
    return tuple(p.strip() for p in re.split(r"\n\s*\n", text) if p.strip())


SEGMENTERS: dict[str, Segmenter] = {"lines": split_lines, "paragraphs": split_paragraphs}


def get_segmenter(name: str) -> Segmenter:
    """Look a segmenter up by name, with a clear error naming the choices."""
    try:
        return SEGMENTERS[name]
    except KeyError:
        raise ValueError(
            f"unknown step segmentation {name!r}; choose one of {sorted(SEGMENTERS)}"
        ) from None


def segment(text: str, name: str = "lines") -> tuple[str, ...]:
    """Split ``text`` into steps with the named segmenter."""
    return get_segmenter(name)(text)
