"""In-process fine-tuning for one device: supervised (SFT) and GRPO, small enough to read.

Both trainers read the conversation datasets that `videophy2.prepare` writes (the same ones the
cosmos-rl entry scripts read on 8 GPUs), decode frames with the settings stored in each
conversation, save a `save_pretrained` checkpoint every N steps (model + processor, which the
scorer loads directly) together with the optimizer state, and resume from the newest checkpoint
when restarted: an interrupted run loses at most the steps since its last checkpoint.
"""

from __future__ import annotations

import copy
import json
import math
import random
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .machine import usable_cores
from .progress import tqdm
from .scoring import chat_inputs, clip_for, load_model, repair_tail
from .video import Clip

ASSISTANT_HEADER = "<|im_start|>assistant\n"


@dataclass
class SFTSettings:
    steps: int = 300
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-3
    warmup_steps: int = 20
    decay: str = "cosine"  # after warm-up: cosine to zero, or "none" (constant)
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    save_every: int = 100
    seed: int = 0
    device: str = "auto"
    lora_rank: int = 0  # > 0 trains LoRA adapters (peft) instead of every weight


TOKEN_KEYS = ("input_ids", "attention_mask")


class Conversations:
    """A prepared conversation dataset, each example tokenised with its frames once and cached:
    decoding and processing a clip costs more than a tiny model's training step."""

    def __init__(self, path: str | Path, processor):
        from .videophy2 import load_conversations

        self.processor = processor
        self._texts = list(load_conversations(path)["conversations"])
        self.conversations = [json.loads(c) for c in self._texts]
        # keyed by the conversation's text: balancing labels up-samples the rare ones, which
        # repeats rows, and a repeated row is encoded once
        self._encoded: dict[str, dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.conversations)

    def prompt(self, index: int) -> list[dict]:
        """System and user turns only: what the policy sees before it answers."""
        return [m for m in self.conversations[index] if m["role"] != "assistant"]

    def reference(self, index: int) -> str:
        return next(m["content"] for m in self.conversations[index] if m["role"] == "assistant")

    def encoded(self, index: int) -> dict[str, torch.Tensor]:
        """The whole conversation (prompt and answer) as model inputs for one example."""
        key = self._texts[index]
        if key not in self._encoded:
            self._encoded[key] = self._encode(index, clip_for(self.conversations[index]))
        return self._encoded[key]

    def _encode(self, index: int, clip: Clip) -> dict[str, torch.Tensor]:
        inputs = chat_inputs(self.processor, [self.conversations[index]], [clip])
        return {k: v[0] if k in TOKEN_KEYS else v for k, v in inputs.items()}

    def encode_all(self, workers: int) -> None:
        """Encode every distinct example now, with `workers` threads decoding clips ahead of
        the processor: PyAV lets go of the GIL while it decodes. The processor stays on this
        thread (a fast tokenizer's padding state is not safe to share between threads) and
        runs its tensor arithmetic on one core, leaving the others to the decoders: with
        torch's own two threads on two cores, a clip took 9.6 ms, more than the 7.5 ms of
        decoding and processing one after the other; with one, 6.1 ms."""
        first: dict[str, int] = {}  # each distinct conversation's first row
        for index, text in enumerate(self._texts):
            first.setdefault(text, index)
        todo = [index for text, index in first.items() if text not in self._encoded]
        threads = torch.get_num_threads()
        pool = ThreadPoolExecutor(workers)
        try:
            torch.set_num_threads(1)
            clips = pool.map(lambda i: clip_for(self.conversations[i]), todo)
            for index, clip in zip(todo, tqdm(clips, total=len(todo), desc="clips", unit="clip")):
                self._encoded[self._texts[index]] = self._encode(index, clip)
        finally:  # on Ctrl-C, stop at once rather than after decoding every clip left
            pool.shutdown(cancel_futures=True)
            torch.set_num_threads(threads)


def vision_inputs(inputs: dict) -> dict:
    """The clip tensors of model inputs: everything but the token rows."""
    return {k: v for k, v in inputs.items() if k not in TOKEN_KEYS}


