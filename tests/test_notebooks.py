"""The whole course, headless on the smoke profile, checked through the metrics it writes."""

import json

import nbformat
import pytest

from recipe_utils.config import load_config

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]


@pytest.fixture(scope="module")
def run(smoke_run):
    return smoke_run


def metrics(run, folder):
    return json.loads((run / folder / "metrics.json").read_text())


def test_every_notebook_ran_without_error_cells(run):
    for name in (
        "01_dataset_tour",
        "02_zero_shot_scoring",
        "03_sft",
        "04_grpo_reward_design",
        "05_results_analysis",
    ):
        notebook = nbformat.read(run / f"{name}.ipynb", as_version=4)
        errors = [
            o
            for c in notebook.cells
            if c.cell_type == "code"
            for o in c.outputs
            if o.output_type == "error"
        ]
        assert not errors, name


def test_dataset_tour_counts_rows_and_labels(run):
    m = metrics(run, "01_dataset_tour")
    sizes = load_config("smoke")["data"]["synthetic"]
    assert m["rows"] == {"train": sizes["n_train"], "eval": sizes["n_test"]}
    assert m["skipped"] == {"train": 0, "eval": 0}
    assert sum(m["label_histogram"]["train"].values()) == sizes["n_train"]
    assert m["majority_label"] == 4
    assert len(set(m["balanced_counts"].values())) == 1


def test_zero_shot_metrics_have_every_key(run):
    m = metrics(run, "02_zero_shot")
    for key in (
        "n",
        "accuracy",
        "pearson",
        "spearman",
        "mae",
        "within1",
        "parse_failure_rate",
        "confusion",
        "accuracy_ci",
        "pearson_ci",
        "expected",
        "slices",
    ):
        assert key in m
    assert m["n"] == load_config("smoke")["data"]["synthetic"]["n_test"]


def test_sft_meets_the_issue_bar(run):
    m = metrics(run, "03_sft")
    best, zero_shot = m["best"], m["zero_shot"]
    assert best["accuracy"] >= m["majority_baseline_accuracy"] + 0.15
    assert best["accuracy"] > zero_shot["accuracy"]
    assert best["pearson"] >= 0.5 and best["pearson_ci"][0] > 0  # correlated, beyond noise
    assert m["train_loss_last"] < m["train_loss_first"]
    assert [s["step"] for s in m["steps"]][0] == 0


def test_grpo_keeps_the_sft_correlation(run):
    m = metrics(run, "04_grpo")
    low, _ = m["sft"]["pearson_ci"]
    assert m["best"]["step"] > 0  # a checkpoint GRPO trained, not the SFT start
    assert m["best"]["pearson"] >= low  # within the SFT level's bootstrap interval or above
    assert (
        sum(m["prediction_histogram"].values())
        == load_config("smoke")["data"]["synthetic"]["n_test"]
    )


def test_grpo_raises_the_reward(run):
    m = metrics(run, "04_grpo")
    assert m["reward_last"] > m["reward_first"]


def test_summary_equals_the_metrics_the_notebooks_wrote(run):
    summary = json.loads((run / "summary.json").read_text())
    zero_shot = json.loads((run / "zero_shot" / "metrics.json").read_text())
    for key in ("accuracy", "pearson", "spearman"):
        assert summary["zero_shot"][key] == zero_shot[key]
    for kind, notebook in (("sft", "03_sft"), ("grpo", "04_grpo")):
        step = metrics(run, notebook)["best"]["step"]
        assert summary[kind]["step"] == step
        swept = json.loads((run / kind / "sweep" / f"step_{step}" / "metrics.json").read_text())
        for key in ("accuracy", "pearson", "spearman"):
            assert summary[kind][key] == swept[key]
    assert (run / "summary.md").read_text().startswith("# Physical plausibility")


def test_figures_are_saved(run):
    figures = sorted(p.name for p in run.glob("0*/*.png"))
    assert len(figures) >= 20
