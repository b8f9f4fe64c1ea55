"""The stages: what they make, where GRPO starts, and what the SFT sweep measures."""

import ast
import json
from pathlib import Path

import pytest

from recipe_utils import pipeline, scoring
from recipe_utils.cli import main
from recipe_utils.config import REPO_ROOT, load_config
from recipe_utils.metrics import chosen_checkpoints
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
    folder.mkdir(parents=True, exist_ok=True)
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
    table = {"steps": [], "selected": {"step": 20, "by": "val_pearson"}, "best_on_test": None}
    monkeypatch.setattr(pipeline, "sweep_checkpoints", lambda *args, **kwargs: dict(table))

    swept = pipeline.sweep_stage("sft", config, tmp_path)
    if with_rationale:
        assert swept["rationale"]["step"] == 20 and swept["rationale"]["recall"] == 1.0
    else:
        assert "rationale" not in swept


def test_a_sweep_selects_on_validation_what_later_stages_start_from(tmp_path, monkeypatch):
    """Step 10 answers the validation clips right and the test clips backwards, step 20 the
    other way round: the step selected, reported and started from is 10; 20 appears only as the
    best on test."""
    config = load_config(
        "smoke",
        {"data.synthetic.n_train": 40, "data.synthetic.n_test": 6, "data.val_fraction": 0.2}
        | {"model.name": "org/model"},
    )
    for step in (10, 20):
        fake_checkpoint(tmp_path, "sft", step)
    right_on = {
        "val": tmp_path / "sft/checkpoints/step_10",
        "test": tmp_path / "sft/checkpoints/step_20",
    }
    scored = {}

    def fake_score_split(model, source, split, out_dir, limit=None, **_):
        rows = load_rows(source, split, limit).rows
        scored[(split, Path(out_dir).name)] = [row["id"] for row in rows]
        right = Path(str(model)) == right_on[split]
        preds = [row["pc"] if right else 6 - row["pc"] for row in rows]
        records = [
            {"id": row["id"], "pc": row["pc"], "pred": pred, "raw": [answer_text(pred)]}
            for row, pred in zip(rows, preds, strict=True)
        ]
        write_predictions(Path(out_dir), records)
        return Path(out_dir) / "predictions.jsonl"

    monkeypatch.setattr(scoring, "score_split", fake_score_split)
    table = pipeline.sweep_stage("sft", config, tmp_path)

    val_ids = [row["id"] for row in load_rows(tmp_path / "data/splits", "val").rows]
    assert scored[("val", "step_10")] == val_ids and len(val_ids) == 8
    assert ("val", "step_0") not in scored  # the starting model cannot be selected
    assert table["selected"] == {"step": 10, "by": "val_pearson"}
    assert table["best_on_test"] == {"step": 20, "by": "test_pearson"}
    assert pipeline.best_checkpoint(tmp_path, "sft") == right_on["val"]
    grpo_start = pipeline.start_model("grpo", config, tmp_path)
    assert grpo_start == right_on["val"]
    chosen = chosen_checkpoints(tmp_path / "sft/sweep")
    assert chosen["selected"]["val"]["pearson"] == pytest.approx(1.0)
    assert chosen["selected"]["test"]["pearson"] == pytest.approx(-1.0)  # reported as it is
    assert (
        chosen["best_on_test"]["step"] == 20
        and "published recipe" in chosen["best_on_test"]["note"]
    )


@pytest.mark.parametrize("profile_prompts", ["smoke", "full"])
def test_a_sweeps_start_takes_the_answers_of_the_same_pass_made_earlier(
    tmp_path, monkeypatch, profile_prompts
):
    """Smoke: GRPO starts from SFT's selected checkpoint and asks SFT's question, so its step 0
    is SFT's sweep answers. Full: SFT starts from the model zero-shot scored and asks the
    benchmark's question, so its step 0 is the zero-shot answers. Neither is scored again."""
    prompts = {"sft.prompt": load_config("full")["sft"]["prompt"]}
    config = load_config(
        "smoke",
        {"data.synthetic.n_train": 40, "data.synthetic.n_test": 6, "data.val_fraction": 0.2}
        | {"model.name": "org/model"}
        | (prompts | {"sft.rationale": False} if profile_prompts == "full" else {}),
    )
    fake_checkpoint(tmp_path, "sft", 10)
    fake_checkpoint(tmp_path, "grpo", 5)
    scored = []

    def fake_score_split(model, source, split, out_dir, prompt_path, video_settings, **kwargs):
        out_dir, sampling = Path(out_dir), kwargs.get("sampling")
        out_dir.mkdir(parents=True, exist_ok=True)
        prompt = scoring.load_prompt(prompt_path)
        scoring.bind_output(out_dir, model, source, split, prompt, video_settings, sampling)
        if not (out_dir / "predictions.jsonl").exists():  # what resuming leaves to score
            scored.append(str(out_dir.relative_to(tmp_path)))
            rows = load_rows(source, split, kwargs.get("limit")).rows
            answers = [
                {"id": r["id"], "pc": r["pc"], "pred": r["pc"], "raw": [answer_text(r["pc"])]}
                for r in rows
            ]
            write_predictions(out_dir, answers)
        return out_dir / "predictions.jsonl"

    monkeypatch.setattr(scoring, "score_split", fake_score_split)
    monkeypatch.setattr(pipeline, "score_split", fake_score_split)
    pipeline.zero_shot_stage(config, tmp_path)
    pipeline.sweep_stage("sft", config, tmp_path)
    pipeline.sweep_stage("grpo", config, tmp_path)

    repeated = {"smoke": ("grpo/sweep/step_0", "sft/sweep/step_10"),
                "full": ("sft/sweep/step_0", "zero_shot")}[profile_prompts]  # fmt: skip
    assert repeated[0] not in scored and repeated[1] in scored
    answers = [(tmp_path / folder / "predictions.jsonl").read_text() for folder in repeated]
    assert answers[0] == answers[1]
    others = {"zero_shot", "sft/sweep/step_0", "sft/sweep/step_10", "grpo/sweep/step_0"}
    assert set(scored) >= others - {repeated[0]} | {"grpo/sweep/step_5"}


