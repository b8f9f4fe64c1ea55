"""Metrics of a predictions file, checked against hand-computed values and scipy."""

import json

import numpy as np
import pytest
from scipy import stats

from recipe_utils.metrics import (
    PUBLISHED,
    PUBLISHED_SFT_STEPS,
    compute_metrics,
    evaluate,
    majority_baseline,
    paired_by_id,
    read_predictions,
    select_step,
    sweep_table,
)


def record(id_, pc, pred, **extra):
    return {"id": id_, "video": f"/videos/{id_}.mp4", "pc": pc, "pred": pred, "raw": [], **extra}


@pytest.fixture
def records():
    return [
        record("a", 1, 1, model_name="A", is_hard=0, expected=1.2),
        record("b", 2, 3, model_name="A", is_hard=0, expected=2.9),
        record("c", 3, 3, model_name="A", is_hard=1, expected=3.1),
        record("d", 4, 5, model_name="B", is_hard=1, expected=4.6),
        record("e", 5, None, model_name="B", is_hard=1, expected=None),
        record("f", 4, 4, model_name="B", is_hard=0, expected=3.8),
        record("unlabeled", None, 4, model_name="B"),
        record("broken", 3, None, model_name="B", error="VideoError: empty file"),
    ]


def json_safe(metrics):
    return json.loads(json.dumps(metrics, allow_nan=False))


def test_hand_computed_values(records):
    metrics = compute_metrics(records, n_boot=200)
    truth, pred = [1, 2, 3, 4, 4], [1, 3, 3, 5, 4]  # the parsed, labeled rows
    assert metrics["n_rows"] == 8
    assert metrics["n"] == 6
    assert metrics["n_parsed"] == 5
    assert metrics["n_unlabeled"] == 1
    assert metrics["n_failed"] == 1
    assert metrics["accuracy"] == pytest.approx(3 / 6)  # the parse failure counts as wrong
    assert metrics["within1"] == pytest.approx(5 / 6)
    assert metrics["parse_failure_rate"] == pytest.approx(1 / 6)
    assert metrics["mae"] == pytest.approx(2 / 5)
    assert metrics["pearson"] == pytest.approx(stats.pearsonr(truth, pred).statistic)
    assert metrics["spearman"] == pytest.approx(stats.spearmanr(truth, pred).statistic)
    assert metrics["confusion"] == [
        [1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 0, 1, 1],
        [0, 0, 0, 0, 0],
    ]
    assert all(
        type(count) is int for row in metrics["confusion"] for count in row
    )  # JSON 1, not 1.0
    assert metrics["prediction_histogram"] == {"1": 1, "2": 0, "3": 2, "4": 1, "5": 1, "none": 1}
    assert metrics["failed_rows"] == [
        {"id": "broken", "video": "/videos/broken.mp4", "error": "VideoError: empty file"}
    ]
    assert json_safe(metrics) == metrics


def test_expected_score_correlations(records):
    expected = compute_metrics(records, n_boot=200)["expected"]
    truth, scores = [1, 2, 3, 4, 4], [1.2, 2.9, 3.1, 4.6, 3.8]
    assert expected["n"] == 5
    assert expected["pearson"] == pytest.approx(stats.pearsonr(truth, scores).statistic)
    assert expected["spearman"] == pytest.approx(stats.spearmanr(truth, scores).statistic)
    assert expected["mae"] == pytest.approx(np.mean(np.abs(np.subtract(truth, scores))))
    low, high = expected["pearson_ci"]
    assert low <= expected["pearson"] <= high


def test_expected_is_none_without_probabilities():
    rows = [record(str(i), pc, pc) for i, pc in enumerate([1, 2, 3, 4, 5])]
    assert compute_metrics(rows, n_boot=10)["expected"] is None


def test_non_finite_expected_is_left_out_with_a_note(records):
    records[0]["expected"] = float("nan")
    metrics = compute_metrics(records, n_boot=10)
    assert metrics["expected"]["n"] == 4
    assert "non-finite" in metrics["notes"]["expected"]


