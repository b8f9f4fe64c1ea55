import json
import math
from pathlib import Path

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


def test_batches_stay_full_when_the_data_holds_less_than_two():
    assert [len(train.batch_order(3, 2, step, seed=0)) for step in range(4)] == [2, 2, 2, 2]


def test_learning_rate_warms_up_then_decays_to_zero():
    factor = train.lr_lambda(warmup=4, total=14)
    assert [factor(s) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert factor(9) == pytest.approx(0.5)
    assert factor(14) == pytest.approx(0.0)
    assert factor(19) == pytest.approx(0.0)  # past the last step the rate stays at zero


def test_one_step_of_decay_reaches_zero():
    factor = train.lr_lambda(warmup=1, total=2)
    assert [factor(s) for s in range(3)] == pytest.approx([1.0, 1.0, 0.0])


def test_learning_rate_can_stay_constant_after_warm_up():
    factor = train.lr_lambda(warmup=2, total=10, decay="none")
    assert [factor(s) for s in (0, 1, 5, 10)] == [0.5, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="decay must be one of"):
        train.lr_lambda(2, 10, decay="linear")


@pytest.mark.slow
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


@pytest.mark.slow
def test_encoding_every_example_ahead_gives_what_encoding_one_at_a_time_gives(
    tiny_model, conversations
):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model)
    one_by_one, ahead = (train.Conversations(conversations, processor) for _ in range(2))
    ahead.encode_all(workers=2)
    assert len(ahead._encoded) == len(set(ahead._texts))
    for index in range(len(ahead)):
        expected, got = one_by_one.encoded(index), ahead.encoded(index)
        assert expected.keys() == got.keys()
        assert all(torch.equal(expected[k], got[k]) for k in expected)


@pytest.mark.slow
def test_a_repeated_conversation_is_decoded_and_encoded_once(
    tiny_model, conversations, tmp_path, monkeypatch
):
    import datasets
    from transformers import AutoProcessor

    from recipe_utils.scoring import clip_for
    from recipe_utils.videophy2 import load_conversations

    texts = list(load_conversations(conversations)["conversations"])
    repeated = tmp_path / "repeated"
    rows = [texts[0], texts[1], texts[0]]  # as up-sampling a rare label repeats its rows
    datasets.Dataset.from_dict({"conversations": rows}).save_to_disk(str(repeated))
    decoded = []

    def counted(messages):
        decoded.append(messages)
        return clip_for(messages)

    monkeypatch.setattr(train, "clip_for", counted)
    data = train.Conversations(repeated, AutoProcessor.from_pretrained(tiny_model))
    data.encode_all(workers=2)
    assert len(decoded) == 2
    assert data.encoded(2) is data.encoded(0) and data.encoded(1) is not data.encoded(0)


@pytest.mark.slow
def test_answer_loss_equals_the_models_own_loss_and_gradient(tiny_model, conversations):
    from recipe_utils.scoring import load_model

    model, processor = load_model(tiny_model, "cpu")
    data = train.Conversations(conversations, processor)
    data.conversations[1][-1]["content"] = "<think>\nIt slows down.\n</think>\n" + data.reference(1)
    pad = processor.tokenizer.pad_token_id
    batch = train.collate([data.encoded(i) for i in range(3)], pad)
    header = processor.tokenizer(train.ASSISTANT_HEADER, add_special_tokens=False).input_ids
    labels = train.assistant_labels(batch["input_ids"], header, pad)
    assert (batch["attention_mask"] == 0).any()  # rows of different lengths: padding to leave out
    losses, grads = [], []
    for compute in (
        lambda: model(**batch, labels=labels).loss,
        lambda: train.answer_loss(model, batch, labels),
    ):
        model.zero_grad()
        loss = compute()
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


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


def completion_logprobs(logits: torch.Tensor, completions: torch.Tensor) -> torch.Tensor:
    """Per-token log-probabilities of each completion under one position-wise policy."""
    logp = torch.log_softmax(logits, dim=-1).expand(len(completions), -1, -1)
    return logp.gather(-1, completions.unsqueeze(-1)).squeeze(-1)


def grpo_step(logits: torch.Tensor, completions, rewards, ref_logits, kl_beta) -> torch.Tensor:
    """One plain gradient step on `grpo_loss` for a group of completions; the new logits."""
    logits = logits.clone().requires_grad_(True)
    logp = completion_logprobs(logits, completions)
    ref_logp = completion_logprobs(ref_logits, completions)
    advantages = train.group_advantages(rewards, group_size=len(rewards))
    mask = torch.ones_like(logp)
    loss = train.grpo_loss(logp, logp.detach(), ref_logp, advantages, mask, 0.2, 0.2, kl_beta)
    loss.backward()
    return (logits - 0.5 * logits.grad).detach()


