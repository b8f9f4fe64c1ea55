"""The whole course, headless on the smoke profile, checked through the metrics it writes and
through what a learner reads in the executed notebooks."""

import json
import re

import nbformat
import pytest
from browser import broken_images, chromium_page, export_html, open_offline, video_plays

from recipe_utils.config import load_config

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]


@pytest.fixture(scope="module")
def run(smoke_run):
    return smoke_run


# executed notebook -> the folder its metrics.json is written to
FOLDERS = {
    "01_dataset_tour": "01_dataset_tour",
    "02_zero_shot_scoring": "02_zero_shot",
    "03_sft": "03_sft",
    "04_grpo_reward_design": "04_grpo",
    "05_results_analysis": "05_results",
}


def metrics(run, folder):
    return json.loads((run / folder / "metrics.json").read_text())


def executed(run, name):
    return nbformat.read(run / f"{name}.ipynb", as_version=4)


def outputs(notebook):
    return [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]


def output_text(output) -> str:
    """Everything a reader sees of one output, as text."""
    if output.output_type == "stream":
        return output.text
    if output.output_type == "error":
        return "\n".join(output.traceback)
    return "\n".join(str(value) for value in output.get("data", {}).values())


def quotable(value) -> list[str]:
    """How the notebook would write the numbers in a metrics.json: floats to 3 decimals, and
    integers large enough not to match by chance."""
    if isinstance(value, dict):
        return [text for item in value.values() for text in quotable(item)]
    if isinstance(value, list):
        return [text for item in value for text in quotable(item)]
    if isinstance(value, float):
        return [f"{value:.3f}"]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10:
        return [str(value)]
    return []


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
        "majority_baseline_accuracy",
    ):
        assert key in m
    assert m["n"] == load_config("smoke")["data"]["synthetic"]["n_test"]
    # the same bar notebook 01 set: the train split's majority label on the same clips
    assert (
        m["majority_baseline_accuracy"]
        == metrics(run, "01_dataset_tour")["majority_baseline_accuracy"]
    )


@pytest.mark.parametrize("kind, folder", [("sft", "03_sft"), ("grpo", "04_grpo")])
def test_the_reported_step_is_selected_on_validation(run, kind, folder):
    m = metrics(run, folder)
    selected, on_test = m["selected"], m["best_on_test"]
    assert selected["step"] > 0 and selected["by"] == "val_pearson"
    assert set(selected["val"]) >= {"accuracy", "pearson"}
    assert set(selected["test"]) >= {"accuracy", "pearson", "pearson_ci"}
    trained = [s for s in m["steps"] if s["step"] > 0 and s["val_pearson"] is not None]
    assert selected["val"]["pearson"] == max(s["val_pearson"] for s in trained)
    swept = json.loads((run / kind / f"sweep/step_{selected['step']}/metrics.json").read_text())
    assert selected["test"]["pearson"] == swept["pearson"]  # its test score, as scored
    assert on_test["step"] > 0 and on_test["by"] == "test_pearson"
    tested = [s["pearson"] for s in m["steps"] if s["step"] > 0 and s["pearson"] is not None]
    assert on_test["test"]["pearson"] == max(tested)
    assert "published recipe" in on_test["note"]


def test_zero_shot_answers_in_format_and_correlates_weakly(run):
    """The stand-in behaves as the published zero-shot model does: in format, r 0.1..0.5."""
    m = metrics(run, "02_zero_shot")
    assert m["parse_failure_rate"] <= 0.10
    assert 0.1 <= m["pearson"] <= 0.5
    text = "\n".join(output_text(o) for o in outputs(executed(run, "02_zero_shot_scoring")))
    assert "never seen: any clip of the benchmark's train or test split" in text


def test_sft_meets_the_issue_bar(run):
    m = metrics(run, "03_sft")
    best, zero_shot = m["selected"]["test"], m["zero_shot"]
    assert best["accuracy"] >= m["majority_baseline_accuracy"] + 0.15
    assert best["accuracy"] > zero_shot["accuracy"]
    assert best["pearson"] >= 0.5 and best["pearson_ci"][0] > 0  # correlated, beyond noise
    assert m["train_loss_last"] < m["train_loss_first"]
    assert [s["step"] for s in m["steps"]][0] == 0
    rationale = m["rationale"]  # the selected checkpoint's think blocks against the violations
    assert rationale["step"] == m["selected"]["step"]
    assert all(0 <= rationale[k] <= 1 for k in ("precision", "recall"))


def test_grpo_keeps_the_sft_correlation(run):
    m = metrics(run, "04_grpo")
    low, _ = m["sft"]["pearson_ci"]
    assert m["selected"]["step"] > 0  # a checkpoint GRPO trained, not the SFT start
    assert m["selected"]["test"]["pearson"] >= low  # within SFT's interval or above
    assert (
        sum(m["prediction_histogram"].values())
        == load_config("smoke")["data"]["synthetic"]["n_test"]
    )


def test_grpo_raises_the_reward(run):
    m = metrics(run, "04_grpo")
    assert m["reward_last"] > m["reward_first"]


