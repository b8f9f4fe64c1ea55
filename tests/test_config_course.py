import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import tomllib
import yaml

from recipe_utils import course
from recipe_utils.config import REPO_ROOT, ConfigError, load_config


def test_profiles_load_and_overrides_apply():
    config = load_config("smoke", {"sft.steps": 3, "data": {"limit": 5}})
    assert config["sft"]["steps"] == 3 and config["data"]["limit"] == 5
    assert load_config("full")["model"]["name"] == "nvidia/Cosmos-Reason1-7B"


def test_unknown_setting_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="sft.stpes"):
        load_config("smoke", {"sft.stpes": 3})
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        load_config("nope")


def dotted_keys(tree: dict, where: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        keys.add(where + key)
        if isinstance(value, dict) and key != "notebooks":
            keys |= dotted_keys(value, f"{where}{key}.")
    return keys


def test_a_stage_reads_the_smaller_of_its_own_and_the_data_row_limit():
    from recipe_utils.pipeline import row_limit

    config = load_config("smoke", {"data.limit": None, "grpo.limit": 80})
    assert row_limit(config, "grpo") == 80 and row_limit(config, "sft") is None
    assert row_limit(load_config("smoke", {"data.limit": 20, "grpo.limit": 80}), "grpo") == 20
    assert row_limit(load_config("smoke", {"data.limit": 20}), "sft") == 20


def test_full_and_smoke_profiles_have_the_same_settings():
    assert dotted_keys(load_config("smoke")) == dotted_keys(load_config("full"))


def write_notebook(path: Path, source: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('PROFILE = "smoke"\nRUN_DIR = ""\nOVERRIDES = {}\nWHO = "world"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(source)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


@pytest.fixture
def notebooks(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(
        folder / "01_hello.ipynb",
        "from pathlib import Path\nPath(RUN_DIR, 'hello.txt').write_text(f'hello {WHO}')",
    )
    write_notebook(folder / "02_fails.ipynb", "x = 1\nraise ValueError('boom in cell')")
    return folder


def test_runner_executes_in_order_with_parameters(notebooks, tmp_path):
    executed = course.run_course("smoke", only=["1"], out=tmp_path / "run", folder=notebooks)
    assert [p.name for p in executed] == ["01_hello.ipynb"]
    assert (tmp_path / "run" / "hello.txt").read_text() == "hello world"


def test_runner_stops_at_the_failing_notebook_and_names_the_cell(notebooks, tmp_path):
    with pytest.raises(
        course.CourseError,
        match=r"02_fails.ipynb failed in cell \[3\] \('x = 1'\): ValueError: boom",
    ):
        course.run_course("smoke", out=tmp_path / "run", folder=notebooks)
    assert (tmp_path / "run" / "hello.txt").exists()  # the first one ran


def test_unknown_notebook_parameter_is_an_error_before_anything_runs(notebooks, tmp_path):
    profile = tmp_path / "typo.yaml"
    config = load_config("smoke")
    config["notebooks"] = {"01_hello": {"WHOM": "x"}}
    profile.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"01_hello.ipynb: unknown parameter\(s\) \['WHOM'\]"):
        course.run_course(str(profile), out=tmp_path / "run", folder=notebooks)
    assert not (tmp_path / "run" / "hello.txt").exists()


def test_only_names_a_missing_notebook(notebooks):
    with pytest.raises(ConfigError, match=r"\['07'\]"):
        course.find_notebooks(["07"], notebooks)


def test_course_notebooks_declare_what_the_profiles_pass():
    for profile in ("smoke", "full"):
        config = load_config(profile)
        for notebook in course.find_notebooks():
            course.check_parameters(
                notebook, course.notebook_parameters(config, profile, notebook, Path("r"))
            )


@pytest.mark.parametrize(
    "command", ["tiny-model", "synth", "course", "prepare", "score", "evaluate", "train"]
)
def test_every_command_has_help(command):
    result = subprocess.run(
        [sys.executable, "-m", "recipe_utils", command, "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "usage:" in result.stdout


def test_environment_yml_installs_the_same_project():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert env["channels"] == ["conda-forge"]
    assert {"ffmpeg", "pip"} <= {d.split("=")[0] for d in conda} and "python=3.11" in conda
    assert "-e .[dev]" in pip and "-c constraints/cpu.txt" in pip
    names = {d.split("=")[0].split(">")[0].split("<")[0] for d in conda}
    declared = {
        d.split("=")[0].split(">")[0].split("<")[0].split("[")[0] for d in project["dependencies"]
    }
    assert not names & declared, "a package is pinned both by conda and by pyproject"
