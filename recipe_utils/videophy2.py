"""VideoPhy-2 rows from any source, their videos on disk, balanced labels and chat datasets.

Every source (a hub split, a local .jsonl/.parquet/.csv file, a synthetic benchmark folder) is
normalized to one row schema, so the rest of the course never asks where a row came from. Bad
rows are reported with their index and reason and skipped, never dropped silently. A folder of
video files (searched recursively) is a source too: rows without human scores, to be scored.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import logging
import math
import numbers
import os
import posixpath
import random
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests

from recipe_utils.progress import tqdm
from recipe_utils.prompts import Prompt, load_prompt
from recipe_utils.video import MIN_PIXELS, VideoError, probe

if TYPE_CHECKING:
    import datasets

logger = logging.getLogger(__name__)

LABELS = (1, 2, 3, 4, 5)
TEXT_FIELDS = ("caption", "action", "category", "metadata_rules", "upsampled_caption", "model_name")
RULE_FIELDS = (
    "physics_rules_followed",
    "physics_rules_unfollowed",
    "physics_rules_cannot_be_determined",
    "human_violated_rules",
)
LOCAL_SUFFIXES = (".jsonl", ".parquet", ".csv")
# Sources with these suffixes are files the loader cannot read, never hub ids ("org/name").
OTHER_FILE_SUFFIXES = (".json", ".txt", ".tsv", ".yaml", ".yml", ".xlsx", ".arrow", ".gz", ".zip")
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v")
LABEL_FIELDS = ("sa", "pc")
NOT_A_VALUE = {"nan", "none", "null"}  # how pandas and Python write an empty cell to text
VIDEO_KEYS = {"fps", "min_pixels", "max_pixels", "total_pixels"}  # what video.load_clip reads
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
SAFE_ID = re.compile(r"^\w[\w.-]*$")
MAX_ID_LENGTH = 128  # an id names its video file; file systems allow 255 bytes
OFFLINE_HINT = (
    "If this machine is offline, point the course at local files instead: "
    "`--source path/to/file.jsonl` (rows whose video_url is a path relative to that file) or "
    "`--source DIR` for a folder of videos or one made by `python -m recipe_utils synth`."
)


class RowError(ValueError):
    """A row that does not fit the VideoPhy-2 schema; the message says which field and why."""


class HubUnreachable(ConnectionError):
    """The hub cannot be reached; the message says how to work offline."""


class DownloadError(RuntimeError):
    """One video could not be fetched; the message says why (HTTP status, timeout, ...)."""


@dataclass
class Rows:
    """Normalized rows, the (0-based index, reason) of every skipped row, and their source."""

    rows: list[dict]
    skipped: list[tuple[int, str]]
    source: str
    split: str | None = None

    def __len__(self) -> int:
        return len(self.rows)


# ----------------------------------------------------------------------------- rows


def url_key(url: str) -> str:
    """A stable file-name-safe id for a video URL: the first 16 hex digits of its SHA-1."""
    return hashlib.sha1(url.encode("utf-8")).hexdigest()[:16]


def is_url(text: str) -> bool:
    return urlsplit(text).scheme in ("http", "https")


def _missing(value: object) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, str):
        return not value.strip() or value.strip().lower() in NOT_A_VALUE
    return value is None


def _integer(value: object, name: str) -> int:
    """An int from an int, an integral float (4.0) or a numeric string (CSV); else RowError."""
    if _missing(value):
        raise RowError(f"`{name}` is missing")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise RowError(f"`{name}`={value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise RowError(f"`{name}`={value!r} is not a number")
    if not float(value).is_integer():
        raise RowError(f"`{name}`={value!r} is not a whole number")
    return int(value)


def _score(raw: dict, name: str, required: bool) -> int | None:
    if not required and _missing(raw.get(name)):
        return None
    value = _integer(raw.get(name), name)
    if value not in LABELS:
        raise RowError(f"`{name}`={value} is outside 1..5")
    return value


def _flag(raw: dict, name: str, default: int | None) -> int | None:
    """0/1 from a number, a bool (parquet, JSON) or its text ("True" in a CSV)."""
    value = raw.get(name)
    if _missing(value):
        return default
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        value = value.strip().lower() == "true"
    if isinstance(value, bool):
        return int(value)
    value = _integer(value, name)
    if value not in (0, 1):
        raise RowError(f"`{name}`={value} should be 0 or 1")
    return value


def _text(raw: dict, name: str) -> str:
    value = raw.get(name)
    if _missing(value):
        return ""
    if not isinstance(value, str):
        raise RowError(f"`{name}` should be text, got {type(value).__name__}")
    return value


def _rule_item(node: ast.expr, name: str) -> str | None:
    if (isinstance(node, ast.Name) and node.id == "nan") or (
        isinstance(node, ast.Constant) and node.value is None
    ):
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    shown = ast.unparse(node) if isinstance(node, ast.Constant) else type(node).__name__
    raise RowError(f"`{name}` holds a non-text item {shown!r}")  # (unparsing nests deeply)


def _rules(value: object, name: str) -> list[str]:
    """Rule lists arrive as lists or as Python-literal strings ("['a', 'b']", "[nan]")."""
    if _missing(value):
        return []
    if isinstance(value, str):
        try:
            node = ast.parse(value.strip(), mode="eval").body
        except (SyntaxError, RecursionError, MemoryError):  # the last two: absurd nesting
            raise RowError(f"`{name}`={value[:60]!r} is not a list literal") from None
        if not isinstance(node, (ast.List, ast.Tuple)):
            raise RowError(f"`{name}`={value[:60]!r} is not a list literal")
        items = [_rule_item(element, name) for element in node.elts]
    elif isinstance(value, (list, tuple)):
        items = [None if _missing(item) else item for item in value]
    else:
        raise RowError(f"`{name}` should be a list, got {type(value).__name__}")
    if any(item is not None and not isinstance(item, str) for item in items):
        raise RowError(f"`{name}` holds a non-text item")
    return [item for item in items if item is not None and item.strip()]  # '' names no rule


def local_id(path: str) -> str:
    """A readable, stable id for a local video: its file stem plus a hash of the path as written.

    Generators' folders reuse file names (`cogvideo/0001.mp4`, `hunyuan/0001.mp4`), so the stem
    alone would make the second row a duplicate.
    """
    path = posixpath.normpath(path.replace("\\", "/"))
    stem = re.sub(r"[^\w.-]+", "_", posixpath.splitext(posixpath.basename(path))[0])
    return f"{stem.strip('._-')[:48] or 'video'}-{url_key(path)[:8]}"


def _row_id(raw: dict, url: str) -> str:
    given = raw.get("id")
    if _missing(given):
        return url_key(url) if is_url(url) else local_id(url)
    row_id = str(given).strip()
    if len(row_id) > MAX_ID_LENGTH:
        raise RowError(
            f"id {row_id[:20]!r}... is longer than {MAX_ID_LENGTH} characters (it names a file)"
        )
    if not SAFE_ID.match(row_id):
        raise RowError(
            f"id {row_id!r} may only hold letters, digits, '.', '_', '-' (it names a file)"
        )
    return row_id


def normalize_row(raw: object, base: Path | None, labels: bool = True) -> dict:
    """One row in the course schema. `base` is the split file's folder (None for hub rows).

    With `labels=False` the human scores `sa` and `pc` may be absent (None): clips to be scored.
    """
    if not isinstance(raw, dict):
        raise RowError(f"expected a mapping of columns, got {type(raw).__name__}")
    url = raw.get("video_url")
    if _missing(url) or not isinstance(url, str):
        raise RowError("`video_url` is missing")
    url = url.strip()
    if base is None and not is_url(url):
        raise RowError(f"`video_url`={url!r} is not an http(s) URL")
    sa, pc = _score(raw, "sa", labels), _score(raw, "pc", labels)
    row = {"id": _row_id(raw, url), "video_url": url, "sa": sa, "pc": pc}
    # absolute, links kept: a user's symlinked clip is listed under its own name
    row["video"] = None if is_url(url) else os.path.abspath(base / url)
    joint = None if sa is None or pc is None else int(sa >= 4 and pc >= 4)
    row["joint"] = _flag(raw, "joint", default=joint)
    row["is_hard"] = _flag(raw, "is_hard", default=0)
    row.update({name: _text(raw, name) for name in TEXT_FIELDS})
    row.update({name: _rules(raw.get(name), name) for name in RULE_FIELDS})
    return row


def _read_text(path: Path) -> str:
    """The file's text; a byte-order mark is dropped (it would rename the first column)."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x}); "
            "save it as UTF-8"
        ) from None


