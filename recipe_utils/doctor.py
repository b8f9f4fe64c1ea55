"""`doctor --profile NAME`: check, before hours of compute, that this machine can run a profile.

Each check reads what the profile asks for (GPUs from its parallelism, the engines from its
backend and executors, the hub ids from its model and data) and compares it with the machine:
GPUs and their memory, the pinned GPU stack (torch and CUDA, vLLM, flash-attn, cosmos-rl),
`redis-server`, CPU cores for decode workers, disk space, the hub, the run folder, the prompts.
A failed check says how to fix it. `course` runs the same checks first for a profile that
needs GPUs, so an 8-GPU run stops in seconds instead of at its first forward pass.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import toml

from .config import REPO_ROOT, load_config, repo_path
from .machine import usable_cores

GPU_INSTALL = 'the GPU stack: `make gpu-install` (README, "The full reproduction on 8 GPUs")'


class DoctorError(ValueError):
    """The machine cannot run the profile; the message names the failed checks."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


# ----------------------------------------------------------------------------- what a profile needs


def scoring_gpus(config: dict) -> int:
    """GPUs the scoring replicas take: `replicas` x `tensor_parallel_size` with vLLM, one per
    replica when transformers runs on CUDA, none on CPU."""
    scoring = config["scoring"]
    if scoring["backend"] == "vllm":
        return scoring["replicas"] * scoring["tensor_parallel_size"]
    return scoring["replicas"] if config["model"]["device"].startswith("cuda") else 0


def training_gpus(config: dict) -> int:
    """GPUs the largest cosmos-rl job takes (its TOML's parallelism); 0 for in-process training."""
    kinds = [kind for kind in ("sft", "grpo") if config[kind]["executor"] == "cosmos-rl"]
    if not kinds:
        return 0
    from .cosmos_rl import load_template, required_gpus

    return max(required_gpus(load_template(kind)) for kind in kinds)


def needed_gpus(config: dict) -> int:
    return max(scoring_gpus(config), training_gpus(config))


def uses_cosmos_rl(config: dict) -> bool:
    return any(config[kind]["executor"] == "cosmos-rl" for kind in ("sft", "grpo"))


def hub_ids(config: dict) -> dict[str, str]:
    """The model and datasets the profile reads from the hub: {id: "model" | "dataset"}."""
    found = {}
    model = config["model"]["name"]
    if model != "tiny" and not repo_path(model).exists():
        found[model] = "model"
    for which in ("train", "eval"):
        source = config["data"][which]["source"]
        if source != "synthetic" and not repo_path(source).exists():
            found[source] = "dataset"
    return found


def pins(extra: str) -> dict[str, str]:
    """`name == version` pins of a pyproject extra, so the checks and the install agree."""
    from packaging.requirements import Requirement

    project = toml.load(REPO_ROOT / "pyproject.toml")["project"]
    found = {}
    for text in project["optional-dependencies"][extra]:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        exact = [s.version for s in requirement.specifier if s.operator == "=="]
        if exact:
            found[requirement.name] = exact[0]
    return found


def installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


# ----------------------------------------------------------------------------- checks


def check_gpus(config: dict) -> Check:
    needed = needed_gpus(config)
    if needed == 0:
        return Check("GPUs", True, "none needed (the profile runs on CPU)")
    import torch

    memory = config["machine"]["gpu_memory_gb"]
    fix = (
        f"run on a machine with {needed} GPUs of {memory} GB or more, or lower "
        "scoring.replicas and the [policy|rollout.parallelism] of configs/cosmos_rl/*.toml"
    )
    found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if found < needed:
        return Check("GPUs", False, f"need {needed}, found {found}", fix)
    sizes = [torch.cuda.get_device_properties(i).total_memory / 1e9 for i in range(found)]
    small = [f"{i}: {size:.0f} GB" for i, size in enumerate(sizes) if size < 0.95 * memory]
    if small:
        return Check("GPUs", False, f"need {memory} GB each; smaller: {', '.join(small)}", fix)
    return Check("GPUs", True, f"{found} x {torch.cuda.get_device_name(0)}, need {needed}")


def check_torch_cuda(config: dict) -> Check:
    import torch

    name = "torch + CUDA"
    if needed_gpus(config) == 0:
        return Check(name, True, f"torch {torch.__version__} (CPU is enough)")
    want = pins("gpu")["torch"]
    have = torch.__version__.split("+")[0]
    if have != want or torch.version.cuda is None:
        cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA build"
        return Check(
            name,
            False,
            f"torch {torch.__version__} ({cuda}); the GPU stack pins torch {want} with CUDA",
            f"install {GPU_INSTALL}",
        )
    return Check(name, True, f"torch {torch.__version__}, CUDA {torch.version.cuda}")


def check_package(name: str, extra: str, module: str | None = None) -> Check:
    """A pinned package of `extra` is installed at its pin and, given its `module`, imports
    (where a wheel built for another torch or CUDA breaks)."""
    want, have = pins(extra)[name], installed(name)
    fix = f"install {GPU_INSTALL}"
    if have is None:
        return Check(name, False, f"not installed (pinned: {want})", fix)
    if have != want:
        return Check(name, False, f"{have} installed, {want} pinned", fix)
    try:
        if module is not None:
            importlib.import_module(module)
    except Exception as exc:  # a wheel built for another torch or CUDA fails here
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Check(name, False, f"{have} installed but does not import: {first}", fix)
    return Check(name, True, have)


def check_vllm(config: dict) -> Check | None:
    if config["scoring"]["backend"] != "vllm":
        return None
    return check_package("vllm", "gpu", "vllm")


