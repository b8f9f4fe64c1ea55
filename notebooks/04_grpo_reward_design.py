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
# # 04 · GRPO: reinforcement learning with a designed reward
#
# SFT imitates the label. GRPO instead lets the model answer, scores each answer with a
# reward, and pushes up the answers that beat the others sampled for the same clip. What the
# model learns is then exactly what the reward says, so the reward is designed with care.
#
# **You will learn**
# - why a *dense* accuracy reward (1 exact, 0.5 off by one) teaches a 1..5 scale better than
#   exact match, and what the *format* reward adds (think first, then answer);
# - why the labels are balanced first (otherwise "always 4" pays) and why the KL pull to the
#   starting model must stay on (`kl_beta > 0`);
# - the GRPO update itself: G answers per clip, group-normalised advantages, a clipped
#   probability ratio and a KL penalty, in `recipe_utils.train.train_grpo`, the same rewards
#   the cosmos-rl job registers on 8 GPUs;
# - when the probability-ratio limit (PPO's "clipping") takes effect: only from the second of
#   several updates per batch (`mu_iterations`);
# - what label balancing does, tested: two runs alike but for the balance, both scored.
#
# Smoke profile: the SFT checkpoint notebook 03 selected on validation, in-process on the CPU.
# Full profile: cosmos-rl with `configs/cosmos_rl/grpo.toml` (policy 4 GPUs, rollout 4 GPUs).

# %%
import json
import warnings
from statistics import fmean

import pandas as pd

from recipe_utils import plots
from recipe_utils.clips import Gallery, scored_clip
from recipe_utils.config import check_parameters, load_config, run_dir
from recipe_utils.metrics import PUBLISHED, chosen_checkpoints, paired_by_id, read_predictions
from recipe_utils.pipeline import (
    balance_experiment,
    dataset_stage,
    resolve_source,
    sweep_folder,
    sweep_stage,
    train_stage,
)
from recipe_utils.rewards import accuracy_reward, format_reward
from recipe_utils.takeaways import (
    answer_changes,
    balance_findings,
    is_synthetic,
    what_this_run_showed,
)
from recipe_utils.train import GRPOSettings, first_last_means, group_advantages, read_log
from recipe_utils.videophy2 import load_rows

# isort: split
import torch  # after recipe_utils, which quiets torch's known import-time warnings

# The trainer warns when a step's answers collapse onto one score; the training log records the
# same (`collapse`), and the training cell reports it as text.
warnings.filterwarnings("ignore", message=r"step \d+: .*collapsing onto one score")

# %% tags=["parameters"]
PROFILE: str = "smoke"  # smoke (CPU, tiny model) or full (8 GPUs, cosmos-rl)
RUN_DIR: str = ""  # where this run writes; empty: the profile's run_dir
OVERRIDES: dict = {}  # settings to change, e.g. {"sft.lr": 1e-4, "seed": 1} (or that as JSON)

# %%
check_parameters(globals())  # each parameter of the type its cell declares
config = load_config(PROFILE, OVERRIDES)
run = run_dir(config, RUN_DIR or None)
out = run / "04_grpo"
out.mkdir(exist_ok=True)

# %% [markdown]
# ## A dense reward
# With exact match, a "4" for a clip labelled 5 earns the same as a "1": nothing. The
# dense reward gives half credit one step away, so the policy gets a gradient towards the
# right region of the scale even before it is exactly right.

# %%
fig = plots.dense_reward(accuracy_reward)
plots.save_figure(fig, out / "dense_reward.png")

# %% [markdown]
# ## The format reward
# One point for a `<think>...</think>` block followed by `<answer>N</answer>`, nothing else.

# %%
examples = [
    "<think>\nThe ball hovers before it falls.\n</think>\n\n<answer>\n2\n</answer>",
    "<answer>\n2\n</answer>",
    "<think>\nfine\n</think>\n<answer>\n2\n</answer>\n<answer>\n3\n</answer>",
    "It looks fine: 5",
]
[
    (text, accuracy_reward(text, "<answer>\n2\n</answer>"), format_reward(text, ""))
    for text in examples
]

