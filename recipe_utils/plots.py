"""Every figure the course shows, one function each, returning a matplotlib ``Figure``.

The functions only draw: they take rows, metrics dicts (from ``recipe_utils.metrics``) or logs
that earlier stages wrote to disk, and never show or save anything themselves, so notebooks and
tests decide what happens to a figure (``save_figure`` writes it as a PNG).

Published numbers are always drawn in grey, hatched (bars) or dashed (lines); this run's systems
get the colours of the ``tab10`` cycle, in the order they are passed in.
"""

from __future__ import annotations

import textwrap
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

SCORES = (1, 2, 3, 4, 5)
PUBLISHED_COLOR = "0.6"
PUBLISHED_HATCH = "//"
REFERENCE_LINESTYLE = "--"
LABEL_COLOR = "0.25"
METRIC_LABELS = {
    "accuracy": "accuracy (exact match)",
    "pearson": "Pearson r",
    "spearman": "Spearman rho",
    "mae": "mean absolute error",
    "within1": "accuracy within +-1",
}


def run_color(index: int) -> tuple[float, float, float, float]:
    """Colour of this run's ``index``-th system, the same in every figure."""
    return plt.get_cmap("tab10")(index % 10)


def save_figure(fig: Figure, path: str | Path) -> None:
    """Write ``fig`` as a PNG (dpi 120, tight bounding box), creating the parent folder.

    Returns nothing, so a notebook cell that ends with it shows the figure and no path.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_figure writes PNG files; give a path ending in .png, not {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=120, bbox_inches="tight")


# ----------------------------------------------------------------------------- helpers


def _column(rows: Sequence[Mapping[str, Any]], key: str) -> list[Any]:
    """Values of ``key`` in every row, with an error naming the first row that lacks it."""
    if not rows:
        raise ValueError(f"No rows to plot (column {key!r}); load a split first.")
    values = []
    for index, row in enumerate(rows):
        if key not in row:
            raise KeyError(
                f"Row {index} (id {row.get('id', '?')!r}) has no {key!r} column; "
                "rows must follow the VideoPhy-2 schema."
            )
        values.append(row[key])
    return values


def _by_label(counts: Mapping[Any, int]) -> dict[int, int]:
    """``{1: n, ..., 5: n}`` from a count dict whose keys may be ints or (after JSON) strings."""
    as_int = {int(key): value for key, value in counts.items() if str(key).isdigit()}
    return {score: as_int.get(score, 0) for score in SCORES}


def _bar_positions(n_series: int, width: float = 0.8) -> tuple[np.ndarray, float]:
    """Left-to-right x offsets of ``n_series`` grouped bars around integer group centres."""
    bar = width / n_series
    offsets = (np.arange(n_series) - (n_series - 1) / 2) * bar
    return offsets, bar


def _undefined(ax: Axes, x: float, y: float = 0.0, **kwargs: Any) -> None:
    """Mark a value that cannot be drawn (an undefined correlation, an empty slice)."""
    ax.annotate("undefined", (x, y), ha="center", va="bottom", fontsize=7, rotation=90, **kwargs)


def _shorten(text: str, width: int = 60) -> str:
    """Fit a long caption on one line."""
    return textwrap.shorten(str(text), width=width, placeholder="...")


# ----------------------------------------------------------------------------- labels


def label_histograms(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Distributions of ``pc`` (the target), ``sa`` and ``joint`` side by side."""
    panels = [
        ("pc", SCORES, "physical commonsense (pc)"),
        ("sa", SCORES, "semantic adherence (sa)"),
        ("joint", (0, 1), "joint (sa>=4 and pc>=4)"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5), layout="constrained")
    for ax, (key, values, title) in zip(axes, panels, strict=True):
        counts = Counter(_column(rows, key))
        heights = [counts.get(value, 0) for value in values]
        bars = ax.bar([str(value) for value in values], heights, color=run_color(0))
        ax.bar_label(bars, fontsize=8)
        ax.set_title(title)
        ax.set_xlabel(f"{key} score" if key != "joint" else "joint label")
        ax.set_ylabel("videos")
    fig.suptitle(f"Labels ({len(rows)} videos)")
    return fig


