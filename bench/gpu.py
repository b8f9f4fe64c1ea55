"""GPU section: where the time goes when a Qwen2.5-VL-7B scores videos, batch 1 to 32.

The model is built from the 7B architecture (RECIPE_FACTS.md) with random bf16 weights, so
nothing is downloaded: timings depend on shapes, not on weight values. The processor is the tiny
offline one, whose special-token ids are written into the config; only the ids differ from the
real model, not the number of tokens. Each batch is timed in three parts: the vision encoder
alone, one-token generation (vision + prefill) and N-token generation (adds N - 1 decode steps).
Each part is compared with its compute bound, 2 x parameters x tokens at the GPU's bf16 peak
(attention's quadratic term is left out, so long prompts sit a little above the bound), and
decode also with the time to read the weights once per step from GPU memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

TEXT_7B = dict(
    vocab_size=152064,
    hidden_size=3584,
    intermediate_size=18944,
    num_hidden_layers=28,
    num_attention_heads=28,
    num_key_value_heads=4,
    rope_theta=1_000_000.0,
    max_position_embeddings=128000,
    rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]},
)
VISION_7B = dict(
    depth=32,
    hidden_size=1280,
    intermediate_size=3420,
    num_heads=16,
    out_hidden_size=3584,
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=112,
    fullatt_block_indexes=[7, 15, 23, 31],
    tokens_per_second=2,
)
# Dense bf16 tensor-core peak (TFLOPS) and memory bandwidth (TB/s), SXM parts.
PEAKS = {"H200": (989.0, 4.8), "H100": (989.0, 3.35), "A100": (312.0, 2.0)}


def peaks(device_name: str) -> tuple[float | None, float | None]:
    for key, value in PEAKS.items():
        if key in device_name:
            return value
    return None, None


def build_model(processor, text: dict, vision: dict, device: str, dtype: torch.dtype):
    """A randomly initialised Qwen2.5-VL of the given sizes, created directly on `device`, with
    the fast paths `scoring.load_model` gives every model (`modeling.use_fast_paths`)."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from recipe_utils.modeling import use_fast_paths

    ids = processor.tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        tie_word_embeddings=False,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            config, dtype=dtype, attn_implementation="sdpa"
        )
    use_fast_paths(model)
    return model.eval()


def clock(fn: Callable[[], object], device: str, repeats: int) -> float:
    """Fastest of `repeats` runs, synchronised so that queued GPU work is counted."""
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def time_batch(
    model,
    processor,
    messages: list[dict],
    clip,
    batch_size: int,
    new_tokens: int,
    device: str,
    repeats: int = 2,
) -> dict:
    """Seconds in the vision encoder, in prefill and in decode for one batch of copies."""
    from recipe_utils.scoring import chat_inputs, stop_ids

    inputs = chat_inputs(processor, [messages] * batch_size, [clip] * batch_size).to(device)
    pad = processor.tokenizer.pad_token_id
    gen = dict(do_sample=False, eos_token_id=stop_ids(processor.tokenizer), pad_token_id=pad)

    def encode():
        return model.model.get_video_features(
            inputs["pixel_values_videos"], inputs["video_grid_thw"]
        )

    def generate(tokens: int):
        return model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens, **gen)

    with torch.no_grad():
        vision = clock(encode, device, repeats)
        first = clock(lambda: generate(1), device, repeats)
        full = clock(lambda: generate(new_tokens), device, repeats)
    return {
        "batch_size": batch_size,
        "prompt_tokens": int(inputs["input_ids"].shape[1]),
        "vision_patches": int(inputs["pixel_values_videos"].shape[0]),
        "vision_s": vision,
        "prefill_s": first - vision,
        "decode_s": full - first,
        "total_s": full,
    }


def compute_flops(
    counts: dict, prompt_tokens: int, vision_patches: int, batch_size: int, new_tokens: int
) -> dict:
    """FLOPs of one batch per part: 2 x parameters x tokens (attention's quadratic term left out)."""
    return {
        "vision": 2 * counts["vision"] * vision_patches,
        "prefill": 2 * (counts["layers"] * prompt_tokens + counts["head"]) * batch_size,
        "decode": 2 * (counts["layers"] + counts["head"]) * batch_size * (new_tokens - 1),
    }


