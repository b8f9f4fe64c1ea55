"""Score a predictions.jsonl: accuracy, correlations, bootstrap intervals, slices, sweeps.

The published recipe's metric script drops unparseable answers before computing anything. Here a
parse failure counts as a wrong answer in `accuracy` and `within1` and is reported as a rate, so
a model cannot look better by failing to answer. Correlations and MAE need a number and use the
parsed rows only. Everything returned is plain JSON: an undefined value is None with its reason
in `notes`, never NaN.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from recipe_utils.answers import SCORES, think_block

SLICE_KEYS = ("model_name", "category", "is_hard")
MIN_CORRELATION_ROWS = 3

# Published VideoPhy-2 test-split results (pc), quoted from their sources; not measured here.
_PAPER = "published: VideoPhy-2 paper"
_COOKBOOK = "published: Cosmos cookbook, Physical Plausibility Prediction with Cosmos Reason 1"
PUBLISHED_SFT_STEPS = [
    {"step": 20, "accuracy": 0.219, "pearson": 0.280},
    {"step": 40, "accuracy": 0.311, "pearson": 0.375},
    {"step": 60, "accuracy": 0.324, "pearson": 0.395},
    {"step": 80, "accuracy": 0.259, "pearson": 0.388},
    {"step": 100, "accuracy": 0.340, "pearson": 0.383},
    {"step": 120, "accuracy": 0.308, "pearson": 0.386},
]
PUBLISHED = [
    {"system": "Gemini-2.0-Flash-Exp", "accuracy": None, "pearson": 0.11, "source": _PAPER},
    {"system": "VideoPhy-2-AutoEval (7B)", "accuracy": None, "pearson": 0.37, "source": _PAPER},
    {
        "system": "Cosmos-Reason1-7B zero-shot",
        "accuracy": 0.196,
        "pearson": 0.293,
        "source": _COOKBOOK,
    },
    *(
        {
            "system": f"Cosmos-Reason1-7B + SFT, step {row['step']}",
            "accuracy": row["accuracy"],
            "pearson": row["pearson"],
            "source": _COOKBOOK,
        }
        for row in PUBLISHED_SFT_STEPS
    ),
    {
        "system": "Cosmos-Reason1-7B + GRPO, step 900 (best)",
        "accuracy": 0.374,
        "pearson": 0.425,
        "source": _COOKBOOK,
    },
    {
        "system": "Cosmos-Reason2-8B + SFT",
        "accuracy": 0.401,
        "pearson": 0.419,
        "source": "published: Cosmos cookbook, later Cosmos Reason 2 recipe",
    },
]


def read_predictions(path: str | os.PathLike) -> list[dict]:
    """The records of a predictions.jsonl, first occurrence of each id kept.

    A final line that does not decode is what a killed run leaves behind: it is skipped with a
    warning. A bad line anywhere else means the file was damaged and raises ValueError.
    """
    records, _ = _read_jsonl(Path(path))
    return records


def paired_by_id(before: list[dict], after: list[dict]) -> list[tuple[dict, dict]]:
    """The records of the same clip in two predictions files, in `before`'s order: a resumed
    run may have written its records in another order than the first."""
    later = {record["id"]: record for record in after}
    return [(record, later[record["id"]]) for record in before if record["id"] in later]


def _read_jsonl(path: Path) -> tuple[list[dict], dict]:
    """Records plus what was left out of them (duplicates, a truncated last line)."""
    lines = path.read_bytes().split(b"\n")
    numbered = [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    records, seen, duplicates, truncated_line = [], set(), 0, None
    for number, line in numbered:
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            if number == numbered[-1][0]:
                warnings.warn(
                    f"{path}, line {number}: skipped a truncated last line ({err}); "
                    "the run that wrote it was probably interrupted",
                    stacklevel=3,
                )
                truncated_line = number
                break
            raise ValueError(
                f"{path}, line {number}: not valid JSON ({err}); the file is damaged, "
                "delete that line or re-run scoring"
            ) from err
        if not isinstance(record, dict) or "id" not in record:
            raise ValueError(f"{path}, line {number}: expected a JSON object with an 'id' key")
        if record["id"] in seen:
            duplicates += 1
            continue
        seen.add(record["id"])
        records.append(record)
    if duplicates:
        warnings.warn(
            f"{path}: {duplicates} lines repeat an id already seen; kept the first of each",
            stacklevel=3,
        )
    skipped = {"path": str(path), "duplicates": duplicates, "truncated_line": truncated_line}
    return records, skipped


def compute_metrics(records: list[dict], n_boot: int = 1000, seed: int = 0) -> dict:
    """Every metric the course reports for one predictions file, JSON-ready.

    Rows with an `error` (the video could not be read) are listed in `failed_rows` and left out
    of the metrics; rows with an unknown `pc` are counted in `n_unlabeled` and left out too.
    """
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0 (0 turns bootstrap intervals off), got {n_boot}")
    failed = [record for record in records if record.get("error")]
    rows = [r for r in records if not r.get("error") and r.get("pc") is not None]
    for row in rows:
        _check_row(row)
    truth = np.array([row["pc"] for row in rows], dtype=float)
    pred = np.array([np.nan if row["pred"] is None else row["pred"] for row in rows], dtype=float)
    parsed = ~np.isnan(pred)
    rng = np.random.default_rng(seed)
    notes: dict[str, str] = {}
    metrics = {
        "n_rows": len(records),
        "n": len(rows),
        "n_parsed": int(parsed.sum()),
        "n_unlabeled": len(records) - len(failed) - len(rows),
        "n_failed": len(failed),
        **_score_metrics(truth, pred, notes, ""),
        "spearman": _correlation(
            rankdata(truth[parsed]), rankdata(pred[parsed]), "spearman", notes
        ),
        "within1": _mean(np.abs(pred - truth) <= 1, "within1", notes),
        "parse_failure_rate": _mean(~parsed, "parse_failure_rate", notes),
    }
    metrics["accuracy_ci"] = _accuracy_ci(truth == pred, n_boot, rng, notes)
    metrics["pearson_ci"] = _pearson_ci(truth[parsed], pred[parsed], n_boot, rng, notes, "")
    metrics["confusion"] = _confusion(truth[parsed], pred[parsed])
    metrics["prediction_histogram"] = {
        **{str(score): int((pred == score).sum()) for score in SCORES},
        "none": int((~parsed).sum()),
    }
    metrics["expected"] = _expected_metrics(rows, n_boot, rng, notes)
    metrics["slices"] = _slices(rows, truth, pred, notes)
    metrics["failed_rows"] = [
        {"id": r["id"], "video": r.get("video"), "error": r["error"]} for r in failed
    ]
    if len(rows) == 0 and len(records) > len(failed):
        notes["labels"] = "no row has a label (pc): give them with `evaluate --labels`"
    metrics["notes"] = notes
    return metrics


def majority_baseline(train_counts: Mapping[Any, int], rows: Sequence[dict]) -> dict:
    """Metrics of always answering the most frequent training label on `rows` (each with `id`
    and `pc`), under `label`: the accuracy bar a scorer must clear. Its r is undefined, since a
    constant ranks nothing. `train_counts` maps label to count (keys int or, from JSON, str)."""
    label = int(max(train_counts, key=train_counts.get))
    constant = [{"id": row["id"], "pc": row["pc"], "pred": label} for row in rows]
    return {"label": label, **compute_metrics(constant, n_boot=0)}


def _check_row(row: dict) -> None:
    """Refuse scores that are not 1..5 integers: they would skew every metric silently."""
    expected = row.get("expected")
    if expected is not None and (
        isinstance(expected, bool) or not isinstance(expected, (int, float))
    ):
        raise ValueError(
            f"prediction {row.get('id')!r}: 'expected' must be a number or null, got {expected!r}"
        )
    if "pred" not in row:
        raise ValueError(
            f"prediction {row.get('id')!r}: no 'pred' key (null marks a parse failure)"
        )
    for key, allow_none in (("pc", False), ("pred", True)):
        value = row[key]
        if value is None and allow_none:
            continue
        if isinstance(value, bool) or value not in SCORES:
            raise ValueError(
                f"prediction {row.get('id')!r}: {key!r} must be an integer 1..5"
                f"{' or null' if allow_none else ''}, got {value!r}"
            )


def _score_metrics(truth: np.ndarray, pred: np.ndarray, notes: dict, prefix: str) -> dict:
    """Accuracy over all rows (NaN predictions count as wrong), Pearson and MAE over parsed."""
    parsed = ~np.isnan(pred)
    return {
        "accuracy": _mean(truth == pred, f"{prefix}accuracy", notes),
        "pearson": _correlation(truth[parsed], pred[parsed], f"{prefix}pearson", notes),
        "mae": _mean(np.abs(truth[parsed] - pred[parsed]), f"{prefix}mae", notes),
    }


def _mean(values: np.ndarray, key: str, notes: dict) -> float | None:
    if len(values) == 0:
        notes[key] = "no rows to average over"
        return None
    return float(np.mean(values))


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson's r, or None when either side is constant (the formula divides by zero)."""
    x, y = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / denominator if denominator > 0 else None


