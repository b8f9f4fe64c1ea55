"""The course's stages, each reading a profile and writing under the run folder.

A notebook cell or a shell command calls one stage; every stage writes its output to disk
(`data/`, `zero_shot/`, `sft/`, `grpo/`), so any stage can be re-run, resumed or inspected alone
and each notebook only reads what earlier stages wrote.

    run/data/{sft,grpo}/            conversation datasets (videophy2.prepare)
    run/zero_shot/                  predictions.jsonl, metrics.json, report.html
    run/sft/checkpoints/step_N/     model + processor (train.train_sft or cosmos-rl exports)
    run/sft/sweep/step_N/           predictions and metrics per checkpoint (and rationale.json
                                    for the selected one), sweep.json
    run/grpo/...                    the same for GRPO
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import repo_path
from .scoring import Parallel, Sampling, score_split, sweep_checkpoints

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


def row_limit(config: dict, kind: str) -> int | None:
    """Rows a stage reads from its split: the smaller of `data.limit` and `<kind>.limit`."""
    limits = [n for n in (config["data"]["limit"], config[kind].get("limit")) if n is not None]
    return min(limits) if limits else None


def dataset_stage(kind: str, config: dict, run: Path, name: str | None = None) -> Path:
    """The conversation dataset a trainer reads, with the stage's prompt and label balancing."""
    from .videophy2 import prepare

    out = run / "data" / (name or kind)
    if (out / "prepare_report.json").exists():
        return out
    video = config[kind]["video"]
    return prepare(
        *resolve_source(config, run, "train"),
        out,
        repo_path(config[kind]["prompt"]),
        balance_labels=bool(config[kind].get("balance_labels", False)),
        rationale=bool(config[kind].get("rationale", False)),
        limit=row_limit(config, kind),
        fps=video["fps"],
        max_pixels=video["max_pixels"],
        seed=config["seed"],
        download_dir=run / "data",
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

        toml_path = write_config(
            kind,
            out / f"{kind}.toml",
            {
                "policy.model_name_or_path": str(base),
                "train.output_dir": str(out / "cosmos_rl"),
                "custom.dataset.path": str(dataset),
            },
        )
        code = launch(kind, toml_path, log_path=out / "cosmos_rl.log")
        if code:
            raise RuntimeError(
                f"cosmos-rl {kind} exited with code {code}; see {out / 'cosmos_rl.log'}"
            )
        return out
    if executor != "local":
        raise ValueError(f"{kind}.executor must be 'local' or 'cosmos-rl', got {executor!r}")
    from . import train

    # the keys dataset_stage, start_model and the executor choice read; the rest are the
    # trainer's settings
    data_keys = {"executor", "video", "balance_labels", "rationale", "prompt", "limit", "start"}
    settings = {k: v for k, v in config[kind].items() if k not in data_keys}
    if kind == "sft":
        train.train_sft(base, dataset, out, train.SFTSettings(**settings, seed=config["seed"]))
    else:
        grpo = train.GRPOSettings(**settings, seed=config["seed"], force=force)
        train.train_grpo(base, dataset, out, grpo)
    return out


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
        raise FileNotFoundError(
            f"no {kind} checkpoints under {run / kind}; run the training cell first"
        )
    found = {0: start_model(kind, config, run)} | found
    args = score_args(config, run, config[kind]["prompt"])
    table = sweep_checkpoints(found, run / kind / "sweep", **args)
    best = table["best_by_pearson"]  # the checkpoint best_checkpoint selects
    if config[kind].get("rationale", False) and best:
        table["rationale"] = rationale_stage(kind, config, run, best["step"])
    return table


def rationale_stage(kind: str, config: dict, run: Path, step: int) -> dict:
    """How well the think blocks one sweep step wrote name the eval clips' annotated violations
    (`metrics.rationale_metrics`); also written to that step's folder as rationale.json."""
    from .metrics import rationale_metrics, read_predictions
    from .videophy2 import load_rows, stated_violations

    folder = run / kind / "sweep" / f"step_{step}"
    rows = load_rows(*resolve_source(config, run, "eval"), config["data"]["limit"]).rows
    annotated = {row["id"]: stated_violations(row) for row in rows}
    records = read_predictions(folder / "predictions.jsonl")
    result = {"step": step, **rationale_metrics(records, annotated)}
    (folder / "rationale.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


def best_checkpoint(run: Path, kind: str, metric: str = "pearson") -> Path:
    """The trained checkpoint its sweep ranks best (the last one when no sweep was run)."""
    found = checkpoints(run, kind)
    if not found:
        raise FileNotFoundError(f"no {kind} checkpoints under {run / kind}; train {kind} first")
    sweep = run / kind / "sweep" / "sweep.json"
    if sweep.exists():
        best = json.loads(sweep.read_text()).get(f"best_by_{metric}")
        if best and best["step"] in found:
            return found[best["step"]]
    return found[max(found)]
