"""The course's stages, each reading a profile and writing under the run folder.

A notebook cell or a shell command calls one stage; every stage writes its output to disk
(`data/`, `zero_shot/`, `sft/`, `grpo/`), so any stage can be re-run, resumed or inspected alone
and each notebook only reads what earlier stages wrote.

    run/data/splits/                the train split's parts: val, sft, grpo (splits_stage)
    run/data/{sft,grpo}/            conversation datasets (videophy2.prepare)
    run/zero_shot/                  predictions.jsonl, metrics.json, report.html
    run/sft/checkpoints/step_N/     model + processor (train.train_sft or cosmos-rl exports)
    run/sft/sweep/step_N/           test predictions and metrics per checkpoint (and
                                    rationale.json for the selected one), sweep.json
    run/sft/sweep/val/step_N/       validation predictions and metrics, which select the step
    run/grpo/...                    the same for GRPO
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .config import STAGES, NotRunYet, repo_path
from .scoring import Parallel, Sampling, adopt_answers, score_split, sweep_checkpoints

GRPO_STARTS = ("base", "sft")  # grpo.start: the base model (the recipe's RL config) or SFT's best


def resolve_source(config: dict, folder: Path, which: str) -> tuple[str, str]:
    """(source, split) of the `train` or `eval` rows; the synthetic benchmark is rendered into
    the run folder once."""
    data = config["data"]
    source, split = data[which]["source"], data[which]["split"]
    if source != "synthetic":
        return source, split
    from .synthetic import generate

    target = folder / "data" / "synthetic"
    if not (target / "test.jsonl").exists():  # written last
        generate(target, seed=config["seed"], **data["synthetic"])
    return str(target), split


def resolve_model(config: dict, folder: Path) -> str:
    """The model to start from: `tiny` is built offline into the run folder once, then given
    the short pretraining `model.pretrain` asks for (none when its steps are 0), which makes
    the stand-in for a pretrained generalist (`recipe_utils.pretrain`)."""
    name = config["model"]["name"]
    if name != "tiny":
        return name
    from .tiny import build_tiny_model

    target = folder / "models" / "tiny"
    if not (target / "config.json").exists():
        build_tiny_model(target, seed=config["seed"])
    settings = config["model"].get("pretrain")  # a profile written before the setting has none
    if not settings or not settings["steps"]:
        return str(target)
    from .pretrain import PretrainSettings, pretrain

    stand_in = pretrain(
        target,
        folder / "models" / "stand_in",
        PretrainSettings(**settings),
        video=config["sft"]["video"],
        prompt_path=repo_path(config["scoring"]["prompt"]),
        seed=config["seed"],
    )
    return str(stand_in)


def splits_stage(config: dict, run: Path) -> Path:
    """The train split carved into validation, SFT's rows and GRPO's pool (`splits.partition`),
    written once to `run/data/splits`; a folder `load_rows` reads with split `val`, `sft` or
    `grpo`."""
    from .splits import PARTITION_FILE, partition, write_partition
    from .videophy2 import load_rows

    out = run / "data" / "splits"
    settings = {
        "seed": config["seed"],
        "limit": config["data"]["limit"],
        "val_fraction": config["data"]["val_fraction"],
        "grpo_limit": config["grpo"]["limit"],
    }
    if (out / PARTITION_FILE).exists():
        recorded = json.loads((out / PARTITION_FILE).read_text())
        if {key: recorded.get(key) for key in settings} != settings:
            raise ValueError(
                f"{out} was carved with other settings than {settings}; use another run folder"
            )
        return out
    loaded = load_rows(*resolve_source(config, run, "train"), settings["limit"])
    parts = partition(
        loaded.rows, settings["val_fraction"], settings["grpo_limit"], settings["seed"]
    )
    about = {"source": loaded.source, "split": loaded.split, "skipped": len(loaded.skipped)}
    write_partition(parts, out, about | settings)
    return out


def clips_in_place(dataset: Path) -> bool:
    """Whether every clip a prepared dataset names is where it says."""
    from .videophy2 import load_conversations

    return all(os.path.exists(video) for video in load_conversations(dataset)["video"])


def dataset_stage(kind: str, config: dict, run: Path, name: str | None = None) -> Path:
    """The conversation dataset a trainer reads, from its part of the train split
    (`splits_stage`), with the stage's prompt and label balancing."""
    from .splits import PARTITION_FILE
    from .videophy2 import prepare

    out = run / "data" / (name or kind)
    if (out / "prepare_report.json").exists():
        if clips_in_place(out):
            return out
        # built before the run folder moved: its conversations name each clip where it was
        shutil.rmtree(out)
    splits = splits_stage(config, run)
    video = config[kind]["video"]
    return prepare(
        splits,
        kind,
        out,
        repo_path(config[kind]["prompt"]),
        balance_labels=bool(config[kind].get("balance_labels", False)),
        rationale=bool(config[kind].get("rationale", False)),
        fps=video["fps"],
        max_pixels=video["max_pixels"],
        seed=config["seed"],
        download_dir=run / "data",
        partition=json.loads((splits / PARTITION_FILE).read_text()),
    )


