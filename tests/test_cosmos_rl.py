"""The cosmos-rl integration: configs, GPU accounting, launching, exports and entry datasets.

Training needs GPUs, so these tests check everything up to the GPU work on CPU: cosmos-rl's own
config validation, its dataset wrappers and its default Qwen2.5-VL data packer (on the tiny
model) all see what the entry scripts hand them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import toml
import torch

from recipe_utils import cosmos_rl as crl
from recipe_utils.cosmos_entry_grpo import GRPOPrompts
from recipe_utils.cosmos_entry_sft import SFTConversations
from recipe_utils.prompts import load_prompt
from recipe_utils.rewards import accuracy_reward, format_reward

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "tests" / "reference"  # the published configs, kept as facts
RECIPE_FILES = {"sft": "recipe_sft_config.toml", "grpo": "recipe_rl_config.toml"}
PROMPTS = {"sft": "prompts/video_reward.yaml", "grpo": "prompts/video_reward_with_thinking.yaml"}


def flatten(table: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@pytest.fixture(scope="module")
def cosmos_config():
    return pytest.importorskip("cosmos_rl.policy.config").Config


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize("kind", ["sft", "grpo"])
def test_templates_hold_every_key_and_value_of_the_published_recipe(kind):
    reference = REFERENCE / RECIPE_FILES[kind]
    ours = flatten(crl.load_template(kind))
    differ = {
        key: (value, ours.get(key, "<missing>"))
        for key, value in flatten(toml.load(reference)).items()
        if ours.get(key, "<missing>") != value
    }
    assert differ == {}


def test_cosmos_rl_accepts_both_templates(cosmos_config):
    sft = cosmos_config.from_dict(crl.load_template("sft"))
    grpo = cosmos_config.from_dict(crl.load_template("grpo"))
    assert sft.train.train_policy.type == "sft"
    assert sft.train.train_policy.conversation_column_name == "conversations"
    assert grpo.train.train_policy.type == "grpo"
    assert grpo.train.train_policy.kl_beta == 0.05 > 0
    assert grpo.rollout.n_generation == 8
    assert grpo.custom["dataset"]["path"] == "data/videophy2_train_w_thinking_balanced"


@pytest.mark.parametrize("kind", ["sft", "grpo"])
def test_template_prompt_files_exist(kind):
    assert crl.load_template(kind)["custom"]["dataset"]["prompt"] == PROMPTS[kind]
    load_prompt(REPO / PROMPTS[kind])


def test_parallelism_defaults_match_installed_cosmos_rl():
    config = pytest.importorskip("cosmos_rl.policy.config")
    fields = config.ParallelismConfig.model_fields
    assert {name: fields[name].default for name in crl.PARALLELISM_DEFAULTS} == (
        crl.PARALLELISM_DEFAULTS
    )


def test_write_config_applies_overrides_and_round_trips(tmp_path, cosmos_config):
    overrides = {
        "policy.model_name_or_path": "/models/ckpt",
        "train.output_dir": str(tmp_path / "out"),
        "train.epoch": 1,
        "custom.dataset.path": str(tmp_path / "data"),
        "custom.note.text": "new tables under custom are allowed",
    }
    written = crl.write_config("grpo", tmp_path / "cfg" / "grpo.toml", overrides)
    loaded = toml.load(written)
    for key, value in overrides.items():
        assert flatten(loaded)[key] == value
    expected = flatten(crl.load_template("grpo"))
    expected.update(overrides)
    assert flatten(loaded) == expected  # no timestamp leaked in from cosmos-rl's validation
    assert cosmos_config.from_dict(loaded).policy.model_name_or_path == "/models/ckpt"


@pytest.mark.parametrize("start", ["base", "sft"])
def test_grpo_toml_starts_where_the_profile_says(tmp_path, monkeypatch, cosmos_config, start):
    """Full profile: the base model, as the recipe's RL config; `sft`: SFT's best checkpoint."""
    from recipe_utils import pipeline
    from recipe_utils.config import load_config

    sft = tmp_path / "sft" / "checkpoints" / "step_20"
    sft.mkdir(parents=True)
    (sft / "trainer_state.pt").touch()
    monkeypatch.setattr(pipeline, "dataset_stage", lambda *args: tmp_path / "data" / "grpo")
    monkeypatch.setattr(crl, "launch", lambda kind, path, log_path: 0)
    config = load_config("full", {"grpo.start": start})
    pipeline.train_stage("grpo", config, tmp_path)
    written = toml.load(tmp_path / "grpo" / "grpo.toml")
    expected = "nvidia/Cosmos-Reason1-7B" if start == "base" else str(sft)
    assert written["policy"]["model_name_or_path"] == expected


def test_grpo_toml_takes_the_profiles_mu_iterations(tmp_path, monkeypatch, cosmos_config):
    from recipe_utils import pipeline
    from recipe_utils.config import load_config

    monkeypatch.setattr(pipeline, "dataset_stage", lambda *args: tmp_path / "data" / "grpo")
    monkeypatch.setattr(crl, "launch", lambda kind, path, log_path: 0)
    pipeline.train_stage("grpo", load_config("full", {"grpo.mu_iterations": 4}), tmp_path)
    written = toml.load(tmp_path / "grpo" / "grpo.toml")
    assert cosmos_config.from_dict(written).train.train_policy.mu_iterations == 4


@pytest.mark.parametrize(
    "key", ["train.epochs", "policy.lora.r", "mode", "rollout.parallelism.cp_size"]
)
def test_write_config_rejects_a_key_the_template_lacks(tmp_path, key):
    out = tmp_path / "sft.toml"
    with pytest.raises(crl.CosmosConfigError, match=f"override '{key}'"):
        crl.write_config("sft", out, {key: 1})
    assert not out.exists()


def test_write_config_rejects_overriding_a_whole_table(tmp_path):
    with pytest.raises(crl.CosmosConfigError, match="set its keys one by one"):
        crl.write_config("sft", tmp_path / "sft.toml", {"policy.parallelism": {"tp_size": 1}})


@pytest.mark.parametrize(
    ("kind", "key", "value"),
    [("sft", "train.train_policy.type", "ppo"), ("grpo", "train.ckpt.save_mode", "sometimes")],
)
def test_write_config_rejects_values_cosmos_rl_rejects(tmp_path, cosmos_config, kind, key, value):
    out = tmp_path / f"{kind}.toml"
    with pytest.raises(crl.CosmosConfigError, match="cosmos-rl rejects"):
        crl.write_config(kind, out, {key: value})
    assert not out.exists()


def test_write_config_without_cosmos_rl_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cosmos_rl.policy.config", None)  # import now fails
    with pytest.raises(ImportError, match=r"pip install -e \.\[train\]"):
        crl.write_config("sft", tmp_path / "sft.toml")


@pytest.mark.parametrize(
    ("config", "gpus"),
    [
        ("sft", 8),
        ("grpo", 8),  # policy dp_shard 4 + rollout tp 4
        ({"train": {"train_policy": {"type": "sft"}}}, 2),  # cosmos-rl's default tp_size is 2
        (
            {"train": {"train_policy": {"type": "sft"}}, "policy": {"parallelism": {"tp_size": 1}}},
            1,
        ),
        (
            {
                "mode": "colocated",
                "train": {"train_policy": {"type": "grpo"}},
                "policy": {"parallelism": {"tp_size": 1}},
                "rollout": {"parallelism": {"tp_size": 1}},
            },
            1,
        ),
        (
            {
                "train": {"train_policy": {"type": "grpo"}},
                "policy": {"parallelism": {"tp_size": 1, "dp_shard_size": -1}},  # -1: inferred
                "rollout": {"parallelism": {"tp_size": 2, "n_init_replicas": 3}},
            },
            7,
        ),
    ],
)
def test_required_gpus(config, gpus):
    if isinstance(config, str):
        config = crl.load_template(config)
    assert crl.required_gpus(config) == gpus


# ----------------------------------------------------------------------------- launching


@pytest.fixture
def grpo_config(tmp_path):
    path = tmp_path / "grpo.toml"
    path.write_text(toml.dumps(crl.load_template("grpo")))
    return path


@pytest.fixture
def fake_cosmos_rl(tmp_path):
    """An executable that prints its arguments and a few lines, then exits with 3."""
    program = tmp_path / "bin" / "cosmos-rl"
    program.parent.mkdir()
    program.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "print('args', *sys.argv[1:])\n"
        "for step in range(3):\n"
        "    print(f'step {step}')\n"
        "sys.exit(3)\n"
    )
    program.chmod(0o755)
    return program


def machine(monkeypatch, programs: dict, gpus: int) -> None:
    monkeypatch.setattr(crl.shutil, "which", lambda name: programs.get(name))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)


@pytest.mark.parametrize(
    ("programs", "gpus", "message"),
    [
        ({"redis-server": "/usr/bin/redis-server"}, 8, r"`cosmos-rl` is not on PATH.*\[train\]"),
        ({"cosmos-rl": "/bin/cosmos-rl"}, 8, r"`redis-server` is not on PATH.*apt-get install"),
        (
            {"cosmos-rl": "/bin/cosmos-rl", "redis-server": "/usr/bin/redis-server"},
            4,
            "needs 8 GPUs but 4 are visible",
        ),
    ],
)
def test_launch_says_what_is_missing(monkeypatch, grpo_config, programs, gpus, message):
    machine(monkeypatch, programs, gpus)
    with pytest.raises(RuntimeError, match=message):
        crl.launch("grpo", grpo_config)


def test_launch_refuses_a_config_of_the_other_kind(monkeypatch, grpo_config):
    machine(monkeypatch, {}, 0)
    with pytest.raises(crl.CosmosConfigError, match="train_policy.type is 'grpo'"):
        crl.launch("sft", grpo_config)


def test_launch_refuses_a_missing_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such cosmos-rl config"):
        crl.launch("sft", tmp_path / "absent.toml")


def test_launch_streams_output_and_returns_exit_code(
    monkeypatch, capsys, tmp_path, grpo_config, fake_cosmos_rl
):
    machine(monkeypatch, {"cosmos-rl": str(fake_cosmos_rl), "redis-server": "/bin/true"}, 8)
    log = tmp_path / "logs" / "grpo.log"
    assert crl.launch("grpo", grpo_config, log_path=log) == 3
    expected = (
        f"args --config {grpo_config} {REPO / 'recipe_utils' / 'cosmos_entry_grpo.py'}\n"
        "step 0\nstep 1\nstep 2\n"
    )
    assert capsys.readouterr().out == expected
    assert log.read_text() == expected


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie has stopped; only its exit status is left


class InterruptedOutput:
    """stdout whose first write raises KeyboardInterrupt, like a notebook cell being stopped."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.append(text)
        raise KeyboardInterrupt

    def flush(self) -> None:
        pass


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process states from /proc")
def test_interrupting_launch_stops_the_workers_cosmos_rl_started(
    monkeypatch, tmp_path, grpo_config
):
    program = tmp_path / "cosmos-rl"
    program.write_text(
        f"#!{sys.executable}\n"
        "import subprocess, sys, time\n"
        "worker = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(worker.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    program.chmod(0o755)
    machine(monkeypatch, {"cosmos-rl": str(program), "redis-server": "/bin/true"}, 8)
    output = InterruptedOutput()
    monkeypatch.setattr(sys, "stdout", output)
    with pytest.raises(KeyboardInterrupt):
        crl.launch("grpo", grpo_config)
    worker = int(output.lines[0])
    for _ in range(50):
        if not is_running(worker):
            break
        time.sleep(0.1)
    assert not is_running(worker)


def test_export_dirs_finds_each_step_of_each_run(tmp_path):
    for run, step in [("20250101000000", 100), ("20250101000000", 200), ("20250202000000", 200)]:
        (tmp_path / run / "safetensors" / f"step_{step}").mkdir(parents=True)
    (tmp_path / "20250202000000" / "safetensors" / "step_300.incomplete-ab12").mkdir()
    (tmp_path / "20250202000000" / "checkpoints" / "step_300").mkdir(parents=True)
    assert crl.export_dirs(tmp_path) == {
        100: tmp_path / "20250101000000" / "safetensors" / "step_100",
        200: tmp_path / "20250202000000" / "safetensors" / "step_200",  # the newer run
    }
    assert crl.export_dirs(tmp_path / "absent") == {}


# ----------------------------------------------------------------------------- datasets


def conversation(video: str, pc: int, prompt_file: str = PROMPTS["sft"], **video_keys) -> list:
    prompt = load_prompt(REPO / prompt_file)
    settings = {"fps": 1, "max_pixels": 81920, **video_keys}
    return [
        {"role": "system", "content": prompt.system},
        {
            "role": "user",
            "content": [
                {"type": "video", "video": video, **settings},
                {"type": "text", "text": prompt.user},
            ],
        },
        {"role": "assistant", "content": f"<answer>\n{pc}\n</answer>"},
    ]


def save_dataset(path: Path, conversations: list, texts: list | None = None) -> Path:
    """A prepared dataset in the shape `recipe_utils.videophy2.prepare` writes."""
    import datasets

    texts = texts or [json.dumps(messages) for messages in conversations]
    rows = [
        {"conversations": text, "id": f"train_{index:04d}", "pc": index % 5 + 1}
        for index, text in enumerate(texts)
    ]
    datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


def custom(path: Path, **settings) -> SimpleNamespace:
    """The part of a cosmos-rl Config the datasets read."""
    return SimpleNamespace(custom={"dataset": {"path": str(path), **settings}})


@pytest.fixture
def prepared(tmp_path):
    rows = [conversation(f"/videos/v{index}.mp4", pc) for index, pc in enumerate([2, 5, 4])]
    return save_dataset(tmp_path / "train", rows), rows


def test_sft_dataset_yields_whole_conversations(prepared):
    path, rows = prepared
    dataset = SFTConversations.from_config(custom(path, prompt=PROMPTS["sft"], fps=1))
    assert len(dataset) == 3
    assert [dataset[index] for index in range(3)] == rows
    dataset[0][0]["content"] = "edited"  # items are copies
    assert dataset[0] == rows[0]


def test_grpo_dataset_yields_prompts_and_reference_answers(tmp_path):
    rows = [conversation(f"/v{pc}.mp4", pc, PROMPTS["grpo"]) for pc in (1, 3)]
    path = save_dataset(tmp_path / "train", rows)
    dataset = GRPOPrompts.from_config(custom(path, prompt=PROMPTS["grpo"]))
    assert [dataset[0], dataset[1]] == [rows[0][:2], rows[1][:2]]  # system + user, no answer
    assert [dataset.get_reference_answer(i) for i in (0, 1)] == [
        "<answer>\n1\n</answer>",
        "<answer>\n3\n</answer>",
    ]
    completion = "<think>The ball falls up.</think>\n\n<answer>\n2\n</answer>"
    assert accuracy_reward(completion, dataset.get_reference_answer(0)) == 0.5
    assert accuracy_reward(completion, dataset.get_reference_answer(1)) == 0.5
    assert accuracy_reward("<answer>3</answer>", dataset.get_reference_answer(1)) == 1.0
    assert format_reward(completion, dataset.get_reference_answer(0)) == 1.0
    assert format_reward("<answer>3</answer>", dataset.get_reference_answer(1)) == 0.0


def test_cosmos_rl_rl_wrapper_accepts_the_grpo_items(tmp_path, cosmos_config):
    from cosmos_rl.dispatcher.data import RLDataset

    rows = [conversation("/v.mp4", 4, PROMPTS["grpo"])]
    path = save_dataset(tmp_path / "train", rows)
    config = cosmos_config.from_dict(
        {**crl.load_template("grpo"), "custom": {"dataset": {"path": str(path)}}}
    )
    wrapped = RLDataset(GRPOPrompts.from_config(config), config)
    index, payload = wrapped[0]
    assert index == 0
    assert [message.model_dump() for message in payload.prompt] == rows[0][:2]
    assert wrapped.get_reference_answer(0) == "<answer>\n4\n</answer>"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", r"row 1 \(id 'train_0001'\): `conversations` is not valid JSON"),
        (json.dumps([{"role": "user"}]), r"row 1 .*list of \{role, content\} dicts"),
        (json.dumps([{"role": "user", "content": "hi"}]), "exactly one assistant turn last"),
        (
            json.dumps([{"role": "user", "content": "q"}, {"role": "assistant", "content": [1]}]),
            "assistant turn must be plain text",
        ),
    ],
)
def test_dataset_names_the_bad_row(tmp_path, text, message):
    good = json.dumps(conversation("/v.mp4", 3))
    path = save_dataset(tmp_path / "train", [], texts=[good, text])
    with pytest.raises(ValueError, match=message):
        SFTConversations(path)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"fps": 2}, r"2 of 3 rows .*row 0 \(id 'train_0000'\): \{'fps': 1\}"),
        ({"max_pixels": 4096}, r"\{'max_pixels': 81920\}"),
        ({"prompt": PROMPTS["grpo"]}, r"\{'prompt': 'different text'\}"),
    ],
)
def test_dataset_refuses_rows_built_with_other_settings(tmp_path, settings, message):
    rows = [conversation("/a.mp4", 1), conversation("/b.mp4", 2), conversation("/c.mp4", 3)]
    rows[2][1]["content"][0].update(fps=2, max_pixels=4096)
    if "prompt" in settings:
        rows[2] = conversation("/c.mp4", 3, PROMPTS["grpo"])
    path = save_dataset(tmp_path / "train", rows)
    with pytest.raises(crl.CosmosConfigError, match=message):
        GRPOPrompts.from_config(custom(path, **settings))


