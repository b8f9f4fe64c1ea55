"""Run the course notebooks headless, in order, with papermill.

Every notebook receives the profile name and the run folder; a profile may add per-notebook
parameters under `notebooks:`. A parameter a notebook does not declare in its `parameters` cell
is an error before anything runs: papermill would otherwise inject it silently and the run would
use the notebook's default instead of what the user asked for.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .config import NOTEBOOK_DIR, ConfigError, load_config, run_dir
from .doctor import preflight

CELL_TIMEOUT_S = 1800


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


def notebook_parameters(config: dict, profile: str, notebook: Path, out: Path) -> dict[str, Any]:
    params = {"PROFILE": profile, "RUN_DIR": str(out)}
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


def run_course(
    profile: str = "smoke",
    only: list[str] | None = None,
    out: str | Path | None = None,
    folder: Path = NOTEBOOK_DIR,
    cell_timeout: int = CELL_TIMEOUT_S,
) -> list[Path]:
    """Execute the notebooks in order; stop at the first failure and say where it happened."""
    import papermill

    config = load_config(profile)
    preflight(config, str(profile), out)  # a GPU profile stops here if the machine lacks a part
    target = run_dir(config, out)
    notebooks = find_notebooks(only, folder)
    plan = [(nb, notebook_parameters(config, profile, nb, target)) for nb in notebooks]
    for notebook, params in plan:
        check_parameters(notebook, params)
    os.environ.setdefault("TQDM_DISABLE", "1")
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
                cwd=str(notebook.parent),
                progress_bar=False,
            )
        except papermill.PapermillExecutionError as exc:
            raise CourseError(failure_message(notebook, output, exc)) from exc
        print(f"  done in {time.perf_counter() - start:.0f}s -> {output}", flush=True)
        executed.append(output)
    return executed
