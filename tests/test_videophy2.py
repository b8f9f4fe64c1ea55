import csv
import hashlib
import json
import math
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest

from recipe_utils.answers import follows_format, parse_answer
from recipe_utils.prompts import PROMPTS_DIR, load_prompt
from recipe_utils.video import write_clip
from recipe_utils.videophy2 import (
    NO_VIOLATION,
    RULE_FIELDS,
    HubUnreachable,
    RowError,
    answer_text,
    balance_labels,
    build_messages,
    label_counts,
    load_conversations,
    load_rows,
    normalize_row,
    prepare,
    rationale,
    url_key,
)

PROMPT = PROMPTS_DIR / "video_reward.yaml"
PCS = [4, 4, 4, 4, 3, 3, 5, 2, 4, 3]  # imbalanced like the real train split; no 1


def raw_row(i: int, pc: int = 3, **extra) -> dict:
    row = {
        "id": f"train_{i:04d}",
        "caption": f"a ball falls {i}",
        "video_url": f"videos/train_{i:04d}.mp4",
        "sa": 4,
        "pc": pc,
        "joint": 0,
        "physics_rules_followed": "['gravity']",
        "physics_rules_unfollowed": "[]",
        "physics_rules_cannot_be_determined": "[nan]",
        "human_violated_rules": "[nan]",
        "action": "falling",
        "category": "sports",
        "is_hard": 0,
        "metadata_rules": "",
        "upsampled_caption": "",
        "model_name": "synthetic",
    }
    row.update(extra)
    return row


def write_jsonl(path: Path, rows: list) -> None:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def bench(tmp_path) -> Path:
    """A synthetic-like folder: train.jsonl with 10 good rows, 2 bad ones, and their videos."""
    folder = tmp_path / "bench"
    (folder / "videos").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i, pc in enumerate(PCS):
        write_clip(
            folder / f"videos/train_{i:04d}.mp4", rng.integers(0, 255, (4, 32, 32, 3), np.uint8), 4
        )
        rows.append(raw_row(i, pc))
    rows.insert(3, raw_row(90, pc=7))  # row 3: out of range
    rows.append("{not json")  # row 11
    write_jsonl(folder / "train.jsonl", rows)
    return folder


# ------------------------------------------------------------------ normalizing one row


@pytest.mark.parametrize(
    ("value", "expected"), [(4, 4), (4.0, 4), ("2", 2), (" 5 ", 5), (np.int64(1), 1)]
)
def test_scores_accept_integers_in_any_spelling(tmp_path, value, expected):
    assert normalize_row(raw_row(0, pc=value), tmp_path)["pc"] == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (7, "outside 1..5"),
        (0, "outside 1..5"),
        (4.5, "not a whole number"),
        ("four", "not a number"),
        (True, "not a number"),
        (None, "missing"),
        (math.nan, "missing"),
        ("", "missing"),
    ],
)
def test_bad_scores_are_rejected_with_the_field_named(tmp_path, value, reason):
    with pytest.raises(RowError, match=rf"`pc`.*{reason}"):
        normalize_row(raw_row(0, pc=value), tmp_path)


def test_missing_sa_is_rejected(tmp_path):
    row = raw_row(0)
    del row["sa"]
    with pytest.raises(RowError, match="`sa` is missing"):
        normalize_row(row, tmp_path)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("['gravity', 'inertia']", ["gravity", "inertia"]),
        ("[nan]", []),
        ("[]", []),
        ("['gravity', nan]", ["gravity"]),
        ('["it\'s wet"]', ["it's wet"]),
        (["gravity", None], ["gravity"]),
        (math.nan, []),
        (None, []),
    ],
)
def test_rule_lists_are_parsed_from_python_literals(tmp_path, value, expected):
    row = normalize_row(raw_row(0, human_violated_rules=value), tmp_path)
    assert row["human_violated_rules"] == expected


@pytest.mark.parametrize("value", ["gravity", "[1, 2]", "['a'", "__import__('os')", 3])
def test_bad_rule_lists_are_rejected(tmp_path, value):
    with pytest.raises(RowError, match="human_violated_rules"):
        normalize_row(raw_row(0, human_violated_rules=value), tmp_path)


def test_local_video_is_absolute_and_relative_to_the_split_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    row = normalize_row(raw_row(3), tmp_path / "bench")
    assert row["video"] == str((tmp_path / "bench/videos/train_0003.mp4").resolve())