def score_args(config: dict, run: Path, prompt: str | Path) -> dict:
    """Everything `score_split` needs besides the model and the output folder."""
    scoring = config["scoring"]
    options = {}
    if scoring["backend"] == "vllm":
        options["tensor_parallel_size"] = scoring["tensor_parallel_size"]
    else:
        options.update(device=config["model"]["device"], dtype=config["model"]["dtype"])
    source, split = resolve_source(config, run, "eval")
    return dict(
        source=source,
        split=split,
        prompt_path=repo_path(prompt),
        video_settings=scoring["video"],
        sampling=Sampling(**scoring["sampling"]),
        backend=scoring["backend"],
        limit=config["data"]["limit"],
        batch_size=scoring["batch_size"],
        videos_dir=run / "data",
        parallel=Parallel(scoring["engine"], scoring["replicas"], scoring["decode_workers"]),
        **options,
    )


def zero_shot_stage(config: dict, run: Path) -> dict:
    """Score the eval split with the untrained model and the benchmark prompt; returns metrics."""
    from .metrics import evaluate

    out = run / "zero_shot"
    args = score_args(config, run, config["scoring"]["prompt"])
    predictions = score_split(resolve_model(config, run), out_dir=out, **args)
    return evaluate(predictions, out / "metrics.json")


def start_model(kind: str, config: dict, run: Path) -> str | Path:
    """SFT starts from the base model; GRPO from `grpo.start`: `base`, as the published recipe's
    RL config does, or `sft`, the best SFT checkpoint (SFT-then-GRPO, the seed recipe's
    suggested next step: reasoning SFT as a warm-up before RL)."""
    if kind != "grpo":
        return resolve_model(config, run)
    start = config["grpo"].get("start")  # a profile written before the setting has none
    if start not in GRPO_STARTS:
        raise ValueError(f"grpo.start must be one of {list(GRPO_STARTS)}, got {start!r}")
    return best_checkpoint(run, "sft") if start == "sft" else resolve_model(config, run)


def train_stage(
    kind: str,
    config: dict,
    run: Path,
    executor: str | None = None,
    force: bool = False,
    name: str | None = None,
) -> Path:
    """Train with the profile's settings into `run/<name or kind>`; returns that folder."""
    executor = executor or config[kind]["executor"]
    base = start_model(kind, config, run)
    dataset = dataset_stage(kind, config, run, name)
    out = run / (name or kind)
    if executor == "cosmos-rl":
        from .cosmos_rl import launch, write_config

        overrides = {
            "policy.model_name_or_path": str(base),
            "train.output_dir": str(out / "cosmos_rl"),
            "custom.dataset.path": str(dataset),
        }
        if kind == "grpo":  # updates per rollout batch: the same in both executors
            overrides["train.train_policy.mu_iterations"] = config[kind]["mu_iterations"]
        toml_path = write_config(kind, out / f"{kind}.toml", overrides)
        code = launch(kind, toml_path, log_path=out / "cosmos_rl.log")
        if code:
            raise RuntimeError(
                f"cosmos-rl {kind} exited with code {code}; see {out / 'cosmos_rl.log'}"
            )
        return out
    if executor != "local":
        raise ValueError(f"{kind}.executor must be 'local' or 'cosmos-rl', got {executor!r}")
    from . import train

    # the keys dataset_stage, start_model, balance_experiment and the executor choice read; the
    # rest are the trainer's settings
    data_keys = {
        "executor",
        "video",
        "balance_labels",
        "rationale",
        "prompt",
        "limit",
        "start",
        "balance_steps",
    }
    settings = {k: v for k, v in config[kind].items() if k not in data_keys}
    if kind == "sft":
        train.train_sft(base, dataset, out, train.SFTSettings(**settings, seed=config["seed"]))
    else:
        grpo = train.GRPOSettings(**settings, seed=config["seed"], force=force)
        train.train_grpo(base, dataset, out, grpo)
    return out


