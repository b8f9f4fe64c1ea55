"""Runs killed with SIGKILL, then run again: nothing lost, nothing twice, nothing half-written."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from rel_helpers import make_clip, run_and_kill

from recipe_utils import train
from recipe_utils.prompts import PROMPTS_DIR
from recipe_utils.scoring import Sampling, TransformersScorer, load_model, score_rows, score_split
from recipe_utils.video import probe
from recipe_utils.videophy2 import download_videos, load_rows, normalize_row, prepare

pytestmark = pytest.mark.reliability

PROMPT = PROMPTS_DIR / "video_reward.yaml"
VIDEO = {"fps": 4, "total_pixels": 64 * 28 * 28}
SAMPLING = Sampling(max_tokens=16, greedy=True)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def check_predictions(path: Path, rows: list[dict]) -> None:
    """Every row exactly once, each line a JSON record."""
    records = [json.loads(line) for line in lines(path)]
    ids = [record["id"] for record in records]
    assert sorted(ids) == sorted(row["id"] for row in rows)
    assert len(ids) == len(set(ids)) == len(rows)


# ----------------------------------------------------------------------------- scoring


@pytest.mark.slow
def test_scoring_killed_mid_run_resumes_without_loss_or_duplicates(tiny_model, synth, tmp_path):
    out = tmp_path / "scores"
    predictions = out / "predictions.jsonl"
    options = {
        "--model": tiny_model,
        "--source": synth,
        "--split": "test",
        "--out": out,
        "--prompt": PROMPT,
        "--batch-size": 1,
        "--fps": VIDEO["fps"],
        "--total-pixels": VIDEO["total_pixels"],
        "--max-tokens": SAMPLING.max_tokens,
    }
    flags = [str(item) for pair in options.items() for item in pair]
    command = ["-m", "recipe_utils", "score", *flags, "--greedy"]
    code = run_and_kill(command, lambda: len(lines(predictions)) >= 2, tmp_path / "score.log")
    assert code == -signal.SIGKILL
    rows = load_rows(synth, "test").rows
    assert 2 <= len(lines(predictions)) < len(rows)
    score_split(
        tiny_model,
        synth,
        "test",
        out,
        PROMPT,
        VIDEO,
        SAMPLING,
        batch_size=1,
        device="cpu",
        report=False,
    )  # the same run again, to completion
    check_predictions(predictions, rows)


def test_scoring_repairs_a_torn_last_line(tiny_model, synth, prompt, tmp_path):
    rows = load_rows(synth, "test").rows[:4]
    model, processor = load_model(tiny_model, device="cpu")
    scorer = TransformersScorer(
        tiny_model, prompt, VIDEO, SAMPLING, model=model, processor=processor
    )
    out = score_rows(scorer, rows[:2], tmp_path)
    with out.open("a") as f:
        f.write(json.dumps(rows[2])[:20])  # a write cut short by the kill
    score_rows(scorer, rows, tmp_path)
    check_predictions(out, rows)


# ----------------------------------------------------------------------------- download

DOWNLOAD_SCRIPT = """
import json, sys
from recipe_utils.videophy2 import download_videos
rows = json.loads(open(sys.argv[1]).read())
download_videos(rows, sys.argv[2], workers=4, timeout=20, retries=0)
"""


def test_download_killed_mid_body_leaves_no_partial_file_and_resumes(server, tmp_path):
    body = make_clip(tmp_path / "clip.mp4").read_bytes()
    urls = [
        server.add("/a.mp4", body, "ok"),
        server.add("/b.mp4", body, "ok"),
        server.add("/slow.mp4", body, "slow"),
    ]
    rows = [normalize_row({"video_url": url, "sa": 3, "pc": 3}, base=None) for url in urls]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    (tmp_path / "download.py").write_text(DOWNLOAD_SCRIPT)
    out = tmp_path / "out"
    videos = out / "videos"
    slow, fast = rows[2]["id"], [rows[0]["id"], rows[1]["id"]]

    def mid_body() -> bool:
        done = all((videos / f"{i}.mp4").exists() for i in fast)
        return done and server.stalled.is_set() and (videos / f"{slow}.mp4.part").exists()

    command = [str(tmp_path / "download.py"), str(tmp_path / "rows.json"), str(out)]
    assert run_and_kill(command, mid_body, tmp_path / "download.log") == -signal.SIGKILL
    assert not (videos / f"{slow}.mp4").exists()  # only the .part holds the half body

    server.routes["/slow.mp4"] = ["ok"]
    report = download_videos(rows, out, workers=2, timeout=30, retries=0)
    assert sorted(report.present) == sorted(fast) and report.fetched == [slow]
    assert (out / "failed.jsonl").read_text() == ""
    assert sorted(p.name for p in videos.iterdir()) == sorted(f"{row['id']}.mp4" for row in rows)
    assert all(probe(row["video"]).frames == 16 for row in rows)


# ----------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def sft_data(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("sft") / "data"
    return prepare(synth, "train", out, PROMPT, fps=4, max_pixels=12544, limit=8)


@pytest.mark.slow
def test_training_killed_after_a_checkpoint_resumes_from_it(tiny_model, sft_data, tmp_path):
    out = tmp_path / "sft"
    settings = train.SFTSettings(steps=6, save_every=3, batch_size=2, warmup_steps=1, device="cpu")
    script = tmp_path / "train.py"
    script.write_text(
        "import sys\nfrom recipe_utils.train import SFTSettings, train_sft\n"
        f"train_sft(sys.argv[1], sys.argv[2], sys.argv[3], SFTSettings(**{settings.__dict__!r}))\n"
    )
    state = out / "checkpoints" / "step_3" / "trainer_state.pt"
    command = [str(script), str(tiny_model), str(sft_data), str(out)]
    assert run_and_kill(command, state.exists, tmp_path / "train.log") == -signal.SIGKILL
    assert not (out / "checkpoints" / "step_6").exists()
    assert train.resume_point(out, tiny_model)[0] == 3
    saved = state.stat().st_ino
    before = train.read_log(out / "train_log.jsonl")

    final = train.train_sft(tiny_model, sft_data, out, settings)

    assert final == out / "checkpoints" / "step_6"
    assert (final / "trainer_state.pt").exists()
    assert state.stat().st_ino == saved  # step 3 was resumed from, not trained and saved again
    log = train.read_log(out / "train_log.jsonl")
    assert [entry["step"] for entry in log] == [1, 2, 3, 4, 5, 6]
    assert log[:3] == [entry for entry in before if entry["step"] <= 3]


def test_checkpoint_folder_left_half_saved_by_a_kill_is_ignored(tmp_path):
    for name in ("step_3", "step_6.tmp"):
        folder = tmp_path / "checkpoints" / name
        folder.mkdir(parents=True)
        (folder / "trainer_state.pt").write_bytes(b"")
    assert train.resume_point(tmp_path, "base") == (3, tmp_path / "checkpoints" / "step_3")


def test_training_log_with_a_torn_last_line_is_repaired_on_resume(tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.9}\n{"step": 3, "lo')
    train.truncate_log(log, 2)
    assert [entry["step"] for entry in train.read_log(log)] == [1, 2]