def test_ids_are_kept_or_derived_from_the_video(tmp_path):
    url = "https://example.org/clips/0042.mp4"
    assert normalize_row(raw_row(3), tmp_path)["id"] == "train_0003"
    assert normalize_row(raw_row(3, id=None), tmp_path)["id"] == "train_0003"
    assert normalize_row(raw_row(3, id=None, video_url=url), tmp_path)["id"] == url_key(url)
    assert url_key(url) == hashlib.sha1(url.encode()).hexdigest()[:16]


def test_ids_that_could_escape_the_video_folder_are_rejected(tmp_path):
    with pytest.raises(RowError, match="id '../x'"):
        normalize_row(raw_row(0, id="../x"), tmp_path)


def test_joint_is_derived_when_missing_and_checked_when_given(tmp_path):
    assert normalize_row(raw_row(0, pc=4, joint=None), tmp_path)["joint"] == 1
    assert normalize_row(raw_row(0, pc=3, joint=None), tmp_path)["joint"] == 0
    with pytest.raises(RowError, match="`joint`=2"):
        normalize_row(raw_row(0, joint=2), tmp_path)


def test_hub_rows_need_a_url(tmp_path):
    with pytest.raises(RowError, match="not an http"):
        normalize_row(raw_row(0), base=None)


# ------------------------------------------------------------------ loading sources


def test_folder_and_split_reports_every_bad_row(bench, caplog):
    loaded = load_rows(bench, "train")
    assert [row["id"] for row in loaded.rows] == [f"train_{i:04d}" for i in range(10)]
    assert [index for index, _ in loaded.skipped] == [3, 11]
    assert "outside 1..5" in loaded.skipped[0][1]
    assert "not valid JSON" in loaded.skipped[1][1]
    assert "skipped 2 bad row(s)" in caplog.text
    assert all(Path(row["video"]).is_file() for row in loaded.rows)


def test_duplicate_ids_keep_the_first_row(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [raw_row(0, pc=1), raw_row(1), raw_row(0, pc=5)])
    loaded = load_rows(tmp_path / "train.jsonl")
    assert [(row["id"], row["pc"]) for row in loaded.rows] == [("train_0000", 1), ("train_0001", 3)]
    assert loaded.skipped == [(2, "duplicate id 'train_0000' (first at row 0)")]


def test_limit_counts_valid_rows(bench):
    loaded = load_rows(bench, "train", limit=5)
    assert len(loaded) == 5
    assert loaded.skipped == [(3, loaded.skipped[0][1])]


