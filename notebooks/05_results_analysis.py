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
# # 05 · Results: zero-shot vs SFT vs GRPO
#
# This notebook trains and scores nothing: it reads the predictions, metrics and sweep tables
# that notebooks 02-04 wrote, so every number here is one those runs computed.
#
# **You will learn** to compare scorers the way the choice of a production filter needs:
# accuracy and correlation with intervals, whether answers still bunch at 3-4, how each model
# does per generator, per category and on the hard subset, whether the expected score ranks
# better than the sampled answer, and what the models wrote where they disagree most.
#
# SFT and GRPO are each the checkpoint selected on the validation split (carved from train,
# never trained on) and reported on the evaluation split. The step that is best *on* the
# evaluation split, the published recipe's way of choosing, appears only in `summary.md`,
# labelled: chosen on the split it is reported on, its number is optimistic.

# %%
import json

import pandas as pd
from IPython.display import HTML, Markdown, display

from recipe_utils import plots
from recipe_utils.clips import Gallery, link, scored_clip
from recipe_utils.config import check_parameters, load_config, run_dir
from recipe_utils.metrics import PUBLISHED
from recipe_utils.pipeline import best_checkpoint, resolve_source, score_args
from recipe_utils.ranking import keep_check, relative_clip
from recipe_utils.scoring import score_split
from recipe_utils.summary import (
    SYSTEMS,
    better_on_validation,
    collect,
    disagreements,
    published_rows,
    readable,
    records,
    results_rows,
    sweep_curves,
    validation_pearsons,
    write_summary,
)
from recipe_utils.synthetic import generate
from recipe_utils.takeaways import fmt, is_synthetic, slice_note, what_this_run_showed
from recipe_utils.videophy2 import label_counts, load_rows, write_jsonl

# %% tags=["parameters"]
PROFILE: str = "smoke"  # the profile whose run folder is read
RUN_DIR: str = ""  # where the earlier notebooks wrote; empty: the profile's run_dir
OVERRIDES: dict = {}  # settings to change, e.g. {"sft.lr": 1e-4, "seed": 1} (or that as JSON)
N_DISAGREEMENTS: int = 3  # videos shown where the models disagree most

# %%
check_parameters(globals())  # each parameter of the type its cell declares
config = load_config(PROFILE, OVERRIDES)
run = run_dir(config, RUN_DIR or None, create=False)  # the run notebooks 01-04 wrote
out = run / "05_results"
out.mkdir(exist_ok=True)
systems = collect(run)
by_system = records(run)
named = {SYSTEMS[name]: metrics for name, metrics in systems.items()}
data = "synthetic clips" if is_synthetic(config) else "VideoPhy-2 test"
readable(pd.DataFrame(results_rows(systems, data)).set_index("system"))

# %% [markdown]
# Published results on the real VideoPhy-2 test split, in a table of their own: they report
# accuracy and Pearson r only, and none of them was computed by this run.

# %%
readable(pd.DataFrame(published_rows()).set_index("system"), "not reported")

# %%
fig = plots.correlation_bars(named, PUBLISHED, data)
plots.save_figure(fig, out / "correlation_bars.png")

# %% [markdown]
# ## Training curves
# Checkpoint choice depends on the metric: accuracy and correlation need not peak together, nor
# validation (dotted) and evaluation (solid). Each trained stage has its own panel and step axis
# (the stages differ in length), with the step it selected on validation ringed. GRPO's step 0 is
# the model it started from, asked GRPO's question: in the smoke profile SFT's selected
# checkpoint under SFT's own prompt, so the very point of SFT's panel (its answers are reused);
# in the full profile the base model under the thinking prompt, which zero-shot did not ask.

# %%
curves, selected_steps = sweep_curves(run)
for metric in ("accuracy", "pearson"):
    references = {"zero-shot (this run)": systems["zero_shot"][metric]}
    fig = plots.metric_by_stage(curves, metric, references, selected_steps)
    plots.save_figure(fig, out / f"{metric}_vs_step.png")

# %% [markdown]
# ## Compare runs
# One run's numbers move with its seed, which draws the clips, the start weights and the
# training order. When other runs sit next to this one (the folders of
# `python -m recipe_utils course --grid seed=0,1,2`), this section puts them in one table with
# intervals, shows the spread across seeds and draws every run's curves on one figure: a
# difference between two settings means something only when it is larger than that spread.

# %%
from recipe_utils.compare import comparison, find_runs, readable_runs

neighbours, unreadable = readable_runs(find_runs(run.parent))
for line in unreadable:
    print(f"left out of the comparison: {line}")
if len(neighbours) > 1:
    text, _, fig = comparison(neighbours)
    plots.save_figure(fig, out / "compare_runs.png")
    display(Markdown(text))
else:
    print(f"no other run with results next to this one in {run.parent}: nothing to compare")

# %% [markdown]
# ## Where the answers go

# %%
fig = plots.confusions(named)
plots.save_figure(fig, out / "confusions.png")
fig = plots.prediction_histograms(named, label_counts(by_system["zero_shot"]))
plots.save_figure(fig, out / "prediction_histograms.png")

# %% [markdown]
# ## Slices: generators, categories and the hard subset
# In VideoPhy-2 every generator has its own habits and the hard subset is where models fail;
# each category of physics (collision, free fall, ...) asks for different evidence.
# A slice that cannot tell anything on this split is named instead of drawn. Each bar's clip
# count is under it: a few dozen clips make a rough number.

# %%
for column in ("model_name", "category", "is_hard"):
    note = slice_note(by_system["zero_shot"], column)
    if note:
        print(f"{column}: {note}")
        continue
    fig = plots.slice_bars(named, column)
    plots.save_figure(fig, out / f"slices_{column}.png")