def _correlation(truth: np.ndarray, pred: np.ndarray, key: str, notes: dict) -> float | None:
    """Pearson's r of two arrays (Spearman when given ranks), None with a reason if undefined."""
    if len(truth) < MIN_CORRELATION_ROWS:
        notes[key] = f"only {len(truth)} parsed rows; need at least {MIN_CORRELATION_ROWS}"
        return None
    value = _pearson(truth, pred)
    if value is None:
        constant = "human scores" if np.ptp(truth) == 0 else "predictions"
        notes[key] = f"{constant} are constant, so the correlation is undefined"
    return value


def _accuracy_ci(
    correct: np.ndarray, n_boot: int, rng: np.random.Generator, notes: dict
) -> list[float] | None:
    """95% percentile bootstrap of accuracy.

    The mean of n rows drawn with replacement from a 0/1 vector is Binomial(n, accuracy) / n,
    so the resamples are drawn from that directly instead of materialising n_boot x n indices.
    """
    if n_boot == 0 or len(correct) == 0:
        notes["accuracy_ci"] = "bootstrap off (n_boot=0)" if n_boot == 0 else "no rows"
        return None
    n = len(correct)
    samples = rng.binomial(n, correct.mean(), size=n_boot) / n
    return [float(bound) for bound in np.percentile(samples, [2.5, 97.5])]


