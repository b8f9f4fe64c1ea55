"""Shared fixtures: one tiny model, one small synthetic benchmark and one smoke course run per
test session, and a scripted local HTTP server per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from http_server import Server

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from recipe_utils.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny"), seed=0)


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    from recipe_utils.synthetic import generate

    return generate(tmp_path_factory.mktemp("synth"), n_train=30, n_test=12, seed=0)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """The whole smoke course, run once for the notebook and browser tests (minutes on a CPU).

    RECIPE_SMOKE_RUN=<folder> reuses a finished run instead, e.g. runs/smoke after `make course`.
    """
    reuse = os.environ.get("RECIPE_SMOKE_RUN")
    if reuse:
        return Path(reuse).resolve()
    from recipe_utils.course import run_course

    folder = tmp_path_factory.mktemp("course")
    run_course("smoke", out=folder)
    return folder


@pytest.fixture(scope="session")
def prompt():
    from recipe_utils.prompts import PROMPTS_DIR, load_prompt

    return load_prompt(PROMPTS_DIR / "video_reward.yaml")


@pytest.fixture
def server():
    srv = Server()
    srv.thread.start()
    yield srv
    srv.release.set()
    srv.httpd.shutdown()
    srv.httpd.server_close()
