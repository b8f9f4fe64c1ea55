"""Bad labels and rows: each bad row is skipped with its index and reason, never silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recipe_utils.prompts import PROMPTS_DIR
from recipe_utils.videophy2 import balance_labels, load_rows, prepare

pytestmark = pytest.mark.reliability

PROMPT = PROMPTS_DIR / "video_reward.yaml"


def base_row(i: int, **fields) -> dict:
    row = {"id": f"r{i}", "video_url": f"videos/r{i}.mp4", "caption": "a ball", "sa": 3, "pc": 3}
    row.update(fields)
    return row


def write_split(folder: Path, rows: list, name: str = "test") -> Path:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    (folder / f"{name}.jsonl").write_text("".join(line + "\n" for line in lines))
    return folder


def load_one_bad(tmp_path: Path, bad: dict) -> tuple[list[dict], list[tuple[int, str]]]:
    """Load [good, bad, good]; return the kept rows and the skipped (index, reason) pairs."""
    loaded = load_rows(write_split(tmp_path, [base_row(0), bad, base_row(2)]), "test")
    return loaded.rows, loaded.skipped


BAD_PC = [
    ("missing", {"pc": None}, "`pc` is missing"),
    ("absent_key", {}, "`pc` is missing"),
    ("nan", {"pc": float("nan")}, "`pc` is missing"),
    ("zero", {"pc": 0}, "`pc`=0 is outside 1..5"),
    ("six", {"pc": 6}, "`pc`=6 is outside 1..5"),
    ("negative", {"pc": -1}, "`pc`=-1 is outside 1..5"),
    ("decimal", {"pc": 3.5}, "`pc`=3.5 is not a whole number"),
    ("word", {"pc": "four"}, "`pc`='four' is not a number"),
    ("bool", {"pc": True}, "`pc`=True is not a number"),
    ("list", {"pc": [3]}, "`pc`=[3] is not a number"),
]


@pytest.mark.parametrize("fields, reason", [c[1:] for c in BAD_PC], ids=[c[0] for c in BAD_PC])
def test_bad_pc_skips_the_row_with_its_index_and_reason(tmp_path, fields, reason):
    bad = base_row(1, **fields)
    if not fields:
        del bad["pc"]
    rows, skipped = load_one_bad(tmp_path, bad)
    assert [row["id"] for row in rows] == ["r0", "r2"]
    assert skipped == [(1, reason)]


@pytest.mark.parametrize(
    "value, expected",
    [("[nan]", []), ("['falls down', nan]", ["falls down"]), ("[None, nan]", []), ("[]", [])],
    ids=["only_nan", "nan_among_rules", "none_and_nan", "empty"],
)
def test_nan_in_rule_lists_is_dropped(tmp_path, value, expected):
    rows, skipped = load_one_bad(tmp_path, base_row(1, physics_rules_unfollowed=value))
    assert skipped == []
    assert rows[1]["physics_rules_unfollowed"] == expected


def test_rule_list_holding_a_number_is_rejected(tmp_path):
    _, skipped = load_one_bad(tmp_path, base_row(1, human_violated_rules="['ok', 3]"))
    assert skipped == [(1, "`human_violated_rules` holds a non-text item '3'")]


def test_duplicate_ids_keep_the_first_and_report_the_second(tmp_path):
    rows = [base_row(0, pc=5), base_row(1), base_row(0, pc=1)]
    loaded = load_rows(write_split(tmp_path, rows), "test")
    assert [(row["id"], row["pc"]) for row in loaded.rows] == [("r0", 5), ("r1", 3)]
    assert loaded.skipped == [(2, "duplicate id 'r0' (first at index 0)")]


def test_a_line_that_is_not_json_is_reported_by_line_number(tmp_path):
    loaded = load_rows(write_split(tmp_path, [base_row(0), '{"id": "r1", "pc": 3']), "test")
    assert len(loaded) == 1
    assert loaded.skipped[0][0] == 1
    assert loaded.skipped[0][1].startswith("line 2 is not valid JSON")


def test_empty_split_loads_as_no_rows_and_prepare_refuses_it(tmp_path):
    folder = write_split(tmp_path, [])
    loaded = load_rows(folder, "test")
    assert (len(loaded), loaded.skipped) == (0, [])  # an empty result, not an error
    with pytest.raises(ValueError, match=r"test\.jsonl: no usable rows"):
        prepare(folder, "test", tmp_path / "out", PROMPT)
    assert not (tmp_path / "out").exists()


def test_split_of_only_bad_rows_reports_every_reason_when_prepared(tmp_path):
    folder = write_split(tmp_path, [base_row(0, pc=9), base_row(1, sa="x")])
    with pytest.raises(ValueError) as info:
        prepare(folder, "test", tmp_path / "out", PROMPT)
    assert "`pc`=9 is outside 1..5" in str(info.value)
    assert "`sa`='x' is not a number" in str(info.value)


def test_missing_split_names_the_splits_that_exist(tmp_path):
    write_split(tmp_path, [base_row(0)], name="train")
    with pytest.raises(
        FileNotFoundError, match=r"test\.jsonl does not exist; splits in .*\['train'\]"
    ):
        load_rows(tmp_path, "test")


def test_balance_with_an_absent_label_reports_it(tmp_path):
    pcs = [1, 2, 2, 4, 4, 4, 4, 4, 5, 5]  # no 3
    rows = [base_row(i, pc=pc) for i, pc in enumerate(pcs)]
    balanced = balance_labels(rows, seed=0)
    assert balanced.absent == [3]
    assert balanced.after == {1: 2, 2: 2, 3: 0, 4: 2, 5: 2}
    assert balanced.before == {1: 1, 2: 2, 3: 0, 4: 5, 5: 2}


def test_balance_with_a_single_label_keeps_every_row(tmp_path):
    rows = [base_row(i, pc=4) for i in range(5)]
    balanced = balance_labels(rows, seed=0)
    assert balanced.absent == [1, 2, 3, 5]
    assert sorted(row["id"] for row in balanced.rows) == [f"r{i}" for i in range(5)]


def test_prepare_balanced_split_lists_the_absent_label(synth, tmp_path):
    rows = [row for row in load_rows(synth, "train").rows if row["pc"] != 3]
    # video_url may be absolute: the split file then sits anywhere
    records = [dict(row, video_url=row["video"]) for row in rows]
    folder = write_split(tmp_path, records, name="no3")
    out = prepare(
        folder, "no3", tmp_path / "out", PROMPT, balance_labels=True, fps=4, max_pixels=12544
    )
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["absent_labels"] == [3]
    assert report["label_counts_after"]["3"] == 0
    present = {label: n for label, n in report["label_counts_after"].items() if label != "3"}
    assert len(set(present.values())) == 1 and min(present.values()) > 0
