"""The closing "What this run showed" is computed from metrics: other numbers, other conclusions."""

import copy
import json

import pytest

from recipe_utils import takeaways
from recipe_utils.config import flat, load_config, run_settings
from recipe_utils.takeaways import (
    answer_changes,
    balance_findings,
    compare,
    sft_step_zero,
    slice_gap,
    slice_note,
    verdict,
    what_this_run_showed,
)

SMOKE, FULL = load_config("smoke"), load_config("full")


@pytest.fixture(autouse=True)
def no_seed_record(tmp_path, monkeypatch):
    """No seed-spread record unless a test writes one (`seed_record`): the repository's record
    changes as courses are rerun, and a test must not read it."""
    monkeypatch.setattr(takeaways, "SEED_RECORD", str(tmp_path / "no_record.json"))


def sft_metrics(pearson=0.766, ci=(0.70, 0.83)):
    return {
        "step": 1200,
        "accuracy": 0.55,
        "accuracy_ci": [0.46, 0.64],
        "pearson": pearson,
        "pearson_ci": list(ci),
        "spearman": 0.7,
    }


def chosen(metrics: dict, val_pearson: float = 0.75, on_test: dict | None = None) -> dict:
    """`selected` (a step's test metrics, chosen on validation) and `best_on_test`, as notebooks
    03 and 04 write them; the best step on test is the selected one unless `on_test` says."""
    step, test = metrics["step"], {k: v for k, v in metrics.items() if k != "step"}
    selected = {"step": step, "by": "val_pearson", "val": {"accuracy": 0.5, "pearson": val_pearson}}
    on_test = on_test or metrics
    best = {"step": on_test["step"], "by": "test_pearson", "test": on_test}
    return {"selected": selected | {"test": test}, "best_on_test": best}


def balance_experiment(balanced_fours: int, unbalanced_fours: int, start_fours: int = 25) -> dict:
    """Two arms and their start that answered 4 to so many of 120 eval clips (the rest 3), 30
    of which are 4."""
    fours = {"at_start": start_fours, "balanced": balanced_fours, "unbalanced": unbalanced_fours}
    arms = {
        name: {
            "eval_histogram": {"1": 0, "2": 0, "3": 120 - n, "4": n, "5": 0, "none": 0},
            "majority_share": n / 120,
            "accuracy": 0.25 + n / 1200,
            "accuracy_ci": [0.17 + n / 1200, 0.33 + n / 1200],
            "pearson": 0.5,
            "pearson_ci": [0.4 - n / 1200, 0.6 - n / 1200],
        }
        for name, n in fours.items()
    }
    labels = {"1": 20, "2": 25, "3": 30, "4": 30, "5": 15}
    return arms | {"start": "sft", "steps": 20, "majority_label": "4", "eval_labels": labels}


GRPO = {
    "reward_first": 0.41,
    "reward_last": 0.63,
    "sft": sft_metrics(),
    **chosen(
        {
            "step": 60,
            "accuracy": 0.57,
            "accuracy_ci": [0.48, 0.66],
            "pearson": 0.777,
            "pearson_ci": [0.71, 0.84],
            "spearman": 0.72,
        }
    ),
    "prediction_histogram": {"1": 20, "2": 25, "3": 30, "4": 25, "5": 20, "none": 0},
    "accuracy_reward_first": 0.62,
    "accuracy_reward_last": 0.81,
    "balance_experiment": balance_experiment(balanced_fours=25, unbalanced_fours=70),
}
WORSE_GRPO = copy.deepcopy(GRPO) | {"reward_last": 0.30, "accuracy_reward_last": 0.64}
WORSE_GRPO["selected"]["test"] |= {"pearson": 0.412, "pearson_ci": [0.25, 0.55], "accuracy": 0.31}


def write(tmp_path, folder, metrics):
    path = tmp_path / folder / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(metrics))
    return path


def text(tmp_path, folder, metrics, config=SMOKE):
    return repr(what_this_run_showed(write(tmp_path, folder, metrics), config))