def _read_jsonl(path: Path) -> list:
    records = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            records.append(RowError(f"line {number} is not valid JSON ({exc.msg})"))
    return records


def _read_csv(path: Path) -> tuple[list[dict], list[str]]:
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    try:
        return list(reader), list(reader.fieldnames or [])
    except csv.Error as exc:
        raise ValueError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None


def _read_folder(folder: Path) -> list[dict]:
    """One row per video file under `folder` (any depth), its path relative to the folder."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    return [{"video_url": p.relative_to(folder).as_posix()} for p in files if p.is_file()]


def _read_local(path: Path) -> tuple[list, list[str]]:
    """Records and the column names the source declares (for JSONL: those any row uses)."""
    if path.is_dir():
        return _read_folder(path), ["video_url"]
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return table.to_pylist(), table.column_names
    records = _read_jsonl(path)
    return records, list(dict.fromkeys(k for r in records if isinstance(r, dict) for k in r))


def _check_columns(columns: list[str], labels: bool, source: str) -> None:
    """One message for a column every row lacks, instead of one per row."""
    required = ("video_url", *LABEL_FIELDS) if labels else ("video_url",)
    missing = [name for name in required if name not in columns]
    if missing:
        names = ", ".join(f"`{name}`" for name in missing)
        verb = "column {} is" if len(missing) == 1 else "columns {} are"
        raise ValueError(
            f"{source}: {verb.format(names)} not in the header; "
            f"found: {', '.join(map(repr, columns))}"
        )


def _read_hub(dataset_id: str, split: str):
    import datasets

    try:
        return datasets.load_dataset(dataset_id, split=split)
    except (ConnectionError, requests.RequestException) as exc:
        raise HubUnreachable(
            f"could not load hub dataset {dataset_id!r} (split {split!r}): {exc}. {OFFLINE_HINT}"
        ) from exc


def _records(file: Path | None, hub_id: str | None, split: str | None) -> tuple[list, list[str]]:
    """The raw records of a resolved source (`_resolve`) and its column names."""
    if hub_id:
        records = _read_hub(hub_id, split)
        return records, records.column_names
    return _read_local(file)


def _has_videos(folder: Path) -> bool:
    return any(p.suffix.lower() in VIDEO_SUFFIXES for p in folder.rglob("*"))


def _resolve(source: str | Path, split: str | None) -> tuple[Path | None, str | None]:
    """Return (split file or video folder, None) for local sources or (None, hub id)."""
    path = Path(source)
    if path.is_dir():
        splits = sorted(p.stem for p in path.glob("*.jsonl"))
        if split is None and not splits and _has_videos(path):
            return path, None
        if split is None and not splits:
            raise ValueError(
                f"{path}: no video file in this folder or below ({', '.join(VIDEO_SUFFIXES)}) "
                "and no SPLIT.jsonl"
            )
        if split is None:
            raise ValueError(
                f"{path} is a folder: also give the split (e.g. 'train' or 'test'); "
                f"splits in it: {splits or 'none'}"
            )
        file = path / f"{split}.jsonl"
        if not file.is_file():
            raise FileNotFoundError(f"{file} does not exist; splits in {path}: {splits or 'none'}")
        return file, None
    suffix = path.suffix.lower()
    if suffix in LOCAL_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        return path, None
    if HUB_ID.match(str(source)) and suffix not in OTHER_FILE_SUFFIXES + VIDEO_SUFFIXES:
        if split is None:
            raise ValueError(f"hub dataset {source!r}: give the split (e.g. 'train' or 'test')")
        return None, str(source)
    raise ValueError(
        f"source {str(source)!r} is neither a folder, a {'/'.join(LOCAL_SUFFIXES)} file, "
        "nor a hub dataset id like 'videophysics/videophy2_test'"
    )


def load_rows(
    source: str | Path, split: str | None = None, limit: int | None = None, labels: bool = True
) -> Rows:
    """Load and normalize rows; bad and duplicate rows are skipped and listed in `.skipped`.

    `labels=False` accepts rows without human scores (`pc`, `sa` become None), as a folder of
    videos or a list of paths/URLs to score has none.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of rows or None, got {limit}")
    file, hub_id = _resolve(source, split)
    if labels and file is not None and file.is_dir():
        raise ValueError(
            f"{file} is a folder of videos, which has no human scores (`pc`): score it, or give "
            "a .jsonl/.parquet/.csv file with a `pc` column"
        )
    records, columns = _records(file, hub_id, split)
    if columns:
        _check_columns(columns, labels, str(file or hub_id))
    base = None if hub_id else (file if file.is_dir() else file.parent).resolve()
    rows, skipped, first_seen = [], [], {}
    for index, raw in enumerate(records):
        if limit is not None and len(rows) >= limit:
            break
        try:
            if isinstance(raw, RowError):
                raise raw
            row = normalize_row(raw, base, labels)
        except RowError as exc:
            skipped.append((index, str(exc)))
            continue
        if row["id"] in first_seen:
            skipped.append(
                (index, f"duplicate id {row['id']!r} (first at index {first_seen[row['id']]})")
            )
            continue
        first_seen[row["id"]] = index
        rows.append(row)
    if skipped:
        shown = "; ".join(f"index {i}: {why}" for i, why in skipped[:5])  # 0: first row
        logger.warning("%s: skipped %d bad row(s): %s", file or hub_id, len(skipped), shown)
    return Rows(rows, skipped, str(file or hub_id), split)


