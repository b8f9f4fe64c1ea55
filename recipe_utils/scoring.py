"""Score videos 1..5 with a vision-language model, resumably, with two interchangeable backends.

`TransformersScorer` runs anywhere (CPU tests, one GPU) with batched, left-padded `generate`;
`VllmScorer` sends many videos per `LLM.generate` call so the engine batches them on GPUs. Both
build their inputs from the same chat messages (`videophy2.build_messages`) and the same frames
(`video.load_clip`), and both return one record per video. `score_rows` appends each record to
`predictions.jsonl` as soon as it exists, so an interrupted run loses at most the batch in flight.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .answers import parse_answer
from .progress import tqdm
from .prompts import Prompt, load_prompt
from .video import Clip, VideoError, load_clip
from .videophy2 import HUB_ID, build_messages

logger = logging.getLogger(__name__)

DIGITS = ("1", "2", "3", "4", "5")
ANSWER_OPEN = re.compile(r"<answer>\s*$")
ROW_FIELDS = ("video_url", "model_name", "category", "is_hard", "caption")


@dataclass
class Sampling:
    """Decoding settings; the defaults are the published recipe's."""

    temperature: float = 0.6
    top_k: int = 50
    top_p: float = 0.95
    repetition_penalty: float = 1.05
    max_tokens: int = 4096
    seed: int = 1
    greedy: bool = False
    n: int = 1


class Scorer(Protocol):
    def score(self, rows: list[dict]) -> list[dict]:
        """One record per row, in order."""

    def score_decoded(self, rows: list[dict], loaded: list, failed: list[dict]) -> list[dict]:
        """The same, for the (loaded, failed) that `load_clips` returned for these rows."""


def vote(preds: list[int | None]) -> int | None:
    """The most frequent parsed answer over samples (ties go to the lower score)."""
    parsed = [p for p in preds if p is not None]
    if not parsed:
        return None
    counts = Counter(parsed)
    return min(counts, key=lambda p: (-counts[p], p))


def expected_from_probs(probs: dict[int, float]) -> float | None:
    """Probability-weighted mean score over the digits 1..5 (renormalised over those five)."""
    total = sum(probs.values())
    if total <= 0:
        return None
    return sum(score * p for score, p in probs.items()) / total


def answer_position(pieces: list[str]) -> int | None:
    """Index of the generated token that holds the score: the first digit right after `<answer>`."""
    text = ""
    for i, piece in enumerate(pieces):
        if piece.strip() in DIGITS and ANSWER_OPEN.search(text):
            return i
        text += piece
    return None


def make_record(row: dict, raw: list[str], expected: list[float | None], seconds: float) -> dict:
    preds = [parse_answer(text) for text in raw]
    known = [e for e in expected if e is not None]
    record = {
        "id": row["id"],
        "video": row.get("video"),
        "pc": row.get("pc"),
        "pred": vote(preds),
        "preds": preds,
        "expected": float(np.mean(known)) if known else None,
        "raw": raw,
        "seconds": round(seconds, 4),
    }
    record.update({k: row[k] for k in ROW_FIELDS if k in row})
    return record


def failed_record(row: dict, error: str) -> dict:
    """A row whose video could not be scored: no answer, and the reason."""
    return make_record(row, [], [], 0.0) | {"error": error}


def video_part(messages: list[dict]) -> dict:
    """The video item of a conversation's user turn (path plus fps and pixel budget)."""
    for message in messages:
        if isinstance(message["content"], list):
            for part in message["content"]:
                if part.get("type") == "video":
                    return part
    raise ValueError("the conversation has no video item in any turn")


def clip_for(messages: list[dict]) -> Clip:
    """Decode the conversation's video with the fps and pixel budget written in it."""
    part = video_part(messages)
    budget = {k: part[k] for k in ("max_pixels", "total_pixels", "min_pixels") if k in part}
    return load_clip(part["video"], fps=part["fps"], **budget)


def load_clips(rows: list[dict], prompt: Prompt, video_settings: dict):
    """Messages and frames per row; a broken video becomes a failed record, not a crashed run."""
    loaded, failed = [], []
    for row in rows:
        if not row.get("video"):
            failed.append(failed_record(row, f"row {row['id']}: no local video (download first)"))
            continue
        messages = build_messages(row, prompt, video_settings, with_answer=False)
        try:
            loaded.append((row, messages, clip_for(messages)))
        except VideoError as exc:
            failed.append(failed_record(row, str(exc)))
    return loaded, failed


