"""Rows shaped like the published VideoPhy-2 test CSV, written here so no test needs the hub:
CRLF line ends, an empty-named column, `metadata_rules` of `{}`, captions that start with a tab
or a curly quote, file names holding commas, semicolons, apostrophes and `+`, and the same file
name under two generator folders."""

from __future__ import annotations

import csv
import io
import socket
from pathlib import Path

COLUMNS = [
    "caption",
    "video_url",
    "sa",
    "pc",
    "joint",
    "physics_rules_followed",
    "physics_rules_unfollowed",
    "physics_rules_cannot_be_determined",
    "human_violated_rules",
    "action",
    "category",
    "",
    "metadata_rules",
    "upsampled_caption",
    "model_name",
    "is_hard",
]
CAPTIONS = [
    "\tA ball rolls off a table.",
    "\u201cA glass\u201d tips over; water spills.",
    "Ice melts.",
]
NAME = "a ball, rolling; off a table's edge+1.mp4"
GENERATORS = ["cogvideo", "hunyuan", "ray2"]


def videophy2_rows(bases: list[str]) -> list[dict]:
    """One row per base URL or folder, each naming the same file under its generator folder."""
    rows = []
    for i, base in enumerate(bases):
        generator = GENERATORS[i % len(GENERATORS)]
        rows.append(
            {
                "caption": CAPTIONS[i % len(CAPTIONS)],
                "video_url": f"{base}{generator}/{NAME}",
                "sa": str(3 + i % 3),
                "pc": str(1 + i % 5),
                "joint": "0",
                "physics_rules_followed": "['Gravity pulls the ball down.']",
                "physics_rules_unfollowed": "[]",
                "physics_rules_cannot_be_determined": "[nan]",
                "human_violated_rules": "[nan]" if i % 2 else "['The ball floats.']",
                "action": "rolling",
                "category": "Sports",
                "": str(i),
                "metadata_rules": "{}",
                "upsampled_caption": "",
                "model_name": generator,
                "is_hard": str(i % 2),
            }
        )
    return rows


def csv_text(rows: list[dict], columns: list[str] = COLUMNS) -> str:
    """The rows as the published file writes them: a header and CRLF line ends."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({name: row.get(name, "") for name in columns} for row in rows)
    return buffer.getvalue()


def write_csv(path: Path, rows: list[dict], columns: list[str] = COLUMNS) -> Path:
    path.write_bytes(csv_text(rows, columns).encode("utf-8"))
    return path


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dead_hosts() -> list[str]:
    """Bases of two hosts nothing answers on, like the S3 bucket and the CDN seen offline."""
    return [f"http://127.0.0.1:{closed_port()}/", f"http://localhost:{closed_port()}/"]