def load_labels(source: str | Path, split: str | None = None) -> dict[str, int]:
    """`pc` by id from rows scored elsewhere (people's scores found later): a row needs `pc` and
    either an `id` or the `video_url` its clip was scored from (the id is made from it)."""
    file, hub_id = _resolve(source, split)
    if file is not None and file.is_dir():
        raise ValueError(f"{file} is a folder of videos: labels come as a .jsonl/.parquet/.csv")
    records, columns = _records(file, hub_id, split)
    name = str(file or hub_id)
    if "pc" not in columns or not {"id", "video_url"} & set(columns):
        raise ValueError(
            f"{name}: labels need a `pc` column and an `id` or `video_url` column; "
            f"found: {', '.join(map(repr, columns))}"
        )
    labels, skipped = {}, []
    for index, raw in enumerate(records):
        try:
            if isinstance(raw, RowError):
                raise raw
            url = raw.get("video_url")
            if _missing(raw.get("id")) and (_missing(url) or not isinstance(url, str)):
                raise RowError("neither `id` nor `video_url` is given")
            row_id = _row_id(raw, str(url).strip())
            if row_id in labels:
                raise RowError(f"duplicate id {row_id!r}")
            labels[row_id] = _score(raw, "pc", required=True)
        except RowError as exc:
            skipped.append(f"index {index}: {exc}")
    if skipped:
        logger.warning("%s: skipped %d row(s): %s", name, len(skipped), "; ".join(skipped[:5]))
    return labels