def stop_ids(tokenizer) -> list[int]:
    """Token ids that end an answer: the chat turn end and the text end (as Qwen2.5-VL uses)."""
    ids = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    return [i for i in ids if i is not None and i != tokenizer.unk_token_id]


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_model(path: str | Path) -> str:
    """The model as transformers and vLLM take it, or one line on why it cannot be one: a local
    folder must hold a saved model (config.json), anything else must read as a hub id."""
    name = str(path)
    folder = Path(name)
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ValueError(
                f"{name}: not a model folder (no config.json); give a folder written by "
                "save_pretrained, e.g. a checkpoint's step_N folder, or a hub id"
            )
        return name
    if folder.exists():
        raise ValueError(f"{name}: a file, not a model folder or a hub id")
    if not HUB_ID.match(name) or name.startswith((".", "/", "~")):
        raise ValueError(f"{name}: no such model folder (a hub id reads like owner/name)")
    return name


def load_model(path: str | Path, device: str = "auto", dtype: str = "auto"):
    """Model and processor from a folder or hub id, left-padded for batched generation, with
    `modeling.use_fast_paths` applied (same arithmetic, same checkpoints)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from .modeling import use_fast_paths

    path = check_model(path)
    device = resolve_device(device)
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    model = AutoModelForImageTextToText.from_pretrained(
        str(path), dtype=getattr(torch, dtype), attn_implementation="sdpa"
    ).to(device)
    use_fast_paths(model)
    processor = AutoProcessor.from_pretrained(str(path), use_fast=True)
    processor.tokenizer.padding_side = "left"
    return model, processor


def chat_inputs(processor, conversations: list[list[dict]], clips: list[Clip]):
    """Tokenised chats and frames for a batch: prompts end with the assistant header, while a
    conversation that already holds the assistant turn (training) is rendered whole."""
    texts = [
        processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=messages[-1]["role"] != "assistant"
        )
        for messages in conversations
    ]
    return processor(
        text=texts,
        videos=[clip.frames for clip in clips],
        videos_kwargs={"fps": [clip.fps for clip in clips], "do_resize": False},
        padding=True,
        return_tensors="pt",
    )


def video_input(processor, path: str | Path, settings: dict) -> dict:
    """What the model receives of one clip under video `settings` (fps and a pixel budget):
    frames kept, their size after resizing, and the visual tokens the processor turns them into
    (counted as `<|video_pad|>` tokens in the chat it builds, as scoring and training feed it)."""
    budget = {k: settings[k] for k in ("max_pixels", "total_pixels") if k in settings}
    clip = load_clip(path, fps=settings["fps"], **budget)
    messages = [{"role": "user", "content": [{"type": "video", "video": str(path)}]}]
    inputs = chat_inputs(processor, [messages], [clip])
    pad = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    temporal, rows, columns = (int(n) for n in inputs["video_grid_thw"][0])
    merge = processor.video_processor.merge_size
    return {
        "fps": settings["fps"],
        "pixel budget": ", ".join(
            f"{budget[key]:,} {unit}"
            for key, unit in (("total_pixels", "per clip"), ("max_pixels", "per frame"))
            if key in budget
        ),
        "frames kept": len(clip.frames),
        "frame size (h x w)": f"{clip.frames.shape[1]} x {clip.frames.shape[2]}",
        "frame pairs": temporal,
        "tokens per pair": rows * columns // merge**2,
        "visual tokens": int((inputs["input_ids"] == pad).sum()),
    }


def video_inputs(model: str | Path, path: str | Path, settings: dict[str, dict]) -> dict[str, dict]:
    """`video_input` of one clip under each named video setting, with the model's processor."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(model), use_fast=True)
    return {name: video_input(processor, path, each) for name, each in settings.items()}


