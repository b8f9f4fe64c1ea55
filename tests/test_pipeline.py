"""The stages: what they make, where GRPO starts, and what the SFT sweep measures."""

import ast
import json
from pathlib import Path

import pytest

from recipe_utils import pipeline
from recipe_utils.cli import main
from recipe_utils.config import REPO_ROOT, load_config
from recipe_utils.videophy2 import answer_text, load_rows, rationale

SMALL = {"data.synthetic.n_train": 2, "data.synthetic.n_test": 6}


def fake_checkpoint(run: Path, kind: str, step: int) -> Path:
    path = run / kind / "checkpoints" / f"step_{step}"
    path.mkdir(parents=True)
    (path / "trainer_state.pt").touch()  # what train.checkpoints takes for a complete one
    return path


def test_config_imports_no_other_module_of_the_package():
    """Reading a profile makes nothing, so config needs no module that could import it back
    (it did: config -> tiny -> prompts -> config)."""
    tree = ast.parse((REPO_ROOT / "recipe_utils" / "config.py").read_text())
    names = [
        "." * node.level + (node.module or "")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    ]
    names += [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    assert [name for name in names if name.startswith(("recipe_utils", "."))] == []


def test_the_synthetic_benchmark_is_rendered_once_into_the_run(tmp_path):
    config = load_config("smoke", SMALL)
    source, split = pipeline.resolve_source(config, tmp_path, "train")
    assert split == "train" and len(load_rows(source, split)) == 2
    written = (Path(source) / "test.jsonl").stat().st_mtime_ns
    assert pipeline.resolve_source(config, tmp_path, "eval") == (source, "test")
    assert (Path(source) / "test.jsonl").stat().st_mtime_ns == written
    full = load_config("full")
    assert pipeline.resolve_source(full, tmp_path, "eval") == (
        "videophysics/videophy2_test",
        "test",
    )
    assert pipeline.resolve_model(full, tmp_path) == "nvidia/Cosmos-Reason1-7B"


def test_smoke_scores_and_fine_tunes_the_pretrained_stand_in(tmp_path, monkeypatch):
    made = []

    def fake_pretrain(base, out, settings, video, prompt_path, seed):
        made.append((Path(base).name, settings.steps, video, prompt_path.name))
        return out / "model"

    monkeypatch.setattr("recipe_utils.pretrain.pretrain", fake_pretrain)
    monkeypatch.setattr("recipe_utils.tiny.build_tiny_model", lambda out, seed: None)
    smoke = load_config("smoke")
    stand_in = str(tmp_path / "models" / "stand_in" / "model")
    assert pipeline.resolve_model(smoke, tmp_path) == stand_in
    assert pipeline.start_model("sft", smoke, tmp_path) == stand_in
    steps = smoke["model"]["pretrain"]["steps"]
    assert made[0] == ("tiny", steps, smoke["sft"]["video"], "video_reward.yaml")
    untrained = load_config("smoke", {"model.pretrain.steps": 0})
    assert pipeline.resolve_model(untrained, tmp_path) == str(tmp_path / "models" / "tiny")


def test_grpo_starts_where_the_profile_says(tmp_path):
    full = load_config("full")
    assert full["grpo"]["start"] == "base" and load_config("smoke")["grpo"]["start"] == "sft"
    assert pipeline.start_model("grpo", full, tmp_path) == "nvidia/Cosmos-Reason1-7B"
    fake_checkpoint(tmp_path, "sft", 10)
    last = fake_checkpoint(tmp_path, "sft", 20)  # no sweep yet: the last one is the best
    sft_first = load_config("full", {"grpo.start": "sft"})
    assert pipeline.start_model("grpo", sft_first, tmp_path) == last
    assert pipeline.start_model("sft", sft_first, tmp_path) == "nvidia/Cosmos-Reason1-7B"


def test_an_unknown_grpo_start_ends_the_command_in_one_line(tmp_path, capsys):
    args = ["train", "grpo", "--profile", "full", "--out", str(tmp_path)]
    assert main([*args, "--set", "grpo.start=best"]) == 2
    error = capsys.readouterr().err
    assert error == "error: grpo.start must be one of ['base', 'sft'], got 'best'\n"
    assert not (tmp_path / "data").exists()  # refused before any data was prepared


def write_predictions(folder: Path, records: list[dict]) -> None:
    folder.mkdir(parents=True)
    text = "".join(json.dumps(record) + "\n" for record in records)
    (folder / "predictions.jsonl").write_text(text)


def test_rationale_stage_scores_a_steps_think_blocks_against_the_eval_clips(tmp_path):
    config = load_config("smoke", SMALL)
    rows = load_rows(*pipeline.resolve_source(config, tmp_path, "eval")).rows
    records = [{"id": r["id"], "raw": [answer_text(r["pc"], rationale(r))]} for r in rows]
    forgetful = next(i for i, row in enumerate(rows) if row["human_violated_rules"])
    records[forgetful]["raw"] = [answer_text(rows[forgetful]["pc"])]  # no reasoning at all
    write_predictions(tmp_path / "sft/sweep/step_20", records)

    result = pipeline.rationale_stage("sft", config, tmp_path, 20)
    annotated = sum(len(row["human_violated_rules"]) for row in rows)
    missed = len(rows[forgetful]["human_violated_rules"])
    assert result["step"] == 20 and result["precision"] == 1.0
    assert result["recall"] == pytest.approx((annotated - missed) / annotated)
    assert result["n_without_think"] == 1
    saved = json.loads((tmp_path / "sft/sweep/step_20/rationale.json").read_text())
    assert saved == result


@pytest.mark.parametrize("with_rationale", [True, False])
def test_sft_sweep_measures_the_rationale_of_the_selected_checkpoint(
    tmp_path, monkeypatch, with_rationale
):
    config = load_config(
        "smoke", SMALL | {"model.name": "org/model", "sft.rationale": with_rationale}
    )
    fake_checkpoint(tmp_path, "sft", 10)
    fake_checkpoint(tmp_path, "sft", 20)
    rows = load_rows(*pipeline.resolve_source(config, tmp_path, "eval")).rows
    for step in (10, 20):  # step 10 forgets every reasoning, step 20 writes it all
        raw = [answer_text(row["pc"], rationale(row) if step == 20 else None) for row in rows]
        write_predictions(
            tmp_path / f"sft/sweep/step_{step}",
            [{"id": row["id"], "raw": [text]} for row, text in zip(rows, raw, strict=True)],
        )
    table = {"steps": [], "best_by_accuracy": None, "best_by_pearson": {"step": 20}}
    monkeypatch.setattr(pipeline, "sweep_checkpoints", lambda *args, **kwargs: dict(table))

    swept = pipeline.sweep_stage("sft", config, tmp_path)
    if with_rationale:
        assert swept["rationale"]["step"] == 20 and swept["rationale"]["recall"] == 1.0
    else:
        assert "rationale" not in swept
