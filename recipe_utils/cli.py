"""`python -m recipe_utils <command>`: the course's command line.

Each command is a thin layer over one function of the package, so that what a notebook does
in a cell can also be done from a shell on a GPU machine.
"""

from __future__ import annotations

import argparse
import json
import sys

from .prompts import PROMPTS_DIR

DEFAULT_PROMPT = str(PROMPTS_DIR / "video_reward.yaml")  # the benchmark's, wherever one runs


def cmd_tiny_model(args: argparse.Namespace) -> None:
    from .tiny import build_tiny_model

    print(build_tiny_model(args.out, seed=args.seed))


def cmd_synth(args: argparse.Namespace) -> None:
    from .synthetic import generate

    print(generate(args.out, args.n_train, args.n_test, seed=args.seed))


def cmd_course(args: argparse.Namespace) -> None:
    from .course import run_course, run_grid

    overrides = dict(args.set or [])
    if args.grid:
        runs = run_grid(args.profile, dict(args.grid), overrides, only=args.only, out=args.out)
        print(f"\n{len(runs)} runs in {runs[0].parent}; compare them with")
        print(f"python -m recipe_utils compare {' '.join(str(r) for r in runs)} --out DIR")
        return
    executed = run_course(args.profile, only=args.only, out=args.out, overrides=overrides)
    folder = executed[-1].parent
    print(f"\nexecuted notebooks: {folder}")
    for name in ("summary.md", "metrics"):
        if (folder / name).exists():
            print(f"{name}: {folder / name}")


def cmd_compare(args: argparse.Namespace) -> None:
    from .compare import compare_runs

    for path in compare_runs(args.runs, args.out, metrics=args.metrics):
        print(f"written: {path}")


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import doctor

    ready, report = doctor(args.profile)
    print(report)
    return 0 if ready else 1


def cmd_prepare(args: argparse.Namespace) -> None:
    from .videophy2 import prepare

    print(
        prepare(
            args.source,
            args.split,
            args.out,
            args.prompt,
            balance_labels=args.balance_labels,
            rationale=args.rationale,
            limit=args.limit,
            fps=args.fps,
            max_pixels=args.max_pixels,
            seed=args.seed,
        )
    )


def cmd_score(args: argparse.Namespace) -> None:
    from .scoring import Parallel, Sampling, score_split

    sampling = Sampling(
        n=args.samples,
        max_tokens=args.max_tokens,
        greedy=args.greedy,
        temperature=args.temperature,
        seed=args.seed,
    )
    video = {"fps": args.fps, "total_pixels": args.total_pixels}
    options = {"tensor_parallel_size": args.tensor_parallel_size} if args.backend == "vllm" else {}
    predictions = score_split(
        args.model,
        args.source,
        args.split,
        args.out,
        args.prompt,
        video,
        sampling,
        backend=args.backend,
        limit=args.limit,
        batch_size=args.batch_size,
        keep_above=args.keep_above,
        parallel=Parallel(args.engine, args.replicas, args.decode_workers),
        **options,
    )
    written = ["predictions.jsonl", "failed.jsonl", "ranking.csv", "report.html"]
    if args.keep_above is not None:
        written += ["kept.txt", "dropped.txt"]
    print("\n".join(str(predictions.parent / name) for name in written))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .metrics import evaluate

    labels = None
    if args.labels:
        from .videophy2 import load_labels

        labels = load_labels(args.labels, args.split)
    metrics = evaluate(args.predictions, args.out, labels=labels)
    keys = ("n", "accuracy", "pearson", "spearman", "mae", "within1", "parse_failure_rate")
    print(
        json.dumps({k: metrics[k] for k in ("n_rows", "n_unlabeled", "n_failed", *keys)}, indent=2)
    )
    print(f"written: {args.out}")