@pytest.mark.parametrize(
    "value, ci, other, other_ci, expected",
    [
        (0.777, (0.71, 0.84), 0.766, (0.70, 0.83), "within noise"),
        (0.412, (0.25, 0.55), 0.766, (0.70, 0.83), "worse"),
        (0.80, (0.75, 0.85), 0.293, None, "better"),
        (0.30, (0.20, 0.40), 0.293, None, "within noise"),
    ],
)
def test_verdict_needs_intervals_apart(value, ci, other, other_ci, expected):
    assert verdict(value, ci, other, other_ci) == expected


def test_verdict_refuses_two_points():
    with pytest.raises(ValueError, match="interval"):
        verdict(0.5, None, 0.4, None)


def test_compare_quotes_both_values_and_intervals():
    line = compare("GRPO", 0.777, [0.71, 0.84], "SFT", 0.766, [0.70, 0.83])
    assert line == "GRPO 0.777 [0.710, 0.840] vs SFT 0.766 [0.700, 0.830]: **within noise**"
    assert "cannot compare" in compare("GRPO", None, None, "SFT", 0.766, [0.7, 0.8])


def test_grpo_within_noise_of_sft(tmp_path):
    shown = text(tmp_path, "04_grpo", GRPO)
    assert "rose from 0.410 to 0.630" in shown
    assert "GRPO step 60 0.777 [0.710, 0.840] vs SFT step 1200 0.766" in shown
    assert "within noise" in shown and "worse" not in shown


def test_grpo_says_what_the_policy_learned_and_what_balancing_did(tmp_path):
    shown = text(tmp_path, "04_grpo", GRPO)
    assert (
        "from 0.620 over the first 10% of steps to 0.810 over the last: the policy learned" in shown
    )
    assert "4 (the training rows' most frequent label) is 58% of the unbalanced run's" in shown
    assert "and 21% of the balanced run's, against 21% of the start's; 25% of the clips" in shown
    assert "Accuracy / Pearson r on the eval clips: unbalanced 0.308 / 0.500, balanced" in shown
    assert "drifted towards 4" in shown
    assert "The mean reward (of 2: accuracy plus format) rose from 0.410 to 0.630" in shown
    assert "Held out, accuracy: unbalanced 0.308 [0.228, 0.388] vs balanced 0.271" in shown
    assert "within noise; r: unbalanced 0.500 [0.342, 0.542] vs balanced 0.500" in shown


BALANCE_VERDICTS = (
    "drifted towards 4",
    "not more often than the start beyond noise",
    "no collapse",
    "answered 4 less often",
)


@pytest.mark.parametrize(
    "balanced, unbalanced, start, expected",
    [(25, 70, 25, 0), (10, 29, 20, 1), (30, 36, 30, 2), (70, 25, 25, 3)],
)
def test_balance_findings_count_a_difference_only_beyond_noise(
    balanced, unbalanced, start, expected
):
    shown = " ".join(balance_findings(balance_experiment(balanced, unbalanced, start)))
    assert [phrase in shown for phrase in BALANCE_VERDICTS] == [i == expected for i in range(4)]


def test_grpo_says_how_many_checkpoints_beat_their_start_on_test(tmp_path):
    """Step 0 is never selected, so only this line tells that no GRPO step beat its start."""
    sweep = [{"step": 0, "pearson": 0.685}, {"step": 20, "pearson": 0.594}]
    sweep += [{"step": 40, "pearson": 0.70}, {"step": 60, "pearson": None}]
    shown = text(tmp_path, "04_grpo", GRPO | {"steps": sweep})
    assert "On test, 1 of 2 trained checkpoints scored a higher r than their start (step 0: r" in (
        shown
    )
    assert "trained checkpoints" not in text(tmp_path / "none", "04_grpo", GRPO)  # no sweep


def test_grpo_worse_than_sft_says_so(tmp_path):
    shown = text(tmp_path, "04_grpo", WORSE_GRPO)
    assert "The mean reward (of 2: accuracy plus format) did not rise" in shown
    assert "0.640 over the last, barely moving" in shown
    assert "0.412 [0.250, 0.550] vs SFT step 1200 0.766 [0.700, 0.830]: worse" in shown