def test_dataset_config_needs_a_path_and_known_keys(prepared):
    path, _ = prepared
    with pytest.raises(crl.CosmosConfigError, match=r"\[custom.dataset\] has no `path`"):
        SFTConversations.from_config(SimpleNamespace(custom={}))
    with pytest.raises(crl.CosmosConfigError, match=r"unknown key\(s\) \['fsp'\]"):
        SFTConversations.from_config(custom(path, fsp=1))


def test_dataset_names_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a prepared dataset"):
        SFTConversations(tmp_path / "absent")


# ----------------------------------------------------------------------------- entry scripts


@pytest.mark.parametrize(
    ("kind", "factory", "rewards"),
    [
        ("sft", "SFTConversations.from_config", []),
        ("grpo", "GRPOPrompts.from_config", ["accuracy_reward", "format_reward"]),
    ],
)
def test_entry_script_runs_as_a_file_and_hands_cosmos_rl_its_parts(
    tmp_path, kind, factory, rewards
):
    """cosmos-rl runs `python recipe_utils/cosmos_entry_*.py`: recipe_utils/ is then first on
    sys.path and its cosmos_rl.py must not shadow the cosmos_rl package (faked here)."""
    fake = tmp_path / "fake" / "cosmos_rl" / "launcher"
    fake.mkdir(parents=True)
    (fake.parent / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "worker_entry.py").write_text(
        textwrap.dedent(
            """
            def main(dataset=None, reward_fns=None):
                factory = f"{dataset.__self__.__name__}.{dataset.__name__}"
                print(factory, [fn.__name__ for fn in reward_fns or []])
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "fake")}
    result = subprocess.run(
        [sys.executable, str(crl.entry_script(kind))],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{factory} {rewards}"


# ----------------------------------------------------------------------------- data packer


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from recipe_utils.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny"), seed=0)


def read_video_with_av(path, start_pts=0.0, end_pts=None, pts_unit="sec", output_format="TCHW"):
    """Stand-in for torchvision.io.read_video, which torchvision 0.24+ no longer has."""
    with av.open(str(path)) as container:
        fps = float(container.streams.video[0].average_rate)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    return torch.from_numpy(frames).permute(0, 3, 1, 2), None, {"video_fps": fps}


@pytest.mark.slow
def test_default_qwen25_vl_packer_trains_on_the_answer_and_prompts_for_one(
    tmp_path, monkeypatch, tiny_model, cosmos_config
):
    packer_module = pytest.importorskip("cosmos_rl.dispatcher.data.packer.qwen2_5_vlm_data_packer")
    vision_process = pytest.importorskip("qwen_vl_utils.vision_process")
    from recipe_utils.video import write_clip

    monkeypatch.setattr(vision_process, "get_video_reader_backend", lambda: "torchvision")
    monkeypatch.setattr(vision_process.io, "read_video", read_video_with_av, raising=False)
    video = tmp_path / "clip.mp4"
    write_clip(video, np.random.default_rng(0).integers(0, 255, (8, 56, 56, 3), np.uint8), fps=8)
    # qwen-vl-utils 0.0.14 refuses a video max_pixels below its default min_pixels (100352)
    # unless the item sets min_pixels too.
    rows = [conversation(str(video), 4, min_pixels=3136)]
    data = save_dataset(tmp_path / "train", rows)
    out = crl.write_config(
        "sft",
        tmp_path / "sft.toml",
        {"policy.model_name_or_path": str(tiny_model), "custom.dataset.path": str(data)},
    )
    config = cosmos_config.from_dict(toml.load(out))
    packer = packer_module.Qwen2_5_VLM_DataPacker()
    packer.setup(config)

    # What cosmos-rl's SFT worker does with a user dataset's item (sft_worker.SFTDataset; that
    # module itself does not import with torch 2.14, only with the GPU extra's torch)
    sample = packer.sft_process_sample(SFTConversations.from_config(config)[0])
    labels = [token for token in sample["label_ids"] if token != -100]
    assert packer.tokenizer.decode(labels) == "<answer>\n4\n</answer><|im_end|>"
    assert sample["pixel_values_videos"] is not None

    prompt = packer.get_rollout_input(GRPOPrompts.from_config(config)[0])
    assert prompt["prompt"].endswith("<|im_start|>assistant\n")
    assert "<answer>\n4\n</answer>" not in prompt["prompt"]
    assert "video" in prompt["multi_modal_data"]
