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
# # 02 · Zero-shot scoring: the model as it comes
#
# Before training anything, ask the model to score each evaluation clip with the benchmark's
# own prompt and compare its answers with the labels (people's scores in VideoPhy-2, the
# generator's exact scores on the smoke profile's synthetic clips).
#
# **You will learn**
# - the benchmark prompt and why each of its four criteria is there;
# - how a score is read from `<answer>N</answer>`, and why unparseable answers are counted as
#   failures instead of being dropped (the published metric script drops them);
# - the metrics (accuracy, Pearson and Spearman r, MAE, ±1 accuracy) with bootstrap intervals,
#   and the *expected score*: the probability-weighted mean over the answer tokens "1".."5",
#   a continuous score that *can* rank clips better than the sampled digit, because it breaks
#   the ties between clips given the same answer (the closing summary says whether it did here);
# - whether the model bunches its answers at 3-4, as published zero-shot runs do.
#
# Smoke profile: a stand-in for a pretrained generalist (the tiny model after a short
# pretraining on other synthetic clips, described below) on the synthetic test split. Full
# profile: `nvidia/Cosmos-Reason1-7B` with vLLM on `videophysics/videophy2_test`, as the
# published recipe.

# %%
import json
import textwrap

import pandas as pd
from IPython.display import HTML, display

from recipe_utils import plots
from recipe_utils.clips import link
from recipe_utils.config import check_parameters, load_config, repo_path, run_dir
from recipe_utils.metrics import PUBLISHED, majority_baseline, read_predictions
from recipe_utils.pipeline import resolve_model, resolve_source, zero_shot_stage
from recipe_utils.pretrain import model_card
from recipe_utils.prompts import load_prompt
from recipe_utils.scoring import video_inputs
from recipe_utils.takeaways import is_synthetic, what_this_run_showed
from recipe_utils.video import load_clip, probe, resize, write_clip
from recipe_utils.videophy2 import label_counts, load_rows

# %% tags=["parameters"]
PROFILE: str = "smoke"  # smoke (CPU, tiny model) or full (8 GPUs, Cosmos-Reason1-7B)
RUN_DIR: str = ""  # where this run writes; empty: the profile's run_dir
OVERRIDES: dict = {}  # settings to change, e.g. {"sft.lr": 1e-4, "seed": 1} (or that as JSON)
N_EXAMPLES: int = 4  # example answers printed

# %%
check_parameters(globals())  # each parameter of the type its cell declares
config = load_config(PROFILE, OVERRIDES)
run = run_dir(config, RUN_DIR or None)
prompt = load_prompt(repo_path(config["scoring"]["prompt"]))
print(prompt.system)
print("USER:", prompt.user)

# %% [markdown]
# The four criteria mirror how people judged the clips: object behaviour (rigid things stay
# rigid), motion and forces (gravity, inertia, momentum), interactions (no interpenetration),
# and consistency over time (nothing appears, vanishes or jumps). The score rubric ties each
# number to how many and how bad the violations are, and the template asks for the number
# inside `<answer>` tags so it can be read without guessing.

# %% [markdown]
# ## The model, and what it has seen
# Cosmos-Reason1 comes to this task pretrained: it already answers questions about videos in
# the template it is asked for. The tiny model of the smoke profile starts as noise, so it is
# first given a short pretraining (made once per run folder, `model.pretrain` in the profile)
# on clips no split of the benchmark holds. What it saw is read from the record written next
# to its weights:

# %%
model = resolve_model(config, run)
print("\n".join(model_card(model)))

# %% [markdown]
# ## Score the evaluation split
# Scoring appends one line per video to `zero_shot/predictions.jsonl` as it goes: stop the cell
# and run it again, and it continues where it stopped. `zero_shot/report.html` (link below) shows
# every video's frames, answer and label.

# %%
metrics = zero_shot_stage(config, run)
records = read_predictions(run / "zero_shot" / "predictions.jsonl")
display(HTML(f"Every video scored: {link(run / 'zero_shot' / 'report.html')}"))
keys = ("n", "accuracy", "accuracy_ci", "pearson", "pearson_ci", "spearman", "mae", "within1")
pd.Series({k: metrics[k] for k in (*keys, "parse_failure_rate")}).to_frame("zero-shot")