def test_synthetic_runs_are_labelled_and_never_compared_with_published(tmp_path):
    shown = text(tmp_path, "04_grpo", GRPO, SMOKE)
    assert "synthetic" in shown and "published r" not in shown


def test_full_profile_speaks_of_videophy2(tmp_path):
    shown = text(tmp_path, "04_grpo", GRPO, FULL)
    assert "synthetic" not in shown
    assert "published Cosmos-Reason1-7B + GRPO" in shown
    assert "vs published r 0.425" in shown


def results_metrics(zero_shot_r, sft_r, grpo_r):
    def system(r, ci):
        return {"accuracy": 0.3, "accuracy_ci": [0.2, 0.4], "pearson": r, "pearson_ci": ci}

    return {
        "systems": {
            "zero_shot": system(zero_shot_r, None if zero_shot_r is None else [-0.1, 0.1]),
            "sft": system(sft_r, [sft_r - 0.06, sft_r + 0.06]),
            "grpo": system(grpo_r, [grpo_r - 0.06, grpo_r + 0.06]),
        }
    }


def test_results_rank_and_compare_the_three_systems(tmp_path):
    shown = text(tmp_path, "05_results", results_metrics(None, 0.766, 0.777))
    assert "GRPO 0.777, SFT 0.766, zero-shot undefined" in shown
    assert "SFT against zero-shot: SFT 0.766 [0.706, 0.826] vs zero-shot undefined" in shown
    assert "cannot compare" in shown
    assert "GRPO against SFT: GRPO 0.777" in shown and "within noise" in shown


def test_results_with_other_numbers_reach_other_conclusions(tmp_path):
    shown = text(tmp_path, "05_results", results_metrics(0.02, 0.55, 0.30), FULL)
    assert "SFT 0.550, GRPO 0.300, zero-shot 0.020" in shown
    assert "SFT against zero-shot: SFT 0.550 [0.490, 0.610] vs zero-shot 0.020" in shown
    assert "better" in shown.split("GRPO against SFT")[0]
    assert "GRPO against SFT: GRPO 0.300 [0.240, 0.360] vs SFT 0.550 [0.490, 0.610]: worse" in shown
    assert shown.count("published r") == 3


def test_dataset_tour_quotes_the_majority_baseline(tmp_path):
    metrics = {
        "rows": {"train": 3000, "eval": 120},
        "skipped": {"train": 0, "eval": 0},
        "label_histogram": {"train": {"1": 300, "2": 300, "3": 600, "4": 1500, "5": 300}},
        "majority_label": 4,
        "majority_baseline_accuracy": 0.475,
        "balanced_counts": {"1": 600, "2": 600, "3": 600, "4": 600, "5": 600},
    }
    shown = text(tmp_path, "01_dataset_tour", metrics)
    assert "3000 training and 120 evaluation rows" in shown
    assert "pc 4 is 50% of the training rows" in shown and "accuracy 0.475" in shown


def zero_shot_metrics(parse_failure_rate, pearson, ci, expected=(0.31, [0.15, 0.47])):
    return {
        "n": 120,
        "accuracy": 0.25,
        "accuracy_ci": [0.18, 0.33],
        "parse_failure_rate": parse_failure_rate,
        "pearson": pearson,
        "pearson_ci": ci,
        "prediction_histogram": {"1": 0, "2": 0, "3": 70, "4": 50, "5": 0, "none": 0},
        "expected": {"pearson": expected[0], "pearson_ci": expected[1]},
        "majority_baseline_accuracy": 0.283,
    }


def test_zero_shot_says_whether_it_behaved_like_the_published_model(tmp_path):
    like = text(tmp_path / "a", "02_zero_shot", zero_shot_metrics(0.0, 0.3, [0.13, 0.46]))
    assert "Like the published zero-shot model" in like and "Unlike" not in like
    unlike = text(tmp_path / "b", "02_zero_shot", zero_shot_metrics(0.4, 0.05, [-0.1, 0.2]))
    assert "Unlike the published zero-shot model, 40% of its answers are out of format" in unlike
    assert "it does not rank the clips beyond noise" in unlike