class TransformersScorer:
    """Batched `generate` with a Hugging Face model; runs on CPU and on one GPU."""

    def __init__(
        self,
        model_path: str | Path,
        prompt: Prompt,
        video_settings: dict,
        sampling: Sampling | None = None,
        device: str = "auto",
        dtype: str = "auto",
        model=None,
        processor=None,
    ):
        if model is None:
            model, processor = load_model(model_path, device, dtype)
        self.model, self.processor = model, processor
        self.prompt, self.video_settings = prompt, video_settings
        self.sampling = sampling or Sampling()
        tokenizer = processor.tokenizer
        self.digit_ids = [tokenizer.convert_tokens_to_ids(d) for d in DIGITS]
        self.stop_ids = stop_ids(tokenizer)

    def generate_kwargs(self) -> dict:
        s = self.sampling
        kwargs = dict(
            max_new_tokens=s.max_tokens,
            num_return_sequences=s.n,
            eos_token_id=self.stop_ids,
            pad_token_id=self.processor.tokenizer.pad_token_id,
            repetition_penalty=s.repetition_penalty,
            output_logits=True,
            return_dict_in_generate=True,
        )
        if s.greedy:
            return dict(kwargs, do_sample=False, temperature=None, top_k=None, top_p=None)
        return dict(kwargs, do_sample=True, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p)

    def expected_score(self, tokens: list[int], logits: list, index: int) -> float | None:
        import torch

        pieces = [self.processor.tokenizer.decode([t]) for t in tokens]
        position = answer_position(pieces)
        if position is None:
            return None
        probs = torch.softmax(logits[position][index].float(), dim=-1)[self.digit_ids]
        return expected_from_probs({k + 1: float(p) for k, p in enumerate(probs)})

    def score(self, rows: list[dict]) -> list[dict]:
        return self.score_decoded(rows, *load_clips(rows, self.prompt, self.video_settings))

    def score_decoded(self, rows: list[dict], loaded: list, failed: list[dict]) -> list[dict]:
        """`score` for clips `load_clips` decoded already (maybe in a decode worker process)."""
        import torch

        start = time.perf_counter()
        records = {r["id"]: r for r in failed}
        if loaded:
            torch.manual_seed(self.sampling.seed)
            _, conversations, clips = zip(*loaded)
            inputs = chat_inputs(self.processor, list(conversations), list(clips))
            inputs = inputs.to(self.model.device)
            with torch.no_grad():
                out = self.model.generate(**inputs, **self.generate_kwargs())
            new = out.sequences[:, inputs["input_ids"].shape[1] :].tolist()
            eos = {*self.stop_ids, self.processor.tokenizer.pad_token_id}
            seconds = (time.perf_counter() - start) / len(loaded)
            n = self.sampling.n
            for i, (row, _, _) in enumerate(loaded):
                raws, expected = [], []
                for j in range(i * n, (i + 1) * n):
                    tokens = [t for t in new[j] if t not in eos]
                    raws.append(self.processor.tokenizer.decode(tokens, skip_special_tokens=True))
                    expected.append(self.expected_score(tokens, out.logits, j))
                records[row["id"]] = make_record(row, raws, expected, seconds)
        return [records[row["id"]] for row in rows]