# %% [markdown]
# ## What the model sees of a video
# Qwen2.5-VL (the model inside Cosmos-Reason1) does not watch a video: it reads a few frames.
# The clip is sampled at `fps` frames per second (an even count: the vision tower takes frames
# in pairs, *temporal patches* of 2), every frame is resized so both sides are multiples of 28
# pixels (14 px patches, merged 2x2), and each merged 28x28 patch of a frame pair becomes one
# visual token. More frames or larger frames cost more tokens, hence memory and time. A clip
# gives at most the frames it has, and at least 4 (`recipe_utils.video.frame_count`, as
# qwen-vl-utils counts them): a rate above the clip's own, or one that would take fewer than 4,
# does not change what the model sees.
# The recipe scores at `fps: 16` with `total_pixels`, a budget for the *whole clip*: a long clip
# gets smaller frames, so every clip fits the context while fast events (a ball passing through
# a wall in a few frames) are still sampled. It trains at `fps: 1` with `max_pixels`, a cap *per
# frame*: one frame a second, none above 81,920 pixels, keeps each training example cheap
# (the frames are smaller than scoring's unless the clip is long enough for the budget to
# shrink those below the cap). This profile's values are in the
# table below, next to the recipe's; it counts one clip of this run under each setting, with the
# processor the model uses: the course's synthetic clips are small (no budget shrinks them), so
# the same clip enlarged to a VideoPhy-2 frame size shows what the budgets trade.

# %%
full = load_config("full")
settings = {
    f"{PROFILE} scoring": config["scoring"]["video"],
    f"{PROFILE} training (SFT)": config["sft"]["video"],
    "full scoring (recipe)": full["scoring"]["video"],
    "full training (recipe)": full["sft"]["video"],
}
clip_path = next((run / "data").rglob("*.mp4"))
# the same clip enlarged to 832 x 480, a frame size VideoPhy-2's generators write
source = load_clip(clip_path, fps=8, max_pixels=832 * 480)
enlarged = run / "02_zero_shot" / "clip_832x480.mp4"
enlarged.parent.mkdir(exist_ok=True)
write_clip(enlarged, resize(source.frames, 480, 832), fps=round(source.fps))
for path in (clip_path, enlarged):
    info = probe(path)
    print(f"{path.name}: {info.frames} frames at {info.fps:g} fps ({info.frames / info.fps:g} s)")
    display(pd.DataFrame(video_inputs(model, path, settings)).T)

# %% [markdown]
# ## Against published numbers
# Grey hatched bars, below the line, are published results on the real VideoPhy-2 test split
# (from the papers and the recipe), not something this notebook ran. On the smoke profile this
# run's bar is the tiny model on synthetic clips: it shows the plot, not a comparable number.

# %%
figures = run / "02_zero_shot"
figures.mkdir(exist_ok=True)
data = "synthetic clips" if is_synthetic(config) else "VideoPhy-2 test"
fig = plots.correlation_bars({"zero-shot": metrics}, PUBLISHED, data)
plots.save_figure(fig, figures / "correlation_bars.png")

# %% [markdown]
# ## What the model wrote
# Whole answers, the score parsed from `<answer>N</answer>` (None: no parseable score) and the
# expected score, the mean of 1..5 weighted by the probabilities of the digit tokens where the
# score is written (None when no score token was written).

# %%
for record in records[:N_EXAMPLES]:
    expected = "None" if record["expected"] is None else f"{record['expected']:.2f}"
    print(
        f"{record['id']}  label pc={record['pc']}  parsed={record['pred']}  expected={expected}\n"
        + textwrap.indent(record["raw"][0] or "(empty answer)", "    | ")
        + "\n"
    )

# %% [markdown]
# Where the answers go: the share of each parsed score next to the labels. Published
# zero-shot runs bunch at 3-4; the last bar counts answers with no parseable score.

# %%
fig = plots.prediction_histograms({"zero-shot": metrics}, label_counts(records))
plots.save_figure(fig, figures / "prediction_histogram.png")
fig = plots.confusion(metrics, "Zero-shot: label pc vs predicted")
plots.save_figure(fig, figures / "confusion.png")

# %% [markdown]
# The bar notebook 01 set: always answering the training split's most frequent label, scored
# on the same clips.

# %%
train = load_rows(*resolve_source(config, run, "train"), config["data"]["limit"]).rows
constant = majority_baseline(label_counts(train), records)
print(f"always answering {constant['label']}: accuracy {constant['accuracy']:.3f}")
metrics["majority_baseline_accuracy"] = constant["accuracy"]
with open(run / "02_zero_shot" / "metrics.json", "w") as file:
    json.dump(metrics, file, indent=2)

# %%
what_this_run_showed(run / "02_zero_shot" / "metrics.json", config)
