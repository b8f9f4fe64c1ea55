"""Read a model's answer: the one place that turns generated text into a 1..5 score (and
finds the reasoning before it).

Scoring, metrics and both GRPO executors call these functions, so a response means the same
thing everywhere. The rules are strict on purpose: a response that does not state exactly one
score in range is a parse failure, reported as such, never a guess.
"""

from __future__ import annotations

import re

SCORES = (1, 2, 3, 4, 5)  # VideoPhy-2 `pc`: 1 no adherence ... 5 perfect adherence to physics

_ANSWER_TAGS = ("<answer>", "</answer>")
_THINK_TAGS = ("<think>", "</think>")
_TEMPLATE_TAGS = (*_THINK_TAGS, *_ANSWER_TAGS)
_ANSWER_BODY = re.compile(r"<answer>(.*)</answer>", re.DOTALL)
_SCORE = re.compile(r"0*([1-5])")  # ASCII digits only; leading zeros allowed, nothing else
_TEMPLATE = re.compile(r"\s*<think>.*</think>\s*<answer>.*</answer>\s*", re.DOTALL)
_THINK_BODY = re.compile(r"<think>(.*)</think>", re.DOTALL)


def parse_answer(text: str) -> int | None:
    """The score inside the response's single `<answer>...</answer>` block, or None.

    Whitespace and newlines around the number are fine, and so is any text outside the block
    (a `<think>` block, a preamble). None for: no block, more than one block, an unclosed
    block, an empty block, anything but a plain integer ("4.5", "five", "4/5"), or an integer
    outside 1..5.
    """
    if not isinstance(text, str):
        return None
    if any(text.count(tag) != 1 for tag in _ANSWER_TAGS):
        return None
    match = _ANSWER_BODY.search(text)
    if match is None:  # the closing tag comes before the opening one
        return None
    score = _SCORE.fullmatch(match.group(1).strip())
    return int(score.group(1)) if score else None


def follows_format(text: str) -> bool:
    """True for a `<think>...</think>` block followed by an `<answer>...</answer>` block.

    Whitespace may surround and separate the two blocks; nothing else may. Each tag must occur
    exactly once, so a response with a second answer (even one inside the think block) fails.
    This agrees with cosmos-rl's `format_reward_fn` on the canonical layout
    `<think>...</think>\\n\\n<answer>...</answer>`; it is more lenient about whitespace (cosmos-rl
    wants exactly a blank line between the blocks and none before) and stricter about repeated
    tags (cosmos-rl accepts them). The content of the blocks is not checked here: a format-correct
    response with a bad score still earns its format reward and loses its accuracy reward.
    """
    if not isinstance(text, str):
        return False
    if any(text.count(tag) != 1 for tag in _TEMPLATE_TAGS):
        return False
    return _TEMPLATE.fullmatch(text) is not None


def think_block(text: str) -> str | None:
    """The text inside the response's single `<think>...</think>` block, stripped, or None
    (no block, more than one, or tags out of order), by the same rule as `parse_answer`."""
    if not isinstance(text, str) or any(text.count(tag) != 1 for tag in _THINK_TAGS):
        return None
    match = _THINK_BODY.search(text)
    return match.group(1).strip() if match else None
