"""Prompt files, profiles, notebook parameters and trainer settings that must stop a run early."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import yaml

from recipe_utils.config import CONFIG_DIR, ConfigError, load_config
from recipe_utils.course import check_parameters, run_course
from recipe_utils.prompts import PromptError, load_prompt

pytestmark = pytest.mark.reliability

SYSTEM, USER = "You judge physics.", "Score the video 1..5."


def prompt_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prompt.yaml"
    path.write_text(text)
    return path


PROMPT_CASES = [
    ("missing_user", f"system_prompt: {SYSTEM}\n", "missing key(s) user_prompt"),
    ("missing_both", "{}\n", "missing key(s) system_prompt, user_prompt"),
    (
        "unknown_key",
        f"system_prompt: {SYSTEM}\nuser_prompt: {USER}\ntemperature: 0.6\n",
        "unknown key(s) temperature; only system_prompt, user_prompt are read (a typo?)",
    ),
    (
        "empty_value",
        f"system_prompt: {SYSTEM}\nuser_prompt: ''\n",
        "`user_prompt` must be non-empty",
    ),
    ("not_a_mapping", "- system_prompt\n- user_prompt\n", "expected a mapping"),
    ("bad_yaml", "system_prompt: [unclosed\n", "not valid YAML"),
]


@pytest.mark.parametrize(
    "text, reason", [c[1:] for c in PROMPT_CASES], ids=[c[0] for c in PROMPT_CASES]
)
def test_bad_prompt_file_is_refused_naming_it(tmp_path, text, reason):
    path = prompt_file(tmp_path, text)
    with pytest.raises(PromptError) as info:
        load_prompt(path)
    assert str(info.value).startswith(f"{path}: ")
    assert reason in str(info.value)


def test_missing_prompt_file_lists_the_shipped_ones(tmp_path):
    with pytest.raises(
        PromptError, match="no such prompt file; the course ships .*video_reward.yaml"
    ):
        load_prompt(tmp_path / "nope.yaml")


# ----------------------------------------------------------------------------- profiles


@pytest.mark.parametrize(
    "overrides, name",
    [
        ({"sft.nope": 1}, "'sft.nope'"),
        ({"nope.steps": 1}, "'nope'"),
        ({"sft.video.fsp": 2}, "'sft.video.fsp'"),
    ],
    ids=["unknown_leaf", "unknown_section", "unknown_nested"],
)
def test_unknown_override_is_an_error_naming_it(overrides, name):
    with pytest.raises(ConfigError, match=f"unknown setting {name}; known here: "):
        load_config("smoke", overrides)


def test_override_below_a_scalar_is_an_error():
    with pytest.raises(ConfigError, match="sft.steps"):
        load_config("smoke", {"sft.steps.x": 1})


def test_scalar_override_of_a_section_is_an_error():
    with pytest.raises(ConfigError, match="sft.video"):
        load_config("smoke", {"sft.video": 5})


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown profile 'smokey': expected one of \[.*'smoke'"):
        load_config("smokey")


# ----------------------------------------------------------------------------- notebooks


def write_notebook(path: Path, parameters: str | None) -> Path:
    cells = [nbformat.v4.new_markdown_cell("# demo")]
    if parameters is not None:
        cells.append(nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    cells.append(nbformat.v4.new_code_cell("print(PROFILE)"))
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)
    return path


def test_parameter_the_notebook_lacks_is_named(tmp_path):
    notebook = write_notebook(tmp_path / "01_demo.ipynb", 'PROFILE = "smoke"\nRUN_DIR = "runs"\n')
    check_parameters(notebook, {"PROFILE": "full", "RUN_DIR": "/tmp/x"})  # declared: fine
    with pytest.raises(ConfigError) as info:
        check_parameters(notebook, {"PROFILE": "full", "RUN_DIR": "/x", "SHOW_EXAMPLES": 2})
    message = str(info.value)
    assert message.startswith("01_demo.ipynb: unknown parameter(s) ['SHOW_EXAMPLES']")
    assert "declares ['PROFILE', 'RUN_DIR']" in message and "notebooks: 01_demo:" in message


def test_notebook_without_parameters_cell_refuses_every_parameter(tmp_path):
    notebook = write_notebook(tmp_path / "02_bare.ipynb", None)
    with pytest.raises(
        ConfigError, match=r"unknown parameter\(s\) \['PROFILE'\]; .* declares \[\]"
    ):
        check_parameters(notebook, {"PROFILE": "smoke"})


def test_course_checks_every_notebook_before_running_any(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    write_notebook(folder / "01_first.ipynb", 'PROFILE = ""\nRUN_DIR = ""\n')
    write_notebook(folder / "02_second.ipynb", 'PROFILE = ""\nRUN_DIR = ""\n')
    profile = yaml.safe_load((CONFIG_DIR / "smoke.yaml").read_text())
    profile["notebooks"] = {"02_second": {"STEPS": 3}}
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(profile))
    with pytest.raises(ConfigError, match=r"02_second.ipynb: unknown parameter\(s\) \['STEPS'\]"):
        run_course(str(path), out=tmp_path / "run", folder=folder)
    assert list((tmp_path / "run").glob("*.ipynb")) == []  # 01 did not run either