def _pearson_ci(
    truth: np.ndarray,
    pred: np.ndarray,
    n_boot: int,
    rng: np.random.Generator,
    notes: dict,
    prefix: str,
) -> list[float] | None:
    """95% percentile bootstrap of Pearson's r; resamples where r is undefined are left out."""
    key = f"{prefix}pearson_ci"
    if n_boot == 0:
        notes[key] = "bootstrap off (n_boot=0)"
        return None
    if len(truth) < MIN_CORRELATION_ROWS or _pearson(truth, pred) is None:
        notes[key] = "Pearson's r is undefined on these rows"
        return None
    samples = []
    for _ in range(n_boot):
        index = rng.integers(0, len(truth), size=len(truth))
        value = _pearson(truth[index], pred[index])
        if value is not None:
            samples.append(value)
    if not samples:
        notes[key] = "Pearson's r is undefined on every resample"
        return None
    return [float(bound) for bound in np.percentile(samples, [2.5, 97.5])]


def _confusion(truth: np.ndarray, pred: np.ndarray) -> list[list[int]]:
    """Counts with rows = human score 1..5 and columns = predicted score 1..5."""
    matrix = np.zeros((len(SCORES), len(SCORES)), dtype=int)
    np.add.at(matrix, (truth.astype(int) - SCORES[0], pred.astype(int) - SCORES[0]), 1)
    return matrix.tolist()