# %% [markdown]
# ## Which prompt
# The recipe's GRPO prompt is the "with thinking" variant: reason in `<think>`, then answer.
# A policy can only learn from groups whose answers earn *different* rewards: if all G answers
# for a clip score the same (for instance all unparseable, reward 0, or all right), the
# group-normalised advantages are all zero and that clip teaches nothing. A model fine-tuned
# only on bare `<answer>N</answer>` targets may write nothing parseable under this prompt; the
# smoke model's SFT targets already had a think block (notebook 03), so its answers parse and
# its groups disagree exactly on the clips it is unsure about. Both profiles use this prompt.

# %%
print("GRPO prompt:", config["grpo"]["prompt"])
print("advantages of a group that all scored 0:", group_advantages(torch.zeros(8), 8).tolist())

# %% [markdown]
# ## Balanced labels
# The GRPO dataset resamples every label to the same count. Its rows are GRPO's part of the
# train split (`data/splits/grpo.jsonl`): with `grpo.limit` set (smoke), a pool of clips that
# neither SFT nor validation uses, so RL does not revisit what SFT memorised; without it (full,
# as the recipe), SFT's rows. Validation is never among them.

# %%
report = json.loads((dataset_stage("grpo", config, run) / "prepare_report.json").read_text())
print(
    f"{report['rows_out']} GRPO prompts, balanced from {report['rows_in']} train rows: "
    f"{report['partition']['grpo_pool']}"
)
fig = plots.label_counts_before_after(
    report["label_counts_before"], report["label_counts_after"], "Label balancing of GRPO's pool"
)
plots.save_figure(fig, out / "balanced_labels.png")

# %% [markdown]
# ## Why `kl_beta > 0`
# The KL term keeps the policy close to where it started. The published recipe found that
# without it the policy overfits; the trainer refuses `kl_beta = 0` unless forced:

# %%
try:
    GRPOSettings(kl_beta=0.0)
except ValueError as error:
    print(error)

# %% [markdown]
# ## Train
# Each step: sample G answers per clip at temperature T, reward them, normalise rewards within
# each group, and take `mu_iterations` clipped policy-gradient updates with the KL penalty, all
# against the log-probabilities of the policy that wrote the answers (cosmos-rl's setting of
# that name; the recipe uses 1). On the first update the ratio new/old is exactly 1, so the
# ratio limit cannot take effect; from the second on the policy has moved, and the limit stops
# pushing tokens whose ratio already left [1 - epsilon, 1 + epsilon] in their advantage's
# direction. The log records the mean reward, its spread inside groups, the share of groups with
# zero spread (no signal) and of completion tokens the ratio limit held back, the KL to the start, the answer
# length and how the answers spread over 1..5.
#
# The recipe makes many passes over its balanced clips (80 epochs in its cosmos-rl config). The
# smoke run does the same on a small pool (`grpo.limit` rows), so the first and the last steps
# are rewarded on the same clips and the rise of the reward curve is what the policy learned on
# them. Whether that carries over to clips it never saw is the sweep's question, below.

# %%
train_stage("grpo", config, run)
log = read_log(run / "grpo" / "train_log.jsonl")
collapsed = [entry["step"] for entry in log if entry.get("collapse")]
print(
    f"{len(collapsed)} of {len(log)} steps warned of a collapse onto one score"
    + (f" (steps {collapsed[:10]}{'...' if len(collapsed) > 10 else ''})" if collapsed else "")
)
accuracy_first, accuracy_last = first_last_means(log, "accuracy_reward")
zero_spread = fmean(entry["zero_spread_share"] for entry in log)
clipped = fmean(entry["clipped_share"] for entry in log)
print(
    f"accuracy reward {accuracy_first:.2f} over the first 10% of steps, {accuracy_last:.2f} over "
    f"the last; on average {zero_spread:.0%} of a step's groups had zero spread and the ratio "
    f"limit held back {clipped:.2%} of the completion tokens "
    f"(mu_iterations = {config['grpo']['mu_iterations']})"
)
fig = plots.reward_curves(log)
plots.save_figure(fig, out / "reward_curves.png")

# %% [markdown]
# ## What unbalanced labels do
# Two GRPO runs alike in start, steps and seed, one on the balanced pool and one on the same
# rows as they come; each final model, and the start both trained from, then scores the
# evaluation clips. Without balancing, the recipe found the policy collapsing onto the most
# frequent label ("4"): its share of the answers, against the start's, is the number to watch.
# The balanced arm is the run above at step `grpo.balance_steps` when its learning rate is
# constant after warm-up (then nothing is trained twice), and it and the start score into
# the sweep's folders below (nor scored twice: the sweep finds their answers there).

