"""Benchmarks of the course's hot paths; each writes bench/results/<name>.json.

    python bench/run.py --quick     # every CPU benchmark, under 5 minutes on 2 cores
    python bench/run.py             # the same with more videos and repeats
    python bench/run.py --course    # run the smoke course first, then time its cells
    python bench/run.py --report    # only rebuild the README table from bench/results/*.json

Benchmarks: `scoring` (videos/s, one video per call as the published recipe does vs batched
calls), `dataprep` (recipe_utils.video.load_clip vs decode-everything-then-resize), `memory`
(peak RSS of scoring and of a short SFT run, each in its own process), `sftstep` (one smoke
SFT step per torch thread setting, on the CPU as found and with a busy process per core),
`course` (per-cell wall time of executed smoke notebooks), `gpu` (Qwen2.5-VL-7B with random
weights; needs CUDA), `parsing` (answer parsing and rewards on megabyte-long outputs) and, only
with `--only seeds`, `seeds` (the spread of a grid of smoke courses over the seed).
The model and data are built in a temporary folder; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import av
import numpy as np
from PIL import Image
from report import README, RESULTS_DIR, save_result, write_readme

from recipe_utils.machine import usable_cores
from recipe_utils.video import fit_pixels, frame_count, load_clip, per_frame_budget, write_clip

REPO = Path(__file__).resolve().parent.parent
PROMPT = REPO / "prompts" / "video_reward.yaml"
COURSE_DIR = REPO / "runs" / "smoke"
SEEDS_DIR = REPO / "runs" / "smoke-grid"  # `course --profile smoke --grid seed=0,1,2`
SEED_METRICS = ("accuracy", "pearson")
# Run only when named with --only: a default run would replace the committed record with
# "skipped" wherever no grid of courses sits in runs/smoke-grid.
ON_REQUEST = ("seeds",)
BENCHMARKS = (
    "scoring",
    "dataprep",
    "decode",
    "memory",
    "sftstep",
    "course",
    "gpu",
    "parsing",
    "costmodel",
    "seeds",
)
# The published recipe's scoring budget, and its training budget (RECIPE_FACTS.md).
SCORE_VIDEO = {"fps": 16, "total_pixels": 8192 * 28 * 28}
TRAIN_VIDEO = {"fps": 1, "max_pixels": 81920}
# VideoPhy-2's clip sizes at both ends: Wan's 832x480, 81 frames at 16 fps, and 1280x720,
# 121 frames at 24 fps (frames, height, width, fps).
VIDEOPHY2_CLIPS = {"832x480x81": (81, 480, 832, 16), "1280x720x121": (121, 720, 1280, 24)}


@dataclass(frozen=True)
class Plan:
    """How much work each benchmark does; --quick keeps the whole run under 5 minutes."""

    score_videos: int
    score_repeats: int
    prep_clips: int
    prep_repeats: int
    sft_steps: int
    gpu_batch_sizes: tuple[int, ...]
    decode_clips: int  # per VideoPhy-2 size
    decode_repeats: int
    batch_sizes: tuple[int, ...] = (1, 8, 16)
    max_tokens: int = 16
    # A large generated clip, like VideoPhy-2's: 5 s of 480 x 832 at 16 fps.
    clip_frames: int = 80
    clip_size: tuple[int, int] = (480, 832)
    clip_fps: int = 16
    gpu_new_tokens: int = 64


QUICK = Plan(
    score_videos=64,
    score_repeats=5,
    prep_clips=4,
    prep_repeats=3,
    sft_steps=10,
    gpu_batch_sizes=(1, 4),
    decode_clips=4,
    decode_repeats=2,
)
FULL = Plan(
    score_videos=128,
    score_repeats=7,
    prep_clips=8,
    prep_repeats=5,
    sft_steps=20,
    gpu_batch_sizes=(1, 2, 4, 8, 16, 32),
    decode_clips=8,
    decode_repeats=3,
)


def timed(fn: Callable, *args) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def best(values: list[float]) -> float:
    """The fastest pass: the one least slowed by other jobs on a shared machine."""
    return min(values)


# ----------------------------------------------------------------------------- scoring


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def agreement(answers: list, reference: list) -> float:
    """Share of videos whose generated text is identical in both runs."""
    same = [a == b for a, b in zip(answers, reference, strict=True)]
    return round(sum(same) / len(same), 3)


def bench_scoring(model_dir: Path, data_dir: Path, plan: Plan, work: Path) -> dict:
    """Videos/s of whole-split scoring (decode, processor, generate, jsonl) per batch size.

    Batch sizes take turns within each repeat, so a neighbour's load on a shared machine
    falls on all of them; the fastest pass of each counts."""
    from recipe_utils.prompts import load_prompt
    from recipe_utils.scoring import Sampling, TransformersScorer, score_rows
    from recipe_utils.videophy2 import load_rows

    rows = load_rows(data_dir, "test", limit=plan.score_videos).rows
    sampling = Sampling(greedy=True, max_tokens=plan.max_tokens)
    scorer = TransformersScorer(model_dir, load_prompt(PROMPT), SCORE_VIDEO, sampling, device="cpu")
    score_rows(scorer, rows[:1], work / "warmup", batch_size=1, desc="warm-up")
    seconds: dict[int, list[float]] = {size: [] for size in plan.batch_sizes}
    answers: dict[int, list[list[str]]] = {}
    for repeat in range(plan.score_repeats):
        for size in plan.batch_sizes:
            out = work / f"scores_b{size}_r{repeat}"
            elapsed, path = timed(score_rows, scorer, rows, out, size, f"batch {size}")
            seconds[size].append(elapsed)
            answers[size] = [record["raw"] for record in read_jsonl(path)]
    one = plan.batch_sizes[0]
    per_size = {}
    for size, times in seconds.items():
        per_size[str(size)] = {
            "seconds": [round(t, 3) for t in times],
            "videos_per_s": round(len(rows) / best(times), 2),
            "speedup_vs_batch_1": round(best(seconds[one]) / best(times), 2),
            "same_answers_as_batch_1": agreement(answers[size], answers[one]),
        }
    summary = [
        {"measure": f"videos/s, batch {size}", "value": r["videos_per_s"], "unit": "videos/s"}
        for size, r in per_size.items()
    ]
    summary += [
        {"measure": f"speed-up, batch {size} vs 1", "value": r["speedup_vs_batch_1"], "unit": "x"}
        for size, r in per_size.items()
        if size != str(one)
    ]
    settings = {
        "model": "tiny Qwen2.5-VL (recipe_utils.tiny)",
        "videos": len(rows),
        "clip": "synthetic 16 frames 112x112 at 8 fps",
        "video": SCORE_VIDEO,
        "sampling": asdict(sampling),
        "device": "cpu",
        "repeats": plan.score_repeats,
        "batch_sizes": list(plan.batch_sizes),
    }
    return {"settings": settings, "results": per_size, "summary": summary}


# ----------------------------------------------------------------------------- data preparation


def pattern_frames(frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """A colour gradient with a moving square: cheap to make, not trivially compressible."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 128)], -1)
    video = np.repeat(base.astype(np.uint8)[None], frames, axis=0)
    side = height // 6
    for t in range(frames):
        x = int((width - side) * t / frames)
        y = int((height - side) / 2 * (1 + np.sin(t / 5)))
        video[t, y : y + side, x : x + side] = rng.integers(0, 256, 3)
    return video