def label_by_group(rows: Sequence[Mapping[str, Any]], column: str) -> Figure:
    """Mean ``pc`` per value of ``column`` (generator, category, is_hard), with row counts."""
    groups: dict[str, list[int]] = defaultdict(list)
    scores = _column(rows, "pc")
    for value, pc in zip(_column(rows, column), scores, strict=True):
        groups[str(value)].append(pc)
    names = sorted(groups)
    means = [float(np.mean(groups[name])) for name in names]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.7 * len(names) + 2), 4), layout="constrained")
    ticks = [f"{name}\n(n={len(groups[name])})" for name in names]  # clear of the mean's line
    ax.bar(ticks, means, color=run_color(0), label="mean pc of the group")
    overall = float(np.mean(scores))
    ax.axhline(overall, color=LABEL_COLOR, linestyle=REFERENCE_LINESTYLE, label="all videos")
    ax.set_ylim(0, 5.5)
    ax.set_title(f"Mean physical commonsense (pc) by {column}")
    ax.set_xlabel(column)
    ax.set_ylabel("mean pc (1..5)")
    ax.tick_params(axis="x", labelrotation=30 if len(names) > 4 else 0)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


def label_counts_before_after(
    before: Mapping[int, int], after: Mapping[int, int], title: str = "Label balancing"
) -> Figure:
    """``pc`` counts before and after label balancing, as grouped bars."""
    series = [("before balancing", _by_label(before)), ("after balancing", _by_label(after))]
    offsets, width = _bar_positions(len(series))
    fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
    for index, (name, counts) in enumerate(series):
        bars = ax.bar(
            np.arange(len(SCORES)) + offsets[index],
            [counts[score] for score in SCORES],
            width,
            color=run_color(index),
            label=name,
        )
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(np.arange(len(SCORES)), [str(score) for score in SCORES])
    ax.set_title(title)
    ax.set_xlabel("pc score")
    ax.set_ylabel("videos")
    ax.legend()
    return fig


def frame_grid(clips: Sequence[tuple[str, np.ndarray]], n_frames: int = 4) -> Figure:
    """One row per clip, ``n_frames`` evenly spaced frames of each; the row's title above it."""
    if not clips:
        raise ValueError("frame_grid needs at least one (title, frames) clip.")
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}.")
    fig = plt.figure(figsize=(2.4 * n_frames, 2.0 * len(clips) + 0.4), layout="constrained")
    # A sub-figure per clip, so a long row title does not widen the first column.
    rows = fig.subfigures(len(clips), 1, squeeze=False)[:, 0]
    for row, (title, frames) in zip(rows, clips, strict=True):
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
            raise ValueError(
                f"Clip {title!r}: expected frames shaped (T, H, W, 3) with T >= 1, "
                f"got {frames.shape}; pass Clip.frames from recipe_utils.video.load_clip."
            )
        picks = np.linspace(0, len(frames) - 1, n_frames).round().astype(int)
        for ax, pick in zip(row.subplots(1, n_frames, squeeze=False)[0], picks, strict=True):
            ax.imshow(frames[pick])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"frame {pick}", fontsize=8)
        row.suptitle(_shorten(title, 25 * n_frames), x=0.01, ha="left", fontsize=9)
    fig.suptitle(f"{len(clips)} clips, {n_frames} evenly spaced frames each")
    return fig


# ----------------------------------------------------------------------------- scoring results


def _draw_confusion(ax: Axes, matrix: Sequence[Sequence[int]] | None, title: str) -> None:
    """Counts in each cell; shading is the share of the row, so rare labels still show."""
    ax.set_title(title)
    ax.set_xlabel("predicted pc")
    ax.set_ylabel("label pc")
    ax.set_xticks(range(5), [str(score) for score in SCORES])
    ax.set_yticks(range(5), [str(score) for score in SCORES])
    ax.set_xlim(-0.5, 4.5)
    ax.set_ylim(4.5, -0.5)
    if matrix is None:
        ax.text(0.5, 0.5, "undefined", ha="center", va="center", transform=ax.transAxes)
        return
    counts = np.asarray(matrix, dtype=float)
    if counts.shape != (5, 5):
        raise ValueError(f"Confusion {title!r}: expected a 5x5 matrix, got shape {counts.shape}.")
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (truth, pred), count in np.ndenumerate(counts):
        color = "white" if shares[truth, pred] > 0.6 else "black"
        ax.text(pred, truth, f"{int(count)}", ha="center", va="center", color=color, fontsize=8)


