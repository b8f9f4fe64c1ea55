# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Supervised fine-tuning: teach the scale with labelled clips
#
# Zero-shot, the model has never been told what a "3" looks like. Supervised fine-tuning (SFT)
# shows it training clips with their label as the answer, so it learns the benchmark's
# scale.
#
# **You will learn**
# - the training format: one conversation per clip (system prompt, video + question, answer
#   `<answer>\nN\n</answer>`), the same dataset the cosmos-rl job reads on 8 GPUs;
# - why the smoke profile's answers first list the clip's annotated violations in a
#   `<think>` block (`sft.rationale`): a bare score gives a model trained from scratch one
#   token of signal per clip, too little to discover the synthetic clips' ten violations (two
#   in each of the five classes of notebook 01) on a CPU; naming
#   each violation it should see teaches them one by one, and the score then follows from the
#   list (the published recipe fine-tunes a model that can already reason, on bare scores);
# - what the loss is computed on (the assistant's turn only: its reasoning, if any, and the
#   score) and what the recipe's video settings are for training (1 fps, 81,920 pixels per
#   frame) versus scoring (16 fps, a clip budget; notebook 02 counts both on a clip). Each
#   conversation's video entry carries its frame settings; `min_pixels` (3,136 = four merged
#   28x28 patches) is the floor below which no frame is shrunk;
# - why the smoke profile balances SFT's labels (`sft.balance_labels`), where the recipe
#   trains on them as they come: on the labels as they come the tiny model's SFT came out
#   stronger on two seeds of three and left GRPO (notebook 04) too little to learn on one, its
#   policy starting near the reward ceiling (bench/README.md, session 21);
# - how to choose a checkpoint: score every checkpoint and look at accuracy *and* correlation,
#   which do not always peak at the same step (the published SFT curve peaks at step 60 for r
#   and step 100 for accuracy);
# - why the checkpoint is chosen on a validation split carved from train (`data.val_fraction`,
#   never trained on) and only then scored on test: the best step *on test* is a number picked
#   on the split it is reported on, which flatters it (the published recipe reports it so).
#
# Smoke profile: the stand-in of notebook 02 (the tiny model after its short pretraining, which
# never saw a benchmark clip or label) on the synthetic train split, in-process on the CPU.
# Full profile: Cosmos-Reason1-7B with cosmos-rl on 8 GPUs (`configs/cosmos_rl/sft.toml`).

# %%
import json

import pandas as pd

from recipe_utils import plots
from recipe_utils.clips import Gallery, scored_clip
from recipe_utils.config import check_parameters, load_config, run_dir
from recipe_utils.metrics import (
    PUBLISHED_SFT_STEPS,
    chosen_checkpoints,
    majority_baseline,
    read_predictions,
)
from recipe_utils.pipeline import (
    dataset_stage,
    resolve_source,
    sweep_folder,
    sweep_stage,
    train_stage,
)
from recipe_utils.takeaways import is_synthetic, sft_step_zero, what_this_run_showed
from recipe_utils.train import read_log
from recipe_utils.videophy2 import load_conversations, load_rows

# %% tags=["parameters"]
PROFILE: str = "smoke"  # smoke (CPU, tiny model) or full (8 GPUs, cosmos-rl)
RUN_DIR: str = ""  # where this run writes; empty: the profile's run_dir
OVERRIDES: dict = {}  # settings to change, e.g. {"sft.lr": 1e-4, "seed": 1} (or that as JSON)
N_EXAMPLES: int = 5  # before/after examples shown, one per label

# %%
check_parameters(globals())  # each parameter of the type its cell declares
config = load_config(PROFILE, OVERRIDES)
run = run_dir(config, RUN_DIR or None)
out = run / "03_sft"
out.mkdir(exist_ok=True)
prepared = dataset_stage("sft", config, run)
report = json.loads((prepared / "prepare_report.json").read_text())
dataset = load_conversations(prepared)
print(
    f"train split carved into {report['partition']['rows']} rows (validation, SFT, GRPO); "
    f"{len(dataset)} training conversations; pc counts in SFT's rows "
    f"{report['label_counts_before']}, in the training set {report['label_counts_after']}"
)
conversation = json.loads(dataset[0]["conversations"])
print("The loss is computed on the assistant's turn only (train.assistant_labels):")
print(conversation[-1]["content"])
conversation

