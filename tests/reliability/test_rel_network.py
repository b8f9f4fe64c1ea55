"""Network faults through `videophy2.download_videos`, against a server on 127.0.0.1 only.

Every failure must land in OUT/failed.jsonl with its id, URL and reason, leave the row without a
video, and leave no file, whole or partial, under the final name.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rel_helpers import make_clip

from recipe_utils import videophy2
from recipe_utils.video import probe
from recipe_utils.videophy2 import download_videos, normalize_row

pytestmark = pytest.mark.reliability

# A timeout no loaded machine reaches while the server answers, and a short one for replies that
# stall until the test ends: only a stall times out, so attempt counts are exact on any machine.
PATIENT = {"workers": 4, "timeout": 30.0, "retries": 1, "backoff": 0.01}
STALLED = dict(PATIENT, timeout=0.3)


@pytest.fixture(scope="module")
def mp4(tmp_path_factory) -> bytes:
    return make_clip(tmp_path_factory.mktemp("src") / "clip.mp4").read_bytes()


def hub_row(url: str) -> dict:
    return normalize_row({"video_url": url, "sa": 4, "pc": 4, "caption": "a ball"}, base=None)


def failures(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "failed.jsonl").read_text().splitlines()]


def files(out: Path) -> list[str]:
    return sorted(p.name for p in (out / "videos").iterdir())


FAULTS = [
    ("not_found", ["404"], "HTTP 404", 1, PATIENT),
    ("bad_request", ["400"], "HTTP 400", 1, PATIENT),
    ("server_error_twice", ["500"], "HTTP 500", 2, PATIENT),
    ("too_many_requests_twice", ["429"], "HTTP 429", 2, PATIENT),
    ("no_headers_before_timeout", ["late"], "Read timed out", 2, STALLED),
    ("slow_body_past_timeout", ["slow"], "Read timed out", 2, STALLED),
    ("connection_reset", ["reset"], "connection failed or cut off", 2, PATIENT),
    ("truncated_body", ["short"], "connection failed or cut off", 2, PATIENT),
]


@pytest.mark.parametrize(
    "script, reason, attempts, options", [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS]
)
def test_fault_is_recorded_and_leaves_no_file(
    server, mp4, tmp_path, script, reason, attempts, options
):
    row = hub_row(server.add("/v/bad.mp4", mp4, *script))
    report = download_videos([row], tmp_path, **options)
    assert report.fetched == [] and [f["id"] for f in report.failed] == [row["id"]]
    [failed] = failures(tmp_path)
    assert failed == {"id": row["id"], "url": row["video_url"], "reason": failed["reason"]}
    assert reason in failed["reason"]
    if attempts > 1:
        assert failed["reason"].endswith(f"(gave up after {attempts} attempts)")
    assert server.hits["/v/bad.mp4"] == attempts
    assert row["video"] is None
    assert files(tmp_path) == []  # neither ID.mp4 nor ID.mp4.part


def test_complete_body_that_is_not_a_video_is_not_kept(server, mp4, tmp_path):
    row = hub_row(server.add("/v/cut.mp4", mp4[: len(mp4) // 2], "ok"))
    download_videos([row], tmp_path, **PATIENT)
    [failed] = failures(tmp_path)
    assert "not a readable video" in failed["reason"]
    assert server.hits["/v/cut.mp4"] == 1  # a bad file is not worth another attempt
    assert files(tmp_path) == []


def test_server_error_then_success_downloads_the_video(server, mp4, tmp_path):
    row = hub_row(server.add("/v/flaky.mp4", mp4, "500", "ok"))
    report = download_videos([row], tmp_path, **PATIENT)
    assert report.fetched == [row["id"]] and report.failed == []
    assert (tmp_path / "failed.jsonl").read_text() == ""
    assert files(tmp_path) == [f"{row['id']}.mp4"]
    assert probe(row["video"]).frames == 16


def test_too_many_requests_is_retried_until_the_video_comes(server, mp4, tmp_path):
    """A host that rate-limits (HTTP 429) is asked again after the back-off, not given up on."""
    row = hub_row(server.add("/v/busy.mp4", mp4, "429", "ok"))
    report = download_videos([row], tmp_path, **PATIENT)
    assert report.fetched == [row["id"]] and report.failed == []
    assert server.hits["/v/busy.mp4"] == 2
    assert probe(row["video"]).frames == 16


def test_retries_back_off_exponentially(server, mp4, tmp_path, monkeypatch):
    waits = []
    monkeypatch.setattr(videophy2.time, "sleep", waits.append)
    row = hub_row(server.add("/v/down.mp4", mp4, "503"))
    download_videos([row], tmp_path, **dict(PATIENT, retries=3, backoff=1.5))
    assert waits == [1.5, 3.0, 6.0] and server.hits["/v/down.mp4"] == 4


def test_reachability_check_is_bounded_by_the_timeout(server, mp4, tmp_path, monkeypatch):
    """A host that accepts the connection and never answers must not hang the check."""
    asked = []
    monkeypatch.setattr(videophy2.requests, "head", lambda url, **kw: asked.append((url, kw)))
    rows = [hub_row(server.add(f"/v/{name}.mp4", mp4, "ok")) for name in ("a", "b")]
    download_videos(rows, tmp_path, **dict(PATIENT, timeout=7.0))
    host = rows[0]["video_url"].removesuffix("v/a.mp4")
    assert asked == [(host, {"timeout": 7.0})]  # one check per host, with the timeout


def test_one_fault_does_not_stop_the_other_downloads(server, mp4, tmp_path):
    good = [hub_row(server.add(f"/v/good{i}.mp4", mp4, "ok")) for i in range(3)]
    bad = hub_row(server.add("/v/reset.mp4", mp4, "reset"))
    report = download_videos([good[0], bad, *good[1:]], tmp_path, **PATIENT)
    assert sorted(report.fetched) == sorted(row["id"] for row in good)
    assert [f["id"] for f in failures(tmp_path)] == [bad["id"]]
    assert files(tmp_path) == sorted(f"{row['id']}.mp4" for row in good)
    assert all(probe(row["video"]).frames == 16 for row in good)
