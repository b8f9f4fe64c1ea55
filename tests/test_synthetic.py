import json
import re
from collections import Counter

import numpy as np
import pytest

from recipe_utils import synthetic as S
from recipe_utils.video import probe


def scene_with(kind, violation, seed=0):
    rng = np.random.default_rng(seed)
    scene = S.build_scene(kind, rng)
    before = [(b.x.copy(), b.y.copy(), b.size.copy(), b.visible.copy()) for b in scene.bodies]
    S.apply_violation(scene, violation, rng)
    return scene, before


def steps(values):
    return np.diff(values)


def test_ground_truth_rule():
    assert S.pc_for([]) == 5
    assert S.pc_for(["resize"]) == 4
    assert S.pc_for(["vanish", "sink"]) == 3
    assert S.pc_for(["vanish", "hover", "sink"]) == 2
    assert S.pc_for(["vanish", "hover", "sink", "teleport"]) == 1
    assert S.pc_for(["vanish", "hover", "sink", "teleport", "resize"]) == 1  # never below 1


@pytest.mark.parametrize("pc", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("kind", sorted(S.SCENES))
def test_chosen_violations_give_the_target_label(kind, pc):
    violations = S.choose_violations(kind, pc, np.random.default_rng(pc))
    assert S.pc_for(violations) == pc
    assert set(violations) <= set(S.SCENES[kind])
    for group in S.CONFLICTS:
        assert len(group & set(violations)) <= 1


def test_clean_scenes_obey_gravity_and_stay_in_view():
    for kind in S.SCENES:
        for seed in range(10):
            scene = S.build_scene(kind, np.random.default_rng(seed))
            for body in scene.bodies:
                assert body.visible.all()
                assert (body.y + body.size <= S.FLOOR + 1e-6).all(), kind
                assert (body.x - body.size >= 0).all() and (body.x + body.size <= S.SIZE).all(), (
                    kind
                )
    drop = S.build_scene("drop", np.random.default_rng(2)).bodies[0]
    assert steps(drop.y)[0] > 0 and steps(drop.y)[1] > steps(drop.y)[0]  # accelerates down


def test_conservation_violations():
    scene, _ = scene_with("drop", "appear")
    extra = scene.bodies[-1]
    assert len(scene.bodies) == 2 and not extra.visible[0] and extra.visible[-1]
    assert extra.y[-1] + extra.size[-1] == pytest.approx(S.FLOOR)  # resting on the floor
    scene, _ = scene_with("drop", "resize")
    size = scene.bodies[0].size
    assert size[-1] / size[0] > 1.8


def test_gravity_violations():
    scene, _ = scene_with("drop", "hover")
    y = scene.bodies[0].y
    assert np.all(y[2:] == y[2]) and y[2] < S.FLOOR - 40  # stays put in mid-air
    scene, _ = scene_with("drop", "fall_up")
    body = scene.bodies[0]
    assert (steps(body.y) <= 0).all() and body.y[-1] == pytest.approx(
        body.size[-1]
    )  # at the ceiling


def test_collision_violations():
    scene, before = scene_with("collide", "pass_through")
    mover, target = scene.bodies
    assert abs(mover.x[-1] - target.x[-1]) < target.size[0]  # inside the other ball
    assert np.ptp(target.x) == 0
    scene, before = scene_with("collide", "no_transfer")
    assert np.ptp(scene.bodies[1].x) == 0  # struck ball never moves
    assert before[1][0][-1] > before[1][0][0]  # while in the clean scene it did


def test_temporal_violations():
    scene, before = scene_with("slide", "reverse")
    assert (steps(scene.bodies[0].x) < 0).any() and not (steps(before[0][0]) < 0).any()
    scene, before = scene_with("drop", "teleport")
    jumps = np.abs(steps(scene.bodies[0].x))
    assert (jumps >= 28).sum() >= 3  # back and forth, several times


def test_spatial_violations():
    scene, _ = scene_with("drop", "sink")
    body = scene.bodies[0]
    assert body.y[-1] > S.FLOOR - body.size[0] / 2  # most of it below the floor line
    scene, _ = scene_with("slide", "wall")
    assert scene.bodies[0].x.max() > S.WALL  # centre inside the wall


def test_violation_is_visible_in_the_frames():
    clean = S.render(S.build_scene("drop", np.random.default_rng(5)))
    scene, _ = scene_with("drop", "hover", seed=5)
    broken = S.render(scene)
    assert (clean[-1] != broken[-1]).any()


@pytest.mark.parametrize("shape", ["ball", "box"])
def test_a_body_is_drawn_on_exactly_the_pixels_it_covers(shape):
    """`render` tests only a window around each body; it must colour what a test of every
    pixel would, also for bodies partly or wholly out of the frame."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0 : S.SIZE, 0 : S.SIZE]
    for _ in range(200):
        x, y = rng.uniform(-30, S.SIZE + 30, 2)
        size = rng.uniform(0.5, 25)
        body = S.Body(shape, "red", np.array([x]), np.array([y]), np.array([size]))
        dx, dy = xx - x, yy - y
        everywhere = (
            dx**2 + dy**2 <= size**2 if shape == "ball" else (abs(dx) <= size) & (abs(dy) <= size)
        )
        window, inside = S.body_mask(body, 0)
        drawn = np.zeros((S.SIZE, S.SIZE), bool)
        drawn[window] = inside
        assert np.array_equal(drawn, everywhere), (x, y, size)


def test_benchmark_files_are_decodable_labelled_and_reproducible(tmp_path):
    a = S.generate(tmp_path / "a", n_train=12, n_test=6, seed=7)
    b = S.generate(tmp_path / "b", n_train=12, n_test=6, seed=7)
    for split in ("train", "test"):
        assert (a / f"{split}.jsonl").read_bytes() == (b / f"{split}.jsonl").read_bytes()
    rows = [json.loads(line) for line in (a / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    info = probe(a / rows[0]["video_url"])
    assert (info.frames, info.width, info.height) == (S.FRAMES, S.SIZE, S.SIZE)
    for row in rows:
        assert row["pc"] == S.pc_for(row["human_violated_rules"])
        assert row["model_name"] == "synthetic" and row["joint"] == int(
            row["sa"] >= 4 and row["pc"] >= 4
        )


def test_rendering_processes_write_the_same_files_as_one(tmp_path):
    n_train = 2 * S.RENDER_CHUNK + 6  # three chunks, so both processes render some
    one = S.generate(tmp_path / "one", n_train=n_train, n_test=6, seed=3, workers=1)
    two = S.generate(tmp_path / "two", n_train=n_train, n_test=6, seed=3, workers=2)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert len(files) == 2 + n_train + 6
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files)


def test_every_label_occurs_and_train_is_imbalanced_towards_4():
    labels = {
        split: Counter(S.make_row(split, i, 0)[0]["pc"] for i in range(n))
        for split, n in (("train", 200), ("test", 60))
    }
    for counts in labels.values():
        assert set(counts) == {1, 2, 3, 4, 5}
    assert labels["train"].most_common(1)[0][0] == 4


def test_captions_are_grammatical():
    captions = [S.make_row("train", i, 0)[0]["caption"] for i in range(100)]
    wrong_article = re.compile(r"\b[Aa] [aeiou]|\b[Aa]n [^aeiou]")
    assert [c for c in captions if wrong_article.search(c)] == []
    assert {c.split()[0] for c in captions} == {"A", "An"}  # "An orange ball", "A red ball"