# %% [markdown]
# ## Train
# Checkpoints land in `sft/checkpoints/step_N` (model and processor, loadable by the scorer)
# with the optimizer state: interrupt the cell and run it again, and it resumes from the last
# checkpoint.

# %%
train_stage("sft", config, run)
log = read_log(run / "sft" / "train_log.jsonl")
fig = plots.loss_curve(log)
plots.save_figure(fig, out / "loss_curve.png")

# %% [markdown]
# ## Score every checkpoint
# Every checkpoint scores the test split (solid) and every trained one the validation split
# (dotted). The ringed step is the one selected on validation Pearson r: the one this notebook
# reports and notebook 04 may start from. Step 0 is the model before training; the line printed
# above the table says why it need not repeat notebook 02's zero-shot numbers. On the full
# profile the dashed grey line is the published SFT best on VideoPhy-2. On the smoke profile the
# curve is the tiny model on synthetic clips, so no published line is drawn: the two would share
# an axis but not a meaning.

# %%
sweep = sweep_stage("sft", config, run)
chosen = chosen_checkpoints(run / "sft" / "sweep")
selected_step = chosen["selected"]["step"]
zero_shot = json.loads((run / "zero_shot" / "metrics.json").read_text())
published_best = max(PUBLISHED_SFT_STEPS, key=lambda row: row["pearson"])
data = "synthetic clips" if is_synthetic(config) else "VideoPhy-2"
for metric in ("accuracy", "pearson"):
    references = {"zero-shot (this run)": zero_shot[metric]}
    if not is_synthetic(config):
        references[f"published SFT best (step {published_best['step']})"] = published_best[metric]
    name = f"SFT (this run, {data})"
    fig = plots.metric_vs_step({name: sweep["steps"]}, metric, references, {name: selected_step})
    plots.save_figure(fig, out / f"{metric}_vs_step.png")
print(sft_step_zero(config))
pd.DataFrame(sweep["steps"]).set_index("step")

# %% [markdown]
# ## Before and after
# The same clips (one for each label), scored by the model before fine-tuning and by
# the selected checkpoint, with the whole answers.

# %%
after = {
    r["id"]: r
    for r in read_predictions(sweep_folder(run, "sft", selected_step) / "predictions.jsonl")
}
before = read_predictions(run / "zero_shot" / "predictions.jsonl")
rows = {r["id"]: r for r in load_rows(*resolve_source(config, run, "eval")).rows}
one_per_score = {record["pc"]: record for record in reversed(before)}
Gallery(
    [
        scored_clip(
            rows[record["id"]],
            {
                "before (zero-shot)": record,
                f"after (SFT step {selected_step})": after[record["id"]],
            },
        )
        for record in [one_per_score[pc] for pc in sorted(one_per_score)][:N_EXAMPLES]
    ]
)

# %%
selected_metrics = json.loads(
    (sweep_folder(run, "sft", selected_step) / "metrics.json").read_text()
)
# SFT's rows as they come, before any balancing
constant = majority_baseline(report["label_counts_before"], before)
fig = plots.confusions({"zero-shot": zero_shot, f"SFT step {selected_step}": selected_metrics})
plots.save_figure(fig, out / "confusions.png")
window = max(1, len(log) // 10)
metrics = {
    "majority_baseline_accuracy": constant["accuracy"],
    "zero_shot": {k: zero_shot[k] for k in ("accuracy", "pearson", "spearman")},
    **chosen,  # selected: chosen on validation; best_on_test: the published recipe's choice
    "steps": sweep["steps"],
    "train_loss_first": sum(e["loss"] for e in log[:window]) / window,
    "train_loss_last": sum(e["loss"] for e in log[-window:]) / window,
}
if "rationale" in sweep:  # how well the selected step's think blocks name the clip's violations
    metrics["rationale"] = {k: sweep["rationale"][k] for k in ("step", "precision", "recall")}
with open(out / "metrics.json", "w") as file:
    json.dump(metrics, file, indent=2)

# %%
what_this_run_showed(out / "metrics.json", config)
