import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import tomllib
import yaml

from recipe_utils import cli, course
from recipe_utils.config import (
    REPO_ROOT,
    ConfigError,
    NotRunYet,
    check_parameters,
    load_config,
    read_settings,
    run_dir,
    with_overrides,
)


def test_profiles_load_and_overrides_apply():
    config = load_config("smoke", {"sft.steps": 3, "data": {"limit": 5}})
    assert config["sft"]["steps"] == 3 and config["data"]["limit"] == 5
    assert load_config("full")["model"]["name"] == "nvidia/Cosmos-Reason1-7B"


def test_unknown_setting_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="sft.stpes"):
        load_config("smoke", {"sft.stpes": 3})
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        load_config("nope")


def test_overrides_as_text_are_read_like_a_dict_and_1e_4_is_a_number():
    asked = {"sft.lr": 1e-4, "seed": 1}
    assert load_config("smoke", json.dumps(asked)) == load_config("smoke", asked)
    assert load_config("smoke", "{sft.lr: 1e-4}")["sft"]["lr"] == 1e-4
    assert load_config("smoke", "") == load_config("smoke")


def test_an_unknown_key_is_named_with_the_known_ones_at_its_level():
    with pytest.raises(
        ConfigError, match=r"'no'; known here: data, grpo, machine, model, notebooks"
    ):
        load_config("smoke", {"no.such.key": 1})
    with pytest.raises(ConfigError, match=r"'sft\.stpes'; known here: .*sft\.steps"):
        load_config("smoke", {"sft.stpes": 1})


def test_a_variant_of_a_run_keeps_the_settings_the_run_was_given():
    config = load_config("smoke", {"seed": 3, "grpo.lr": 1e-4})
    variant = with_overrides(config, {"grpo.steps": 5})
    assert (variant["seed"], variant["grpo"]["lr"], variant["grpo"]["steps"]) == (3, 1e-4, 5)
    assert config["grpo"]["steps"] == load_config("smoke")["grpo"]["steps"]  # not changed


def test_a_value_of_the_wrong_type_is_refused():
    with pytest.raises(ConfigError, match=r"'sft.steps' is a number \(1600 in the profile\)"):
        load_config("smoke", {"sft.steps": "many"})
    with pytest.raises(ConfigError, match="'grpo.betas' is a list"):
        load_config("smoke", {"grpo.betas": 0.9})
    with pytest.raises(ConfigError, match="'scoring.sampling.greedy'"):
        load_config("smoke", {"scoring.sampling.greedy": 1})
    assert load_config("smoke", {"sft.lr": 1})["sft"]["lr"] == 1  # ints and floats mix


def test_a_run_folder_records_its_settings_and_refuses_others(tmp_path):
    config = load_config("smoke", {"seed": 1})
    run_dir(config, tmp_path)
    run_dir(config, tmp_path)  # the same settings again: the same run
    assert read_settings(tmp_path)["seed"] == 1
    with pytest.raises(ConfigError, match=r"other settings \(seed: 1 -> 2\)"):
        run_dir(load_config("smoke", {"seed": 2}), tmp_path)


def test_course_refuses_an_unknown_set_key_in_one_line_before_any_notebook(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["course", "--only", "02", "--set", "no.such.key=1", "--out", str(out)])
    error = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert error.count("\n") == 1
    assert error.startswith("error: unknown setting 'no'; known here: data, grpo, machine, model")


def test_grid_values_are_yaml_lists():
    assert cli.grid_setting("seed=0,1,2") == ("seed", [0, 1, 2])
    assert cli.grid_setting("grpo.kl_beta=0.02,5e-2") == ("grpo.kl_beta", [0.02, 0.05])
    assert cli.grid_setting("grpo.betas=[0.9,0.95],[0.9,0.99]")[1] == [[0.9, 0.95], [0.9, 0.99]]
    assert course.grid_combinations({"seed": [0, 1], "grpo.kl_beta": [0.02]}) == {
        "seed=0_grpo.kl_beta=0.02": {"seed": 0, "grpo.kl_beta": 0.02},
        "seed=1_grpo.kl_beta=0.02": {"seed": 1, "grpo.kl_beta": 0.02},
    }


