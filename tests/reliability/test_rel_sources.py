"""Sources as users bring them, through the command line: hosts that cannot be reached, rows
without human scores. What a user sees is one line on stderr, never a traceback, and every row
accounted for on disk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rel_helpers import REPO_ROOT, child_env
from videophy2_rows import dead_hosts, videophy2_rows, write_csv

from recipe_utils.videophy2 import url_key

pytestmark = pytest.mark.reliability


def run_cli(*args: object) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "recipe_utils", *map(str, args)]
    return subprocess.run(
        command, cwd=REPO_ROOT, env=child_env(), capture_output=True, text=True, timeout=300
    )


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def assert_one_error_line(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "no video could be scored" in result.stderr or "no usable rows" in result.stderr


@pytest.fixture
def offline_csv(tmp_path) -> tuple[Path, list[str]]:
    rows = videophy2_rows(dead_hosts() * 2)
    return write_csv(tmp_path / "test.csv", rows), sorted(url_key(r["video_url"]) for r in rows)


def test_prepare_with_every_host_unreachable(offline_csv, tmp_path):
    source, ids = offline_csv
    result = run_cli("prepare", "--source", source, "--out", tmp_path / "data/test")
    assert_one_error_line(result)
    failed = jsonl(tmp_path / "data/test/failed.jsonl")
    assert sorted(item["id"] for item in failed) == ids
    assert all(item["reason"].startswith("cannot reach http://") for item in failed)


def test_score_with_every_host_unreachable_never_loads_the_model(offline_csv, tmp_path):
    source, ids = offline_csv
    out = tmp_path / "scores"
    result = run_cli("score", "--model", tmp_path / "no_model", "--source", source, "--out", out)
    assert_one_error_line(result)  # loading the missing model would have failed otherwise
    records = jsonl(out / "predictions.jsonl")
    assert sorted(r["id"] for r in records) == ids  # every row has its line, with the reason
    assert all(r["pred"] is None and r["error"].startswith("cannot reach") for r in records)
    assert sorted(item["id"] for item in jsonl(out / "failed.jsonl")) == ids


def test_score_a_file_without_rows_says_so(tmp_path):
    source = write_csv(tmp_path / "empty.csv", [])
    result = run_cli(
        "score", "--model", tmp_path / "no_model", "--source", source, "--out", tmp_path / "s"
    )
    assert_one_error_line(result)
    assert "it has no rows" in result.stderr
