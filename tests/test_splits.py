"""The train split's parts: validation, SFT's rows and GRPO's pool, stratified, disjoint, seeded."""

import json
from collections import Counter
from pathlib import Path

import pytest

from recipe_utils import pipeline
from recipe_utils.config import load_config
from recipe_utils.splits import MIN_PER_LABEL, allocation, partition, portable
from recipe_utils.videophy2 import load_conversations, load_rows

COUNTS = {1: 24, 2: 42, 3: 60, 4: 114, 5: 60}  # 300 rows, imbalanced like the synthetic train mix
ROWS = [
    {"id": f"clip{index:03d}", "pc": pc}
    for index, pc in enumerate(pc for pc, n in COUNTS.items() for _ in range(n))
]


def ids(rows: list[dict]) -> list[str]:
    return [row["id"] for row in rows]


def test_allocation_is_proportional_with_largest_remainders():
    mix = {1: 8, 2: 14, 3: 20, 4: 38, 5: 20}
    assert allocation(mix, 10) == {1: 1, 2: 1, 3: 2, 4: 4, 5: 2}
    assert allocation(mix, 10, floor=2) == {1: 2, 2: 2, 3: 2, 4: 2, 5: 2}
    assert allocation({1: 1, 4: 50}, 10, floor=4) == {1: 1, 4: 9}  # a label has what it has


def test_validation_is_stratified_and_the_grpo_pool_holds_several_clips_per_label():
    parts = partition(ROWS, val_fraction=0.1, grpo_limit=40, seed=0)
    val = Counter(row["pc"] for row in parts["val"])
    assert sum(val.values()) == 30
    assert all(abs(val[pc] - n * 0.1) < 1 for pc, n in COUNTS.items())
    grpo = Counter(row["pc"] for row in parts["grpo"])
    assert sum(grpo.values()) == 40 and min(grpo.values()) >= MIN_PER_LABEL
    assert grpo[4] == max(grpo.values())  # still the train mix, for the balance experiment


def test_every_row_ends_in_exactly_one_part():
    parts = partition(ROWS, val_fraction=0.1, grpo_limit=40, seed=0)
    found = Counter(id_ for name in ("val", "sft", "grpo") for id_ in ids(parts[name]))
    assert sorted(found) == ids(ROWS) and set(found.values()) == {1}
    recipe = partition(ROWS, val_fraction=0.1, grpo_limit=None, seed=0)
    assert recipe["grpo"] is recipe["sft"]  # no limit: GRPO samples SFT's rows, as the recipe
    assert not set(ids(recipe["val"])) & set(ids(recipe["sft"]))
    assert len(recipe["val"]) + len(recipe["sft"]) == len(ROWS)


def test_the_parts_are_drawn_by_the_seed():
    first, again = (partition(ROWS, 0.1, 40, seed=0) for _ in range(2))
    assert all(ids(first[name]) == ids(again[name]) for name in first)
    assert ids(partition(ROWS, 0.1, 40, seed=1)["val"]) != ids(first["val"])


def test_small_splits_keep_rows_for_every_stage():
    parts = partition(ROWS[:8], val_fraction=0.03, grpo_limit=40, seed=0)
    assert [len(parts[name]) for name in ("val", "grpo", "sft")] == [1, 3, 4]
    with pytest.raises(ValueError, match="val_fraction"):
        partition(ROWS, val_fraction=1.0, grpo_limit=None, seed=0)


SMALL = {"data.synthetic.n_train": 40, "data.synthetic.n_test": 6, "grpo.limit": 10}


def test_a_run_writes_the_parts_once_and_the_datasets_say_where_their_rows_come_from(tmp_path):
    config = load_config("smoke", SMALL | {"data.val_fraction": 0.2})
    splits = pipeline.splits_stage(config, tmp_path / "a")
    parts = {name: load_rows(splits, name).rows for name in ("val", "sft", "grpo")}
    train = {
        row["id"]: row
        for row in load_rows(*pipeline.resolve_source(config, tmp_path / "a", "train")).rows
    }
    assert [len(rows) for rows in parts.values()] == [8, 22, 10]
    assert all(
        row | {"video_url": train[row["id"]]["video_url"]} == train[row["id"]]
        for rows in parts.values()
        for row in rows
    )  # rows read back as they were

    again = pipeline.splits_stage(config, tmp_path / "b")  # same settings, another folder
    assert all(ids(load_rows(again, name).rows) == ids(parts[name]) for name in parts)

    dataset = pipeline.dataset_stage("grpo", config, tmp_path / "a")
    report = json.loads((dataset / "prepare_report.json").read_text())
    assert report["partition"]["rows"] == {"val": 8, "sft": 22, "grpo": 10}
    assert report["partition"]["grpo_pool"] == "train rows neither SFT nor validation uses"
    assert set(load_conversations(dataset)["id"]) <= set(ids(parts["grpo"]))

    other = load_config("smoke", SMALL | {"data.val_fraction": 0.1})
    with pytest.raises(ValueError, match="carved with other settings"):
        pipeline.splits_stage(other, tmp_path / "a")


def test_a_run_folder_moved_with_its_clips_still_trains_and_scores(tmp_path):
    config = load_config("smoke", SMALL)
    pipeline.dataset_stage("sft", config, tmp_path / "a")
    (tmp_path / "a").rename(tmp_path / "b")
    run = tmp_path / "b"
    for name in ("val", "sft", "grpo"):
        assert all(
            Path(row["video"]).is_file() for row in load_rows(run / "data/splits", name).rows
        )
    dataset = pipeline.dataset_stage("sft", config, run)  # rebuilt: it named clips under a/
    videos = load_conversations(dataset)["video"]
    assert videos and all(
        Path(video).is_relative_to(run) and Path(video).is_file() for video in videos
    )


def test_a_clip_outside_the_run_keeps_its_absolute_path(tmp_path):
    out = tmp_path / "run" / "data" / "splits"
    inside, outside = tmp_path / "run/data/videos/a.mp4", tmp_path / "mine/b.mp4"
    rows = [
        {"id": name, "video_url": "x", "video": str(path)}
        for name, path in (("a", inside), ("b", outside))
    ]
    assert [portable(row, out)["video_url"] for row in rows] == ["../videos/a.mp4", str(outside)]
