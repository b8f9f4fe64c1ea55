"""Carve the train split into the parts the stages read: validation, SFT's rows, GRPO's pool.

Checkpoints are chosen on validation, so no stage trains on it, and the test split is read only
to report. When GRPO's pool is limited (`grpo.limit`), it is drawn from train rows SFT never
saw, so RL does not revisit what SFT memorised; without a limit GRPO samples from the same rows
as SFT, as the published recipe does. Both draws are stratified by `pc` and seeded.

The parts are written as a split folder (`val.jsonl`, `sft.jsonl`, `grpo.jsonl`, rows in the
course schema) that `load_rows(folder, "val")` reads like any other source, plus
`partition.json` with the counts.
"""

from __future__ import annotations

import json
import os
import random
from collections import defaultdict
from pathlib import Path

from .videophy2 import label_counts, write_jsonl

PARTS = ("val", "sft", "grpo")
PARTITION_FILE = "partition.json"
# The fewest distinct clips of each label GRPO's pool holds when the split has them: a pool
# balanced from fewer would reward the same clip over and over.
MIN_PER_LABEL = 4


def allocation(counts: dict[int, int], n: int, floor: int = 0) -> dict[int, int]:
    """How many of `n` draws each label gets: `floor` each (or all it has), the rest in
    proportion to the rows each has left, largest remainders first (ties to the lower label)."""
    base = {label: min(floor, count) for label, count in counts.items()}
    left = {label: counts[label] - base[label] for label in counts}
    rest, pool = n - sum(base.values()), sum(left.values())
    if rest < 0 or rest > pool:
        raise ValueError(f"cannot draw {n} rows with {floor} per label from {counts}")
    exact = {label: rest * left[label] / pool if pool else 0.0 for label in counts}
    share = {label: int(value) for label, value in exact.items()}
    by_remainder = sorted(counts, key=lambda label: (share[label] - exact[label], label))
    for label in by_remainder[: rest - sum(share.values())]:
        share[label] += 1
    return {label: base[label] + share[label] for label in counts}


def stratified_sample(
    rows: list[dict], n: int, rng: random.Random, floor: int = 0
) -> tuple[list[dict], list[dict]]:
    """(`n` rows drawn without replacement, stratified by `pc`; the rows left), each in the
    order of `rows`."""
    groups = defaultdict(list)
    for row in rows:
        groups[row["pc"]].append(row)
    quota = allocation({label: len(group) for label, group in groups.items()}, n, floor)
    chosen = {
        row["id"] for label, group in groups.items() for row in rng.sample(group, quota[label])
    }
    return [r for r in rows if r["id"] in chosen], [r for r in rows if r["id"] not in chosen]


def partition(
    rows: list[dict], val_fraction: float, grpo_limit: int | None, seed: int
) -> dict[str, list[dict]]:
    """Validation (`val_fraction` of the rows, at least one), then GRPO's pool of `grpo_limit`
    rows (at most half of the rest, so SFT keeps rows) and SFT's rows from what is left; with
    no limit GRPO's pool is SFT's rows."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"data.val_fraction must be between 0 and 1, got {val_fraction}")
    if len(rows) < 2:
        raise ValueError(f"the train split has {len(rows)} row(s): validation and training need 2")
    rng = random.Random(seed)
    n_val = min(max(1, round(val_fraction * len(rows))), len(rows) - 1)
    val, train = stratified_sample(rows, n_val, rng)
    if grpo_limit is None:
        return {"val": val, "sft": train, "grpo": train}
    n_grpo = min(grpo_limit, len(train) // 2)
    labels = len({row["pc"] for row in train})
    grpo, sft = stratified_sample(train, n_grpo, rng, floor=min(MIN_PER_LABEL, n_grpo // labels))
    return {"val": val, "sft": sft, "grpo": grpo}


def portable(row: dict, out: Path) -> dict:
    """The row as the split file in `out` holds it, its video by where it lies: a clip in the
    run's data folder (`out`'s parent: rendered or downloaded there) relative to `out`, so the
    run folder can move with its clips; any other local clip by its absolute path, so it is
    found from wherever the run goes (`load_rows` resolves relative paths from the file's own
    folder and fills `video` in)."""
    video = row["video"]
    if video and Path(video).is_relative_to(out.parent.absolute()):
        video = os.path.relpath(video, out.absolute())
    return {key: value for key, value in row.items() if key != "video"} | {
        "video_url": video or row["video_url"]
    }


def write_partition(parts: dict[str, list[dict]], out: Path, about: dict) -> dict:
    """Write each part as `out/<part>.jsonl` and the counts to `out/partition.json` (last, so
    its presence means the folder is whole); returns what partition.json holds."""
    out.mkdir(parents=True, exist_ok=True)
    for name in PARTS:
        write_jsonl(out / f"{name}.jsonl", [portable(row, out) for row in parts[name]])
    shared = parts["grpo"] is parts["sft"]
    record = about | {
        "rows": {name: len(parts[name]) for name in PARTS},
        "label_counts": {name: label_counts(parts[name]) for name in PARTS},
        "grpo_pool": "the SFT rows" if shared else "train rows neither SFT nor validation uses",
    }
    (out / PARTITION_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return record