def _confusion_matrix(metrics_or_matrix: Any) -> Sequence[Sequence[int]] | None:
    if isinstance(metrics_or_matrix, Mapping):
        return metrics_or_matrix.get("confusion")
    return metrics_or_matrix


def confusion(metrics_or_matrix: Mapping[str, Any] | Sequence[Sequence[int]], title: str) -> Figure:
    """Confusion matrix (rows label pc 1..5, columns predicted 1..5) of one system."""
    fig, ax = plt.subplots(figsize=(4.2, 4), layout="constrained")
    _draw_confusion(ax, _confusion_matrix(metrics_or_matrix), title)
    return fig


def confusions(named: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Confusion matrices of several systems side by side, for comparing where they err."""
    if not named:
        raise ValueError("confusions needs at least one {system name: metrics} entry.")
    fig, axes = plt.subplots(
        1, len(named), figsize=(4 * len(named), 4), squeeze=False, layout="constrained"
    )
    for ax, (name, metrics) in zip(axes[0], named.items(), strict=True):
        _draw_confusion(ax, _confusion_matrix(metrics), f"{name} (n={metrics.get('n', '?')})")
    fig.suptitle("Confusion matrices (shading: share of each label)")
    return fig


def prediction_histograms(
    named: Mapping[str, Mapping[str, Any]], truth_counts: Mapping[int, int] | None = None
) -> Figure:
    """Share of each predicted score (and of parse failures) per system, next to the labels'."""
    categories = [str(score) for score in SCORES] + ["none"]
    series = []
    if truth_counts is not None:
        truth = _by_label(truth_counts)
        series.append(("labels", [truth[score] for score in SCORES] + [0], None))
    for index, (name, metrics) in enumerate(named.items()):
        histogram = metrics.get("prediction_histogram") or {}
        series.append((name, [histogram.get(key, 0) for key in categories], run_color(index)))
    if not series:
        raise ValueError("prediction_histograms needs at least one system or truth_counts.")
    offsets, width = _bar_positions(len(series))
    fig, ax = plt.subplots(figsize=(8, 3.8), layout="constrained")
    for index, (name, counts, color) in enumerate(series):
        total = sum(counts)
        shares = [count / total if total else 0.0 for count in counts]
        style = (
            {"color": color}
            if color is not None
            else {"facecolor": "white", "edgecolor": LABEL_COLOR, "hatch": PUBLISHED_HATCH}
        )
        ax.bar(np.arange(len(categories)) + offsets[index], shares, width, label=name, **style)
    ax.set_xticks(np.arange(len(categories)), categories[:-1] + ["none\n(parse failure)"])
    ax.set_title("Predicted scores compared with the labels")
    ax.set_xlabel("pc score")
    ax.set_ylabel("share of videos")
    ax.legend()
    return fig


def correlation_bars(
    named: Mapping[str, Mapping[str, Any]],
    published: Sequence[Mapping[str, Any]] = (),
    data: str = "this run",
) -> Figure:
    """Pearson r of this run's systems (with bootstrap CI) above published systems.

    The two groups are split by a line and named on the right (`data` says what this run was
    measured on, e.g. "synthetic clips"), so a synthetic number is never read as a published one.
    """
    entries = [
        (name, metrics.get("pearson"), metrics.get("pearson_ci"), run_color(index), False)
        for index, (name, metrics) in enumerate(named.items())
    ]
    entries += [
        (row["system"], row.get("pearson"), None, PUBLISHED_COLOR, True) for row in published
    ]
    if not entries:
        raise ValueError("correlation_bars needs at least one system or published row.")
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(entries) + 1.6), layout="constrained")
    for y, (_, value, ci, color, is_published) in enumerate(entries):
        if value is None:
            ax.text(0.005, y, "undefined", va="center", fontsize=8)
            continue
        xerr = None if ci is None else [[value - ci[0]], [ci[1] - value]]
        ax.barh(
            y,
            value,
            height=0.7,
            color=color,
            hatch=PUBLISHED_HATCH if is_published else None,
            edgecolor="white" if is_published else None,
            xerr=xerr,
            capsize=3,
        )
        end = value if ci is None else max(value, ci[1])
        ax.text(end, y, f"  {value:.3f}", va="center", fontsize=8)
    ax.set_yticks(range(len(entries)), [entry[0] for entry in entries], fontsize=8)
    ax.set_ylim(len(entries) - 0.5, -0.5)  # top to bottom, rows without a bar included
    ax.axvline(0, color="black", linewidth=0.8)
    groups = [(f"this run:\n{data}", 0, len(named))]
    groups += [("published:\nVideoPhy-2 test", len(named), len(entries))] if published else []
    for label, first, stop in groups:
        if stop > first:
            ax.annotate(
                label,
                (1.01, (first + stop - 1) / 2),
                xycoords=("axes fraction", "data"),
                va="center",
                fontsize=8,
            )
    if named and published:
        ax.axhline(len(named) - 0.5, color="black", linewidth=1.2)
    ax.set_title("Correlation with the pc labels (error bars: 95% bootstrap CI)")
    ax.set_xlabel("Pearson r")
    ax.set_ylabel("system")
    ax.margins(x=0.15)
    return fig


