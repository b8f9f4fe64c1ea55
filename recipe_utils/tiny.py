"""A tiny Qwen2.5-VL built offline: the smoke profile's model and every test's model.

It has the real architecture family (`Qwen2_5_VLForConditionalGeneration`, windowed vision tower,
multimodal rotary positions) at toy sizes, a byte-level BPE tokenizer trained locally that carries
the Qwen2.5-VL special tokens, and a processor saved with `save_pretrained`, so every loader in the
course opens it exactly as it opens `nvidia/Cosmos-Reason1-7B`.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from .prompts import PROMPTS_DIR
from .video import MIN_PIXELS

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Where the tokenizer may not merge across: digits stand alone, as in Qwen2's split, so "1".."5"
# are single tokens; every other piece runs to the end of its line. Qwen2 splits at words, which
# made the benchmark's system prompt ~330 tokens and a reasoned answer ~45; learned over the
# course's fixed texts, whole lines become tokens (~50 and ~13), so the tiny model spends its
# compute on the clip, not on re-reading and spelling out the same sentences.
SPLIT_PATTERN = r"\p{N}|[^\p{N}\n]*\n|[^\p{N}\n]+"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TEXT_SIZES = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=4096,
    rope_theta=1_000_000.0,
    rope_scaling={"type": "mrope", "mrope_section": [4, 6, 6]},  # sums to head_dim / 2
)
VISION_SIZES = dict(
    depth=2,
    hidden_size=64,
    intermediate_size=128,
    num_heads=4,
    out_hidden_size=128,  # = text hidden size
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=112,
    fullatt_block_indexes=[1],
    tokens_per_second=2,
)
# Weights start wider than the 7B model's 0.02: at 0.02 a 2-layer model's attention stays
# uniform over the ~450 prompt and video tokens (of the word-level tokenizer it had then) and it
# learns only the label prior (it cannot even memorise 64 clips in 300 steps); at 0.1 it
# memorises them in under 100 steps.
INIT_STD = 0.1
# Largest frame area the tiny processor accepts (the smallest: video.MIN_PIXELS); frames are
# resized by recipe_utils.video before they reach it, so these only guard against misuse.
MAX_PIXELS = 8192 * 28 * 28


def training_corpus() -> list[str]:
    """Text the tokenizer learns merges from: the benchmark prompts, the stand-in's pretraining
    questions and the answers the course trains on, reasoning included."""
    from .pretrain import QUESTIONS, SYSTEM, user_text
    from .synthetic import EVIDENCE
    from .videophy2 import answer_text, rationale

    texts = [SYSTEM, *(user_text(question) for question in QUESTIONS.values())]
    for path in sorted(PROMPTS_DIR.glob("*.yaml")):
        texts.extend(str(v) for v in yaml.safe_load(path.read_text()).values())
    texts += [answer_text(score) for score in range(1, 6)]
    texts.append(answer_text(1, rationale({"human_violated_rules": list(EVIDENCE.values())})))
    texts.append(answer_text(5, rationale({})))
    return texts


def build_tokenizer(vocab_size: int = 4096):
    """Train a byte-level BPE on the corpus and wrap it as the Qwen2 tokenizer class."""
    from transformers import Qwen2TokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(training_corpus() * 4, trainer=trainer)
    return Qwen2TokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        additional_special_tokens=SPECIAL_TOKENS[1:],
        chat_template=CHAT_TEMPLATE,
    )


def build_processor(tokenizer):
    from transformers import (
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessorFast,
        Qwen2VLVideoProcessor,
    )

    pixels = dict(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessorFast(**pixels),
        video_processor=Qwen2VLVideoProcessor(**pixels),
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
    )


def build_config(tokenizer):
    from transformers import Qwen2_5_VLConfig

    ids = tokenizer.convert_tokens_to_ids
    return Qwen2_5_VLConfig(
        text_config=dict(TEXT_SIZES, vocab_size=len(tokenizer), initializer_range=INIT_STD),
        vision_config=dict(VISION_SIZES, initializer_range=INIT_STD),
        initializer_range=INIT_STD,
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        eos_token_id=ids("<|im_end|>"),
        pad_token_id=ids("<|endoftext|>"),
        tie_word_embeddings=False,
    )


def build_tiny_model(out: str | Path, seed: int = 0) -> Path:
    """Build, initialise (seeded) and save the tiny model and its processor under `out`."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    out = Path(out)
    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer)
    config = build_config(tokenizer)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