# ----------------------------------------------------------------------------- videos


def append_jsonl(path: Path, records: list[dict]) -> None:
    """Append one JSON line per record (creating the file, even for none)."""
    with path.open("a", encoding="utf-8") as out:
        out.writelines(json.dumps(record) + "\n" for record in records)


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


def lost_rows(failures: list[dict], listed_in: Path, shown: int = 3) -> str:
    """One line on the rows a stage lost: the most frequent reasons with their counts, where
    every row is listed, and how to work offline when a host could not be reached."""
    counts = Counter(item["reason"] for item in failures)
    top = "; ".join(f"{n} x {reason}" for reason, n in counts.most_common(shown))
    more = f"; and {len(counts) - shown} other reason(s)" if len(counts) > shown else ""
    offline = any(reason.startswith("cannot reach") for reason in counts)
    return f"{top}{more}; every row and its reason: {listed_in}" + (
        f". {OFFLINE_HINT}" if offline else ""
    )


@dataclass
class DownloadReport:
    """Ids fetched now, ids already on disk, and failures (id, url, reason) also in failed.jsonl."""

    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)


class _Retry(Exception):
    """A failure worth another attempt (network error, 5xx, cut-off body)."""


def host_of(url: str) -> str:
    return "{0.scheme}://{0.netloc}/".format(urlsplit(url))