def balance_experiment(config: dict, run: Path) -> dict:
    """Label balancing, tested: GRPO from the same start for the same steps
    (`grpo.balance_steps`) with the same seed on the balanced pool and on the same rows as they
    come; each final model, and the start (`at_start`), scores the eval split under GRPO's
    prompt. A model's `majority_share` is the share of its eval answers that are the training
    rows' most frequent label, the one an unbalanced policy collapses onto: an arm drifted
    towards it only if it answers it more often than the start did. The start and a balanced
    arm that is the main run's checkpoint score into their folders of GRPO's sweep, which scores
    the same model, split and prompt: whichever comes second finds the answers there."""
    from .metrics import read_predictions

    steps = config["grpo"]["balance_steps"]
    args = score_args(config, run, config["grpo"]["prompt"])
    start = start_model("grpo", config, run)
    arms = {
        "at_start": (start, start_folder("grpo", run, start, args)),
        "balanced": balanced_arm(config, run, steps),
        "unbalanced": (short_grpo(config, run, steps, False), run / "balance" / "unbalanced"),
    }
    counts = json.loads((run / "data" / "grpo_unbalanced" / "prepare_report.json").read_text())
    majority = max(counts["label_counts_before"], key=counts["label_counts_before"].get)
    result = {"start": config["grpo"]["start"], "steps": steps, "seed": config["seed"]}
    result["majority_label"] = majority
    for name, (model, folder) in arms.items():
        result[name] = scored_arm(model, folder, majority, args)
    predictions = read_predictions(arms["unbalanced"][1] / "predictions.jsonl")
    labels = [str(r["pc"]) for r in predictions if r.get("pc") is not None]
    result["eval_labels"] = {str(k): labels.count(str(k)) for k in range(1, 6)}
    return result


def scored_arm(model: str | Path, out: Path, majority: str, args: dict) -> dict:
    """One model of the balance experiment scored on the eval split into `out`: its answers'
    histogram, the share that is `majority`, its accuracy and Pearson r with their intervals."""
    from .metrics import evaluate

    metrics = evaluate(score_split(model, out_dir=out, **args), out / "metrics.json")
    histogram = metrics["prediction_histogram"]
    return {
        "checkpoint": str(model),
        "eval_histogram": histogram,
        "majority_share": histogram[majority] / max(1, sum(histogram.values())),
        **{k: metrics[k] for k in ("accuracy", "accuracy_ci", "pearson", "pearson_ci")},
    }


def balanced_arm(config: dict, run: Path, steps: int) -> tuple[Path, Path]:
    """The balanced arm's checkpoint and the folder it scores into. The main GRPO run's
    checkpoint at `steps`, with its sweep folder, when the run trained on balanced labels, has
    one and its rate is constant after warm-up (`decay: none`): its first `steps` steps are then
    exactly a `steps`-step run (same start, seed, batches and rates), at no extra cost.
    Otherwise a separate short run."""
    main = checkpoints(run, "grpo")
    if main_run_is_balanced_arm(config["grpo"]) and steps in main:
        return main[steps], sweep_folder(run, "grpo", steps)
    return short_grpo(config, run, steps, True), run / "balance" / "balanced"


def main_run_is_balanced_arm(grpo: dict) -> bool:
    """Whether the main GRPO run's first steps are the balance experiment's balanced arm: it
    trains on balanced labels at a rate that does not depend on the run's length."""
    return grpo["balance_labels"] and grpo["decay"] == "none"