def test_grpo_update_moves_the_policy_towards_the_better_completion():
    """A hand-made group: two completions of two tokens from a 3-token vocabulary, the first
    rewarded. One step must make the first more likely and the second less likely."""
    completions = torch.tensor([[0, 1], [2, 2]])
    logits = torch.zeros(2, 3)
    new = grpo_step(logits, completions, torch.tensor([2.0, 0.0]), logits, kl_beta=0.05)
    before = completion_logprobs(logits, completions).sum(dim=1)
    after = completion_logprobs(new, completions).sum(dim=1)
    assert after[0] > before[0] + 0.1 and after[1] < before[1] - 0.1


def test_grpo_update_pulls_the_policy_towards_the_reference():
    """With no advantage to follow, only the KL term acts: the step lowers the KL."""
    completions = torch.tensor([[0, 1], [2, 2]])
    reference = torch.zeros(2, 3)
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, -2.0]])
    new = grpo_step(logits, completions, torch.tensor([1.0, 1.0]), reference, kl_beta=1.0)

    def kl(policy):
        logp = completion_logprobs(policy, completions)
        return train.kl_penalty(logp, completion_logprobs(reference, completions)).mean()

    assert kl(new) < kl(logits) - 0.01


def last_update(mu_iterations: int, epsilon: float) -> tuple[torch.Tensor, float]:
    """`mu_iterations` plain gradient steps on one batch of a hand-made group, the rollout
    policy's log-probs fixed as the old ones; the gradient and clipped share of the last."""
    completions = torch.tensor([[0, 1], [2, 2]])
    logits = torch.zeros(2, 3)
    advantages = train.group_advantages(torch.tensor([2.0, 0.0]), group_size=2)
    mask = torch.ones(2, 2)
    old_logp = completion_logprobs(logits, completions)
    for _ in range(mu_iterations):
        logits = logits.detach().requires_grad_(True)
        logp = completion_logprobs(logits, completions)
        # kl_beta 0: only the clipped surrogate acts
        train.grpo_loss(
            logp, old_logp, old_logp, advantages, mask, epsilon, epsilon, 0.0
        ).backward()
        share = train.clipped_share(logp, old_logp, advantages, mask, epsilon, epsilon)
        gradient = logits.grad
        logits = logits - 2.0 * gradient
    return gradient, share


def test_with_one_update_per_batch_clipping_cannot_act():
    clipped, share = last_update(mu_iterations=1, epsilon=0.2)
    unclipped, _ = last_update(mu_iterations=1, epsilon=1e6)
    assert torch.equal(clipped, unclipped) and share == 0.0


def test_with_several_updates_per_batch_clipping_changes_the_gradient():
    """The second update sees a ratio past 1 + epsilon on the rewarded completion: the clip
    stops pushing it further, so the gradient differs from the unclipped one."""
    clipped, share = last_update(mu_iterations=2, epsilon=0.2)
    unclipped, _ = last_update(mu_iterations=2, epsilon=1e6)
    assert share > 0
    assert not torch.allclose(clipped, unclipped, atol=1e-4)


def test_mu_iterations_below_one_is_refused():
    with pytest.raises(ValueError, match="mu_iterations"):
        train.GRPOSettings(mu_iterations=0)


def test_first_last_means_average_a_tenth_of_the_steps_each():
    log = [{"step": i + 1, "accuracy_reward": float(i)} for i in range(20)]
    assert train.first_last_means(log, "accuracy_reward") == (0.5, 18.5)  # steps 1-2, 19-20
    assert train.first_last_means(log[:5], "accuracy_reward") == (0.0, 4.0)  # one step each


@pytest.mark.slow
def test_token_logprobs_are_the_completion_tokens_log_probabilities(tiny_model):
    from recipe_utils.scoring import load_model

    model, _ = load_model(tiny_model, "cpu")
    sequences = torch.randint(10, 200, (2, 9), generator=torch.Generator().manual_seed(0))
    attention = torch.ones_like(sequences)
    with torch.no_grad():
        logp = train.token_logprobs(model, sequences, attention, {}, prompt_len=6)
        full = torch.log_softmax(model(input_ids=sequences, attention_mask=attention).logits, -1)
    expected = full[:, 5:8].gather(-1, sequences[:, 6:].unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(logp, expected)


def test_completion_mask_stops_after_the_first_stop_token():
    completions = torch.tensor([[5, 6, 2, 0, 0], [5, 6, 7, 8, 9]])
    assert train.completion_mask(completions, [2]).tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]


