"""cosmos-rl entry script for GRPO: `cosmos-rl --config grpo.toml THIS_FILE`.

cosmos-rl runs this file in every process it starts. It hands cosmos-rl a dataset factory and
the rewards of `recipe_utils.rewards` (the ones the in-process GRPO trainer uses). Item `i` is
the prompt (system and user turns, no answer) that the rollout workers complete; the reward
functions compare each completion with `get_reference_answer(i)`, the human score's answer turn.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    # `python recipe_utils/cosmos_entry_grpo.py` puts recipe_utils/ first on sys.path, where our
    # cosmos_rl.py would shadow the cosmos_rl package: put the repository root there instead.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from recipe_utils.cosmos_rl import ConversationDataset
from recipe_utils.rewards import REWARD_FNS


class GRPOPrompts(ConversationDataset):
    """Item `i` is row `i`'s prompt turns; its answer turn is the reference for the rewards."""

    def __getitem__(self, index: int) -> list[dict]:
        return self.messages(index)[:-1]

    def get_reference_answer(self, index: int) -> str:
        """The assistant turn, e.g. "<answer>\\n4\\n</answer>" (cosmos-rl calls this by name)."""
        return self.conversations[index][-1]["content"]


def main() -> None:
    from cosmos_rl.launcher.worker_entry import main as run_worker

    # cosmos-rl adds up the rewards of all functions: accuracy (0, 0.5, 1) + format (0, 1)
    run_worker(dataset=GRPOPrompts.from_config, reward_fns=list(REWARD_FNS))


if __name__ == "__main__":
    main()
