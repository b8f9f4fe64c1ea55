"""The course's stages, each reading a profile and writing under the run folder.

A notebook cell or a shell command calls one stage; every stage writes its output to disk
(`data/`, `zero_shot/`, `sft/`, `grpo/`), so any stage can be re-run, resumed or inspected alone
and each notebook only reads what earlier stages wrote.

    run/data/{sft,grpo}/            conversation datasets (videophy2.prepare)
    run/zero_shot/                  predictions.jsonl, metrics.json, report.html
    run/sft/checkpoints/step_N/     model + processor (train.train_sft or cosmos-rl exports)
    run/sft/sweep/step_N/           predictions and metrics per checkpoint, sweep.json
    run/grpo/...                    the same for GRPO
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import repo_path, resolve_model, resolve_source
from .scoring import Parallel, Sampling, score_split, sweep_checkpoints


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
    """SFT starts from the base model, GRPO from the best SFT checkpoint (as the recipe)."""
    return best_checkpoint(run, "sft") if kind == "grpo" else resolve_model(config, run)


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
    dataset = dataset_stage(kind, config, run, name)
    base = start_model(kind, config, run)
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

    # the keys dataset_stage and the executor choice read; the rest are the trainer's settings
    data_keys = {"executor", "video", "balance_labels", "rationale", "prompt", "limit"}
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
    return sweep_checkpoints(found, run / kind / "sweep", **args)


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
