"""summary.md keeps this run's numbers apart from published ones and says what data they are on."""

import pytest

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
def test_summary_names_the_data_and_separates_published(tmp_path, synthetic, says, never):
    _, md = write_summary(tmp_path, SYSTEMS, synthetic)
    text = md.read_text()
    for phrase in says:
        assert phrase in text
    assert never not in text
    ours, published = text.split("## Published")
    assert "| SFT best (" in ours and "0.770" in ours
    assert "Cosmos-Reason1-7B zero-shot | 0.196 | 0.293 |" in published
    assert "SFT best" not in published


def test_disagreements_put_the_widest_spread_first():
    from recipe_utils.summary import disagreements

    def recs(*preds):
        return [{"id": f"v{i}", "pc": 3, "pred": p} for i, p in enumerate(preds)]

    found = disagreements({"a": recs(1, 3, None), "b": recs(5, 3, 4), "c": recs(2, 4, 2)}, n=2)
    assert [row["id"] for row in found] == ["v0", "v2"]
    assert found[0] == {"id": "v0", "pc": 3, "spread": 4, "preds": {"a": 1, "b": 5, "c": 2}}


@pytest.mark.parametrize(
    "start, label, steps",
    [("sft", "GRPO (from SFT step 40)", [40, 60]), ("base", "GRPO (from the base model)", [0, 20])],
)
def test_sweep_curves_count_grpo_steps_from_where_it_started(tmp_path, start, label, steps):
    import json

    from recipe_utils.summary import sweep_curves

    def write(path, data):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(json.dumps(data))

    write("sft/sweep/sweep.json", {"steps": [{"step": 0}, {"step": 40}]})
    write("grpo/sweep/sweep.json", {"steps": [{"step": 0}, {"step": 20}]})
    write("04_grpo/metrics.json", {"start": start, "sft": {"step": 40}})
    curves = sweep_curves(tmp_path)
    assert [p["step"] for p in curves["SFT"]] == [0, 40]
    assert [p["step"] for p in curves[label]] == steps
