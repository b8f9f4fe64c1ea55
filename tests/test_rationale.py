"""Measuring a generated think block against the clip's annotated violations."""

import pytest

from recipe_utils.answers import think_block
from recipe_utils.metrics import rationale_counts, rationale_metrics
from recipe_utils.synthetic import EVIDENCE
from recipe_utils.videophy2 import NO_VIOLATION, answer_text, rationale

HOVER, SINK, SWELL = EVIDENCE["hover"], EVIDENCE["sink"], EVIDENCE["resize"]


def target(pc: int, violations: list[str]) -> str:
    """The SFT target a clip with these violations gets: what a perfect model writes."""
    return answer_text(pc, rationale({"pc": pc, "human_violated_rules": violations}))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>\n1. a\n</think>\n\n<answer>3</answer>", "1. a"),
        ("<answer>3</answer>", None),
        ("<think>a</think><think>b</think><answer>3</answer>", None),
        ("</think>a<think><answer>3</answer>", None),
        (None, None),
    ],
)
def test_think_block_is_the_single_reasoning_block(text, expected):
    assert think_block(text) == expected


def test_a_target_written_for_the_clip_names_every_violation_and_no_other():
    assert rationale_counts(target(3, [HOVER, SINK]), [HOVER, SINK]) == (2, 2, 2)
    assert rationale_counts(target(5, []), []) == (0, 0, 0)


def test_counts_are_over_distinct_kinds_whatever_the_spelling():
    response = answer_text(3, f"1. {HOVER.lower().rstrip('.')}\n2.  {HOVER}\n3. A made-up one.")
    assert rationale_counts(response, [HOVER, SINK]) == (1, 2, 2)


def test_precision_and_recall_pool_every_response_to_an_annotated_clip():
    records = [
        {"id": "a", "raw": [answer_text(2, f"1. {SINK}\n2. {SWELL}")]},  # 1 of 2 right
        {"id": "b", "raw": ["<answer>4</answer>"]},  # no think block: lists nothing
        {"id": "c", "raw": [target(5, [])]},  # rightly lists nothing
        {"id": "d", "raw": [], "error": "broken video"},  # not scored: left out
        {"id": "e", "raw": [target(4, [HOVER])]},  # no annotation known: left out
    ]
    annotated = {"a": [SINK, HOVER], "b": [HOVER], "c": [], "d": [HOVER]}
    metrics = rationale_metrics(records, annotated)
    assert metrics == {
        "precision": 1 / 2,
        "recall": 1 / 3,
        "n_responses": 3,
        "n_without_think": 1,
    }


def test_nothing_listed_or_annotated_leaves_the_ratio_undefined():
    metrics = rationale_metrics([{"id": "c", "raw": [answer_text(5, NO_VIOLATION)]}], {"c": []})
    assert metrics["precision"] is None and metrics["recall"] is None
    assert rationale_metrics([], {})["n_responses"] == 0
