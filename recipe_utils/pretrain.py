"""A stand-in for a pretrained generalist: the tiny model after a short pretraining.

The real recipe starts from Cosmos-Reason1-7B, a model that already answers questions about
videos in the template it is asked for and, zero-shot, scores VideoPhy-2 weakly but positively
(r 0.293, bunched at 3-4). The untrained tiny model writes noise. Here it is taught, once per
run folder, what such a generalist knows: questions about other synthetic clips (which event,
which colour, how many objects), each answered as `<answer>N</answer>`, and a rough plausibility
judgement that notices only the conspicuous violations (an object that pops into existence,
swells, or flies up to the ceiling) and answers 3 for those and 4 for everything else. It never
sees a benchmark clip: its clips come from the generator's own `pretrain` stream
(`synthetic.STREAMS`), and never the benchmark's labels, only that rough judgement.

The stand-in lives in the run folder (`models/stand_in/model`), next to the tiny model it is
made from: the run folder already records and enforces one set of settings
(`config.run_dir`), so the run's settings are the cache key, and deleting the run removes it.
`pretrain.json` beside the weights records what it was made from; notebook 02 reads it.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from .prompts import Prompt, load_prompt
from .synthetic import CATEGORY, COLORS, write_split
from .videophy2 import MIN_PIXELS, answer_text

RECORD = "pretrain.json"
SYSTEM = "You are a helpful video analyzer."
TEMPLATE = "Answer with the number only, as <answer>N</answer>."
# what a generalist notices at a glance, and how the record names it
CONSPICUOUS = {
    "appear": "an object that pops into existence",
    "resize": "an object that swells",
    "fall_up": "an object that flies up to the ceiling",
}
COUNTS = {"drop": 1, "throw": 1, "slide": 1, "collide": 2, "stack": 3}  # objects before "appear"
SCENES = list(CATEGORY)


@dataclass
class PretrainSettings:
    """What the stand-in is made from (the profile's `model.pretrain`)."""

    clips: int = 400
    steps: int = 150
    batch_size: int = 8
    lr: float = 1.0e-3
    warmup_steps: int = 15


def options(names: list[str]) -> str:
    return ", ".join(f"{number} {name}" for number, name in enumerate(names, 1))


# the generic questions, each answered 1..5 (`questions`); the plausibility judgement is asked
# with the benchmark's own prompt
QUESTIONS = {
    "event": f"Which event does the video show? {options(list(CATEGORY.values()))}.",
    "colour": f"What colour is the first object? {options(list(COLORS))}.",
    "count": "How many objects are in the video at its end?",
}


def user_text(question: str) -> str:
    """What the user turn of a generic question says (the tokenizer learns it too)."""
    return f"{question} {TEMPLATE}"


def violations(row: dict) -> list[str]:
    return sorted(json.loads(row["metadata_rules"]))


def first_color(row: dict) -> str:
    """The colour of the clip's first object, as its caption names it."""
    return next(word for word in row["caption"].lower().split() if word in COLORS)


def questions(row: dict) -> dict[str, tuple[str, int]]:
    """Each pretraining question about a clip and its answer (1..5)."""
    kind = next(k for k, name in CATEGORY.items() if name == row["category"])
    found = violations(row)
    answers = {
        "event": SCENES.index(kind) + 1,
        "colour": list(COLORS).index(first_color(row)) + 1,
        "count": COUNTS[kind] + ("appear" in found),
    }
    return {name: (QUESTIONS[name], answer) for name, answer in answers.items()} | {
        "plausibility": ("", rough_score(found))
    }


def rough_score(found: list[str]) -> int:
    """A generalist's judgement: 3 when a conspicuous violation is there, else 4."""
    return 3 if any(name in CONSPICUOUS for name in found) else 4


def conversation(
    row: dict, question: str, answer: int, benchmark: Prompt, video: dict
) -> list[dict]:
    """One chat: the generic questions under a plain system prompt, the plausibility judgement
    under the benchmark's prompt (the question the generalist is later asked)."""
    if question:
        system, user = SYSTEM, user_text(question)
    else:
        system, user = benchmark.system, benchmark.user
    clip = {"type": "video", "video": row["video"], **video}
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": [clip, {"type": "text", "text": user}]},
        {"role": "assistant", "content": answer_text(answer)},
    ]


