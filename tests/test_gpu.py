"""GPU paths: run when CUDA is there (a lent GPU machine), skipped on CPU-only machines and in CI.
`pytest -m gpu` is the check to run first on a new GPU machine (bench/README, "On a lent GPU")."""

import json
import math
from pathlib import Path

import pytest
import torch
from predictions import answers

from recipe_utils import cli
from recipe_utils.scoring import Parallel, Sampling, TransformersScorer, VllmScorer, score_split
from recipe_utils.videophy2 import load_rows

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_transformers_backend_scores_on_the_gpu_in_bf16(tiny_model, prompt, synth):
    scorer = TransformersScorer(
        tiny_model,
        prompt,
        {"fps": 4, "max_pixels": 112 * 112},
        Sampling(max_tokens=8, greedy=True),
        device="cuda",
    )
    assert scorer.model.dtype == torch.bfloat16
    records = scorer.score(load_rows(synth, "test").rows[:4])
    assert len(records) == 4 and all("error" not in r for r in records)


def test_vllm_backend_generates(tiny_model, prompt, synth):
    pytest.importorskip("vllm")
    scorer = VllmScorer(
        tiny_model,
        prompt,
        {"fps": 4, "total_pixels": 8192 * 28 * 28},
        Sampling(max_tokens=8, n=2),
        max_model_len=4096,
    )
    records = scorer.score(load_rows(synth, "test").rows[:4])
    assert [len(r["raw"]) for r in records] == [2, 2, 2, 2]


def gpu_answers(model: Path, synth: Path, out: Path, how: Parallel | None = None) -> dict:
    """Each clip's raw answers from a greedy run of the test split on the GPU."""
    predictions = score_split(
        model,
        synth,
        "test",
        out,
        "prompts/video_reward.yaml",
        {"fps": 4, "total_pixels": 8192 * 28 * 28},
        Sampling(greedy=True, max_tokens=16),
        batch_size=4,
        report=False,
        parallel=how,
        device="cuda",
    )
    return answers(predictions)


def test_decode_workers_feed_a_gpu_replica_the_default_predictions(tiny_model, synth, tmp_path):
    torch.cuda.reset_peak_memory_stats()
    default = gpu_answers(tiny_model, synth, tmp_path / "default")
    assert torch.cuda.max_memory_allocated() > 0  # the one-process default ran on the GPU
    assert len(default) == len(load_rows(synth, "test").rows)
    fed = gpu_answers(tiny_model, synth, tmp_path / "fed", Parallel(decode_workers=2))
    assert fed == default


@pytest.mark.slow
def test_local_sft_then_grpo_train_on_the_gpu(tmp_path):
    """The smoke profile's in-process trainers on CUDA (bf16), a few steps each."""
    settings = ["--set", "sft.steps=20", "--set", "grpo.steps=2"]
    torch.cuda.reset_peak_memory_stats()
    for kind in ("sft", "grpo"):
        argv = ["train", kind, "--profile", "smoke", "--out", str(tmp_path), *settings]
        assert cli.main(argv) == 0, kind
    assert torch.cuda.max_memory_allocated() > 0
    logs = {
        kind: [json.loads(line) for line in (tmp_path / kind / "train_log.jsonl").open()]
        for kind in ("sft", "grpo")
    }
    assert [r["step"] for r in logs["sft"]] == list(range(1, 21))
    assert all(math.isfinite(r["loss"]) for r in logs["sft"])
    assert [r["step"] for r in logs["grpo"]] == [1, 2]
    assert all(math.isfinite(r["reward_mean"]) for r in logs["grpo"])
