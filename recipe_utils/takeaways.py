"""The closing "What this run showed" of every notebook, written from that notebook's metrics.json.

Nothing here is typed in by hand: each sentence quotes the run's own numbers with their 95%
bootstrap intervals, and a comparison says "better" or "worse" only when the two intervals do not
overlap ("within noise" otherwise). On synthetic data the text says so and keeps published
VideoPhy-2 numbers out of the comparison; on VideoPhy-2 (the full profile) it compares with them.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .config import flat, repo_path, run_settings
from .metrics import PUBLISHED, PUBLISHED_SFT_STEPS

HEADING = "What this run showed"
SYNTHETIC_NOTE = (
    "These are **synthetic** clips scored by the tiny model: the numbers show what each stage "
    "changes, they are not VideoPhy-2 results and are not comparable with published ones."
)
SYNTHETIC_DATA_NOTE = (
    "The clips and labels are **synthetic** (the course's generator, exact labels): the shares "
    "and the baseline above are the generator's, not VideoPhy-2's."
)
Interval = Sequence[float] | None


class Takeaways:
    """A list of findings that a notebook shows as Markdown (plain text everywhere else)."""

    def __init__(self, lines: list[str]):
        self.lines = lines

    def _repr_markdown_(self) -> str:
        return f"## {HEADING}\n\n" + "\n".join(f"- {line}" for line in self.lines)

    def __repr__(self) -> str:
        return f"{HEADING}:\n" + "\n".join(f"- {line.replace('**', '')}" for line in self.lines)


def is_synthetic(config: dict) -> bool:
    """True when the profile evaluates on the course's synthetic clips, not on VideoPhy-2."""
    return config["data"]["eval"]["source"] == "synthetic"


def fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


def fmt_ci(ci: Interval) -> str:
    return "" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def verdict(value: float, ci: Interval, other: float, other_ci: Interval) -> str:
    """ "better", "worse" or "within noise": a difference counts only if the intervals are apart.

    A value without an interval counts as a point; at least one side must have an interval.
    """
    if ci is None and other_ci is None:
        raise ValueError("verdict needs a bootstrap interval on at least one side")
    low, high = ci or (value, value)
    other_low, other_high = other_ci or (other, other)
    if low > other_high:
        return "better"
    if high < other_low:
        return "worse"
    return "within noise"


def compare(
    name: str, value: float | None, ci: Interval, other_name: str, other: float | None, other_ci
) -> str:
    """'GRPO 0.777 [0.70, 0.84] vs SFT 0.766 [0.69, 0.83]: within noise'."""
    text = f"{name} {fmt(value)}{fmt_ci(ci)} vs {other_name} {fmt(other)}{fmt_ci(other_ci)}"
    if value is None or other is None:
        return f"{text}: cannot compare (an undefined value)"
    return f"{text}: **{verdict(value, ci, other, other_ci)}**"


def slice_note(rows: Sequence[dict], column: str) -> str | None:
    """Why slicing `rows` by `column` tells nothing, or None when it can: a single value, or a
    value that marks exactly the rows of one `pc` score (the slice would repeat the label)."""
    values = {str(row[column]) for row in rows}
    if len(values) == 1:
        return f"every row has the value {values.pop()!r}: there is nothing to compare"
    for value in sorted(values):
        inside = {row["pc"] for row in rows if str(row[column]) == value}
        outside = {row["pc"] for row in rows if str(row[column]) != value}
        if len(inside) == 1 and not inside & outside:
            return (
                f"{column} = {value} on exactly the rows with pc {inside.pop()}: "
                "the slice repeats the label, so it is not drawn"
            )
    return None


def slice_gap(rows: Sequence[dict], column: str) -> str:
    """The lowest and highest mean `pc` across the values of `column`, and whether their gap
    is beyond noise (more than twice its standard error): a slice whose bars all stand level
    is worth a sentence, not only a figure."""
    groups: dict[str, list[int]] = {}
    for row in rows:
        groups.setdefault(str(row[column]), []).append(row["pc"])
    means = {value: sum(pcs) / len(pcs) for value, pcs in groups.items()}
    low, high = min(means, key=means.get), max(means, key=means.get)
    gap = means[high] - means[low]
    noise = 2 * math.sqrt(sum(_squared_error(groups[value]) for value in (low, high)))
    verdict = (
        f"beyond noise (twice its standard error is {noise:.2f}): {column} matters here"
        if gap > noise
        else f"within noise (twice its standard error is {noise:.2f}): no {column} is "
        "scored higher or lower than another here"
    )
    return (
        f"{column}: mean pc from {means[low]:.2f} ({low}) to {means[high]:.2f} ({high}), "
        f"a gap of {gap:.2f}, {verdict}"
    )


