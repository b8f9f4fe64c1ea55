"""The benchmark runner: results files carry their machine and settings, and the README table
is generated from those files only."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_runs import shifted, write_run

from recipe_utils import compare
from recipe_utils.config import load_config
from recipe_utils.video import load_clip, write_clip

BENCH = Path(__file__).resolve().parent.parent / "bench"
TINY_VIDEO = {"small": {"fps": 4, "max_pixels": 4 * 28 * 28}}  # 84x112 clips come out 28x56
MARKERS = "# Benchmarks\n\n{start}\nstale table\n{end}\n\nNotes stay.\n"


@pytest.fixture(scope="module")
def bench():
    """The bench/ scripts, importable as modules (bench/ is not a package)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCH))
        import gpu
        import report
        import run
        import vision_attention

        modules = {"run": run, "report": report, "gpu": gpu, "vision": vision_attention}
        yield type("Bench", (), modules)
    for name in ("run", "report", "gpu", "vision_attention"):
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def clips(bench, tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    paths = []
    for seed in range(2):
        path = folder / f"clip_{seed}.mp4"
        write_clip(path, bench.run.pattern_frames(12, 84, 112, seed), fps=8)
        paths.append(path)
    return paths


def readme_with_markers(bench, path: Path) -> Path:
    r = bench.report
    path.write_text(MARKERS.format(start=r.TABLE_START, end=r.TABLE_END))
    return path


def table_row(table: str, measure: str) -> list[str]:
    rows = [line for line in table.splitlines() if f"| {measure} |" in line]
    assert len(rows) == 1, f"expected one row for {measure!r} in\n{table}"
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def test_decode_then_resize_gives_load_clip_frames(bench, clips):
    fast = load_clip(clips[0], **TINY_VIDEO["small"]).frames
    slow = bench.run.decode_then_resize(clips[0], **TINY_VIDEO["small"])
    assert slow.shape == fast.shape == (6, 28, 56, 3)  # 1.5 s at 4 fps
    assert np.abs(slow.astype(int) - fast.astype(int)).mean() < 8  # same frames, other filter


def test_dataprep_result_and_readme_table_come_from_the_file(bench, clips, tmp_path):
    outcome = bench.run.bench_dataprep(clips, repeats=1, settings=TINY_VIDEO)
    results = tmp_path / "results"
    path = bench.report.save_result("dataprep", results_dir=results, **outcome)
    record = json.loads(path.read_text())
    assert {"benchmark", "date", "machine", "settings", "results", "summary"} <= set(record)
    assert {"cpu", "cores", "torch", "gpu"} <= set(record["machine"])
    assert record["settings"]["clips"] == 2 and record["settings"]["source_frames"] == 24
    assert set(record["results"]["small"]["frames_per_s"]) == {"load_clip", "decode_then_resize"}

    readme = readme_with_markers(bench, tmp_path / "README.md")
    table = bench.report.write_readme(readme, results)
    measure = "small settings, load_clip speed-up"
    value = next(r["value"] for r in record["summary"] if r["measure"] == measure)
    assert table_row(table, measure)[2] == f"{value:g} x"
    assert "stale table" not in readme.read_text() and "Notes stay." in readme.read_text()

    # Edit the file: the regenerated table follows it.
    for row in record["summary"]:
        if row["measure"] == measure:
            row["value"] = 123.25
    path.write_text(json.dumps(record))
    table = bench.report.write_readme(readme, results)
    assert table_row(table, measure)[2] == "123.25 x"
    assert table in readme.read_text()


def test_readme_without_markers_is_refused(bench, tmp_path):
    bench.report.save_result("x", {}, {}, [{"measure": "m", "value": 1.0}], tmp_path / "r")
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="README.md: the table markers are missing"):
        bench.report.write_readme(readme, tmp_path / "r")


