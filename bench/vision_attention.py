"""A/B of Qwen2.5-VL's vision attention: transformers' own sdpa path, which runs one window at
a time, against `modeling.WindowBatchedAttention`, one call per window size. The 7B vision tower
with random bf16 weights gets the recipe's scoring frames of an 832x480 clip (40 x 20 x 36
patches). Needs CUDA; on two lent H200 machines it gave 2.6-3.8x at batch 1 and 3.1-4.7x at
batch 4, with equal outputs (bench/README).

    python bench/vision_attention.py [--batches 1 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

import torch
from gpu import VISION_7B, clock
from torch import nn

GRID_832X480 = (40, 20, 36)  # frames / 2, patches down, patches across


def build_vision_tower(sizes: dict, device: str, dtype: torch.dtype) -> nn.Module:
    """A randomly initialised Qwen2.5-VL vision tower of the given sizes, with sdpa attention."""
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VisionTransformerPretrainedModel,
    )

    torch.manual_seed(0)
    with torch.device(device):
        visual = Qwen2_5_VisionTransformerPretrainedModel._from_config(
            Qwen2_5_VLVisionConfig(**sizes), dtype=dtype, attn_implementation="sdpa"
        )
    return visual.eval()


def compare(visual: nn.Module, grid: tuple[int, int, int], batch: int, repeats: int) -> dict:
    """Fastest seconds of each attention on the same clips, and their largest difference."""
    from recipe_utils.modeling import WindowBatchedAttention

    param = next(visual.parameters())
    grid_thw = torch.tensor([grid] * batch, device=param.device)
    patch = visual.patch_embed.proj.weight[0].numel()
    pixels = torch.randn(batch * grid[0] * grid[1] * grid[2], patch, device=param.device)
    pixels = pixels.to(param.dtype)
    attention = {
        "per_window": [block.attn for block in visual.blocks],
        "batched": [WindowBatchedAttention(block.attn) for block in visual.blocks],
    }
    run = partial(visual, pixels, grid_thw=grid_thw)
    seconds, outputs = {}, {}
    for name, modules in attention.items():
        for block, module in zip(visual.blocks, modules):
            block.attn = module
        with torch.no_grad():
            outputs[name] = run()  # also the warm-up
            seconds[name] = clock(run, str(param.device), repeats)
    for block, module in zip(visual.blocks, attention["per_window"]):
        block.attn = module
    difference = (outputs["batched"].float() - outputs["per_window"].float()).abs().max()
    return {
        "batch": batch,
        **{f"{name}_s": round(s, 4) for name, s in seconds.items()},
        "speedup": round(seconds["per_window"] / seconds["batched"], 2),
        "max_abs_difference": difference.item(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4], help="clips per call")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the fastest counts")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "error: needs a CUDA device (the 7B vision tower takes minutes per clip on a CPU)",
            file=sys.stderr,
        )
        return 2
    visual = build_vision_tower(VISION_7B, "cuda", torch.bfloat16)
    for batch in args.batches:
        print(compare(visual, GRID_832X480, batch, args.repeats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