class VllmScorer:
    """Many videos per `LLM.generate` call; the engine batches them across the GPUs."""

    def __init__(
        self,
        model_path: str | Path,
        prompt: Prompt,
        video_settings: dict,
        sampling: Sampling | None = None,
        tensor_parallel_size: int = 1,
        max_model_len: int = 32768,
        llm=None,
    ):
        self.model_path, self.prompt, self.video_settings = (
            check_model(model_path),
            prompt,
            video_settings,
        )
        self.sampling = sampling or Sampling()
        self.tensor_parallel_size, self.max_model_len = tensor_parallel_size, max_model_len
        self.llm = llm
        self._processor = None

    @property
    def processor(self):
        if self._processor is None:
            from transformers import AutoProcessor

            self._processor = AutoProcessor.from_pretrained(self.model_path, use_fast=True)
        return self._processor

    def engine(self):
        if self.llm is None:
            try:
                from vllm import LLM
            except ImportError as exc:
                raise ImportError(
                    "the vllm backend needs vLLM: install the GPU extra with "
                    "`pip install -e .[gpu]` on a CUDA machine, or use --backend transformers"
                ) from exc
            self.llm = LLM(
                model=self.model_path,
                tensor_parallel_size=self.tensor_parallel_size,
                max_model_len=self.max_model_len,
                seed=self.sampling.seed,
                limit_mm_per_prompt={"video": 1},
            )
        return self.llm

    def request(self, messages: list[dict], clip: Clip) -> dict:
        """The prompt text and multi-modal payload sent to vLLM for one video."""
        text = self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return {
            "prompt": text,
            "multi_modal_data": {"video": clip.frames},
            "mm_processor_kwargs": {"fps": clip.fps, "do_resize": False},
        }

    def sampling_params(self):
        from vllm import SamplingParams

        s = self.sampling
        temperature, top_k, top_p = (
            (0.0, -1, 1.0) if s.greedy else (s.temperature, s.top_k, s.top_p)
        )
        return SamplingParams(
            n=s.n,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            repetition_penalty=s.repetition_penalty,
            max_tokens=s.max_tokens,
            seed=s.seed,
            logprobs=20,
        )

    @staticmethod
    def expected_score(completion) -> float | None:
        """Expected score from the top log-probabilities vLLM returns at the answer position."""
        if not completion.logprobs:
            return None
        steps = completion.logprobs
        pieces = [
            step[token].decoded_token or "" for step, token in zip(steps, completion.token_ids)
        ]
        position = answer_position(pieces)
        if position is None:
            return None
        probs = {
            int(lp.decoded_token.strip()): float(np.exp(lp.logprob))
            for lp in steps[position].values()
            if (lp.decoded_token or "").strip() in DIGITS
        }
        return expected_from_probs(probs)

    def score(self, rows: list[dict]) -> list[dict]:
        return self.score_decoded(rows, *load_clips(rows, self.prompt, self.video_settings))

    def score_decoded(self, rows: list[dict], loaded: list, failed: list[dict]) -> list[dict]:
        """`score` for clips `load_clips` decoded already (maybe in a decode worker process)."""
        start = time.perf_counter()
        records = {r["id"]: r for r in failed}
        if loaded:
            requests = [self.request(messages, clip) for _, messages, clip in loaded]
            outputs = self.engine().generate(requests, self.sampling_params(), use_tqdm=False)
            seconds = (time.perf_counter() - start) / len(loaded)
            for (row, _, _), output in zip(loaded, outputs):
                raws = [c.text for c in output.outputs]
                expected = [self.expected_score(c) for c in output.outputs]
                records[row["id"]] = make_record(row, raws, expected, seconds)
        return [records[row["id"]] for row in rows]


def ensure_writable(folder: str | Path) -> Path:
    """Fail before any model loads when the output folder cannot be written."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise PermissionError(
            f"{folder}: cannot write here ({exc.strerror}); choose another --out"
        ) from exc
    return folder


# What an output folder's answers depend on; a resumed run must ask the same question.
OUTPUT_RECORD = "scoring.json"


PLACES = ("model", "source")  # recorded by location, so that a run folder can move


def _place(value: str | Path, out_dir: Path) -> dict[str, str]:
    """A model or source as an output folder records it: a hub id as given, a local path (even
    one deleted since) both absolute and relative to the folder, so that a run moved or copied
    with its data still matches (as would another source at the same relative place)."""
    name = str(value)
    if HUB_ID.match(name) and not Path(name).exists():
        return {"name": name}
    absolute = os.path.abspath(name)
    return {"path": absolute, "from_out": os.path.relpath(absolute, os.path.abspath(out_dir))}


def _same_place(recorded: dict, now: dict) -> bool:
    return any(recorded.get(key) == value for key, value in now.items())


def _same_sampling(recorded: dict | None, now: Sampling) -> bool:
    """Field by field, a field added to `Sampling` since taking its default."""
    return asdict(Sampling()) | (recorded or {}) == asdict(now)


def bind_output(
    out_dir: Path,
    model: str | Path,
    source: str | Path,
    split: str | None,
    prompt: Prompt,
    video_settings: dict,
    sampling: Sampling | None = None,
) -> None:
    """Record in `out_dir` what its answers are answers to, or refuse when it already holds
    answers to something else: a resumed run skips the ids it finds, so scoring another folder
    (whose files may share names) or another model into it would mix answers silently. A
    folder that holds only failed rows starts over. Accepted, its failed rows are dropped so
    that the run retries them; refused, nothing in it changes."""
    sampling = sampling or Sampling()
    inputs = _inputs(out_dir, model, source, split, prompt, video_settings, sampling)
    path, answers = out_dir / OUTPUT_RECORD, out_dir / "predictions.jsonl"
    if path.exists() and _holds_answers(answers):
        _refuse_other_inputs(out_dir, json.loads(path.read_text()), inputs, sampling)
    repair_tail(answers)
    retry_failed(answers)
    path.write_text(json.dumps(inputs, indent=2))


def _inputs(
    out_dir: Path,
    model: str | Path,
    source: str | Path,
    split: str | None,
    prompt: Prompt,
    video_settings: dict,
    sampling: Sampling,
) -> dict:
    """What `out_dir` records its answers as answers to (`bind_output`)."""
    return {
        "model": _place(model, out_dir),
        "source": _place(source, out_dir),
        "split": split,
        "prompt": {"system": prompt.system, "user": prompt.user},
        "video": video_settings,
        "sampling": asdict(sampling),
    }


def adopt_answers(
    earlier: Path,
    out_dir: Path,
    model: str | Path,
    source: str | Path,
    split: str | None,
    prompt_path: str | Path,
    video_settings: dict,
    sampling: Sampling | None = None,
) -> bool:
    """Copy the answers of `earlier`, a folder another pass scored, into `out_dir` when they
    answer what `out_dir` would (the same model, rows, prompt, frames and sampling) and it
    holds none yet: scoring `out_dir` then resumes with nothing, or only the rows `earlier`
    lacked, left to do. True when copied."""
    sampling = sampling or Sampling()
    record, answers = earlier / OUTPUT_RECORD, earlier / "predictions.jsonl"
    if _holds_answers(out_dir / "predictions.jsonl") or not record.exists():
        return False
    if not _holds_answers(answers):
        return False
    prompt = load_prompt(prompt_path)
    inputs = _inputs(out_dir, model, source, split, prompt, video_settings, sampling)
    if _differing(json.loads(record.read_text()), inputs, sampling):
        return False
    ensure_writable(out_dir)
    shutil.copyfile(answers, out_dir / "predictions.jsonl")
    return True


def _holds_answers(predictions: Path) -> bool:
    """True when some record is an answer, not a failed row (a torn last line aside)."""
    if not predictions.exists():
        return False
    for line in predictions.read_text().splitlines():
        try:
            if "error" not in json.loads(line):
                return True
        except json.JSONDecodeError:
            continue
    return False


def _same_input(key: str, recorded, now, sampling: Sampling) -> bool:
    if key in PLACES:
        return _same_place(recorded or {}, now)
    if key == "sampling":
        return _same_sampling(recorded, sampling)
    return recorded == json.loads(json.dumps(now))  # as read back: 4 and 4.0 alike


def _differing(recorded: dict, inputs: dict, sampling: Sampling) -> list[str]:
    """The inputs a folder's record answers something else to than `inputs`."""
    return [k for k, now in inputs.items() if not _same_input(k, recorded.get(k), now, sampling)]