def _squared_error(values: list[int]) -> float:
    """The squared standard error of the values' mean; infinite for a single value."""
    return statistics.variance(values) / len(values) if len(values) > 1 else math.inf


def answer_changes(pairs: list[tuple[dict, dict]], name: str) -> str:
    """How many of the (before, after) records of the same clips `name` changed the answer of,
    and for better or worse against the label."""
    changed = [(before, after) for before, after in pairs if before["pred"] != after["pred"]]
    fixed = sum(after["pred"] == after["pc"] for _, after in changed)
    broken = sum(before["pred"] == before["pc"] for before, _ in changed)
    return (
        f"{name} changed the answer to {len(changed)} of {len(pairs)} held-out clips: "
        f"{fixed} now right, {broken} now wrong that were right, the rest wrong before and after"
    )


def _published(system_part: str) -> dict:
    return next(row for row in PUBLISHED if system_part in row["system"])


def _correlation(name: str, metrics: dict) -> str:
    """Pearson r with its interval, and whether the interval clears zero."""
    r, ci = metrics.get("pearson"), metrics.get("pearson_ci")
    if r is None:
        return f"{name} Pearson r is undefined ({metrics.get('notes', {}).get('pearson', 'no spread')})"
    beyond = ci is not None and (ci[0] > 0 or ci[1] < 0)
    return f"{name} Pearson r {fmt(r)}{fmt_ci(ci)}: " + (
        "correlated with the labels beyond noise"
        if beyond
        else "no correlation beyond noise (the interval contains 0)"
    )


def _against_majority(name: str, metrics: dict, baseline: float) -> str:
    """Accuracy against always answering the training rows' most frequent label (notebook 01's
    bar: a scorer is useful only above it)."""
    return (
        "Against always answering the majority label: "
        + compare(
            f"{name} accuracy",
            metrics["accuracy"],
            metrics.get("accuracy_ci"),
            "majority label",
            baseline,
            None,
        )
        + "."
    )


def expected_vs_sampled(name: str, metrics: dict) -> str | None:
    """Whether the expected score (a continuous score, which breaks the ties of the sampled
    digit) ranks the clips better than the sampled answer, by their r and intervals; None when
    neither side has an interval (bootstrap off)."""
    expected = metrics.get("expected") or {}
    defined = None not in (expected.get("pearson"), metrics.get("pearson"))
    if defined and expected.get("pearson_ci") is None and metrics.get("pearson_ci") is None:
        return None
    return compare(  # an undefined r reads "cannot compare (an undefined value)"
        f"{name} expected score r",
        expected.get("pearson"),
        expected.get("pearson_ci"),
        "sampled answer r",
        metrics.get("pearson"),
        metrics.get("pearson_ci"),
    )


def expected_question(systems: dict[str, dict]) -> list[str]:
    """The one line that asks, for every named system's metrics it can answer for, whether the
    expected score ranks better than the answer; none when it can answer for no system."""
    ranks = [line for name, m in systems.items() if (line := expected_vs_sampled(name, m))]
    if not ranks:
        return []
    return [
        "Does the expected score rank the clips better than the answer? " + "; ".join(ranks) + "."
    ]


def _bunching(histogram: dict[str, int]) -> str:
    """Share of parsed answers at 3-4, where published zero-shot answers bunch."""
    parsed = {k: v for k, v in histogram.items() if k != "none"}
    total = sum(parsed.values())
    if not total:
        return "no answer parsed, so there is no spread of scores to look at"
    middle = (parsed.get("3", 0) + parsed.get("4", 0)) / total
    used = sorted(k for k, v in parsed.items() if v)
    return (
        f"{middle:.0%} of the parsed answers are 3 or 4 and the model used the scores "
        f"{', '.join(used)}"
    )