def unreachable_hosts(urls: list[str], timeout: float) -> dict[str, str]:
    """The video hosts that cannot be reached, each with why: their rows fail at once, without
    retries, while the other hosts' rows download."""
    down = {}
    for host in sorted({host_of(url) for url in urls}):
        try:
            requests.head(host, timeout=timeout)
        except (requests.ConnectionError, requests.Timeout) as exc:
            down[host] = f"cannot reach {host} ({type(exc).__name__})"
    return down


def _attempt(url: str, part: Path, timeout: float) -> None:
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            if response.status_code >= 500 or response.status_code == 429:
                raise _Retry(f"HTTP {response.status_code} {response.reason}")
            if response.status_code >= 400:
                raise DownloadError(f"HTTP {response.status_code} {response.reason}")
            with part.open("wb") as out:
                for chunk in response.iter_content(chunk_size=1 << 16):
                    out.write(chunk)
    except requests.Timeout as exc:
        raise _Retry(f"timed out after {timeout} s ({exc})") from exc
    except requests.RequestException as exc:
        raise _Retry(f"connection failed or cut off ({exc})") from exc
    probe(part)


def _fetch(url: str, dest: Path, timeout: float, retries: int, backoff: float) -> None:
    """Download to `dest.part`, check it decodes, then rename: `dest` is always complete."""
    part = dest.with_name(dest.name + ".part")
    try:
        for attempt in range(retries + 1):
            try:
                _attempt(url, part, timeout)
                part.replace(dest)
                return
            except _Retry as exc:
                if attempt == retries:
                    raise DownloadError(f"{exc} (gave up after {retries + 1} attempts)") from exc
                time.sleep(backoff * 2**attempt)
    finally:
        part.unlink(missing_ok=True)


def download_videos(
    rows: list[dict],
    out_dir: str | Path,
    workers: int = 8,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
) -> DownloadReport:
    """Fetch each remote row's video to OUT/videos/{id}.mp4 and set `row["video"]`.

    Files are named by id (a hash of the URL), never by row position, so datasets built in
    any order share one folder safely. Finished files are reused; failures are appended to
    OUT/failed.jsonl (datasets sharing the folder keep each other's entries) and the run goes
    on. Rows on a host that cannot be reached fail at once; the other hosts' rows download.
    The caller, who knows what else its rows lost, tells the user (`lost_rows`).
    """
    out_dir = Path(out_dir)
    videos = out_dir / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    remote = [row for row in rows if is_url(row["video_url"])]
    urls = {row["id"]: row["video_url"] for row in remote}
    done = {i for i in urls if (videos / f"{i}.mp4").is_file()}
    report = DownloadReport(present=[i for i in urls if i in done])
    todo = {i: url for i, url in urls.items() if i not in done}
    down = unreachable_hosts(list(todo.values()), timeout) if todo else {}
    for row_id, url in list(todo.items()):
        if host_of(url) in down:
            report.failed.append({"id": row_id, "url": url, "reason": down[host_of(url)]})
            del todo[row_id]
    if todo:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {
                pool.submit(_fetch, url, videos / f"{i}.mp4", timeout, retries, backoff): i
                for i, url in todo.items()
            }
            for future in tqdm(as_completed(futures), total=len(futures), desc="videos"):
                row_id = futures[future]
                try:
                    future.result()
                    report.fetched.append(row_id)
                except (DownloadError, VideoError) as exc:
                    report.failed.append({"id": row_id, "url": todo[row_id], "reason": str(exc)})
    failed = {item["id"] for item in report.failed}
    for row in remote:
        row["video"] = None if row["id"] in failed else str((videos / f"{row['id']}.mp4").resolve())
    append_jsonl(out_dir / "failed.jsonl", sorted(report.failed, key=lambda i: i["id"]))
    return report