def test_slices(records):
    slices = compute_metrics(records, n_boot=10)["slices"]
    assert set(slices) == {"model_name", "is_hard"}  # no record carries `category`
    model_a, model_b = slices["model_name"]["A"], slices["model_name"]["B"]
    assert model_a["n"] == 3
    assert model_a["accuracy"] == pytest.approx(2 / 3)
    assert model_a["pearson"] == pytest.approx(stats.pearsonr([1, 2, 3], [1, 3, 3]).statistic)
    assert model_a["mae"] == pytest.approx(1 / 3)
    assert model_b == {"n": 3, "accuracy": pytest.approx(1 / 3), "pearson": None, "mae": 0.5}
    assert set(slices["is_hard"]) == {"0", "1"}
    assert slices["is_hard"]["1"]["n"] == 3


def test_constant_predictor_has_no_correlation_and_says_why():
    rows = [record(str(i), pc, 4) for i, pc in enumerate([1, 2, 3, 4, 5, 4, 4])]
    metrics = compute_metrics(rows, n_boot=50)
    assert metrics["accuracy"] == pytest.approx(3 / 7)
    assert metrics["pearson"] is None
    assert metrics["spearman"] is None
    assert metrics["pearson_ci"] is None
    assert "predictions are constant" in metrics["notes"]["pearson"]
    assert metrics["notes"]["pearson_ci"] == "Pearson's r is undefined on these rows"
    assert {"spearman", "pearson_ci"} <= set(metrics["notes"])
    json_safe(metrics)


def test_constant_truth_is_named_in_the_note():
    rows = [record(str(i), 3, pred) for i, pred in enumerate([1, 2, 3, 4, 5])]
    metrics = compute_metrics(rows, n_boot=10)
    assert metrics["pearson"] is None
    assert "human scores are constant" in metrics["notes"]["pearson"]


def test_too_few_parsed_rows_for_a_correlation():
    rows = [record("a", 1, 1), record("b", 5, 4), record("c", 3, None)]
    metrics = compute_metrics(rows, n_boot=10)
    assert metrics["pearson"] is None
    assert "only 2 parsed rows" in metrics["notes"]["pearson"]
    assert metrics["accuracy"] == pytest.approx(1 / 3)
    assert metrics["pearson_ci"] is None  # r of two points is +-1 whatever they are


def test_three_rows_are_enough_for_a_correlation_and_its_interval():
    rows = [record("a", 1, 1), record("b", 1, 1), record("c", 2, 2)]  # small spread, r = 1
    metrics = compute_metrics(rows, n_boot=50)
    assert metrics["pearson"] == pytest.approx(1.0)
    assert metrics["pearson_ci"] is not None


def test_resamples_without_a_correlation_are_left_out_of_the_interval():
    """Only resamples that draw the first row have any spread in the human scores."""
    rows = [record("0", 5, 5)] + [record(str(i), 1, 1 + i % 2) for i in range(1, 5)]
    low, high = compute_metrics(rows, n_boot=200)["pearson_ci"]
    assert 0 < low <= high <= 1


def test_all_parse_failures():
    rows = [record(str(i), pc, None) for i, pc in enumerate([1, 2, 3, 4])]
    metrics = compute_metrics(rows, n_boot=10)
    assert metrics["accuracy"] == 0.0
    assert metrics["parse_failure_rate"] == 1.0
    assert metrics["mae"] is None
    assert metrics["prediction_histogram"]["none"] == 4
    json_safe(metrics)


def test_no_rows():
    metrics = compute_metrics([], n_boot=10)
    assert metrics["n"] == 0
    assert metrics["accuracy"] is None
    assert metrics["accuracy_ci"] is None
    assert metrics["notes"]["accuracy"] == "no rows to average over"
    assert metrics["notes"]["accuracy_ci"] == "no rows"
    json_safe(metrics)


