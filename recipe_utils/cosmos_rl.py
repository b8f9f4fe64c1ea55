"""Run the recipe's 8-GPU SFT and GRPO with cosmos-rl: write the TOML, check the machine, launch.

cosmos-rl starts one process per role (controller, policy, rollout) and each of them runs our
entry script (`recipe_utils/cosmos_entry_sft.py` or `cosmos_entry_grpo.py`), which hands it a
dataset and, for GRPO, the reward functions of `recipe_utils.rewards`. The datasets read the
conversation datasets of `recipe_utils.videophy2.prepare`, so the in-process trainers and
cosmos-rl train on the same rows. cosmos-rl itself (the `train` extra) is imported only inside
the functions that need it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import toml
import torch
from torch.utils.data import Dataset

from recipe_utils.config import CONFIG_DIR, repo_path
from recipe_utils.prompts import load_prompt
from recipe_utils.videophy2 import VIDEO_KEYS, load_conversations

from .progress import tqdm

TEMPLATE_DIR = CONFIG_DIR / "cosmos_rl"
KINDS = ("sft", "grpo")
INSTALL_HINT = "install the `train` extra: pip install -e .[train]"
# cosmos-rl 0.4.7's defaults for [policy.parallelism] / [rollout.parallelism]
# (ParallelismConfig); tests/test_cosmos_rl.py checks them against the installed cosmos-rl.
PARALLELISM_DEFAULTS = {
    "n_init_replicas": 1,
    "tp_size": 2,
    "cp_size": 1,
    "pp_size": 1,
    "dp_shard_size": 1,
    "dp_replicate_size": 1,
}
COLOCATED_MODES = ("colocated", "colocated_separated")
EXPORT_STEP = re.compile(r"step_(\d+)")


class CosmosConfigError(ValueError):
    """A cosmos-rl configuration we refuse to write or launch; the message names the key."""


# ----------------------------------------------------------------------------- configuration


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def load_template(kind: str) -> dict[str, Any]:
    """The recipe's configuration for `kind` (configs/cosmos_rl/{kind}.toml) as a dict."""
    _check_kind(kind)
    return toml.load(TEMPLATE_DIR / f"{kind}.toml")


def apply_overrides(config: dict, overrides: dict[str, Any], where: str) -> dict:
    """A copy of `config` with dotted-key overrides set; `where` names the template in errors.

    A key the template lacks is a typo until proven otherwise (cosmos-rl ignores unknown keys
    silently), so only keys under `custom.` may be new: they are ours, read by the entry scripts.
    """
    result = copy.deepcopy(config)
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        is_custom = key.startswith("custom.")
        node = result
        for depth, part in enumerate(parents):
            if part not in node and is_custom:
                node[part] = {}
            if not isinstance(node.get(part), dict):
                prefix = ".".join(parents[: depth + 1])
                raise CosmosConfigError(
                    f"override {key!r}: {where} has no table {prefix!r}; only keys under "
                    "`custom.` may be new. Add the key to the template if cosmos-rl supports it."
                )
            node = node[part]
        if leaf not in node and not is_custom:
            raise CosmosConfigError(
                f"override {key!r}: {where} has no such key; known here: {sorted(node)}. "
                "Only keys under `custom.` may be new."
            )
        if isinstance(node.get(leaf), dict):
            raise CosmosConfigError(
                f"override {key!r} names a table; set its keys one by one, "
                f"e.g. {key}.{next(iter(node[leaf]), 'KEY')}"
            )
        node[leaf] = value
    return result


def validate(config: dict, where: str) -> Any:
    """cosmos-rl's own validation (`Config.from_dict`); returns its Config object."""
    try:
        from cosmos_rl.policy.config import Config
    except ImportError as exc:
        raise ImportError(f"cosmos-rl is not installed: {INSTALL_HINT}") from exc
    # from_dict edits its argument (it appends a timestamp to train.output_dir): give it a copy.
    try:
        return Config.from_dict(copy.deepcopy(config))
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise CosmosConfigError(f"{where}: cosmos-rl rejects this configuration: {exc}") from exc


def write_config(kind: str, out_path: str | Path, overrides: dict[str, Any] | None = None) -> Path:
    """Write the recipe's cosmos-rl TOML for `kind` with dotted-key overrides, validated.

    Example: `write_config("sft", "runs/sft.toml", {"policy.model_name_or_path": "/ckpt",
    "train.output_dir": "runs/sft", "custom.dataset.path": "runs/data/train"})`.
    """
    where = f"configs/cosmos_rl/{kind}.toml"
    config = apply_overrides(load_template(kind), overrides or {}, where)
    validate(config, where)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Written by recipe_utils.cosmos_rl.write_config from {where}\n"
    out_path.write_text(header + toml.dumps(config), encoding="utf-8")
    return out_path


def _parallelism(config: dict, role: str) -> dict[str, int]:
    return {**PARALLELISM_DEFAULTS, **config.get(role, {}).get("parallelism", {})}