# ----------------------------------------------------------------------------- labels


@dataclass
class Balanced:
    """Resampled rows, `pc` counts before and after, and the labels absent from the input."""

    rows: list[dict]
    before: dict[int, int]
    after: dict[int, int]
    absent: list[int]


def label_counts(rows: list[dict]) -> dict[int, int]:
    """How many rows carry each `pc` value, with every label 1..5 listed (0 when absent)."""
    counts = Counter(row["pc"] for row in rows)
    return {label: counts[label] for label in LABELS}


def balance_labels(rows: list[dict], seed: int = 0) -> Balanced:
    """Resample every `pc` value present to len(rows) // n_present rows, then shuffle.

    Larger groups are down-sampled without replacement; smaller ones keep all their rows and
    draw the rest with replacement. Without this, GRPO learns to answer 4 to everything.
    """
    if not rows:
        raise ValueError("balance_labels got no rows: load a split with at least one valid row")
    rng = random.Random(seed)
    before = label_counts(rows)
    present = [label for label in LABELS if before[label]]
    target = len(rows) // len(present)
    out = []
    for label in present:
        group = [row for row in rows if row["pc"] == label]
        if len(group) >= target:
            out += rng.sample(group, target)
        else:
            out += group + rng.choices(group, k=target - len(group))
    rng.shuffle(out)
    out = [dict(row) for row in out]
    absent = [label for label in LABELS if not before[label]]
    return Balanced(out, before, label_counts(out), absent)


_balance_labels = balance_labels  # prepare() takes a flag with the same name


# ----------------------------------------------------------------------------- conversations


NO_VIOLATION = "No violation: every object follows physical commonsense."
NUMBERED = re.compile(r"^\d+\.\s*")  # how `rationale` numbers the violations it lists


def stated_violations(row: dict) -> list[str]:
    """The violations a target's reasoning lists for a row: its `human_violated_rules`, or,
    when a row scored below 5 has none there, its `physics_rules_unfollowed` (real VideoPhy-2
    rows with pc 2 can carry their violations only in that column)."""
    violations = row.get("human_violated_rules") or []
    if not violations and row.get("pc", 5) < 5:
        violations = row.get("physics_rules_unfollowed") or []
    return violations


def rationale_conflict(row: dict) -> str | None:
    """Why a row's reasoning would contradict its score, or None when they agree.

    They agree when the reasoning lists a violation exactly when the score is below 5. The
    number of violations is not compared with the score: VideoPhy-2's `pc` is a holistic
    judgment, not 5 minus a count. A row with pc 5 that lists violations (annotators disagreeing
    with themselves), or one below 5 with none in either column, has no honest target: saying
    "no violation" and 2, or listing one and then 5, teaches the model to contradict itself.
    """
    listed = bool(stated_violations(row))
    if row["pc"] == 5 and listed:
        return "rationale conflict: pc 5 but human_violated_rules lists a violation"
    if row["pc"] < 5 and not listed:
        return f"rationale conflict: pc {row['pc']} but no violation is annotated"
    return None


def rationale(row: dict) -> str:
    """The reasoning an SFT target can show before its score: the row's `stated_violations`,
    numbered, or one line saying there are none."""
    violations = stated_violations(row)
    if not violations:
        return NO_VIOLATION
    return "\n".join(f"{number}. {text}" for number, text in enumerate(violations, 1))


