"""Answer parsing: every consumer of model output relies on these verdicts."""

import pytest

from recipe_utils.answers import SCORES, follows_format, parse_answer

LONG_THOUGHT = "The ball falls, bounces and keeps its shape. " * 20_000  # about 900k characters

PARSE_CASES = [
    # the SFT target and the thinking template
    ("<answer>\n4\n</answer>", 4),
    ("<think>\nThe cup passes through the table.\n</think>\n\n<answer>\n1\n</answer>", 1),
    ("<answer>5</answer>", 5),
    ("<answer>  \n\t 3 \n\n </answer>", 3),
    ("<answer>\r\n2\r\n</answer>", 2),
    ("Score follows.\n<answer>\n2\n</answer>\nDone.", 2),
    ("<answer>04</answer>", 4),
    (f"<think>{LONG_THOUGHT}</think>\n\n<answer>\n3\n</answer>", 3),
    # no score stated exactly once in range: never guess
    ("4", None),
    ("The score is 4.", None),
    ("", None),
    ("<answer></answer>", None),
    ("<answer>\n \n</answer>", None),
    ("<answer>4.5</answer>", None),
    ("<answer>4.0</answer>", None),
    ("<answer>five</answer>", None),
    ("<answer>4/5</answer>", None),
    ("<answer>Score: 4</answer>", None),
    ("<answer>4 5</answer>", None),
    ("<answer>+4</answer>", None),
    ("<answer>-1</answer>", None),
    ("<answer>0</answer>", None),
    ("<answer>6</answer>", None),
    ("<answer>7</answer>", None),
    ("<answer>44</answer>", None),
    ("<answer>\u0664</answer>", None),  # Arabic-Indic four: not an ASCII digit
    ("<answer>4", None),
    ("4</answer>", None),
    ("</answer>4<answer>", None),
    ("<answer>4</answer><answer>5</answer>", None),
    ("<answer>4</answer><answer>4</answer>", None),
    ("<think>maybe <answer>3</answer></think><answer>4</answer>", None),
    ("<ANSWER>4</ANSWER>", None),
    (f"<think>{LONG_THOUGHT}", None),  # cut off by max_tokens before answering
    (None, None),
    (4, None),
    (b"<answer>4</answer>", None),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES)
def test_parse_answer(text, expected):
    assert parse_answer(text) == expected


def test_parse_answer_reads_every_score():
    assert [parse_answer(f"<answer>\n{score}\n</answer>") for score in SCORES] == list(SCORES)


FORMAT_CASES = [
    ("<think>\nfalls\n</think>\n\n<answer>\n4\n</answer>", True),
    ("<think>falls</think><answer>4</answer>", True),
    ("\n<think>falls</think>\n<answer>4</answer>\n\n", True),
    ("<think></think>\n\n<answer>4</answer>", True),
    ("<think>a < b and c > d</think>\n\n<answer>4</answer>", True),
    ("<think>falls</think>\n\n<answer>nonsense</answer>", True),  # content is accuracy's job
    (f"<think>{LONG_THOUGHT}</think>\n\n<answer>\n3\n</answer>", True),
    ("<answer>\n4\n</answer>", False),
    ("<think>falls</think>", False),
    ("<answer>4</answer>\n<think>falls</think>", False),
    ("Sure! <think>falls</think>\n\n<answer>4</answer>", False),
    ("<think>falls</think>\n\n<answer>4</answer> Hope this helps.", False),
    ("<think>falls</think> so <answer>4</answer>", False),
    ("<think>falls</think>\n\n<answer>4", False),
    ("<think>falls\n\n<answer>4</answer>", False),
    ("<think><think>falls</think></think>\n\n<answer>4</answer>", False),
    ("<think>falls</think>\n\n<answer>4</answer><answer>5</answer>", False),
    ("<think>maybe <answer>3</answer></think>\n\n<answer>4</answer>", False),
    ("", False),
    (None, False),
]


@pytest.mark.parametrize(("text", "expected"), FORMAT_CASES)
def test_follows_format(text, expected):
    assert follows_format(text) is expected