def _replica_gpus(parallelism: dict[str, int], sizes: tuple[str, ...]) -> int:
    gpus = 1
    for name in sizes:
        # dp_shard_size = -1 means "infer from the GPUs given"; cosmos-rl's launcher counts it as 1
        gpus *= max(parallelism[name], 1)
    return gpus


def required_gpus(config: dict) -> int:
    """GPUs a cosmos-rl job needs on start: policy replicas plus, for GRPO, rollout replicas.

    A policy replica takes tp x dp_replicate x pp x cp x dp_shard GPUs and a rollout replica
    tp x pp x dp_shard; missing keys take cosmos-rl's defaults (tp_size is 2 there). SFT and
    the colocated modes (rollouts share the policy's GPUs) need no rollout GPUs.
    """
    policy = _parallelism(config, "policy")
    gpus = policy["n_init_replicas"] * _replica_gpus(
        policy, ("tp_size", "dp_replicate_size", "pp_size", "cp_size", "dp_shard_size")
    )
    # cosmos-rl's launcher treats a missing train_policy.type as GRPO
    kind = config.get("train", {}).get("train_policy", {}).get("type", "grpo")
    if kind != "sft" and config.get("mode", "disaggregated") not in COLOCATED_MODES:
        rollout = _parallelism(config, "rollout")
        gpus += rollout["n_init_replicas"] * _replica_gpus(
            rollout, ("tp_size", "pp_size", "dp_shard_size")
        )
    return gpus


# ----------------------------------------------------------------------------- launching


def entry_script(kind: str) -> Path:
    """The file cosmos-rl runs in each of its processes for `kind`."""
    _check_kind(kind)
    return Path(__file__).with_name(f"cosmos_entry_{kind}.py")


def _read_launch_config(kind: str, config_path: Path) -> dict:
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: no such cosmos-rl config; write it first")
    config = toml.load(config_path)
    found = config.get("train", {}).get("train_policy", {}).get("type")
    if found != kind:
        raise CosmosConfigError(
            f"{config_path}: train.train_policy.type is {found!r} but launch was asked for "
            f"{kind!r}; write it with write_config({kind!r}, ...)"
        )
    return config


def _check_machine(config: dict, config_path: Path) -> str:
    """The path of the `cosmos-rl` program, once everything the job needs is found."""
    program = shutil.which("cosmos-rl")
    if program is None:
        raise RuntimeError(
            f"`cosmos-rl` is not on PATH: {INSTALL_HINT} and run from that environment"
        )
    if shutil.which("redis-server") is None:
        raise RuntimeError(
            "`redis-server` is not on PATH; cosmos-rl's controller starts it itself. Install "
            "it: `apt-get install redis-server` or `conda install -c conda-forge redis`"
        )
    needed, found = required_gpus(config), torch.cuda.device_count()
    if found < needed:
        raise RuntimeError(
            f"{config_path} needs {needed} GPUs but {found} are visible; run on a machine with "
            f"{needed} GPUs or lower [policy.parallelism] / [rollout.parallelism] "
            "(for one GPU: SFT with tp_size = 1 and dp_shard_size = 1)"
        )
    return program


def launch(kind: str, config_path: str | Path, log_path: str | Path | None = None) -> int:
    """Run `cosmos-rl --config CONFIG ENTRY_SCRIPT`, echoing its output; return its exit code.

    Each line goes to stdout as it comes (and to `log_path` when given), so a notebook cell shows
    a live log. Interrupting the cell stops cosmos-rl too.
    """
    config_path = Path(config_path)
    config = _read_launch_config(kind, config_path)
    program = _check_machine(config, config_path)
    command = [program, "--config", str(config_path), str(entry_script(kind))]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # workers' lines arrive as they are printed
    # Its own process group: cosmos-rl's launcher does not pass SIGTERM on to the controller and
    # workers it starts, so an interrupt stops the whole group.
    with (
        _log_file(log_path) as log,
        subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=env,
            start_new_session=True,
        ) as process,
    ):
        try:
            for line in process.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                if log is not None:
                    log.write(line)
                    log.flush()
        except BaseException:  # an interrupted cell must not leave 8 GPUs busy
            with contextlib.suppress(ProcessLookupError):  # the group has already exited
                os.killpg(process.pid, signal.SIGTERM)
            raise
    return process.returncode


def _log_file(log_path: str | Path | None) -> contextlib.AbstractContextManager:
    if log_path is None:
        return contextlib.nullcontext()
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    return open(log_path, "w", encoding="utf-8")


