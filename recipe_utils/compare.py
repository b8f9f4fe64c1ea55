"""Put course runs side by side: one table of metrics with intervals, the spread across seeds,
and every run's accuracy and correlation over checkpoints on one figure.

A single run's numbers move with the seed (which draws the synthetic clips, the tiny model's
weights and the training order), so a difference between two settings means something only
next to the seed-to-seed spread. Nothing here scores or trains: it reads what the runs wrote.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from . import plots
from .config import SETTINGS_FILE, flat, read_settings
from .summary import COLUMNS, SYSTEMS, collect

CURVE_METRICS = ("accuracy", "pearson")
DEFAULT_METRICS = ("accuracy", "pearson", "spearman", "mae")


@dataclass
class Run:
    """What one run folder holds: its settings (dotted keys), each system's metrics, and the
    checkpoint sweeps of the stages it trained."""

    name: str
    settings: dict
    systems: dict[str, dict]
    sweeps: dict[str, list[dict]]


def load_run(folder: str | Path, name: str | None = None) -> Run:
    """Read a run folder; a run that stopped before training compares on what it scored."""
    folder = Path(folder)
    settings = read_settings(folder)
    if settings is None:
        raise FileNotFoundError(f"{folder} has no settings.yaml: give a folder `course` ran in")
    sweeps = {
        kind: json.loads(path.read_text())["steps"]
        for kind in ("sft", "grpo")
        if (path := folder / kind / "sweep" / "sweep.json").exists()
    }
    systems = collect(folder, finished_only=True)
    return Run(name or folder.name, flat(settings), systems, sweeps)


def has_results(folder: Path) -> bool:
    """A run folder that scored something: recorded settings and zero-shot metrics."""
    try:
        return (folder / SETTINGS_FILE).is_file() and (folder / "zero_shot/metrics.json").is_file()
    except PermissionError:  # a neighbour we may not read (e.g. in /tmp) is no run of ours
        return False


def find_runs(parent: Path) -> list[Path]:
    """The run folders with results directly under `parent`."""
    return sorted(folder for folder in parent.iterdir() if has_results(folder))


def readable_runs(folders: list[Path]) -> tuple[list[Path], list[str]]:
    """The folders that load as runs, and a line for each that does not: a run an older version
    of the course wrote, or a half-written file, must not stop a lesson that only compares."""
    readable, unreadable = [], []
    for folder in folders:
        try:
            load_run(folder)
        except (OSError, ValueError) as exc:
            unreadable.append(f"{folder.name}: {exc}")
        else:
            readable.append(folder)
    return readable, unreadable


def varying(runs: list[Run]) -> list[str]:
    """The settings whose values differ between the runs: what the comparison is about."""
    keys = sorted({key for run in runs for key in run.settings})
    return [key for key in keys if len({repr(run.settings.get(key)) for run in runs}) > 1]


def table_rows(runs: list[Run], metrics: list[str]) -> list[dict]:
    """One row per run and system: the run, the settings that vary, then each metric and its
    bootstrap interval (`<metric>_ci`) where the run computed one."""
    keys = varying(runs)
    return [
        {
            "run": run.name,
            **{key: run.settings.get(key) for key in keys},
            "system": SYSTEMS[system],
            "step": m.get("step"),
            **{k: m.get(k) for metric in metrics for k in (metric, f"{metric}_ci")},
        }
        for run in runs
        for system, m in run.systems.items()
    ]


def seed_groups(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs that differ only in `seed`, by the settings they share (groups of two seeds or
    more), one run per seed: a run repeated with the same settings and seed gives the same
    numbers, which would count as a spread of zero."""
    keys = [key for key in varying(runs) if key != "seed"]
    groups: dict[str, dict] = {}
    for run in runs:
        label = ", ".join(f"{key}={run.settings.get(key)}" for key in keys) or "all runs"
        groups.setdefault(label, {}).setdefault(run.settings.get("seed"), run)
    return {label: list(seeds.values()) for label, seeds in groups.items() if len(seeds) > 1}


