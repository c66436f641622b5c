"""Prompt formats shared by policies and the trainers that make them."""

from __future__ import annotations

PLAIN_PROMPT = "Question: {question}\nAnswer:\n"


def plain_prompt(question: str) -> str:
    """The prompt for models without a chat template (the tiny policy's training format).

    >>> plain_prompt("1 + 1?")
    'Question: 1 + 1?\\nAnswer:\\n'
    """
    return PLAIN_PROMPT.format(question=question)