def _refuse_other_inputs(out_dir: Path, recorded: dict, inputs: dict, sampling: Sampling) -> None:
    differs = _differing(recorded, inputs, sampling)
    if differs:
        before = [_recorded(key, recorded.get(key)) for key in differs if key in (*PLACES, "split")]
        raise ValueError(
            f"{out_dir} holds answers to another {', '.join(differs)}"
            + (f" ({'; '.join(before)})" if before else "")
            + ": score into another --out, or delete that folder to start over"
        )


def _recorded(key: str, value) -> str:
    if isinstance(value, dict):
        value = value.get("path") or value.get("name")
    return f"{key} was {value}"


def repair_tail(path: Path) -> None:
    """Cut a final line left half-written by a killed run, so appends start on a fresh line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def retry_failed(path: Path) -> None:
    """Drop the error records an earlier run wrote, so a rerun tries those rows again (a host
    may be back, a file replaced); scored records stay. The file is replaced atomically."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines(keepends=True) if line.strip()]
    scored = [line for line in lines if "error" not in json.loads(line)]
    if len(scored) < len(lines):
        partial = path.with_name(path.name + ".partial")
        partial.write_text("".join(scored))
        os.replace(partial, path)


def done_ids(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()}


def append_records(path: Path, records: Iterable[dict]) -> None:
    with path.open("a") as f:
        for record in records:
            f.write(json.dumps(record, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def batches(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def score_rows(
    scorer: Scorer,
    rows: list[dict],
    out_dir: str | Path,
    batch_size: int = 8,
    desc: str = "scoring",
) -> Path:
    """Score the rows not yet in `out_dir/predictions.jsonl`, appending as each batch finishes."""
    out = ensure_writable(out_dir) / "predictions.jsonl"
    repair_tail(out)
    done = done_ids(out)
    pending = [row for row in rows if row["id"] not in done]
    with tqdm(total=len(rows), initial=len(rows) - len(pending), desc=desc, unit="video") as bar:
        for batch in batches(pending, batch_size):
            append_records(out, scorer.score(batch))
            bar.update(len(batch))
    return out


def make_scorer(
    backend: str,
    model: str | Path,
    prompt: Prompt,
    video_settings: dict,
    sampling: Sampling,
    **options,
) -> Scorer:
    """`transformers` or `vllm`; options go to the backend (device, dtype, tensor_parallel_size)."""
    if backend == "transformers":
        return TransformersScorer(model, prompt, video_settings, sampling, **options)
    if backend == "vllm":
        return VllmScorer(model, prompt, video_settings, sampling, **options)
    raise ValueError(f"unknown backend {backend!r}: use 'transformers' or 'vllm'")


def intake(
    source: str | Path,
    split: str | None,
    out_dir: Path,
    limit: int | None = None,
    videos_dir: str | Path | None = None,
) -> tuple[list[dict], list[dict], dict[str, dict]]:
    """The rows still to score, a record (index, reason) of each source row that did not load,
    and every row the source holds now by id (a rerun reports on those alone, where they are).

    Human scores are optional. A row whose video cannot be fetched gets an error record in
    `predictions.jsonl` at once, so every loaded row ends there, scored or with its reason.
    Rows scored by an earlier run are neither fetched nor scored again; its failures are retried.
    """
    from .videophy2 import download_videos, load_rows

    loaded = load_rows(source, split, limit, labels=False)
    predictions = out_dir / "predictions.jsonl"
    done = done_ids(predictions)
    rows = [row for row in loaded.rows if row["id"] not in done]
    if any(row["video"] is None for row in rows):
        download = download_videos(rows, videos_dir or out_dir.parent)
        lost = {item["id"]: item["reason"] for item in download.failed}
        append_records(
            predictions, [failed_record(row, lost[row["id"]]) for row in rows if row["id"] in lost]
        )
        rows = [row for row in rows if row["id"] not in lost]
    skipped = [{"index": index, "reason": why} for index, why in loaded.skipped]
    return rows, skipped, {row["id"]: row for row in loaded.rows}


def write_outputs(
    records: list[dict], out_dir: Path, title: str, report: bool, keep_above: float | None
) -> None:
    """ranking.csv, the kept and dropped lists for `keep_above`, report.html ranked by score."""
    from .ranking import ranked, write_keep_lists, write_ranking
    from .report import write_report

    write_ranking(records, out_dir / "ranking.csv")
    if keep_above is not None:
        write_keep_lists(records, out_dir, keep_above)
    if report:
        write_report(ranked(records), out_dir / "report.html", title=title)


@dataclass(frozen=True)
class Parallel:
    """How a split is spread: `engine` local (processes on this machine) or ray (Ray Data),
    `replicas` model copies (one per GPU, or per `tensor_parallel_size` GPUs), and
    `decode_workers` processes decoding clips ahead of them (0: each replica decodes its own)."""

    engine: str = "local"
    replicas: int = 1
    decode_workers: int = 0

    @property
    def active(self) -> bool:
        return self.engine != "local" or self.replicas > 1 or self.decode_workers > 0


@dataclass(frozen=True)
class ScorerSpec:
    """Everything but the model that builds a scorer, so another process can build its own."""

    backend: str
    prompt: Prompt
    video_settings: dict
    sampling: Sampling
    options: dict

    def build(self, model: str | Path) -> Scorer:
        return make_scorer(
            self.backend, model, self.prompt, self.video_settings, self.sampling, **self.options
        )


def split_rows(
    source: str | Path, split: str | None, limit: int | None, videos_dir: str | Path
) -> list[dict]:
    """The split's rows that have a local video, fetching remote videos into `videos_dir`."""
    from .videophy2 import download_videos, load_rows

    rows = load_rows(source, split, limit).rows
    if any(row["video"] is None for row in rows):
        download_videos(rows, videos_dir)
    return [row for row in rows if row["video"] is not None]


def score_split(
    model: str | Path,
    source: str | Path,
    split: str | None,
    out_dir: str | Path,
    prompt_path: str | Path,
    video_settings: dict,
    sampling: Sampling | None = None,
    backend: str = "transformers",
    limit: int | None = None,
    batch_size: int = 8,
    videos_dir: str | Path | None = None,
    report: bool = True,
    keep_above: float | None = None,
    parallel: Parallel | None = None,
    **options,
) -> Path:
    """Score a split, a list of paths/URLs or a folder of videos (labels optional), resumably.

    Writes under `out_dir`: `predictions.jsonl` (one line per loaded row: its score, or the
    reason it has none), `failed.jsonl`, `ranking.csv`, `report.html` (highest score first) and,
    with `keep_above`, `kept.txt`/`dropped.txt`. The model is loaded only when a video is left
    to score; a source that yields nothing to score at all is a ValueError. `parallel`
    spreads the work over model replicas and decode workers (`recipe_utils.parallel`).
    """
    from .metrics import read_predictions
    from .prompts import load_prompt
    from .videophy2 import lost_rows, write_jsonl

    out_dir = ensure_writable(out_dir)
    prompt = load_prompt(prompt_path)
    sampling = sampling or Sampling()
    bind_output(out_dir, model, source, split, prompt, video_settings, sampling)
    rows, skipped, current = intake(source, split, out_dir, limit, videos_dir)
    predictions = out_dir / "predictions.jsonl"
    if rows and parallel is not None and parallel.active:
        from .parallel import score_models

        spec = ScorerSpec(backend, prompt, video_settings, sampling, options)
        score_models({out_dir: model}, rows, spec, parallel, batch_size)
    elif rows:
        scorer = make_scorer(backend, model, prompt, video_settings, sampling, **options)
        score_rows(scorer, rows, out_dir, batch_size, desc=f"scoring {Path(str(model)).name}")
    # A clip removed from the source since an earlier run keeps its line but leaves the
    # outputs; a clip whose folder moved is listed where it is now.
    records = read_predictions(predictions) if predictions.exists() else []
    records = [
        {**r, "video": current[r["id"]]["video"] or r.get("video")}
        for r in records
        if r["id"] in current
    ]
    errors = [r for r in records if r.get("error")]
    failures = skipped + [
        {"id": r["id"], "video_url": r.get("video_url"), "reason": r["error"]} for r in errors
    ]
    write_jsonl(out_dir / "failed.jsonl", failures)
    message = lost_rows(failures, out_dir / "failed.jsonl") if failures else "it has no rows"
    if len(errors) == len(records):
        raise ValueError(f"{source}: no video could be scored: {message}")
    if failures:
        logger.warning("%s: %d row(s) without a score: %s", source, len(failures), message)
    title = f"{model} on {Path(str(source)).name}{f' ({split})' if split else ''}"
    write_outputs(records, out_dir, title, report, keep_above)
    return predictions


def score_checkpoints(checkpoints: dict[int, Path], out_dir: Path, **score_args) -> dict[int, dict]:
    """Score the split with every checkpoint (each resumable in `out_dir/step_N`); metrics by
    step."""
    from .metrics import evaluate

    parallel = score_args.get("parallel")
    if parallel is not None and parallel.active:
        from .parallel import score_sweep
        from .prompts import load_prompt

        prompt = load_prompt(score_args["prompt_path"])
        for step, path in checkpoints.items():  # a folder of other answers stops all, first
            bind_output(
                ensure_writable(out_dir / f"step_{step}"),
                path,
                score_args["source"],
                score_args.get("split"),
                prompt,
                score_args["video_settings"],
                score_args.get("sampling"),
            )
        score_sweep(checkpoints, out_dir, **score_args)  # all steps at once; the loop reads them
    per_step = {}
    for step, path in checkpoints.items():
        folder = out_dir / f"step_{step}"
        predictions = score_split(path, out_dir=folder, report=False, **score_args)
        per_step[step] = evaluate(predictions, folder / "metrics.json")
    return per_step


def sweep_checkpoints(
    checkpoints: dict[int, Path], out_dir: str | Path, validation: dict, **score_args
) -> dict:
    """Score the test split with every checkpoint (`out_dir/step_N`) and the validation split
    (`validation`: the score_args that differ for it, e.g. its source and split) with every
    trained one (`out_dir/val/step_N`): the starting model, step 0, is never selected, so it is
    not scored there. Writes and returns `metrics.sweep_table`, with the step selected on
    validation."""
    from .metrics import sweep_table

    out_dir = Path(out_dir)
    trained = {step: path for step, path in checkpoints.items() if step > 0}
    val = score_checkpoints(trained, out_dir / "val", **(score_args | validation))
    test = score_checkpoints(checkpoints, out_dir, **score_args)
    table = sweep_table(test, val)
    (out_dir / "sweep.json").write_text(json.dumps(table, indent=2, allow_nan=False))
    return table
