"""Decode clips and sample frames the way Qwen2.5-VL sees them.

The published recipe scores at fps 16 with a budget of 8192*28*28 pixels for the whole clip and
trains at fps 1 with 81920 pixels per frame. Both budgets are applied here, once, so that the
transformers scorer, the vLLM scorer and the trainers all feed the model the same frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

PATCH_FACTOR = 28  # 14 px patches merged 2x2: frame sides are multiples of 28
FRAME_FACTOR = 2  # the vision tower groups frames in pairs (temporal patch 2)
MIN_FRAMES = 4
MAX_FRAMES = 768
MIN_PIXELS = 4 * 28 * 28


class VideoError(ValueError):
    """A file that cannot be used as a video; the message names the file and the reason."""


@dataclass(frozen=True)
class VideoInfo:
    path: str
    frames: int
    fps: float
    width: int
    height: int


@dataclass(frozen=True)
class Clip:
    """Sampled frames (T, H, W, 3, uint8) and the fps they represent."""

    frames: np.ndarray
    fps: float
    source: str


def _open(path: str | Path) -> av.container.InputContainer:
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such video file")
    if path.stat().st_size == 0:
        raise VideoError(f"{path}: the file is empty (0 bytes); re-download or re-render it")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise VideoError(f"{path}: not a readable video ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: the file has no video stream")
    return container


def _decode_all(path: str | Path) -> tuple[list[av.VideoFrame], float]:
    """Every frame and the frame rate. Frames stay in the decoder's colour format: converting
    one to RGB costs about as much as decoding it and needs twice the memory, and only the
    frames sampled for the model are converted (`load_clip`)."""
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0) or 0.0
        declared = stream.frames
        frames = []
        try:
            frames.extend(container.decode(stream))
        except av.error.FFmpegError as exc:
            raise VideoError(
                f"{path}: decoding stopped after {len(frames)} frames ({exc}); "
                "the file is truncated or corrupt, re-download it"
            ) from exc
    if not frames:
        raise VideoError(f"{path}: the video has no decodable frame (truncated?)")
    if declared and len(frames) < declared - 1:
        raise VideoError(
            f"{path}: only {len(frames)} of {declared} frames decode; the file is "
            "truncated, re-download it"
        )
    return frames, rate or 1.0


def probe(path: str | Path) -> VideoInfo:
    """Check that a file decodes to at least one frame; raise VideoError naming it if not."""
    frames, rate = _decode_all(path)
    return VideoInfo(str(path), len(frames), rate, frames[0].width, frames[0].height)


def round_to(value: float, factor: int) -> int:
    return max(factor, round(value / factor) * factor)


def fit_pixels(
    height: int, width: int, max_pixels: int, min_pixels: int = MIN_PIXELS
) -> tuple[int, int]:
    """Qwen2.5-VL's resize rule: sides multiples of 28, area within [min_pixels, max_pixels]."""
    if min(height, width) <= 0:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    h, w = round_to(height, PATCH_FACTOR), round_to(width, PATCH_FACTOR)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(PATCH_FACTOR, math.floor(height / beta / PATCH_FACTOR) * PATCH_FACTOR)
        w = max(PATCH_FACTOR, math.floor(width / beta / PATCH_FACTOR) * PATCH_FACTOR)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / PATCH_FACTOR) * PATCH_FACTOR
        w = math.ceil(width * beta / PATCH_FACTOR) * PATCH_FACTOR
    return h, w


def frame_count(total_frames: int, video_fps: float, fps: float) -> int:
    """How many frames to sample at `fps`: even, at least 4 (or the clip's length), at most 768."""
    wanted = total_frames / video_fps * fps
    upper = max(FRAME_FACTOR, min(MAX_FRAMES, total_frames) // FRAME_FACTOR * FRAME_FACTOR)
    n = round_to(wanted, FRAME_FACTOR)
    return int(min(max(n, min(MIN_FRAMES, upper)), upper))


def per_frame_budget(n_frames: int, max_pixels: int | None, total_pixels: int | None) -> int:
    """Pixels allowed per frame: a per-frame cap, a per-clip cap shared by frame pairs, or both."""
    if max_pixels is None and total_pixels is None:
        raise ValueError("give max_pixels (per frame) or total_pixels (per clip)")
    budgets = []
    if max_pixels is not None:
        budgets.append(max_pixels)
    if total_pixels is not None:
        budgets.append(max(total_pixels * FRAME_FACTOR // max(n_frames, 1), MIN_PIXELS))
    return min(budgets)


def resize_frame(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize an (H, W, 3) uint8 frame with bicubic filtering, as the Qwen processors do
    (PIL: about 3x faster than torch's antialiased bicubic on long clips, bench/README.md)."""
    from PIL import Image

    if frame.shape[:2] == (height, width):
        return frame
    image = Image.fromarray(frame).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(image)


def resize(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (T, H, W, 3) uint8 frames, each as `resize_frame` does."""
    return np.stack([resize_frame(frame, height, width) for frame in frames])


def load_clip(
    path: str | Path,
    fps: float,
    max_pixels: int | None = None,
    total_pixels: int | None = None,
    min_pixels: int = MIN_PIXELS,
) -> Clip:
    """Decode a clip, sample it at `fps` and resize every frame to the pixel budget."""
    decoded, video_fps = _decode_all(path)
    if len({(f.height, f.width) for f in decoded}) > 1:
        raise VideoError(f"{path}: frame size changes inside the clip; re-encode it")
    n = frame_count(len(decoded), video_fps, fps)
    idx = np.linspace(0, len(decoded) - 1, n).round().astype(int)
    budget = per_frame_budget(n, max_pixels, total_pixels)
    height, width = fit_pixels(decoded[0].height, decoded[0].width, budget, min_pixels)
    # One conversion context for the clip, single-threaded: a frame's own `to_ndarray` builds a
    # new context and thread pool each time, 40x slower on a 112x112 frame for the same pixels.
    rgb = VideoReformatter()
    frames = np.stack(
        [
            resize_frame(
                rgb.reformat(decoded[i], format="rgb24", threads=1).to_ndarray(), height, width
            )
            for i in idx
        ]
    )
    sampled_fps = n / (len(decoded) / video_fps)
    return Clip(frames, sampled_fps, str(path))


def write_clip(path: str | Path, frames: np.ndarray, fps: int) -> None:
    """Encode (T, H, W, 3) uint8 frames as an H.264 mp4, written whole or not at all."""
    path = Path(path)
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(
            f"{path}: H.264 needs even frame sides, got {height}x{width} (height x width); crop or pad"
        )
    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast", "threads": "1"}
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
