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
