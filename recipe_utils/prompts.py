"""Load the benchmark's scoring prompts and refuse files that would silently change them.

The prompt text is part of the benchmark: published accuracies were measured with exactly the
text in `prompts/`, so a file with a missing or misspelled key must stop the run, not fall back
to some default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .config import REPO_ROOT

PROMPTS_DIR = REPO_ROOT / "prompts"
REQUIRED_KEYS = ("system_prompt", "user_prompt")


class PromptError(ValueError):
    """A prompt file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Prompt:
    """The system and user text of one prompt file, kept verbatim."""

    system: str
    user: str
    path: Path


def load_prompt(path: str | Path) -> Prompt:
    """Read a prompt YAML file holding exactly the keys `system_prompt` and `user_prompt`."""
    path = Path(path)
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in PROMPTS_DIR.glob("*.yaml")))
        raise PromptError(f"{path}: no such prompt file; the course ships {known} in {PROMPTS_DIR}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PromptError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise PromptError(
            f"{path}: expected a mapping with keys {', '.join(REQUIRED_KEYS)}, "
            f"got {type(data).__name__}"
        )
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise PromptError(f"{path}: missing key(s) {', '.join(missing)}")
    unknown = sorted(set(data) - set(REQUIRED_KEYS))
    if unknown:
        raise PromptError(
            f"{path}: unknown key(s) {', '.join(map(str, unknown))}; "
            f"only {', '.join(REQUIRED_KEYS)} are read (a typo?)"
        )
    for key in REQUIRED_KEYS:
        if not isinstance(data[key], str) or not data[key].strip():
            raise PromptError(f"{path}: `{key}` must be non-empty text")
    return Prompt(system=data["system_prompt"], user=data["user_prompt"], path=path)