def _expected_metrics(
    rows: list[dict], n_boot: int, rng: np.random.Generator, notes: dict
) -> dict | None:
    """Correlation of the probability-weighted expected score, where the scorer wrote one."""
    pairs = [(row["pc"], row.get("expected")) for row in rows if row.get("expected") is not None]
    finite = [(pc, value) for pc, value in pairs if math.isfinite(value)]
    if len(finite) < len(pairs):
        notes["expected"] = (
            f"{len(pairs) - len(finite)} rows with a non-finite expected score left out"
        )
    if not finite:
        return None
    truth, expected = np.array(finite, dtype=float).T
    return {
        "n": len(finite),
        "pearson": _correlation(truth, expected, "expected.pearson", notes),
        "spearman": _correlation(rankdata(truth), rankdata(expected), "expected.spearman", notes),
        "mae": float(np.mean(np.abs(truth - expected))),
        "pearson_ci": _pearson_ci(truth, expected, n_boot, rng, notes, "expected."),
    }


def _slices(rows: list[dict], truth: np.ndarray, pred: np.ndarray, notes: dict) -> dict:
    """{key: {value: {n, accuracy, pearson, mae}}} for each slice key the rows carry."""
    slices = {}
    for key in SLICE_KEYS:
        values = np.array([str(row[key]) if row.get(key) is not None else "" for row in rows])
        present = sorted(set(values) - {""})
        if present:
            slices[key] = {
                value: {
                    "n": int((values == value).sum()),
                    **_score_metrics(
                        truth[values == value],
                        pred[values == value],
                        notes,
                        f"slices.{key}.{value}.",
                    ),
                }
                for value in present
            }
    return slices


def _violation_kind(text: str) -> str:
    """One spelling per violation: case, spacing and a final full stop do not matter."""
    return " ".join(text.lower().split()).rstrip(".")


def rationale_counts(response: str, annotated: list[str]) -> tuple[int, int, int]:
    """(right, listed, annotated): the distinct violation kinds the response's think block
    lists, how many of them the clip's annotated violations hold, and how many it annotates.
    A response without a think block lists nothing."""
    from .videophy2 import listed_violations

    reasoning = think_block(response)
    listed = {_violation_kind(v) for v in listed_violations(reasoning or "")}
    truth = {_violation_kind(v) for v in annotated}
    return len(listed & truth), len(listed), len(truth)


def rationale_metrics(records: list[dict], annotated: dict[str, list[str]]) -> dict:
    """Precision and recall of the violations the responses' think blocks list, against the
    clips' annotated ones (`annotated`, by id), pooled over every response to a clip in
    `annotated`. A think block may agree with its score and still name the wrong violations:
    this measures the reasoning itself. None where nothing was listed (precision) or annotated
    (recall)."""
    responses = [
        (response, annotated[record["id"]])
        for record in records
        if not record.get("error") and record["id"] in annotated
        for response in record["raw"]
    ]
    counts = [rationale_counts(*pair) for pair in responses] or [(0, 0, 0)]
    right, listed, truth = np.sum(counts, axis=0)
    return {
        "precision": float(right / listed) if listed else None,
        "recall": float(right / truth) if truth else None,
        "n_responses": len(responses),
        "n_without_think": sum(think_block(response) is None for response, _ in responses),
    }


SWEEP_KEYS = ("accuracy", "pearson", "spearman")
SELECTION_KEYS = ("pearson", "accuracy")  # what a choice ranks by, the first defined
TEST_KEYS = ("accuracy", "accuracy_ci", "pearson", "pearson_ci", "spearman")
BEST_ON_TEST_NOTE = (
    "chosen on the test split it is reported on, as the published recipe chooses its best "
    "step: an optimistic number, shown only beside the step selected on validation"
)


def sweep_table(test: dict[int, dict], val: dict[int, dict]) -> dict:
    """One row per checkpoint step, sorted, with its test metrics and its validation ones
    (`val_accuracy`, `val_pearson`: None for a step validation did not score, such as the
    starting model); the step `selected` on validation (`select_step`) and, beside it,
    `best_on_test`, the published recipe's way of choosing."""
    steps = sorted(
        (
            {"step": int(step)}
            | {key: metrics.get(key) for key in SWEEP_KEYS}
            | {f"val_{key}": val.get(step, {}).get(key) for key in ("accuracy", "pearson")}
            for step, metrics in test.items()
        ),
        key=lambda row: row["step"],
    )
    return {"steps": steps, "selected": select_step(val), "best_on_test": _best_step(test, "test")}


