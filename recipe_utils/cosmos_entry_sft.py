"""cosmos-rl entry script for supervised fine-tuning: `cosmos-rl --config sft.toml THIS_FILE`.

cosmos-rl runs this file in every process it starts. It hands cosmos-rl a dataset factory
(cosmos-rl calls it with its Config, only in the processes that read data); each item is one
whole conversation (system, user with the video, assistant answer), which cosmos-rl's default
Qwen2.5-VL data packer tokenizes, training on the assistant turn only.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    # `python recipe_utils/cosmos_entry_sft.py` puts recipe_utils/ first on sys.path, where our
    # cosmos_rl.py would shadow the cosmos_rl package: put the repository root there instead.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from recipe_utils.cosmos_rl import ConversationDataset


class SFTConversations(ConversationDataset):
    """Item `i` is row `i`'s full conversation, answer included: the SFT target."""

    def __getitem__(self, index: int) -> list[dict]:
        return self.messages(index)


def main() -> None:
    from cosmos_rl.launcher.worker_entry import main as run_worker

    run_worker(dataset=SFTConversations.from_config)


if __name__ == "__main__":
    main()