def test_zero_shot_is_judged_against_the_majority_label(tmp_path):
    shown = text(tmp_path, "02_zero_shot", zero_shot_metrics(0.0, 0.3, [0.13, 0.46]))
    assert (
        "Against always answering the majority label: zero-shot accuracy 0.250 [0.180, 0.330] "
        "vs majority label 0.283: within noise" in shown
    )


@pytest.mark.parametrize(
    "expected, verdict_shown",
    [((0.31, [0.15, 0.47]), "within noise"), ((0.7, [0.6, 0.8]), "better")],
)
def test_zero_shot_answers_whether_the_expected_score_ranks_better(
    tmp_path, expected, verdict_shown
):
    metrics = zero_shot_metrics(0.0, 0.3, [0.13, 0.46], expected)
    shown = text(tmp_path, "02_zero_shot", metrics)
    assert (
        "Does the expected score rank the clips better than the answer? zero-shot expected "
        f"score r {expected[0]:.3f} [{expected[1][0]:.3f}, {expected[1][1]:.3f}] vs sampled "
        f"answer r 0.300 [0.130, 0.460]: {verdict_shown}." in shown
    )


def test_results_answer_the_expected_score_question_per_system(tmp_path):
    metrics = results_metrics(0.2, 0.72, 0.8)
    metrics["systems"]["sft"]["expected"] = {"pearson": 0.5, "pearson_ci": [0.4, 0.6]}
    metrics["systems"]["grpo"]["expected"] = {"pearson": 0.81, "pearson_ci": [0.75, 0.87]}
    shown = text(tmp_path, "05_results", metrics)
    line = shown.split("Does the expected score rank the clips better than the answer? ")[1]
    assert line.startswith(  # zero-shot has no expected score here: said, not left out
        "zero-shot expected score r undefined vs sampled answer r 0.200 [-0.100, 0.100]: cannot "
        "compare (an undefined value); SFT expected score r 0.500 [0.400, 0.600] vs sampled "
        "answer r 0.720 [0.660, 0.780]: worse; GRPO expected score r 0.810 [0.750, 0.870] vs "
        "sampled answer r 0.800 [0.740, 0.860]: within noise."
    )


def test_unknown_folder_names_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="02_zero_shot"):
        what_this_run_showed(write(tmp_path, "99_other", {}), SMOKE)


def test_slice_note_names_useless_slices_only():
    rows = [
        {"pc": pc, "model_name": "synthetic", "is_hard": int(pc == 4), "category": c}
        for pc, c in [(1, "a"), (4, "b"), (4, "a"), (5, "b")]
    ]
    assert "nothing to compare" in slice_note(rows, "model_name")
    assert "is_hard = 1 on exactly the rows with pc 4" in slice_note(rows, "is_hard")
    assert slice_note(rows, "category") is None


def test_slice_gap_says_whether_the_bars_differ_beyond_noise():
    level = [{"pc": pc, "category": c} for c in "ab" for pc in (2, 3, 4, 5) * 50]
    level += [{"pc": 5, "category": "b"}] * 10
    assert slice_gap(level, "category") == (
        "category: mean pc from 3.50 (a) to 3.57 (b), a gap of 0.07, within noise (twice its "
        "standard error is 0.22): no category is scored higher or lower than another here"
    )
    apart = level + [{"pc": 1, "category": "a"}] * 100
    assert slice_gap(apart, "category").startswith("category: mean pc from 2.67 (a) to 3.57 (b)")
    assert "beyond noise" in slice_gap(apart, "category")


def sft_stage(chosen_steps: dict) -> dict:
    """Notebook 03's metrics around the `selected`/`best_on_test` blocks of `chosen`."""
    return {
        "majority_baseline_accuracy": 0.283,
        "zero_shot": {"accuracy": 0.0, "pearson": None, "spearman": None},
        **chosen_steps,
        "train_loss_first": 7.0,
        "train_loss_last": 0.3,
    }


def test_sft_is_judged_against_the_majority_label(tmp_path):
    metrics = sft_stage(chosen(sft_metrics()))
    shown = text(tmp_path, "03_sft", metrics)
    assert "SFT accuracy 0.550 [0.460, 0.640] vs majority label 0.283: better" in shown
    assert "SFT step 1200 Pearson r 0.766 [0.700, 0.830]: correlated" in shown
    weak = metrics | chosen(sft_metrics() | {"accuracy_ci": [0.2, 0.6]})
    assert "vs majority label 0.283: within noise" in text(tmp_path / "b", "03_sft", weak, FULL)


