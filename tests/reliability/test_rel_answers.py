"""Malformed model outputs: never a guessed score, never a crash, no reward for a bad answer."""

from __future__ import annotations

import pytest

from recipe_utils.answers import parse_answer
from recipe_utils.rewards import accuracy_reward, format_reward, total_reward

pytestmark = pytest.mark.reliability

REFERENCE = "<answer>\n3\n</answer>"
MEGABYTE = 1 << 20

MALFORMED = [
    ("no_tags", "3"),
    ("no_tags_sentence", "The score is 3."),
    ("two_answers", "<answer>3</answer><answer>3</answer>"),
    ("answer_inside_think", "<think><answer>3</answer></think><answer>3</answer>"),
    ("unclosed", "<answer>\n3\n"),
    ("reversed_tags", "</answer>3<answer>"),
    ("decimal", "<answer>3.0</answer>"),
    ("half", "<answer>3.5</answer>"),
    ("word", "<answer>three</answer>"),
    ("fraction", "<answer>3/5</answer>"),
    ("two_numbers", "<answer>3 4</answer>"),
    ("zero", "<answer>0</answer>"),
    ("six", "<answer>6</answer>"),
    ("negative", "<answer>-3</answer>"),
    ("fullwidth_digit", "<answer>\uff13</answer>"),
    ("empty_block", "<answer>\n</answer>"),
    ("empty_string", ""),
    ("long_number", "<answer>" + "3" * MEGABYTE + "</answer>"),
    ("long_no_tags", "3" * MEGABYTE),
    ("long_many_opens", "<answer>" * (MEGABYTE // 8) + "3</answer>"),
]


# Parsing speed on these inputs is measured in bench/ (`parsing`); the timeout here only stops a
# regex blow-up from hanging the suite, far above what any machine needs.
@pytest.mark.timeout(60)
@pytest.mark.parametrize("text", [c[1] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_answer_parses_to_none_and_earns_nothing(text):
    assert parse_answer(text) is None
    assert accuracy_reward(text, REFERENCE) == 0.0


@pytest.mark.parametrize("value", [None, 3, b"<answer>3</answer>"], ids=["none", "int", "bytes"])
def test_non_text_completion_earns_nothing(value):
    assert parse_answer(value) is None
    assert total_reward(value, REFERENCE) == 0.0


@pytest.mark.timeout(60)
def test_megabyte_of_thinking_before_one_answer_still_parses():
    text = "<think>" + "the ball falls " * (MEGABYTE // 15) + "</think>\n\n<answer>\n3\n</answer>"
    assert parse_answer(text) == 3
    assert total_reward(text, REFERENCE) == 2.0


def test_well_formed_wrong_answer_keeps_its_format_reward():
    text = "<think>it floats</think>\n\n<answer>\n5\n</answer>"
    assert (accuracy_reward(text, REFERENCE), format_reward(text, REFERENCE)) == (0.0, 1.0)


@pytest.mark.parametrize("reference", ["three", "<answer>7</answer>", "", True], ids=str)
def test_unreadable_reference_stops_training_naming_it(reference):
    with pytest.raises(ValueError, match=r"reference answer .* holds no score 1\.\.5"):
        accuracy_reward("<answer>3</answer>", reference)