def build_dataset(
    out: Path, settings: PretrainSettings, video: dict, prompt_path: Path, seed: int
) -> Path:
    """Render the pretraining clips and write one conversation per clip, as a dataset
    `train.train_sft` reads. About three in four ask the plausibility question, the behaviour
    the stand-in stands in for, answered 3 as often as 4: every clip whose judgement is the
    rarer one, and as many of the others; the rest ask one generic question each. With the
    judgement as it came (~60% "3") some stand-ins learned only that share and answered "3" to
    every clip (bench/README.md, "Whole-line tokens")."""
    import datasets

    rows = write_split(out, "pretrain", settings.clips, seed)
    benchmark = load_prompt(prompt_path)
    video = {"min_pixels": MIN_PIXELS, **video}
    rng = random.Random(seed)
    asked = [questions(row) for row in rows]
    judged = defaultdict(list)
    for index, row_questions in enumerate(asked):
        judged[row_questions["plausibility"][1]].append(index)
    rarest = min(len(indices) for indices in judged.values())
    plausibility = {i for indices in judged.values() for i in rng.sample(indices, rarest)}
    chats = []
    for index, (row, row_questions) in enumerate(zip(rows, asked)):
        row["video"] = str(out / row["video_url"])
        name = "plausibility" if index in plausibility else rng.choice(list(QUESTIONS))
        chats.append(json.dumps(conversation(row, *row_questions[name], benchmark, video)))
    datasets.Dataset.from_dict({"conversations": chats}).save_to_disk(str(out / "conversations"))
    return out / "conversations"


def record(settings: PretrainSettings, video: dict, prompt_path: Path, seed: int) -> dict:
    """What `pretrain.json` says the stand-in was made from (and what it never saw)."""
    return {
        "settings": asdict(settings),
        "video": video,
        "prompt": prompt_path.name,
        "seed": seed,
        "split": "pretrain",
        "tasks": {
            "event": "which of the five scene kinds the clip shows",
            "colour": "the colour of the first object",
            "count": "how many objects are there at the end",
            "plausibility": "the benchmark prompt, answered 3 when the clip shows "
            + ", or ".join(CONSPICUOUS.values())
            + ", else 4 (a rough judgement, not the clip's pc)",
        },
        "not_seen": [
            "any clip of the benchmark's train or test split (their own random streams)",
            "the benchmark's pc labels, or a score below 3 or of 5",
            "the thinking prompt and any reasoning (think blocks)",
        ],
    }


def pretrain(
    base: str | Path,
    out: str | Path,
    settings: PretrainSettings,
    video: dict,
    prompt_path: Path,
    seed: int,
) -> Path:
    """The stand-in under `out/model`, trained from `base` once: a second call with the same
    settings returns the saved model."""
    from .train import SFTSettings, train_sft

    out, made = Path(out), record(settings, video, prompt_path, seed)
    model = out / "model"
    if (model / RECORD).exists() and json.loads((model / RECORD).read_text()) == made:
        return model
    shutil.rmtree(out, ignore_errors=True)
    dataset = build_dataset(out / "data", settings, video, prompt_path, seed)
    sft = SFTSettings(
        steps=settings.steps,
        batch_size=settings.batch_size,
        lr=settings.lr,
        warmup_steps=settings.warmup_steps,
        decay="none",  # a constant rate: a longer pretraining only adds steps
        save_every=settings.steps,
        seed=seed,
    )
    final = train_sft(base, dataset, out / "training", sft)
    (final / "trainer_state.pt").unlink()
    final.rename(model)
    (model / RECORD).write_text(json.dumps(made, indent=2))  # written last: the cache's mark
    return model


def model_card(model: str | Path) -> list[str]:
    """What the zero-shot model has and has not seen, from the `pretrain.json` beside it; a
    model without one (a hub id) is described as its authors published it."""
    path = Path(model) / RECORD
    if Path(model).is_dir() and not path.is_file():
        return [
            f"`{model}`: no {RECORD} beside it, so what it has seen is not recorded (the "
            "untrained tiny model, `model.pretrain.steps: 0`, has seen nothing)."
        ]
    if not path.is_file():
        return [f"`{model}`, as its authors published it: its training data is theirs."]
    made = json.loads(path.read_text())
    settings = made["settings"]
    return [
        f"The stand-in: the tiny model after {settings['steps']} steps of "
        f"{settings['batch_size']} examples on {settings['clips']} synthetic clips of the "
        f"generator's own `{made['split']}` stream (seed {made['seed']}), one question per clip:",
        *(f"- seen, {name}: {what}" for name, what in made["tasks"].items()),
        *(f"- never seen: {what}" for what in made["not_seen"]),
    ]
