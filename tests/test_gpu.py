"""GPU paths: run when CUDA is there (a lent GPU machine), skipped on CPU-only machines and in CI."""

import pytest
import torch

from recipe_utils.scoring import Sampling, TransformersScorer, VllmScorer
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
