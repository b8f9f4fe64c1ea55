"""Shared fixtures: one tiny model and one small synthetic benchmark per test session."""

from __future__ import annotations

import os

import pytest

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
def prompt():
    from recipe_utils.prompts import PROMPTS_DIR, load_prompt

    return load_prompt(PROMPTS_DIR / "video_reward.yaml")
