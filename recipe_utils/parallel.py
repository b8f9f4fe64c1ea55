"""Score with every GPU (or CPU core) at once, and never let a model wait for video.

One machine (`engine="local"`):

    parent: pending rows -> batches --> decode pool (M processes, `scoring.load_clips`)
                                            | decoded clips
                                            v
            replica r (a process with its own scorer, on GPUs r*tp .. r*tp+tp-1) -> records
    parent: records -> out/predictions.jsonl (the only writer, one fsync'd append per batch)

The parent keeps every replica `depth` batches ahead (decoding, queued or being scored), so the
decode pool works while the models do. A sweep is several models over the same rows: each
replica slot takes a model that no slot runs yet, and once every model has a slot, a free slot
joins the model with the most batches left (a replica process serves one model for its life,
so no GPU memory is carried from one checkpoint to the next).

Beyond one machine (`engine="ray"`): the same two stages on Ray Data, decoding as CPU tasks and
scoring in an actor pool (`replicas` actors with `tensor_parallel_size` GPUs each); Ray starts
locally unless `RAY_ADDRESS` names a cluster.

Both engines append to the same resumable predictions.jsonl as `scoring.score_rows`: rows
already written are skipped, a killed run loses at most the batches in flight, and no record
is written twice.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import pickle
import queue
import signal
import sys
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.std import tqdm as TextBar

from .machine import usable_cores
from .progress import tqdm
from .scoring import (
    Parallel,
    Sampling,
    ScorerSpec,
    append_records,
    batches,
    done_ids,
    ensure_writable,
    load_clips,
    repair_tail,
    split_rows,
)

POLL_S = 0.05  # how often the parent looks at finished decodes and replica health
PR_SET_PDEATHSIG = 1  # prctl option: a signal for this process when its parent dies


class ReplicaError(OSError):
    """A replica process failed (model load, out of memory, a bug); the message says which."""


# ----------------------------------------------------------------------------- planning


def pending_rows(rows: list[dict], out_dir: Path) -> list[dict]:
    """Rows not yet in `out_dir/predictions.jsonl`, after cutting a line a kill left half-written."""
    out = ensure_writable(out_dir) / "predictions.jsonl"
    repair_tail(out)
    done = done_ids(out)
    return [row for row in rows if row["id"] not in done]


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def replica_gpus(spec: ScorerSpec) -> int:
    """GPUs one replica takes: `tensor_parallel_size` for vLLM, one for transformers on CUDA,
    none when the model runs on CPU."""
    if spec.backend == "vllm":
        return spec.options.get("tensor_parallel_size", 1)
    device = spec.options.get("device", "auto")
    return 0 if device == "cpu" or (device == "auto" and visible_gpus() == 0) else 1


def gpu_groups(replicas: int, spec: ScorerSpec) -> list[list[int] | None]:
    """The GPUs each replica sees (None for all when the model runs on CPU)."""
    size = replica_gpus(spec)
    if size == 0:
        return [None] * replicas
    found = visible_gpus()
    if replicas * size > found:
        raise ValueError(
            f"{replicas} replicas x {size} GPU(s) each need {replicas * size} GPUs, {found} "
            "visible; lower --replicas (or tensor_parallel_size)"
        )
    return [list(range(r * size, (r + 1) * size)) for r in range(replicas)]


# ----------------------------------------------------------------------------- replica process


def die_with_parent(parent_pid: int) -> None:
    """Make the kernel end this process when the parent dies (Linux), so that a killed run
    leaves no replica or decode worker behind, not even one blocked on a half-sent batch."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)


def replica_main(
    slot: int,
    gpus: list[int] | None,
    threads: int,
    spec: ScorerSpec,
    model: str,
    inbox,
    outbox,
    parent_pid: int,
) -> None:
    """Build one scorer, then score batches from `inbox` until told to stop (None)."""
    die_with_parent(parent_pid)
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
    try:
        import torch

        if gpus is None:
            torch.set_num_threads(threads)
        scorer = spec.build(model)
        while True:
            task = inbox.get()
            if task is None:
                return
            job, rows, decoded = task
            records = (
                scorer.score(rows) if decoded is None else scorer.score_decoded(rows, *decoded)
            )
            outbox.put((slot, job, records))
    except Exception as exc:  # reported by the parent, which stops the run
        outbox.put((slot, None, f"{type(exc).__name__}: {exc}"))


@dataclass
class Slot:
    """One replica position (its GPUs) and the process that currently fills it."""

    index: int
    gpus: list[int] | None
    job: int | None = None
    process: multiprocessing.process.BaseProcess | None = None
    inbox: object = None
    in_flight: int = 0


@dataclass
class Job:
    """One model scoring the rows not yet in its folder."""

    model: str
    out: Path
    todo: deque = field(default_factory=deque)  # batches not yet sent
    slots: int = 0  # replicas serving it now


# ----------------------------------------------------------------------------- local engine