def _as_a_generalist(metrics: dict) -> str:
    """Whether the zero-shot model behaved as the real recipe's does: in format, and weakly
    but positively correlated with the labels."""
    ci = metrics.get("pearson_ci")
    failures = metrics["parse_failure_rate"]
    in_format = failures <= 0.10
    ranks = ci is not None and ci[0] > 0
    if in_format and ranks:
        return (
            "Like the published zero-shot model, this one answers in format and ranks the clips "
            "weakly but beyond noise: that is the baseline notebooks 03 and 04 must beat."
        )
    missing = [f"{failures:.0%} of its answers are out of format"] if not in_format else []
    missing += [] if ranks else ["it does not rank the clips beyond noise"]
    return (
        "Unlike the published zero-shot model, " + " and ".join(missing) + ": notebooks 03 "
        "and 04 start from a model that knows less about the task than the recipe's does."
    )


def dataset_tour(metrics: dict, synthetic: bool) -> list[str]:
    rows, counts = metrics["rows"], metrics["label_histogram"]["train"]
    majority = str(metrics["majority_label"])
    share = counts[majority] / sum(counts.values())
    data = "synthetic clips with exact labels" if synthetic else "VideoPhy-2 clips rated by people"
    lines = [
        f"{rows['train']} training and {rows['eval']} evaluation rows ({data}); "
        f"{sum(metrics['skipped'].values())} skipped.",
        f"The labels bunch: pc {majority} is {share:.0%} of the training rows, so always "
        f"answering {majority} already reaches accuracy "
        f"{fmt(metrics['majority_baseline_accuracy'])} on the evaluation split. A scorer is "
        "useful only above that bar, and only if it also ranks clips (Pearson r > 0).",
        f"Balancing resamples every label to {next(iter(metrics['balanced_counts'].values()))} "
        "rows of the whole train split (each stage balances the rows it trains on), so a policy "
        "trained by reward cannot win by always answering the frequent label.",
    ]
    return lines + ([SYNTHETIC_DATA_NOTE] if synthetic else [])


def zero_shot(metrics: dict, synthetic: bool) -> list[str]:
    lines = [
        f"Accuracy {fmt(metrics['accuracy'])}{fmt_ci(metrics.get('accuracy_ci'))} on "
        f"{metrics['n']} clips; {metrics['parse_failure_rate']:.0%} of the answers had no "
        "parseable score (counted as wrong).",
        _correlation("Zero-shot", metrics) + ".",
        _bunching(metrics["prediction_histogram"]) + ".",
        _against_majority("zero-shot", metrics, metrics["majority_baseline_accuracy"]),
    ]
    lines += expected_question({"zero-shot": metrics})
    if synthetic:
        lines.append(SYNTHETIC_NOTE + " " + _as_a_generalist(metrics))
    else:
        published = _published("zero-shot")
        lines.append(
            "Against the published VideoPhy-2 zero-shot result: "
            + compare(
                "this run r",
                metrics["pearson"],
                metrics.get("pearson_ci"),
                "published r",
                published["pearson"],
                None,
            )
            + "."
        )
    return lines


def sft_step_zero(config: dict) -> str:
    """Why the SFT sweep's step 0 (notebook 02's model, scored before any training) need not
    repeat notebook 02's zero-shot numbers: the sweep scores with SFT's prompt, and the same
    video settings and sampling as zero-shot."""
    ours, zero_shot = config["sft"]["prompt"], config["scoring"]["prompt"]
    if ours != zero_shot:
        return (
            f"Step 0 is notebook 02's model before training, scored with SFT's prompt ({ours}) "
            f"instead of notebook 02's ({zero_shot}), with the same video settings and "
            "sampling: the other prompt is why its numbers differ from 02's zero-shot."
        )
    if config["scoring"]["sampling"]["greedy"]:
        return (
            "Step 0 is notebook 02's model before training, scored with the same prompt, video "
            "settings and greedy decoding: it repeats 02's zero-shot numbers."
        )
    return (
        "Step 0 is notebook 02's model before training, scored with the same prompt and video "
        "settings; the answers are sampled, so it differs from 02's zero-shot by sampling alone."
    )