def slice_bars(named: Mapping[str, Mapping[str, Any]], column: str) -> Figure:
    """Accuracy and Pearson r per value of ``column`` (e.g. generator) for each system."""
    if not named:
        raise ValueError("slice_bars needs at least one {system name: metrics} entry.")
    tables = {}
    for name, metrics in named.items():
        slices = metrics.get("slices") or {}
        if column not in slices:
            raise KeyError(
                f"Metrics of {name!r} have no slices by {column!r} (have {sorted(slices)}); "
                f"compute metrics with {column!r} among the slice columns."
            )
        tables[name] = {str(value): stats for value, stats in slices[column].items()}
    values = sorted({value for table in tables.values() for value in table})
    counts = {value: next(t[value]["n"] for t in tables.values() if value in t) for value in values}
    offsets, width = _bar_positions(len(tables))
    fig, axes = plt.subplots(
        1, 2, figsize=(max(8.0, 1.6 * len(values) + 3), 4), squeeze=False, layout="constrained"
    )
    for ax, metric in zip(axes[0], ("accuracy", "pearson"), strict=True):
        for index, table in enumerate(tables.values()):
            for position, value in enumerate(values):
                x = position + offsets[index]
                score = table.get(value, {}).get(metric)
                if score is None:
                    _undefined(ax, x, color=run_color(index))
                    continue
                ax.bar(x, score, width, color=run_color(index))
        ax.set_xticks(
            range(len(values)),
            [f"{textwrap.fill(value, 10)}\n(n={counts[value]})" for value in values],
        )
        ax.set_xlim(-0.5, len(values) - 0.5)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(f"{METRIC_LABELS[metric]} by {column}")
        ax.set_xlabel(column)
        ax.set_ylabel(METRIC_LABELS[metric])
    fig.legend(  # beside the panels, where no bar can hide behind it
        handles=[Patch(color=run_color(i), label=name) for i, name in enumerate(tables)],
        loc="outside right upper",
    )
    return fig


def expected_vs_sampled(records: Sequence[Mapping[str, Any]], name: str = "") -> Figure:
    """Expected score (probability-weighted) against the sampled answer, coloured by label pc.

    The sampled answers are jittered sideways so that the many points on each integer stay
    visible; records without a parsed answer or an expected score are counted, not drawn.
    """
    rng = np.random.default_rng(0)
    drawn = [r for r in records if r.get("pred") is not None and r.get("expected") is not None]
    fig, ax = plt.subplots(figsize=(6.5, 4.5), layout="constrained")
    for score in SCORES:
        points = [r for r in drawn if r["pc"] == score]
        if not points:
            continue
        x = np.array([r["pred"] for r in points], dtype=float)
        x += rng.uniform(-0.15, 0.15, size=len(x))
        y = [r["expected"] for r in points]
        color = plt.get_cmap("viridis")((score - 1) / 4)
        ax.scatter(x, y, s=14, alpha=0.7, color=color, label=f"label pc = {score}")
    ax.plot([1, 5], [1, 5], color=LABEL_COLOR, linestyle=REFERENCE_LINESTYLE, label="equal")
    skipped = len(records) - len(drawn)
    note = f"; {skipped} lack an answer or expected score" if skipped else ""
    whose = f": {name}" if name else ""
    ax.set_title(f"Expected score vs sampled answer{whose} ({len(drawn)} videos{note})")
    ax.set_xlabel("sampled answer (parsed)")
    ax.set_ylabel("expected score (from 1..5 token probabilities)")
    ax.set_xticks(SCORES)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