def listed_violations(reasoning: str) -> list[str]:
    """The violations a reasoning written like `rationale`'s lists, one per non-empty line with
    its number dropped; the no-violation line lists none."""
    lines = (NUMBERED.sub("", line.strip()) for line in reasoning.splitlines())
    return [line for line in lines if line and line != NO_VIOLATION]


def answer_text(pc: int, reasoning: str | None = None) -> str:
    """The assistant turn the model is trained to write for a score, after its reasoning
    in a think block when one is given."""
    if isinstance(pc, bool) or pc not in LABELS:
        raise ValueError(f"pc must be an integer 1..5, got {pc!r}")
    answer = f"<answer>\n{pc}\n</answer>"
    return answer if reasoning is None else f"<think>\n{reasoning}\n</think>\n\n{answer}"


def build_messages(
    row: dict,
    prompt: Prompt,
    video_settings: dict,
    with_answer: bool,
    with_rationale: bool = False,
) -> list[dict]:
    """The chat messages for one row: system, user (video + question), optional answer
    (with the row's `rationale` in a think block when `with_rationale`)."""
    unknown = set(video_settings) - VIDEO_KEYS
    if unknown:
        raise ValueError(
            f"video_settings: unknown key(s) {sorted(unknown)}; known: {sorted(VIDEO_KEYS)}"
        )
    if not row.get("video"):
        raise ValueError(f"row {row.get('id')!r} has no local video yet; download it first")
    video = {"type": "video", "video": row["video"], **video_settings}
    messages = [
        {"role": "system", "content": prompt.system},
        {"role": "user", "content": [video, {"type": "text", "text": prompt.user}]},
    ]
    if with_answer:
        reasoning = rationale(row) if with_rationale else None
        messages.append({"role": "assistant", "content": answer_text(row["pc"], reasoning)})
    return messages


def _features():
    from datasets import Features, List, Value

    columns = {"conversations": Value("string"), "id": Value("string"), "video": Value("string")}
    columns.update({name: Value("string") for name in ("video_url", *TEXT_FIELDS)})
    columns.update({name: Value("int64") for name in ("sa", "pc", "joint", "is_hard")})
    columns.update({name: List(Value("string")) for name in RULE_FIELDS})
    return Features(columns)


def unreadable(paths: list[str]) -> dict[str, str]:
    """Why each of these local clips cannot be used, for those that do not decode: a training
    step that met one would stop there. Downloads are checked as they arrive (`_fetch`); the
    clips are decoded in threads, which PyAV runs without the GIL."""

    def reason(path: str) -> str | None:
        try:
            probe(path)
        except VideoError as exc:
            return str(exc)
        return None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        reasons = list(pool.map(reason, paths))
    return {path: why for path, why in zip(paths, reasons, strict=True) if why}


