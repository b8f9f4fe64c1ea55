"""Course profiles: one YAML per profile (configs/smoke.yaml, configs/full.yaml).

A profile says which model, data and settings every notebook uses. Notebooks receive the
profile name, a run folder and optional overrides (`{"sft.lr": 1e-4}`) from papermill and read
the rest here, so a profile is the single place where the CPU smoke course and the 8-GPU
reproduction differ, and an override is checked against it before anything runs.
"""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"
NOTEBOOK_DIR = REPO_ROOT / "notebooks"


SETTINGS_FILE = "settings.yaml"
STAGES = {"sft": "03_sft", "grpo": "04_grpo"}  # trained stage -> notebook folder of its metrics


class UserError(Exception):
    """A mistake in what was asked for, or a step not run yet. The message says what to do, so
    a notebook shows it alone, in one line as the command line does, instead of a traceback
    through the package (IPython prints what `_render_traceback_` returns)."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class ConfigError(UserError, ValueError):
    """A profile or override the course cannot use; the message names the key at fault."""


class NotRunYet(UserError, FileNotFoundError):
    """What an earlier notebook or stage writes is missing; the message names which to run."""


class _Loader(yaml.SafeLoader):
    """YAML as profiles and overrides are written: `1e-4` is a number (PyYAML alone reads a
    string unless the mantissa has a dot), so `--set sft.lr=1e-4` sets a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+.0123456789"),
)