# ----------------------------------------------------------------------------- training


def _series(log: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """Steps and values of ``key`` in a training log, skipping entries where it is missing."""
    points = [(entry["step"], entry[key]) for entry in log if entry.get(key) is not None]
    return [step for step, _ in points], [value for _, value in points]


def _rolling_mean(values: Sequence[float], window: int) -> np.ndarray:
    """Mean of each full run of ``window`` consecutive entries (len(values) - window + 1 of
    them): a partial window at the start would mix the first, much larger, losses in."""
    cumulative = np.cumsum(np.insert(np.asarray(values, dtype=float), 0, 0.0))
    return (cumulative[window:] - cumulative[:-window]) / window


def _check_metric(metric: str) -> None:
    if metric not in METRIC_LABELS:
        raise ValueError(f"Unknown metric {metric!r}; choose one of {sorted(METRIC_LABELS)}.")


def _draw_sweep(
    ax: Axes, name: str, points: Sequence[Mapping[str, Any]], metric: str, index: int, step: Any
) -> None:
    """One run's metric over its checkpoints: solid on test, dotted on validation where the
    points carry `val_<metric>`, and a ring on `step` (the step selected on validation)."""
    steps, values = _series(points, metric)
    ax.plot(steps, values, marker="o", color=run_color(index), label=name)
    val_steps, val_values = _series(points, f"val_{metric}")
    if val_steps:
        ax.plot(
            val_steps,
            val_values,
            ":",
            marker=".",
            color=run_color(index),
            label=f"{name}, validation",
        )
    if step in steps:
        ax.plot(
            step,
            values[steps.index(step)],
            "o",
            markersize=12,
            fillstyle="none",
            color=run_color(index),
            label=f"selected on validation (step {step})",
        )


def _draw_references(ax: Axes, references: Mapping[str, float | None], first_color: int) -> None:
    """Dashed levels; one whose name contains "published" is grey, the others take run colours
    from `first_color` on. Undefined (None) levels are skipped."""
    for index, (name, value) in enumerate(references.items()):
        if value is None:
            continue
        color = PUBLISHED_COLOR if "published" in name.lower() else run_color(first_color + index)
        ax.axhline(value, color=color, linestyle=REFERENCE_LINESTYLE, label=f"{name} ({value:.3f})")


def metric_vs_step(
    sweeps: Mapping[str, Sequence[Mapping[str, Any]]],
    metric: str,
    references: Mapping[str, float | None] | None = None,
    selected: Mapping[str, int] | None = None,
) -> Figure:
    """A metric over checkpoints, one line per run on one step axis, with dashed reference
    levels.

    Points that also carry the metric on validation (`val_<metric>`, as sweep tables do) get a
    dotted twin line; `selected` rings the step chosen on validation on a run's line. A
    reference whose name contains "published" is drawn grey; others take a run colour after
    the runs. Points and references whose value is None (undefined) are skipped.
    """
    _check_metric(metric)
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for index, (name, points) in enumerate(sweeps.items()):
        _draw_sweep(ax, name, points, metric, index, (selected or {}).get(name))
    _draw_references(ax, references or {}, len(sweeps))
    ax.set_title(f"{METRIC_LABELS[metric]} over training checkpoints")
    ax.set_xlabel("training step")
    ax.set_ylabel(METRIC_LABELS[metric])
    ax.legend(fontsize=8)
    return fig


def metric_by_stage(
    stages: Mapping[str, Sequence[Mapping[str, Any]]],
    metric: str,
    references: Mapping[str, float | None] | None = None,
    selected: Mapping[str, int] | None = None,
) -> Figure:
    """`metric_vs_step` with one panel per training stage, each on its own step axis and all on
    one y axis: stages of very different lengths (1600 SFT steps, 60 GRPO steps) stay readable,
    and each panel rings its own selected step."""
    _check_metric(metric)
    if not stages:
        raise ValueError("metric_by_stage needs at least one {stage name: sweep points} entry.")
    fig, axes = plt.subplots(
        1,
        len(stages),
        figsize=(5 * len(stages), 4),
        sharey=True,
        squeeze=False,
        layout="constrained",
    )
    for index, (ax, (name, points)) in enumerate(zip(axes[0], stages.items(), strict=True)):
        _draw_sweep(ax, name, points, metric, index, (selected or {}).get(name))
        _draw_references(ax, references or {}, len(stages))
        ax.set_title(name)
        ax.set_xlabel("training step of this stage")
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel(METRIC_LABELS[metric])
    fig.suptitle(f"{METRIC_LABELS[metric]} over training checkpoints")
    return fig


def loss_curve(log: Sequence[Mapping[str, Any]]) -> Figure:
    """Training loss per step, raw and as a rolling mean over a fiftieth of the run, on a log
    axis: the loss falls by orders of magnitude, and a linear axis flattens all but the start.

    The window is short because a falling loss drags a long one: a mean over a tenth of the run
    sits far above the raw loss until the first steps leave it, then drops at once.
    """
    steps, losses = _series(log, "loss")
    if not steps:
        raise ValueError("The training log has no 'loss' entries; pass the SFT log (step, loss).")
    window = max(1, len(losses) // 50)
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    ax.plot(steps, losses, color=run_color(0), alpha=0.35, label="loss")
    ax.plot(
        steps[window - 1 :],
        _rolling_mean(losses, window),
        color=run_color(0),
        label=f"mean of the last {window} steps",
    )
    if min(losses) > 0:
        ax.set_yscale("log")
    ax.set_title("Training loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (log scale)" if min(losses) > 0 else "loss")
    ax.legend()
    return fig


def _draw_logged(ax: Axes, log: Sequence[Mapping[str, Any]], key: str, ylabel: str) -> None:
    """One logged quantity against step, or "not logged" when the log never has it."""
    steps, values = _series(log, key)
    if steps:
        ax.plot(steps, values, color=run_color(0))
    else:
        ax.text(0.5, 0.5, f"{key} not logged", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)


# below a panel of reward_curves, whose curves fill it
LEGEND_BELOW = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.2), "ncol": 2}


