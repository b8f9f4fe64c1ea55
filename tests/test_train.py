import json
import math

import pytest
import torch

from recipe_utils import train
from recipe_utils.prompts import PROMPTS_DIR
from recipe_utils.videophy2 import prepare


@pytest.fixture(scope="module")
def conversations(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "sft"
    return prepare(
        synth, "train", out, PROMPTS_DIR / "video_reward.yaml", fps=4, max_pixels=112 * 112, limit=8
    )


@pytest.fixture(scope="module")
def thinking(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "grpo"
    return prepare(
        synth,
        "train",
        out,
        PROMPTS_DIR / "video_reward_with_thinking.yaml",
        fps=4,
        max_pixels=112 * 112,
        limit=8,
        balance_labels=True,
    )


def test_batch_order_is_a_seeded_shuffle_per_epoch():
    epoch = [i for step in range(5) for i in train.batch_order(10, 2, step, seed=1)]
    assert sorted(epoch) == list(range(10))  # every example once per epoch
    assert train.batch_order(10, 2, 7, seed=1) == train.batch_order(10, 2, 7, seed=1)
    assert train.batch_order(10, 2, 5, seed=1) != train.batch_order(10, 2, 0, seed=1)


def test_learning_rate_warms_up_then_decays_to_zero():
    factor = train.lr_lambda(warmup=4, total=14)
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(9) == pytest.approx(0.5)
    assert factor(14) == pytest.approx(0.0)


def test_learning_rate_can_stay_constant_after_warm_up():
    factor = train.lr_lambda(warmup=2, total=10, decay="none")
    assert [factor(s) for s in (0, 1, 5, 10)] == [0.5, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="decay must be one of"):
        train.lr_lambda(2, 10, decay="linear")


def test_loss_is_on_the_answer_tokens_only(tiny_model, conversations):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model)
    data = train.Conversations(conversations, processor)
    batch = train.collate([data.encoded(0), data.encoded(1)], processor.tokenizer.pad_token_id)
    header = processor.tokenizer(train.ASSISTANT_HEADER, add_special_tokens=False).input_ids
    labels = train.assistant_labels(batch["input_ids"], header, processor.tokenizer.pad_token_id)
    for row in range(2):
        kept = processor.tokenizer.decode([t for t in labels[row].tolist() if t != -100])
        assert kept == data.reference(row) + "<|im_end|>\n"


def test_group_advantages():
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.5, 2.0, 2.0, 2.0, 2.0])
    advantages = train.group_advantages(rewards, group_size=4)
    std = math.sqrt(0.125)
    assert advantages[:4].tolist() == pytest.approx([0.5 / std, -0.5 / std, 0.0, 0.0], rel=1e-4)
    assert advantages[4:].tolist() == [0.0, 0.0, 0.0, 0.0]  # no spread, no signal


def test_clipped_objective_by_hand():
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1]]))
    old = torch.zeros(1, 3)
    positive = train.clipped_objective(logp, old, torch.tensor([2.0]), 0.2, 0.2)
    assert positive.tolist()[0] == pytest.approx(
        [2.4, 1.0, 2.2]
    )  # 1.5 clipped to 1.2; min keeps 0.5
    negative = train.clipped_objective(logp, old, torch.tensor([-1.0]), 0.2, 0.2)
    assert negative.tolist()[0] == pytest.approx([-1.5, -0.8, -1.1])  # pessimistic side


def test_kl_penalty_by_hand():
    same = train.kl_penalty(torch.tensor([-1.0]), torch.tensor([-1.0]))
    assert same.item() == 0.0
    value = train.kl_penalty(torch.tensor([0.0]), torch.tensor([math.log(0.5)]))
    assert value.item() == pytest.approx(0.5 - math.log(0.5) - 1)


def test_completion_mask_stops_after_the_first_stop_token():
    completions = torch.tensor([[5, 6, 2, 0, 0], [5, 6, 7, 8, 9]])
    assert train.completion_mask(completions, [2]).tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]


def test_expand_vision_repeats_each_prompts_video_in_order():
    inputs = {
        "pixel_values_videos": torch.arange(6.0).view(6, 1),
        "video_grid_thw": torch.tensor([[1, 1, 2], [1, 2, 2]]),
        "second_per_grid_ts": torch.tensor([0.5, 1.0]),
    }
    vision = train.expand_vision(inputs, group=2)
    assert vision["pixel_values_videos"].view(-1).tolist() == [0, 1, 0, 1, 2, 3, 4, 5, 2, 3, 4, 5]
    assert vision["video_grid_thw"].tolist() == [[1, 1, 2], [1, 1, 2], [1, 2, 2], [1, 2, 2]]


def test_kl_beta_zero_is_refused_unless_forced():
    with pytest.raises(ValueError, match="kl_beta = 0"):
        train.GRPOSettings(kl_beta=0.0)
    assert train.GRPOSettings(kl_beta=0.0, force=True).kl_beta == 0.0


