"""Mutation testing of the core modules with mutmut; the score is saved as bench/results/mutants.json.

    python bench/mutants.py             # mutate the core functions, run their tests, record the score
    python bench/mutants.py --report    # only record the score of the last run (from mutants/)

mutmut changes one thing at a time in a function (an operator, a constant, a condition) and runs
the tests that call that function; a mutant that no test notices "survives" and points at a
behaviour no test pins. `[tool.mutmut]` in pyproject.toml says which files are mutated and which
fast tests judge the mutants; `CORE` below says which functions are run: the answer parsing and
rewards, the GRPO maths and checkpoint bookkeeping, the metrics and their intervals, scoring's
resumable writing, label balancing and downloads. The tiny-model training and scoring runs take
tens of seconds each, too long to repeat once per mutant on a CPU; the bugs they catch (resume
from base weights, unmerged LoRA checkpoints, a missing expected score) were planted by hand.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from report import RESULTS_DIR, save_result, write_readme

REPO = Path(__file__).resolve().parent.parent
MUTANTS = REPO / "mutants"


def functions(module: str, *names: str) -> tuple[str, ...]:
    """mutmut's name patterns for the mutants of these functions (`Class.method` for methods).
    A pattern also matches the function's own name, which is how mutmut picks its tests."""
    mangled = ("xǁ{}ǁ{}".format(*name.split(".")) if "." in name else f"x_{name}" for name in names)
    return tuple(f"recipe_utils.{module}.{name}*" for name in mangled)


CORE = (
    *functions("answers", "parse_answer", "follows_format"),
    *functions("rewards", "parse_reference", "accuracy_reward", "format_reward", "total_reward"),
    *functions(
        "train",
        "batch_order",
        "lr_lambda",
        "group_advantages",
        "clipped_objective",
        "kl_penalty",
        "masked_mean",
        "grpo_loss",
        "completion_mask",
        "collapsed_score",
        "checkpoints",
        "resume_point",
        "read_log",
        "truncate_log",
        "GRPOSettings.__post_init__",
    ),
    *functions(
        "metrics",
        "_read_jsonl",
        "_mean",
        "_pearson",
        "_correlation",
        "_accuracy_ci",
        "_pearson_ci",
        "_confusion",
        "_best",
    ),
    *functions(
        "scoring",
        "vote",
        "expected_from_probs",
        "answer_position",
        "repair_tail",
        "done_ids",
        "append_records",
        "batches",
        "score_rows",
    ),
    *functions(
        "videophy2",
        "url_key",
        "label_counts",
        "balance_labels",
        "unreachable_hosts",
        "_attempt",
        "_fetch",
    ),
)
KILLED = ("killed", "timeout")  # a mutant that makes the tests hang is caught too


def run_mutmut(max_children: int) -> None:
    """mutmut keeps its results in mutants/ and resumes there; a changed function is redone."""
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *CORE]
    subprocess.run(command, cwd=REPO, check=False)


def outcomes(folder: Path = MUTANTS) -> dict[str, str]:
    """The status of every core mutant of the last run, by mutant name."""
    from mutmut.stats import status_by_exit_code

    found = {}
    for meta in sorted(folder.rglob("*.py.meta")):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in CORE):
                found[name] = status_by_exit_code[code]
    return found


def module_of(name: str) -> str:
    return name.split(".")[1]


def summarise(found: dict[str, str]) -> dict:
    """Counts by status, overall and per module, and the score: killed / checked."""
    if not found:
        raise SystemExit("error: no mutmut results under mutants/; run `make mutants` first")
    checked = {name: status for name, status in found.items() if status != "not checked"}
    killed = sum(status in KILLED for status in checked.values())
    modules = sorted({module_of(name) for name in found})
    return {
        "score": round(100 * killed / len(checked), 1) if checked else None,
        "killed": killed,
        "checked": len(checked),
        "by_status": dict(Counter(found.values())),
        "by_module": {
            module: dict(Counter(s for n, s in found.items() if module_of(n) == module))
            for module in modules
        },
        "survived": sorted(name for name, status in found.items() if status == "survived"),
        "no_tests": sorted(name for name, status in found.items() if status == "no tests"),
    }


def record(results: dict, max_children: int, results_dir: Path = RESULTS_DIR) -> Path:
    from importlib.metadata import version

    import toml

    config = toml.load(REPO / "pyproject.toml")["tool"]["mutmut"]
    settings = {
        "tool": f"mutmut {version('mutmut')}",
        "functions": list(CORE),
        "tests": config["pytest_add_cli_args_test_selection"],
        "pytest_args": config["pytest_add_cli_args"],
        "max_children": max_children,
        "score": "(killed + timeout) / mutants checked",
    }
    summary = [
        {"measure": "mutation score, core functions", "value": results["score"], "unit": "%"},
        {"measure": "mutants killed", "value": results["killed"], "unit": "mutants"},
        {"measure": "mutants checked", "value": results["checked"], "unit": "mutants"},
        {"measure": "mutants surviving", "value": len(results["survived"]), "unit": "mutants"},
    ]
    return save_result(
        "mutants", settings=settings, results=results, summary=summary, results_dir=results_dir
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="only record the last run's score")
    parser.add_argument("--max-children", type=int, default=2, help="parallel mutants (default 2)")
    args = parser.parse_args(argv)
    if not args.report:
        run_mutmut(args.max_children)
    results = summarise(outcomes())
    print(record(results, args.max_children))
    print(f"mutation score {results['score']}% ({results['killed']} of {results['checked']})")
    for name in results["survived"]:
        print(f"  survived: {name}  (`mutmut show {name}`)")
    write_readme()
    return 0


if __name__ == "__main__":
    sys.exit(main())