def test_jsonl_parquet_and_csv_give_the_same_rows(tmp_path):
    rows = [raw_row(i, pc) for i, pc in enumerate(PCS[:4])]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    datasets.Dataset.from_list(rows).to_parquet(tmp_path / "rows.parquet")
    with (tmp_path / "rows.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    loaded = [load_rows(tmp_path / f"rows.{ext}").rows for ext in ("jsonl", "parquet", "csv")]
    assert loaded[0] == loaded[1] == loaded[2]
    assert loaded[0][0]["physics_rules_followed"] == ["gravity"]
    assert loaded[0][0]["human_violated_rules"] == []


def test_hub_rows_get_url_keys_and_no_video(monkeypatch):
    urls = [f"https://videophy2.example/{i}.mp4" for i in range(3)]
    hub = [
        {k: v for k, v in raw_row(i, video_url=url).items() if k != "id"}
        for i, url in enumerate(urls)
    ]
    calls = []

    def fake_load_dataset(name, split):
        calls.append((name, split))
        return datasets.Dataset.from_list(hub)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    loaded = load_rows("videophysics/videophy2_test", "test")
    assert calls == [("videophysics/videophy2_test", "test")]
    assert [row["id"] for row in loaded.rows] == [url_key(url) for url in urls]
    assert all(row["video"] is None for row in loaded.rows)
    assert loaded.rows[0]["physics_rules_cannot_be_determined"] == []


def test_unreachable_hub_says_how_to_use_local_files(monkeypatch):
    def offline(name, split):
        raise ConnectionError("Couldn't reach 'videophysics/videophy2_test' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(HubUnreachable, match="--source path/to/file.jsonl"):
        load_rows("videophysics/videophy2_test", "test")


def test_bad_sources_fail_clearly(bench, tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"test.jsonl does not exist; splits in .*\['train'\]"
    ):
        load_rows(bench, "test")
    with pytest.raises(ValueError, match="also give the split"):
        load_rows(bench)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_rows(tmp_path / "missing.parquet")
    with pytest.raises(ValueError, match="neither a folder"):
        load_rows(tmp_path / "rows.txt")
    with pytest.raises(ValueError, match="limit"):
        load_rows(bench, "train", limit=0)


# ------------------------------------------------------------------ balancing labels


def rows_with(pcs):
    return [{"id": str(i), "pc": pc} for i, pc in enumerate(pcs)]


def test_balance_gives_every_present_label_the_same_count():
    rows = rows_with([4] * 12 + [3] * 5 + [2] * 2 + [5])
    result = balance_labels(rows, seed=0)
    assert result.before == {1: 0, 2: 2, 3: 5, 4: 12, 5: 1}
    assert result.after == {1: 0, 2: 5, 3: 5, 4: 5, 5: 5}  # 20 rows // 4 labels
    assert result.absent == [1]
    assert len(result.rows) == 20


def test_balance_downsamples_without_and_upsamples_with_replacement():
    rows = rows_with([4] * 12 + [2] * 2)
    result = balance_labels(rows, seed=3)
    fours = [row["id"] for row in result.rows if row["pc"] == 4]
    twos = [row["id"] for row in result.rows if row["pc"] == 2]
    assert len(set(fours)) == len(fours) == 7
    assert set(twos) == {"12", "13"} and len(twos) == 7


def test_balance_keeps_every_row_of_a_small_group():
    """A label with fewer rows than its share keeps each of them and tops up with repeats;
    redrawing the whole group instead loses some of its rows for most seeds."""
    rows = rows_with([4] * 14 + [2] * 6)  # 10 rows per label
    for seed in range(10):
        twos = [row["id"] for row in balance_labels(rows, seed=seed).rows if row["pc"] == 2]
        assert len(twos) == 10 and set(twos) == {str(i) for i in range(14, 20)}, seed


def test_balance_is_seeded_and_shuffled():
    rows = rows_with([4] * 30 + [3] * 10)
    first = [row["id"] for row in balance_labels(rows, seed=1).rows]
    assert first == [row["id"] for row in balance_labels(rows, seed=1).rows]
    assert first != [row["id"] for row in balance_labels(rows, seed=2).rows]
    assert [row["pc"] for row in balance_labels(rows, seed=1).rows] != sorted(
        [row["pc"] for row in balance_labels(rows, seed=1).rows]
    )


def test_balance_refuses_empty_input():
    with pytest.raises(ValueError, match="no rows"):
        balance_labels([])


def test_label_counts_lists_every_label():
    assert label_counts(rows_with([5, 5, 1])) == {1: 1, 2: 0, 3: 0, 4: 0, 5: 2}


# ------------------------------------------------------------------ conversations


def test_answer_text_is_the_sft_target():
    assert answer_text(3) == "<answer>\n3\n</answer>"
    for bad in (0, 6, True, 3.5):
        with pytest.raises(ValueError, match="pc must be an integer 1..5"):
            answer_text(bad)


def test_rationale_numbers_the_annotated_violations():
    row = {"human_violated_rules": ["The ball hovers.", "A box appears."]}
    assert rationale(row) == "1. The ball hovers.\n2. A box appears."
    assert rationale({"human_violated_rules": []}) == rationale({}) == NO_VIOLATION


def test_answer_text_puts_reasoning_in_a_think_block_before_the_score():
    text = answer_text(3, "1. The ball hovers.")
    assert text == "<think>\n1. The ball hovers.\n</think>\n\n<answer>\n3\n</answer>"
    assert follows_format(text) and parse_answer(text) == 3


def test_build_messages_follows_the_shared_format():
    prompt = load_prompt(PROMPT)
    row = {"id": "a", "video": "/data/a.mp4", "pc": 2}
    settings = {"fps": 16, "total_pixels": 8192 * 28 * 28}
    assert build_messages(row, prompt, settings, with_answer=True) == [
        {"role": "system", "content": prompt.system},
        {
            "role": "user",
            "content": [
                {
                    "type": "video",
                    "video": "/data/a.mp4",
                    "fps": 16,
                    "total_pixels": 8192 * 28 * 28,
                },
                {"type": "text", "text": prompt.user},
            ],
        },
        {"role": "assistant", "content": "<answer>\n2\n</answer>"},
    ]
    assert len(build_messages(row, prompt, settings, with_answer=False)) == 2


def test_build_messages_rejects_typos_and_rows_without_video():
    prompt = load_prompt(PROMPT)
    with pytest.raises(ValueError, match="unknown key"):
        build_messages({"video": "/a.mp4", "pc": 1}, prompt, {"max_pixel": 1}, with_answer=False)
    with pytest.raises(ValueError, match="row 'x' has no local video"):
        build_messages({"id": "x", "video": None, "pc": 1}, prompt, {"fps": 1}, with_answer=False)


def assistant_scores(dataset) -> list[int]:
    turns = [json.loads(text)[-1] for text in dataset["conversations"]]
    assert all(turn["role"] == "assistant" for turn in turns)
    return [int(turn["content"].split("\n")[1]) for turn in turns]


def test_prepare_builds_one_conversation_per_valid_row(bench, tmp_path):
    out = prepare(bench, "train", tmp_path / "sft", PROMPT, fps=2, max_pixels=3136)
    dataset = load_conversations(out)
    assert dataset["id"] == [f"train_{i:04d}" for i in range(10)]
    assert assistant_scores(dataset) == dataset["pc"] == PCS
    video = json.loads(dataset[0]["conversations"])[1]["content"][0]
    assert video == {
        "type": "video",
        "video": dataset[0]["video"],
        "fps": 2,
        "max_pixels": 3136,
        "min_pixels": 3136,
    }  # written for qwen-vl-utils, whose default is larger
    assert Path(video["video"]).is_absolute() and Path(video["video"]).is_file()
    assert dataset[0]["physics_rules_followed"] == ["gravity"]
    assert dataset[0]["human_violated_rules"] == []
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["rows_in"] == 12 and report["rows_out"] == 10
    assert [item["index"] for item in report["skipped"]] == [3, 11]
    assert report["label_counts_before"] == {"1": 0, "2": 1, "3": 3, "4": 5, "5": 1}


def test_prepare_balanced(bench, tmp_path):
    out = prepare(bench, "train", tmp_path / "grpo", PROMPT, balance_labels=True, seed=1)
    dataset = load_conversations(out)
    counts = Counter(assistant_scores(dataset))
    assert counts == {2: 2, 3: 2, 4: 2, 5: 2}  # 10 rows // 4 labels present
    assert Counter(dataset["pc"]) == counts
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["label_counts_after"] == {"1": 0, "2": 2, "3": 2, "4": 2, "5": 2}
    assert report["absent_labels"] == [1]


def test_prepare_with_rationale_writes_the_violations_before_the_score(bench, tmp_path):
    lines = (bench / "train.jsonl").read_text().splitlines()
    lines[0] = json.dumps(raw_row(0, PCS[0], human_violated_rules="['The ball hovers.']"))
    (bench / "train.jsonl").write_text("\n".join(lines) + "\n")
    thinking = PROMPTS_DIR / "video_reward_with_thinking.yaml"
    out = prepare(bench, "train", tmp_path / "cot", thinking, rationale=True)
    answers = [json.loads(c)[-1]["content"] for c in load_conversations(out)["conversations"]]
    assert answers[0] == answer_text(PCS[0], "1. The ball hovers.")
    assert answers[1] == answer_text(PCS[1], NO_VIOLATION)
    assert json.loads((out / "prepare_report.json").read_text())["rationale"] is True
    with pytest.raises(ValueError, match="does not ask for one"):
        prepare(bench, "train", tmp_path / "bad", PROMPT, rationale=True)


def test_prepare_limit_and_missing_videos(bench, tmp_path):
    (bench / "videos/train_0001.mp4").unlink()
    out = prepare(bench, "train", tmp_path / "small", PROMPT, limit=4)
    assert load_conversations(out)["id"] == ["train_0000", "train_0002", "train_0003"]
    report = json.loads((out / "prepare_report.json").read_text())
    assert {"id": "train_0001", "reason": report["skipped"][-1]["reason"]} == report["skipped"][-1]
    assert "video file not found" in report["skipped"][-1]["reason"]


def test_load_conversations_names_the_bad_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}.*not a prepared dataset"):
        load_conversations(tmp_path)
    datasets.Dataset.from_list([{"a": 1}]).save_to_disk(str(tmp_path / "other"))
    with pytest.raises(ValueError, match="no `conversations` column"):
        load_conversations(tmp_path / "other")


def test_rule_columns_round_trip_as_lists(bench, tmp_path):
    dataset = load_conversations(prepare(bench, "train", tmp_path / "d", PROMPT))
    for name in RULE_FIELDS:
        assert all(isinstance(value, list) for value in dataset[name])