@pytest.fixture
def noisy_records():
    rng = np.random.default_rng(7)
    truth = rng.integers(1, 6, size=300)
    pred = np.clip(truth + rng.integers(-1, 2, size=300), 1, 5)
    return [
        record(str(i), int(t), int(p)) for i, (t, p) in enumerate(zip(truth, pred, strict=True))
    ]


def test_bootstrap_intervals_hold_the_estimate_and_repeat_for_a_seed(noisy_records):
    metrics = compute_metrics(noisy_records, n_boot=500, seed=3)
    for key, interval in (("accuracy", "accuracy_ci"), ("pearson", "pearson_ci")):
        low, high = metrics[interval]
        assert low < metrics[key] < high
        assert high - low < 0.2
    again = compute_metrics(noisy_records, n_boot=500, seed=3)
    assert again["accuracy_ci"] == metrics["accuracy_ci"]
    assert again["pearson_ci"] == metrics["pearson_ci"]
    other_seed = compute_metrics(noisy_records, n_boot=500, seed=4)
    assert other_seed["pearson_ci"] != metrics["pearson_ci"]


def test_accuracy_interval_is_the_middle_95_percent_of_its_known_distribution():
    """Resampled accuracy is Binomial(n, accuracy) / n: the interval must be its 2.5% and 97.5%
    quantiles (a 90% interval is 5 rows narrower on each side here)."""
    n, correct = 1000, 600
    rows = [record(str(i), 3, 3 if i < correct else 4) for i in range(n)]
    low, high = compute_metrics(rows, n_boot=20_000, seed=0)["accuracy_ci"]
    known = stats.binom(n, correct / n)
    assert low == pytest.approx(known.ppf(0.025) / n, abs=1.5 / n)
    assert high == pytest.approx(known.ppf(0.975) / n, abs=1.5 / n)


def pearson(x, y, axis=-1):
    x = x - x.mean(axis=axis, keepdims=True)
    y = y - y.mean(axis=axis, keepdims=True)
    return (x * y).sum(axis) / np.sqrt((x * x).sum(axis) * (y * y).sum(axis))


def test_pearson_interval_is_scipys_95_percent_percentile_bootstrap(noisy_records):
    metrics = compute_metrics(noisy_records, n_boot=4000, seed=0)
    pairs = np.array([(r["pc"], r["pred"]) for r in noisy_records], dtype=float).T
    scipy_boot = stats.bootstrap(
        tuple(pairs),
        pearson,
        paired=True,
        vectorized=True,
        n_resamples=4000,
        confidence_level=0.95,
        method="percentile",
        random_state=0,
    )
    tolerance = 0.15 * scipy_boot.standard_error  # a 90% interval is 0.3 standard errors narrower
    low, high = metrics["pearson_ci"]
    assert low == pytest.approx(scipy_boot.confidence_interval.low, abs=tolerance)
    assert high == pytest.approx(scipy_boot.confidence_interval.high, abs=tolerance)


def test_bootstrap_off(noisy_records):
    metrics = compute_metrics(noisy_records, n_boot=0)
    assert metrics["accuracy_ci"] is None
    assert metrics["pearson_ci"] is None
    assert metrics["notes"]["pearson_ci"] == metrics["notes"]["accuracy_ci"]
    assert metrics["notes"]["accuracy_ci"] == "bootstrap off (n_boot=0)"
    with pytest.raises(ValueError, match="n_boot"):
        compute_metrics(noisy_records, n_boot=-1)


@pytest.mark.parametrize(
    ("field", "value"), [("pc", 6), ("pc", "4"), ("pred", 0), ("pred", 4.5), ("pred", True)]
)
def test_invalid_scores_name_the_row(field, value):
    row = record("row_7", 3, 3)
    row[field] = value
    with pytest.raises(ValueError, match=f"'row_7'.*'{field}'"):
        compute_metrics([row])


def test_missing_pred_key_is_refused():
    row = record("row_7", 3, 3)
    del row["pred"]
    with pytest.raises(ValueError, match="'row_7'.*no 'pred' key"):
        compute_metrics([row])


