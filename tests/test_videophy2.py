import csv
import hashlib
import json
import math
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
from videophy2_rows import CAPTIONS, COLUMNS, GENERATORS, NAME, csv_text, videophy2_rows, write_csv

from recipe_utils.answers import follows_format, parse_answer, think_block
from recipe_utils.cli import main
from recipe_utils.prompts import PROMPTS_DIR, load_prompt
from recipe_utils.video import write_clip
from recipe_utils.videophy2 import (
    NO_VIOLATION,
    RULE_FIELDS,
    SAFE_ID,
    HubUnreachable,
    RowError,
    answer_text,
    balance_labels,
    build_messages,
    label_counts,
    listed_violations,
    load_conversations,
    load_rows,
    normalize_row,
    prepare,
    rationale,
    rationale_conflict,
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
    derived = normalize_row(raw_row(3, id=None), tmp_path)["id"]
    assert derived.startswith("train_0003-")
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
    assert loaded.skipped == [(2, "duplicate id 'train_0000' (first at index 0)")]


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


def test_unreachable_hub_ends_the_command_in_one_line(monkeypatch, tmp_path, capsys):
    """It was an 86-line traceback: HubUnreachable was an error the command line did not catch."""

    def offline(name, split):
        raise ConnectionError("Couldn't reach 'videophysics/videophy2_test' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    args = ["--source", "videophysics/videophy2_test", "--split", "test", "--out", str(tmp_path)]
    assert main(["prepare", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: could not load hub dataset") and err.count("\n") == 1


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
    assert listed_violations(rationale(row)) == row["human_violated_rules"]
    assert listed_violations(NO_VIOLATION) == []


def test_rationale_below_5_falls_back_to_the_unfollowed_rules():
    """Real rows with pc 2 can leave human_violated_rules empty and name the broken rule only
    in physics_rules_unfollowed; at pc 5 that column is no violation the score admits."""
    row = {"pc": 2, "human_violated_rules": [], "physics_rules_unfollowed": ["Gravity."]}
    assert rationale(row) == "1. Gravity." and rationale_conflict(row) is None
    assert (
        rationale(row | {"pc": 5}) == NO_VIOLATION and rationale_conflict(row | {"pc": 5}) is None
    )


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"pc": 5, "human_violated_rules": ["The ball floats."]}, "pc 5 but"),
        ({"pc": 2, "human_violated_rules": [], "physics_rules_unfollowed": []}, "pc 2 but no"),
    ],
)
def test_rows_whose_annotations_contradict_their_score_conflict(row, reason):
    assert reason in rationale_conflict(row)


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
    # the bench annotates no violation elsewhere: only its pc 5 row keeps an honest target
    assert answers == [answer_text(PCS[0], "1. The ball hovers."), answer_text(5, NO_VIOLATION)]
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["rationale"] is True and report["rationale_conflicts"] == len(PCS) - 2
    with pytest.raises(ValueError, match="does not ask for one"):
        prepare(bench, "train", tmp_path / "bad", PROMPT, rationale=True)


def test_prepare_with_rationale_refuses_rows_that_list_no_violation_at_all(bench, tmp_path):
    """Every row below pc 5 was skipped as a conflict: a file without the columns lost them."""
    thinking = PROMPTS_DIR / "video_reward_with_thinking.yaml"
    with pytest.raises(ValueError, match="no row lists a violation"):
        prepare(bench, "train", tmp_path / "cot", thinking, rationale=True)


def test_odd_cells_cost_their_row_only(tmp_path):
    """A 300-character id (it names a file), a rule list nested past Python's parser, and blank
    rule strings, which name no violation."""
    rows = [
        raw_row(0, id="a" * 300),
        raw_row(1, human_violated_rules="[" + "-" * 1000 + "1]"),
        raw_row(2, human_violated_rules="[" + "-" * 10_000 + "1]"),
        raw_row(3, human_violated_rules="['', '   ']", physics_rules_unfollowed="['']"),
    ]
    write_jsonl(tmp_path / "train.jsonl", rows)
    loaded = load_rows(tmp_path, "train")
    assert [row["id"] for row in loaded.rows] == ["train_0003"]
    assert loaded.rows[0]["human_violated_rules"] == []
    assert loaded.rows[0]["physics_rules_unfollowed"] == []
    assert [index for index, _ in loaded.skipped] == [0, 1, 2]
    long_id, nested, deeper = (why for _, why in loaded.skipped)
    assert "longer than 128 characters" in long_id
    assert "holds a non-text item 'UnaryOp'" in nested
    assert "is not a list literal" in deeper


