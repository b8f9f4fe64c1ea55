"""Put scored clips in order and keep the best: `ranking.csv` and, for a threshold, the kept and
dropped lists.

A clip ranks by its expected score (the probability-weighted mean over 1..5) where the scorer
wrote one, else by its answer: the expected score separates clips that gave the same answer.
Clips without a score (a failed video, an unparsed answer) come last and are never kept.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from .videophy2 import is_url

RANKING_COLUMNS = ("rank", "id", "clip", "score", "expected_score", "answer")


def clip_of(record: dict) -> str:
    """What a person would open: the URL for a remote clip, else the local file."""
    url = record.get("video_url") or ""
    return url if is_url(url) else record.get("video") or url or record["id"]


def relative_clip(clip: str, folder: str | Path) -> str:
    """`clip` relative to the scored `folder` (generator_a/videos/test_0003.mp4), so clips that
    share a file name in different subfolders stay apart in a table; a URL or a file outside
    `folder` as it is."""
    path = Path(clip)
    return str(path.relative_to(folder)) if path.is_relative_to(folder) else clip


def keep_check(kept: list[str], dropped: list[str], labels: dict[str, int], good: int = 4) -> dict:
    """A keep list against labels found later (`labels`: pc by clip): how many kept clips have a
    label and how many of those are `good` or better, next to the same among all labelled
    clips, which is what keeping clips at random would give."""
    kept_pcs = [labels[clip] for clip in kept if clip in labels]
    all_pcs = kept_pcs + [labels[clip] for clip in dropped if clip in labels]
    return {
        "good": good,
        "kept": len(kept_pcs),
        "kept_good": sum(pc >= good for pc in kept_pcs),
        "labelled": len(all_pcs),
        "labelled_good": sum(pc >= good for pc in all_pcs),
    }


def rank_score(record: dict) -> float | None:
    if record.get("error"):
        return None
    expected = record.get("expected")
    return expected if expected is not None else record.get("pred")


def ranked(records: list[dict]) -> list[dict]:
    """Highest score first; ties keep their input order; clips without a score last."""
    return sorted(records, key=lambda r: (rank_score(r) is None, -(rank_score(r) or 0.0)))


def answer_of(record: dict) -> str:
    if record.get("error"):
        return f"error: {record['error']}"
    return (record.get("raw") or [""])[0]


def write_ranking(records: list[dict], path: str | Path) -> Path:
    """`ranking.csv`: one row per clip, best first (clip, score, expected score, answer)."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(RANKING_COLUMNS)
        for rank, record in enumerate(ranked(records), start=1):
            expected = record.get("expected")
            writer.writerow(
                [
                    rank,
                    record["id"],
                    clip_of(record),
                    "" if record.get("pred") is None else record["pred"],
                    "" if expected is None else f"{expected:.4f}",
                    answer_of(record),
                ]
            )
    return path


def check_bar(above: float) -> float:
    """A keep-above bar on the 1..5 scale: at or past its ends it keeps every clip or none."""
    if not (math.isfinite(above) and 1 <= above < 5):
        raise ValueError(
            f"the bar to keep clips above must be at least 1 and below 5 (scores run 1..5), "
            f"got {above}"
        )
    return above


def write_keep_lists(records: list[dict], out_dir: str | Path, above: float) -> tuple[Path, Path]:
    """`kept.txt` (clips scoring above `above`, best first) and `dropped.txt` (the rest), one
    clip per line, ready for `xargs` or a data loader."""
    check_bar(above)
    out_dir = Path(out_dir)
    kept, dropped = [], []
    for record in ranked(records):
        score = rank_score(record)
        (kept if score is not None and score > above else dropped).append(clip_of(record))
    paths = out_dir / "kept.txt", out_dir / "dropped.txt"
    for path, clips in zip(paths, (kept, dropped), strict=True):
        path.write_text("".join(f"{clip}\n" for clip in clips), encoding="utf-8")
    return paths
