"""Changes to a loaded model that keep its arithmetic (up to float rounding) and its
checkpoints, and save CPU time."""

from __future__ import annotations

import torch
from torch import nn


class PatchEmbedMatmul(nn.Module):
    """Qwen2.5-VL's patch embedding computed as the matrix product it is. Its Conv3d's kernel
    equals its stride and covers a whole patch, so each output row is one flattened patch times
    the flattened kernel; on a CPU the convolution costs about 40 ms of a 0.26 s smoke SFT step
    (mostly its backward), the product a few. The Conv3d stays as `proj`, so the weight
    keeps its name and shape in every checkpoint."""

    def __init__(self, proj: nn.Conv3d):
        super().__init__()
        self.proj = proj

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        weight = self.proj.weight.flatten(1)  # (embed, channels x frames x height x width)
        return hidden_states.to(weight.dtype).view(-1, weight.shape[1]) @ weight.T


def patch_embed_as_matmul(model: nn.Module) -> bool:
    """Swap a Qwen2.5-VL model's patch embedding for `PatchEmbedMatmul`; other models are left
    as they are. Returns whether it swapped."""
    visual = getattr(getattr(model, "model", None), "visual", None)
    proj = getattr(getattr(visual, "patch_embed", None), "proj", None)
    whole_patches = (
        isinstance(proj, nn.Conv3d)
        and proj.kernel_size == proj.stride
        and proj.padding == (0, 0, 0)
        and proj.dilation == (1, 1, 1)
        and proj.groups == 1
        and proj.bias is None
    )
    if not whole_patches:
        return False
    visual.patch_embed = PatchEmbedMatmul(proj)
    return True
