"""`python -m recipe_utils <command>`: the course's command line.

Each command is a thin layer over one function of the package, so that what a notebook does
in a cell can also be done from a shell on a GPU machine.
"""

from __future__ import annotations

import argparse
import sys


def cmd_tiny_model(args: argparse.Namespace) -> None:
    from .tiny import build_tiny_model

    print(build_tiny_model(args.out, seed=args.seed))


def cmd_synth(args: argparse.Namespace) -> None:
    from .synthetic import generate

    print(generate(args.out, args.n_train, args.n_test, seed=args.seed))


def cmd_course(args: argparse.Namespace) -> None:
    from .course import run_course

    executed = run_course(args.profile, only=args.only, out=args.out)
    folder = executed[-1].parent
    print(f"\nexecuted notebooks: {folder}")
    for name in ("summary.md", "metrics"):
        if (folder / name).exists():
            print(f"{name}: {folder / name}")


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

    p = sub.add_parser("course", help="run the notebooks headless with papermill")
    p.add_argument("--profile", default="smoke", help="smoke, full, or a path to a profile YAML")
    p.add_argument("--only", nargs="+", metavar="NN", help="run only these notebooks (e.g. 01 03)")
    p.add_argument("--out", help="run folder (default: the profile's run_dir)")
    p.set_defaults(func=cmd_course)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .config import ConfigError

    try:
        args.func(args)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