def selection(metrics: dict) -> str:
    """Which step was selected on validation, and what choosing on test instead would report."""
    selected, on_test = metrics["selected"], metrics["best_on_test"]
    line = (
        f"Selected on validation ({selected['by']}): step {selected['step']}, validation r "
        f"{fmt(selected['val']['pearson'])}; the numbers below are its test scores"
    )
    if on_test is None or on_test["step"] == selected["step"]:
        line += " (the best trained step on test is the same one)."
    else:
        line += (
            f". Chosen on test instead, as the published recipe chooses, step {on_test['step']} "
            f"would report r {fmt(on_test['test']['pearson'])}: a number picked on the split it is "
            "reported on."
        )
    return line + _last_saved(metrics)


def _last_saved(metrics: dict) -> str:
    """When the selected step is the last checkpoint and beat the one before on the metric
    that selected it, that the run may have stopped before its best; else nothing."""
    by = metrics["selected"]["by"]
    steps = sorted(
        (s for s in metrics.get("steps", []) if s.get(by) is not None), key=lambda s: s["step"]
    )
    if len(steps) < 2 or steps[-1]["step"] != metrics["selected"]["step"]:
        return ""
    before, last = steps[-2], steps[-1]
    if last[by] <= before[by]:
        return ""
    return (
        f" It is the last step saved, and {by} was still rising ({fmt(before[by])} at step "
        f"{before['step']}, {fmt(last[by])} at {last['step']}): a longer run might do better."
    )


def against_start(metrics: dict) -> str | None:
    """How many trained checkpoints scored above the model they started from (the sweep's step
    0, never selected) on test r: a selection among trained steps cannot show that none did."""
    steps = metrics.get("steps", [])
    start = next((s for s in steps if s["step"] == 0 and s.get("pearson") is not None), None)
    trained = [s for s in steps if s["step"] > 0 and s.get("pearson") is not None]
    if start is None or not trained:
        return None
    above = sum(s["pearson"] > start["pearson"] for s in trained)
    return (
        f"On test, {above} of {len(trained)} trained checkpoints scored a higher r than their "
        f"start (step 0: r {fmt(start['pearson'])})."
    )


def reported(metrics: dict) -> dict:
    """The test metrics of the selected step, with its step: what a notebook reports."""
    return {"step": metrics["selected"]["step"], **metrics["selected"]["test"]}


def _rationale(scores: dict) -> str:
    """How well the selected step's think blocks name the clips' annotated violations."""
    return (
        f"The think blocks of step {scores['step']} on the held-out clips name the clips' "
        f"annotated violations with precision {fmt(scores['precision'])} (of the violations "
        f"they list, the share the clip has) and recall {fmt(scores['recall'])} (of the "
        "clip's violations, the share they list)."
    )


def sft(metrics: dict, synthetic: bool) -> list[str]:
    best, before = reported(metrics), metrics["zero_shot"]
    lines = [
        f"The training loss fell from {fmt(metrics['train_loss_first'])} to "
        f"{fmt(metrics['train_loss_last'])} (mean of the first and last tenth of the steps).",
        selection(metrics),
        _against_majority("SFT", best, metrics["majority_baseline_accuracy"]),
        "Accuracy after SFT: "
        + compare(
            "SFT",
            best["accuracy"],
            best.get("accuracy_ci"),
            "zero-shot",
            before["accuracy"],
            None,
        )
        + ".",
        _correlation(f"SFT step {best['step']}", best) + ".",
    ]
    if "rationale" in metrics:
        lines.append(_rationale(metrics["rationale"]))
    if synthetic:
        return lines + [SYNTHETIC_NOTE]
    top = max(PUBLISHED_SFT_STEPS, key=lambda row: row["pearson"])
    return lines + [
        f"Against the published SFT best (step {top['step']}): "
        + compare(
            "this run r",
            best["pearson"],
            best.get("pearson_ci"),
            "published r",
            top["pearson"],
            None,
        )
        + "."
    ]