def dotted_keys(tree: dict, where: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        keys.add(where + key)
        if isinstance(value, dict) and key != "notebooks":
            keys |= dotted_keys(value, f"{where}{key}.")
    return keys


def test_full_and_smoke_profiles_have_the_same_settings():
    assert dotted_keys(load_config("smoke")) == dotted_keys(load_config("full"))


def write_notebook(path: Path, source: str) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(
        'PROFILE = "smoke"\nRUN_DIR = ""\nOVERRIDES = {}\nWHO = "world"'
    )
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
        "import json\nfrom pathlib import Path\nPath(RUN_DIR, 'hello.txt').write_text(f'hello {WHO}')\n"
        "Path(RUN_DIR, 'overrides.json').write_text(json.dumps(OVERRIDES))",
    )
    write_notebook(folder / "02_fails.ipynb", "x = 1\nraise ValueError('boom in cell')")
    return folder


def test_runner_executes_in_order_with_parameters(notebooks, tmp_path):
    executed = course.run_course("smoke", only=["1"], out=tmp_path / "run", folder=notebooks)
    assert [p.name for p in executed] == ["01_hello.ipynb"]
    assert (tmp_path / "run" / "hello.txt").read_text() == "hello world"


@pytest.mark.parametrize(
    "environment, seen",
    [({}, course.SPIN_COUNT), ({"GOMP_SPINCOUNT": "300000"}, "300000")]
    + [({"OMP_WAIT_POLICY": "PASSIVE"}, "unset")],
)
def test_kernels_spin_briefly_for_torch_threads_unless_told_otherwise(
    environment, seen, tmp_path, monkeypatch
):
    for name in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(
        folder / "01_env.ipynb",
        "import os\nfrom pathlib import Path\n"
        "Path(RUN_DIR, 'policy.txt').write_text(os.environ.get('GOMP_SPINCOUNT', 'unset'))",
    )
    course.run_course("smoke", out=tmp_path / "run", folder=folder)
    assert (tmp_path / "run" / "policy.txt").read_text() == seen


def test_runner_passes_the_overrides_to_every_notebook_and_records_them(notebooks, tmp_path):
    course.run_course(
        "smoke", only=["1"], out=tmp_path / "run", folder=notebooks, overrides={"seed": 3}
    )
    assert json.loads((tmp_path / "run" / "overrides.json").read_text()) == {"seed": 3}
    assert read_settings(tmp_path / "run") == {
        k: v for k, v in load_config("smoke", {"seed": 3}).items() if k != "run_dir"
    }


def test_a_grid_runs_each_combination_in_its_folder_and_skips_finished_ones(notebooks, tmp_path):
    runs = course.run_grid("smoke", {"seed": [0, 1]}, only=["1"], out=tmp_path, folder=notebooks)
    assert [run.name for run in runs] == ["seed=0", "seed=1"]
    assert [read_settings(run)["seed"] for run in runs] == [0, 1]
    (runs[0] / "hello.txt").unlink()
    course.run_grid("smoke", {"seed": [0, 1, 2]}, only=["1"], out=tmp_path, folder=notebooks)
    assert not (runs[0] / "hello.txt").exists()  # finished: not run again
    assert (tmp_path / "seed=2" / "hello.txt").exists()


def test_a_grid_checks_every_combination_before_running_any(notebooks, tmp_path):
    out = tmp_path / "grid"
    with pytest.raises(ConfigError, match="'sft.steps' is a number"):  # the 2nd is wrong
        course.run_grid("smoke", {"sft.steps": [10, "many"]}, out=out, folder=notebooks)
    with pytest.raises(ConfigError, match=r"\['seed'\] given both"):
        course.run_grid("smoke", {"seed": [0]}, {"seed": 1}, out=out, folder=notebooks)
    assert not out.exists()


def test_runner_stops_at_the_failing_notebook_and_names_the_cell(notebooks, tmp_path):
    with pytest.raises(
        course.CourseError,
        match=r"02_fails.ipynb failed in cell \[3\] \('x = 1'\): ValueError: boom",
    ):
        course.run_course("smoke", out=tmp_path / "run", folder=notebooks)
    assert (tmp_path / "run" / "hello.txt").exists()  # the first one ran


