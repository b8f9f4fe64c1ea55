"""Video downloads against a local HTTP server (127.0.0.1 only): file names, resumption, offline
use and `prepare` from the hub. Faults (HTTP errors, timeouts, cut bodies) are the reliability
suite's (tests/reliability/test_rel_network.py)."""

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from videophy2_rows import closed_port, dead_hosts, videophy2_rows, write_csv

from recipe_utils.prompts import PROMPTS_DIR
from recipe_utils.video import probe, write_clip
from recipe_utils.videophy2 import (
    download_videos,
    load_conversations,
    prepare,
    url_key,
)

# The local server answers at once; the timeout only has to be one no loaded machine reaches.
PATIENT = {"workers": 4, "timeout": 30.0, "retries": 1, "backoff": 0.01}


def mp4_bytes(tmp_path: Path, width: int = 32, seed: int = 0) -> bytes:
    path = tmp_path / f"clip_{width}_{seed}.mp4"
    frames = np.random.default_rng(seed).integers(0, 255, (4, 32, width, 3), np.uint8)
    write_clip(path, frames, 4)
    return path.read_bytes()


def hub_row(url: str, pc: int = 3) -> dict:
    return {"id": url_key(url), "video_url": url, "video": None, "pc": pc}


def final_files(out: Path) -> list[str]:
    return sorted(path.name for path in (out / "videos").iterdir())


def test_success_names_files_by_url_key_and_sets_video(server, tmp_path):
    body = mp4_bytes(tmp_path)
    rows = [hub_row(server.add("/a.mp4", body, "ok")), hub_row(server.add("/b.mp4", body, "ok"))]
    report = download_videos(rows, tmp_path / "out", **PATIENT)
    assert sorted(report.fetched) == sorted(row["id"] for row in rows)
    assert report.failed == [] and report.present == []
    for row in rows:
        assert row["video"] == str((tmp_path / "out/videos" / f"{row['id']}.mp4").resolve())
        assert probe(row["video"]).frames == 4
    assert (tmp_path / "out/failed.jsonl").read_text() == ""


def test_rows_keep_their_own_video_whatever_the_order(server, tmp_path):
    """The recipe named files by row number, so a second dataset got the wrong videos."""
    narrow_url = server.add("/narrow.mp4", mp4_bytes(tmp_path, width=32), "ok")
    wide_url = server.add("/wide.mp4", mp4_bytes(tmp_path, width=64), "ok")
    narrow, wide = hub_row(narrow_url), hub_row(wide_url)
    download_videos([narrow, wide], tmp_path / "out", **PATIENT)
    again = [hub_row(wide_url), hub_row(narrow_url)]
    download_videos(again, tmp_path / "out", **PATIENT)
    assert probe(again[0]["video"]).width == probe(wide["video"]).width == 64
    assert probe(again[1]["video"]).width == probe(narrow["video"]).width == 32


def test_rerun_fetches_nothing_already_complete(server, tmp_path):
    urls = [server.add("/a.mp4", mp4_bytes(tmp_path), "ok"), server.add("/b.mp4", b"", "404")]
    download_videos([hub_row(url) for url in urls], tmp_path / "out", **PATIENT)
    server.add("/b.mp4", mp4_bytes(tmp_path, seed=1), "ok")
    rows = [hub_row(url) for url in urls]
    report = download_videos(rows, tmp_path / "out", **PATIENT)
    assert report.present == [rows[0]["id"]] and report.fetched == [rows[1]["id"]]
    assert server.hits == {"/a.mp4": 1, "/b.mp4": 2}
    assert all(Path(row["video"]).is_file() for row in rows)


def failures(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "failed.jsonl").read_text().splitlines()]


def test_unreachable_host_fails_its_rows_at_once_with_the_reason(tmp_path):
    rows = [hub_row(f"http://127.0.0.1:{closed_port()}/{name}.mp4") for name in ("a", "b")]
    report = download_videos(rows, tmp_path / "out", **PATIENT)
    assert sorted(item["id"] for item in report.failed) == sorted(row["id"] for row in rows)
    assert all(
        item["reason"].startswith("cannot reach http://127.0.0.1:") for item in report.failed
    )
    assert failures(tmp_path / "out") == sorted(report.failed, key=lambda item: item["id"])
    assert [row["video"] for row in rows] == [None, None]
    assert final_files(tmp_path / "out") == []