def balance_findings(experiment: dict) -> list[str]:
    """What the label-balance experiment showed: how often each arm, and the start both arms
    trained from, answers the training rows' majority label on the eval clips, and how well
    each arm scores. A difference counts only beyond two standard errors, and "drifted towards"
    needs the unbalanced arm beyond both the balanced arm and the start."""
    label, steps = experiment["majority_label"], experiment["steps"]
    truth = experiment["eval_labels"]
    start, balanced, unbalanced = (
        experiment[name]["majority_share"] for name in ("at_start", "balanced", "unbalanced")
    )
    n = max(1, sum(experiment["balanced"]["eval_histogram"].values()))

    def beyond_noise(higher: float, lower: float) -> bool:
        return higher - lower > 2 * math.sqrt((higher * (1 - higher) + lower * (1 - lower)) / n)

    scored = {"unbalanced": "unbalanced", "balanced": "balanced", "the start": "at_start"}
    lines = [
        f"After {steps} GRPO steps from the same start ({experiment['start']}) with the same "
        f"seed, {label} (the training rows' most frequent label) is {unbalanced:.0%} of the "
        f"unbalanced run's answers on the eval clips and {balanced:.0%} of the balanced run's, "
        f"against {start:.0%} of the start's; "
        f"{truth[label] / max(1, sum(truth.values())):.0%} of the clips are {label}.",
        "Accuracy / Pearson r on the eval clips: "
        + ", ".join(
            f"{name} {fmt(experiment[key]['accuracy'])} / {fmt(experiment[key]['pearson'])}"
            for name, key in scored.items()
        )
        + ".",
    ]
    arms = [(name, experiment[name]) for name in ("unbalanced", "balanced")]
    if all(arm.get("pearson_ci") for _, arm in arms):  # recorded since 2026-11-27
        held_out = [
            compare(*(v for name, arm in arms for v in (name, arm[key], arm[f"{key}_ci"])))
            for key in ("accuracy", "pearson")
        ]
        lines.append(f"Held out, accuracy: {held_out[0]}; r: {held_out[1]}.")
    if beyond_noise(unbalanced, balanced) and beyond_noise(unbalanced, start):
        return lines + [
            f"Without balancing the policy drifted towards {label}, as the recipe warns."
        ]
    if beyond_noise(unbalanced, balanced):
        return lines + [
            f"The unbalanced run answered {label} more often than the balanced one, but not more "
            f"often than the start beyond noise: the balanced run moved away from {label}, and "
            f"in {steps} steps no drift towards it showed."
        ]
    if beyond_noise(balanced, unbalanced):
        return lines + [f"The unbalanced run answered {label} less often than the balanced one."]
    return lines + [
        "The two arms differ by less than two standard errors: in "
        f"{steps} steps no collapse onto the majority label showed in this run."
    ]


def grpo(metrics: dict, synthetic: bool) -> list[str]:
    best, start = reported(metrics), metrics["sft"]
    first, last = metrics["accuracy_reward_first"], metrics["accuracy_reward_last"]
    learned = ": the policy learned on its pool" if last > first + 0.05 else ", barely moving"
    lines = [
        f"The accuracy reward (of 1) went from {fmt(first)} over the first 10% of steps to "
        f"{fmt(last)} over the last{learned}.",
        f"The mean reward (of 2: accuracy plus format) rose from "
        f"{fmt(metrics['reward_first'])} to {fmt(metrics['reward_last'])} on the training pool."
        if metrics["reward_last"] > metrics["reward_first"]
        else f"The mean reward (of 2: accuracy plus format) did not rise "
        f"({fmt(metrics['reward_first'])} at the start, "
        f"{fmt(metrics['reward_last'])} at the end): the policy learned nothing from it.",
        selection(metrics),
        *filter(None, [against_start(metrics)]),
        "On held-out clips, Pearson r: "
        + compare(
            f"GRPO step {best['step']}",
            best["pearson"],
            best.get("pearson_ci"),
            f"SFT step {start['step']}",
            start["pearson"],
            start.get("pearson_ci"),
        )
        + ".",
        "Accuracy: "
        + compare("GRPO", best["accuracy"], best.get("accuracy_ci"), "SFT", start["accuracy"], None)
        + ".",
        _bunching(metrics["prediction_histogram"]) + " (GRPO, held-out clips).",
        *balance_findings(metrics["balance_experiment"]),
    ]
    if synthetic:
        return lines + [SYNTHETIC_NOTE]
    published = _published("GRPO")
    return lines + [
        f"Against the published {published['system']}: "
        + compare(
            "this run r",
            best["pearson"],
            best.get("pearson_ci"),
            "published r",
            published["pearson"],
            None,
        )
        + "."
    ]


