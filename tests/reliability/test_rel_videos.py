"""Broken and unusual videos: clear errors naming the file, pixel budgets kept, scoring goes on."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from rel_helpers import gradient_frames, make_clip

from recipe_utils.scoring import Sampling, TransformersScorer, load_model, score_rows
from recipe_utils.video import MIN_PIXELS, VideoError, load_clip, probe, write_clip

pytestmark = pytest.mark.reliability

BUDGET = 12544  # 16 * 28 * 28: the smoke profile's per-frame training budget


def encode(
    path: Path,
    frames: np.ndarray,
    rate: int,
    pix_fmt: str = "yuv420p",
    pts_ms: list[int] | None = None,
    faststart: bool = False,
) -> Path:
    """Encode with av directly, for what `write_clip` does not make (odd sizes, VFR, faststart)."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", format="mp4", options=options) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    good = make_clip(folder / "good.mp4")
    data = good.read_bytes()
    (folder / "half.mp4").write_bytes(data[: len(data) // 2])
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "text.mp4").write_text("this is a note, not a video\n")
    (folder / "folder.mp4").mkdir()
    faststart = encode(folder / "faststart.mp4", gradient_frames(16, 64, 64), 8, faststart=True)
    cut = faststart.read_bytes()
    (folder / "faststart_half.mp4").write_bytes(cut[: len(cut) // 2])
    return {
        "good": good,
        "missing": folder / "missing.mp4",
        "zero": folder / "zero.mp4",
        "half": folder / "half.mp4",
        "text": folder / "text.mp4",
        "folder": folder / "folder.mp4",
        "faststart_half": folder / "faststart_half.mp4",
        "one": make_clip(folder / "one.mp4", n=1),
        "huge": make_clip(folder / "huge.mp4", n=3, height=1500, width=2000),
        "odd": encode(folder / "odd.mp4", gradient_frames(6, 53, 37), 8, pix_fmt="yuv444p"),
        "vfr": encode(
            folder / "vfr.mp4",
            gradient_frames(10, 64, 64),
            30,
            pts_ms=[0, 10, 20, 300, 310, 900, 1000, 1500, 1510, 1990],
        ),
        "fast": make_clip(folder / "fast.mp4", n=60, fps=30),
    }


# ----------------------------------------------------------------------------- probe / load_clip

BROKEN = [
    ("missing", "no such video file"),
    ("zero", "the file is empty (0 bytes)"),
    ("half", "not a readable video"),
    ("text", "not a readable video"),
    ("folder", "not a readable video"),
]


@pytest.mark.parametrize("name, reason", BROKEN, ids=[name for name, _ in BROKEN])
def test_probe_rejects_broken_file_naming_it(clips, name, reason):
    with pytest.raises(VideoError) as info:
        probe(clips[name])
    assert str(info.value).startswith(f"{clips[name]}: {reason}")


@pytest.mark.parametrize("name, reason", BROKEN, ids=[name for name, _ in BROKEN])
def test_load_clip_rejects_broken_file_naming_it(clips, name, reason):
    with pytest.raises(VideoError) as info:
        load_clip(clips[name], fps=4, max_pixels=BUDGET)
    assert str(info.value).startswith(f"{clips[name]}: {reason}")


def test_probe_rejects_truncated_faststart_mp4(clips):
    with pytest.raises(VideoError, match="faststart_half.mp4"):
        probe(clips["faststart_half"])


def test_single_frame_video_gives_one_frame_pair(clips):
    assert probe(clips["one"]).frames == 1
    clip = load_clip(clips["one"], fps=4, max_pixels=BUDGET)
    assert clip.frames.shape[0] == 2  # the vision tower needs frame pairs
    np.testing.assert_array_equal(clip.frames[0], clip.frames[1])


@pytest.mark.parametrize(
    "budget",
    [{"max_pixels": BUDGET}, {"total_pixels": 8192 * 28 * 28}],
    ids=["per_frame", "per_clip"],
)
def test_huge_resolution_is_resized_into_the_pixel_budget(clips, budget):
    info = probe(clips["huge"])
    assert (info.width, info.height) == (2000, 1500)
    clip = load_clip(clips["huge"], fps=4, **budget)
    _, height, width, _ = clip.frames.shape
    allowed = budget.get("max_pixels") or budget["total_pixels"] * 2 // clip.frames.shape[0]
    assert height * width <= allowed
    assert height % 28 == 0 and width % 28 == 0
    assert width > height  # the aspect ratio survives the resize


def test_odd_sized_video_is_resized_to_multiples_of_28(clips):
    assert (probe(clips["odd"]).width, probe(clips["odd"]).height) == (37, 53)
    clip = load_clip(clips["odd"], fps=4, max_pixels=BUDGET)
    _, height, width, _ = clip.frames.shape
    assert height % 28 == 0 and width % 28 == 0
    assert MIN_PIXELS <= height * width <= BUDGET
    assert height > width


def test_variable_frame_rate_video_samples_even_frames_near_the_asked_fps(clips):
    info = probe(clips["vfr"])
    assert info.frames == 10
    clip = load_clip(clips["vfr"], fps=4, max_pixels=BUDGET)
    n = clip.frames.shape[0]
    assert n % 2 == 0 and 4 <= n <= info.frames
    assert clip.fps == pytest.approx(4, rel=0.25)
    assert clip.frames.shape[1] % 28 == 0 and clip.frames.shape[2] % 28 == 0


def test_stream_rate_above_sampling_fps_is_subsampled(clips):
    assert probe(clips["fast"]).fps == pytest.approx(30)
    clip = load_clip(clips["fast"], fps=4, max_pixels=BUDGET)
    assert clip.frames.shape[0] == 8  # 2 s at 4 fps
    assert clip.fps == pytest.approx(4)


def test_sampling_fps_above_stream_rate_never_invents_frames(clips):
    clip = load_clip(clips["good"], fps=16, max_pixels=BUDGET)  # an 8 fps clip of 16 frames
    assert clip.frames.shape[0] == 16
    assert clip.fps == pytest.approx(8)


def test_load_clip_frames_are_the_sampled_frames_in_rgb_resized_with_pil(clips):
    """load_clip converts and resizes only the frames it keeps: the pixels must be exactly
    those of converting every frame, then sampling, then resizing each with PIL."""
    from PIL import Image

    with av.open(str(clips["fast"])) as container:
        every = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    clip = load_clip(clips["fast"], fps=4, max_pixels=BUDGET)
    keep = np.linspace(0, len(every) - 1, len(clip.frames)).round().astype(int)
    height, width = clip.frames.shape[1:3]
    expected = [
        np.asarray(Image.fromarray(every[i]).resize((width, height), Image.Resampling.BICUBIC))
        for i in keep
    ]
    assert (height, width) != every[0].shape[:2]  # the frames were resized
    np.testing.assert_array_equal(clip.frames, np.stack(expected))


def test_write_clip_odd_size_fails_clearly_and_leaves_nothing(tmp_path):
    target = tmp_path / "odd.mp4"
    with pytest.raises(ValueError, match="53x37"):
        write_clip(target, gradient_frames(4, 53, 37), 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- through the scorer


@pytest.fixture(scope="module")
def scorer(tiny_model, prompt):
    model, processor = load_model(tiny_model, device="cpu")
    sampling = Sampling(max_tokens=4, greedy=True)
    video = {"fps": 4, "max_pixels": BUDGET}
    return TransformersScorer(tiny_model, prompt, video, sampling, model=model, processor=processor)


def row(row_id: str, video: Path | None) -> dict:
    return {"id": row_id, "video": str(video) if video else None, "pc": 3, "caption": "a clip"}


SCORER_CASES = BROKEN + [("no_video", "no local video (download first)")]


@pytest.mark.parametrize("name, reason", SCORER_CASES, ids=[name for name, _ in SCORER_CASES])
def test_scorer_records_a_failed_row_and_scores_the_rest(scorer, clips, name, reason):
    bad = row("bad", clips.get(name))
    records = scorer.score([row("before", clips["good"]), bad, row("after", clips["good"])])
    assert [r["id"] for r in records] == ["before", "bad", "after"]
    failed = records[1]
    assert reason in failed["error"]
    assert failed["pred"] is None and failed["raw"] == [] and failed["pc"] == 3
    for good in (records[0], records[2]):
        assert "error" not in good and len(good["raw"]) == 1


def test_score_rows_writes_failed_rows_and_goes_on(scorer, clips, tmp_path):
    rows = [
        row("a", clips["text"]),
        row("b", clips["good"]),
        row("c", clips["zero"]),
        row("d", clips["huge"]),
        row("e", clips["missing"]),
    ]
    out = score_rows(scorer, rows, tmp_path / "out", batch_size=2)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["a", "b", "c", "d", "e"]
    errors = {r["id"]: r.get("error") for r in records}
    assert errors["b"] is None and errors["d"] is None
    assert "not a readable video" in errors["a"] and "text.mp4" in errors["a"]
    assert "empty (0 bytes)" in errors["c"] and "no such video file" in errors["e"]