def export_dirs(output_dir: str | Path) -> dict[int, Path]:
    """The Hugging Face exports under `output_dir`, by training step, for a checkpoint sweep.

    cosmos-rl writes them to `output_dir/<timestamp>/safetensors/step_N/` (a new timestamp per
    run); half-written exports (`step_N.incomplete-*`) are skipped. When several runs exported the
    same step, the newest run wins.
    """
    found: dict[int, Path] = {}
    for step_dir in sorted(Path(output_dir).glob("*/safetensors/step_*")):  # timestamps sort
        match = EXPORT_STEP.fullmatch(step_dir.name)
        if match and step_dir.is_dir():
            found[int(match.group(1))] = step_dir
    return dict(sorted(found.items()))


# ----------------------------------------------------------------------------- datasets


def _video_items(messages: list[dict]) -> list[dict]:
    return [
        item
        for message in messages
        if isinstance(message["content"], list)
        for item in message["content"]
        if isinstance(item, dict) and item.get("type") == "video"
    ]


def _text(message: dict) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(item.get("text", "") for item in content if item.get("type") == "text")


class ConversationDataset(Dataset):
    """The chat conversations of a dataset written by `recipe_utils.videophy2.prepare`.

    Each item is a list of messages: system, user (video + question), assistant (the answer).
    The subclasses in the entry scripts decide what cosmos-rl gets per index. Every row is parsed
    and checked when the dataset opens, so a bad row stops the job before any GPU work.
    `expected` may hold `prompt` (a prompt file) and video settings (`fps`, `max_pixels`, any
    key of `videophy2.VIDEO_KEYS`): the settings every row must have been built with.
    """

    def __init__(self, path: str | Path, expected: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        rows = load_conversations(self.path)
        ids = rows["id"] if "id" in rows.column_names else [None] * len(rows)
        texts = rows["conversations"]
        self.conversations = [
            self._parse(index, row_id, text)
            for index, (row_id, text) in enumerate(
                tqdm(
                    zip(ids, texts, strict=True), total=len(texts), desc=f"reading {self.path.name}"
                )
            )
        ]
        self._check_settings(ids, expected or {})

    @classmethod
    def from_config(cls, config: Any) -> ConversationDataset:
        """Build from a cosmos-rl Config: the factory handed to cosmos-rl by the entry scripts.

        Reads `[custom.dataset]`: `path` and the optional settings to check.
        """
        settings = dict(config.custom.get("dataset", {}))
        if "path" not in settings:
            raise CosmosConfigError(
                "[custom.dataset] has no `path`: set it to the folder written by "
                "recipe_utils.videophy2.prepare (write_config(..., {'custom.dataset.path': ...}))"
            )
        known = {"path", "prompt", *VIDEO_KEYS}
        unknown = set(settings) - known
        if unknown:
            raise CosmosConfigError(
                f"[custom.dataset] has unknown key(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(settings.pop("path"), expected=settings)

    def _where(self, index: int, row_id: str | None) -> str:
        return f"{self.path}: row {index}" + (f" (id {row_id!r})" if row_id else "")

    def _parse(self, index: int, row_id: str | None, text: str) -> list[dict]:
        where = self._where(index, row_id)
        try:
            messages = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: `conversations` is not valid JSON ({exc})") from exc
        if not (
            isinstance(messages, list)
            and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in messages)
        ):
            raise ValueError(f"{where}: `conversations` must be a list of {{role, content}} dicts")
        roles = [message["role"] for message in messages]
        if roles.count("assistant") != 1 or roles[-1] != "assistant" or "user" not in roles:
            raise ValueError(
                f"{where}: expected user turn(s) then exactly one assistant turn last, got roles "
                f"{roles}; rebuild the dataset with recipe_utils.videophy2.prepare"
            )
        if not isinstance(messages[-1]["content"], str):
            raise ValueError(f"{where}: the assistant turn must be plain text (the answer)")
        return messages

    def _check_settings(self, ids: list, expected: dict[str, Any]) -> None:
        prompt = load_prompt(repo_path(expected["prompt"])) if "prompt" in expected else None
        video_keys = [key for key in expected if key in VIDEO_KEYS]
        problems = []
        for index, messages in enumerate(self.conversations):
            found = {}
            if prompt is not None:
                system = [_text(m) for m in messages if m["role"] == "system"]
                user = [_text(m) for m in messages if m["role"] == "user"]
                if system != [prompt.system] or user != [prompt.user]:
                    found["prompt"] = "different text"
            for video in _video_items(messages):
                found.update({k: video.get(k) for k in video_keys if video.get(k) != expected[k]})
            if found:
                problems.append(f"{self._where(index, ids[index])}: {found}")
        if problems:
            raise CosmosConfigError(
                f"{len(problems)} of {len(self.conversations)} rows were not built with the "
                f"settings in [custom.dataset] {expected}; first: {'; '.join(problems[:3])}. "
                "Rebuild the "
                "dataset with those settings, or fix [custom.dataset]"
            )

    def __len__(self) -> int:
        return len(self.conversations)

    def messages(self, index: int) -> list[dict]:
        """A fresh copy of row `index`'s conversation (callers may edit it)."""
        return copy.deepcopy(self.conversations[index])