@pytest.fixture
def fake_grpo(tmp_path, monkeypatch):
    """train_stage and score_split stand-ins: each run records its settings and leaves a
    checkpoint and a prepare report; an unbalanced model answers 4 to every clip."""
    trained = {}

    def train_stage(kind, config, run, name=None):
        trained[name] = config["grpo"] | {"seed": config["seed"]}
        fake_checkpoint(run, name, config["grpo"]["steps"])
        counts = {"1": 1, "2": 2, "3": 3, "4": 9, "5": 3}
        report = {"label_counts_before": counts}
        (run / "data" / name).mkdir(parents=True)
        (run / "data" / name / "prepare_report.json").write_text(json.dumps(report))
        return run / name

    def score_split(model, out_dir, source, split, **kwargs):
        rows = load_rows(source, split).rows
        pred = (lambda row: 4) if "unbalanced" in str(model) else (lambda row: row["pc"])
        write_predictions(out_dir, [{"id": r["id"], "pc": r["pc"], "pred": pred(r)} for r in rows])
        return Path(out_dir) / "predictions.jsonl"

    monkeypatch.setattr(pipeline, "train_stage", train_stage)
    monkeypatch.setattr(pipeline, "score_split", score_split)
    monkeypatch.setattr(pipeline, "start_model", lambda kind, config, run: run / "sft_best")
    return trained


@pytest.mark.parametrize(
    "decay, main_balanced, reused",
    [("none", True, True), ("cosine", True, False), ("none", False, False)],
)
def test_balance_experiment_trains_both_arms_alike_and_scores_them(
    tmp_path, fake_grpo, decay, main_balanced, reused
):
    config = load_config(
        "smoke",
        SMALL
        | {"grpo.decay": decay, "grpo.balance_labels": main_balanced, "grpo.balance_steps": 20},
    )
    main_run = fake_checkpoint(tmp_path, "grpo", 20)
    result = pipeline.balance_experiment(config, tmp_path)

    assert {"balanced", "unbalanced", "start", "steps", "seed"} <= result.keys()
    assert (result["start"], result["steps"], result["seed"]) == ("sft", 20, config["seed"])
    unbalanced = fake_grpo["grpo_unbalanced"]
    assert unbalanced["balance_labels"] is False and unbalanced["steps"] == 20
    # the start scores where GRPO's sweep scores its step 0: the sweep finds its answers there
    assert (pipeline.sweep_folder(tmp_path, "grpo", 0) / "predictions.jsonl").exists()
    if reused:  # the main run's first 20 steps are the balanced arm: nothing retrained
        assert result["balanced"]["checkpoint"] == str(main_run)
        assert list(fake_grpo) == ["grpo_unbalanced"]
        assert (pipeline.sweep_folder(tmp_path, "grpo", 20) / "predictions.jsonl").exists()
        assert not (tmp_path / "balance" / "balanced").exists()  # nor scored twice
    else:  # a schedule that depends on the run's length, or unbalanced: a separate run
        balanced = fake_grpo["grpo_balanced"]
        assert balanced["balance_labels"] is True
        assert balanced | {"balance_labels": False} == unbalanced
        assert (tmp_path / "balance" / "balanced" / "predictions.jsonl").exists()
    assert result["majority_label"] == "4"
    assert result["unbalanced"]["majority_share"] == 1.0
    n = sum(result["eval_labels"].values())
    assert result["balanced"]["eval_histogram"] == result["eval_labels"] | {"none": 0}
    assert result["balanced"]["majority_share"] == result["eval_labels"]["4"] / n
    assert result["at_start"]["checkpoint"] == str(tmp_path / "sft_best")  # scored alike
    assert result["at_start"]["eval_histogram"] == result["balanced"]["eval_histogram"]
    assert (result["unbalanced"]["accuracy"], result["at_start"]["accuracy"]) == (
        result["eval_labels"]["4"] / n,
        1.0,
    )