class LocalPipeline:
    """Replica processes fed by a decode pool; the parent writes every record."""

    def __init__(self, jobs: list[Job], spec: ScorerSpec, parallel: Parallel, bar: TextBar):
        self.jobs, self.spec, self.parallel, self.bar = jobs, spec, parallel, bar
        self.context = multiprocessing.get_context("spawn")  # CUDA cannot survive a fork
        self.outbox = self.context.Queue()
        groups = gpu_groups(parallel.replicas, spec)
        self.slots = [Slot(i, gpus) for i, gpus in enumerate(groups)]
        self.threads = max(1, usable_cores() // parallel.replicas)
        self.depth = 2 + math.ceil(parallel.decode_workers / parallel.replicas)
        self.decoding: list[tuple[Future, Slot, int, list[dict]]] = []
        self.pool: ProcessPoolExecutor | None = None

    def run(self) -> None:
        with ExitStack() as stack:
            if self.parallel.decode_workers:
                pool = ProcessPoolExecutor(
                    self.parallel.decode_workers,
                    mp_context=self.context,
                    initializer=die_with_parent,
                    initargs=(os.getpid(),),
                )
                self.pool = stack.enter_context(pool)
            stack.callback(self.stop_all)
            for slot in self.slots:
                self.assign(slot)
            while any(slot.in_flight for slot in self.slots):
                self.forward_decoded()
                self.collect()

    def assign(self, slot: Slot) -> None:
        """Give a slot the first model nobody runs, else the one with most batches left."""
        waiting = [j for j, job in enumerate(self.jobs) if job.todo]
        if not waiting:
            return
        job = min(waiting, key=lambda j: (self.jobs[j].slots, -len(self.jobs[j].todo), j))
        if slot.job != job:
            self.stop(slot)
            self.start(slot, job)
        self.top_up(slot)

    def start(self, slot: Slot, job: int) -> None:
        slot.job, slot.inbox = job, self.context.Queue()
        self.jobs[job].slots += 1
        args = (slot.index, slot.gpus, self.threads, self.spec, self.jobs[job].model)
        slot.process = self.context.Process(
            target=replica_main,
            args=(*args, slot.inbox, self.outbox, os.getpid()),
            name=f"replica-{slot.index}",
        )
        slot.process.start()

    def stop(self, slot: Slot) -> None:
        if slot.process is None:
            return
        slot.inbox.put(None)
        slot.process.join(timeout=60)
        if slot.process.is_alive():
            slot.process.terminate()
            slot.process.join()
        slot.inbox.cancel_join_thread()  # batches it never read are dropped, not waited on
        slot.inbox.close()
        self.jobs[slot.job].slots -= 1
        slot.process = slot.job = None

    def stop_all(self) -> None:
        for slot in self.slots:
            self.stop(slot)

    def top_up(self, slot: Slot) -> None:
        """Keep `depth` batches on their way to this slot's replica."""
        job = self.jobs[slot.job]
        while slot.in_flight < self.depth and job.todo:
            rows = job.todo.popleft()
            slot.in_flight += 1
            if self.pool is None:
                slot.inbox.put((slot.job, rows, None))
            else:
                future = self.pool.submit(
                    load_clips, rows, self.spec.prompt, self.spec.video_settings
                )
                self.decoding.append((future, slot, slot.job, rows))

    def forward_decoded(self) -> None:
        still = []
        for future, slot, job, rows in self.decoding:
            if future.done():
                slot.inbox.put((job, rows, future.result()))
            else:
                still.append((future, slot, job, rows))
        self.decoding = still

    def collect(self) -> None:
        """Write what a replica finished; a slot whose model has no batch left moves on."""
        try:
            index, job, records = self.outbox.get(timeout=POLL_S)
        except queue.Empty:
            self.check_alive()
            return
        slot = self.slots[index]
        if job is None:
            model = self.jobs[slot.job].model
            raise ReplicaError(f"replica {index} ({model}, GPUs {slot.gpus}): {records}")
        append_records(self.jobs[job].out / "predictions.jsonl", records)
        self.bar.update(len(records))
        slot.in_flight -= 1
        if self.jobs[slot.job].todo:
            self.top_up(slot)
        elif not slot.in_flight:
            self.assign(slot)

    def check_alive(self) -> None:
        for slot in self.slots:
            if slot.process is not None and not slot.process.is_alive() and slot.in_flight:
                raise ReplicaError(
                    f"replica {slot.index} ({self.jobs[slot.job].model}) exited with code "
                    f"{slot.process.exitcode} (out of memory?) before finishing its batches"
                )


# ----------------------------------------------------------------------------- Ray engine


def decode_batch(batch: dict, spec: ScorerSpec) -> dict:
    """Ray Data CPU stage: rows in, each row's clip (or failed record) out. A clip travels as
    one pickled value, since clips differ in shape and a tensor column holds one shape."""
    rows = [json.loads(text) for text in batch["row"]]
    loaded, failed = load_clips(rows, spec.prompt, spec.video_settings)
    by_id = {item[0]["id"]: (item, None) for item in loaded}
    by_id |= {record["id"]: (None, record) for record in failed}
    return {"row": list(batch["row"]), "decoded": [pickle.dumps(by_id[r["id"]]) for r in rows]}


class RayScorer:
    """Ray Data actor stage: one scorer per actor, built once, scoring decoded batches."""

    def __init__(self, spec: ScorerSpec, model: str, threads: int):
        import torch

        if replica_gpus(spec) == 0:
            torch.set_num_threads(threads)
        self.scorer = spec.build(model)

    def __call__(self, batch: dict) -> dict:
        rows = [json.loads(text) for text in batch["row"]]
        pairs = [pickle.loads(blob) for blob in batch["decoded"]]
        loaded = [item for item, _ in pairs if item is not None]
        failed = [record for _, record in pairs if record is not None]
        records = self.scorer.score_decoded(rows, loaded, failed)
        return {"record": [json.dumps(record, allow_nan=False) for record in records]}


def start_ray(replicas: int) -> None:
    """Join the cluster `RAY_ADDRESS` names, or start Ray here with a logical CPU for the
    decode stage beside one per CPU replica (else CPU actors could starve the decode tasks)."""
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)
        return
    cpus = max(os.cpu_count() or 1, replicas + 1)
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)


