"""Helpers for the reliability suite: clips on disk and killable runs (the scripted HTTP server
is tests/http_server.py, shared with the download tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from recipe_utils.video import write_clip

REPO_ROOT = Path(__file__).resolve().parents[2]


def gradient_frames(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth moving gradients: cheap to encode at any size, different from frame to frame."""
    rows = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    cols = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    for t in range(n):
        shift = 13.0 * t + seed
        frames[t, ..., 0] = (rows + shift) % 256
        frames[t, ..., 1] = (cols + 2 * shift) % 256
        frames[t, ..., 2] = (rows / 2 + cols / 2 + 3 * shift) % 256
    return frames


def make_clip(path: Path, n: int = 16, height: int = 64, width: int = 64, fps: int = 8) -> Path:
    write_clip(path, gradient_frames(n, height, width), fps)
    return path


# ----------------------------------------------------------------------------- subprocesses


def child_env() -> dict[str, str]:
    return {**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def run_and_kill(
    args: list[str], ready: Callable[[], bool], log: Path, limit_s: float = 120.0
) -> int:
    """Start `python ARGS`, SIGKILL it as soon as `ready()` holds, and return its exit code.

    Fails the test, showing the child's output, when the child exits first or `ready` never holds.
    """
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO_ROOT,
            env=child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + limit_s
            while process.poll() is None and time.monotonic() < deadline:
                if ready():
                    process.kill()
                    return process.wait(10)
                time.sleep(0.02)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    why = f"exited with {process.returncode}" if process.returncode != -9 else "never got ready"
    pytest.fail(f"child {why} before it could be killed; its output:\n{log.read_text()[-3000:]}")