def test_a_users_mistake_shows_in_the_notebook_as_one_line(tmp_path):
    """Not a traceback through the package: the line the command line prints for it."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(
        folder / "01_typo.ipynb", "from recipe_utils.config import load_config\nload_config('smok')"
    )
    with pytest.raises(course.CourseError, match="unknown profile 'smok'"):
        course.run_course("smoke", out=tmp_path / "run", folder=folder)
    executed = nbformat.read(tmp_path / "run" / "01_typo.ipynb", as_version=4)
    [error] = [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert len(error.traceback) == 1
    assert error.traceback[0].startswith("ConfigError: unknown profile 'smok': expected one of")


def test_a_notebook_parameter_of_the_wrong_type_is_named():
    declared = {"N_EXAMPLES": int, "OVERRIDES": dict, "KEEP_ABOVE": float}
    given = {"__annotations__": declared, "N_EXAMPLES": 3, "OVERRIDES": '{"seed": 1}'}
    check_parameters(given | {"KEEP_ABOVE": 3})  # an int where a float is declared is fine
    with pytest.raises(ConfigError, match=r"parameter N_EXAMPLES must be int, got 'abc' \(str\)"):
        check_parameters(given | {"N_EXAMPLES": "abc", "KEEP_ABOVE": 3.0})


def test_a_parameter_papermill_passed_that_the_notebook_lacks_is_named():
    declared = {"__annotations__": {"PROFILE": str, "N_EXAMPLES": int}, "PROFILE": "smoke"}
    injected = '# Parameters\nPROFILE = "smoke"\nSTEPS = 10\nPM_INPUT_PATH = "in.ipynb"\n'
    history = ["import json", 'PROFILE: str = "smoke"\nN_EXAMPLES: int = 5', injected, ""]
    check_parameters(declared | {"N_EXAMPLES": 5})  # no history: run outside IPython
    check_parameters(declared | {"N_EXAMPLES": 5, "In": history[:2]})  # run without papermill
    with pytest.raises(ConfigError) as raised:
        check_parameters(declared | {"N_EXAMPLES": 5, "In": history})
    assert str(raised.value) == (
        "unknown parameter(s) ['STEPS']; this notebook's parameters: ['N_EXAMPLES', 'PROFILE']"
    )


def test_papermill_run_with_a_misspelt_parameter_stops_on_one_line(tmp_path):
    import papermill

    notebook = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('PROFILE: str = "smoke"\nN_EXAMPLES: int = 5')
    params.metadata["tags"] = ["parameters"]
    check = "from recipe_utils.config import check_parameters\ncheck_parameters(globals())"
    notebook.cells = [params, nbformat.v4.new_code_cell(check)]
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python"}
    nbformat.write(notebook, tmp_path / "in.ipynb")
    with pytest.raises(papermill.PapermillExecutionError):
        papermill.execute_notebook(
            str(tmp_path / "in.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters={"N_EXAMPLE": 3},
            progress_bar=False,
            cwd=str(REPO_ROOT),
        )
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    [error] = [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert error.traceback == [
        "ConfigError: unknown parameter(s) ['N_EXAMPLE']; "
        "this notebook's parameters: ['N_EXAMPLES', 'PROFILE']"
    ]


def test_a_notebook_that_reads_a_run_refuses_a_folder_no_run_wrote(tmp_path):
    with pytest.raises(NotRunYet, match="holds no course run: run the earlier notebooks"):
        run_dir(load_config("smoke"), tmp_path / "typo", create=False)
    assert not (tmp_path / "typo").exists()


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


def test_course_notebooks_declare_what_the_profiles_and_overrides_pass():
    for profile in ("smoke", "full"):
        config = load_config(profile)
        for notebook in course.find_notebooks():
            params = course.notebook_parameters(config, profile, notebook, Path("r"), {"seed": 1})
            course.check_parameters(notebook, params)


@pytest.mark.parametrize(
    "command", ["tiny-model", "synth", "course", "compare", "prepare", "score", "evaluate", "train"]
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