def _draw_reward(ax: Axes, log: Sequence[Mapping[str, Any]]) -> None:
    """Mean reward with a +-std band (spread within each prompt's group), and its two parts."""
    for index, key in enumerate(("reward_mean", "accuracy_reward", "format_reward")):
        steps, values = _series(log, key)
        if steps:
            ax.plot(
                steps, values, color=run_color(index), linewidth=2 if index == 0 else 1, label=key
            )
    with_std = [
        e for e in log if e.get("reward_mean") is not None and e.get("reward_std") is not None
    ]
    if with_std:
        steps = [e["step"] for e in with_std]
        means = np.array([e["reward_mean"] for e in with_std], dtype=float)
        stds = np.array([e["reward_std"] for e in with_std], dtype=float)
        band = {"color": run_color(0), "alpha": 0.2, "label": "reward_mean +- reward_std"}
        ax.fill_between(steps, means - stds, means + stds, **band)
    if ax.lines:
        ax.legend(fontsize=8, **LEGEND_BELOW)
    else:
        ax.text(0.5, 0.5, "rewards not logged", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("Reward")
    ax.set_xlabel("step")
    ax.set_ylabel("reward")


def reward_curves(log: Sequence[Mapping[str, Any]]) -> Figure:
    """GRPO health at a glance: reward, KL to the reference policy, response length, and the
    shares of groups that taught nothing and of tokens the ratio limit held back."""
    fig, (reward_ax, kl_ax, length_ax, share_ax) = plt.subplots(
        1, 4, figsize=(18, 3.8), layout="constrained"
    )
    _draw_reward(reward_ax, log)
    _draw_logged(kl_ax, log, "kl", "KL")
    kl_ax.set_title("KL to the reference policy")
    _draw_logged(length_ax, log, "response_length", "tokens")
    length_ax.set_title("Response length")
    _draw_shares(share_ax, log)
    fig.suptitle("GRPO training")
    return fig


def _draw_shares(ax: Axes, log: Sequence[Mapping[str, Any]]) -> None:
    """Zero-spread groups (no signal) on a 0..1 axis, and clipped completion tokens (no
    gradient) on an axis of their own, in percent: a share of a few tenths of a percent is
    flat on the first."""
    ax.set_title("What a step could not learn from")
    ax.set_xlabel("step")
    ax.set_ylabel("share of groups with no reward spread")
    ax.set_ylim(-0.05, 1.05)
    steps, values = _series(log, "zero_spread_share")
    if steps:
        ax.plot(steps, values, color=run_color(0), label="zero_spread_share")
    clipped_steps, clipped = _series(log, "clipped_share")
    if clipped_steps:
        right = ax.twinx()
        percent = [100 * value for value in clipped]
        right.plot(clipped_steps, percent, color=run_color(1), label="clipped_share (right, %)")
        right.set_ylim(0, max(max(percent) * 1.15, 0.1))
        right.set_ylabel("clipped tokens (%)")
        ax.legend(handles=ax.lines + right.lines, fontsize=8, **LEGEND_BELOW)
    elif ax.lines:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "shares not logged", ha="center", va="center", transform=ax.transAxes)