def short_grpo(config: dict, run: Path, steps: int, balance_labels: bool) -> Path:
    """The final checkpoint of a `steps`-step GRPO run on balanced or as-they-come labels."""
    from .config import with_overrides

    name = "grpo_balanced" if balance_labels else "grpo_unbalanced"
    overrides = {
        "grpo.steps": steps,
        "grpo.save_every": steps,
        "grpo.balance_labels": balance_labels,
    }
    train_stage("grpo", with_overrides(config, overrides), run, name=name)
    return checkpoints(run, name)[steps]


def checkpoints(run: Path, kind: str) -> dict[int, Path]:
    """Checkpoints of a stage, from the in-process trainer or from cosmos-rl's exports."""
    from .cosmos_rl import export_dirs
    from .train import checkpoints as local

    found = local(run / kind)
    return found or export_dirs(run / kind / "cosmos_rl")


def sweep_stage(kind: str, config: dict, run: Path) -> dict:
    """Score the eval split with every checkpoint of a stage; step 0 is the model it started
    from, scored with the stage's prompt, so the curve shows what training changed."""
    found = checkpoints(run, kind)
    if not found:
        raise NotRunYet(f"no {kind} checkpoints under {run / kind}; run the training cell first")
    found = {0: start_model(kind, config, run)} | found
    args = score_args(config, run, config[kind]["prompt"])
    start_folder(kind, run, found[0], args)
    validation = {"source": splits_stage(config, run), "split": "val", "limit": None}
    table = sweep_checkpoints(found, run / kind / "sweep", validation, **args)
    selected = table["selected"]  # the checkpoint best_checkpoint returns
    if config[kind].get("rationale", False) and selected:
        table["rationale"] = rationale_stage(kind, config, run, selected["step"])
    return table


def start_folder(kind: str, run: Path, model: str | Path, args: dict) -> Path:
    """Step 0's folder of a stage's sweep, given the answers of an earlier pass of the run that
    scored the same model with the same prompt, if one did: SFT starts from the model zero-shot
    scored (the full profile asks both the benchmark's question), and GRPO from that model or
    from SFT's selected checkpoint, which SFT's sweep scored (the smoke profile asks both to
    think first)."""
    folder = sweep_folder(run, kind, 0)
    same = {k: args[k] for k in ("source", "split", "prompt_path", "video_settings", "sampling")}
    for earlier in [run / "zero_shot", *sorted((run / "sft" / "sweep").glob("step_*"))]:
        if earlier != folder and adopt_answers(earlier, folder, model, **same):
            break
    return folder


def rationale_stage(kind: str, config: dict, run: Path, step: int) -> dict:
    """How well the think blocks one sweep step wrote name the eval clips' annotated violations
    (`metrics.rationale_metrics`); also written to that step's folder as rationale.json."""
    from .metrics import rationale_metrics, read_predictions
    from .videophy2 import load_rows, stated_violations

    folder = sweep_folder(run, kind, step)
    rows = load_rows(*resolve_source(config, run, "eval"), config["data"]["limit"]).rows
    annotated = {row["id"]: stated_violations(row) for row in rows}
    records = read_predictions(folder / "predictions.jsonl")
    result = {"step": step, **rationale_metrics(records, annotated)}
    (folder / "rationale.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def sweep_folder(run: Path, kind: str, step: int) -> Path:
    """Where a stage's sweep keeps one step's answers on the eval split."""
    return run / kind / "sweep" / f"step_{step}"


def best_checkpoint(run: Path, kind: str) -> Path:
    """The trained checkpoint its sweep selected on validation (`metrics.select_step`), or the
    last one when no sweep was run."""
    found = checkpoints(run, kind)
    if not found:
        raise NotRunYet(
            f"no {kind} checkpoints under {run / kind}: train {kind} first (notebook "
            f"{STAGES[kind][:2]}, or `python -m recipe_utils train {kind}`)"
        )
    sweep = run / kind / "sweep" / "sweep.json"
    if sweep.exists():
        selected = json.loads(sweep.read_text()).get("selected")
        if selected and selected["step"] in found:
            return found[selected["step"]]
    return found[max(found)]
