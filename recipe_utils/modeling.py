"""Changes to a loaded model that keep its arithmetic (up to float rounding) and its
checkpoints, and save time: `use_fast_paths` applies them all."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
    Qwen2_5_VLVisionAttention,
    apply_rotary_pos_emb_vision,
)


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
    visual = vision_tower(model)
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


class WindowBatchedAttention(nn.Module):
    """Qwen2.5-VL's vision attention with one sdpa call per window size instead of one per
    window. Without flash-attn, transformers runs the windows one by one in Python: about 600
    calls per layer for a clip at the recipe's scoring frames, which left an H200's vision tower
    at 4-6% of its compute bound. Windows of one size are stacked into a batch, so a clip costs
    a few calls per layer (the tiny model's clips, one). Keeps `qkv` and `proj`, so the weights
    keep their names."""

    def __init__(self, attn: nn.Module):
        super().__init__()
        self.qkv, self.proj = attn.qkv, attn.proj
        self.num_heads, self.scaling = attn.num_heads, attn.scaling

    def forward(
        self,
        hidden_states: torch.Tensor,
        cu_seqlens: torch.Tensor,
        rotary_pos_emb: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs,
    ) -> torch.Tensor:
        length = hidden_states.shape[0]
        qkv = self.qkv(hidden_states).reshape(length, 3, self.num_heads, -1)
        query, key, value = qkv.permute(1, 0, 2, 3).unbind(0)
        query, key = apply_rotary_pos_emb_vision(query, key, *position_embeddings)
        out = attention_by_window_size(query, key, value, cu_seqlens, self.scaling)
        return self.proj(out.reshape(length, -1))


def attention_by_window_size(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    cu_seqlens: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """Attention within each window [cu_seqlens[i], cu_seqlens[i + 1]) of (tokens, heads, dim)
    tensors, one batched sdpa call per window length."""
    bounds = cu_seqlens.tolist()  # one device-to-host copy per layer, as in transformers
    by_size: dict[int, list[int]] = {}
    for start, end in zip(bounds, bounds[1:]):
        if end > start:
            by_size.setdefault(end - start, []).append(start)
    if bounds[0] != 0 or bounds[-1] != query.shape[0]:
        raise ValueError(f"windows span {bounds[0]}..{bounds[-1]}, not the {len(query)} tokens")
    if len(by_size) == 1:  # windows of one size tile the tokens: views, no copies
        size = next(iter(by_size))
        q, k, v = (t.unflatten(0, (-1, size)).transpose(1, 2) for t in (query, key, value))
        return F.scaled_dot_product_attention(q, k, v, scale=scale).transpose(1, 2).flatten(0, 1)
    pieces, rows = [], []
    for size, group in by_size.items():
        offsets = torch.arange(size, device=query.device)
        index = (torch.tensor(group, device=query.device)[:, None] + offsets).flatten()
        q, k, v = (stack_windows(t, index, len(group)) for t in (query, key, value))
        out = F.scaled_dot_product_attention(q, k, v, scale=scale)  # (windows, heads, size, dim)
        pieces.append(out.transpose(1, 2).flatten(0, 1))
        rows.append(index)
    return torch.cat(pieces)[torch.argsort(torch.cat(rows))]


def stack_windows(tokens: torch.Tensor, index: torch.Tensor, count: int) -> torch.Tensor:
    """(tokens, heads, dim) rows at `index`, as `count` equal windows: (count, heads, size, dim)."""
    return tokens[index].unflatten(0, (count, -1)).transpose(1, 2)


def batch_vision_windows(model: nn.Module) -> int:
    """Swap the sdpa vision attention of a Qwen2.5-VL model for `WindowBatchedAttention`; eager
    attention (which can return weights) and flash-attn (already one call per layer) are left
    alone, as are other models. Returns how many blocks it swapped. The choice is made here:
    after `set_attn_implementation`, load the model again."""
    swapped = 0
    for block in getattr(vision_tower(model), "blocks", []):
        attn = block.attn
        if isinstance(attn, Qwen2_5_VLVisionAttention) and (
            attn.config._attn_implementation == "sdpa"
        ):
            block.attn = WindowBatchedAttention(attn)
            swapped += 1
    return swapped


def vision_tower(model: nn.Module) -> nn.Module | None:
    """A Qwen2.5-VL model's vision tower, or None for other models."""
    return getattr(getattr(model, "model", None), "visual", None)


def use_fast_paths(model: nn.Module) -> None:
    """Every change above that applies to `model`."""
    patch_embed_as_matmul(model)
    batch_vision_windows(model)