@pytest.mark.slow
def test_grpo_log_probs_and_gradients_match_the_models_own_on_repeated_clips(
    tiny_model, conversations
):
    """GRPO computes each clip's features once for its group and the shared system prompt once
    for all rows: the log-probs and every gradient must be those of the model run on each
    completion with its own copy of everything."""
    from recipe_utils.scoring import chat_inputs, clip_for, load_model

    model, processor = load_model(tiny_model, "cpu")
    data = train.Conversations(conversations, processor)
    prompts = [data.prompt(i) for i in range(2)]
    inputs = chat_inputs(processor, prompts, [clip_for(p) for p in prompts])
    group, prompt_len = 3, inputs["input_ids"].shape[1]
    completions = torch.randint(10, 200, (2 * group, 5), generator=torch.Generator().manual_seed(0))
    sequences = torch.cat([inputs["input_ids"].repeat_interleave(group, 0), completions], 1)
    finished = torch.ones_like(completions)
    finished[0, 3:] = 0  # a completion that stopped early
    attention = torch.cat([inputs["attention_mask"].repeat_interleave(group, 0), finished], 1)
    video_ids = [model.config.video_token_id, model.config.image_token_id]
    system = processor.tokenizer(prompts[0][0]["content"], add_special_tokens=False).input_ids
    assert train.shared_prefix_length(sequences, video_ids, attention) > len(system)  # shared
    vision = train.vision_inputs(inputs)
    clips = torch.split(vision["pixel_values_videos"], vision["video_grid_thw"].prod(1).tolist())
    copies = {
        "pixel_values_videos": torch.cat([c for c in clips for _ in range(group)]),
        "video_grid_thw": vision["video_grid_thw"].repeat_interleave(group, 0),
        "second_per_grid_ts": vision["second_per_grid_ts"].repeat_interleave(group),
    }
    results = []
    for compute in (
        lambda: train.token_logprobs(model, sequences, attention, vision, prompt_len, group),
        lambda: (
            torch.log_softmax(
                model(input_ids=sequences, attention_mask=attention, **copies).logits.float(), -1
            )[:, prompt_len - 1 : -1]
            .gather(-1, completions.unsqueeze(-1))
            .squeeze(-1)
        ),
    ):
        model.zero_grad()
        logp = compute()
        (logp * finished).sum().backward()
        results.append((logp.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-4, atol=1e-5)


def test_kl_beta_zero_is_refused_unless_forced():
    with pytest.raises(ValueError, match=r"kl_beta = 0 .*Keep kl_beta > 0.*force=True"):
        train.GRPOSettings(kl_beta=0.0)
    assert train.GRPOSettings(kl_beta=0.0, force=True).kl_beta == 0.0


def test_negative_kl_beta_is_refused_even_with_force():
    with pytest.raises(ValueError, match="kl_beta must be >= 0, got -0.1"):
        train.GRPOSettings(kl_beta=-0.1, force=True)


def test_grpo_betas_from_a_profile_list_become_a_tuple():
    assert train.GRPOSettings(betas=[0.9, 0.95]).betas == (0.9, 0.95)  # YAML gives lists


def test_collapse_is_detected():
    assert train.collapsed_score({"1": 0, "2": 0, "3": 1, "4": 9, "5": 0, "none": 5}, 0.8) == "4"
    assert train.collapsed_score({"1": 2, "2": 2, "3": 2, "4": 2, "5": 2, "none": 0}, 0.8) is None
    assert train.collapsed_score({"1": 1, "2": 0, "3": 0, "4": 4, "5": 0, "none": 0}, 0.8) == "4"


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


def test_resume_point_is_the_newest_complete_checkpoint(tmp_path):
    assert train.resume_point(tmp_path, "base") == (0, "base")
    for name in ("step_2", "step_4", "step_6.tmp"):
        (tmp_path / "checkpoints" / name).mkdir(parents=True)
        if name != "step_6.tmp":
            (tmp_path / "checkpoints" / name / "trainer_state.pt").touch()
    assert train.resume_point(tmp_path, "base") == (4, tmp_path / "checkpoints" / "step_4")


class Killed(Exception):
    """Stands for the process being killed."""


def kill_after_checkpoint(monkeypatch, step: int) -> None:
    """Make training die right after it has written the checkpoint of `step`."""
    save = train.save_checkpoint

    def save_then_die(out_dir, at, *args):
        path = save(out_dir, at, *args)
        if at == step:
            raise Killed(f"killed after saving step {at}")
        return path

    monkeypatch.setattr(train, "save_checkpoint", save_then_die)


def saved_weights(folder) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {
        k: v for path in sorted(folder.glob("*.safetensors")) for k, v in load_file(path).items()
    }


def assert_same(a, b, where: str = "") -> None:
    """Nested dicts and lists of tensors and plain values are equal, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{index}]")
    else:
        assert a == b, where


@pytest.mark.slow
def test_resumed_sft_equals_an_uninterrupted_run(tiny_model, conversations, tmp_path, monkeypatch):
    """Killed after its step-2 checkpoint and restarted, a run ends with the weights, optimizer
    moments and learning-rate schedule of a run that was never interrupted."""
    settings = train.SFTSettings(steps=4, batch_size=2, save_every=2, warmup_steps=1, device="cpu")
    whole = train.train_sft(tiny_model, conversations, tmp_path / "whole", settings)
    kill_after_checkpoint(monkeypatch, step=2)
    with pytest.raises(Killed):
        train.train_sft(tiny_model, conversations, tmp_path / "resumed", settings)
    monkeypatch.undo()
    resumed = train.train_sft(tiny_model, conversations, tmp_path / "resumed", settings)
    weights = saved_weights(whole)
    base = saved_weights(Path(tiny_model))
    assert any(not torch.equal(weights[k], base[k]) for k in base)  # training moved them
    assert_same(saved_weights(resumed), weights)
    state = torch.load(resumed / "trainer_state.pt", weights_only=False)
    assert_same(state, torch.load(whole / "trainer_state.pt", weights_only=False))
    logs = [train.read_log(tmp_path / run / "train_log.jsonl") for run in ("whole", "resumed")]
    assert logs[0] == logs[1]


@pytest.mark.slow
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


@pytest.mark.slow
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
        assert entry["clipped_share"] == 0.0  # one update per batch: the ratio stays 1
    assert json.loads((tmp_path / "settings.json").read_text())["kl_beta"] == 0.05


@pytest.mark.slow
def test_grpo_takes_mu_iterations_updates_per_batch_and_one_schedule_step(
    tiny_model, thinking, tmp_path
):
    settings = train.GRPOSettings(
        steps=2,
        prompts_per_step=2,
        generations=3,
        max_new_tokens=4,
        save_every=2,
        mu_iterations=3,
        device="cpu",
    )
    final = train.train_grpo(tiny_model, thinking, tmp_path, settings)
    state = torch.load(final / "trainer_state.pt", weights_only=False)
    adam_steps = {float(p["step"]) for p in state["optimizer"]["state"].values()}
    assert adam_steps == {6.0}  # 2 steps x 3 updates
    assert state["scheduler"]["last_epoch"] == 2  # the learning-rate schedule counts steps
    log = train.read_log(tmp_path / "train_log.jsonl")
    assert all(0.0 <= entry["clipped_share"] <= 1.0 for entry in log)


@pytest.mark.slow
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


@pytest.mark.slow
def test_lora_checkpoints_hold_merged_weights_the_scorer_loads(tiny_model, conversations, tmp_path):
    from transformers import AutoModelForImageTextToText

    settings = train.SFTSettings(steps=1, batch_size=2, save_every=1, device="cpu", lora_rank=2)
    final = train.train_sft(tiny_model, conversations, tmp_path, settings)
    assert not (final / "adapter_config.json").exists()
    merged = AutoModelForImageTextToText.from_pretrained(final)
    base = AutoModelForImageTextToText.from_pretrained(tiny_model)
    assert merged.state_dict().keys() == base.state_dict().keys()


@pytest.mark.slow
def test_lora_checkpoint_computes_what_the_adapted_model_computes(tiny_model, tmp_path):
    """The scorer loads a checkpoint as a plain model: its outputs must be the adapted model's
    (adapters merged in), not the base model's, and training goes on with its adapters."""
    from transformers import AutoModelForImageTextToText

    from recipe_utils.scoring import load_model

    model, processor = load_model(tiny_model, "cpu")
    model = train.add_lora(model, rank=2)
    torch.manual_seed(0)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero; trained adapters are not
            torch.nn.init.normal_(parameter, std=0.5)
    optimizer, scheduler = train.make_optimizer(model, 1e-3, 0.0, warmup=1, total=2)
    path = train.save_checkpoint(tmp_path, 1, model, processor, optimizer, scheduler)
    ids = processor.tokenizer("<answer>\n3\n</answer>", return_tensors="pt").input_ids
    with torch.no_grad():
        adapted = model.eval()(input_ids=ids).logits
        base = AutoModelForImageTextToText.from_pretrained(tiny_model).eval()(input_ids=ids).logits
        saved = AutoModelForImageTextToText.from_pretrained(path).eval()(input_ids=ids).logits
    assert (adapted - base).abs().max() > 1e-2  # the adapters change what the model computes
    torch.testing.assert_close(saved, adapted, atol=1e-4, rtol=1e-4)
    assert any("lora_B" in name for name, _ in model.named_parameters())