def test_skipped_benchmark_is_listed_with_its_reason(bench, tmp_path):
    outcome = bench.run.bench_course(tmp_path / "no_runs")
    assert "make course" in outcome["skipped"]
    bench.report.save_result("course", results_dir=tmp_path / "r", **outcome)
    table = bench.report.table(bench.report.load_results(tmp_path / "r"))
    assert "| course | not measured: no executed notebooks" in table


def test_course_times_come_from_papermill_durations(bench, tmp_path):
    def cell(seconds, source):
        return {
            "cell_type": "code",
            "source": source,
            "metadata": {"papermill": {"duration": seconds}},
        }

    cells = [
        cell(0.5, "import x\n"),
        cell(7.0, ["scores = score()\n", "show(scores)"]),
        {"cell_type": "markdown", "source": "# title", "metadata": {}},
        cell(3.0, ""),
    ]
    notebook = {"cells": cells, "metadata": {"papermill": {"duration": 11.0}}}
    (tmp_path / "02_zero_shot_scoring.ipynb").write_text(json.dumps(notebook))
    outcome = bench.run.bench_course(tmp_path)
    assert outcome["results"]["notebooks"] == {"02_zero_shot_scoring.ipynb": 11.0}
    assert "03_sft.ipynb" in outcome["results"]["missing"]  # a partial run says so
    assert outcome["summary"][1]["measure"].startswith("course total, 1 notebooks (incomplete")
    slowest = outcome["results"]["slowest_cells"]
    assert [(c["cell"], c["seconds"], c["source"]) for c in slowest] == [
        (1, 7.0, "scores = score()"),
        (3, 3.0, ""),
        (0, 0.5, "import x"),
    ]


def test_seed_record_holds_each_seeds_selected_metrics_their_spread_and_grpos_gain(bench, tmp_path):
    """The record the lessons cite: read from a grid over seeds, and refused for runs that
    differ in more than the seed or have not finished training."""
    grid = tmp_path / "grid"
    for seed in range(3):
        write_run(grid / f"seed={seed}", {"seed": seed}, [4] * 12, shifted(4), shifted(2 * seed))
    outcome = bench.run.bench_seeds(grid, tmp_path / "results")
    results = outcome["results"]
    runs = {seed: compare.load_run(grid / f"seed={seed}").systems for seed in range(3)}
    assert results["runs"][1]["grpo"] == {
        "step": runs[1]["grpo"]["step"],
        "accuracy": runs[1]["grpo"]["accuracy"],
        "pearson": runs[1]["grpo"]["pearson"],
    }
    accuracies = [runs[seed]["grpo"]["accuracy"] for seed in range(3)]
    assert results["spread"]["grpo"]["accuracy"] == compare.spread(accuracies)
    assert results["grpo_minus_sft_pearson"][2] == pytest.approx(
        runs[2]["grpo"]["pearson"] - runs[2]["sft"]["pearson"]
    )
    assert "seed" not in outcome["settings"]["profile"]
    assert outcome["settings"]["profile"]["sft.steps"] == load_config("smoke")["sft"]["steps"]
    assert (tmp_path / "results/seeds/curves.png").is_file()
    write_run(grid / "other_lr", {"seed": 0, "sft.lr": 5e-4}, [4] * 12, shifted(4), shifted(0))
    assert "differ only in `seed`" in bench.run.bench_seeds(grid, tmp_path / "r2")["skipped"]
    untrained = tmp_path / "untrained"
    for seed in range(2):
        write_run(untrained / f"seed={seed}", {"seed": seed}, [4] * 12, shifted(4))
    assert "--grid seed=0,1,2" in bench.run.bench_seeds(untrained, tmp_path / "r3")["skipped"]