@pytest.mark.parametrize("selected_step, said", [(1200, True), (800, False)])
def test_a_selected_last_step_still_rising_is_said(tmp_path, selected_step, said):
    sweep = [
        {"step": 800, "val_pearson": 0.65},
        {"step": 1200, "val_pearson": 0.70},
        {"step": 1600, "val_pearson": None},  # a step validation never scored is skipped
    ]
    metrics = sft_stage(chosen(sft_metrics() | {"step": selected_step})) | {"steps": sweep}
    shown = text(tmp_path, "03_sft", metrics)
    rising = "It is the last step saved, and val_pearson was still rising (0.650 at step 800, "
    assert (rising in shown) is said


def test_sft_says_how_well_its_think_blocks_name_the_violations(tmp_path):
    rationale = {"rationale": {"step": 1200, "precision": 0.656, "recall": 0.774}}
    shown = text(tmp_path, "03_sft", sft_stage(chosen(sft_metrics())) | rationale)
    assert "think blocks of step 1200 on the held-out clips name" in shown
    assert "precision 0.656 (of the violations they list" in shown and "recall 0.774" in shown


def test_the_reported_step_is_the_one_selected_on_validation(tmp_path):
    """The test numbers quoted are the selected step's; the best step on test is named beside
    it, as the published recipe's choice, never in its place."""
    flattering = sft_metrics(pearson=0.81, ci=(0.75, 0.86)) | {"step": 1600}
    metrics = sft_stage(chosen(sft_metrics(), val_pearson=0.702, on_test=flattering))
    shown = text(tmp_path, "03_sft", metrics)
    assert "Selected on validation (val_pearson): step 1200, validation r 0.702" in shown
    assert "SFT step 1200 Pearson r 0.766" in shown
    assert "as the published recipe chooses, step 1600 would report r 0.810" in shown
    same = text(tmp_path / "same", "03_sft", metrics | chosen(sft_metrics()))
    assert "the best trained step on test is the same one" in same and "1600" not in same


def spread(mean, sd, low, high):
    return {"mean": mean, "sd": sd, "min": low, "max": high, "n": 3}


@pytest.fixture
def seed_record(tmp_path, monkeypatch):
    """Write a seed-spread record with the smoke profile's settings, `changes` applied, and
    point the takeaways at it."""

    def write_record(runs: dict | None = None, gains: dict | None = None, **changes) -> None:
        settings = flat(run_settings(SMOKE)) | changes
        settings.pop("seed")
        numbers = {
            "accuracy": spread(0.56, 0.02, 0.54, 0.58),
            "pearson": spread(0.74, 0.03, 0.7, 0.75),
        }
        record = {
            "date": "2026-11-26T06:00:00+00:00",
            "settings": {"profile": settings},
            "results": {
                "runs": runs or {"1": {}, "2": {}, "3": {}},
                "spread": {name: numbers for name in ("zero_shot", "sft", "grpo")},
                "grpo_minus_sft_pearson": gains or {"0": 0.04, "1": -0.01, "2": 0.03},
            },
        }
        path = tmp_path / "seeds.json"
        path.write_text(json.dumps(record))
        monkeypatch.setattr(takeaways, "SEED_RECORD", str(path))

    return write_record


def test_a_seed_record_of_the_same_settings_puts_the_run_against_the_seed_spread(
    tmp_path, seed_record
):
    seed_record()
    shown = text(tmp_path, "03_sft", sft_stage(chosen(sft_metrics())))
    assert "Seed to seed: the same settings run with seeds 1, 2, 3" in shown
    assert (
        "SFT: accuracy 0.560 ± 0.020 (0.540-0.580), this run 0.550 inside that range; "
        "r 0.740 ± 0.030 (0.700-0.750), this run 0.766 outside that range." in shown
    )
    assert "record's seed-0 run" not in shown  # the record has no run of this seed
    assert "GRPO" not in shown  # notebook 03 comes before GRPO
    closing = text(tmp_path / "05", "05_results", results_metrics(0.2, 0.72, 0.8))
    for system, r, where in (("zero-shot", 0.2, "outside"), ("SFT", 0.72, "inside")):
        assert f"\n  - {system}: accuracy" in closing
        assert f"r 0.740 ± 0.030 (0.700-0.750), this run {r:.3f} {where}" in closing
    assert "GRPO minus SFT r, seed by seed: +0.040, -0.010, +0.030. The seeds disagree" in closing


