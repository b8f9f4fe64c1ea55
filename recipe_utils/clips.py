"""Clips that play in a saved notebook, with no kernel running: an HTML5 <video> whose mp4 is
inside the page as a data URI, next to the clip's scores, violations and answers.

A notebook exported to HTML, opened on nbviewer or read back in JupyterLab keeps them playing,
where the ipywidgets browser of `report.clip_browser` needs a live kernel. Each clip is decoded
and re-encoded small (224x224 pixels at most, 8 fps), so a gallery of clips stays a few hundred
kilobytes whatever the source resolution.
"""

from __future__ import annotations

import base64
import html
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .video import load_clip, write_clip

DISPLAY_FPS = 8
DISPLAY_PIXELS = 224 * 224
STYLE = (
    "display:inline-block;vertical-align:top;width:240px;margin:0 12px 12px 0;font:12px sans-serif"
)
ANSWER_STYLE = "white-space:pre-wrap;max-height:12em;overflow:auto;margin:2px 0;font-size:11px"


@dataclass
class ShownClip:
    """One clip to show: its video file, a title line, the facts under it and raw answers."""

    video: str | Path
    title: str
    facts: list[str] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)


def violations(row: dict) -> list[str]:
    """The violations annotated for a clip (`human_violated_rules`; on synthetic clips the
    generator writes them), the one field every view shows."""
    return list(row.get("human_violated_rules") or [])


def row_clip(row: dict) -> ShownClip:
    """A dataset row as a clip: its labels, caption and annotated violations."""
    found = [f"violation: {v}" for v in violations(row)] or ["no violation annotated"]
    facts = [row["caption"], *found]
    return ShownClip(row["video"], f"label pc={row['pc']} · sa={row['sa']}", facts)


def scored_clip(row: dict, scored: dict[str, dict]) -> ShownClip:
    """A clip with each model's parsed score and whole answer (`scored`: {model name: its
    predictions.jsonl record}), under the label and the annotated violations. The video is the
    row's, where the run folder is now; a hub row names only a URL, so the one the models
    scored."""
    scores = " · ".join(f"{name} {record['pred']}" for name, record in scored.items())
    answers = {name: (record["raw"] or ["(no answer)"])[0] for name, record in scored.items()}
    video = row.get("video") or next(iter(scored.values()))["video"]
    facts = row_clip(row).facts
    return ShownClip(video, f"label pc={row['pc']} · {scores}", facts, answers)


def video_data_uri(
    path: str | Path, fps: float = DISPLAY_FPS, max_pixels: int = DISPLAY_PIXELS
) -> str:
    """The clip re-encoded small as an H.264 mp4, as a `data:` URI a <video> can play."""
    clip = load_clip(path, fps=fps, max_pixels=max_pixels)
    with tempfile.TemporaryDirectory() as folder:
        encoded = Path(folder) / "clip.mp4"
        write_clip(encoded, clip.frames, fps=max(1, round(clip.fps)))
        data = base64.b64encode(encoded.read_bytes()).decode()
    return f"data:video/mp4;base64,{data}"


def link(path: str | Path) -> str:
    """A link to the file, relative to the kernel's folder (the notebook's, in JupyterLab), so
    clicking it opens the file in JupyterLab."""
    target = os.path.relpath(Path(path).resolve(), Path.cwd())
    return f'<a href="{html.escape(target)}" target="_blank">{html.escape(Path(path).name)}</a>'


def card(clip: ShownClip) -> str:
    facts = "".join(f"<div>{html.escape(fact)}</div>" for fact in clip.facts)
    answers = "".join(
        f"<div><b>{html.escape(name)}</b></div><pre style='{ANSWER_STYLE}'>{html.escape(text)}</pre>"
        for name, text in clip.answers.items()
    )
    return (
        f'<figure style="{STYLE}"><video src="{video_data_uri(clip.video)}" width="224" '
        "autoplay loop muted playsinline controls></video>"
        f"<figcaption><b>{html.escape(clip.title)}</b>{facts}{answers}"
        f"<div>file: {link(clip.video)}</div></figcaption></figure>"
    )


class Gallery:
    """Clips side by side; a notebook shows it as HTML that plays without a kernel."""

    def __init__(self, clips: Sequence[ShownClip]):
        if not clips:
            raise ValueError("a gallery needs at least one clip")
        self.clips = list(clips)

    def _repr_html_(self) -> str:
        return "<div>" + "".join(card(clip) for clip in self.clips) + "</div>"

    def __repr__(self) -> str:
        return "\n".join(f"{clip.title}: {clip.video}" for clip in self.clips)