def test_gpu_profile_splits_time_on_a_tiny_model(bench, clips):
    """The GPU section cannot run here; its timing code runs on CPU with the tiny sizes."""
    import torch

    from recipe_utils.prompts import PROMPTS_DIR, load_prompt
    from recipe_utils.tiny import TEXT_SIZES, VISION_SIZES, build_processor, build_tokenizer
    from recipe_utils.videophy2 import build_messages

    processor = build_processor(build_tokenizer())
    processor.tokenizer.padding_side = "left"
    text = dict(TEXT_SIZES, vocab_size=len(processor.tokenizer))
    model = bench.gpu.build_model(processor, text, VISION_SIZES, "cpu", torch.float32)
    video = {"fps": 4, "total_pixels": 4 * 28 * 56}
    clip = load_clip(clips[0], **video)
    messages = build_messages(
        {"id": "a", "video": str(clips[0])},
        load_prompt(PROMPTS_DIR / "video_reward.yaml"),
        video,
        False,
    )
    rows = bench.gpu.profile(model, processor, messages, clip, (1, 2), 3, "cpu", tflops=989.0)
    assert [r["batch_size"] for r in rows] == [1, 2]
    assert rows[1]["vision_patches"] == 2 * rows[0]["vision_patches"]
    parts = ("vision_s", "prefill_s", "decode_s", "total_s", "prefill_share_of_peak")
    assert all(part in row for part in parts for row in rows)


def test_vision_attention_ab_times_both_paths_on_the_same_clips(bench):
    """The A/B runs on a GPU; here on the tiny vision tower, where the two paths agree to the bit
    (windows of three sizes in a 20 x 36 frame)."""
    from recipe_utils.tiny import VISION_SIZES

    visual = bench.vision.build_vision_tower(VISION_SIZES, "cpu", torch.float32)
    row = bench.vision.compare(visual, (2, 20, 36), batch=2, repeats=1)
    assert row["batch"] == 2 and row["per_window_s"] > 0 and row["batched_s"] > 0
    assert row["max_abs_difference"] == 0.0
    assert type(visual.blocks[0].attn).__name__ == "Qwen2_5_VLVisionAttention"  # put back


def test_compute_bound_is_two_flops_per_parameter_and_token(bench):
    row = {
        "batch_size": 2,
        "prompt_tokens": 100,
        "vision_patches": 400,
        "vision_s": 1.0,
        "prefill_s": 2.0,
        "decode_s": 4.0,
        "total_s": 7.0,
    }
    counts = {"vision": 10**9, "layers": 5 * 10**9, "head": 10**9}
    out = bench.gpu.add_bounds(row, counts, new_tokens=3, tflops=1000.0, tbps=2.0)
    assert out["vision_bound_s"] == pytest.approx(2 * 1e9 * 400 / 1e15)
    assert out["prefill_bound_s"] == pytest.approx(2 * (5e9 * 100 + 1e9) * 2 / 1e15, rel=1e-3)
    assert out["decode_bound_s"] == pytest.approx(2 * 6e9 * 2 * 2 / 1e15)
    assert out["decode_share_of_peak"] == pytest.approx(out["decode_bound_s"] / 4.0, rel=1e-3)
    assert out["decode_weight_read_bound_s"] == pytest.approx(2 * 6e9 * 2 / 2e12)
    assert out["videos_per_s"] == pytest.approx(2 / 7.0, rel=1e-3)


def test_committed_readme_matches_committed_results(bench):
    results = BENCH / "results"
    if not list(results.glob("*.json")):
        pytest.skip("no benchmark results recorded yet")
    table = bench.report.table(bench.report.load_results(results))
    assert table in (BENCH / "README.md").read_text(), "run `python bench/run.py --report`"


