"""Run folders written the way the course writes them, from hand-made predictions."""

import json
from pathlib import Path

from recipe_utils.config import STAGES, load_config, run_dir
from recipe_utils.metrics import chosen_checkpoints, evaluate, sweep_table

TRUTH = [1, 2, 3, 4, 5, 4, 4, 3, 2, 5, 1, 4]


def scored(folder: Path, preds: list[int | None]) -> dict:
    """predictions.jsonl and metrics.json as a scoring stage leaves them."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps({"id": f"v{i}", "pc": pc, "pred": pred, "raw": [f"<answer>{pred}</answer>"]})
        for i, (pc, pred) in enumerate(zip(TRUTH, preds))
    ]
    (folder / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    return evaluate(folder / "predictions.jsonl", folder / "metrics.json", n_boot=50)


def write_stage(folder: Path, kind: str, start: list, trained: list) -> None:
    """A trained stage's sweep (its start, then two checkpoints) and the step it selected."""
    steps = {0: start, 10: trained[::-1], 20: trained}
    table = sweep_table(
        {s: scored(folder / f"{kind}/sweep/step_{s}", p) for s, p in steps.items()},
        {s: scored(folder / f"{kind}/sweep/val/step_{s}", p) for s, p in steps.items()},
    )
    (folder / f"{kind}/sweep/sweep.json").write_text(json.dumps(table))
    notebook = folder / STAGES[kind]
    notebook.mkdir()
    (notebook / "metrics.json").write_text(json.dumps(chosen_checkpoints(folder / f"{kind}/sweep")))


def write_run(
    folder: Path,
    overrides: dict,
    zero_shot: list,
    sft: list | None = None,
    grpo: list | None = None,
) -> Path:
    """A run folder as `course` leaves it after zero-shot scoring and the stages given."""
    run_dir(load_config("smoke", overrides), folder)
    scored(folder / "zero_shot", zero_shot)
    if sft is not None:
        write_stage(folder, "sft", zero_shot, sft)
    if grpo is not None:
        write_stage(folder, "grpo", sft, grpo)
    return folder


def shifted(k: int) -> list[int]:
    """Predictions that are right except for `k` clips one step off."""
    return [min(5, pc + 1) if i < k else pc for i, pc in enumerate(TRUTH)]