def prepare(
    source: str | Path,
    split: str | None,
    out: str | Path,
    prompt_path: str | Path,
    balance_labels: bool = False,
    rationale: bool = False,
    limit: int | None = None,
    fps: float = 1,
    max_pixels: int = 81920,
    min_pixels: int = MIN_PIXELS,
    seed: int = 0,
    download_dir: str | Path | None = None,
    partition: dict | None = None,
) -> Path:
    """Build a conversation dataset at `out` (save_to_disk) plus `out/prepare_report.json`.

    Hub videos are downloaded to `download_dir` (default: the folder above `out`), so several
    datasets built from one split share one set of videos. `rationale` puts each row's
    annotated violations in a think block before the score (`rationale()`): a prompt that asks
    for one is required, and rows whose annotations contradict their score
    (`rationale_conflict`) are skipped and counted in the report's `rationale_conflicts`.
    `partition` (what `splits.write_partition` recorded, when `source` is one of its parts) is
    copied into the report, so a dataset says which rows of the train split it left to others.
    """
    import datasets

    out = Path(out)
    prompt = load_prompt(prompt_path)
    if rationale and "<think>" not in prompt.system:
        raise ValueError(
            f"rationale=True writes <think> blocks, but {prompt.path} does not ask for one; "
            "use prompts/video_reward_with_thinking.yaml"
        )
    loaded = load_rows(source, split, limit)
    scored_below_5 = any(row["pc"] < 5 for row in loaded.rows)
    if rationale and scored_below_5 and not any(stated_violations(row) for row in loaded.rows):
        raise ValueError(
            f"{loaded.source}: no row lists a violation (`human_violated_rules` or "
            "`physics_rules_unfollowed`), which targets with a rationale are written from"
        )
    skipped = [{"index": index, "reason": why} for index, why in loaded.skipped]
    usable = []  # checked before downloading: a row without an honest target needs no video
    for row in loaded.rows:
        conflict = rationale_conflict(row) if rationale else None
        if conflict:
            skipped.append({"id": row["id"], "video_url": row["video_url"], "reason": conflict})
        else:
            usable.append(row)
    download = None
    if any(row["video"] is None for row in usable):
        download = download_videos(usable, download_dir or out.parent)
    lost = {item["id"]: item["reason"] for item in download.failed} if download else {}
    broken = unreadable([row["video"] for row in usable if not is_url(row["video_url"])])
    rows = []
    for row in usable:
        reason = lost.get(row["id"]) or broken.get(row["video"])
        if reason:
            skipped.append({"id": row["id"], "video_url": row["video_url"], "reason": reason})
        else:
            rows.append(row)
    if not rows:
        if not skipped:
            raise ValueError(f"{loaded.source}: no usable rows: the source is empty")
        out.mkdir(parents=True, exist_ok=True)
        write_jsonl(out / "failed.jsonl", skipped)
        raise ValueError(
            f"{loaded.source}: no usable rows: {lost_rows(skipped, out / 'failed.jsonl')}"
        )
    if skipped:
        logger.warning(
            "%s: %d of %d rows left out: %s",
            loaded.source,
            len(skipped),
            len(skipped) + len(rows),
            lost_rows(skipped, out / "failed.jsonl"),
        )
    final = _balance_labels(rows, seed).rows if balance_labels else rows
    # min_pixels is written too: qwen-vl-utils (cosmos-rl's reader) defaults it above 81920.
    settings = {"fps": fps, "max_pixels": max_pixels, "min_pixels": min_pixels}
    chats = [
        json.dumps(
            build_messages(row, prompt, settings, with_answer=True, with_rationale=rationale)
        )
        for row in final
    ]
    records = [{"conversations": chat, **row} for chat, row in zip(chats, final, strict=True)]
    datasets.Dataset.from_list(records, features=_features()).save_to_disk(str(out))
    before = label_counts(rows)
    downloads = {name: len(ids) for name, ids in asdict(download).items()} if download else None
    report = {
        "source": loaded.source,
        "split": split,
        "prompt": str(prompt.path),
        "video_settings": settings,
        "rows_in": len(loaded.rows) + len(loaded.skipped),
        "rows_out": len(final),
        "skipped": skipped,
        "failed": str(out / "failed.jsonl"),
        "balanced": balance_labels,
        "rationale": rationale,
        "rationale_conflicts": len(loaded.rows) - len(usable),
        "seed": seed,
        "label_counts_before": before,
        "label_counts_after": label_counts(final),
        "absent_labels": [label for label, count in before.items() if not count],
        "download": downloads,
    }
    if partition is not None:
        report["partition"] = partition
    write_jsonl(out / "failed.jsonl", skipped)
    (out / "prepare_report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return out


def load_conversations(path: str | Path) -> datasets.Dataset:
    """Load a dataset written by `prepare`; `conversations` stays a JSON string per row."""
    import datasets

    path = Path(path)
    hint = "build it with prepare() (`python -m recipe_utils prepare ...`)"
    try:
        dataset = datasets.load_from_disk(str(path))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path} is not a prepared dataset: {hint}") from exc
    if not isinstance(dataset, datasets.Dataset) or "conversations" not in dataset.column_names:
        raise ValueError(f"{path} holds no `conversations` column: {hint}")
    return dataset