def cmd_train(args: argparse.Namespace) -> None:
    from .config import load_config, run_dir
    from .pipeline import train_stage

    config = load_config(args.profile, dict(args.set or []))
    print(
        train_stage(
            args.kind, config, run_dir(config, args.out), executor=args.executor, force=args.force
        )
    )


def setting(text: str) -> tuple[str, object]:
    """`key=value` with a YAML value: `sft.steps=50`, `grpo.kl_beta=0.1`."""
    from .config import ConfigError, parse_value

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, parse_value(value)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def grid_setting(text: str) -> tuple[str, list]:
    """`key=v1,v2,...`: the values one setting takes across a grid (YAML, as in --set)."""
    key, sep, values = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=V1,V2,..., got {text!r}")
    return setting(f"{key}=[{values}]")


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text}")
    return value


def keep_bar(text: str) -> float:
    """--keep-above: a number on the 1..5 scale (ranking.check_bar)."""
    from .ranking import check_bar

    try:
        return check_bar(float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recipe_utils",
        description="Score generated videos for physical plausibility with a vision-language model.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("tiny-model", help="build the tiny offline Qwen2.5-VL model and processor")
    p.add_argument("--out", required=True, help="folder to save the model and processor in")
    p.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    p.set_defaults(func=cmd_tiny_model)

    p = sub.add_parser("synth", help="render the synthetic physics benchmark (mp4 + jsonl)")
    p.add_argument("--out", required=True, help="folder for train.jsonl, test.jsonl and videos/")
    p.add_argument("--n-train", type=int, default=600, help="clips in the train split")
    p.add_argument("--n-test", type=int, default=120, help="clips in the test split")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same benchmark")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("prepare", help="build a conversation dataset (save_to_disk) for training")
    p.add_argument(
        "--source", required=True, help="hub id, .jsonl/.parquet/.csv file, or benchmark folder"
    )
    p.add_argument("--split", help="split name (hub split or FOLDER/SPLIT.jsonl)")
    p.add_argument("--out", required=True, help="folder for the saved dataset")
    p.add_argument(
        "--prompt", default=DEFAULT_PROMPT, help="prompt YAML file (default: %(default)s)"
    )
    p.add_argument(
        "--balance-labels", action="store_true", help="resample every pc value to equal counts"
    )
    p.add_argument(
        "--rationale",
        action="store_true",
        help="answers list each row's human_violated_rules in a <think> block before the score",
    )
    p.add_argument("--limit", type=int, help="use at most this many rows")
    p.add_argument("--fps", type=float, default=1, help="frames per second the trainer samples")
    p.add_argument("--max-pixels", type=int, default=81920, help="pixels per frame while training")
    p.add_argument("--seed", type=int, default=0, help="seed for label balancing")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("score", help="score videos 1..5 into DIR/predictions.jsonl (resumable)")
    p.add_argument("--model", required=True, help="model folder or hub id")
    p.add_argument(
        "--source",
        required=True,
        help="a folder of videos (searched recursively), a .jsonl/.parquet/.csv file listing "
        "video_url paths or URLs (human scores optional), a benchmark folder with --split, "
        "or a hub id",
    )
    p.add_argument("--split", help="split name (benchmark folder or hub dataset)")
    p.add_argument("--out", required=True, help="output folder (predictions.jsonl, report.html)")
    p.add_argument("--backend", choices=["transformers", "vllm"], default="transformers")
    p.add_argument(
        "--prompt", default=DEFAULT_PROMPT, help="prompt YAML file (default: %(default)s)"
    )
    p.add_argument("--limit", type=int, help="score at most this many videos")
    p.add_argument("--samples", type=int, default=1, help="answers sampled per video")
    p.add_argument("--batch-size", type=int, default=8, help="videos per generate call")
    p.add_argument("--fps", type=float, default=16, help="frames per second sampled (recipe: 16)")
    p.add_argument("--total-pixels", type=int, default=8192 * 28 * 28, help="pixel budget per clip")
    p.add_argument("--max-tokens", type=int, default=4096, help="longest answer in tokens")
    p.add_argument("--temperature", type=float, default=0.6, help="sampling temperature")
    p.add_argument("--greedy", action="store_true", help="greedy decoding instead of sampling")
    p.add_argument("--seed", type=int, default=1, help="sampling seed")
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="GPUs per vLLM engine")
    p.add_argument(
        "--keep-above",
        type=keep_bar,
        metavar="X",
        help="write kept.txt (clips whose expected score, or answer, is above X) and dropped.txt",
    )
    p.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local: processes on this machine; ray: Ray Data (a cluster if RAY_ADDRESS is set)",
    )
    p.add_argument(
        "--replicas",
        type=positive,
        default=1,
        help="model copies scoring at once: one per GPU (or per tensor-parallel group), "
        "processes on CPU",
    )
    p.add_argument(
        "--decode-workers",
        type=non_negative,
        default=0,
        help="processes decoding clips ahead of the models (0: each replica decodes its own)",
    )
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("evaluate", help="metrics.json from a predictions.jsonl")
    p.add_argument("--predictions", required=True, help="predictions.jsonl written by `score`")
    p.add_argument("--out", required=True, help="metrics.json to write")
    p.add_argument(
        "--labels",
        help="scores found later (`pc`) matched to the predictions by `id`, or by the "
        "`video_url` a clip was scored from: a .jsonl/.parquet/.csv file, benchmark folder "
        "(with --split) or hub id",
    )
    p.add_argument("--split", help="split of --labels")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("train", help="fine-tune with SFT or GRPO, locally or with cosmos-rl")
    p.add_argument("kind", choices=["sft", "grpo"])
    p.add_argument("--executor", choices=["local", "cosmos-rl"], help="default: the profile's")
    p.add_argument("--profile", "--config", default="smoke", help="profile name or YAML path")
    p.add_argument("--out", help="run folder (default: the profile's run_dir)")
    p.add_argument(
        "--set",
        type=setting,
        action="append",
        metavar="KEY=VALUE",
        help="override a profile setting, e.g. sft.steps=50 (repeatable)",
    )
    p.add_argument("--force", action="store_true", help="GRPO: allow kl_beta = 0")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("doctor", help="check that this machine can run a profile, with fixes")
    p.add_argument("--profile", default="smoke", help="smoke, full, or a path to a profile YAML")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("course", help="run the notebooks headless with papermill")
    p.add_argument("--profile", default="smoke", help="smoke, full, or a path to a profile YAML")
    p.add_argument("--only", nargs="+", metavar="NN", help="run only these notebooks (e.g. 01 03)")
    p.add_argument(
        "--out", help="run folder (default: the profile's run_dir); with --grid, their parent"
    )
    p.add_argument(
        "--set",
        type=setting,
        action="append",
        metavar="KEY=VALUE",
        help="override a profile setting in every notebook, e.g. sft.lr=1e-4 (repeatable)",
    )
    p.add_argument(
        "--grid",
        type=grid_setting,
        action="append",
        metavar="KEY=V1,V2",
        help="run one course per combination of values, each in its own folder under --out "
        "(default: the profile's run_dir + '-grid'); finished runs are not redone (repeatable)",
    )
    p.set_defaults(func=cmd_course)

    p = sub.add_parser("compare", help="put runs side by side: table, seed spread, curves")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders written by `course`")
    p.add_argument("--out", required=True, help="folder for compare.md, compare.json, curves.png")
    p.add_argument(
        "--metrics",
        nargs="+",
        metavar="METRIC",
        help="metrics in the tables (default: accuracy pearson spearman mae); accuracy and "
        "pearson come with their bootstrap intervals",
    )
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .course import CourseError

    try:
        code = args.func(args)
    except (CourseError, ValueError, OSError, ImportError) as exc:  # errors written for users
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "\ninterrupted: what was written is kept; run the same command to go on",
            file=sys.stderr,
        )
        return 130
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