def dense_reward(reward_fn: Callable[[str, str], float]) -> Figure:
    """Reward against the distance between predicted score and label, dense vs exact match.

    ``reward_fn(completion, reference)`` is called for every (prediction, truth) pair in 1..5
    with answers in the model's ``<answer>`` format; the mean per distance is drawn.
    """
    by_distance: dict[int, list[float]] = defaultdict(list)
    for truth in SCORES:
        for pred in SCORES:
            completion = f"<think>\n</think>\n\n<answer>\n{pred}\n</answer>"
            reference = f"<answer>\n{truth}\n</answer>"
            by_distance[abs(pred - truth)].append(float(reward_fn(completion, reference)))
    distances = sorted(by_distance)
    fig, ax = plt.subplots(figsize=(5.5, 3.8), layout="constrained")
    dense = [float(np.mean(by_distance[d])) for d in distances]
    sparse = [1.0 if d == 0 else 0.0 for d in distances]
    ax.plot(distances, dense, marker="o", color=run_color(0), label="dense accuracy reward")
    ax.plot(
        distances,
        sparse,
        marker="s",
        color=PUBLISHED_COLOR,
        linestyle=REFERENCE_LINESTYLE,
        label="exact match (sparse)",
    )
    ax.set_xticks(distances)
    ax.set_title("Accuracy reward by how far the answer is off")
    ax.set_xlabel("|prediction - label pc|")
    ax.set_ylabel("reward")
    ax.legend()
    return fig


def runs_vs_step(
    curves: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]],
    zero_shot: Mapping[str, Mapping[str, Any]],
    metrics: Sequence[str] = ("accuracy", "pearson"),
) -> Figure:
    """Several runs over checkpoints on one figure, one panel per metric.

    Each run keeps one colour: SFT solid, GRPO dotted, and its zero-shot level a thin dashed
    line, so a run that only scored zero-shot still shows where it stands.
    """
    styles = {"SFT": "-", "GRPO": ":"}
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4), layout="constrained")
    names = list(dict.fromkeys([*zero_shot, *curves]))
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        for index, name in enumerate(names):
            color = run_color(index)
            for stage, points in curves.get(name, {}).items():
                steps, values = _series(points, metric)
                ax.plot(
                    steps,
                    values,
                    styles.get(stage, "-"),
                    marker="o",
                    ms=3,
                    color=color,
                    label=f"{name} {stage}",
                )
            level = zero_shot.get(name, {}).get(metric)
            if level is not None:
                ax.axhline(
                    level,
                    color=color,
                    linestyle=REFERENCE_LINESTYLE,
                    linewidth=0.8,
                    label=f"{name} zero-shot",
                )
        ax.set_title(f"{METRIC_LABELS[metric]} over training checkpoints")
        ax.set_xlabel("training step")
        ax.set_ylabel(METRIC_LABELS[metric])
    legend = {}  # one entry per line name, whichever panel drew it
    for ax in fig.axes:
        handles, labels = ax.get_legend_handles_labels()
        legend.update(zip(labels, handles))
    fig.legend(legend.values(), legend.keys(), fontsize=7, loc="outside right center")
    return fig
