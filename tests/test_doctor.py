"""`doctor`: the smoke profile is ready on any CPU machine; the full profile names every missing
piece with its fix, and `course --profile full` stops on it before any notebook runs."""

import shutil
import subprocess
import sys

import pytest

from recipe_utils import doctor
from recipe_utils.cli import main
from recipe_utils.config import load_config
from recipe_utils.course import run_course


def test_smoke_profile_is_ready_on_a_cpu_machine(capsys):
    assert main(["doctor", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "[FAIL]" not in out and "checks passed" in out
    assert "GPUs: none needed" in out


def test_full_profile_names_each_missing_piece_without_a_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "recipe_utils", "doctor", "--profile", "full"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stdout.splitlines()
    for name in ("GPUs", "flash-attn", "hub"):  # conftest sets HF_HUB_OFFLINE
        failed = [line for line in lines if line.strip().startswith(f"[FAIL] {name}:")]
        assert failed, f"no failed {name} check in\n{result.stdout}"
        fix = lines[lines.index(failed[0]) + 1]
        assert fix.strip().startswith("fix: ")
    redis_missing = shutil.which("redis-server") is None
    assert any(line.strip().startswith("[FAIL] redis-server") for line in lines) == redis_missing
    assert "GPUs: need 8, found 0" in result.stdout
    assert lines[-1].startswith(f"{result.stdout.count('[FAIL]')} of ")


def test_gpus_needed_follow_the_profile_parallelism():
    full = load_config("full")
    assert doctor.scoring_gpus(full) == 8  # 8 replicas x tensor_parallel_size 1
    assert doctor.training_gpus(full) == 8  # SFT dp_shard 8; GRPO policy 4 + rollout 4
    local = {"sft.executor": "local", "grpo.executor": "local"}
    smaller = load_config(
        "full", {**local, "scoring.replicas": 2, "scoring.tensor_parallel_size": 2}
    )
    assert doctor.needed_gpus(smaller) == 4
    assert doctor.needed_gpus(load_config("smoke")) == 0


def test_unreachable_hub_model_is_a_failed_check_naming_it(monkeypatch):
    import huggingface_hub

    def refuse(self, repo_id, **kwargs):
        raise huggingface_hub.errors.RepositoryNotFoundError(f"404 Client Error for {repo_id}")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", refuse)
    check = doctor.check_hub(load_config("full"))
    assert not check.ok
    assert "nvidia/Cosmos-Reason1-7B not reachable: RepositoryNotFoundError" in check.detail
    assert "huggingface-cli login" in check.fix


def test_package_pinned_but_broken_on_import_fails_with_the_reason(monkeypatch):
    monkeypatch.setattr(doctor, "installed", lambda name: doctor.pins("flash")[name])

    def broken(module):
        raise ImportError("undefined symbol: _ZN3c104cuda9SetDevice (built for another torch)")

    monkeypatch.setattr(doctor.importlib, "import_module", broken)
    check = doctor.check_package("flash-attn", "flash", "flash_attn")
    assert not check.ok and "does not import: undefined symbol" in check.detail


def test_course_with_a_gpu_profile_stops_before_any_notebook(tmp_path, capsys):
    with pytest.raises(doctor.DoctorError, match=r"cannot run profile 'full' \(GPUs, "):
        run_course("full", out=tmp_path / "run", folder=tmp_path)
    out = capsys.readouterr().out
    assert "[FAIL] GPUs: need 8" in out and f"{tmp_path / 'run'} is writable" in out
