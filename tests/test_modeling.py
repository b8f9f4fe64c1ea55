import pytest
import torch
from transformers import AutoModelForImageTextToText

from recipe_utils.modeling import (
    PatchEmbedMatmul,
    WindowBatchedAttention,
    attention_by_window_size,
    batch_vision_windows,
    patch_embed_as_matmul,
)
from recipe_utils.scoring import load_model


def stock(path, dtype=torch.float32, attention="sdpa"):
    return AutoModelForImageTextToText.from_pretrained(
        str(path), dtype=dtype, attn_implementation=attention
    )


def video_features(models, seed: int, grid=(2, 4, 4)) -> list[torch.Tensor]:
    """Each model's features of the same random clip (by default 2 frames of 4x4 patches)."""
    embed = models[0].model.visual.patch_embed
    patch = embed.in_channels * embed.temporal_patch_size * embed.patch_size**2
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(grid[0] * grid[1] * grid[2], patch, generator=generator)
    return [m.model.get_video_features(pixels, torch.tensor([grid]))[0] for m in models]


def test_matmul_patch_embedding_computes_the_convolutions_features_and_gradients(tiny_model):
    conv, swapped = stock(tiny_model), stock(tiny_model)
    assert patch_embed_as_matmul(swapped)
    assert isinstance(swapped.model.visual.patch_embed, PatchEmbedMatmul)
    features = video_features((conv, swapped), seed=0)
    torch.testing.assert_close(features[1], features[0], rtol=1e-5, atol=1e-5)
    for f in features:
        f.square().sum().backward()
    grads = [m.model.visual.patch_embed.proj.weight.grad for m in (conv, swapped)]
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-4)


def test_loaded_models_save_checkpoints_the_stock_class_loads(tiny_model, tmp_path):
    model, _ = load_model(tiny_model, "cpu")
    assert isinstance(model.model.visual.patch_embed, PatchEmbedMatmul)
    assert isinstance(model.model.visual.blocks[0].attn, WindowBatchedAttention)
    assert model.state_dict().keys() == stock(tiny_model).state_dict().keys()
    model.save_pretrained(tmp_path)
    reloaded = stock(tmp_path).state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(reloaded[name], tensor), name


def test_bfloat16_models_get_the_stock_features(tiny_model):
    model, _ = load_model(tiny_model, "cpu", "bfloat16")
    features = video_features((stock(tiny_model, torch.bfloat16), model), seed=1, grid=(2, 20, 36))
    assert features[1].dtype == torch.bfloat16
    torch.testing.assert_close(features[1], features[0], rtol=0.05, atol=0.05)


def test_convolutions_that_are_not_one_product_per_patch_are_left_alone(tiny_model):
    model = stock(tiny_model)
    embed = model.model.visual.patch_embed
    overlapping = torch.nn.Conv3d(3, embed.embed_dim, (2, 14, 14), stride=(1, 14, 14), bias=False)
    embed.proj = overlapping
    assert not patch_embed_as_matmul(model)
    assert model.model.visual.patch_embed is embed and embed.proj is overlapping
    assert not patch_embed_as_matmul(torch.nn.Linear(2, 2))


def test_batched_vision_windows_give_the_per_window_features_and_gradients(tiny_model):
    """On a CPU the arithmetic is the same to the bit: a checkpoint trained either way is the
    same checkpoint. 20x36 patches cut the frames into windows of three sizes (the general path);
    8x8 patches give windows of one size (the path the smoke clips take)."""
    for grid in ((2, 20, 36), (4, 8, 8)):
        per_window, batched = stock(tiny_model), stock(tiny_model)
        assert batch_vision_windows(batched) == len(batched.model.visual.blocks)
        assert all(isinstance(b.attn, WindowBatchedAttention) for b in batched.model.visual.blocks)
        features = video_features((per_window, batched), seed=2, grid=grid)
        assert torch.equal(features[1], features[0]), grid
        for f in features:
            f.square().sum().backward()
        grads = [dict(m.model.visual.named_parameters()) for m in (per_window, batched)]
        assert grads[0].keys() == grads[1].keys()
        for name, param in grads[0].items():
            assert torch.equal(grads[1][name].grad, param.grad), (grid, name)


def test_eager_vision_attention_is_left_alone(tiny_model):
    """Eager attention is what a user picks to get attention weights back."""
    model = stock(tiny_model, attention="eager")
    assert batch_vision_windows(model) == 0
    assert not any(isinstance(b.attn, WindowBatchedAttention) for b in model.model.visual.blocks)


def test_windows_must_cover_every_token():
    """transformers' own loop fails on such bounds too (its split sizes do not add up)."""
    tokens = torch.randn(128, 2, 8)
    with pytest.raises(ValueError, match="not the 128 tokens"):
        attention_by_window_size(tokens, tokens, tokens, torch.tensor([0, 64]), scale=1.0)
