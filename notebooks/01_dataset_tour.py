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
# # 01 · A tour of VideoPhy-2: what "physically plausible" means
#
# Video generators can draw a convincing ball that then hovers, vanishes or passes through a
# wall. Anyone who trains on or ships generated video needs to filter such clips, and a
# vision-language model can do it if it scores **physical commonsense** (`pc`, 1..5) the way
# people do. VideoPhy-2 is the benchmark of such human scores: clips from seven generators,
# each rated for semantic adherence (`sa`, does it show the caption?) and physical commonsense.
#
# **You will learn**
# - the columns of a VideoPhy-2 row and the five classes of violation (conservation, gravity,
#   collision, temporal causality, spatial constraints); the course's synthetic clips break each
#   class in two ways, ten violations in all;
# - how the labels are distributed, why "always answer 4" is a strong baseline to beat, and
#   what label balancing does before reinforcement learning;
# - how to look at clips and their labels yourself.
#
# The smoke profile uses the course's synthetic physics clips (same columns, exact labels);
# the full profile reads `videophysics/videophy2_train` and `videophy2_test` from the hub.

# %%
import json

from IPython.display import display

from recipe_utils import plots
from recipe_utils.clips import Gallery, row_clip, violations
from recipe_utils.config import check_parameters, load_config, run_dir
from recipe_utils.metrics import majority_baseline
from recipe_utils.pipeline import resolve_source
from recipe_utils.report import clip_browser
from recipe_utils.takeaways import slice_gap, slice_note, what_this_run_showed
from recipe_utils.video import load_clip
from recipe_utils.videophy2 import balance_labels, download_videos, label_counts, load_rows

# %% tags=["parameters"]
PROFILE: str = "smoke"  # smoke (CPU, synthetic clips) or full (8 GPUs, VideoPhy-2)
RUN_DIR: str = ""  # where this run writes; empty: the profile's run_dir
OVERRIDES: dict = {}  # settings to change, e.g. {"sft.lr": 1e-4, "seed": 1} (or that as JSON)
INTERACTIVE: bool = True  # False when run headless: a static frame grid replaces the player
N_EXAMPLES: int = 3  # clips shown per group in the frame grid

# %%
check_parameters(globals())  # each parameter of the type its cell declares
config = load_config(PROFILE, OVERRIDES)
run = run_dir(config, RUN_DIR or None)
out = run / "01_dataset_tour"
out.mkdir(parents=True, exist_ok=True)
splits = {
    name: load_rows(*resolve_source(config, run, name), config["data"]["limit"])
    for name in ("train", "eval")
}
for name, loaded in splits.items():
    print(f"{name}: {len(loaded.rows)} rows from {loaded.source} ({len(loaded.skipped)} skipped)")
train, test = splits["train"].rows, splits["eval"].rows
print(json.dumps(train[0], indent=1)[:1500])

# %% [markdown]
# ## Labels
# `pc` is the target. `joint` is 1 when both `sa` and `pc` are at least 4.

# %%
fig = plots.label_histograms(train)
plots.save_figure(fig, out / "label_histograms.png")

# %% [markdown]
# ## Where physics breaks
# Mean `pc` per generator (in VideoPhy-2 every generator has its own habits), per category,
# and for the hard subset. A slice that cannot tell anything (one value only, or a copy of one
# `pc` value) is named instead of drawn; for each slice drawn, a line says whether its highest
# and lowest bars differ beyond noise.

# %%
for column in ("model_name", "category", "is_hard"):
    note = slice_note(train, column)
    if note:
        print(f"{column}: {note}")
        continue
    fig = plots.label_by_group(train, column)
    plots.save_figure(fig, out / f"pc_by_{column}.png")
    print(slice_gap(train, column))

# %% [markdown]
# ## The constant-"4" predictor
# Training labels bunch at 4. A model that always answers the most frequent training label
# already scores this well on the evaluation split; a scorer is only useful above it. Accuracy
# alone would let such a constant look respectable; its correlation is undefined (a constant
# ranks no clip above another), so the course reports Pearson r beside accuracy.

# %%
counts = label_counts(train)
constant = majority_baseline(counts, test)
majority = constant["label"]
print(f"train label counts: {counts}; majority label: {majority}")
print(
    f"always answering {majority}: accuracy {constant['accuracy']:.3f}, "
    f"within one {constant['within1']:.3f}, pearson {constant['pearson']} "
    f"({constant['notes'].get('pearson', '')})"
)

# %% [markdown]
# ## Looking at clips
# Low- and high-scoring clips side by side, each with its scores and its annotated violations
# (`human_violated_rules`: people's notes in VideoPhy-2, the generator's on synthetic clips).
# They play in the saved notebook too (no kernel needed); the file link opens the clip in
# JupyterLab.

# %%
# hub rows get their videos on disk first (the synthetic rows already point at theirs)
if any(r["video"] is None for r in train[: 4 * N_EXAMPLES]):
    download_videos(train[: 4 * N_EXAMPLES], run / "data")
low = [r for r in train if r["pc"] <= 2 and r["video"]][:N_EXAMPLES]
high = [r for r in train if r["pc"] >= 5 and r["video"]][:N_EXAMPLES]
Gallery([row_clip(r) for r in low + high])

# %% [markdown]
# The same clips as still frames, for a printout or a viewer that does not play video.

# %%
clips = [
    (
        f"pc={r['pc']} · {len(violations(r))} violation(s)",
        load_clip(r["video"], fps=4, max_pixels=112 * 112).frames,
    )
    for r in low + high
]
fig = plots.frame_grid(clips, n_frames=6)
plots.save_figure(fig, out / "frames_low_vs_high.png")

# %%
if INTERACTIVE:
    display(clip_browser([r for r in train if r["video"]][:50]))
else:
    print("headless run: the clips above play as they are (set INTERACTIVE = True to browse more)")

# %% [markdown]
# ## Balancing labels
# Every `pc` value is resampled to `len(dataset) // n_labels` rows: frequent labels are
# down-sampled, rare ones up-sampled with replacement, seeded and shuffled. Shown here on the
# whole train split; each stage balances the rows it trains on (SFT's in notebook 03, GRPO's pool
# in notebook 04), so their counts differ from these. The recipe found that
# without it a policy trained by reward learns that answering 4 pays most of the time; notebook
# 04 tests that on this run.

# %%
balanced = balance_labels(train, seed=config["seed"])
fig = plots.label_counts_before_after(
    balanced.before, balanced.after, "Label balancing, the whole train split"
)
plots.save_figure(fig, out / "balanced_labels.png")
print("before:", balanced.before, "after:", balanced.after, "absent:", balanced.absent)

# %%
metrics = {
    "rows": {"train": len(train), "eval": len(test)},
    "skipped": {"train": len(splits["train"].skipped), "eval": len(splits["eval"].skipped)},
    "label_histogram": {"train": counts, "eval": label_counts(test)},
    "majority_label": majority,
    "majority_baseline_accuracy": constant["accuracy"],
    "balanced_counts": balanced.after,
}
with open(out / "metrics.json", "w") as file:
    json.dump(metrics, file, indent=2)

# %%
what_this_run_showed(out / "metrics.json", config)
