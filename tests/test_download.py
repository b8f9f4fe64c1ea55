"""Video downloads against a local HTTP server (127.0.0.1 only): retries, resumption, failures."""

import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import datasets
import numpy as np
import pytest

from recipe_utils.prompts import PROMPTS_DIR
from recipe_utils.video import probe, write_clip
from recipe_utils.videophy2 import (
    HubUnreachable,
    download_videos,
    load_conversations,
    prepare,
    url_key,
)

FAST = {"workers": 4, "timeout": 0.5, "retries": 1, "backoff": 0.01}


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    length: int | None = None  # Content-Length to announce; more than len(body) cuts it short
    delay: float = 0.0


class Server:
    """Serves scripted replies per path: the n-th GET gets the n-th reply (the last repeats)."""

    def __init__(self):
        self.routes: dict[str, list[Reply]] = {}
        self.hits: Counter = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with server.lock:
                    server.hits[self.path] += 1
                    replies = server.routes.get(self.path, [Reply(404)])
                    reply = replies[min(server.hits[self.path], len(replies)) - 1]
                time.sleep(reply.delay)
                self.send_response(reply.status)
                self.send_header("Content-Length", str(reply.length or len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A client that timed out has closed its socket; the late reply's BrokenPipe is expected.
        self.httpd.handle_error = lambda request, address: None
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server():
    srv = Server()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


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
    server.routes = {"/a.mp4": [Reply(body=body)], "/b.mp4": [Reply(body=body)]}
    rows = [hub_row(server.url("/a.mp4")), hub_row(server.url("/b.mp4"))]
    report = download_videos(rows, tmp_path / "out", **FAST)
    assert sorted(report.fetched) == sorted(row["id"] for row in rows)
    assert report.failed == [] and report.present == []
    for row in rows:
        assert row["video"] == str((tmp_path / "out/videos" / f"{row['id']}.mp4").resolve())
        assert probe(row["video"]).frames == 4
    assert (tmp_path / "out/failed.jsonl").read_text() == ""


def test_rows_keep_their_own_video_whatever_the_order(server, tmp_path):
    """The recipe named files by row number, so a second dataset got the wrong videos."""
    server.routes = {
        "/narrow.mp4": [Reply(body=mp4_bytes(tmp_path, width=32))],
        "/wide.mp4": [Reply(body=mp4_bytes(tmp_path, width=64))],
    }
    narrow, wide = hub_row(server.url("/narrow.mp4")), hub_row(server.url("/wide.mp4"))
    download_videos([narrow, wide], tmp_path / "out", **FAST)
    again = [hub_row(server.url("/wide.mp4")), hub_row(server.url("/narrow.mp4"))]
    download_videos(again, tmp_path / "out", **FAST)
    assert probe(again[0]["video"]).width == probe(wide["video"]).width == 64
    assert probe(again[1]["video"]).width == probe(narrow["video"]).width == 32


def test_server_error_is_retried(server, tmp_path):
    server.routes = {"/flaky.mp4": [Reply(500), Reply(body=mp4_bytes(tmp_path))]}
    row = hub_row(server.url("/flaky.mp4"))
    report = download_videos([row], tmp_path / "out", **FAST)
    assert report.fetched == [row["id"]]
    assert server.hits["/flaky.mp4"] == 2


@pytest.mark.parametrize(
    ("reply", "reason", "attempts"),
    [
        (Reply(404), "HTTP 404", 1),
        (Reply(body=b"<html>not a video</html>"), "not a readable video", 1),
        (Reply(500), "HTTP 500", 2),
        ("truncated", "cut off", 2),
        (Reply(delay=1.0), "timed out", 2),
    ],
    ids=["404", "not-video", "500-always", "truncated", "timeout"],
)
def test_failures_are_recorded_and_leave_nothing_partial(server, tmp_path, reply, reason, attempts):
    if reply == "truncated":
        body = mp4_bytes(tmp_path)
        reply = Reply(body=body[: len(body) // 2], length=len(body))
    server.routes = {"/bad.mp4": [reply]}
    bad = hub_row(server.url("/bad.mp4"))
    report = download_videos([bad], tmp_path / "out", **FAST)
    assert report.fetched == []
    assert [item["id"] for item in report.failed] == [bad["id"]]
    assert reason in report.failed[0]["reason"]
    assert server.hits["/bad.mp4"] == attempts
    assert bad["video"] is None
    assert final_files(tmp_path / "out") == []  # not under the final name, no leftover .part
    failed = [json.loads(line) for line in (tmp_path / "out/failed.jsonl").read_text().splitlines()]
    assert failed == [
        {"id": bad["id"], "url": bad["video_url"], "reason": report.failed[0]["reason"]}
    ]


def test_one_failure_does_not_stop_the_others(server, tmp_path):
    server.routes = {"/good.mp4": [Reply(body=mp4_bytes(tmp_path))]}
    good, missing = hub_row(server.url("/good.mp4")), hub_row(server.url("/missing.mp4"))
    report = download_videos([missing, good], tmp_path / "out", **FAST)
    assert report.fetched == [good["id"]]
    assert [item["id"] for item in report.failed] == [missing["id"]]
    assert final_files(tmp_path / "out") == [f"{good['id']}.mp4"]


def test_rerun_fetches_nothing_already_complete(server, tmp_path):
    server.routes = {"/a.mp4": [Reply(body=mp4_bytes(tmp_path))], "/b.mp4": [Reply(404)]}
    rows = [hub_row(server.url("/a.mp4")), hub_row(server.url("/b.mp4"))]
    download_videos(rows, tmp_path / "out", **FAST)
    server.routes["/b.mp4"] = [Reply(body=mp4_bytes(tmp_path, seed=1))]
    rows = [hub_row(server.url("/a.mp4")), hub_row(server.url("/b.mp4"))]
    report = download_videos(rows, tmp_path / "out", **FAST)
    assert report.present == [rows[0]["id"]] and report.fetched == [rows[1]["id"]]
    assert server.hits == {"/a.mp4": 1, "/b.mp4": 2}
    assert all(Path(row["video"]).is_file() for row in rows)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_offline_fails_fast_with_a_way_out(tmp_path):
    rows = [hub_row(f"http://127.0.0.1:{closed_port()}/a.mp4")]
    with pytest.raises(HubUnreachable, match="cannot reach .*--source path/to/file.jsonl"):
        download_videos(rows, tmp_path / "out", **FAST)
    assert final_files(tmp_path / "out") == []


def test_complete_downloads_are_usable_offline(tmp_path):
    row = hub_row(f"http://127.0.0.1:{closed_port()}/a.mp4")
    (tmp_path / "out/videos").mkdir(parents=True)
    (tmp_path / "out/videos" / f"{row['id']}.mp4").write_bytes(mp4_bytes(tmp_path))
    report = download_videos([row], tmp_path / "out", **FAST)
    assert report.present == [row["id"]] and Path(row["video"]).is_file()


def test_prepare_from_the_hub_downloads_then_builds(server, tmp_path, monkeypatch):
    server.routes = {"/1.mp4": [Reply(body=mp4_bytes(tmp_path))], "/2.mp4": [Reply(404)]}
    hub = [dict(video_url=server.url(f"/{i}.mp4"), caption="c", sa=5, pc=4.0) for i in (1, 2)]
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
    key = url_key(server.url("/1.mp4"))
    assert dataset["id"] == [key]
    assert dataset["video"] == [str((tmp_path / "data/videos" / f"{key}.mp4").resolve())]
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["skipped"][0]["id"] == url_key(server.url("/2.mp4"))
    assert report["download"] == {"fetched": 1, "present": 0, "failed": 1}
    assert (tmp_path / "data/failed.jsonl").read_text().count("\n") == 1
