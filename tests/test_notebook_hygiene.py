"""The committed notebooks stay thin, stripped and in sync with their py:percent twins."""

import subprocess
import sys

import jupytext
import nbformat
import pytest

from recipe_utils.config import NOTEBOOK_DIR, REPO_ROOT
from recipe_utils.course import find_notebooks

NOTEBOOKS = find_notebooks()


def test_the_course_has_five_numbered_notebooks():
    assert [nb.name[:2] for nb in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_are_stripped(notebook):
    result = subprocess.run(
        [sys.executable, "-m", "nbstripout", "--verify", str(notebook)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"{notebook.name} carries outputs: run nbstripout on it"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_one_parameters_cell_with_cpu_safe_defaults(notebook):
    cells = nbformat.read(notebook, as_version=4).cells
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert 'PROFILE: str = "smoke"' in tagged[0].source


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_py_twin_is_in_sync(notebook):
    twin = notebook.with_suffix(".py")
    assert twin.exists(), f"{twin.name} is missing: jupytext --sync {notebook}"
    ipynb = jupytext.read(notebook)
    py = jupytext.read(twin)
    assert [c.source for c in ipynb.cells] == [c.source for c in py.cells], (
        f"{notebook.name} and {twin.name} differ: run jupytext --sync {notebook}"
    )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_stay_thin(notebook):
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "code":
            for block in cell.source.split("\ndef ")[1:]:
                body = block.split("\n\n")[0]
                assert body.count("\n") <= 4, (
                    f"{notebook.name}: move long functions into recipe_utils"
                )


def test_ruff_is_clean():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "recipe_utils",
            "tests",
            "bench",
            str(NOTEBOOK_DIR),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout
