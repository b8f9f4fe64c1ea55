"""Procedural physics clips with exact ground truth, in the VideoPhy-2 schema.

Each clip is a simple scene (a dropped ball, a throw, a sliding block, a two-ball collision, a ball
falling beside a stack of boxes) simulated with plain kinematics, and then, on purpose, broken by
zero or more violations from the five challenge classes of RECIPE_FACTS.md (`CLASSES`). Each
row lists what the frames show in `human_violated_rules`, one sentence per violation
(`EVIDENCE`), as a VideoPhy-2 annotator would write it.

Ground truth: ``pc = max(1, 5 - number of violations)``. A clean clip is 5, one violation 4,
and so on down to 1 for four. Every violation leaves evidence that *is there* in many frames
(an extra or swollen object, an object in the air or at the ceiling, overlapping another, inside
the floor or the wall, doubled by jumps) rather than something missing: a tiny model trained
from scratch learns to spot what is present within minutes on a CPU, while the absence of an
object (a ball that vanishes) it did not learn in our trials, so vanishing is left out.
The generator picks the target ``pc`` first (from a label mix that, for
train, is imbalanced like VideoPhy-2 with 4 the most frequent) and then draws ``5 - pc``
compatible violations for the scene.
"""

from __future__ import annotations

import json
import math
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from .machine import usable_cores
from .progress import tqdm
from .video import write_clip

SIZE = 112  # frame side in pixels: a multiple of 28, so the model sees it unresized
FRAMES = 16
FPS = 8
# Fewer clips than this per extra process render faster in one (a process starts in ~0.5 s;
# a clip takes ~17 ms to render and encode).
CLIPS_PER_WORKER = 64
RENDER_CHUNK = 32  # clips handed to a rendering process at a time
FLOOR = 96  # floor surface (pixel row); the floor band below it is drawn over the objects
WALL = 100  # wall surface (pixel column) in scenes that have a wall
GRAVITY = 420.0  # px / s^2

CLASSES = {
    "appear": "conservation",
    "resize": "conservation",
    "hover": "gravity",
    "fall_up": "gravity",
    "pass_through": "collision",
    "no_transfer": "collision",
    "reverse": "temporal",
    "teleport": "temporal",
    "sink": "spatial",
    "wall": "spatial",
}
EVIDENCE = {
    "appear": "A second object pops into existence and stays.",
    "resize": "The object swells to about twice its size.",
    "hover": "The object stops in mid-air and stays there.",
    "fall_up": "The object rises to the ceiling and sticks there.",
    "pass_through": "The moving ball slides through the resting one.",
    "no_transfer": "The moving ball stops dead and the other never moves.",
    "reverse": "The object turns back with nothing to push it.",
    "teleport": "The object jumps back and forth between two places.",
    "sink": "The object sinks into the floor.",
    "wall": "The object moves into the solid wall.",
}
RULES = {
    "conservation": "Objects keep existing and keep their size (conservation of mass).",
    "gravity": "Unsupported objects fall downwards with constant acceleration (gravity).",
    "collision": "Solid objects cannot overlap and transfer momentum on impact (collision).",
    "temporal": "Motion changes only after a cause and is continuous in time (causality).",
    "spatial": "Objects stay outside solid floors and walls (spatial constraints).",
}
# At most one violation of each group: they rewrite the same part of the motion.
CONFLICTS = [{"hover", "fall_up"}, {"pass_through", "no_transfer"}]
SCENES = {
    "drop": ["appear", "resize", "hover", "fall_up", "teleport", "sink"],
    "throw": ["appear", "resize", "hover", "fall_up", "reverse", "teleport", "wall"],
    "slide": ["appear", "resize", "reverse", "teleport", "sink", "wall"],
    "collide": ["appear", "resize", "pass_through", "no_transfer", "teleport", "sink"],
    "stack": ["appear", "resize", "hover", "fall_up", "teleport", "sink"],
}
CATEGORY = {
    "drop": "free fall",
    "throw": "projectile motion",
    "slide": "friction",
    "collide": "collision",
    "stack": "support and stacking",
}
LABEL_MIX = {
    "train": {1: 0.08, 2: 0.14, 3: 0.20, 4: 0.38, 5: 0.20},
    "test": {1: 0.16, 2: 0.18, 3: 0.20, 4: 0.26, 5: 0.20},
    "pretrain": {1: 0.20, 2: 0.20, 3: 0.20, 4: 0.20, 5: 0.20},
}
# Each split draws its clips from its own random stream, so no two splits share a clip: the
# stand-in base model's pretraining clips (`pretrain`) are disjoint from the benchmark's.
STREAMS = {"train": 0, "test": 1, "pretrain": 2}
COLORS = {
    "red": (220, 40, 40),
    "blue": (40, 80, 220),
    "green": (30, 160, 60),
    "orange": (240, 140, 20),
    "purple": (140, 50, 190),
}


def pc_for(violations: list[str]) -> int:
    """The ground-truth rule: 5 minus the number of violations, never below 1."""
    return max(1, 5 - len(violations))


@dataclass
class Body:
    """One object's trajectory: centre, size (radius or half side) and visibility per frame."""

    shape: str
    color: str
    x: np.ndarray
    y: np.ndarray
    size: np.ndarray
    visible: np.ndarray = field(default_factory=lambda: np.ones(FRAMES, bool))


@dataclass
class Scene:
    kind: str
    bodies: list[Body]
    wall: bool = False
    static: list[Body] = field(default_factory=list)  # drawn, never violated


def _times() -> np.ndarray:
    return np.arange(FRAMES) / FPS


def _fall(y0: float, vy0: float, radius: float, bounce: float = 0.55) -> np.ndarray:
    """Height over time of a body thrown vertically, bouncing on the floor with losses."""
    dt, y, vy, out = 1 / FPS, y0, vy0, []
    for _ in range(FRAMES):
        out.append(y)
        for _ in range(8):  # sub-steps keep the bounce on the floor line
            vy += GRAVITY * dt / 8
            y += vy * dt / 8
            if y > FLOOR - radius:
                y, vy = FLOOR - radius, -vy * bounce
    return np.array(out)


def _ball(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, radius: float) -> Body:
    color = str(rng.choice(list(COLORS)))
    return Body("ball", color, x.astype(float), y.astype(float), np.full(FRAMES, radius))


def build_scene(kind: str, rng: np.random.Generator) -> Scene:
    """Physically plausible motion for one scene kind, randomised by `rng`."""
    t, r = _times(), float(rng.uniform(13, 16))
    if kind == "drop":
        x = np.full(FRAMES, rng.uniform(30, 80))
        return Scene(kind, [_ball(rng, x, _fall(rng.uniform(15, 35), 0.0, r), r)])
    if kind == "throw":
        x = np.minimum(r + rng.uniform(2, 8) + rng.uniform(40, 55) * t, WALL - r)
        return Scene(
            kind, [_ball(rng, x, _fall(FLOOR - r - 5, -rng.uniform(180, 230), r), r)], True
        )
    if kind == "slide":
        v0 = rng.uniform(70, 90)
        stop = v0 / 60.0  # friction decelerates at 60 px/s^2 until the block rests
        tt = np.minimum(t, stop)
        x = np.minimum(r + rng.uniform(2, 8) + v0 * tt - 30.0 * tt**2, WALL - r)
        block = Body(
            "box", str(rng.choice(list(COLORS))), x, np.full(FRAMES, FLOOR - r), np.full(FRAMES, r)
        )
        return Scene(kind, [block], True)
    if kind == "collide":
        r = float(rng.uniform(9, 11))  # smaller balls leave room to roll before the hit
        v, xa0 = rng.uniform(60, 80), r + rng.uniform(2, 6)
        xb = xa0 + 2 * r + rng.uniform(25, 32)
        hit = (xb - 2 * r - xa0) / v  # equal masses: the mover stops, the other takes its speed
        friction = v**2 / (2 * (SIZE - r - 4 - xb))  # and rolls to rest inside the frame
        after = np.clip(t - hit, 0, v / friction)
        xa = np.where(t < hit, xa0 + v * t, xb - 2 * r)
        xb_t = xb + v * after - 0.5 * friction * after**2
        y = np.full(FRAMES, FLOOR - r)
        a, b = _ball(rng, xa, y, r), _ball(rng, xb_t, y, r)
        if b.color == a.color:
            b.color = next(c for c in COLORS if c != a.color)
        return Scene(kind, [a, b])
    if kind == "stack":
        side = 9.0
        boxes = [
            Body(
                "box",
                "orange",
                np.full(FRAMES, 30.0),
                np.full(FRAMES, FLOOR - side - 2 * side * i),
                np.full(FRAMES, side),
            )
            for i in range(2)
        ]
        x = np.full(FRAMES, rng.uniform(62, 82))
        return Scene(kind, [_ball(rng, x, _fall(rng.uniform(15, 30), 0.0, r), r)], static=boxes)
    raise ValueError(f"unknown scene kind {kind!r}; known: {sorted(SCENES)}")


def apply_violation(scene: Scene, name: str, rng: np.random.Generator) -> None:
    """Break the scene's physics in place with one named violation."""
    body = scene.bodies[int(rng.integers(len(scene.bodies)))]
    k = int(rng.integers(3, 7))  # the frame where the violation starts
    t = _times()
    if name == "appear":
        radius = float(body.size[0])
        x = float(rng.uniform(radius + 2, WALL - radius - 2))
        extra = _ball(rng, np.full(FRAMES, x), np.full(FRAMES, FLOOR - radius), radius)
        extra.visible[:k] = False
        scene.bodies.append(extra)
    elif name == "resize":
        body.size = body.size * np.clip(np.linspace(0.6, 2.2, FRAMES), 1.0, None)
    elif name == "hover":
        body.y[2:] = min(body.y[2], FLOOR - 45.0)
    elif name == "fall_up":
        body.y = np.maximum(body.y[0] - 0.5 * GRAVITY * t**2, body.size)
    elif name in {"pass_through", "no_transfer"}:
        mover, target = scene.bodies[:2]
        target.x = np.full(FRAMES, target.x[0])
        if name == "pass_through":
            speed = (mover.x[1] - mover.x[0]) * FPS
            mover.x = np.minimum(mover.x[0] + 0.6 * speed * t, target.x[0] + 0.5 * target.size[0])
    elif name == "reverse":
        turn = body.x[k]
        body.x[k:] = turn - (body.x[k:] - turn)
    elif name == "teleport":
        shift = float(rng.choice([-1, 1])) * rng.uniform(30, 40)
        away = (np.arange(FRAMES) >= k) & ((np.arange(FRAMES) // 2) % 2 == 1)
        body.x = np.where(away, np.clip(body.x + shift, body.size, SIZE - body.size), body.x)
    elif name == "sink":
        depth = np.clip((t - t[k]) * 45.0, 0, body.size)  # stuck half-way, still in view
        body.y = np.minimum(body.y, FLOOR - body.size) + depth
    elif name == "wall":
        speed = max(abs(body.x[2] - body.x[1]) * FPS, 45.0)
        body.x = np.minimum(body.x[0] + speed * t, WALL + 6.0)
    else:
        raise ValueError(f"unknown violation {name!r}; known: {sorted(CLASSES)}")


def choose_violations(kind: str, pc: int, rng: np.random.Generator) -> list[str]:
    """5 - pc violations allowed in `kind`, at most one from each conflicting group."""
    target = 5 - pc
    for _ in range(100):
        picked: list[str] = []
        if target == 0:
            return picked
        for name in rng.permutation(SCENES[kind]):
            if not any(name in group and group & set(picked) for group in CONFLICTS):
                picked.append(str(name))
            if len(picked) == target:
                return sorted(picked)
    raise RuntimeError(f"no combination of violations gives pc={pc} in scene {kind!r}")


def background() -> np.ndarray:
    """The sky, a vertical gradient, as one (SIZE, SIZE, 3) uint8 frame."""
    sky = np.linspace(235, 190, SIZE)[:, None, None] * np.array([0.85, 0.92, 1.0])
    return np.broadcast_to(sky, (SIZE, SIZE, 3)).astype(np.uint8)


def body_mask(body: Body, i: int) -> tuple[tuple[slice, slice], np.ndarray]:
    """The pixels `body` covers in frame `i`, as a window of the frame and a mask inside it:
    only the window around the body is tested, which renders a clip in half the time."""
    x, y, s = body.x[i], body.y[i], body.size[i]
    rows = slice(max(0, math.floor(y - s)), max(0, min(SIZE, math.floor(y + s) + 1)))
    cols = slice(max(0, math.floor(x - s)), max(0, min(SIZE, math.floor(x + s) + 1)))
    yy, xx = np.ogrid[rows, cols]
    dx, dy = xx - x, yy - y
    inside = dx**2 + dy**2 <= s**2 if body.shape == "ball" else (abs(dx) <= s) & (abs(dy) <= s)
    return (rows, cols), inside


def render(scene: Scene) -> np.ndarray:
    """Draw the scene as (FRAMES, SIZE, SIZE, 3) uint8 frames; the floor hides what sinks."""
    frames = np.repeat(background()[None], FRAMES, axis=0)
    for i, frame in enumerate(frames):
        for body in scene.static + scene.bodies:
            if body.visible[i]:
                window, inside = body_mask(body, i)
                frame[window][inside] = COLORS[body.color]
        frame[FLOOR:] = (110, 90, 70)
        if scene.wall:
            frame[:, WALL:] = (90, 90, 100)
    return frames


def with_article(words: str) -> str:
    """`words` after "a" or "an", chosen by its first letter: "an orange ball", "a red ball"."""
    return f"{'an' if words[0].lower() in 'aeiou' else 'a'} {words}"


def caption(scene: Scene) -> tuple[str, str]:
    """The caption a generator was prompted with, and the action it shows."""
    noun = "block" if scene.kind == "slide" else "ball"
    subject = with_article(f"{scene.bodies[0].color} {noun}").capitalize()
    text = {
        "drop": (f"{subject} is dropped and falls onto the floor.", "dropping a ball"),
        "throw": (f"{subject} is thrown towards a wall.", "throwing a ball"),
        "slide": (f"{subject} slides across the floor and slows down.", "sliding a block"),
        "collide": (
            f"{subject} rolls into {with_article(scene.bodies[-1].color + ' ball')} at rest.",
            "colliding balls",
        ),
        "stack": (f"{subject} falls beside a stack of boxes.", "dropping a ball"),
    }
    return text[scene.kind]


def make_row(split: str, index: int, seed: int) -> tuple[dict, np.ndarray]:
    """One clip and its row; the same (split, index, seed) always gives the same clip."""
    if split not in STREAMS:
        raise ValueError(f"unknown synthetic split {split!r}; known: {sorted(STREAMS)}")
    rng = np.random.default_rng([seed, STREAMS[split], index])
    mix = LABEL_MIX[split]
    pc = int(rng.choice(list(mix), p=list(mix.values())))
    kind = str(rng.choice(list(SCENES)))
    scene = build_scene(kind, rng)
    violations = choose_violations(kind, pc, rng)
    for name in sorted(violations, key=lambda v: v == "appear"):  # the extra object comes last
        apply_violation(scene, name, rng)
    broken = {CLASSES[v] for v in violations}
    sa = 4 if "appear" in violations else 5  # an object the caption never mentions
    text, action = caption(scene)
    row_id = f"{split}_{index:04d}"
    row = {
        "id": row_id,
        "caption": text,
        "video_url": f"videos/{row_id}.mp4",
        "sa": sa,
        "pc": pc,
        "joint": int(sa >= 4 and pc >= 4),
        "physics_rules_followed": [RULES[c] for c in RULES if c not in broken],
        "physics_rules_unfollowed": [RULES[c] for c in RULES if c in broken],
        "physics_rules_cannot_be_determined": [],
        "human_violated_rules": [EVIDENCE[v] for v in violations],
        "action": action,
        "category": CATEGORY[kind],
        "is_hard": int(len(violations) == 1),  # one violation: the subtlest clips
        "metadata_rules": json.dumps({v: CLASSES[v] for v in violations}),
        "upsampled_caption": text,
        "model_name": "synthetic",
    }
    return row, render(scene)


def write_clip_row(out: Path, split: str, index: int, seed: int) -> dict:
    """Render one clip under `out/videos/` and return its row (a worker's unit of work)."""
    row, frames = make_row(split, index, seed)
    write_clip(out / row["video_url"], frames, FPS)
    return row


def rendered_rows(render_one: Callable[[int], dict], n: int, workers: int) -> Iterator[dict]:
    """`render_one(index)` for every index, in order, by `workers` processes; an interrupted
    caller cancels the chunks of clips not yet handed to a process instead of waiting for them."""
    if workers <= 1:
        yield from map(render_one, range(n))
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield from pool.map(render_one, range(n), chunksize=RENDER_CHUNK)
    finally:
        pool.shutdown(cancel_futures=True)


def write_split(out: Path, split: str, n: int, seed: int, workers: int | None = None) -> list[dict]:
    """Render `n` clips of one split under `out/videos/` and write `out/<split>.jsonl`, with
    `workers` processes (default: one per usable core, for splits worth starting them). Each
    clip depends only on (split, index, seed), so the files are the same for any number."""
    (out / "videos").mkdir(parents=True, exist_ok=True)
    if workers is None:
        workers = min(usable_cores(), max(1, n // CLIPS_PER_WORKER))
    render_one = partial(write_clip_row, out, split, seed=seed)
    rows = list(
        tqdm(rendered_rows(render_one, n, workers), total=n, desc=f"synth {split}", unit="clip")
    )
    lines = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    (out / f"{split}.jsonl").write_text(lines)
    return rows


def generate(
    out: str | Path, n_train: int, n_test: int, seed: int = 0, workers: int | None = None
) -> Path:
    """Write `out/train.jsonl`, `out/test.jsonl` and their clips under `out/videos/`."""
    out = Path(out)
    for split, n in (("train", n_train), ("test", n_test)):
        write_split(out, split, n, seed, workers)
    return out