def test_prepare_limit_and_missing_or_broken_videos(bench, tmp_path):
    """A clip that does not decode is left out here, not met by a training step later."""
    (bench / "videos/train_0001.mp4").unlink()
    clip = bench / "videos/train_0003.mp4"
    clip.write_bytes(clip.read_bytes()[:2500])  # truncated
    out = prepare(bench, "train", tmp_path / "small", PROMPT, limit=4)
    assert load_conversations(out)["id"] == ["train_0000", "train_0002"]
    report = json.loads((out / "prepare_report.json").read_text())
    lost = [item for item in report["skipped"] if "id" in item]  # the bench's bad row aside
    assert [(item["id"], item["video_url"]) for item in lost] == [
        ("train_0001", "videos/train_0001.mp4"),
        ("train_0003", "videos/train_0003.mp4"),
    ]
    missing, truncated = (item["reason"] for item in lost)
    assert "no such video file" in missing
    assert "train_0003.mp4" in truncated and "video" in truncated
    failed = [json.loads(line) for line in (out / "failed.jsonl").read_text().splitlines()]
    assert failed == report["skipped"]  # the dataset's own record of every row it lacks


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


# ------------------------------------------------------------------ VideoPhy-2 rows as published


def test_published_csv_parses_every_field(tmp_path):
    path = write_csv(tmp_path / "test.csv", videophy2_rows(["", "", ""]))
    assert b"\r\n" in path.read_bytes()
    rows = load_rows(path).rows
    assert [row["caption"] for row in rows] == CAPTIONS
    assert [row["video_url"] for row in rows] == [f"{g}/{NAME}" for g in GENERATORS]
    assert {row["metadata_rules"] for row in rows} == {"{}"}
    assert [row["human_violated_rules"] for row in rows] == [
        ["The ball floats."],
        [],
        ["The ball floats."],
    ]
    assert [(row["pc"], row["sa"], row["is_hard"]) for row in rows] == [
        (1, 3, 0),
        (2, 4, 1),
        (3, 5, 0),
    ]


def test_rationale_targets_on_published_rows_never_contradict_their_score(tmp_path):
    """Rows as VideoPhy-2 publishes them: pc 1..5, `human_violated_rules` empty for pc 2 and 4
    and listing a violation for pc 5; the pc 2 row names its rule in physics_rules_unfollowed."""
    rows = videophy2_rows([f"r{i}/" for i in range(5)])
    rows[1]["physics_rules_unfollowed"] = "['Objects fall when dropped.']"
    rng = np.random.default_rng(0)
    for row in rows:
        (tmp_path / row["video_url"]).parent.mkdir(parents=True)
        write_clip(tmp_path / row["video_url"], rng.integers(0, 255, (4, 32, 32, 3), np.uint8), 4)
    path = write_csv(tmp_path / "test.csv", rows)
    thinking = PROMPTS_DIR / "video_reward_with_thinking.yaml"

    out = prepare(path, None, tmp_path / "cot", thinking, rationale=True)
    answers = [json.loads(c)[-1]["content"] for c in load_conversations(out)["conversations"]]
    assert answers == [
        answer_text(1, "1. The ball floats."),
        answer_text(2, "1. Objects fall when dropped."),
        answer_text(3, "1. The ball floats."),
    ]
    for answer in answers:  # a violation is listed exactly when the score is below 5
        assert bool(listed_violations(think_block(answer))) == (parse_answer(answer) < 5)
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["rationale_conflicts"] == 2 and report["rows_out"] == 3
    reasons = sorted(item["reason"] for item in report["skipped"])
    assert "pc 4 but no violation" in reasons[0] and "pc 5 but" in reasons[1]

    plain = prepare(path, None, tmp_path / "plain", PROMPT)  # bare answers contradict nothing
    assert json.loads((plain / "prepare_report.json").read_text())["rationale_conflicts"] == 0
    assert load_conversations(plain)["pc"] == [1, 2, 3, 4, 5]


def test_same_file_name_in_two_generator_folders_gives_two_stable_ids(tmp_path):
    """VideoPhy-2 reuses file names across generators: the stem alone made the second a duplicate."""
    path = write_csv(tmp_path / "test.csv", videophy2_rows(["", ""]))
    first, again = load_rows(path), load_rows(path)
    assert first.skipped == [] and len(first) == 2
    ids = [row["id"] for row in first.rows]
    assert len(set(ids)) == 2 and ids == [row["id"] for row in again.rows]
    assert all(SAFE_ID.match(row_id) for row_id in ids)  # ids name files


def test_bom_prefixed_copy_loads_the_same_rows(tmp_path):
    original = write_csv(tmp_path / "test.csv", videophy2_rows(["", "", ""]))
    copy = tmp_path / "test_bom.csv"
    copy.write_bytes(b"\xef\xbb\xbf" + original.read_bytes())
    assert load_rows(copy).rows == load_rows(original).rows
    assert load_rows(copy).rows[0]["caption"] == CAPTIONS[0]  # the first column is not lost