def collate(examples: list[dict[str, torch.Tensor]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad token rows and concatenate the vision tensors of single examples."""
    width = max(len(e["input_ids"]) for e in examples)
    batch = {
        "input_ids": torch.full((len(examples), width), pad_id, dtype=torch.long),
        "attention_mask": torch.zeros((len(examples), width), dtype=torch.long),
    }
    for row, example in enumerate(examples):
        n = len(example["input_ids"])
        batch["input_ids"][row, :n] = example["input_ids"]
        batch["attention_mask"][row, :n] = example["attention_mask"]
    for key in examples[0]:
        if key not in TOKEN_KEYS:
            batch[key] = torch.cat([e[key] for e in examples])
    return batch


def batch_order(n: int, batch_size: int, step: int, seed: int) -> list[int]:
    """Indices of the batch for `step`: a fresh seeded shuffle each epoch, so resuming at any
    step replays exactly the batches an uninterrupted run would have seen."""
    per_epoch = max(1, n // batch_size)
    epoch, offset = divmod(step, per_epoch)
    order = list(range(n))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    return order[offset * batch_size : (offset + 1) * batch_size]


def assistant_labels(input_ids: torch.Tensor, header: list[int], pad_id: int) -> torch.Tensor:
    """Labels that keep only the tokens after the last assistant header (loss on the answer)."""
    labels = torch.full_like(input_ids, -100)
    width = len(header)
    for row, ids in enumerate(input_ids.tolist()):
        starts = [i for i in range(len(ids) - width + 1) if ids[i : i + width] == header]
        if not starts:
            raise ValueError("a training example has no assistant turn to learn from")
        begin = starts[-1] + width
        labels[row, begin:] = input_ids[row, begin:]
    labels[input_ids == pad_id] = -100
    return labels


def _core(model):
    """The Qwen2.5-VL model itself: under a LoRA wrapper, the one whose layers hold the adapters."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def shared_prefix_length(
    input_ids: torch.Tensor, vision_ids: list[int], attention_mask: torch.Tensor | None = None
) -> int:
    """How many leading tokens every row has in common and attends to (the system prompt),
    stopping at the first vision token (whose embedding is a clip's features) and before the
    last token, so every row keeps something to compute."""
    same = (input_ids == input_ids[:1]).all(dim=0)
    if attention_mask is not None:
        same &= (attention_mask == 1).all(dim=0)
    same &= ~torch.isin(input_ids[0], torch.tensor(vision_ids, device=input_ids.device))
    ends = (~same).nonzero()
    length = int(ends[0]) if len(ends) else input_ids.shape[1]
    return min(length, input_ids.shape[1] - 1)


def shared_prefix_logits(
    model,
    input_ids: torch.Tensor,
    vision: dict,
    keep: torch.Tensor | slice,
    attention_mask: torch.Tensor | None = None,
    video_repeats: int = 1,
) -> torch.Tensor:
    """The model's logits at positions `keep`, as `model(..., logits_to_keep=keep)` computes
    them, with two repeats computed once. The prefix every row shares (the system prompt)
    runs once per batch instead of once per row, and the rows attend to it through a
    key/value cache repeated for each, so gradients reach it as through the rows' own copies.
    With `video_repeats` > 1, each of the `vision` clips is shown by that many consecutive rows
    (a GRPO group) and its features are computed once instead of once per completion."""
    from transformers import DynamicCache

    core = _core(model)
    inner, config = core.model, core.config
    grid = vision.get("video_grid_thw")
    seconds = vision.get("second_per_grid_ts")
    positions, _ = inner.get_rope_index(
        input_ids,
        None,
        None if grid is None else grid.repeat_interleave(video_repeats, dim=0),
        second_per_grid_ts=None if seconds is None else seconds.repeat_interleave(video_repeats),
        attention_mask=attention_mask,
    )
    prefix = shared_prefix_length(
        input_ids, [config.video_token_id, config.image_token_id], attention_mask
    )
    embed = inner.get_input_embeddings()
    cache = DynamicCache()
    if prefix:
        inner.language_model(
            inputs_embeds=embed(input_ids[:1, :prefix]),
            position_ids=positions[:, :1, :prefix],
            past_key_values=cache,
            use_cache=True,
        )
        cache.batch_repeat_interleave(len(input_ids))
    rest = input_ids[:, prefix:]
    embeds = embed(rest)
    features = torch.zeros(0, embeds.shape[-1], dtype=embeds.dtype, device=embeds.device)
    if grid is not None:
        clips = inner.get_video_features(vision["pixel_values_videos"], grid)
        features = torch.cat([f for f in clips for _ in range(video_repeats)]).to(embeds.dtype)
    # the model's own check that every video token gets one feature row (a sampled
    # <|video_pad|> would otherwise shift every clip's features)
    _, slots = inner.get_placeholder_mask(rest, inputs_embeds=embeds, video_features=features)
    embeds = embeds.masked_scatter(slots, features)
    hidden = inner.language_model(
        inputs_embeds=embeds,
        position_ids=positions[:, :, prefix:],
        attention_mask=attention_mask,
        past_key_values=cache,
        cache_position=torch.arange(prefix, input_ids.shape[1], device=input_ids.device),
        use_cache=True,
    ).last_hidden_state
    if isinstance(keep, torch.Tensor):
        keep = keep - prefix
    return core.lm_head(hidden[:, keep])


def answer_loss(model, inputs: dict, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the labelled (answer) tokens of a right-padded batch: what
    `model(**inputs, labels=labels).loss` computes, for less. Logits are computed only at the
    positions that predict an answer token (the prompt and video positions carry no label), the
    system prompt every row shares is computed once (`shared_prefix_logits`), and the padding
    mask is left out: every pad comes after its row's real tokens, where causal attention never
    looks (bench/README.md, "Where the time goes")."""
    targets = labels[:, 1:]  # position p predicts token p + 1
    positions = (targets != -100).any(dim=0).nonzero().squeeze(1)
    logits = shared_prefix_logits(model, inputs["input_ids"], vision_inputs(inputs), positions)
    return torch.nn.functional.cross_entropy(
        logits.flatten(0, 1).float(), targets[:, positions].flatten(), ignore_index=-100
    )


DECAYS = ("cosine", "none")


def lr_lambda(warmup: int, total: int, decay: str = "cosine") -> Callable[[int], float]:
    """Linear warm-up, then cosine decay to zero (`cosine`) or a constant rate (`none`)."""
    if decay not in DECAYS:
        raise ValueError(f"decay must be one of {DECAYS}, got {decay!r}")

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if decay == "none":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def make_optimizer(
    model,
    lr: float,
    weight_decay: float,
    warmup: int,
    total: int,
    betas: tuple[float, float] = (0.9, 0.999),
    decay: str = "cosine",
):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=betas)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(warmup, total, decay))
    return optimizer, scheduler


def checkpoints(out_dir: str | Path) -> dict[int, Path]:
    """Complete checkpoints under `out_dir/checkpoints/step_N`, by step."""
    found = {}
    for path in Path(out_dir, "checkpoints").glob("step_*"):
        step = path.name.removeprefix("step_")
        if step.isdigit() and (path / "trainer_state.pt").exists():  # not a half-saved step_N.tmp
            found[int(step)] = path
    return dict(sorted(found.items()))


def save_checkpoint(out_dir: Path, step: int, model, processor, optimizer, scheduler) -> Path:
    """Write to a temporary folder and rename, so a kill never leaves a half checkpoint."""
    final = out_dir / "checkpoints" / f"step_{step}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if hasattr(model, "merge_and_unload"):  # LoRA: save whole merged weights the scorer can load
        copy.deepcopy(model).merge_and_unload().save_pretrained(tmp)
    else:
        model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    torch.save(
        {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
        tmp / "trainer_state.pt",
    )
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def resume_point(out_dir: Path, model_path: str | Path) -> tuple[int, str | Path]:
    """(step, weights to start from): the newest checkpoint if any, else step 0 and the base."""
    found = checkpoints(out_dir)
    if not found:
        return 0, model_path
    step = max(found)
    return step, found[step]


def restore_optimizer(checkpoint: Path, optimizer, scheduler) -> None:
    state = torch.load(checkpoint / "trainer_state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])


def append_log(path: Path, entry: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(entry) + "\n")


def read_log(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def first_last_means(log: list[dict], key: str, share: float = 0.1) -> tuple[float, float]:
    """Mean of `key` over the first and the last `share` of the logged steps (at least one
    step each): where a noisy per-step curve started and where it ended."""
    if not log:
        raise ValueError("the training log is empty: train first")
    window = max(1, int(len(log) * share))
    first, last = log[:window], log[-window:]
    return sum(e[key] for e in first) / window, sum(e[key] for e in last) / window


def truncate_log(path: Path, step: int) -> None:
    """Drop log lines past `step` (a resumed run re-does those steps and logs them again) and a
    last line torn by a kill."""
    repair_tail(path)
    kept = [e for e in read_log(path) if e["step"] <= step]
    path.write_text("".join(json.dumps(e) + "\n" for e in kept))


def add_lora(model, rank: int):
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise ImportError(
            "LoRA needs peft: install the `train` extra (pip install -e .[train])"
        ) from exc
    config = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]
    )
    return get_peft_model(model, config)


@dataclass
class TrainingRun:
    """What both trainers set up the same way: weights (resumed if a checkpoint exists), data,
    optimizer and the log; and what they do the same way after each step."""

    out_dir: Path
    start: int
    model: torch.nn.Module
    processor: object
    data: Conversations
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    log: Path

    def update(self, max_grad_norm: float) -> None:
        """Clip the gradient and take one optimizer step."""
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def finish_step(
        self, step: int, entry: dict, max_grad_norm: float, steps: int, save_every: int
    ) -> None:
        """Take the step's (last) update, advance the schedule once per step, log the step and
        save a checkpoint when one is due."""
        self.update(max_grad_norm)
        self.scheduler.step()
        append_log(self.log, {"step": step, **entry, "lr": self.scheduler.get_last_lr()[0]})
        if step % save_every == 0 or step == steps:
            save_checkpoint(
                self.out_dir, step, self.model, self.processor, self.optimizer, self.scheduler
            )


def start_run(
    model_path: str | Path,
    dataset_path: str | Path,
    out_dir: str | Path,
    settings,
    betas: tuple[float, float] = (0.9, 0.999),
    lora_rank: int = 0,
) -> TrainingRun:
    """Load the newest checkpoint under `out_dir` (or the base model) with its optimizer state."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start, weights = resume_point(out_dir, model_path)
    model, processor = load_model(weights, settings.device)
    if lora_rank:
        model = add_lora(model, lora_rank)
    optimizer, scheduler = make_optimizer(
        model,
        settings.lr,
        settings.weight_decay,
        settings.warmup_steps,
        settings.steps,
        betas,
        settings.decay,
    )
    log = out_dir / "train_log.jsonl"
    if start:
        restore_optimizer(weights, optimizer, scheduler)
    truncate_log(log, start)
    (out_dir / "settings.json").write_text(json.dumps(asdict(settings), indent=2))
    data = Conversations(dataset_path, processor)
    return TrainingRun(out_dir, start, model, processor, data, optimizer, scheduler, log)


def train_sft(
    model_path: str | Path,
    dataset_path: str | Path,
    out_dir: str | Path,
    settings: SFTSettings | None = None,
) -> Path:
    """Fine-tune on prepared conversations with the loss on the answer tokens only."""
    s = settings or SFTSettings()
    run = start_run(model_path, dataset_path, out_dir, s, lora_rank=s.lora_rank)
    model, data, tokenizer = run.model, run.data, run.processor.tokenizer
    pad_id = tokenizer.pad_token_id
    header = tokenizer(ASSISTANT_HEADER, add_special_tokens=False).input_ids
    if run.start < s.steps:
        data.encode_all(usable_cores())
    torch.manual_seed(s.seed + run.start)
    model.train()
    bar = tqdm(range(run.start, s.steps), initial=run.start, total=s.steps, desc="sft", unit="step")
    for step in bar:
        loss_sum = 0.0
        for micro in range(s.grad_accum):
            idx = batch_order(len(data), s.batch_size, step * s.grad_accum + micro, s.seed)
            inputs = collate([data.encoded(i) for i in idx], pad_id)
            labels = assistant_labels(inputs["input_ids"], header, pad_id)
            inputs = {k: v.to(model.device) for k, v in inputs.items()}
            loss = answer_loss(model, inputs, labels.to(model.device)) / s.grad_accum
            loss.backward()
            loss_sum += loss.item()
        run.finish_step(step + 1, {"loss": loss_sum}, s.max_grad_norm, s.steps, s.save_every)
        bar.set_postfix(loss=f"{loss_sum:.3f}")
    return checkpoints(run.out_dir)[s.steps]


@dataclass
class GRPOSettings:
    steps: int = 60
    prompts_per_step: int = 4
    generations: int = 8  # G completions per prompt
    temperature: float = 0.9
    max_new_tokens: int = 16
    lr: float = 2e-6
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.01
    warmup_steps: int = 5
    decay: str = "none"  # constant after warm-up: cosmos-rl's default, kept by the recipe's GRPO
    max_grad_norm: float = 1.0
    epsilon_low: float = 0.2
    epsilon_high: float = 0.2
    kl_beta: float = 0.05
    # cosmos-rl's train_policy.mu_iterations (default 1): optimizer updates per rollout batch,
    # each against the same fixed "old" log-probs, so from the second on the ratio leaves 1
    # and clipping acts
    mu_iterations: int = 1
    save_every: int = 20
    seed: int = 0
    device: str = "auto"
    force: bool = False  # allow kl_beta = 0
    collapse_share: float = 0.8  # warn when one score takes this share (collapse_warning)

    def __post_init__(self):
        self.betas = tuple(self.betas)
        if self.mu_iterations < 1:
            raise ValueError(f"mu_iterations must be >= 1, got {self.mu_iterations}")
        if self.kl_beta < 0:
            raise ValueError(f"kl_beta must be >= 0, got {self.kl_beta}")
        if self.kl_beta == 0 and not self.force:
            raise ValueError(
                "kl_beta = 0 removes the pull towards the reference model; the published recipe "
                "found that the policy then overfits (and drifts into answering one score). Keep "
                "kl_beta > 0 (recipe: 0.05), or pass force=True (--force) to run without it."
            )


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """Rewards normalised within each prompt's group: (r - mean) / std. A group whose
    completions all scored the same carries no signal and gets zero advantage."""
    groups = rewards.view(-1, group_size)
    mean = groups.mean(dim=1, keepdim=True)
    std = groups.std(dim=1, keepdim=True, unbiased=False)
    advantages = torch.where(std > eps, (groups - mean) / (std + eps), torch.zeros_like(groups))
    return advantages.view(-1)


def zero_spread_share(rewards: torch.Tensor, group_size: int, eps: float = 1e-6) -> float:
    """The share of prompts whose completions all scored alike: `group_advantages` gives them
    zero advantage, so they teach nothing this step."""
    std = rewards.view(-1, group_size).std(dim=1, unbiased=False)
    return (std <= eps).float().mean().item()


def clipped_objective(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    epsilon_low: float,
    epsilon_high: float,
) -> torch.Tensor:
    """Per-token PPO surrogate to maximise: min(ratio * A, clip(ratio, 1-el, 1+eh) * A)."""
    ratio = torch.exp(logp - old_logp)
    adv = advantages.unsqueeze(-1)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    return torch.minimum(ratio * adv, clipped * adv)


def clipped_share(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    epsilon_low: float,
    epsilon_high: float,
) -> float:
    """The share of completion tokens the clip holds back: their ratio left [1 - el, 1 + eh]
    in the direction their advantage pushes, so `clipped_objective` gives them no gradient.
    Always 0 on an update whose ratio is 1 (the first of each batch)."""
    ratio = torch.exp(logp - old_logp)
    adv = advantages.unsqueeze(-1)
    clipped = ((ratio > 1 + epsilon_high) & (adv > 0)) | ((ratio < 1 - epsilon_low) & (adv < 0))
    return ((clipped.float() * mask).sum() / mask.sum().clamp(min=1)).item()


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL(policy || reference), the non-negative k3 estimator used by GRPO."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over each sequence's completion tokens, then over sequences."""
    per_sequence = (values * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    return per_sequence.mean()


def grpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    ref_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    epsilon_low: float,
    epsilon_high: float,
    kl_beta: float,
) -> torch.Tensor:
    """The loss a gradient step lowers: minus (clipped surrogate - kl_beta * KL to the
    reference), over completion tokens. Lowering it makes completions with a positive advantage
    more likely, those with a negative one less likely, and pulls the policy to the reference."""
    surrogate = clipped_objective(logp, old_logp, advantages, epsilon_low, epsilon_high)
    return -masked_mean(surrogate - kl_beta * kl_penalty(logp, ref_logp), mask)


def completion_mask(completions: torch.Tensor, stop: list[int]) -> torch.Tensor:
    """1 for generated tokens up to and including the first stop token, 0 after it."""
    is_stop = torch.isin(completions, torch.tensor(stop, device=completions.device))
    after_stop = (is_stop.cumsum(dim=1) - is_stop.long()) > 0
    return (~after_stop).float()


VISION_PLACEHOLDERS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")


def vision_placeholder_ids(tokenizer) -> list[int]:
    """Tokens a rollout must never write: the policy's forward pass would read a sampled
    `<|video_pad|>` as a slot for video features that do not exist, and fail."""
    return [tokenizer.convert_tokens_to_ids(token) for token in VISION_PLACEHOLDERS]


def token_logprobs(
    model,
    sequences: torch.Tensor,
    attention: torch.Tensor,
    vision: dict,
    prompt_len: int,
    group: int = 1,
) -> torch.Tensor:
    """Log-probabilities of the completion tokens (positions after `prompt_len`), with logits
    only at the positions that predict them (the prompt's would be thrown away); `sequences`
    holds `group` consecutive completions of each prompt whose clip is in `vision`."""
    keep = slice(prompt_len - 1 - sequences.shape[1], -1)
    logits = shared_prefix_logits(model, sequences, vision, keep, attention, group).float()
    targets = sequences[:, prompt_len:]
    return torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)


def prediction_histogram(texts: list[str]) -> dict[str, int]:
    from .answers import parse_answer

    counts = {str(k): 0 for k in range(1, 6)} | {"none": 0}
    for text in texts:
        pred = parse_answer(text)
        counts[str(pred) if pred is not None else "none"] += 1
    return counts


def collapsed_score(histogram: dict[str, int], share: float) -> str | None:
    """The score that took at least `share` of the parsed answers, if any (policy collapse)."""
    parsed = {k: v for k, v in histogram.items() if k != "none"}
    total = sum(parsed.values())
    top = max(parsed, key=parsed.get)
    return top if total and parsed[top] / total >= share else None


def collapse_warning(
    texts: list[str], indices: list[int], group_size: int, share: float
) -> str | None:
    """What to warn of when one score takes `share` of a step's answers, counted over its
    distinct prompts (each prompt's `group_size` completions once); None when nothing is. A
    step that draws one clip four times shows how that clip is answered, not a policy that
    answers alike whatever it sees, so a step with one distinct prompt never warns."""
    distinct = list(dict.fromkeys(indices))
    if len(distinct) < 2:
        return None
    firsts = [indices.index(index) for index in distinct]
    histogram = prediction_histogram(
        [text for p in firsts for text in texts[p * group_size : (p + 1) * group_size]]
    )
    top = collapsed_score(histogram, share)
    if top is None:
        return None
    return (
        f"{histogram[top]} of the answers to {len(distinct)} distinct clips are {top}: the "
        "policy is collapsing onto one score (balance the labels, keep kl_beta > 0)"
    )


def train_grpo(
    model_path: str | Path,
    dataset_path: str | Path,
    out_dir: str | Path,
    settings: GRPOSettings | None = None,
) -> Path:
    """GRPO with the dense accuracy + format reward, a clipped ratio and a KL pull to the start."""
    import warnings

    from .rewards import accuracy_reward, format_reward
    from .scoring import stop_ids

    s = settings or GRPOSettings()
    run = start_run(model_path, dataset_path, out_dir, s, betas=s.betas)
    model, processor, data = run.model, run.processor, run.data
    reference, _ = load_model(model_path, s.device)
    reference.eval().requires_grad_(False)
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    stop = stop_ids(tokenizer)
    placeholders = vision_placeholder_ids(tokenizer)
    bar = tqdm(
        range(run.start, s.steps), initial=run.start, total=s.steps, desc="grpo", unit="step"
    )
    for step in bar:
        torch.manual_seed(s.seed * 7919 + step)
        idx = batch_order(len(data), s.prompts_per_step, step, s.seed)
        prompts = [data.prompt(i) for i in idx]
        inputs = chat_inputs(processor, prompts, [clip_for(p) for p in prompts]).to(model.device)
        model.eval()
        with torch.no_grad():
            sequences = model.generate(
                **inputs,
                do_sample=True,
                temperature=s.temperature,
                top_k=None,
                top_p=None,
                max_new_tokens=s.max_new_tokens,
                num_return_sequences=s.generations,
                eos_token_id=stop,
                suppress_tokens=placeholders,
                pad_token_id=tokenizer.pad_token_id,
            )
        prompt_len = inputs["input_ids"].shape[1]
        completions = sequences[:, prompt_len:]
        mask = completion_mask(completions, stop)
        texts = tokenizer.batch_decode(
            completions * mask.long() + tokenizer.pad_token_id * (1 - mask.long()),
            skip_special_tokens=True,
        )
        references = [data.reference(i) for i in idx for _ in range(s.generations)]
        accuracy = torch.tensor([accuracy_reward(t, r) for t, r in zip(texts, references)])
        fmt = torch.tensor([format_reward(t, r) for t, r in zip(texts, references)])
        rewards = accuracy + fmt
        advantages = group_advantages(rewards, s.generations).to(model.device)
        attention = torch.cat(
            [inputs["attention_mask"].repeat_interleave(s.generations, 0), mask.long()], 1
        )
        vision = vision_inputs(inputs)
        with torch.no_grad():
            ref_logp = token_logprobs(
                reference, sequences, attention, vision, prompt_len, s.generations
            )
        model.train()
        clipped = []
        for iteration in range(s.mu_iterations):
            logp = token_logprobs(model, sequences, attention, vision, prompt_len, s.generations)
            if iteration == 0:  # the policy that wrote the rollouts: fixed for the whole batch
                old_logp = logp.detach()
            loss = grpo_loss(
                logp, old_logp, ref_logp, advantages, mask, s.epsilon_low, s.epsilon_high, s.kl_beta
            )
            loss.backward()
            clipped.append(
                clipped_share(logp, old_logp, advantages, mask, s.epsilon_low, s.epsilon_high)
            )
            if iteration < s.mu_iterations - 1:
                run.update(s.max_grad_norm)  # the last update is finish_step's
        kl = kl_penalty(old_logp, ref_logp)
        histogram = prediction_histogram(texts)
        warning = collapse_warning(texts, idx, s.generations, s.collapse_share)
        entry = {
            "reward_mean": rewards.mean().item(),
            "reward_std": rewards.view(-1, s.generations).std(dim=1, unbiased=False).mean().item(),
            "zero_spread_share": zero_spread_share(rewards, s.generations),
            "clipped_share": sum(clipped) / len(clipped),  # over the step's mu_iterations updates
            "collapse": warning,  # None, or what the warning below says
            "accuracy_reward": accuracy.mean().item(),
            "format_reward": fmt.mean().item(),
            "kl": masked_mean(kl, mask).item(),
            "response_length": mask.sum(dim=1).mean().item(),
            "prediction_histogram": histogram,
        }
        run.finish_step(step + 1, entry, s.max_grad_norm, s.steps, s.save_every)
        bar.set_postfix(reward=f"{entry['reward_mean']:.2f}", kl=f"{entry['kl']:.3f}")
        if warning is not None:
            warnings.warn(f"step {step + 1}: {warning}", stacklevel=2)
    return checkpoints(run.out_dir)[s.steps]
