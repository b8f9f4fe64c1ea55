"""Gather what notebooks 02-04 wrote into one comparison: zero-shot, best SFT, best GRPO.

Nothing here scores or trains; it only reads metrics and predictions from the run folder, so the
results notebook can be re-run alone and always shows what the earlier stages computed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .metrics import PUBLISHED, read_predictions

SYSTEMS = {"zero_shot": "zero-shot", "sft": "SFT best", "grpo": "GRPO best"}
COLUMNS = ("accuracy", "pearson", "spearman", "mae", "within1", "parse_failure_rate")


def _read(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run the notebook that writes it first")
    return json.loads(path.read_text())


def prediction_dirs(run: Path, finished_only: bool = False) -> dict[str, Path]:
    """Folder of the predictions behind each system: zero-shot and each stage's best step;
    `finished_only` leaves out the stages not run yet instead of stopping at them."""
    dirs = {"zero_shot": run / "zero_shot"}
    for kind, notebook in (("sft", "03_sft"), ("grpo", "04_grpo")):
        if finished_only and not (run / notebook / "metrics.json").exists():
            continue
        step = _read(run / notebook / "metrics.json")["best"]["step"]
        dirs[kind] = run / kind / "sweep" / f"step_{step}"
    return dirs


def collect(run: Path, finished_only: bool = False) -> dict[str, dict]:
    """Full metrics of each system, keyed `zero_shot`, `sft`, `grpo`, with `step` where trained."""
    systems = {}
    for name, folder in prediction_dirs(run, finished_only).items():
        metrics = _read(folder / "metrics.json")
        if name != "zero_shot":
            metrics["step"] = int(folder.name.removeprefix("step_"))
        systems[name] = metrics
    return systems


def records(run: Path) -> dict[str, list[dict]]:
    return {
        name: read_predictions(folder / "predictions.jsonl")
        for name, folder in prediction_dirs(run).items()
    }


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, list):
        return f"[{value[0]:.3f}, {value[1]:.3f}]"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def results_rows(systems: dict[str, dict], data: str = "this run") -> list[dict]:
    """One row per system of this run; `data` names what it was measured on."""
    return [
        {
            "system": f"{SYSTEMS[name]} ({data})",
            **{k: m.get(k) for k in COLUMNS},
            "accuracy_ci": m.get("accuracy_ci"),
            "pearson_ci": m.get("pearson_ci"),
        }
        for name, m in systems.items()
    ]


def published_rows() -> list[dict]:
    """The published VideoPhy-2 test-split results, in a table of their own: they report only
    accuracy and Pearson r, and they were not measured by this run."""
    return [
        {"system": row["system"], "accuracy": row["accuracy"], "pearson": row["pearson"]}
        for row in PUBLISHED
    ]


def readable(table: pd.DataFrame, missing: str = "undefined") -> pd.DataFrame:
    """The table with its missing values (None, NaN) named, as a notebook shows it."""
    return table.astype(object).where(table.notna(), missing)


def markdown_table(rows: list[dict], columns: tuple[str, ...] | None = None) -> str:
    columns = columns or ("system", *COLUMNS, "accuracy_ci", "pearson_ci")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def sweep_curves(run: Path) -> dict[str, list[dict]]:
    """SFT and GRPO checkpoint metrics on one step axis. GRPO started from an SFT checkpoint
    (`grpo.start: sft`) counts its steps on from that SFT step; from the base model, from 0."""
    sft = _read(run / "sft" / "sweep" / "sweep.json")["steps"]
    grpo = _read(run / "grpo" / "sweep" / "sweep.json")["steps"]
    grpo_metrics = _read(run / "04_grpo" / "metrics.json")
    if grpo_metrics.get("start", "sft") != "sft":
        return {"SFT": sft, "GRPO (from the base model)": grpo}
    start = grpo_metrics["sft"]["step"]
    shifted = [point | {"step": point["step"] + start} for point in grpo]
    return {"SFT": sft, f"GRPO (from SFT step {start})": shifted}


def disagreements(by_system: dict[str, list[dict]], n: int = 3) -> list[dict]:
    """The videos whose parsed scores differ most between systems (ids, human and parsed scores)."""
    names = list(by_system)
    indexed = {name: {r["id"]: r for r in recs} for name, recs in by_system.items()}
    shared = set.intersection(*(set(index) for index in indexed.values()))
    found = []
    for video_id in sorted(shared):
        preds = {name: indexed[name][video_id]["pred"] for name in names}
        parsed = [p for p in preds.values() if p is not None]
        spread = (max(parsed) - min(parsed)) if len(parsed) > 1 else 0
        found.append(
            {
                "id": video_id,
                "pc": indexed[names[0]][video_id]["pc"],
                "spread": spread,
                "preds": preds,
            }
        )
    found.sort(key=lambda row: (-row["spread"], row["id"]))
    return found[:n]


def write_summary(run: Path, systems: dict[str, dict], synthetic: bool) -> tuple[Path, Path]:
    """`summary.json` (the three systems' headline metrics) and `summary.md` in the run folder."""
    keep = (*COLUMNS, "accuracy_ci", "pearson_ci", "n", "step")
    summary = {name: {k: m[k] for k in keep if k in m} for name, m in systems.items()}
    json_path = run / "summary.json"
    json_path.write_text(json.dumps(summary, indent=2, allow_nan=False))
    data = "synthetic clips" if synthetic else "VideoPhy-2 test split"
    labels = (
        "The labels are **synthetic**: the course's generated physics clips with exact `pc` "
        "scores, not human ratings. These numbers show that the pipeline works and what each "
        "stage changes; they are not VideoPhy-2 results."
        if synthetic
        else "Metrics on the VideoPhy-2 test split against human `pc` scores."
    )
    md_path = run / "summary.md"
    md_path.write_text(
        "# Physical plausibility: results of this run\n\n"
        f"{labels}\n\n## This run ({data})\n\n"
        + markdown_table(results_rows(systems, data))
        + "\n\n## Published (VideoPhy-2 test split, not computed by this run)\n\n"
        + markdown_table(published_rows(), ("system", "accuracy", "pearson"))
        + "\n"
    )
    return json_path, md_path