# %% [markdown]
# ## Expected score vs sampled answer
# The expected score is the probability-weighted mean over "1".."5" at the answer position. Being
# continuous, it breaks the ties between clips given the same answer, so it *can* rank them
# better; whether it does here, beyond noise, the closing summary says per system.

# %%
best = better_on_validation(run)  # the trained stage with the higher validation r
fig = plots.expected_vs_sampled(by_system[best], SYSTEMS[best])
plots.save_figure(fig, out / "expected_vs_sampled.png")
readable(
    pd.DataFrame(
        {
            SYSTEMS[name]: {
                "sampled answer r": m["pearson"],
                "expected score r": (m["expected"] or {}).get("pearson"),
            }
            for name, m in systems.items()
        }
    ).T
)

# %% [markdown]
# ## Where the models disagree most
# The clips whose scores differ most between the three systems, with each system's whole answer.

# %%
rows = {r["id"]: r for r in load_rows(*resolve_source(config, run, "eval")).rows}
by_id = {name: {r["id"]: r for r in recs} for name, recs in by_system.items()}
Gallery(
    [
        scored_clip(
            rows[row["id"]],
            {SYSTEMS[name]: recs[row["id"]] for name, recs in by_id.items()},
        )
        for row in disagreements(by_system, N_DISAGREEMENTS)
    ]
)

# %% [markdown]
# ## The critic at work: score and filter clips nobody labelled
# The recipe exists to filter generated videos. Here the selected checkpoint of the stage with
# the higher validation r scores a folder of clips that come with no labels, ranks them
# (`ranking.csv`, and `report.html` best first) and keeps those above a bar (`kept.txt`,
# `dropped.txt`). The same from a shell:
# `python -m recipe_utils score --model CHECKPOINT --source DIR --out OUT --keep-above 3.5`.
# On the smoke profile the folder holds newly rendered synthetic clips in two subfolders that
# reuse file names, as generators' folders do; on the full profile, a list of test-split videos
# (downloaded by notebook 02) without their labels: no checkpoint trained on them.

# %%
KEEP_ABOVE = 3.5  # keep clips whose expected score (or answer) is above this. Between two
# answers: an answer's expected score sits near it, so a bar on an answer (3) would split the
# clips answered 3 by a sliver of probability, one at 3.0003 kept and one at 2.9997 not
N_CLIPS = 16  # clips scored here
critic = better_on_validation(run)  # chosen on validation, like every checkpoint here
own = out / "own_clips"
if is_synthetic(config):
    clips = own / "clips"  # each subfolder's labels stay in its test.jsonl, unread by scoring
    for generator, seed in (("generator_a", 11), ("generator_b", 12)):
        generate(clips / generator, n_train=0, n_test=N_CLIPS // 2, seed=seed)
else:  # run/data/videos holds the training videos too: list test videos only, without labels
    clips = own / "clips.jsonl"
    videos = [run / "data" / "videos" / f"{row_id}.mp4" for row_id in list(rows)[:N_CLIPS]]
    write_jsonl(clips, [{"video_url": str(video)} for video in videos])
args = score_args(config, run, config[critic]["prompt"]) | {"source": clips, "split": None}
args["limit"] = N_CLIPS
predictions = score_split(
    best_checkpoint(run, critic), out_dir=own / "scores", keep_above=KEEP_ABOVE, **args
)
kept = (own / "scores" / "kept.txt").read_text().splitlines()
ranking = pd.read_csv(own / "scores" / "ranking.csv")
ranking["clip"] = [relative_clip(clip, clips) for clip in ranking["clip"]]
on_validation = ", ".join(f"{k.upper()} {fmt(r)}" for k, r in validation_pearsons(run).items())
near = int((ranking["score"] - KEEP_ABOVE).abs().lt(0.05).sum())
print(
    f"the selected {critic.upper()} checkpoint (validation r: {on_validation}) keeps "
    f"{len(kept)} of {len(ranking)} clips above {KEEP_ABOVE}; {near} scored within 0.05 of "
    "that bar, where the decision rests on a sliver of probability"
)
ranking.drop(columns="id").head(8)

# %% [markdown]
# Were the right clips kept? These clips do have labels, which scoring never read: on the smoke
# profile each subfolder's `test.jsonl`, on the full profile the test split's `pc`. Against
# them, the kept clips labelled 4 or 5, next to the same among all the scored clips (what
# keeping clips at random would give).

# %%
if is_synthetic(config):
    labelled = [row for folder in sorted(clips.iterdir()) for row in load_rows(folder, "test").rows]
else:  # downloaded test videos are named by their row's id
    labelled = [
        dict(row, video=str(run / "data" / "videos" / f"{i}.mp4")) for i, row in rows.items()
    ]
dropped = (own / "scores" / "dropped.txt").read_text().splitlines()
check = keep_check(kept, dropped, {row["video"]: row["pc"] for row in labelled})
print(
    f"kept: {check['kept_good']} of {check['kept']} labelled clips have pc >= {check['good']}; "
    f"all scored: {check['labelled_good']} of {check['labelled']}"
)

# %%
summary_json, summary_md = write_summary(run, systems, is_synthetic(config))
with open(out / "metrics.json", "w") as file:
    json.dump({"systems": json.loads(summary_json.read_text())}, file, indent=2)
display(HTML(f"Written for the run: {link(summary_md)} and {link(summary_json)}"))
Markdown(summary_md.read_text())

# %%
what_this_run_showed(out / "metrics.json", config)