def test_decode_bench_times_both_pools_and_counts_the_model_tokens(bench, clips):
    outcome = bench.run.bench_decode({"small": clips}, repeats=1)
    small = outcome["results"]["small"]
    assert small["clips"] == 2 and set(small["clips_per_s"]) == {"1", "2"}
    assert 0 < small["cpu_seconds_per_clip"]
    assert small["speedup"] == pytest.approx(
        small["clips_per_s"]["2"] / small["clips_per_s"]["1"], abs=0.01
    )
    frames = load_clip(clips[0], **bench.run.SCORE_VIDEO).frames
    t, h, w = frames.shape[:3]
    assert small["vision_patches"] == (t // 2) * (h // 14) * (w // 14)  # 2x14x14 patches
    assert small["prompt_tokens"] > small["vision_patches"] // 4  # merged 2x2 into tokens


def test_cost_model_follows_the_recorded_decode_and_gpu_times(bench, tmp_path):
    from recipe_utils.config import load_config

    r = bench.report
    decode = {"cpu_seconds_per_clip": 1.0, "prompt_tokens": 900, "vision_patches": 3000}
    r.save_result("decode", {}, {"720p": decode}, [], results_dir=tmp_path)
    gpu = {"batches": [{"batch_size": 8, "videos_per_s": 2.0}, {"batch_size": 16, "error": "OOM"}]}
    r.save_result("gpu", {}, gpu, [], results_dir=tmp_path)
    outcome = bench.run.bench_costmodel(tmp_path, bench.run.QUICK)
    row = outcome["results"]["720p"]
    clips = 3397 * bench.run.test_passes(load_config("full"))
    assert row["model_s_per_clip"] == 0.5
    assert "transformers backend, batch 8" in row["model_time"]
    assert row["old_hours"] == round(clips * 1.5 / 3600, 2)  # decode, then the model, one GPU
    # 8 replicas could do 16 clips/s; 32 decode workers 32 clips/s: the GPUs bound it
    assert row["new_hours"] == round(clips / 16 / 3600, 2) and row["bound_by"] == "GPUs"
    assert row["decode_workers_to_feed_all_gpus"] == 16


def test_cost_model_counts_a_test_pass_for_each_model_scored_once(bench):
    from recipe_utils.config import load_config, with_overrides

    full = load_config("full")  # zero-shot, 1 + 6 SFT and 1 + 9 GRPO sweep steps, unbalanced arm
    assert bench.run.test_passes(full) == 1 + 7 + 10 + 1 - 1  # SFT's step 0 is zero-shot's pass
    # a balanced arm that is not the main run's checkpoint is a run of its own, scored once more
    assert bench.run.test_passes(with_overrides(full, {"grpo.decay": "cosine"})) == 19
    assert bench.run.test_passes(with_overrides(full, {"grpo.balance_steps": 150})) == 19
    thinking = full["grpo"]["prompt"]  # SFT asked to think: its step 0 is a pass of its own
    assert bench.run.test_passes(with_overrides(full, {"sft.prompt": thinking})) == 18
    smoke = load_config("smoke")  # GRPO's step 0 is SFT's selected step, asked the same
    sweeps = 1 + 1600 // 400 + 1 + 60 // 20
    assert bench.run.test_passes(smoke) == 1 + sweeps - 1 + 1


def test_a_run_without_a_gpu_keeps_the_gpu_figures_on_record(bench, tmp_path):
    no_gpu = {"settings": {}, "results": {}, "summary": [], "skipped": "no CUDA device here"}
    path = tmp_path / "gpu.json"
    assert bench.run.record_outcome(tmp_path, "gpu", no_gpu).startswith("->")  # nothing yet
    assert json.loads(path.read_text())["skipped"] == "no CUDA device here"
    measured = dict(no_gpu, results={"batches": [{"batch_size": 4, "videos_per_s": 1.28}]})
    del measured["skipped"]
    bench.run.record_outcome(tmp_path, "gpu", measured)  # a measurement replaces a skip
    on_record = path.read_text()
    message = bench.run.record_outcome(tmp_path, "gpu", no_gpu)
    assert "kept the measurement of" in message and path.read_text() == on_record
    bench.run.record_outcome(tmp_path, "gpu", dict(measured, results={"batches": []}))
    assert json.loads(path.read_text())["results"] == {"batches": []}  # measurements replace


def test_cost_model_waits_for_decode_results(bench, tmp_path):
    outcome = bench.run.bench_costmodel(tmp_path, bench.run.QUICK)
    assert "--only decode" in outcome["skipped"]
