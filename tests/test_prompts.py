from pathlib import Path

import pytest

from recipe_utils.prompts import PROMPTS_DIR, Prompt, PromptError, load_prompt

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "tests" / "reference" / "prompts"  # the benchmark's text, kept as a fact
PROMPT_FILES = ("video_reward.yaml", "video_reward_with_thinking.yaml")


def test_prompts_dir_is_the_repository_folder():
    assert PROMPTS_DIR == REPO / "prompts"


@pytest.mark.parametrize("name", PROMPT_FILES)
def test_prompt_text_is_the_benchmark_text(name):
    assert (PROMPTS_DIR / name).read_bytes() == (REFERENCE / name).read_bytes()


@pytest.mark.parametrize("name", PROMPT_FILES)
def test_shipped_prompts_load(name):
    prompt = load_prompt(PROMPTS_DIR / name)
    assert isinstance(prompt, Prompt)
    assert prompt.path == PROMPTS_DIR / name
    assert "<answer>" in prompt.system
    assert prompt.user.strip() == "Does this video adhere to the physical laws?"


def test_thinking_prompt_asks_for_reasoning_and_plain_one_does_not():
    plain = load_prompt(PROMPTS_DIR / "video_reward.yaml")
    thinking = load_prompt(PROMPTS_DIR / "video_reward_with_thinking.yaml")
    assert "<think>" in thinking.system
    assert "<think>" not in plain.system


def test_text_is_kept_verbatim(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("system_prompt: |\n  line one\n\n  line two\nuser_prompt: '  ask  '\n")
    prompt = load_prompt(path)
    assert prompt.system == "line one\n\nline two\n"
    assert prompt.user == "  ask  "


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("system_prompt: hi\n", "missing key(s) user_prompt"),
        ("user_prompt: hi\n", "missing key(s) system_prompt"),
        ("system_prompt: hi\nuser_prompt: ask\nuser_promt: typo\n", "unknown key(s) user_promt"),
        ("system_prompt: hi\nuser_prompt: ''\n", "`user_prompt` must be non-empty text"),
        ("system_prompt: [a, b]\nuser_prompt: ask\n", "`system_prompt` must be non-empty text"),
        ("- a list\n- not a mapping\n", "expected a mapping"),
        ("", "expected a mapping"),
        ("system_prompt: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_prompt_files_fail_naming_file_and_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(PromptError) as info:
        load_prompt(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_file_lists_shipped_prompts(tmp_path):
    with pytest.raises(PromptError, match="no such prompt file.*video_reward.yaml"):
        load_prompt(tmp_path / "nope.yaml")