def test_collapse_is_detected():
    assert train.collapsed_score({"1": 0, "2": 0, "3": 1, "4": 9, "5": 0, "none": 5}, 0.8) == "4"
    assert train.collapsed_score({"1": 2, "2": 2, "3": 2, "4": 2, "5": 2, "none": 0}, 0.8) is None


def answers(*scores: int) -> list[str]:
    return [f"<answer>{score}</answer>" for score in scores]


def test_collapse_is_counted_over_distinct_prompts():
    """The smoke run warned because one step drew the same clip four times."""
    same_clip = answers(4, 4, 4, 4, 4, 4, 4, 4)  # 4 draws of clip 7, 2 completions each
    assert train.collapse_warning(same_clip, [7, 7, 7, 7], 2, 0.8) is None
    every_clip = answers(4, 4, 4, 4, 4, 4, 4, 4)
    assert "4 distinct clips are 4" in train.collapse_warning(every_clip, [1, 2, 3, 4], 2, 0.8)
    # pooled, 6 of 8 answers are 4; once per distinct clip, 2 of 4
    repeated = answers(4, 4, 4, 4, 4, 4, 2, 2)
    assert train.collapse_warning(repeated, [5, 5, 5, 6], 2, 0.7) is None


def test_zero_spread_share_counts_groups_that_teach_nothing():
    rewards = torch.tensor([1.5, 1.5, 1.5, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0])
    assert train.zero_spread_share(rewards, 3) == pytest.approx(2 / 3)
    advantages = train.group_advantages(rewards, 3).view(3, 3)
    assert advantages[0].abs().sum() == advantages[2].abs().sum() == 0 < advantages[1].abs().sum()


def test_sft_saves_loadable_checkpoints_and_resumes(tiny_model, conversations, tmp_path):
    settings = train.SFTSettings(steps=2, batch_size=2, save_every=2, device="cpu")
    train.train_sft(tiny_model, conversations, tmp_path, settings)
    assert list(train.checkpoints(tmp_path)) == [2]
    settings.steps = 4  # a longer run in the same folder continues from step 2
    final = train.train_sft(tiny_model, conversations, tmp_path, settings)
    assert [e["step"] for e in train.read_log(tmp_path / "train_log.jsonl")] == [1, 2, 3, 4]
    from transformers import AutoModelForImageTextToText, AutoProcessor

    AutoModelForImageTextToText.from_pretrained(final)
    AutoProcessor.from_pretrained(final)


def test_grpo_logs_rewards_kl_and_answers(tiny_model, thinking, tmp_path):
    settings = train.GRPOSettings(
        steps=2,
        prompts_per_step=2,
        generations=3,
        max_new_tokens=4,
        save_every=2,
        lr=1e-4,
        device="cpu",
    )
    final = train.train_grpo(tiny_model, thinking, tmp_path, settings)
    assert final.name == "step_2"
    log = train.read_log(tmp_path / "train_log.jsonl")
    assert [e["step"] for e in log] == [1, 2]
    for entry in log:
        assert 0 <= entry["reward_mean"] <= 2 and entry["kl"] >= 0
        assert sum(entry["prediction_histogram"].values()) == 6  # 2 prompts x 3 answers
        assert entry["zero_spread_share"] in (0.0, 0.5, 1.0)  # of 2 groups
    assert json.loads((tmp_path / "settings.json").read_text())["kl_beta"] == 0.05


def test_grpo_rollouts_never_write_vision_placeholders(tiny_model, thinking, tmp_path):
    """A policy that samples `<|video_pad|>` would break its own training forward pass."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    uniform = tmp_path / "uniform"  # every token equally likely: placeholders get sampled
    model = AutoModelForImageTextToText.from_pretrained(tiny_model)
    torch.nn.init.zeros_(model.lm_head.weight)
    model.save_pretrained(uniform)
    processor = AutoProcessor.from_pretrained(tiny_model)
    processor.save_pretrained(uniform)
    settings = train.GRPOSettings(
        steps=1, prompts_per_step=2, generations=8, max_new_tokens=64, save_every=1, device="cpu"
    )
    train.train_grpo(uniform, thinking, tmp_path / "run", settings)
    assert train.read_log(tmp_path / "run" / "train_log.jsonl")[0]["response_length"] > 32
    placeholders = train.vision_placeholder_ids(processor.tokenizer)
    assert len(set(placeholders)) == 4 and processor.tokenizer.unk_token_id not in placeholders


def test_lora_checkpoints_hold_merged_weights_the_scorer_loads(tiny_model, conversations, tmp_path):
    pytest.importorskip("peft")
    from transformers import AutoModelForImageTextToText

    settings = train.SFTSettings(steps=1, batch_size=2, save_every=1, device="cpu", lora_rank=2)
    final = train.train_sft(tiny_model, conversations, tmp_path, settings)
    assert not (final / "adapter_config.json").exists()
    merged = AutoModelForImageTextToText.from_pretrained(final)
    base = AutoModelForImageTextToText.from_pretrained(tiny_model)
    assert merged.state_dict().keys() == base.state_dict().keys()