def test_one_unreachable_host_does_not_stop_the_others(server, tmp_path):
    good = hub_row(server.add("/a.mp4", mp4_bytes(tmp_path), "ok"))
    lost = hub_row(f"http://127.0.0.1:{closed_port()}/a.mp4")
    report = download_videos([lost, good], tmp_path / "out", **PATIENT)
    assert report.fetched == [good["id"]] and [f["id"] for f in report.failed] == [lost["id"]]
    assert Path(good["video"]).is_file() and lost["video"] is None


def test_failed_jsonl_keeps_the_entries_of_earlier_runs(server, tmp_path):
    """Datasets built from one download folder each point at failed.jsonl: none may erase it."""
    first = hub_row(server.add("/gone.mp4", b"", "404"))
    second = hub_row(server.add("/missing.mp4", b"", "404"))
    download_videos([first], tmp_path / "out", **PATIENT)
    download_videos([second], tmp_path / "out", **PATIENT)
    assert [item["id"] for item in failures(tmp_path / "out")] == [first["id"], second["id"]]


def test_complete_downloads_are_usable_offline(tmp_path):
    row = hub_row(f"http://127.0.0.1:{closed_port()}/a.mp4")
    (tmp_path / "out/videos").mkdir(parents=True)
    (tmp_path / "out/videos" / f"{row['id']}.mp4").write_bytes(mp4_bytes(tmp_path))
    report = download_videos([row], tmp_path / "out", **PATIENT)
    assert report.present == [row["id"]] and Path(row["video"]).is_file()


def test_prepare_from_the_hub_downloads_then_builds(server, tmp_path, monkeypatch):
    urls = [server.add("/1.mp4", mp4_bytes(tmp_path), "ok"), server.add("/2.mp4", b"", "404")]
    hub = [dict(video_url=url, caption="c", sa=5, pc=4.0) for url in urls]
    monkeypatch.setattr(
        datasets, "load_dataset", lambda name, split: datasets.Dataset.from_list(hub)
    )
    out = prepare(
        "videophysics/videophy2_test",
        "test",
        tmp_path / "data/test",
        PROMPTS_DIR / "video_reward.yaml",
    )
    dataset = load_conversations(out)
    key = url_key(urls[0])
    assert dataset["id"] == [key]
    assert dataset["video"] == [str((tmp_path / "data/videos" / f"{key}.mp4").resolve())]
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["skipped"][0]["id"] == url_key(urls[1])
    assert report["download"] == {"fetched": 1, "present": 0, "failed": 1}
    assert (tmp_path / "data/failed.jsonl").read_text().count("\n") == 1


def test_prepare_with_every_host_unreachable_records_every_row(tmp_path):
    source = write_csv(tmp_path / "test.csv", videophy2_rows(dead_hosts() * 2))
    out = tmp_path / "data/test"
    with pytest.raises(
        ValueError, match=r"no usable rows: 2 x cannot reach .*; 2 x cannot reach .*--source"
    ) as info:
        prepare(source, None, out, PROMPTS_DIR / "video_reward.yaml")
    assert "\n" not in str(info.value) and str(out / "failed.jsonl") in str(info.value)
    records = failures(out)
    assert sorted(r["id"] for r in records) == sorted(url_key(r["video_url"]) for r in records)
    assert len(records) == 4 and all(r["reason"].startswith("cannot reach") for r in records)


def test_prepare_keeps_the_rows_of_reachable_hosts(server, tmp_path):
    good = server.add("/cogvideo/a.mp4", mp4_bytes(tmp_path), "ok")
    rows = videophy2_rows([dead_hosts()[0], ""])
    rows[1]["video_url"] = good
    out = prepare(
        write_csv(tmp_path / "t.csv", rows), None, tmp_path / "d", PROMPTS_DIR / "video_reward.yaml"
    )
    assert load_conversations(out)["id"] == [url_key(good)]
    assert [r["id"] for r in failures(out)] == [url_key(rows[0]["video_url"])]