# %%
balance = balance_experiment(config, run)
models = {"start": "at_start", "balanced": "balanced", "unbalanced": "unbalanced"}
fig = plots.prediction_histograms(
    {
        name: {"prediction_histogram": balance[key]["eval_histogram"]}
        for name, key in models.items()
    },
    truth_counts=balance["eval_labels"],
)
fig.axes[0].set_title(
    f"Eval answers after {balance['steps']} GRPO steps from the {balance['start']} start"
)
plots.save_figure(fig, out / "balanced_vs_unbalanced.png")
print(*balance_findings(balance), sep="\n")

# %% [markdown]
# ## Score every checkpoint
# Step 0 is the model GRPO started from (`grpo.start`: the SFT checkpoint in smoke, the base
# model in full, as the recipe's RL config), scored with the GRPO prompt. As in notebook 03,
# each trained checkpoint scores validation (dotted) as well as test (solid), and the ringed step
# is the one selected on validation, which the results report. On the full profile the grey line is the
# published GRPO result on VideoPhy-2; the smoke profile's curve is the tiny model on synthetic
# clips, so no published line is drawn.

# %%
sweep = sweep_stage("grpo", config, run)
chosen = chosen_checkpoints(run / "grpo" / "sweep")
selected_step = chosen["selected"]["step"]
sft_selected = json.loads((run / "03_sft" / "metrics.json").read_text())["selected"]
sft = {"step": sft_selected["step"], **sft_selected["test"]}  # SFT's selected step, on test
published = next(row for row in PUBLISHED if "GRPO" in row["system"])
data = "synthetic clips" if is_synthetic(config) else "VideoPhy-2"
for metric in ("accuracy", "pearson"):
    references = {f"SFT step {sft['step']} (this run)": sft[metric]}
    if not is_synthetic(config):
        references[f"published {published['system']}"] = published[metric]
    name = f"GRPO (this run, {data})"
    fig = plots.metric_vs_step({name: sweep["steps"]}, metric, references, {name: selected_step})
    plots.save_figure(fig, out / f"{metric}_vs_step.png")
pd.DataFrame(sweep["steps"]).set_index("step")

# %% [markdown]
# ## An answer before and after
# The reasoning trace and score for the same clips, from GRPO's start and its selected step:
# how many answers GRPO changed, and for better or worse, then two clips whose answer it
# changed (the first clips if it changed none).

# %%
before_after = [
    read_predictions(sweep_folder(run, "grpo", step) / "predictions.jsonl")
    for step in (0, selected_step)
]
pairs = paired_by_id(*before_after)
changed = [(b, a) for b, a in pairs if b["pred"] != a["pred"]]
print(answer_changes(pairs, "GRPO"))
rows = {r["id"]: r for r in load_rows(*resolve_source(config, run, "eval")).rows}
Gallery(
    [
        scored_clip(rows[b["id"]], {"before (start)": b, f"after (GRPO step {selected_step})": a})
        for b, a in (changed or pairs)[:2]
    ]
)

# %%
selected = json.loads((sweep_folder(run, "grpo", selected_step) / "metrics.json").read_text())
reward_first, reward_last = first_last_means(log, "reward_mean")
metrics = {
    "reward_first": reward_first,
    "reward_last": reward_last,
    "accuracy_reward_first": accuracy_first,  # mean accuracy reward, first 10% of steps
    "accuracy_reward_last": accuracy_last,  # and last 10%
    "zero_spread_share": zero_spread,  # mean over steps
    "clipped_share": clipped,  # mean over steps
    "mu_iterations": config["grpo"]["mu_iterations"],
    "start": config["grpo"]["start"],  # sft: from SFT's selected checkpoint; base: the base model
    "sft": {k: sft[k] for k in ("step", "accuracy", "pearson", "pearson_ci")},
    **chosen,  # selected: chosen on validation; best_on_test: the published recipe's choice
    "steps": sweep["steps"],
    "prediction_histogram": selected["prediction_histogram"],
    "balance_experiment": balance,
}
with open(out / "metrics.json", "w") as file:
    json.dump(metrics, file, indent=2)

# %%
what_this_run_showed(out / "metrics.json", config)
