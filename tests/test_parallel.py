"""Parallel scoring: replica processes fed by decode workers, and Ray Data, write the same
predictions as the one-process default, resumably, each clip exactly once."""

import json
from pathlib import Path

import pytest
from predictions import answers

from recipe_utils import parallel
from recipe_utils.scoring import Parallel, Sampling, ScorerSpec, score_split, sweep_checkpoints

VIDEO = {"fps": 4, "total_pixels": 8192 * 28 * 28}
SAMPLING = Sampling(greedy=True, max_tokens=16)
LIMIT = 6


def score(model, synth, out, how: Parallel | None = None) -> Path:
    return score_split(
        model,
        synth,
        "test",
        out,
        "prompts/video_reward.yaml",
        VIDEO,
        SAMPLING,
        limit=LIMIT,
        batch_size=2,
        report=False,
        parallel=how,
        device="cpu",
    )


@pytest.fixture(scope="module")
def default(tiny_model, synth, tmp_path_factory):
    """The one-process run every parallel run must match."""
    return answers(score(tiny_model, synth, tmp_path_factory.mktemp("default")))


@pytest.mark.slow
def test_replicas_with_decode_workers_write_the_default_predictions(
    tiny_model, synth, tmp_path, default
):
    how = Parallel(replicas=2, decode_workers=2)
    assert answers(score(tiny_model, synth, tmp_path, how)) == default
    assert len(default) == LIMIT


@pytest.mark.slow
def test_sweep_spreads_checkpoints_over_replicas(tiny_model, synth, tmp_path, default):
    checkpoints = {0: tiny_model, 10: tiny_model}
    table = sweep_checkpoints(
        checkpoints,
        tmp_path,
        {"split": "train"},  # validation: rows of the train split, spread the same way
        source=synth,
        split="test",
        prompt_path="prompts/video_reward.yaml",
        video_settings=VIDEO,
        sampling=SAMPLING,
        limit=LIMIT,
        batch_size=2,
        parallel=Parallel(replicas=2, decode_workers=1),
        device="cpu",
    )
    for step in checkpoints:
        assert answers(tmp_path / f"step_{step}" / "predictions.jsonl") == default
    assert len(answers(tmp_path / "val" / "step_10" / "predictions.jsonl")) == LIMIT
    assert [row["step"] for row in table["steps"]] == [0, 10]


@pytest.mark.slow
def test_ray_engine_writes_the_default_predictions(tiny_model, synth, tmp_path, default):
    pytest.importorskip("ray", reason="the `ray` extra is not installed")
    import ray

    try:
        how = Parallel(engine="ray", replicas=2, decode_workers=1)
        assert answers(score(tiny_model, synth, tmp_path, how)) == default
    finally:
        ray.shutdown()


def test_ray_stages_hand_the_scorer_its_clips_and_failures(tiny_model, prompt, synth, tmp_path):
    """decode_batch then RayScorer, called as Ray Data calls them (numpy columns), give what
    the scorer gives in one process, a broken video included."""
    import numpy as np
    import torch

    from recipe_utils.videophy2 import load_rows

    rows = load_rows(synth, "test").rows[:2]
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    rows.append(dict(rows[0], id="broken", video=str(tmp_path / "broken.mp4")))
    spec = ScorerSpec("transformers", prompt, VIDEO, SAMPLING, {"device": "cpu"})
    column = np.array([json.dumps(row) for row in rows], dtype=object)
    decoded = parallel.decode_batch({"row": column}, spec)
    actor = parallel.RayScorer(spec, str(tiny_model), torch.get_num_threads())
    batch = {key: np.array(value, dtype=object) for key, value in decoded.items()}
    records = [json.loads(text) for text in actor(batch)["record"]]
    expected = actor.scorer.score(rows)
    assert [(r["id"], r["raw"]) for r in records] == [(r["id"], r["raw"]) for r in expected]
    assert "error" in records[2] and records[2]["pred"] is None


def test_replicas_beyond_the_visible_gpus_are_refused(monkeypatch):
    monkeypatch.setattr(parallel, "visible_gpus", lambda: 4)
    spec = ScorerSpec("vllm", None, VIDEO, SAMPLING, {"tensor_parallel_size": 2})
    assert parallel.gpu_groups(2, spec) == [[0, 1], [2, 3]]
    with pytest.raises(ValueError, match="3 replicas x 2 GPU.s. each need 6 GPUs, 4 visible"):
        parallel.gpu_groups(3, spec)
    on_cpu = ScorerSpec("transformers", None, VIDEO, SAMPLING, {"device": "cpu"})
    assert parallel.gpu_groups(3, on_cpu) == [None, None, None]


def test_a_replica_that_cannot_load_its_model_stops_the_run_naming_it(synth, tmp_path):
    missing = tmp_path / "no_model"
    with pytest.raises(parallel.ReplicaError, match=f"replica 0 \\({missing}"):
        score(missing, synth, tmp_path / "out", Parallel(replicas=1, decode_workers=1))
