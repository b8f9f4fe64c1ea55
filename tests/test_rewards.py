"""GRPO rewards: what both executors pay a rollout, and agreement with cosmos-rl's format rule."""

import pytest

from recipe_utils.rewards import (
    REWARD_FNS,
    accuracy_reward,
    format_reward,
    parse_reference,
    total_reward,
)

THINK = "<think>\nThe glass shatters before it touches the floor.\n</think>\n\n"
REFERENCE = "<answer>\n3\n</answer>"

REWARD_CASES = [
    # completion, accuracy reward, format reward (reference score 3)
    (THINK + "<answer>\n3\n</answer>", 1.0, 1.0),
    (THINK + "<answer>\n4\n</answer>", 0.5, 1.0),
    (THINK + "<answer>\n2\n</answer>", 0.5, 1.0),
    (THINK + "<answer>\n5\n</answer>", 0.0, 1.0),
    (THINK + "<answer>\n1\n</answer>", 0.0, 1.0),
    ("<answer>\n3\n</answer>", 1.0, 0.0),
    ("<answer>\n4\n</answer>", 0.5, 0.0),
    (THINK + "<answer>\nthree\n</answer>", 0.0, 1.0),
    (THINK + "<answer>\n3.5\n</answer>", 0.0, 1.0),
    (THINK + "<answer>\n9\n</answer>", 0.0, 1.0),
    (THINK + "<answer>\n3\n</answer><answer>\n3\n</answer>", 0.0, 0.0),
    (THINK + "<answer>\n3", 0.0, 0.0),
    (THINK, 0.0, 0.0),
    ("3", 0.0, 0.0),
    ("", 0.0, 0.0),
]


@pytest.mark.parametrize(("completion", "accuracy", "fmt"), REWARD_CASES)
def test_rewards_on_completions(completion, accuracy, fmt):
    assert accuracy_reward(completion, REFERENCE) == accuracy
    assert format_reward(completion, REFERENCE) == fmt
    assert total_reward(completion, REFERENCE) == accuracy + fmt


@pytest.mark.parametrize("reference", ["<answer>\n3\n</answer>", "3", " 3\n", 3])
def test_reference_forms_agree(reference):
    assert parse_reference(reference) == 3
    assert accuracy_reward(THINK + "<answer>3</answer>", reference) == 1.0


@pytest.mark.parametrize("reference", ["", "three", "<answer>\n\n</answer>", "0", "6", None, True])
def test_bad_reference_is_a_data_error(reference):
    with pytest.raises(ValueError, match="reference answer") as info:
        accuracy_reward(THINK + "<answer>3</answer>", reference)
    assert repr(str(reference)) in str(info.value)  # names the row's reference


def test_cosmos_rl_keyword_arguments_are_accepted():
    kwargs = {"prompt": "p", "data_packer": None, "config": None, "tokenizer": None}
    for reward_fn in REWARD_FNS:
        assert isinstance(reward_fn(THINK + "<answer>3</answer>", REFERENCE, **kwargs), float)
    assert total_reward(THINK + "<answer>3</answer>", REFERENCE, **kwargs) == 2.0


def test_registered_rewards_are_accuracy_then_format():
    assert REWARD_FNS == [accuracy_reward, format_reward]


# Completions where both format rules must agree: the canonical layout the prompt asks for and
# the usual ways a model breaks it.
AGREED_FORMAT_CASES = [
    THINK + "<answer>\n4\n</answer>",
    THINK + "<answer>\n4\n</answer>\n",
    "<think></think>\n\n<answer>4</answer>",
    "<think>a < b, so it rolls</think>\n\n<answer>\n2\n</answer>",
    THINK + "<answer>\nfour\n</answer>",
    "<answer>\n4\n</answer>",
    "<think>falls</think>",
    "<answer>4</answer>\n\n<think>falls</think>",
    "Sure! " + THINK + "<answer>4</answer>",
    THINK + "<answer>4</answer> Hope this helps.",
    THINK + "<answer>4",
    "<think>falls\n\n<answer>4</answer>",
    "<think><think>falls</think></think>\n\n<answer>4</answer>",
    "",
]

# Where the rules differ on purpose; cosmos-rl's verdict is listed second. Ours allows any
# whitespace around and between the blocks (cosmos-rl wants exactly "\n\n" between and nothing
# before), and ours refuses repeated answer tags, which cosmos-rl's lazy answer group accepts.
KNOWN_FORMAT_DIFFERENCES = [
    ("\n" + THINK + "<answer>4</answer>", 1.0, 0.0),
    ("<think>falls</think>\n<answer>4</answer>", 1.0, 0.0),
    ("<think>falls</think><answer>4</answer>", 1.0, 0.0),
    (THINK + "<answer>4</answer>\n\n", 1.0, 0.0),
    (THINK + "<answer>4</answer><answer>5</answer>", 0.0, 1.0),
    ("<think>maybe <answer>3</answer></think>\n\n<answer>4</answer>", 0.0, 1.0),
]


@pytest.mark.slow
def test_format_reward_agrees_with_cosmos_rl():
    reward = pytest.importorskip(
        "cosmos_rl.dispatcher.algo.reward", reason="cosmos-rl (extra `train`) is not installed"
    )
    for completion in AGREED_FORMAT_CASES:
        ours = format_reward(completion, REFERENCE)
        assert ours == reward.format_reward_fn(completion, REFERENCE), completion
    for completion, ours, theirs in KNOWN_FORMAT_DIFFERENCES:
        assert format_reward(completion, REFERENCE) == ours, completion
        assert reward.format_reward_fn(completion, REFERENCE) == theirs, completion
