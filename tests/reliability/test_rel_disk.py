"""An output folder that cannot be written stops a run before any work, naming the folder.

Tests run as root, where a read-only mode bit does not stop writes, so the unwritable folder is
one below a regular file (`afile/out`): no user can create it.
"""

from __future__ import annotations

import os
import re

import pytest

from recipe_utils.prompts import PROMPTS_DIR
from recipe_utils.scoring import ensure_writable, score_rows, score_split
from recipe_utils.train import SFTSettings, train_sft
from recipe_utils.videophy2 import download_videos

pytestmark = pytest.mark.reliability


@pytest.fixture
def blocked(tmp_path):
    (tmp_path / "afile").write_text("a file, not a folder")
    return tmp_path / "afile" / "out"


class NoWorkScorer:
    """Fails the test if scoring starts."""

    def score(self, rows):
        pytest.fail("score_rows scored a batch although it cannot write its output")


def test_ensure_writable_names_the_folder(blocked):
    with pytest.raises(PermissionError) as info:
        ensure_writable(blocked)
    assert str(info.value).startswith(f"{blocked}: cannot write here")
    assert "choose another --out" in str(info.value)


def test_score_rows_refuses_before_scoring(blocked):
    rows = [{"id": "a", "video": "/nowhere.mp4", "pc": 3}]
    with pytest.raises(PermissionError, match=re.escape(f"{blocked}: cannot write here")):
        score_rows(NoWorkScorer(), rows, blocked)


def test_score_split_refuses_before_loading_rows_or_model(blocked, tmp_path):
    # Neither the model nor the source exist: reaching either would raise something else.
    with pytest.raises(PermissionError, match=re.escape(f"{blocked}: cannot write here")):
        score_split(
            tmp_path / "no_model",
            tmp_path / "no_source",
            "test",
            blocked,
            PROMPTS_DIR / "video_reward.yaml",
            {"fps": 4, "max_pixels": 12544},
        )


def test_train_sft_refuses_before_loading_the_model(blocked, tmp_path):
    with pytest.raises(OSError) as info:
        train_sft(tmp_path / "no_model", tmp_path / "no_data", blocked, SFTSettings(steps=1))
    assert str(blocked) in str(info.value)


def test_download_refuses_before_any_request(blocked):
    row = {"id": "a", "video_url": "http://127.0.0.1:9/a.mp4"}  # port 9: nothing is contacted
    with pytest.raises(OSError) as info:
        download_videos([row], blocked, timeout=0.1, retries=0)
    assert str(blocked / "videos") in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores read-only mode bits")
def test_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(PermissionError, match=re.escape(f"{folder}: cannot write here")):
            ensure_writable(folder)
    finally:
        folder.chmod(0o755)