def make_clips(folder: Path, plan: Plan) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(plan.prep_clips):
        path = folder / f"clip_{i}.mp4"
        write_clip(path, pattern_frames(plan.clip_frames, *plan.clip_size, seed=i), plan.clip_fps)
        paths.append(path)
    return paths


def decode_then_resize(
    path: Path, fps: float, max_pixels: int | None = None, total_pixels: int | None = None
) -> np.ndarray:
    """The straightforward way: decode every frame at full size, resize each with PIL, then
    keep the frames `fps` asks for. Same sizing rule as load_clip, so outputs are comparable."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 1)
        images = [frame.to_image() for frame in container.decode(stream)]
    n = frame_count(len(images), rate, fps)
    budget = per_frame_budget(n, max_pixels, total_pixels)
    height, width = fit_pixels(images[0].height, images[0].width, budget)
    resized = [np.asarray(image.resize((width, height), Image.BICUBIC)) for image in images]
    keep = np.linspace(0, len(images) - 1, n).round().astype(int)
    return np.stack([resized[i] for i in keep])


def source_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def shapes_of(method: Callable, clips: list[Path], video: dict) -> list[tuple]:
    return [method(path, video).shape for path in clips]


def bench_dataprep(
    clips: list[Path], repeats: int, settings: dict[str, dict] | None = None
) -> dict:
    """Source frames turned into model-ready frames per second, for each video setting."""
    settings = settings or {"scoring": SCORE_VIDEO, "training": TRAIN_VIDEO}
    methods = {
        "load_clip": lambda path, video: load_clip(path, **video).frames,
        "decode_then_resize": lambda path, video: decode_then_resize(path, **video),
    }
    decoded = sum(source_frames(path) for path in clips)
    results, summary = {}, []
    for name, video in settings.items():
        for method in methods.values():
            method(clips[0], video)  # warm-up: imports, allocator, codec setup
        seconds: dict[str, list[float]] = {m: [] for m in methods}
        shapes: dict[str, list[tuple]] = {}
        for _ in range(repeats):
            for m, method in methods.items():
                elapsed, out = timed(shapes_of, method, clips, video)
                seconds[m].append(elapsed)
                shapes[m] = out
        if shapes["load_clip"] != shapes["decode_then_resize"]:
            raise RuntimeError(
                f"dataprep {name}: the two methods disagree on frame shapes: "
                f"{shapes}; compare their sizing rules"
            )
        fast, slow = best(seconds["load_clip"]), best(seconds["decode_then_resize"])
        results[name] = {
            "video": video,
            "output_shape_first_clip": list(shapes["load_clip"][0]),
            "seconds": {m: [round(t, 3) for t in ts] for m, ts in seconds.items()},
            "frames_per_s": {
                "load_clip": round(decoded / fast, 1),
                "decode_then_resize": round(decoded / slow, 1),
            },
            "speedup": round(slow / fast, 2),
        }
        for m, rate in results[name]["frames_per_s"].items():
            summary.append({"measure": f"{name} settings, {m}", "value": rate, "unit": "frames/s"})
        summary.append(
            {
                "measure": f"{name} settings, load_clip speed-up",
                "value": results[name]["speedup"],
                "unit": "x",
            }
        )
    first = clips[0]
    with av.open(str(first)) as container:
        stream = container.streams.video[0]
        size = f"{stream.width}x{stream.height} at {float(stream.average_rate):g} fps"
    run_settings = {
        "clips": len(clips),
        "source_frames": decoded,
        "clip": size,
        "repeats": repeats,
        "frames_per_s": "source frames decoded / seconds of the fastest pass",
    }
    return {"settings": run_settings, "results": results, "summary": summary}


# ----------------------------------------------------------------------------- decode workers


def noisy_frames(frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """`pattern_frames` with grain: generated video compresses far worse than a clean pattern,
    and the decoder's cost follows the bitrate."""
    rng = np.random.default_rng(seed)
    video = pattern_frames(frames, height, width, seed).astype(np.int16)
    video += rng.integers(-24, 25, size=video.shape, dtype=np.int16)
    return np.clip(video, 0, 255).astype(np.uint8)