def test_grpo_starts_below_the_ceiling_and_learns(run):
    m = metrics(run, "04_grpo")
    assert m["accuracy_reward_first"] <= 0.75
    assert m["accuracy_reward_last"] > m["accuracy_reward_first"] + 0.05


def test_grpo_clips_with_several_updates_per_batch(run):
    m = metrics(run, "04_grpo")
    assert m["mu_iterations"] == load_config("smoke")["grpo"]["mu_iterations"] > 1
    assert 0 < m["clipped_share"] < 1 and 0 <= m["zero_spread_share"] < 1


def test_balance_experiment_scores_two_arms_alike(run):
    experiment = metrics(run, "04_grpo")["balance_experiment"]
    assert experiment["start"] == load_config("smoke")["grpo"]["start"] and experiment["steps"] > 0
    n_test = load_config("smoke")["data"]["synthetic"]["n_test"]
    for arm in ("balanced", "unbalanced"):
        assert sum(experiment[arm]["eval_histogram"].values()) == n_test
        assert 0 <= experiment[arm]["majority_share"] <= 1


def test_summary_equals_the_metrics_the_notebooks_wrote(run):
    summary = json.loads((run / "summary.json").read_text())
    zero_shot = json.loads((run / "zero_shot" / "metrics.json").read_text())
    for key in ("accuracy", "pearson", "spearman"):
        assert summary["zero_shot"][key] == zero_shot[key]
    for kind, notebook in (("sft", "03_sft"), ("grpo", "04_grpo")):
        step = metrics(run, notebook)["selected"]["step"]
        assert summary[kind]["step"] == step
        swept = json.loads((run / kind / "sweep" / f"step_{step}" / "metrics.json").read_text())
        for key in ("accuracy", "pearson", "spearman"):
            assert summary[kind][key] == swept[key]
    assert (run / "summary.md").read_text().startswith("# Physical plausibility")


def test_figures_are_saved(run):
    figures = sorted(p.name for p in run.glob("0*/*.png"))
    assert len(figures) >= 20


@pytest.mark.parametrize("name", FOLDERS)
def test_outputs_carry_no_warning_stderr_or_stray_echo(run, name):
    for output in outputs(executed(run, name)):
        text = output_text(output)
        assert not (output.output_type == "stream" and output.name == "stderr"), (name, text[:500])
        assert not re.search(r"\w*Warning\b", text), (name, text[:500])
        assert "PosixPath(" not in text, (name, text[:200])
        assert "application/vnd.jupyter.widget-view+json" not in output.get("data", {}), name


@pytest.mark.parametrize("name, folder", FOLDERS.items())
def test_last_output_is_what_this_run_showed(run, name, folder):
    notebook = executed(run, name)
    last_cell = notebook.cells[-1]
    assert last_cell.cell_type == "code" and "what_this_run_showed" in last_cell.source
    shown = last_cell.outputs[-1]["data"]["text/markdown"]
    assert shown.startswith("## What this run showed")
    quoted = {
        text
        for text in quotable(metrics(run, folder))
        if re.search(rf"(?<![\d.]){re.escape(text)}(?![\d])", shown)
    }
    assert len(quoted) >= 2, (name, shown)


def test_trained_stages_put_their_numbers_against_the_committed_seed_spread(run):
    """bench/results/seeds.json holds three courses of the smoke profile that differ only in the
    seed: the closing findings of every notebook that reports a system cite that spread."""
    for name in ("02_zero_shot_scoring", "03_sft", "04_grpo_reward_design", "05_results_analysis"):
        shown = executed(run, name).cells[-1].outputs[-1]["data"]["text/markdown"]
        assert "Seed to seed: the same settings run with seeds 0, 1, 2" in shown, name


def test_dataset_tour_holds_a_clip_that_plays_without_a_kernel(run):
    html = [
        o["data"]["text/html"]
        for o in outputs(executed(run, "01_dataset_tour"))
        if "text/html" in o.get("data", {})
    ]
    assert any('<video src="data:video/mp4;base64,' in h for h in html)


def test_summary_says_the_labels_are_synthetic(run):
    summary = (run / "summary.md").read_text()
    assert "The labels are **synthetic**" in summary
    assert "## This run (synthetic clips)" in summary


@pytest.mark.browser
def test_exported_notebooks_show_figures_and_play_clips(run, tmp_path):
    with chromium_page() as page:
        for name in FOLDERS:
            open_offline(page, export_html(executed(run, name), tmp_path / f"{name}.html"))
            assert page.locator("img").count() > 0, name
            assert not broken_images(page), name
            if page.locator("video").count():
                assert video_plays(page), f"{name}: the embedded clip does not play"
        assert page.locator("video").count() > 0  # 05 shows where the models disagree


def test_links_in_executed_notebooks_open_from_where_they_are_saved(run):
    """Clip and file links are relative: they must resolve beside the executed copy."""
    links = [
        (name, href)
        for name in FOLDERS
        for output in outputs(executed(run, name))
        for href in re.findall(r'href="([^"#]+)"', output_text(output))
        if "://" not in href and not href.startswith("data:")
    ]
    assert links  # the galleries and 05's summary links
    assert [link for link in links if not (run / link[1]).exists()] == []
