"""GRPO rewards, defined once for the in-process trainer and the cosmos-rl entry script.

Each reward follows cosmos-rl's calling convention, `fn(completion, reference, **kwargs) ->
float`, where `reference` is the dataset's reference answer: the SFT assistant turn
("<answer>\\n4\\n</answer>") or a bare score ("4"). cosmos-rl adds the rewards of `REWARD_FNS`
together, which is `total_reward` here.
"""

from __future__ import annotations

from recipe_utils.answers import follows_format, parse_answer


def parse_reference(reference: str | int) -> int:
    """The true score of a reference answer; raises ValueError when it holds none.

    An unreadable reference is a bug in the dataset, not a model failure, so it must stop
    training instead of silently rewarding every rollout with 0.
    """
    if isinstance(reference, int) and not isinstance(reference, bool):
        reference = str(reference)
    score = None
    if isinstance(reference, str):
        text = reference if "<answer>" in reference else f"<answer>{reference}</answer>"
        score = parse_answer(text)
    if score is None:
        raise ValueError(
            f"reference answer {str(reference)[:200]!r} holds no score 1..5; expected "
            "'<answer>\\n4\\n</answer>' or '4'. Check the assistant turn of this dataset row."
        )
    return score


def accuracy_reward(completion: str, reference: str, **kwargs) -> float:
    """1.0 for the true score, 0.5 for one off, 0.0 otherwise or when unparseable.

    The half reward for a near miss keeps a learning signal on a 1..5 scale where humans
    themselves often disagree by one.
    """
    truth = parse_reference(reference)
    prediction = parse_answer(completion)
    if prediction is None:
        return 0.0
    distance = abs(prediction - truth)
    if distance == 0:
        return 1.0
    return 0.5 if distance == 1 else 0.0


def format_reward(completion: str, reference: str, **kwargs) -> float:
    """1.0 when the response is a think block followed by an answer block, else 0.0."""
    return 1.0 if follows_format(completion) else 0.0


REWARD_FNS = [accuracy_reward, format_reward]


def total_reward(completion: str, reference: str, **kwargs) -> float:
    """Accuracy plus format reward (0.0 to 2.0): the sum cosmos-rl takes over `REWARD_FNS`."""
    return sum(fn(completion, reference, **kwargs) for fn in REWARD_FNS)