def check_flash_attn(config: dict) -> Check | None:
    """cosmos-rl's Qwen2.5-VL takes its attention from flash-attn and stops without it."""
    if not uses_cosmos_rl(config):
        return None
    return check_package("flash-attn", "flash", "flash_attn")


def check_cosmos_rl(config: dict) -> Check | None:
    if not uses_cosmos_rl(config):
        return None
    return check_package("cosmos-rl", "train")


def check_redis(config: dict) -> Check | None:
    """cosmos-rl's controller starts `redis-server` itself."""
    if not uses_cosmos_rl(config):
        return None
    found = shutil.which("redis-server")
    if found is None:
        return Check(
            "redis-server",
            False,
            "not on PATH (cosmos-rl's controller starts it)",
            "apt-get install redis-server (or conda install -c conda-forge redis)",
        )
    return Check("redis-server", True, found)


def check_cpus(config: dict) -> Check:
    scoring = config["scoring"]
    wanted = scoring["decode_workers"] + (scoring["replicas"] if scoring_gpus(config) == 0 else 1)
    have = usable_cores()
    detail = f"{have} cores for {scoring['decode_workers']} decode workers and the replicas"
    if have < wanted:
        fix = f"lower scoring.decode_workers to {max(0, have - 1)} or run on a larger machine"
        return Check("CPU cores", False, detail, fix)
    return Check("CPU cores", True, detail)


def existing_parent(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path


def check_disk(config: dict) -> Check:
    folder = existing_parent(repo_path(config["run_dir"]))
    free = shutil.disk_usage(folder).free / 1e9
    need = config["machine"]["disk_gb"]
    detail = f"{free:.0f} GB free at {folder}, need {need} GB (model, videos, checkpoints)"
    if free < need:
        return Check("disk", False, detail, "free space or set run_dir on a larger disk")
    return Check("disk", True, detail)


def check_run_folder(config: dict) -> Check:
    from .scoring import ensure_writable

    path = repo_path(config["run_dir"])
    try:
        ensure_writable(path)
    except PermissionError as exc:
        return Check("run folder", False, str(exc), "set run_dir (or --out) to a writable folder")
    return Check("run folder", True, f"{path} is writable")


def check_prompts(config: dict) -> Check:
    from .prompts import PromptError, load_prompt

    paths = sorted({config[section]["prompt"] for section in ("scoring", "sft", "grpo")})
    try:
        for path in paths:
            load_prompt(repo_path(path))
    except PromptError as exc:
        return Check("prompt files", False, str(exc), "restore the file from the repository")
    return Check("prompt files", True, ", ".join(paths))


def check_hub(config: dict) -> Check | None:
    """The model and datasets answer on the hub (a gated or misspelt id fails here)."""
    ids = hub_ids(config)
    if not ids:
        return None
    fix = (
        "allow network access to the Hugging Face hub (unset HF_HUB_OFFLINE); for a gated "
        "repository accept its terms and log in (`huggingface-cli login` or HF_TOKEN)"
    )
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        return Check("hub", False, f"HF_HUB_OFFLINE is set; cannot reach {sorted(ids)}", fix)
    from huggingface_hub import HfApi

    api = HfApi()
    for repo_id, kind in ids.items():
        info = api.model_info if kind == "model" else api.dataset_info
        try:
            info(repo_id, timeout=15)
        except Exception as exc:  # network, missing or gated: say which, do not crash
            reason = (str(exc).splitlines() or [""])[0][:120]
            detail = f"{kind} {repo_id} not reachable: {type(exc).__name__} {reason}".strip()
            return Check("hub", False, detail, fix)
    return Check("hub", True, ", ".join(sorted(ids)))


CHECKS: tuple[Callable[[dict], Check | None], ...] = (
    check_gpus,
    check_torch_cuda,
    check_vllm,
    check_flash_attn,
    check_cosmos_rl,
    check_redis,
    check_cpus,
    check_disk,
    check_run_folder,
    check_prompts,
    check_hub,
)


def run_checks(config: dict) -> list[Check]:
    """Every check that applies to the profile, in the order a set-up goes."""
    return [check for check in (fn(config) for fn in CHECKS) if check is not None]


def checklist(profile: str, checks: list[Check]) -> str:
    lines = [f"doctor: profile {profile}"]
    for check in checks:
        lines.append(f"  [{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
        if not check.ok:
            lines.append(f"         fix: {check.fix}")
    failed = [c.name for c in checks if not c.ok]
    if failed:
        lines.append(f"{len(failed)} of {len(checks)} checks failed: {', '.join(failed)}")
    else:
        lines.append(f"all {len(checks)} checks passed")
    return "\n".join(lines)


def doctor(profile: str) -> tuple[bool, str]:
    """(ready, checklist) for a profile name or YAML path."""
    checks = run_checks(load_config(profile))
    return all(c.ok for c in checks), checklist(str(profile), checks)


def preflight(config: dict, profile: str, out: str | Path | None = None) -> None:
    """Before a run that needs GPUs (into `out`, default the profile's run_dir): print the
    checklist and stop if anything fails."""
    if needed_gpus(config) == 0:
        return
    checks = run_checks(dict(config, run_dir=str(out or config["run_dir"])))
    print(checklist(profile, checks), flush=True)
    failed = [c.name for c in checks if not c.ok]
    if failed:
        raise DoctorError(
            f"this machine cannot run profile {profile!r} ({', '.join(failed)}); "
            f"fix what `python -m recipe_utils doctor --profile {profile}` lists above"
        )
