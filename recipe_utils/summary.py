"""Gather what notebooks 02-04 wrote into one comparison: zero-shot, SFT and GRPO at the
checkpoints selected on validation, reported on the test split.

Nothing here scores or trains; it only reads metrics and predictions from the run folder, so the
results notebook can be re-run alone and always shows what the earlier stages computed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .config import STAGES, NotRunYet
from .metrics import PUBLISHED, read_predictions

SYSTEMS = {"zero_shot": "zero-shot", "sft": "SFT selected", "grpo": "GRPO selected"}
COLUMNS = ("accuracy", "pearson", "spearman", "mae", "within1", "parse_failure_rate")


def _read(path: Path) -> dict:
    if not path.exists():
        raise NotRunYet(f"{path} is missing: run the notebook that writes it first")
    return json.loads(path.read_text())


def prediction_dirs(run: Path, finished_only: bool = False) -> dict[str, Path]:
    """Folder of the predictions behind each system: zero-shot and the step each stage selected
    on validation; `finished_only` leaves out the stages not run yet instead of stopping at
    them."""
    dirs = {"zero_shot": run / "zero_shot"}
    for kind, notebook in STAGES.items():
        if finished_only and not (run / notebook / "metrics.json").exists():
            continue
        dirs[kind] = run / kind / "sweep" / f"step_{selected(run, kind)['step']}"
    return dirs


def selected(run: Path, kind: str) -> dict:
    """The step a trained stage selected on validation, as its notebook recorded it."""
    path = run / STAGES[kind] / "metrics.json"
    choice = _read(path).get("selected")
    if choice is None:
        raise NotRunYet(
            f"{path} names no step selected on validation (it was written before checkpoints "
            f"were chosen on validation): run notebook {STAGES[kind][:2]} again for this run"
        )
    return choice


def validation_pearsons(run: Path) -> dict[str, float | None]:
    """Each trained stage's selected step's validation r (None where undefined)."""
    return {kind: selected(run, kind)["val"]["pearson"] for kind in STAGES}


def better_on_validation(run: Path) -> str:
    """`sft` or `grpo`: the trained stage whose selected step has the higher validation r (ties
    to SFT), so choosing between them never reads the test split either."""
    pearsons = validation_pearsons(run)
    return max(STAGES, key=lambda kind: -1.0 if pearsons[kind] is None else pearsons[kind])


def best_on_test(run: Path) -> dict[str, dict]:
    """Each trained stage's step chosen on the test split, the published recipe's way of
    choosing, as notebooks 03 and 04 recorded it beside the selected step."""
    return {
        kind: _read(run / notebook / "metrics.json")["best_on_test"]
        for kind, notebook in STAGES.items()
    }


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


def sweep_curves(run: Path) -> tuple[dict[str, list[dict]], dict[str, int]]:
    """Each trained stage's checkpoint metrics on its own step axis (GRPO's step 0 is the model
    it started from), named with where GRPO started, and the step each stage selected on
    validation, by the same names."""
    grpo = _read(run / "04_grpo" / "metrics.json")
    start = (
        f"SFT step {grpo['sft']['step']}" if grpo.get("start", "sft") == "sft" else "the base model"
    )
    names = {"sft": "SFT", "grpo": f"GRPO (from {start})"}
    curves = {names[kind]: _read(run / kind / "sweep" / "sweep.json")["steps"] for kind in STAGES}
    return curves, {names[kind]: selected(run, kind)["step"] for kind in STAGES}


def disagreements(by_system: dict[str, list[dict]], n: int = 3) -> list[dict]:
    """The videos whose parsed scores differ most between systems (ids, labels and parsed scores)."""
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
    keep = (*COLUMNS, "accuracy_ci", "pearson_ci", "expected", "n", "step")
    summary = {name: {k: m[k] for k in keep if k in m} for name, m in systems.items()}
    on_test = {kind: choice for kind, choice in best_on_test(run).items() if kind in summary}
    for kind, choice in on_test.items():
        summary[kind]["selected_by"] = selected(run, kind)["by"]
        summary[kind]["best_on_test"] = choice and {"step": choice["step"], **choice["test"]}
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
        + "\n\nEach trained system is the checkpoint selected on the validation split (carved "
        "from train, never trained on), scored on the evaluation split.\n\n"
        "## Chosen on the evaluation split instead (the published recipe's way; optimistic)\n\n"
        + markdown_table(
            [
                {
                    "system": f"{kind.upper()} trained step best on test",
                    **summary[kind]["best_on_test"],
                }
                for kind in on_test
                if summary[kind]["best_on_test"]
            ],
            ("system", "step", "accuracy", "pearson", "pearson_ci"),
        )
        + "\n\n## Published (VideoPhy-2 test split, not computed by this run)\n\n"
        + markdown_table(published_rows(), ("system", "accuracy", "pearson"))
        + "\n"
    )
    return json_path, md_path