def make_videophy2_clips(folder: Path, per_size: int) -> dict[str, list[Path]]:
    """`per_size` clips of each VideoPhy-2 size, rendered here."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = {}
    for name, (frames, height, width, fps) in VIDEOPHY2_CLIPS.items():
        clips[name] = []
        for i in range(per_size):
            path = folder / f"{name}_{i}.mp4"
            write_clip(path, noisy_frames(frames, height, width, seed=i), fps)
            clips[name].append(path)
    return clips


def clip_size(path: Path) -> str:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate)
        return f"{stream.width}x{stream.height}, {stream.frames} frames at {rate:g} fps"


def decode_for_model(path: Path) -> tuple[object, float]:
    """What a decode worker does per clip: decode, sample and resize at the scoring settings;
    the frames travel back to the caller, as they do to a replica. Also the CPU seconds it
    took, which other jobs on a shared machine do not inflate as they do wall time."""
    start = time.process_time()
    clip = load_clip(path, **SCORE_VIDEO)
    return clip, time.process_time() - start


def decode_pass(pool: ProcessPoolExecutor, clips: list[Path]) -> tuple[float, float]:
    """Wall seconds for the whole pass and CPU seconds per clip."""
    start = time.perf_counter()
    cpu = [seconds for _, seconds in pool.map(decode_for_model, clips)]
    return time.perf_counter() - start, sum(cpu) / len(cpu)


def video_tokens(clip_path: Path) -> dict:
    """Prompt tokens and vision patches Qwen2.5-VL gets for a clip at the scoring settings
    (the tiny processor has the real one's patching and merging, bench/gpu.py)."""
    from recipe_utils.prompts import load_prompt
    from recipe_utils.scoring import chat_inputs
    from recipe_utils.tiny import build_processor, build_tokenizer
    from recipe_utils.videophy2 import build_messages

    processor = build_processor(build_tokenizer())
    messages = build_messages(
        {"id": "bench", "video": str(clip_path)}, load_prompt(PROMPT), SCORE_VIDEO, False
    )
    inputs = chat_inputs(processor, [messages], [load_clip(clip_path, **SCORE_VIDEO)])
    return {
        "prompt_tokens": int(inputs["input_ids"].shape[1]),
        "vision_patches": int(inputs["pixel_values_videos"].shape[0]),
    }


def bench_decode(clips: dict[str, list[Path]], repeats: int, workers: tuple[int, ...] = (1, 2)):
    """Clips per second decoded for the model by 1 and by 2 worker processes (the pool
    `recipe_utils.parallel` feeds replicas from), per VideoPhy-2 size. Worker counts take
    turns within each repeat; the fastest pass of each counts."""
    context = multiprocessing.get_context("spawn")
    load_before = os.getloadavg()[0]
    results, summary = {}, []
    for name, paths in clips.items():
        seconds: dict[int, list[float]] = {n: [] for n in workers}
        cpu: list[float] = []
        pools = {n: ProcessPoolExecutor(n, mp_context=context) for n in workers}
        try:
            for n, pool in pools.items():
                decode_pass(pool, paths[:n])  # start and warm every worker
            for _ in range(repeats):
                for n, pool in pools.items():
                    wall, per_clip = decode_pass(pool, paths)
                    seconds[n].append(wall)
                    cpu.append(per_clip)
        finally:
            for pool in pools.values():
                pool.shutdown()
        rate = {n: len(paths) / best(times) for n, times in seconds.items()}
        one, two = workers[0], workers[-1]
        results[name] = {
            "clip": clip_size(paths[0]),
            "clips": len(paths),
            "seconds": {str(n): [round(t, 3) for t in ts] for n, ts in seconds.items()},
            "clips_per_s": {str(n): round(r, 3) for n, r in rate.items()},
            "seconds_per_clip_one_process": round(1 / rate[one], 3),
            "cpu_seconds_per_clip": round(min(cpu), 3),
            "speedup": round(rate[two] / rate[one], 2),
            **video_tokens(paths[0]),
        }
        summary += [
            {
                "measure": f"{name}: decode s/clip, 1 process",
                "value": results[name]["seconds_per_clip_one_process"],
                "unit": "s",
            },
            {
                "measure": f"{name}: decode CPU s/clip",
                "value": results[name]["cpu_seconds_per_clip"],
                "unit": "s",
            },
            {
                "measure": f"{name}: clips/s, {two} processes vs 1",
                "value": results[name]["speedup"],
                "unit": "x",
            },
        ]
    settings = {
        "video": SCORE_VIDEO,
        "clip_content": "colour pattern with grain, H.264 crf 18",
        "workers": list(workers),
        "repeats": repeats,
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "cores": usable_cores(),
    }
    return {"settings": settings, "results": results, "summary": summary}


# ----------------------------------------------------------------------------- cost model


def read_result(results_dir: Path, name: str) -> dict | None:
    path = results_dir / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_passes(config: dict) -> int:
    """Times a profile scores the test split: zero-shot, then each sweep (its start
    model as step 0 and every saved checkpoint), then notebook 04's balance experiment: its
    unbalanced arm, and its balanced arm unless that is a checkpoint of the main run (its start
    is the GRPO sweep's step 0; both score into the sweep's folders). A sweep's step 0 that
    asks a model scored before the same question takes those answers (`pipeline.start_folder`):
    SFT's start is the zero-shot model, GRPO's that model or SFT's selected checkpoint."""
    from recipe_utils.pipeline import main_run_is_balanced_arm

    sft, grpo = config["sft"], config["grpo"]
    sweeps = (1 + sft["steps"] // sft["save_every"]) + (1 + grpo["steps"] // grpo["save_every"])
    saved = grpo["balance_steps"] % grpo["save_every"] == 0
    benchmark = config["scoring"]["prompt"]
    asked_before = {sft["prompt"]} | ({benchmark} if grpo["start"] == "base" else set())
    repeated = (sft["prompt"] == benchmark) + (grpo["prompt"] in asked_before)
    balance = 1 if main_run_is_balanced_arm(grpo) and saved else 2
    return 1 + sweeps - repeated + balance


def model_seconds(tokens: dict, gpu: dict | None, new_tokens: int) -> tuple[float, str]:
    """GPU seconds per clip for one 7B replica: measured by bench/gpu.py when it ran on a GPU
    (transformers' generate, the fastest batch size), else the compute bound (2 x parameters x
    tokens at the H100's bf16 peak)."""
    if gpu and not gpu.get("skipped"):
        rows = [r for r in gpu["results"]["batches"] if "error" not in r]
        fastest = max(rows, key=lambda r: r["videos_per_s"])
        source = (
            f"measured on {gpu['machine']['gpu']}, transformers backend, batch "
            f"{fastest['batch_size']} (bench/gpu.py)"
        )
        return 1 / fastest["videos_per_s"], source
    import torch
    from gpu import PEAKS, TEXT_7B, VISION_7B, build_model, compute_flops, parameter_counts

    from recipe_utils.tiny import build_processor, build_tokenizer

    processor = build_processor(build_tokenizer())
    model = build_model(processor, TEXT_7B, VISION_7B, "meta", torch.bfloat16)
    counts = parameter_counts(model)
    flops = compute_flops(counts, tokens["prompt_tokens"], tokens["vision_patches"], 1, new_tokens)
    tflops = PEAKS["H100"][0]
    return sum(flops.values()) / (
        tflops * 1e12
    ), f"compute bound at H100 bf16 peak ({tflops:g} TFLOPS)"


def bench_costmodel(results_dir: Path, plan: Plan) -> dict:
    """The full profile's scoring wall time on 8 GPUs, old design vs new, from decode.json
    (decode seconds per clip at VideoPhy-2's sizes) and gpu.json or the compute bound."""
    from recipe_utils.config import load_config

    decode = read_result(results_dir, "decode")
    if decode is None:
        reason = "no results/decode.json; run `python bench/run.py --only decode` first"
        return {"settings": {}, "results": {}, "summary": [], "skipped": reason}
    config = load_config("full")
    scoring = config["scoring"]
    clips = 3397 * test_passes(config)  # the test split (RECIPE_FACTS.md) times its passes
    replicas, workers = scoring["replicas"], scoring["decode_workers"]
    results, summary = {}, []
    for name, measured in decode["results"].items():
        decode_s = measured["cpu_seconds_per_clip"]  # a worker has a core to itself there
        model_s, source = model_seconds(
            measured, read_result(results_dir, "gpu"), plan.gpu_new_tokens
        )
        old = clips * (decode_s + model_s)  # one engine, one GPU, decoding in its own process
        rate = min(replicas / model_s, workers / decode_s)  # replicas fed by the decode pool
        new = clips / rate
        results[name] = {
            "decode_s_per_clip": decode_s,
            "model_s_per_clip": round(model_s, 4),
            "model_time": source,
            "old_hours": round(old / 3600, 2),
            "new_hours": round(new / 3600, 2),
            "decode_workers_to_feed_all_gpus": math.ceil(replicas * decode_s / model_s),
            "bound_by": "GPUs" if replicas / model_s <= workers / decode_s else "decode workers",
        }
        summary += [
            {
                "measure": f"{name}: full-profile scoring, old design (1 GPU, decode in line)",
                "value": results[name]["old_hours"],
                "unit": "h",
            },
            {
                "measure": f"{name}: full-profile scoring, new design ({replicas} replicas, {workers} decode workers)",
                "value": results[name]["new_hours"],
                "unit": "h",
            },
            {
                "measure": f"{name}: decode workers that keep {replicas} GPUs busy",
                "value": results[name]["decode_workers_to_feed_all_gpus"],
                "unit": "",
            },
        ]
    settings = {
        "clips_scored": clips,
        "passes": test_passes(config),
        "replicas": replicas,
        "decode_workers": workers,
        "new_tokens_per_answer": plan.gpu_new_tokens,
        "decode_from": f"results/decode.json ({decode['date'][:10]})",
    }
    return {"settings": settings, "results": results, "summary": summary}


# ----------------------------------------------------------------------------- memory


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MiB.

    On Linux a child's ru_maxrss starts at its parent's peak (it is carried over fork and exec),
    so a fresh process would report the benchmark runner's own 2 GB; the kernel's VmHWM counts
    this process's memory only. Elsewhere ru_maxrss is used (KiB on Linux, bytes on macOS)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024**2 if sys.platform == "darwin" else 1024), 1)


def imported_rss_mb() -> float:
    """Peak RSS once torch and the Qwen2.5-VL model code are loaded: the floor of every task."""
    import torch  # noqa: F401
    from transformers import Qwen2_5_VLForConditionalGeneration  # noqa: F401

    return peak_rss_mb()


def score_task(model_dir: str, data_dir: str, videos: int, batch_size: int, out: str) -> dict:
    from recipe_utils.prompts import load_prompt
    from recipe_utils.scoring import Sampling, TransformersScorer, score_rows
    from recipe_utils.videophy2 import load_rows

    imported = imported_rss_mb()
    rows = load_rows(data_dir, "test", limit=videos).rows
    sampling = Sampling(greedy=True, max_tokens=16)
    scorer = TransformersScorer(model_dir, load_prompt(PROMPT), SCORE_VIDEO, sampling, device="cpu")
    score_rows(scorer, rows, out, batch_size=batch_size)
    return {"peak_rss_mb": peak_rss_mb(), "rss_after_imports_mb": imported}


def sft_task(model_dir: str, dataset: str, trainer: dict, out: str) -> dict:
    from recipe_utils.train import SFTSettings, train_sft

    imported = imported_rss_mb()
    train_sft(model_dir, dataset, out, SFTSettings(**trainer))
    return {"peak_rss_mb": peak_rss_mb(), "rss_after_imports_mb": imported}


def smoke_sft(steps: int) -> tuple[dict, dict]:
    """The smoke profile's SFT video settings and trainer settings, cut to `steps` on CPU."""
    from dataclasses import fields

    from recipe_utils.config import load_config
    from recipe_utils.train import SFTSettings

    sft = load_config("smoke")["sft"]
    trainer = {f.name: sft[f.name] for f in fields(SFTSettings) if f.name in sft}
    return sft["video"], dict(trainer, steps=steps, save_every=steps, device="cpu")


def in_fresh_process(task: Callable[..., dict], *args) -> dict:
    """Run `task` in a new interpreter, so its peak memory is not mixed with another task's."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(task, *args).result()


def bench_memory(model_dir: Path, data_dir: Path, plan: Plan, work: Path) -> dict:
    from recipe_utils.videophy2 import prepare

    videos, batch = 16, 8
    scoring = in_fresh_process(
        score_task, str(model_dir), str(data_dir), videos, batch, str(work / "mem_scores")
    )
    video, trainer = smoke_sft(plan.sft_steps)
    dataset = prepare(data_dir, "train", work / "sft_data", PROMPT, **video)
    sft = in_fresh_process(sft_task, str(model_dir), str(dataset), trainer, str(work / "mem_sft"))
    summary = [
        {
            "measure": f"peak RSS, scoring {videos} videos (batch {batch})",
            "value": scoring["peak_rss_mb"],
            "unit": "MiB",
        },
        {
            "measure": f"peak RSS, SFT {trainer['steps']} steps (batch {trainer['batch_size']})",
            "value": sft["peak_rss_mb"],
            "unit": "MiB",
        },
        {
            "measure": "peak RSS after importing torch and transformers",
            "value": scoring["rss_after_imports_mb"],
            "unit": "MiB",
        },
    ]
    settings = {
        "model": "tiny Qwen2.5-VL",
        "scoring_video": SCORE_VIDEO,
        "sft_video": video,
        "sft": trainer,
        "measure": "VmHWM (ru_maxrss off Linux), one fresh process per task",
    }
    return {"settings": settings, "results": {"scoring": scoring, "sft": sft}, "summary": summary}


# ----------------------------------------------------------------------------- sftstep


# torch's CPU threads, as each run's environment sets them before torch starts.
THREAD_SETTINGS = {
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "2 threads, spinning (OpenMP default)": {"OMP_NUM_THREADS": "2"},
    "2 threads, passive wait": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"},
    "2 threads, short spin (course)": {"OMP_NUM_THREADS": "2", "GOMP_SPINCOUNT": "10000"},
}


def sft_step_task(model_dir: str, dataset: str, losses: tuple[str, ...], steps: int) -> dict:
    """Seconds of each of `steps` smoke SFT steps (forward, backward, clip, AdamW) on batches
    encoded beforehand, after one warm-up step, per loss: "answer_loss" as train_sft computes
    it, "model" as `model(**inputs, labels=labels).loss`. Losses take turns on each batch, so
    other jobs slow both alike."""
    import torch

    from recipe_utils import train
    from recipe_utils.scoring import load_model

    model, processor = load_model(model_dir, "cpu")
    data = train.Conversations(dataset, processor)
    pad = processor.tokenizer.pad_token_id
    header = processor.tokenizer(train.ASSISTANT_HEADER, add_special_tokens=False).input_ids
    optimizer, _ = train.make_optimizer(model, 1e-4, 0.01, 1, len(losses) * (steps + 1))
    model.train()
    seconds: dict[str, list[float]] = {loss: [] for loss in losses}
    for step in range(steps + 1):
        idx = train.batch_order(len(data), 8, step, 0)
        inputs = train.collate([data.encoded(i) for i in idx], pad)
        labels = train.assistant_labels(inputs["input_ids"], header, pad)
        for loss in losses:
            start = time.perf_counter()
            if loss == "model":
                value = model(**inputs, labels=labels).loss
            else:
                value = train.answer_loss(model, inputs, labels)
            value.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            seconds[loss].append(time.perf_counter() - start)
    return {loss: values[1:] for loss, values in seconds.items()}


def busy_cores(n: int) -> list[subprocess.Popen]:
    """`n` processes that each keep one core busy, as other jobs on a shared CI machine do."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def median_steps(
    model_dir: Path, dataset: Path, env: dict, losses: tuple[str, ...], steps: int
) -> dict[str, float]:
    """The median step time per loss of `sft_step_task`, in a fresh process started with `env`."""
    saved = dict(os.environ)
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        os.environ.pop(name, None)
    os.environ.update(env)
    try:
        seconds = in_fresh_process(sft_step_task, str(model_dir), str(dataset), losses, steps)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {loss: round(float(np.median(values)), 3) for loss, values in seconds.items()}


def bench_sftstep(model_dir: Path, data_dir: Path, plan: Plan, work: Path) -> dict:
    """One smoke SFT step under each thread setting, on the CPU as found and with one busy
    process per core besides; and the two losses (1 thread, as found)."""
    from recipe_utils.config import load_config, repo_path
    from recipe_utils.videophy2 import prepare

    sft = load_config("smoke")["sft"]
    dataset = prepare(
        data_dir,
        "train",
        work / "sftstep_data",
        repo_path(sft["prompt"]),
        rationale=sft["rationale"],
        **sft["video"],
    )
    steps, cores = plan.sft_steps, usable_cores()
    load = [round(x, 2) for x in os.getloadavg()]  # other jobs already running
    answer = ("answer_loss",)
    results: dict[str, dict] = {"as found": {}, f"{cores} busy processes besides": {}}
    for name, env in THREAD_SETTINGS.items():
        step = median_steps(model_dir, dataset, env, answer, steps)["answer_loss"]
        results["as found"][name] = step
    others = busy_cores(cores)
    try:
        for name, env in THREAD_SETTINGS.items():
            step = median_steps(model_dir, dataset, env, answer, steps)["answer_loss"]
            results[f"{cores} busy processes besides"][name] = step
    finally:
        for process in others:
            process.kill()
            process.wait()
    one = THREAD_SETTINGS["1 thread"]
    results["loss, 1 thread"] = median_steps(
        model_dir, dataset, one, ("model", "answer_loss"), steps
    )
    summary = [
        {"measure": f"SFT step, {where}, {name}", "value": value, "unit": "s"}
        for where, row in results.items()
        for name, value in row.items()
    ]
    settings = {
        "what": "median seconds of one smoke SFT step (forward, backward, clip, AdamW), batch 8",
        "steps": steps,
        "video": sft["video"],
        "load_average_at_start": load,
    }
    # Each run set its own threads (THREAD_SETTINGS), not this process's.
    notes = {"torch_threads": None}
    return {"settings": settings, "results": results, "summary": summary, "machine_notes": notes}


# ----------------------------------------------------------------------------- course


def cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    text = "".join(source) if isinstance(source, list) else source
    return text.strip().splitlines()[0] if text.strip() else ""


def bench_course(folder: Path) -> dict:
    """Wall time per notebook and the slowest cells, from papermill's per-cell durations."""
    from recipe_utils.course import find_notebooks

    notebooks = sorted(folder.glob("*.ipynb"))
    settings = {"folder": str(folder.relative_to(REPO) if folder.is_relative_to(REPO) else folder)}
    if not notebooks:
        reason = (
            f"no executed notebooks in {settings['folder']}; run `make course` "
            "(or `python bench/run.py --course`)"
        )
        return {"settings": settings, "results": {}, "summary": [], "skipped": reason}
    per_notebook, cells = {}, []
    for path in notebooks:
        notebook = json.loads(path.read_text())
        durations = []
        for index, cell in enumerate(notebook["cells"]):
            seconds = cell.get("metadata", {}).get("papermill", {}).get("duration")
            if seconds is not None:
                durations.append(seconds)
                cells.append(
                    {
                        "notebook": path.name,
                        "cell": index,
                        "seconds": round(seconds, 2),
                        "source": cell_source(cell),
                    }
                )
        whole = notebook.get("metadata", {}).get("papermill", {}).get("duration")
        per_notebook[path.name] = round(whole if whole is not None else sum(durations), 2)
    slowest = sorted(cells, key=lambda c: -c["seconds"])[:3]
    total = round(sum(per_notebook.values()), 2)
    missing = [nb.name for nb in find_notebooks() if nb.name not in per_notebook]
    label = f"course total, {len(notebooks)} notebooks"
    if missing:
        label += f" (incomplete run: {len(missing)} missing)"
    summary = [
        {"measure": f"{name} wall time", "value": s, "unit": "s"}
        for name, s in per_notebook.items()
    ]
    summary.append({"measure": label, "value": total, "unit": "s"})
    summary += [
        {
            "measure": f"slow cell: {c['notebook']} [{c['cell']}] `{c['source'][:40]}`",
            "value": c["seconds"],
            "unit": "s",
        }
        for c in slowest
    ]
    results = {
        "notebooks": per_notebook,
        "total_s": total,
        "slowest_cells": slowest,
        "missing": missing,
    }
    # The notebooks ran in their own kernels, with torch's default threads, not this process's.
    notes = {"torch_threads": None}
    return {"settings": settings, "results": results, "summary": summary, "machine_notes": notes}


def run_course() -> None:
    subprocess.run(
        [sys.executable, "-m", "recipe_utils", "course", "--profile", "smoke"], cwd=REPO, check=True
    )


# ----------------------------------------------------------------------------- seeds


def bench_seeds(grid: Path, results_dir: Path) -> dict:
    """How much the smoke course's reported numbers move with the seed alone: each run of a grid
    over `seed` (`course --profile smoke --grid seed=0,1,2`), the spread of every system's
    selected test accuracy and r, and each seed's GRPO-minus-SFT r, the difference the lessons
    weigh. (Each course's time is `course`'s to measure, on a machine doing nothing else.) The
    lessons cite it (recipe_utils.takeaways.seed_lines); compare.md and curves.png
    go beside the JSON."""
    from recipe_utils import compare
    from recipe_utils.plots import save_figure

    settings = {"folder": str(grid.relative_to(REPO) if grid.is_relative_to(REPO) else grid)}
    folders = compare.find_runs(grid) if grid.is_dir() else []
    runs = {folder: compare.load_run(folder) for folder in folders}
    finished = {f: run for f, run in runs.items() if {"sft", "grpo"} <= set(run.systems)}
    if len(finished) < 2 or compare.varying(list(finished.values())) != ["seed"]:
        reason = (
            f"no two finished runs in {settings['folder']} that differ only in `seed`: run "
            "`python -m recipe_utils course --profile smoke --grid seed=0,1,2 --out "
            f"{settings['folder']}` first"
        )
        return {"settings": settings, "results": {}, "summary": [], "skipped": reason}
    shared = next(iter(finished.values())).settings
    settings["profile"] = {key: value for key, value in shared.items() if key != "seed"}
    by_seed = {
        run.settings["seed"]: {
            system: {key: metrics.get(key) for key in ("step", *SEED_METRICS)}
            for system, metrics in run.systems.items()
        }
        for run in finished.values()
    }
    spread = {
        system: {
            metric: compare.spread(
                [m[system][metric] for m in by_seed.values() if m[system][metric] is not None]
            )
            for metric in SEED_METRICS
        }
        for system in compare.SYSTEMS
    }
    gain = {
        seed: m["grpo"]["pearson"] - m["sft"]["pearson"]
        for seed, m in by_seed.items()
        if None not in (m["grpo"]["pearson"], m["sft"]["pearson"])
    }
    text, _, figure = compare.comparison(list(finished))
    out = results_dir / "seeds"
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(text)
    save_figure(figure, out / "curves.png")
    summary = [
        {
            "measure": f"{compare.SYSTEMS[system]} test {metric}, {stats['n']} seeds: mean (sd)",
            "value": f"{stats['mean']:.3f} ({stats['sd']:.3f})",
            "unit": "",
        }
        for system, metrics in spread.items()
        for metric, stats in metrics.items()
        if stats is not None
    ]
    summary.append(
        {
            "measure": "GRPO minus SFT test r, per seed",
            "value": ", ".join(f"{g:+.3f}" for g in gain.values()),
            "unit": "",
        }
    )
    results = {
        "runs": by_seed,
        "spread": spread,
        "grpo_minus_sft_pearson": gain,
    }
    return {
        "settings": settings,
        "results": results,
        "summary": summary,
        "machine_notes": {"torch_threads": None},
    }


# ----------------------------------------------------------------------------- gpu


def bench_gpu(clip: Path, plan: Plan) -> dict:
    import torch

    if not torch.cuda.is_available():
        return {
            "settings": {},
            "results": {},
            "summary": [],
            "skipped": "no CUDA device here (torch.cuda.is_available() is False)",
        }
    from gpu import profile_7b

    return profile_7b(clip, plan.gpu_batch_sizes, plan.gpu_new_tokens, PROMPT, SCORE_VIDEO)


# ----------------------------------------------------------------------------- parsing


MEGABYTE = 1 << 20
# Long model outputs that a backtracking pattern could take minutes over (tests check the answers).
LONG_OUTPUTS = {
    "a megabyte of thinking, then one answer": "<think>"
    + "the ball falls " * (MEGABYTE // 15)
    + "</think>\n\n<answer>\n3\n</answer>",
    "a megabyte-long number in the answer": "<answer>" + "3" * MEGABYTE + "</answer>",
    "a megabyte of digits, no tags": "3" * MEGABYTE,
    "131072 opening tags": "<answer>" * (MEGABYTE // 8) + "3</answer>",
}


def bench_parsing(repeats: int = 5) -> dict:
    """Seconds to parse and reward one megabyte-long output (the fastest of `repeats`)."""
    from recipe_utils.rewards import total_reward

    reference = "<answer>\n3\n</answer>"
    seconds = {
        name: round(best([timed(total_reward, text, reference)[0] for _ in range(repeats)]), 4)
        for name, text in LONG_OUTPUTS.items()
    }
    summary = [
        {"measure": f"parse and reward: {name}", "value": value, "unit": "s"}
        for name, value in seconds.items()
    ]
    settings = {"repeats": repeats, "what": "rewards.total_reward (parse_answer, follows_format)"}
    return {"settings": settings, "results": seconds, "summary": summary}


# ----------------------------------------------------------------------------- main


def run_benchmarks(
    names: list[str], plan: Plan, results_dir: Path, course_dir: Path, seeds_dir: Path
) -> None:
    from recipe_utils.synthetic import generate
    from recipe_utils.tiny import build_tiny_model

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        model_dir = build_tiny_model(work / "model")
        data_dir = generate(work / "synth", n_train=16, n_test=plan.score_videos)
        clips = make_clips(work / "clips", plan)
        jobs = {
            "scoring": lambda: bench_scoring(model_dir, data_dir, plan, work),
            "dataprep": lambda: bench_dataprep(clips, plan.prep_repeats),
            "decode": lambda: bench_decode(
                make_videophy2_clips(work / "videophy2", plan.decode_clips), plan.decode_repeats
            ),
            "costmodel": lambda: bench_costmodel(results_dir, plan),
            "memory": lambda: bench_memory(model_dir, data_dir, plan, work),
            "sftstep": lambda: bench_sftstep(model_dir, data_dir, plan, work),
            "course": lambda: bench_course(course_dir),
            "seeds": lambda: bench_seeds(seeds_dir, results_dir),
            "gpu": lambda: bench_gpu(clips[0], plan),
            "parsing": bench_parsing,
        }
        for name in names:
            print(f"benchmark {name} ...", flush=True)
            elapsed, outcome = timed(jobs[name])
            print(f"  {elapsed:.0f}s: {record_outcome(results_dir, name, outcome)}", flush=True)


def record_outcome(results_dir: Path, name: str, outcome: dict) -> str:
    """Save a benchmark's outcome, unless it measured nothing and a measurement is on record:
    a machine without CUDA must not replace what a lent GPU measured with "no CUDA device
    here", nor a machine without a course the course's times. Says what it did."""
    recorded = read_result(results_dir, name)
    if outcome.get("skipped") and recorded and not recorded.get("skipped"):
        where = recorded["machine"].get("gpu") or recorded["machine"]["cpu"]
        return (
            f"not measured ({outcome['skipped']}); kept the measurement of "
            f"{recorded['date'][:10]} on {where}"
        )
    return f"-> {save_result(name, results_dir=results_dir, **outcome)}"


def set_threads(threads: int) -> None:
    """Fix torch's CPU threads here and in the processes this one starts. On a CPU shared with
    other jobs, one thread per core makes each parallel region wait for a descheduled thread:
    the same tiny-model `generate` call then takes anywhere from 0.03 s to 1.5 s."""
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="less work: under 5 min on 2 cores")
    parser.add_argument("--course", action="store_true", help="run the smoke course first")
    parser.add_argument("--report", action="store_true", help="only rebuild the README table")
    parser.add_argument(
        "--only", nargs="+", choices=BENCHMARKS, help="run only these (seeds runs only when named)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument(
        "--gpu-batch-sizes",
        type=int,
        nargs="+",
        help="batch sizes for the gpu benchmark (default: the plan's, 1 to 32; quick: 1 and 4)",
    )
    parser.add_argument(
        "--course-dir",
        type=Path,
        default=COURSE_DIR,
        help="executed notebooks to time (default: runs/smoke)",
    )
    parser.add_argument(
        "--seeds-dir",
        type=Path,
        default=SEEDS_DIR,
        help="a grid of smoke courses over seed (default: runs/smoke-grid)",
    )
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="folder of JSON results")
    parser.add_argument("--readme", type=Path, default=README, help="README holding the table")
    args = parser.parse_args(argv)
    if not args.report:
        if args.course:
            run_course()
        set_threads(args.threads)
        plan = QUICK if args.quick else FULL
        if args.gpu_batch_sizes:
            plan = replace(plan, gpu_batch_sizes=tuple(args.gpu_batch_sizes))
        run_benchmarks(
            args.only or [name for name in BENCHMARKS if name not in ON_REQUEST],
            plan,
            args.results,
            args.course_dir,
            args.seeds_dir,
        )
    print(write_readme(args.readme, args.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