def write_lines(path, lines, end="\n"):
    path.write_text("\n".join(lines) + end, encoding="utf-8")
    return path


def test_read_predictions_round_trip(tmp_path, records):
    path = write_lines(tmp_path / "predictions.jsonl", [json.dumps(r) for r in records] + [""])
    assert read_predictions(path) == records


def test_truncated_last_line_is_skipped_with_a_warning(tmp_path, records):
    lines = [json.dumps(r) for r in records[:3]] + [json.dumps(records[3])[:25]]
    path = write_lines(tmp_path / "predictions.jsonl", lines, end="")
    with pytest.warns(UserWarning, match=r"predictions\.jsonl, line 4: skipped a truncated"):
        assert read_predictions(path) == records[:3]


def test_truncated_multibyte_character_on_the_last_line(tmp_path, records):
    path = tmp_path / "predictions.jsonl"
    cut = json.dumps({"id": "z", "raw": ["é"]}, ensure_ascii=False).encode()[:-5]
    path.write_bytes((json.dumps(records[0]) + "\n").encode() + cut)
    with pytest.warns(UserWarning, match="line 2"):
        assert read_predictions(path) == records[:1]


def test_corrupt_line_in_the_middle_is_an_error(tmp_path, records):
    lines = [json.dumps(records[0]), json.dumps(records[1])[:25], json.dumps(records[2])]
    path = write_lines(tmp_path / "predictions.jsonl", lines)
    with pytest.raises(ValueError, match=r"predictions\.jsonl, line 2: not valid JSON"):
        read_predictions(path)


def test_line_without_an_id_is_an_error(tmp_path, records):
    for bad in ("[1, 2]", '{"pc": 3, "pred": 3}'):
        path = write_lines(tmp_path / "predictions.jsonl", [json.dumps(records[0]), bad])
        with pytest.raises(ValueError, match="line 2: expected a JSON object with an 'id'"):
            read_predictions(path)


def test_duplicate_ids_keep_the_first_and_are_counted(tmp_path, records):
    rescored = dict(records[0], pred=5)
    lines = [json.dumps(r) for r in records[:2]] + [json.dumps(rescored), json.dumps(rescored)]
    path = write_lines(tmp_path / "predictions.jsonl", lines)
    with pytest.warns(UserWarning, match="2 lines repeat an id"):
        assert read_predictions(path) == records[:2]


def test_evaluate_writes_metrics_json(tmp_path, records):
    predictions = tmp_path / "predictions.jsonl"
    lines = [json.dumps(r) for r in records] + [json.dumps(records[0]), '{"id": "x", "pc"']
    write_lines(predictions, lines, end="")
    out = tmp_path / "run" / "metrics.json"
    with pytest.warns(UserWarning):
        metrics = evaluate(predictions, out, n_boot=50)
    assert json.loads(out.read_text()) == metrics
    assert metrics["input"] == {
        "path": str(predictions),
        "duplicates": 1,
        "truncated_line": len(records) + 2,
    }
    assert metrics["accuracy"] == compute_metrics(records, n_boot=50)["accuracy"]
    assert not list(out.parent.glob("*.partial"))


VAL = {  # validation favours step 100 on r; the starting model (step 0) scores best of all
    0: {"accuracy": 0.6, "pearson": 0.9},
    100: {"accuracy": 0.30, "pearson": 0.40},
    200: {"accuracy": 0.35, "pearson": 0.39},
    300: {"accuracy": 0.35, "pearson": None},
}
TEST = {  # test favours step 200
    0: {"accuracy": 0.5, "pearson": 0.1, "spearman": 0.1},
    300: {"accuracy": 0.35, "pearson": None, "spearman": None},
    100: {"accuracy": 0.30, "pearson": 0.30, "spearman": 0.38},
    200: {"accuracy": 0.40, "pearson": 0.50, "spearman": 0.41},
}


