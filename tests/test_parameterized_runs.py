"""Parameterized runs of the real notebooks: `course --set`, papermill `-p OVERRIDES`, a grid and
`compare`, on the smoke profile cut down to a few clips."""

import json
import subprocess
import sys

import pytest
from transformers import AutoTokenizer

from recipe_utils import cli
from recipe_utils.config import NOTEBOOK_DIR, read_settings

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]

# the untrained tiny model: these runs check how settings reach the notebooks, and the
# stand-in's pretraining (tests/test_pretrain.py) would add most of their time
SMALL = {"data.synthetic.n_train": 8, "data.synthetic.n_test": 6, "model.pretrain.steps": 0}
MAX_TOKENS = 32  # the profile's default is 96


def sets(settings: dict) -> list[str]:
    return [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]


def answers(run) -> list[str]:
    lines = (run / "zero_shot" / "predictions.jsonl").read_text().splitlines()
    return [json.loads(line)["raw"][0] for line in lines]


@pytest.fixture(scope="module")
def with_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("set") / "run"
    settings = {**SMALL, "scoring.sampling.max_tokens": MAX_TOKENS}
    assert cli.main(["course", "--only", "02", *sets(settings), "--out", str(out)]) == 0
    return out


def test_course_set_reaches_the_notebook_and_the_scorer(with_set):
    assert read_settings(with_set)["scoring"]["sampling"]["max_tokens"] == MAX_TOKENS
    # re-encoding the tiny model's decoded answers gives up to ~1.5x the tokens it generated, so
    # the bound is loose, and still well below the profile's default of 96
    tokenizer = AutoTokenizer.from_pretrained(with_set / "models" / "tiny")
    lengths = [
        len(tokenizer(text, add_special_tokens=False).input_ids) for text in answers(with_set)
    ]
    assert len(lengths) == SMALL["data.synthetic.n_test"] and max(lengths) < 2 * MAX_TOKENS


def test_papermill_with_overrides_equals_course_set(with_set, tmp_path):
    overrides = json.dumps({**SMALL, "scoring.sampling.max_tokens": MAX_TOKENS})
    out = tmp_path / "run"
    notebook = NOTEBOOK_DIR / "02_zero_shot_scoring.ipynb"
    command = [sys.executable, "-m", "papermill", str(notebook), str(tmp_path / "02.ipynb")]
    command += ["-p", "RUN_DIR", str(out), "-p", "OVERRIDES", overrides, "--cwd", str(NOTEBOOK_DIR)]
    subprocess.run(command, check=True, capture_output=True)
    assert read_settings(out) == read_settings(with_set)
    assert answers(out) == answers(with_set)


def test_a_two_seed_grid_runs_once_and_compares(tmp_path, capsys):
    grid = ["course", "--only", "02", "--grid", "seed=0,1", *sets(SMALL), "--out", str(tmp_path)]
    assert cli.main(grid) == 0
    runs = [tmp_path / "seed=0", tmp_path / "seed=1"]
    assert [read_settings(run)["seed"] for run in runs] == [0, 1]
    finished = [(run / "course.json").read_text() for run in runs]
    capsys.readouterr()
    assert cli.main(grid) == 0
    assert capsys.readouterr().out.count("finished earlier, not run again") == 2
    assert [(run / "course.json").read_text() for run in runs] == finished
    assert cli.main(["compare", *map(str, runs), "--out", str(tmp_path / "cmp")]) == 0
    table = (tmp_path / "cmp" / "compare.md").read_text()
    assert "| seed=0 | 0 | zero-shot |" in table and "| seed=1 | 1 | zero-shot |" in table
    assert (tmp_path / "cmp" / "curves.png").stat().st_size > 0
