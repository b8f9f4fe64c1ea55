"""Course profiles: one YAML per profile (configs/smoke.yaml, configs/full.yaml).

A profile says which model, data and settings every notebook uses. Notebooks receive only the
profile name and a run folder from papermill and read the rest here, so a profile is the single
place where the CPU smoke course and the 8-GPU reproduction differ.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"
NOTEBOOK_DIR = REPO_ROOT / "notebooks"


class ConfigError(ValueError):
    """A profile or override the course cannot use; the message names the key at fault."""


def profile_path(profile: str | Path) -> Path:
    """A profile name (`smoke`) or a path to a YAML file."""
    path = Path(profile)
    if path.suffix in {".yaml", ".yml"}:
        return path
    path = CONFIG_DIR / f"{profile}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown profile {profile!r}: expected one of {known} or a .yaml path")
    return path


def merge(base: dict, overrides: dict, where: str = "") -> dict:
    """Deep-merge `overrides` into a copy of `base`; a key `base` lacks is an error, not a typo kept."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        name = f"{where}{key}"
        if key not in merged:
            raise ConfigError(f"unknown setting {name!r}; known here: {sorted(merged)}")
        if isinstance(merged[key], dict) != isinstance(value, dict) and merged[key] is not None:
            kind = "a section" if isinstance(merged[key], dict) else "a single value"
            raise ConfigError(f"setting {name!r} is {kind}; got {value!r}")
        if isinstance(merged[key], dict):
            merged[key] = merge(merged[key], value, f"{name}.")
        else:
            merged[key] = value
    return merged


def load_config(profile: str | Path = "smoke", overrides: dict | None = None) -> dict[str, Any]:
    """Load a profile and apply overrides (nested dict or dotted keys like `sft.steps`)."""
    path = profile_path(profile)
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a profile must be a mapping of sections")
    nested: dict = {}
    for key, value in (overrides or {}).items():
        *parents, leaf = key.split(".")
        target = nested
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return merge(config, nested)


def run_dir(config: dict, override: str | Path | None = None) -> Path:
    """The folder a course run writes to, created on demand; relative paths are from the repo."""
    path = repo_path(override or config["run_dir"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def repo_path(path: str | Path) -> Path:
    """A path from a profile: relative ones are relative to the repository."""
    path = Path(path)
    return path if path.is_absolute() else REPO_ROOT / path