def spread(values: list[float]) -> dict | None:
    """Mean, sample standard deviation and range; None below two values."""
    if len(values) < 2:
        return None
    return {
        "mean": statistics.mean(values),
        "sd": statistics.stdev(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def spread_rows(runs: list[Run], metrics: list[str]) -> list[dict]:
    """The spread of each metric over the seeds of each group of runs, per system."""
    rows = []
    for label, group in seed_groups(runs).items():
        for system, title in SYSTEMS.items():
            found = [run.systems[system] for run in group if system in run.systems]
            stats = {
                metric: spread([m[metric] for m in found if m.get(metric) is not None])
                for metric in metrics
            }
            if any(stats.values()):
                rows.append({"runs": label, "system": title, "seeds": len(found), **stats})
    return rows


def format_cell(value: object) -> str:
    """A table cell: numbers to 3 decimals, a spread as `mean ± sd (min–max)`."""
    if value is None:
        return "–"
    if isinstance(value, dict):
        return f"{value['mean']:.3f} ± {value['sd']:.3f} ({value['min']:.3f}–{value['max']:.3f})"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown(rows: list[dict]) -> str:
    """A Markdown table; a metric's interval is shown in brackets after it."""
    if not rows:
        return ""
    columns = [c for c in rows[0] if not c.endswith("_ci")]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for column in columns:
            interval = row.get(f"{column}_ci")
            extra = f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else ""
            cells.append(format_cell(row[column]) + extra)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def curves_figure(runs: list[Run]) -> Figure:
    """Accuracy and Pearson over checkpoints of every run, with each run's zero-shot level."""
    return plots.runs_vs_step(
        {run.name: {kind.upper(): steps for kind, steps in run.sweeps.items()} for run in runs},
        {run.name: run.systems["zero_shot"] for run in runs},
        CURVE_METRICS,
    )


def run_names(folders: list[Path]) -> list[str]:
    """Folder names, or whole paths where two runs share a folder name."""
    names = [folder.name for folder in folders]
    return names if len(set(names)) == len(names) else [str(folder) for folder in folders]


def comparison(
    folders: list[str | Path], metrics: list[str] | None = None
) -> tuple[str, dict, Figure]:
    """The comparison of some runs: Markdown (table with intervals, seed spread), the same
    numbers as a dict, and the curves figure."""
    metrics = list(metrics or DEFAULT_METRICS)
    unknown = sorted(set(metrics) - set(COLUMNS))
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(COLUMNS)}")
    folders = [Path(folder) for folder in folders]
    runs = [load_run(folder, name) for folder, name in zip(folders, run_names(folders))]
    table, spreads = table_rows(runs, metrics), spread_rows(runs, metrics)
    spread_text = markdown(spreads) or (
        "No runs differ only in `seed`: run a grid over seeds (`--grid seed=0,1,2`) to see how "
        "much of a difference is noise."
    )
    page = (
        f"## {len(runs)} runs compared\n\n"
        "Metrics on each run's evaluation split, with 95% bootstrap intervals where computed; "
        f"the settings columns are those that differ between the runs.\n\n{markdown(table)}\n\n"
        f"## Spread across seeds\n\n{spread_text}\n"
    )
    return page, {"runs": table, "spread": spreads}, curves_figure(runs)


def compare_runs(
    folders: list[str | Path], out: str | Path, metrics: list[str] | None = None
) -> list[Path]:
    """Write `compare.md`, `compare.json` and `curves.png` to `out`; returns their paths."""
    text, data, figure = comparison(folders, metrics)
    out = Path(out)
    png = out / "curves.png"
    plots.save_figure(figure, png)
    page = out / "compare.md"
    page.write_text(
        f"{text}\n## Accuracy and correlation over checkpoints\n\n![curves]({png.name})\n"
    )
    numbers = out / "compare.json"
    numbers.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    return [page, numbers, png]