def parse_value(text: str) -> Any:
    """A setting's value as typed on a command line or in a papermill parameter (YAML)."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot read {text!r} as a value ({exc})") from exc


def parse_overrides(overrides: dict | str | None) -> dict:
    """Overrides as a dict; a string is YAML or JSON (`papermill -p OVERRIDES '{...}'` passes
    one)."""
    if isinstance(overrides, str):
        overrides = parse_value(overrides)
    if overrides is None:
        return {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"overrides must map settings to values, got {overrides!r}")
    return overrides


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
            known = ", ".join(f"{where}{k}" for k in sorted(merged))
            raise ConfigError(f"unknown setting {name!r}; known here: {known}")
        if isinstance(merged[key], dict) != isinstance(value, dict) and merged[key] is not None:
            kind = "a section" if isinstance(merged[key], dict) else "a single value"
            raise ConfigError(f"setting {name!r} is {kind}; got {value!r}")
        check_type(name, merged[key], value)
        if isinstance(merged[key], dict):
            merged[key] = merge(merged[key], value, f"{name}.")
        else:
            merged[key] = value
    return merged


KINDS = ((bool, "a flag"), ((int, float), "a number"), (str, "text"), (list, "a list"))


def kind(value: Any) -> str:
    return next((label for types, label in KINDS if isinstance(value, types)), type(value).__name__)


def check_type(name: str, old: Any, new: Any) -> None:
    """A number stays a number and a flag a flag, so a typo fails here, not hours into a run."""
    if old is not None and new is not None and kind(old) != kind(new):
        raise ConfigError(f"setting {name!r} is {kind(old)} ({old!r} in the profile); got {new!r}")


INJECTED_CELL = "# Parameters"  # how papermill's injected cell begins
# what a notebook parameter of each declared type may also be given as
ALSO_ACCEPTED: dict[type, tuple[type, ...]] = {float: (int,), dict: (str,)}  # dict: JSON text


def injected_parameters(namespace: dict[str, Any]) -> set[str]:
    """The names papermill's injected cell assigns, read from the kernel's input history (`In`,
    where IPython keeps every cell it ran): the newest cell that starts as papermill writes it,
    `# Parameters`. Outside IPython, or with no injected cell, none. Papermill's own
    `PM_*` names (`--inject-paths`) are left out."""
    for source in reversed(namespace.get("In") or []):
        if source.startswith(INJECTED_CELL):
            tree = ast.parse(source)
            return {
                target.id
                for node in tree.body
                if isinstance(node, ast.Assign)
                for target in node.targets
                if isinstance(target, ast.Name) and not target.id.startswith("PM_")
            }
    return set()


def check_parameters(namespace: dict[str, Any]) -> None:
    """Each parameter papermill passed is one the notebook's parameters cell declares
    (`NAME: type = default`), and each declared one holds a value of its type. Papermill only
    warns of a name the cell lacks (`-p STEPS 10`), and the notebook then runs for minutes
    with the default; `-p N_EXAMPLES abc` passes text where a number belongs, which would fail
    cells later under an error that names no parameter."""
    declared = namespace.get("__annotations__", {})
    unknown = sorted(injected_parameters(namespace) - set(declared))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {unknown}; this notebook's parameters: {sorted(declared)}"
        )
    for name, kind in declared.items():
        value = namespace.get(name)
        if not isinstance(value, (kind, *ALSO_ACCEPTED.get(kind, ()))):
            raise ConfigError(
                f"parameter {name} must be {kind.__name__}, got {value!r} ({type(value).__name__})"
            )


def load_config(
    profile: str | Path = "smoke", overrides: dict | str | None = None
) -> dict[str, Any]:
    """Load a profile and apply overrides (nested dict or dotted keys like `sft.steps`, or the
    same as YAML/JSON text)."""
    path = profile_path(profile)
    try:
        config = yaml.load(path.read_text(), Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a profile must be a mapping of sections")
    return with_overrides(config, overrides)


def with_overrides(config: dict, overrides: dict | str | None) -> dict[str, Any]:
    """A copy of `config` with overrides applied, each checked against it: a notebook derives a
    variant of its run this way and keeps the settings the run was given."""
    nested: dict = {}
    for key, value in parse_overrides(overrides).items():
        *parents, leaf = key.split(".")
        target = nested
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return merge(config, nested)


def run_dir(config: dict, override: str | Path | None = None, create: bool = True) -> Path:
    """The folder a course run writes to, created on demand (unless `create` is False, for a
    notebook that only reads a run); relative paths are from the repo.

    The folder records the settings it runs with (`settings.yaml`), and refuses other ones:
    stages reuse what is on disk, so a second set of settings would mix two runs in one folder.
    """
    path = repo_path(override or config["run_dir"])
    if not create and read_settings(path) is None:
        raise NotRunYet(f"{path} holds no course run: run the earlier notebooks into it first")
    path.mkdir(parents=True, exist_ok=True)
    record_settings(path, config)
    return path


def run_settings(config: dict) -> dict:
    """What a run folder records: every setting but the folder itself, which may move."""
    return {key: value for key, value in config.items() if key != "run_dir"}


def read_settings(folder: Path) -> dict | None:
    """The settings a run folder recorded, or None for a folder no run has written."""
    path = Path(folder) / SETTINGS_FILE
    return yaml.load(path.read_text(), Loader=_Loader) if path.exists() else None


def flat(tree: dict, where: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values: {"sft": {"lr": 1e-3}} -> {"sft.lr": 1e-3}."""
    leaves = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            leaves |= flat(value, f"{where}{key}.")
        else:
            leaves[f"{where}{key}"] = value
    return leaves


def record_settings(folder: Path, config: dict) -> None:
    """Write the folder's settings.yaml, or check that it matches: one run, one set of settings."""
    settings = run_settings(config)
    recorded = read_settings(folder)
    if recorded is None:
        (folder / SETTINGS_FILE).write_text(yaml.safe_dump(settings, sort_keys=False))
        return
    old, new = flat(recorded), flat(settings)
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if changed:
        what = ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed[:5])
        raise ConfigError(
            f"{folder} holds a run with other settings ({what}); choose another run folder, "
            f"or delete it to start over"
        )


def repo_path(path: str | Path) -> Path:
    """A path from a profile: relative ones are relative to the repository."""
    path = Path(path)
    return path if path.is_absolute() else REPO_ROOT / path
