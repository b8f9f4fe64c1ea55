"""One HTML page for a whole scored split: a few frames, the raw answers, the parsed score and
the label (where there is one) per video, so a person can see why the model said what it
said. `score_split` writes it best first, a gallery of what a filter would keep."""

from __future__ import annotations

import base64
import html
import io
import posixpath
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from .clips import violations
from .progress import tqdm
from .ranking import clip_of
from .video import VideoError, load_clip

THUMB_PIXELS = 112 * 112
STYLE = """
body { font-family: sans-serif; margin: 2em; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: 6px; vertical-align: top; }
td.frames img { margin-right: 2px; }
pre { white-space: pre-wrap; max-width: 40em; margin: 0 0 6px 0; }
.ok { background: #e6f4e6; } .off1 { background: #fff6dd; } .bad { background: #fde4e4; }
"""


def thumbnails(path: str, n: int = 4) -> list[str]:
    """Base64 PNGs of `n` evenly spaced frames (empty when the video cannot be read)."""
    try:
        frames = load_clip(path, fps=4, max_pixels=THUMB_PIXELS).frames
    except VideoError:
        return []
    picks = np.linspace(0, len(frames) - 1, min(n, len(frames))).round().astype(int)
    encoded = []
    for frame in frames[picks]:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="PNG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode())
    return encoded


def verdict(record: dict) -> str:
    if record.get("pred") is None or record.get("pc") is None:
        return ""
    gap = abs(record["pred"] - record["pc"])
    return "ok" if gap == 0 else "off1" if gap == 1 else "bad"


def row_html(record: dict, frames: int) -> str:
    images = (
        "".join(
            f'<img src="data:image/png;base64,{b}">' for b in thumbnails(record["video"], frames)
        )
        if record.get("video")
        else ""
    )
    raws = "".join(f"<pre>{html.escape(text)}</pre>" for text in record.get("raw", []))
    if record.get("error"):
        raws += f"<pre>error: {html.escape(record['error'])}</pre>"
    expected = "" if record.get("expected") is None else f"{record['expected']:.2f}"
    clip = posixpath.basename(clip_of(record).replace("\\", "/"))  # tells clip.avi from clip.mkv
    return (
        f'<tr class="{verdict(record)}"><td>{html.escape(str(record["id"]))}<br>'
        f"{html.escape(clip)}<br>"
        f'{html.escape(record.get("caption") or "")}</td><td class="frames">{images}</td>'
        f"<td>{_shown(record.get('pc'))}</td><td>{_shown(record.get('pred'))}"
        f"</td><td>{expected}</td><td>{raws}</td></tr>"
    )


def _shown(score: int | None) -> str:
    return "—" if score is None else str(score)


def write_report(
    records: list[dict], out: str | Path, frames: int = 4, title: str = "Scores"
) -> Path:
    """Write the HTML report for scored records (as read from predictions.jsonl), in the order
    given."""
    out = Path(out)
    rows = "\n".join(row_html(r, frames) for r in tqdm(records, desc="report", unit="video"))
    legend = (
        "Green: exact, yellow: off by one, red: further or unparsed."
        if any(r.get("pc") is not None for r in records)
        else "No labels (pc): the rows are not coloured."
    )
    out.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{len(records)} videos. {legend}</p>"
        "<table><tr><th>video</th><th>frames</th><th>label pc</th><th>predicted</th>"
        f"<th>expected score</th><th>raw answer(s)</th></tr>{rows}</table></body></html>"
    )
    return out


def clip_browser(rows: list[dict]):
    """An ipywidgets browser: pick a clip, watch it, read its caption, labels and violations."""
    import ipywidgets as widgets

    options = [
        (
            f"{row['id']} · pc={row['pc']} · {textwrap.shorten(row['caption'], 50, placeholder='...')}",
            i,
        )
        for i, row in enumerate(rows)
    ]
    picker = widgets.Dropdown(options=options, description="clip", layout={"width": "90%"})
    player, info = widgets.HTML(), widgets.HTML()

    def show(change: dict | None = None) -> None:
        row = rows[picker.value]
        data = base64.b64encode(Path(row["video"]).read_bytes()).decode()
        player.value = (
            f'<video src="data:video/mp4;base64,{data}" width="336" controls autoplay loop '
            "muted></video>"
        )
        broken = "".join(f"<li>{html.escape(v)}</li>" for v in violations(row)) or "<li>none</li>"
        info.value = (
            f"<b>{html.escape(row['caption'])}</b><br>physical commonsense pc = {row['pc']}, "
            f"semantic adherence sa = {row['sa']}, generator {html.escape(row['model_name'])}, "
            f"category {html.escape(row['category'])}<br>violations:<ul>{broken}</ul>"
        )

    picker.observe(show, names="value")
    show()
    return widgets.VBox([picker, widgets.HBox([player, info])])
