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


def test_the_course_texts_are_whole_line_tokens_and_the_answer_header_stays_apart(tiny_model):
    from recipe_utils.prompts import PROMPTS_DIR, load_prompt
    from recipe_utils.train import ASSISTANT_HEADER

    _, processor = load(tiny_model)
    tokenizer = processor.tokenizer
    prompt = load_prompt(PROMPTS_DIR / "video_reward_with_thinking.yaml")
    # ~330 tokens under a word-level split: the miniature's compute goes to the clip instead
    assert len(tokenizer(prompt.system).input_ids) < 80
    answer = "<think>\n1. An object passes through a wall.\n</think>\n\n<answer>\n2\n</answer>"
    chat = processor.apply_chat_template(
        [{"role": "user", "content": "Q"}, {"role": "assistant", "content": answer}],
        tokenize=False,
    )
    ids = tokenizer(chat).input_ids
    header = tokenizer(ASSISTANT_HEADER, add_special_tokens=False).input_ids
    # train.assistant_labels finds the answer by these ids: the header never merges into it
    assert any(ids[i : i + len(header)] == header for i in range(len(ids)))
    assert tokenizer.convert_tokens_to_ids("2") in ids


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
