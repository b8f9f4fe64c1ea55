"""Run the course notebooks headless, in order, with papermill.

Every notebook receives the profile name, the run folder and the overrides (`OVERRIDES`, dotted
keys); a profile may add per-notebook parameters under `notebooks:`. A parameter a notebook does
not declare in its `parameters` cell, or an override the profile does not know, is an error
before anything runs: papermill would otherwise inject it silently and the run would use the
notebook's default instead of what the user asked for.

A grid runs one course per combination of values, each in its own folder named after it; a
folder whose notebooks all finished (`course.json`) is not run again, so a grid resumes.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from .config import NOTEBOOK_DIR, ConfigError, load_config, repo_path, run_dir
from .doctor import preflight

PROGRESS_FILE = "course.json"

CELL_TIMEOUT_S = 1800
# Spins (libgomp's unit) a torch thread waits for its siblings before it sleeps.
SPIN_COUNT = "10000"


class CourseError(RuntimeError):
    """A notebook failed; the message names the notebook, the cell and the error."""


def find_notebooks(only: list[str] | None = None, folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The course notebooks in order (`01_...` to `05_...`), optionally only those numbered."""
    notebooks = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = {n.zfill(2) for n in only}
        chosen = [nb for nb in notebooks if nb.name[:2] in wanted]
        missing = wanted - {nb.name[:2] for nb in chosen}
        if missing:
            known = [nb.name for nb in notebooks]
            raise ConfigError(f"no notebook numbered {sorted(missing)} in {folder}; found {known}")
        return chosen
    if not notebooks:
        raise ConfigError(f"no notebooks named NN_*.ipynb in {folder}")
    return notebooks


def notebook_parameters(
    config: dict, profile: str, notebook: Path, out: Path, overrides: dict | None = None
) -> dict[str, Any]:
    params: dict[str, Any] = {"PROFILE": profile, "RUN_DIR": str(out)}
    if overrides:  # only then: a notebook without OVERRIDES could not honour them
        params["OVERRIDES"] = dict(overrides)
    params.update((config.get("notebooks") or {}).get(notebook.stem, {}))
    return params


def check_parameters(notebook: Path, params: dict[str, Any]) -> None:
    """Refuse parameters that the notebook's `parameters` cell does not declare."""
    import papermill

    declared = papermill.inspect_notebook(str(notebook))
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ConfigError(
            f"{notebook.name}: unknown parameter(s) {unknown}; its parameters cell declares "
            f"{sorted(declared)}. Fix the profile's `notebooks: {notebook.stem}:` section."
        )


def failure_message(notebook: Path, output: Path, exc: Exception) -> str:
    """Name the notebook, the cell (its number in the executed copy and its first line) and the error."""
    cell = getattr(exc, "exec_count", None)
    first_line = (getattr(exc, "source", "") or "").strip().splitlines()[:1]
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    where = f"cell [{cell}]" if cell is not None else "a cell"
    if first_line:
        where += f" ({first_line[0]!r})"
    return f"{notebook.name} failed in {where}: {ename}: {evalue}\nexecuted copy: {output}"


def finished_notebooks(run: Path) -> dict[str, float]:
    """Notebooks that ran to the end in this run folder, with their wall time in seconds."""
    path = run / PROGRESS_FILE
    return json.loads(path.read_text())["finished"] if path.exists() else {}


def mark_finished(run: Path, notebook: Path, seconds: float) -> None:
    finished = finished_notebooks(run) | {notebook.stem: round(seconds, 1)}
    (run / PROGRESS_FILE).write_text(json.dumps({"finished": finished}, indent=2) + "\n")


