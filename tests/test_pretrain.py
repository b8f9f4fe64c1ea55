"""The stand-in base model: pretrained once per run, on clips no benchmark split holds."""

import hashlib
import json

import pytest

from recipe_utils import pretrain, synthetic, train
from recipe_utils.prompts import PROMPTS_DIR
from recipe_utils.scoring import Sampling, score_split

PROMPT = PROMPTS_DIR / "video_reward.yaml"
VIDEO = {"fps": 4, "max_pixels": 12544}
# enough for the tiny model to learn the answer template on a handful of clips
SMALL = pretrain.PretrainSettings(clips=8, steps=40, batch_size=4, lr=1e-3)


def clip_hashes(split: str, n: int) -> set[str]:
    return {hashlib.sha256(synthetic.make_row(split, i, 0)[1]).hexdigest() for i in range(n)}


def test_pretraining_clips_are_disjoint_from_the_benchmark_splits():
    pretraining = clip_hashes("pretrain", 30)
    assert len(pretraining) == 30
    for split in ("train", "test"):  # the validation split is carved from train
        assert not pretraining & clip_hashes(split, 30), split
    ids = {synthetic.make_row("pretrain", i, 0)[0]["id"] for i in range(3)}
    assert all(row_id.startswith("pretrain_") for row_id in ids)


def test_an_unknown_synthetic_split_is_refused():
    with pytest.raises(ValueError, match="unknown synthetic split 'validation'"):
        synthetic.make_row("validation", 0, 0)


def test_questions_answer_from_what_the_clip_shows():
    row, _ = synthetic.make_row("pretrain", 0, 0)
    row |= {
        "category": "collision",
        "caption": "A blue ball rolls into a red ball at rest.",
        "metadata_rules": json.dumps({"appear": "conservation", "teleport": "temporal"}),
    }
    asked = pretrain.questions(row)
    assert asked["event"][1] == 4 and asked["colour"][1] == 2
    assert asked["count"][1] == 3  # two balls and the one that popped into existence
    assert asked["plausibility"][1] == 3
    row["metadata_rules"] = json.dumps({"teleport": "temporal", "sink": "spatial"})
    assert pretrain.questions(row)["plausibility"][1] == 4  # two violations it does not notice


def test_the_plausibility_judgements_it_learns_are_3_as_often_as_4(tmp_path):
    import datasets

    settings = pretrain.PretrainSettings(clips=24)
    path = pretrain.build_dataset(tmp_path, settings, VIDEO, PROMPT, seed=0)
    benchmark = pretrain.load_prompt(PROMPT).system
    judged = []
    for chat in datasets.load_from_disk(str(path))["conversations"]:
        system, _, assistant = json.loads(chat)
        if system["content"] == benchmark:
            judged.append(assistant["content"])
    threes = sum("\n3\n" in answer for answer in judged)
    assert threes == len(judged) - threes > 0  # a stand-in shown mostly one learns only that
    assert len(judged) >= settings.clips / 2  # every clip of the rarer judgement is asked


@pytest.fixture(scope="module")
def stand_in(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("stand_in")
    return out, pretrain.pretrain(tiny_model, out, SMALL, VIDEO, PROMPT, seed=0)


def test_the_stand_in_is_made_once_and_reused(stand_in, tiny_model, monkeypatch):
    out, model = stand_in

    def no_training(*args, **kwargs):
        raise AssertionError("the saved stand-in was trained again")

    monkeypatch.setattr(train, "train_sft", no_training)
    assert pretrain.pretrain(tiny_model, out, SMALL, VIDEO, PROMPT, seed=0) == model
    with pytest.raises(AssertionError, match="trained again"):  # other settings: a new one
        pretrain.pretrain(tiny_model, out / "other", SMALL, VIDEO, PROMPT, seed=1)


def test_the_stand_in_answers_in_format_under_the_benchmark_prompt(stand_in, synth, tmp_path):
    _, model = stand_in
    sampling = Sampling(max_tokens=16, greedy=True)
    video = {"fps": 4, "total_pixels": 6422528}
    predictions = score_split(
        model, synth, "test", tmp_path, PROMPT, video, sampling, limit=4, report=False
    )
    records = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(records) == 4 and all(r["pred"] in range(1, 6) for r in records)


def test_the_card_says_what_the_stand_in_has_and_has_not_seen(stand_in):
    card = "\n".join(pretrain.model_card(stand_in[1]))
    assert f"{SMALL.clips} synthetic clips" in card and "`pretrain` stream" in card
    assert "never seen: any clip of the benchmark's train or test split" in card
    assert "as its authors published it" in pretrain.model_card("nvidia/Cosmos-Reason1-7B")[0]


def test_the_card_of_a_model_without_a_record_says_it_is_not_recorded(tiny_model):
    assert "what it has seen is not recorded" in pretrain.model_card(tiny_model)[0]
