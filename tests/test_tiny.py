import numpy as np
import torch

from recipe_utils.tiny import SPECIAL_TOKENS, build_tiny_model, parameter_count


def load(path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return AutoModelForImageTextToText.from_pretrained(path), AutoProcessor.from_pretrained(path)


def test_loads_like_the_real_model_and_is_tiny(tiny_model):
    model, processor = load(tiny_model)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert type(processor.tokenizer).__name__ == "Qwen2TokenizerFast"
    assert parameter_count(model) < 10_000_000


def test_tokenizer_round_trip_and_special_tokens(tiny_model):
    _, processor = load(tiny_model)
    tokenizer = processor.tokenizer
    for token in SPECIAL_TOKENS:
        ids = tokenizer(token, add_special_tokens=False).input_ids
        assert len(ids) == 1 and tokenizer.decode(ids) == token
    text = "<think>\nThe ball hovers.\n</think>\n\n<answer>\n2\n</answer> ünïcode ✓"
    assert tokenizer.decode(tokenizer(text).input_ids) == text
    for digit in "12345":  # the expected score reads these five tokens
        assert len(tokenizer(digit, add_special_tokens=False).input_ids) == 1


def test_chat_template_renders_qwen_turns_with_a_video_slot(tiny_model):
    _, processor = load(tiny_model)
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Q"}]},
    ]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n"
        "<|vision_start|><|video_pad|><|vision_end|>Q<|im_end|>\n<|im_start|>assistant\n"
    )


def test_generates_text_for_a_clip_offline(tiny_model):
    model, processor = load(tiny_model)
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Q"}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    frames = np.random.default_rng(0).integers(0, 255, (8, 112, 112, 3), dtype=np.uint8)
    inputs = processor(text=[text], videos=[frames], return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)  # speed: bench/ `scoring`
    assert 1 <= out.shape[1] - inputs["input_ids"].shape[1] <= 8


def test_same_seed_same_weights(tmp_path):
    a = build_tiny_model(tmp_path / "a", seed=3)
    b = build_tiny_model(tmp_path / "b", seed=3)
    wa, _ = load(a)
    wb, _ = load(b)
    for (name, pa), (_, pb) in zip(wa.state_dict().items(), wb.state_dict().items()):
        assert torch.equal(pa, pb), name
