"""summary.md keeps this run's numbers apart from published ones and says what data they are on."""

import json

import pytest

from recipe_utils.config import NotRunYet
from recipe_utils.summary import write_summary

SYSTEMS = {
    name: {"n": 120, "accuracy": acc, "pearson": r, "accuracy_ci": [acc - 0.1, acc + 0.1]}
    for name, acc, r in (("zero_shot", 0.2, None), ("sft", 0.55, 0.77), ("grpo", 0.57, 0.78))
}


@pytest.mark.parametrize(
    "synthetic, says, never",
    [
        (True, ["labels are **synthetic**", "## This run (synthetic clips)"], "human `pc`"),
        (False, ["human `pc` scores", "## This run (VideoPhy-2 test split)"], "synthetic"),
    ],
)
def write_choices(run, on_test_r: float = 0.81) -> None:
    """03's and 04's metrics.json as far as the summary reads them: each stage's selected step
    and, beside it, its best step on test."""
    for folder in ("03_sft", "04_grpo"):
        (run / folder).mkdir()
        choices = {
            "selected": {"step": 40, "by": "val_pearson"},
            "best_on_test": {"step": 60, "test": {"accuracy": 0.6, "pearson": on_test_r}},
        }
        (run / folder / "metrics.json").write_text(json.dumps(choices))


@pytest.mark.parametrize(
    "synthetic, says, never",
    [
        (True, ["labels are **synthetic**", "## This run (synthetic clips)"], "human `pc`"),
        (False, ["human `pc` scores", "## This run (VideoPhy-2 test split)"], "synthetic"),
    ],
)
def test_summary_names_the_data_and_separates_published(tmp_path, synthetic, says, never):
    write_choices(tmp_path)
    _, md = write_summary(tmp_path, SYSTEMS, synthetic)
    text = md.read_text()
    for phrase in says:
        assert phrase in text
    assert never not in text
    ours, published = text.split("## Published")
    assert "| SFT selected (" in ours and "0.770" in ours
    assert "Cosmos-Reason1-7B zero-shot | 0.196 | 0.293 |" in published
    assert "SFT selected" not in published


def test_the_best_step_on_test_is_only_beside_the_selected_one_and_labelled(tmp_path):
    write_choices(tmp_path, on_test_r=0.812)
    json_path, md = write_summary(tmp_path, SYSTEMS, True)
    summary = json.loads(json_path.read_text())
    assert summary["sft"]["pearson"] == 0.77  # the selected step's, as collect() read it
    assert summary["sft"]["selected_by"] == "val_pearson"
    assert summary["sft"]["best_on_test"] == {"step": 60, "accuracy": 0.6, "pearson": 0.812}
    ours, on_test = md.read_text().split("## Published")[0].split("## Chosen on the evaluation")
    assert "0.812" not in ours
    assert "the published recipe's way; optimistic" in on_test
    assert "| SFT trained step best on test | 60 | 0.600 | 0.812 |" in on_test


def test_disagreements_put_the_widest_spread_first():
    from recipe_utils.summary import disagreements

    def recs(*preds):
        return [{"id": f"v{i}", "pc": 3, "pred": p} for i, p in enumerate(preds)]

    found = disagreements({"a": recs(1, 3, None), "b": recs(5, 3, 4), "c": recs(2, 4, 2)}, n=2)
    assert [row["id"] for row in found] == ["v0", "v2"]
    assert found[0] == {"id": "v0", "pc": 3, "spread": 4, "preds": {"a": 1, "b": 5, "c": 2}}


@pytest.mark.parametrize(
    "start, label", [("sft", "GRPO (from SFT step 40)"), ("base", "GRPO (from the base model)")]
)
def test_sweep_curves_keep_each_stage_on_its_own_steps(tmp_path, start, label):
    """GRPO's steps count from its own start, and its name says where it started, so a panel
    of its own shows its few steps; each stage comes with the step it selected."""
    from recipe_utils.summary import sweep_curves

    def write(path, data):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(json.dumps(data))

    write("sft/sweep/sweep.json", {"steps": [{"step": 0}, {"step": 40}]})
    write("grpo/sweep/sweep.json", {"steps": [{"step": 0}, {"step": 20}]})
    write("03_sft/metrics.json", {"selected": {"step": 40}})
    write("04_grpo/metrics.json", {"start": start, "sft": {"step": 40}, "selected": {"step": 20}})
    curves, chosen = sweep_curves(tmp_path)
    assert [p["step"] for p in curves["SFT"]] == [0, 40]
    assert [p["step"] for p in curves[label]] == [0, 20]
    assert chosen == {"SFT": 40, label: 20}


def test_a_run_written_before_validation_selection_says_what_to_rerun(tmp_path):
    from recipe_utils.summary import prediction_dirs

    (tmp_path / "03_sft").mkdir()
    (tmp_path / "03_sft/metrics.json").write_text(json.dumps({"best": {"step": 20}}))
    with pytest.raises(NotRunYet, match="03_sft/metrics.json names no step selected on valid"):
        prediction_dirs(tmp_path, finished_only=True)
