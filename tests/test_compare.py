"""`compare`: runs side by side, built from run folders written the way the course writes them."""

import json
import statistics

import pytest
from fake_runs import shifted, write_run

from recipe_utils import cli
from recipe_utils.compare import compare_runs, comparison, find_runs, readable_runs
from recipe_utils.config import load_config, run_dir


@pytest.fixture
def seeds(tmp_path):
    return [
        write_run(tmp_path / f"seed={s}", {"seed": s}, [4] * 12, shifted(2 + 2 * s))
        for s in range(3)
    ]


def test_compare_writes_a_table_with_intervals_the_seed_spread_and_one_figure(seeds, tmp_path):
    page, numbers, png = compare_runs(seeds, tmp_path / "cmp")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = page.read_text()
    assert "| run | seed | system |" in text and "![curves](curves.png)" in text
    data = json.loads(numbers.read_text())
    assert [(row["run"], row["seed"]) for row in data["runs"]][::2] == [
        ("seed=0", 0),
        ("seed=1", 1),
        ("seed=2", 2),
    ]
    sft = [json.loads((run / "sft/sweep/step_20/metrics.json").read_text()) for run in seeds]
    row = next(row for row in data["runs"] if row["run"] == "seed=1" and row["step"] == 20)
    assert row["accuracy_ci"] == sft[1]["accuracy_ci"]
    assert f"{sft[1]['accuracy']:.3f} [{sft[1]['accuracy_ci'][0]:.3f}" in text
    (spread,) = [r for r in data["spread"] if r["system"] == "SFT selected"]
    accuracies = [m["accuracy"] for m in sft]
    assert spread["seeds"] == 3 and spread["runs"] == "all runs"
    assert spread["accuracy"]["mean"] == pytest.approx(statistics.mean(accuracies))
    assert spread["accuracy"]["sd"] == pytest.approx(statistics.stdev(accuracies))
    assert (spread["accuracy"]["min"], spread["accuracy"]["max"]) == (
        min(accuracies),
        max(accuracies),
    )


def test_the_figure_has_every_run_curves_on_one_panel_per_metric(seeds):
    _, _, fig = comparison(seeds)
    assert [ax.get_ylabel() for ax in fig.axes] == ["accuracy (exact match)", "Pearson r"]
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert [label for label in labels if label.endswith("SFT")] == [
        "seed=0 SFT",
        "seed=1 SFT",
        "seed=2 SFT",
    ]
    assert sum("zero-shot" in label for label in labels) == 3


def test_seed_spread_is_taken_over_runs_that_differ_only_in_seed(tmp_path):
    runs = [
        write_run(tmp_path / name, overrides, shifted(k))
        for name, overrides, k in (
            ("a", {"seed": 0, "grpo.kl_beta": 0.02}, 1),
            ("b", {"seed": 1, "grpo.kl_beta": 0.02}, 4),
            ("c", {"seed": 0, "grpo.kl_beta": 0.1}, 6),
        )
    ]
    text, data, _ = comparison(runs, ["accuracy", "within1"])
    assert "| run | grpo.kl_beta | seed | system | step | accuracy | within1 |" in text
    (spread,) = data["spread"]
    assert spread["runs"] == "grpo.kl_beta=0.02" and spread["seeds"] == 2
    assert spread["accuracy"]["n"] == 2


def test_a_run_repeated_with_the_same_seed_is_not_a_seed_spread(tmp_path):
    runs = [write_run(tmp_path / name, {"seed": 0}, shifted(1)) for name in ("a", "again")]
    _, data, _ = comparison(runs, ["accuracy"])
    assert data["spread"] == []
    runs.append(write_run(tmp_path / "b", {"seed": 1}, shifted(4)))
    (spread, *_) = comparison(runs, ["accuracy"])[1]["spread"]
    assert spread["seeds"] == 2 and spread["accuracy"]["n"] == 2


def test_runs_without_training_compare_on_zero_shot(tmp_path):
    runs = [write_run(tmp_path / f"r{s}", {"seed": s}, shifted(s)) for s in (0, 1)]
    text, data, fig = comparison(runs)
    assert [row["system"] for row in data["runs"]] == ["zero-shot", "zero-shot"]
    assert len(fig.axes[0].get_lines()) == 2  # each run's zero-shot level
    assert "## Spread across seeds" in text


def test_find_runs_lists_the_folders_with_results(seeds, tmp_path):
    (tmp_path / "empty").mkdir()
    run_dir(load_config("smoke", {"seed": 7}), tmp_path / "not_scored")
    assert find_runs(tmp_path) == seeds


def test_a_run_an_older_course_wrote_is_left_out_with_its_reason(seeds):
    old = seeds[1] / "03_sft" / "metrics.json"
    metrics = json.loads(old.read_text())
    del metrics["selected"]  # written before checkpoints were chosen on validation
    old.write_text(json.dumps(metrics))
    (seeds[2] / "zero_shot" / "metrics.json").write_text('{"accuracy": 0.')  # cut short
    readable, unreadable = readable_runs(seeds)
    assert readable == seeds[:1]
    assert (
        unreadable[0].startswith("seed=1: ") and "no step selected on validation" in unreadable[0]
    )
    assert unreadable[1].startswith("seed=2: ")


def test_compare_errors_name_the_folder_and_what_to_do(seeds, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['acc'\]"):
        comparison(seeds, ["acc"])
    run_dir(load_config("smoke"), tmp_path / "fresh")
    with pytest.raises(FileNotFoundError, match="zero_shot/metrics.json is missing"):
        comparison([tmp_path / "fresh"])
    code = cli.main(["compare", str(tmp_path / "nothing"), "--out", str(tmp_path / "cmp")])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "has no settings.yaml" in error