def select_step(val: dict[int, dict]) -> dict | None:
    """The checkpoint the course reports and later stages start from, chosen on validation
    metrics alone (the test split is only read to report): `{"step", "by"}`, or None when no
    trained step has a validation score.

    By validation Pearson r; when no step has one (r is undefined for a model that gives every
    clip one answer), by validation accuracy. Ties go to the earliest step (less training for
    the same score), and step 0, the starting model scored for reference, cannot be chosen.
    """
    return _best_step(val, "val")


def _best_step(per_step: dict[int, dict], split: str) -> dict | None:
    for key in SELECTION_KEYS:
        scored = {
            int(step): metrics[key]
            for step, metrics in per_step.items()
            if int(step) > 0 and metrics.get(key) is not None
        }
        if scored:
            return {"step": max(sorted(scored), key=scored.get), "by": f"{split}_{key}"}
    return None


def chosen_checkpoints(sweep_dir: str | os.PathLike) -> dict:
    """What notebooks 03 and 04 report of a sweep (`sweep_checkpoints`): `selected`, the step
    chosen on validation with its validation and test metrics, and `best_on_test` beside it,
    labelled as the published recipe's choice."""
    sweep_dir = Path(sweep_dir)
    table = json.loads((sweep_dir / "sweep.json").read_text())
    if table.get("selected") is None:
        raise ValueError(
            f"{sweep_dir / 'sweep.json'}: no trained checkpoint has a validation score"
        )
    on_test = table["best_on_test"]
    return {
        "selected": _checkpoint(sweep_dir, table["selected"]),
        "best_on_test": on_test and _checkpoint(sweep_dir, on_test) | {"note": BEST_ON_TEST_NOTE},
    }


def _checkpoint(sweep_dir: Path, choice: dict) -> dict:
    step = choice["step"]
    test = json.loads((sweep_dir / f"step_{step}" / "metrics.json").read_text())
    val = json.loads((sweep_dir / "val" / f"step_{step}" / "metrics.json").read_text())
    return {
        "step": step,
        "by": choice["by"],
        "val": {key: val[key] for key in ("accuracy", "pearson")},
        "test": {key: test[key] for key in TEST_KEYS},
    }


def evaluate(
    predictions_path: str | os.PathLike,
    out_path: str | os.PathLike,
    n_boot: int = 1000,
    seed: int = 0,
    labels: dict[str, int] | None = None,
) -> dict:
    """Read predictions, compute metrics, write them to `out_path` (JSON) and return them.

    `labels` (human `pc` by id) fills in the scores of clips scored without them; metrics cover
    the labelled rows only. The metrics also record what reading left out (`input`: duplicates,
    a truncated last line).
    The file is written to a temporary name first, so an interrupted run never leaves half a
    metrics.json behind.
    """
    records, skipped = _read_jsonl(Path(predictions_path))
    if labels is not None:
        if not any(r["id"] in labels for r in records):
            raise ValueError(
                f"{predictions_path}: no prediction's id is among the {len(labels)} labelled "
                "rows; ids come from an `id` column, else from `video_url` as written"
            )
        records = [r | {"pc": labels[r["id"]]} if r["id"] in labels else r for r in records]
    metrics = {"input": skipped, **compute_metrics(records, n_boot=n_boot, seed=seed)}
    unmatched = sorted(set(labels or {}) - {r["id"] for r in records})
    if unmatched:  # a label for a clip never scored, or an id written another way
        metrics["notes"]["labels_unmatched"] = (
            f"{len(unmatched)} labelled row(s) match no prediction, e.g. {unmatched[:3]}"
        )
        warnings.warn(f"{predictions_path}: {metrics['notes']['labels_unmatched']}", stacklevel=2)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    partial.write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(partial, out_path)
    return metrics