def run_course(
    profile: str = "smoke",
    only: list[str] | None = None,
    out: str | Path | None = None,
    folder: Path = NOTEBOOK_DIR,
    cell_timeout: int = CELL_TIMEOUT_S,
    overrides: dict | None = None,
) -> list[Path]:
    """Execute the notebooks in order; stop at the first failure and say where it happened."""
    import papermill

    config = load_config(profile, overrides)
    preflight(config, str(profile), out)  # a GPU profile stops here if the machine lacks a part
    target = repo_path(out or config["run_dir"])
    plan = [
        (nb, notebook_parameters(config, profile, nb, target, overrides))
        for nb in find_notebooks(only, folder)
    ]
    for notebook, params in plan:
        check_parameters(notebook, params)
    run_dir(config, target)  # made, and its settings recorded, once everything checked out
    os.environ.setdefault("TQDM_DISABLE", "1")
    # The kernels inherit this. torch's OpenMP threads spin at the end of every op until their
    # siblings arrive. A short spin before sleeping was the fastest on idle cores; on cores
    # other jobs keep busy, OMP_WAIT_POLICY=PASSIVE is faster, and a user who sets it keeps it
    # (bench/README.md, "Where the time goes").
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)
    executed = []
    for notebook, params in plan:
        output = target / notebook.name
        start = time.perf_counter()
        print(f"running {notebook.name} ...", flush=True)
        try:
            papermill.execute_notebook(
                str(notebook),
                str(output),
                parameters=params,
                kernel_name="python3",
                execution_timeout=cell_timeout,
                cwd=str(target),  # beside the executed copy, so its relative links resolve
                progress_bar=False,
            )
        except papermill.PapermillExecutionError as exc:
            raise CourseError(failure_message(notebook, output, exc)) from exc
        seconds = time.perf_counter() - start
        mark_finished(target, notebook, seconds)
        print(f"  done in {seconds:.0f}s -> {output}", flush=True)
        executed.append(output)
    return executed


def grid_name(combination: dict[str, Any]) -> str:
    """A folder name for one combination: `seed=1_grpo.kl_beta=0.05`."""
    parts = (f"{key}={value}" for key, value in combination.items())
    return re.sub(r"[^\w.=+-]", "", "_".join(parts))


def grid_combinations(grid: dict[str, list]) -> dict[str, dict[str, Any]]:
    """Every combination of the grid's values, by folder name, in the order given."""
    for key, values in grid.items():
        if not values:
            raise ConfigError(f"the grid gives no values for {key!r}")
    combinations = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    named = {grid_name(c): c for c in combinations}
    if len(named) < len(combinations):
        raise ConfigError(f"the grid repeats a value: {grid}")
    return named


def run_grid(
    profile: str,
    grid: dict[str, list],
    overrides: dict | None = None,
    only: list[str] | None = None,
    out: str | Path | None = None,
    folder: Path = NOTEBOOK_DIR,
    cell_timeout: int = CELL_TIMEOUT_S,
) -> list[Path]:
    """One course per combination, each in `out/<name>` (default: the profile's run_dir + `-grid`).

    Every combination's settings are checked, and its folder made, before the first notebook
    runs; a folder whose notebooks all finished is skipped, so an interrupted grid resumes.
    """
    overrides = dict(overrides or {})
    both = sorted(set(grid) & set(overrides))
    if both:
        raise ConfigError(f"{both} given both as a fixed setting and in the grid")
    parent = repo_path(out or f"{load_config(profile, overrides)['run_dir']}-grid")
    notebooks = find_notebooks(only, folder)
    runs = {name: overrides | c for name, c in grid_combinations(grid).items()}
    configs = {name: load_config(profile, settings) for name, settings in runs.items()}
    # made only once every combination is valid; a folder holding other settings stops here
    folders = [run_dir(configs[name], parent / name) for name in runs]
    for target, settings in zip(folders, runs.values()):
        if {nb.stem for nb in notebooks} <= set(finished_notebooks(target)):
            print(f"{target.name}: finished earlier, not run again", flush=True)
            continue
        print(f"== {target.name}", flush=True)
        run_course(profile, only, target, folder, cell_timeout, settings)
    return folders