def results(metrics: dict, synthetic: bool) -> list[str]:
    systems = metrics["systems"]
    names = {"zero_shot": "zero-shot", "sft": "SFT", "grpo": "GRPO"}

    def pearson(a: str, b: str) -> str:
        return compare(
            names[a],
            systems[a]["pearson"],
            systems[a].get("pearson_ci"),
            names[b],
            systems[b]["pearson"],
            systems[b].get("pearson_ci"),
        )

    ranked = sorted(systems, key=lambda name: systems[name]["pearson"] or -1.0, reverse=True)
    lines = [
        "Pearson r on the evaluation split: "
        + ", ".join(f"{names[n]} {fmt(systems[n]['pearson'])}" for n in ranked)
        + ".",
        "SFT against zero-shot: " + pearson("sft", "zero_shot") + ".",
        "GRPO against SFT: " + pearson("grpo", "sft") + ".",
        "Accuracy: "
        + ", ".join(
            f"{names[n]} {fmt(systems[n]['accuracy'])}{fmt_ci(systems[n].get('accuracy_ci'))}"
            for n in systems
        )
        + ".",
    ]
    lines += expected_question({names[n]: systems[n] for n in systems})
    if synthetic:
        return lines + [SYNTHETIC_NOTE]
    published = {"zero_shot": _published("zero-shot"), "grpo": _published("GRPO")}
    published["sft"] = {"pearson": max(row["pearson"] for row in PUBLISHED_SFT_STEPS)}
    return lines + [
        f"Against published VideoPhy-2 results, {names[n]}: "
        + compare(
            "this run r",
            systems[n]["pearson"],
            systems[n].get("pearson_ci"),
            "published r",
            published[n]["pearson"],
            None,
        )
        + "."
        for n in systems
    ]


# Several courses of the smoke profile that differ only in the seed (bench/run.py `seeds`).
SEED_RECORD = "bench/results/seeds.json"
SEED_NAMES = {"zero_shot": "zero-shot", "sft": "SFT", "grpo": "GRPO"}


def seed_record(config: dict) -> tuple[dict | None, list[str]]:
    """The seed-spread record and the settings (seed aside) in which it differs from this run's;
    (None, []) when there is no record."""
    path = repo_path(SEED_RECORD)
    record = json.loads(path.read_text()) if path.is_file() else {}
    if not record.get("results"):
        return None, []
    ours = {k: v for k, v in flat(run_settings(config)).items() if k != "seed"}
    theirs = record["settings"]["profile"]
    return record, sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))


def _spread(stats: dict) -> str:
    return f"{stats['mean']:.3f} ± {stats['sd']:.3f} ({stats['min']:.3f}-{stats['max']:.3f})"


def _same_run(ours: dict, theirs: dict) -> bool:
    """Same step, and accuracy and r equal to the three decimals the text shows."""
    return ours.get("step") == theirs.get("step") and all(
        fmt(ours.get(metric)) == fmt(theirs.get(metric)) for metric in ("accuracy", "pearson")
    )


def _numbers(name: str, metrics: dict) -> str:
    step = "" if metrics.get("step") is None else f" step {metrics['step']}"
    return (
        f"{SEED_NAMES[name]}{step} accuracy {fmt(metrics.get('accuracy'))}, "
        f"r {fmt(metrics.get('pearson'))}"
    )


def reproduction(record: dict, systems: dict[str, dict], seed: int) -> str | None:
    """Whether this run (seed `seed`) reproduces the record's run of the same seed, or None when
    the record has no run of that seed. Without this check a record made before the code
    changed would be quoted as if it described this run."""
    recorded = record["results"]["runs"].get(str(seed))
    if recorded is None:
        return None
    differ = [name for name in systems if not _same_run(systems[name], recorded.get(name, {}))]
    if not differ:
        return (
            f"This run reproduces the record's seed-{seed} run ({SEED_RECORD}: same step, "
            "accuracy and r)."
        )
    pairs = [
        (_numbers(name, systems[name]), _numbers(name, recorded.get(name, {}))) for name in differ
    ]
    return (
        f"This run **differs** from the record's seed-{seed} run ({SEED_RECORD}): "
        + "; ".join(f"{ours} here, {theirs} there" for ours, theirs in pairs)
        + ". The code changed since the record was made, so the spread below describes that "
        "code, not this run's."
    )