def add_bounds(
    row: dict, counts: dict, new_tokens: int, tflops: float | None, tbps: float | None
) -> dict:
    """Compute-bound seconds (2 x params x tokens at peak) and the share of peak reached."""
    steps = new_tokens - 1
    flops = compute_flops(
        counts, row["prompt_tokens"], row["vision_patches"], row["batch_size"], new_tokens
    )
    row = dict(row, videos_per_s=row["batch_size"] / row["total_s"])
    if tflops:
        for part, f in flops.items():
            row[f"{part}_bound_s"] = f / (tflops * 1e12)
            row[f"{part}_share_of_peak"] = row[f"{part}_bound_s"] / row[f"{part}_s"]
    if tbps:
        weight_bytes = 2 * (counts["layers"] + counts["head"])
        row["decode_weight_read_bound_s"] = weight_bytes * steps / (tbps * 1e12)
    return {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in row.items()}


def parameter_counts(model) -> dict:
    language = model.model.language_model
    embed = language.embed_tokens.weight.numel()
    return {
        "vision": sum(p.numel() for p in model.model.visual.parameters()),
        "layers": sum(p.numel() for p in language.parameters()) - embed,
        "head": model.lm_head.weight.numel(),
    }


def profile(
    model,
    processor,
    messages: list[dict],
    clip,
    batch_sizes: tuple[int, ...],
    new_tokens: int,
    device: str,
    tflops: float | None = None,
    tbps: float | None = None,
) -> list[dict]:
    """Time each batch size after one warm-up; stop at the first that runs out of memory."""
    counts = parameter_counts(model)
    time_batch(model, processor, messages, clip, 1, 2, device, repeats=1)
    rows = []
    for size in batch_sizes:
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        try:
            row = time_batch(model, processor, messages, clip, size, new_tokens, device)
        except torch.cuda.OutOfMemoryError:
            rows.append({"batch_size": size, "error": "CUDA out of memory"})
            torch.cuda.empty_cache()
            break
        if device.startswith("cuda"):
            row["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        rows.append(add_bounds(row, counts, new_tokens, tflops, tbps))
    return rows


def profile_7b(
    clip_path: Path, batch_sizes: tuple[int, ...], new_tokens: int, prompt_path: Path, video: dict
) -> dict:
    """The GPU benchmark: 7B architecture, bf16, sdpa, the recipe's scoring frames."""
    from recipe_utils.prompts import load_prompt
    from recipe_utils.tiny import build_processor, build_tokenizer
    from recipe_utils.video import load_clip
    from recipe_utils.videophy2 import build_messages

    name = torch.cuda.get_device_name(0)
    tflops, tbps = peaks(name)
    processor = build_processor(build_tokenizer())
    processor.tokenizer.padding_side = "left"
    model = build_model(processor, TEXT_7B, VISION_7B, "cuda", torch.bfloat16)
    clip = load_clip(clip_path, **video)
    messages = build_messages(
        {"id": "bench", "video": str(clip_path)}, load_prompt(prompt_path), video, with_answer=False
    )
    rows = profile(model, processor, messages, clip, batch_sizes, new_tokens, "cuda", tflops, tbps)
    summary = [
        {
            "measure": f"7B videos/s, batch {r['batch_size']}",
            "value": r["videos_per_s"],
            "unit": "videos/s",
        }
        for r in rows
        if "error" not in r
    ]
    if tflops:
        summary += [
            {
                "measure": f"7B prefill share of bf16 peak, batch {r['batch_size']}",
                "value": r["prefill_share_of_peak"],
                "unit": "",
            }
            for r in rows
            if "error" not in r
        ]
    settings = {
        "model": "Qwen2.5-VL-7B architecture, random weights",
        "dtype": "bfloat16",
        "attention": "sdpa",
        "fast_paths": "modeling.use_fast_paths (patch embedding as a product, vision windows batched)",
        "video": video,
        "frames": list(clip.frames.shape),
        "new_tokens": new_tokens,
        "batch_sizes": list(batch_sizes),
        "parameters": parameter_counts(model),
        "peak_bf16_tflops": tflops,
        "memory_tb_per_s": tbps,
    }
    return {"settings": settings, "results": {"batches": rows}, "summary": summary}