def run_ray(jobs: list[Job], spec: ScorerSpec, parallel: Parallel, batch_size: int, bar) -> None:
    """Each model in turn through Ray Data: decode tasks -> scorer actors -> records here."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(
            "--engine ray needs Ray Data: install the `ray` extra (pip install -e .[ray])"
        ) from exc
    start_ray(parallel.replicas)
    gpus = replica_gpus(spec)
    resources = {"num_gpus": gpus} if gpus else {"num_cpus": 1}
    threads = max(1, usable_cores() // parallel.replicas)
    for job in jobs:
        rows = [json.dumps(row) for batch in job.todo for row in batch]
        if not rows:
            continue
        data = ray.data.from_items([{"row": row} for row in rows])
        workers = parallel.decode_workers or None  # None: as many tasks as CPUs allow
        data = data.map_batches(
            decode_batch,
            fn_kwargs={"spec": spec},
            batch_size=batch_size,
            num_cpus=1,
            compute=ray.data.TaskPoolStrategy(size=workers),
        )
        data = data.map_batches(
            RayScorer,
            fn_constructor_kwargs={"spec": spec, "model": job.model, "threads": threads},
            batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(size=parallel.replicas),
            **resources,
        )
        out = job.out / "predictions.jsonl"
        for batch in data.iter_batches(batch_size=None):
            records = [json.loads(text) for text in batch["record"]]
            append_records(out, records)
            bar.update(len(records))


# ----------------------------------------------------------------------------- entry points


def score_models(
    models: dict[Path, str | Path],
    rows: list[dict],
    spec: ScorerSpec,
    parallel: Parallel,
    batch_size: int = 8,
) -> dict[Path, Path]:
    """Score `rows` with each model into its folder (`{folder: model}`), resumably, with
    `parallel.replicas` replicas and `parallel.decode_workers` decode processes; returns each
    folder's predictions.jsonl."""
    if parallel.engine not in ("local", "ray"):
        raise ValueError(f"unknown engine {parallel.engine!r}: use 'local' or 'ray'")
    if parallel.replicas < 1 or parallel.decode_workers < 0:
        raise ValueError(
            f"need replicas >= 1 and decode workers >= 0, got {parallel.replicas} and "
            f"{parallel.decode_workers}"
        )
    jobs = []
    for folder, model in models.items():
        todo = deque(batches(pending_rows(rows, Path(folder)), batch_size))
        jobs.append(Job(str(model), Path(folder), todo))
    total = len(rows) * len(jobs)
    left = sum(len(batch) for job in jobs for batch in job.todo)
    if left:
        with tqdm(total=total, initial=total - left, desc="scoring", unit="video") as bar:
            if parallel.engine == "ray":
                run_ray(jobs, spec, parallel, batch_size, bar)
            else:
                LocalPipeline(jobs, spec, parallel, bar).run()
    return {Path(folder): Path(folder) / "predictions.jsonl" for folder in models}


def score_sweep(
    checkpoints: dict[int, Path],
    out_dir: str | Path,
    source: str | Path,
    split: str | None,
    prompt_path: str | Path,
    video_settings: dict,
    parallel: Parallel,
    sampling: Sampling | None = None,
    backend: str = "transformers",
    limit: int | None = None,
    batch_size: int = 8,
    videos_dir: str | Path | None = None,
    **options,
) -> dict[Path, Path]:
    """Every checkpoint of a sweep at once, spread over the replicas (`out_dir/step_N`); takes
    `score_split`'s arguments."""
    from .prompts import load_prompt

    out_dir = Path(out_dir)
    rows = split_rows(source, split, limit, videos_dir or out_dir)
    sampling = sampling or Sampling()
    spec = ScorerSpec(backend, load_prompt(prompt_path), video_settings, sampling, options)
    models = {out_dir / f"step_{step}": path for step, path in checkpoints.items()}
    return score_models(models, rows, spec, parallel, batch_size)