def test_file_in_another_encoding_is_named(tmp_path):
    path = tmp_path / "latin1.csv"
    rows = [dict(row, caption="Un glaçon fond.") for row in videophy2_rows([""])]
    path.write_bytes(csv_text(rows).encode("cp1252"))
    with pytest.raises(ValueError, match=rf"{path}: not UTF-8 text .* save it as UTF-8"):
        load_rows(path)


def test_absent_column_is_reported_once_with_the_columns_found(tmp_path):
    columns = [name for name in COLUMNS if name != "pc"]
    path = write_csv(tmp_path / "test.csv", videophy2_rows(["", ""]), columns)
    message = r"column `pc` is not in the header; found: 'caption', 'video_url', 'sa', 'joint'"
    with pytest.raises(ValueError, match=message):
        load_rows(path)
    with pytest.raises(ValueError, match=message):
        prepare(path, None, tmp_path / "out", PROMPT)
    assert [row["pc"] for row in load_rows(path, labels=False).rows] == [None, None]


def test_misspelt_column_in_jsonl_is_reported_once(tmp_path):
    write_jsonl(tmp_path / "rows.jsonl", [{"video_url": "a.mp4", "PC": 3, "sa": 3}] * 2)
    with pytest.raises(
        ValueError, match=r"column `pc` is not in the header; found: 'video_url', 'PC'"
    ):
        load_rows(tmp_path / "rows.jsonl")


@pytest.mark.parametrize("source", ["derived/records.json", "derived/notes.txt"])
def test_relative_file_paths_are_not_hub_ids(tmp_path, monkeypatch, source):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("asked the hub"))
    (tmp_path / "derived").mkdir()
    (tmp_path / source).write_text("[]")
    with pytest.raises(ValueError, match="neither a folder"):
        load_rows(source, "test")


def test_upper_case_suffix_is_a_local_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("asked the hub"))
    (tmp_path / "data").mkdir()
    write_csv(tmp_path / "data/upper.CSV", videophy2_rows([""]))
    assert len(load_rows("data/upper.CSV")) == 1


def test_optional_fields_never_drop_a_row(tmp_path):
    rows = [
        raw_row(0, human_violated_rules="nan", joint=True, is_hard=False),
        raw_row(1, human_violated_rules="None", joint=False, is_hard=True),
        raw_row(2, joint="True", is_hard="nan", physics_rules_unfollowed="nan"),
    ]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    datasets.Dataset.from_list(rows[:2]).to_parquet(tmp_path / "rows.parquet")
    loaded = load_rows(tmp_path / "rows.jsonl")
    assert loaded.skipped == []
    assert [(r["joint"], r["is_hard"]) for r in loaded.rows] == [(1, 0), (0, 1), (1, 0)]
    assert [r["human_violated_rules"] for r in loaded.rows] == [[], [], []]
    assert load_rows(tmp_path / "rows.parquet").rows == loaded.rows[:2]


def test_rows_without_labels_load_when_labels_are_optional(tmp_path):
    write_jsonl(
        tmp_path / "clips.jsonl",
        [{"video_url": "a.mp4"}, {"video_url": "b.mp4", "pc": 4}, {"video_url": "c.mp4", "pc": 9}],
    )
    loaded = load_rows(tmp_path / "clips.jsonl", labels=False)
    assert [(row["pc"], row["joint"]) for row in loaded.rows] == [(None, None), (4, None)]
    assert loaded.skipped == [(2, "`pc`=9 is outside 1..5")]  # a bad label is still bad


def test_folder_of_videos_is_a_source_searched_recursively(tmp_path):
    frames = np.zeros((2, 16, 16, 3), np.uint8)
    for name in ("cogvideo/0001.mp4", "hunyuan/0001.mp4", "deep/er/clip.MP4"):
        (tmp_path / "clips" / name).parent.mkdir(parents=True, exist_ok=True)
        write_clip(tmp_path / "clips" / name, frames, 4)
    (tmp_path / "clips/notes.txt").write_text("not a video")
    loaded = load_rows(tmp_path / "clips", labels=False)
    assert sorted(row["video_url"] for row in loaded.rows) == [
        "cogvideo/0001.mp4",
        "deep/er/clip.MP4",
        "hunyuan/0001.mp4",
    ]
    assert len({row["id"] for row in loaded.rows}) == 3
    assert all(Path(row["video"]).is_file() and row["pc"] is None for row in loaded.rows)
    with pytest.raises(ValueError, match="folder of videos, which has no human scores"):
        prepare(tmp_path / "clips", None, tmp_path / "out", PROMPT)
