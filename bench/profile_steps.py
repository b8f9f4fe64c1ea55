"""Where one smoke SFT step and one smoke GRPO step spend their time, part by part.

    python bench/profile_steps.py              # 1 torch thread, 5 steps of each
    python bench/profile_steps.py --threads 2

Builds the tiny model and a small synthetic split in a temporary folder, prepares both
conversation datasets with the smoke profile's settings, and times each part of the trainers'
steps as `recipe_utils.train` runs them (the median over the steps, after one warm-up step).
Prints a table; bench/README.md ("Where the time goes") quotes one run of it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path


class Stopwatch:
    """Seconds per named part, one list entry per step; a part timed on its own that is also
    inside another (`within`) is shown under it and not added to the total twice."""

    def __init__(self):
        self.parts: dict[str, list[float]] = defaultdict(list)
        self.within: dict[str, str] = {}

    @contextmanager
    def part(self, name: str, within: str | None = None):
        if within:
            self.within[name] = within
        start = time.perf_counter()
        yield
        self.parts[name].append(time.perf_counter() - start)

    def table(self, title: str) -> str:
        medians = {part: statistics.median(values[1:]) for part, values in self.parts.items()}
        total = sum(s for part, s in medians.items() if part not in self.within)
        lines = [f"{title}: {total:.3f} s per step"]
        for part, s in medians.items():
            label = f"  (inside {self.within[part]}) {part}" if part in self.within else part
            lines.append(f"  {label:<60} {s:7.3f} s  {s / total:4.0%}")
        return "\n".join(lines)


def datasets(work: Path) -> tuple[Path, Path, Path]:
    """The tiny model and the smoke profile's SFT and GRPO datasets of a small synthetic split."""
    from recipe_utils.config import load_config, repo_path
    from recipe_utils.synthetic import generate
    from recipe_utils.tiny import build_tiny_model
    from recipe_utils.videophy2 import prepare

    config = load_config("smoke")
    model = build_tiny_model(work / "model")
    source = generate(work / "synth", n_train=48, n_test=4)
    prepared = [
        prepare(
            source,
            "train",
            work / kind,
            repo_path(config[kind]["prompt"]),
            rationale=config[kind]["rationale"],
            **config[kind]["video"],
        )
        for kind in ("sft", "grpo")
    ]
    return model, *prepared


def profile_sft(model_dir: Path, dataset: Path, steps: int, work: Path) -> str:
    import torch

    from recipe_utils import train
    from recipe_utils.config import load_config
    from recipe_utils.scoring import chat_inputs, clip_for, load_model

    batch_size = load_config("smoke")["sft"]["batch_size"]
    model, processor = load_model(model_dir, "cpu")
    data = train.Conversations(dataset, processor)
    pad = processor.tokenizer.pad_token_id
    header = processor.tokenizer(train.ASSISTANT_HEADER, add_special_tokens=False).input_ids
    optimizer, scheduler = train.make_optimizer(model, 1e-3, 0.01, 1, steps + 1)
    model.train()
    watch = Stopwatch()
    for step in range(steps + 1):
        idx = train.batch_order(len(data), batch_size, step, 0)
        messages = [data.conversations[i] for i in idx]
        with watch.part("decode clips (once per example)"):
            clips = [clip_for(m) for m in messages]
        with watch.part("processor (once per example)"):
            encoded = [chat_inputs(processor, [m], [c]) for m, c in zip(messages, clips)]
        examples = [
            {k: v[0] if k in train.TOKEN_KEYS else v for k, v in e.items()} for e in encoded
        ]
        with watch.part("collate, labels"):
            inputs = train.collate(examples, pad)
            labels = train.assistant_labels(inputs["input_ids"], header, pad)
        with watch.part("vision tower forward + backward", within="the whole model's"):
            vision = model.model.visual(
                inputs["pixel_values_videos"], grid_thw=inputs["video_grid_thw"]
            )
            vision.sum().backward()
        model.zero_grad(set_to_none=True)
        with watch.part("forward, whole model (answer_loss)"):
            loss = train.answer_loss(model, inputs, labels)
        with watch.part("backward, whole model"):
            loss.backward()
        with watch.part("clip gradients, AdamW"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
    start = time.perf_counter()
    train.save_checkpoint(work / "sft_out", steps, model, processor, optimizer, scheduler)
    saving = f"  a checkpoint save (every save_every steps): {time.perf_counter() - start:.3f} s"
    return watch.table(f"SFT step (batch {batch_size})") + "\n" + saving


def profile_grpo(model_dir: Path, dataset: Path, steps: int) -> str:
    import torch

    from recipe_utils import train
    from recipe_utils.config import load_config
    from recipe_utils.scoring import chat_inputs, clip_for, load_model, stop_ids

    s = load_config("smoke")["grpo"]
    model, processor = load_model(model_dir, "cpu")
    reference, _ = load_model(model_dir, "cpu")
    reference.requires_grad_(False)
    data = train.Conversations(dataset, processor)
    tokenizer = processor.tokenizer
    stop = stop_ids(tokenizer)
    group = s["generations"]
    watch = Stopwatch()
    for step in range(steps + 1):
        idx = train.batch_order(len(data), s["prompts_per_step"], step, 0)
        prompts = [data.prompt(i) for i in idx]
        with watch.part("decode clips"):
            clips = [clip_for(p) for p in prompts]
        with watch.part("processor"):
            inputs = chat_inputs(processor, prompts, clips)
        model.eval()
        with watch.part(f"generate {group} x {len(idx)} completions"), torch.no_grad():
            sequences = model.generate(
                **inputs,
                do_sample=True,
                temperature=s["temperature"],
                top_k=None,
                top_p=None,
                max_new_tokens=s["max_new_tokens"],
                num_return_sequences=group,
                eos_token_id=stop,
                suppress_tokens=train.vision_placeholder_ids(tokenizer),
                pad_token_id=tokenizer.pad_token_id,
            )
        prompt_len = inputs["input_ids"].shape[1]
        mask = train.completion_mask(sequences[:, prompt_len:], stop)
        prompt_mask = inputs["attention_mask"].repeat_interleave(group, 0)
        attention = torch.cat([prompt_mask, mask.long()], 1)
        vision = train.vision_inputs(inputs)
        with watch.part("reference log-probs"), torch.no_grad():
            ref = train.token_logprobs(reference, sequences, attention, vision, prompt_len, group)
        model.train()
        with watch.part("policy forward"):
            logp = train.token_logprobs(model, sequences, attention, vision, prompt_len, group)
        advantages = torch.randn(len(sequences))
        loss = train.grpo_loss(logp, logp.detach(), ref, advantages, mask, 0.2, 0.2, s["kl_beta"])
        with watch.part("policy backward"):
            loss.backward()
        model.zero_grad(set_to_none=True)
    return watch.table(f"GRPO step ({len(idx)} prompts x {group}, untrained policy: long answers)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps of each trainer")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="profile-") as tmp:
        work = Path(tmp)
        model, sft, grpo = datasets(work)
        print(f"torch threads: {torch.get_num_threads()}")
        print(profile_sft(model, sft, args.steps, work))
        print(profile_grpo(model, grpo, args.steps))


if __name__ == "__main__":
    main()