def test_sweep_table_selects_on_validation_and_shows_the_best_on_test_beside_it():
    table = sweep_table(TEST, VAL)
    assert [row["step"] for row in table["steps"]] == [0, 100, 200, 300]
    assert table["steps"][1] == {
        "step": 100,
        "accuracy": 0.30,
        "pearson": 0.30,
        "spearman": 0.38,
        "val_accuracy": 0.30,
        "val_pearson": 0.40,
    }
    assert table["selected"] == {"step": 100, "by": "val_pearson"}
    assert table["best_on_test"] == {"step": 200, "by": "test_pearson"}
    json.dumps(table, allow_nan=False)
    unscored_start = sweep_table(TEST, {step: m for step, m in VAL.items() if step > 0})
    assert unscored_start["steps"][0]["val_pearson"] is None
    assert unscored_start["selected"] == table["selected"]


def test_selection_never_reads_the_test_metrics():
    favour_300 = {step: {"accuracy": 0.0, "pearson": float(step == 300)} for step in TEST}
    unreadable = {step: {} for step in TEST}
    for test in (TEST, favour_300, unreadable):
        assert (
            sweep_table(test, VAL)["selected"]
            == select_step(VAL)
            == {
                "step": 100,
                "by": "val_pearson",
            }
        )
    assert sweep_table(unreadable, VAL)["best_on_test"] is None


def test_selection_ties_go_to_the_earliest_trained_step():
    tied = {0: {"pearson": 0.7}, 30: {"pearson": 0.5}, 10: {"pearson": 0.5}, 20: {"pearson": 0.4}}
    assert select_step(tied)["step"] == 10
    first = select_step({0: {"accuracy": 0.6}, 1: {"accuracy": 0.5}, 2: {"accuracy": 0.4}})
    assert first == {"step": 1, "by": "val_accuracy"}  # the first checkpoint can win


def test_selection_without_any_validation_correlation_uses_accuracy():
    flat = {"20": {"accuracy": 0.2, "pearson": None}, "40": {"accuracy": 0.3, "pearson": None}}
    assert select_step(flat) == {"step": 40, "by": "val_accuracy"}
    assert select_step({0: {"accuracy": 0.9, "pearson": 0.9}}) is None  # nothing was trained


def test_published_numbers_are_the_recipe_facts():
    by_system = {row["system"]: row for row in PUBLISHED}
    assert by_system["Cosmos-Reason1-7B zero-shot"]["accuracy"] == 0.196
    assert by_system["Cosmos-Reason1-7B zero-shot"]["pearson"] == 0.293
    assert by_system["Cosmos-Reason1-7B + GRPO, step 900 (best)"]["pearson"] == 0.425
    assert by_system["Gemini-2.0-Flash-Exp"]["accuracy"] is None
    assert [row["step"] for row in PUBLISHED_SFT_STEPS] == [20, 40, 60, 80, 100, 120]
    assert all(row["source"].startswith("published") for row in PUBLISHED)
    json.dumps(PUBLISHED, allow_nan=False)


@pytest.mark.parametrize("counts", [{1: 2, 3: 5, 4: 1}, {"1": 2, "3": 5, "4": 1}])
def test_majority_baseline_answers_the_most_frequent_training_label(counts):
    """The bar notebooks 01-03 quote: always the training split's majority label (counts from
    rows or from a JSON report), scored on other rows; a constant has no r."""
    rows = [{"id": str(i), "pc": pc} for i, pc in enumerate([3, 3, 1, 5])]
    baseline = majority_baseline(counts, rows)
    assert baseline["label"] == 3
    assert baseline["accuracy"] == pytest.approx(0.5)
    assert baseline["pearson"] is None and "constant" in baseline["notes"]["pearson"]


def test_records_are_paired_by_clip_not_by_file_order():
    before = [{"id": "a", "pred": 1}, {"id": "b", "pred": 2}, {"id": "c", "pred": 3}]
    after = [{"id": "c", "pred": 5}, {"id": "a", "pred": 4}]  # resumed: another order, b failed
    assert paired_by_id(before, after) == [(before[0], after[1]), (before[2], after[0])]