def seed_lines(record: dict, systems: dict[str, dict], seed: int) -> list[str]:
    """How far the record's seeds spread each system's accuracy and r (one nested item per
    system), and where this run's `systems` ({name: metrics}) fall against that range; first,
    whether this run (seed `seed`) repeats the record's run of its seed."""
    seeds = ", ".join(record["results"]["runs"])
    date = record.get("date", "")[:10]
    items = []
    for name, metrics in systems.items():
        stats = record["results"]["spread"][name]
        where = []
        for metric, label in (("accuracy", "accuracy"), ("pearson", "r")):
            value, known = metrics.get(metric), stats[metric]
            if value is None or known is None:
                continue
            inside = known["min"] <= value <= known["max"]
            where.append(
                f"{label} {_spread(known)}, this run {fmt(value)} "
                + ("inside that range" if inside else "**outside** that range")
            )
        items.append(f"\n  - {SEED_NAMES[name]}: " + "; ".join(where) + ".")
    same = reproduction(record, systems, seed)
    lines = [same] if same else []
    lines.append(
        f"Seed to seed: the same settings run with seeds {seeds} ({SEED_RECORD}, {date}) gave, "
        "as mean ± sd (range):" + "".join(items)
    )
    if "grpo" in systems:
        gains = list(record["results"]["grpo_minus_sft_pearson"].values())
        sign = (
            "below" if all(g < 0 for g in gains) else "above" if all(g > 0 for g in gains) else ""
        )
        line = "GRPO minus SFT r, seed by seed: " + ", ".join(f"{g:+.3f}" for g in gains)
        if sign and len(gains) > 1:
            line += (
                f": GRPO's r was {sign} SFT's on every seed. Each seed compares the two on the "
                f"same run, so the sign is the evidence: if GRPO changed nothing, all "
                f"{len(gains)} would agree by chance {2 * 0.5 ** len(gains):.0%} of the time "
                "(a sign test), consistent but weak evidence from so few seeds."
            )
        else:
            line += (
                ". The seeds disagree on the sign: a difference between the two smaller than "
                "the seed-to-seed spread is not evidence either way."
            )
        lines.append(line)
    return lines


def reported_systems(folder: str, metrics: dict) -> dict[str, dict]:
    """The systems a notebook reports, by the name the seed record uses."""
    if folder == "02_zero_shot":
        return {"zero_shot": metrics}
    if folder == "03_sft":
        return {"sft": reported(metrics)}
    if folder == "04_grpo":
        return {"grpo": reported(metrics)}
    return metrics.get("systems", {})


WRITERS: dict[str, Callable[[dict, bool], list[str]]] = {
    "01_dataset_tour": dataset_tour,
    "02_zero_shot": zero_shot,
    "03_sft": sft,
    "04_grpo": grpo,
    "05_results": results,
}


def what_this_run_showed(metrics_path: str | Path, config: dict[str, Any]) -> Takeaways:
    """The findings of the notebook whose output folder holds `metrics_path`."""
    metrics_path = Path(metrics_path)
    writer = WRITERS.get(metrics_path.parent.name)
    if writer is None:
        raise ValueError(
            f"{metrics_path}: no takeaways for folder {metrics_path.parent.name!r}; "
            f"known: {sorted(WRITERS)}"
        )
    metrics = json.loads(metrics_path.read_text())
    lines = writer(metrics, is_synthetic(config))
    systems = reported_systems(metrics_path.parent.name, metrics)
    record, differs = seed_record(config)
    if record is None or not systems:
        return Takeaways(lines)
    if not differs:
        return Takeaways(lines + seed_lines(record, systems, config["seed"]))
    if is_synthetic(config):
        lines.append(
            f"The seed-spread record ({SEED_RECORD}) was made with other settings "
            f"({', '.join(differs[:3])}{', ...' if len(differs) > 3 else ''}), so it does not "
            "say how much this run's numbers move with the seed: a grid over seeds "
            "(`course --grid seed=0,1,2`) would."
        )
    return Takeaways(lines)