def test_grpo_below_sft_on_every_seed_is_said(tmp_path, seed_record):
    seed_record(gains={"0": -0.091, "1": -0.083, "2": -0.026})
    closing = text(tmp_path, "05_results", results_metrics(0.2, 0.72, 0.8))
    assert "-0.091, -0.083, -0.026: GRPO's r was below SFT's on every seed." in closing
    assert "all 3 would agree by chance 25% of the time (a sign test)" in closing


def test_a_run_of_a_recorded_seed_says_whether_it_reproduces_the_record(tmp_path, seed_record):
    """Seed 0 is in the record: the same numbers reproduce it, other numbers are quoted as a
    difference, so a stale record is never read as a description of this run."""
    sft = sft_metrics()
    seed_record(runs={"0": {"sft": {"step": 1200, "accuracy": 0.5500001, "pearson": 0.766}}})
    shown = text(tmp_path, "03_sft", sft_stage(chosen(sft)))
    assert "This run reproduces the record's seed-0 run (" in shown
    assert ": same step, accuracy and r)." in shown
    seed_record(runs={"0": {"sft": {"step": 1600, "accuracy": 0.567, "pearson": 0.756}}})
    shown = text(tmp_path / "stale", "03_sft", sft_stage(chosen(sft)))
    assert (
        f"This run differs from the record's seed-0 run ({takeaways.SEED_RECORD}): SFT step "
        "1200 accuracy 0.550, r 0.766 here, SFT step 1600 accuracy 0.567, r 0.756 there. The "
        "code changed" in shown
    )


def test_a_seed_record_of_other_settings_is_named_but_not_cited(tmp_path, seed_record):
    seed_record(**{"sft.lr": 5e-4})
    metrics = sft_stage(chosen(sft_metrics()))
    shown = text(tmp_path, "03_sft", metrics)
    assert "Seed to seed" not in shown
    assert "was made with other settings (sft.lr)" in shown
    assert "seed" not in text(tmp_path / "full", "03_sft", metrics, FULL).lower()


def test_without_a_seed_record_nothing_is_said_of_seeds(tmp_path):
    assert "seed" not in text(tmp_path, "03_sft", sft_stage(chosen(sft_metrics()))).lower()


def test_sft_step_zero_says_why_it_differs_from_zero_shot():
    """The smoke profile sweeps SFT with the thinking prompt, the full profile with the
    benchmark's prompt and sampled answers: each says its own reason."""
    smoke = sft_step_zero(SMOKE)
    assert "with SFT's prompt (prompts/video_reward_with_thinking.yaml) instead of" in smoke
    assert "(prompts/video_reward.yaml)" in smoke
    assert "by sampling alone" in sft_step_zero(FULL)
    greedy = copy.deepcopy(FULL)
    greedy["scoring"]["sampling"]["greedy"] = True
    assert "it repeats 02's zero-shot numbers" in sft_step_zero(greedy)


def test_answer_changes_counts_fixed_and_broken_answers():
    before = [
        {"pc": 3, "pred": 3},
        {"pc": 4, "pred": 2},
        {"pc": 5, "pred": 1},
        {"pc": 1, "pred": 1},
    ]
    after = [{"pc": 3, "pred": 4}, {"pc": 4, "pred": 4}, {"pc": 5, "pred": 2}, {"pc": 1, "pred": 1}]
    assert answer_changes(list(zip(before, after)), "GRPO") == (
        "GRPO changed the answer to 3 of 4 held-out clips: 1 now right, 1 now wrong that were "
        "right, the rest wrong before and after"
    )
