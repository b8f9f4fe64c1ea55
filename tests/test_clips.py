"""Clips play in a saved notebook without a kernel: the mp4 is inside the HTML, with its labels."""

import base64
import io
import re

import av
import nbformat
import pytest
from browser import broken_images, chromium_page, export_html, open_offline, video_plays

from recipe_utils.clips import Gallery, row_clip, scored_clip, video_data_uri


@pytest.fixture(scope="module")
def rows(synth):
    from recipe_utils.videophy2 import load_rows

    return load_rows(synth / "train.jsonl").rows


def decoded_frames(uri: str) -> int:
    data = base64.b64decode(uri.removeprefix("data:video/mp4;base64,"))
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_data_uri_holds_a_playable_small_mp4(rows):
    uri = video_data_uri(rows[0]["video"])
    assert uri.startswith("data:video/mp4;base64,")
    assert decoded_frames(uri) >= 4


def test_row_clip_shows_scores_caption_and_violations(rows):
    row = next(r for r in rows if r["human_violated_rules"])
    html = Gallery([row_clip(row)])._repr_html_()
    assert f"label pc={row['pc']} · sa={row['sa']}" in html
    assert "autoplay loop muted" in html
    for violation in row["human_violated_rules"]:
        assert f"violation: {violation}" in html.replace("&#x27;", "'")
    assert re.search(r'<a href="[^/"][^"]*\.mp4"', html)  # a relative link JupyterLab opens


def test_scored_clip_shows_every_answer_whole(rows):
    row = rows[0]
    long_answer = "<think>\n" + "the ball hovers. " * 30 + "\n</think>\n<answer>\n2\n</answer>"
    record = {"video": "/moved/since/clip.mp4", "pred": 2, "raw": [long_answer]}  # a copied run
    html = Gallery([scored_clip(row, {"SFT": record, "GRPO": record | {"raw": []}})])._repr_html_()
    assert f"label pc={row['pc']} · SFT 2 · GRPO 2" in html
    assert "&lt;answer&gt;\n2\n&lt;/answer&gt;" in html  # not cut before the answer
    assert "(no answer)" in html
    assert scored_clip(row, {"SFT": record}).video == row["video"]  # the clip where it is now
    assert scored_clip(row | {"video": None}, {"SFT": record}).video == record["video"]  # hub


def test_gallery_refuses_no_clips():
    with pytest.raises(ValueError, match="at least one clip"):
        Gallery([])


@pytest.mark.browser
def test_exported_clip_plays_in_chromium(rows, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from recipe_utils import plots

    figure = io.BytesIO()
    plots.label_histograms(rows).savefig(figure, format="png")
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("Gallery(...)")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data", {"text/html": Gallery([row_clip(rows[0])])._repr_html_()}
        ),
        nbformat.v4.new_output(
            "display_data", {"image/png": base64.b64encode(figure.getvalue()).decode()}
        ),
    ]
    notebook.cells.append(cell)
    with chromium_page() as page:
        open_offline(page, export_html(notebook, tmp_path / "clip.html"))
        assert page.locator("img").count() == 1 and not broken_images(page)
        assert video_plays(page)
