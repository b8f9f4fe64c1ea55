# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Zero-shot scoring: the model as it comes
#
# Before training anything, ask the model to score each evaluation clip with the benchmark's
# own prompt and compare its answers with the human scores.
#
# **You will learn**
# - the benchmark prompt and why each of its four criteria is there;
# - how a score is read from `<answer>N</answer>`, and why unparseable answers are counted as
#   failures instead of being dropped (the published metric script drops them);
# - the metrics (accuracy, Pearson and Spearman r, MAE, ±1 accuracy) with bootstrap intervals,
#   and the *expected score*: the probability-weighted mean over the answer tokens "1".."5",
#   a continuous score that ranks clips better than the sampled digit;
# - whether the model bunches its answers at 3-4, as published zero-shot runs do.
#
# Smoke profile: the untrained tiny model on the synthetic test split (expect noise, often
# no parseable answer at all). Full profile: `nvidia/Cosmos-Reason1-7B` with vLLM on
# `videophysics/videophy2_test`, as the published recipe.

# %%
import json

from recipe_utils import plots
from recipe_utils.config import load_config, repo_path, run_dir
from recipe_utils.metrics import PUBLISHED, read_predictions
from recipe_utils.pipeline import zero_shot_stage
from recipe_utils.prompts import load_prompt
from recipe_utils.videophy2 import label_counts

# %% tags=["parameters"]
PROFILE: str = "smoke"  # smoke (CPU, tiny model) or full (8 GPUs, Cosmos-Reason1-7B)
RUN_DIR: str = ""  # where this run writes; empty: the profile's run_dir
OVERRIDES: dict = {}  # settings to change, e.g. {"sft.lr": 1e-4, "seed": 1} (or that as JSON)
N_EXAMPLES: int = 4  # example answers printed

# %%
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
#
# ## Score the evaluation split
# Scoring appends one line per video to `zero_shot/predictions.jsonl` as it goes: stop the cell
# and run it again, and it continues where it stopped. `zero_shot/report.html` shows every
# video's frames, answer and human score.

# %%
metrics = zero_shot_stage(config, run)
records = read_predictions(run / "zero_shot" / "predictions.jsonl")
keys = (
    "n",
    "accuracy",
    "accuracy_ci",
    "pearson",
    "pearson_ci",
    "spearman",
    "mae",
    "within1",
    "parse_failure_rate",
)
{k: metrics[k] for k in keys} | {
    "expected_score_pearson": (metrics["expected"] or {}).get("pearson"),
    "notes": metrics["notes"],
}

# %% [markdown]
# ## Against published numbers
# Grey hatched bars are published results on the real VideoPhy-2 test split (from the papers
# and the recipe), not something this notebook ran. On the smoke profile the comparison only
# shows the plot; the numbers mean something on the full profile.

# %%
figures = run / "02_zero_shot"
figures.mkdir(exist_ok=True)
fig = plots.correlation_bars({"zero-shot (this run)": metrics}, PUBLISHED)
plots.save_figure(fig, figures / "correlation_bars.png")

# %%
fig = plots.confusion(metrics, "Zero-shot: human pc vs predicted")
plots.save_figure(fig, figures / "confusion.png")
fig = plots.prediction_histograms({"zero-shot": metrics}, label_counts(records))
plots.save_figure(fig, figures / "prediction_histogram.png")

# %% [markdown]
# ## What the model wrote

# %%
for record in records[:N_EXAMPLES]:
    print(
        f"{record['id']}  human pc={record['pc']}  parsed={record['pred']}  "
        f"expected={record['expected']}\n  {record['raw'][0][:300]!r}\n"
    )

# %%
(run / "02_zero_shot" / "metrics.json").write_text(json.dumps(metrics, indent=2))
{k: metrics[k] for k in ("n", "accuracy", "pearson", "parse_failure_rate")}
