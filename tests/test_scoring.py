import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from videophy2_rows import closed_port

from recipe_utils import scoring
from recipe_utils.cli import main
from recipe_utils.metrics import evaluate, read_predictions
from recipe_utils.prompts import PROMPTS_DIR, load_prompt
from recipe_utils.ranking import (
    RANKING_COLUMNS,
    keep_check,
    rank_score,
    ranked,
    relative_clip,
    write_keep_lists,
    write_ranking,
)
from recipe_utils.scoring import Sampling, TransformersScorer, VllmScorer
from recipe_utils.video import write_clip
from recipe_utils.videophy2 import load_rows, local_id

VIDEO = {"fps": 4, "max_pixels": 112 * 112}


@pytest.fixture(scope="module")
def scorer(tiny_model, prompt):
    return TransformersScorer(tiny_model, prompt, VIDEO, Sampling(max_tokens=6, greedy=True))


def test_vote_and_expected_score():
    assert scoring.vote([4, 4, 2, None]) == 4
    assert scoring.vote([2, 4]) == 2  # ties go to the lower score
    assert scoring.vote([None, None]) is None
    assert scoring.expected_from_probs({1: 0.0, 2: 0.0, 3: 1.0, 4: 0.0, 5: 0.0}) == 3
    assert scoring.expected_from_probs({4: 0.2, 5: 0.2}) == pytest.approx(4.5)  # renormalised
    assert scoring.expected_from_probs({score: 0.0 for score in range(1, 6)}) is None


@pytest.mark.parametrize(
    "pieces, position",
    [
        (["<answer", ">\n", "4", "\n", "</", "answer", ">"], 2),
        (["<think>", "x 3", "</think>", "\n\n", "<answer", ">\n", "2", "\n"], 6),
        (["3", " <answer", ">", " ", "5"], 4),  # a digit before the tag is not the answer
        (["no", " answer"], None),
    ],
)
def test_answer_position(pieces, position):
    assert scoring.answer_position(pieces) == position


def test_scores_a_batch_with_one_record_per_video(scorer, synth):
    rows = load_rows(synth, "test").rows[:3]
    records = scorer.score(rows)
    assert [r["id"] for r in records] == [r["id"] for r in rows]
    for record, row in zip(records, rows):
        assert record["pc"] == row["pc"] and len(record["raw"]) == 1
        assert record["pred"] in {None, 1, 2, 3, 4, 5}
        assert record["expected"] is None or 1 <= record["expected"] <= 5


def test_batched_and_single_calls_give_the_same_greedy_answers(scorer, synth):
    rows = load_rows(synth, "test").rows[:3]
    batched = [r["raw"] for r in scorer.score(rows)]
    single = [scorer.score([row])[0]["raw"] for row in rows]
    assert batched == single  # left padding does not change what the model sees


def test_samples_per_video(tiny_model, prompt, synth):
    sampler = TransformersScorer(tiny_model, prompt, VIDEO, Sampling(max_tokens=4, n=3))
    record = sampler.score(load_rows(synth, "test").rows[:1])[0]
    assert len(record["raw"]) == 3 and len(record["preds"]) == 3


def test_broken_video_is_a_failed_row_and_the_batch_goes_on(scorer, synth, tmp_path):
    rows = load_rows(synth, "test").rows[:2]
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    rows[0] = dict(rows[0], video=str(broken))
    records = scorer.score(rows)
    assert "broken.mp4" in records[0]["error"] and records[0]["pred"] is None
    assert "error" not in records[1]


def test_score_rows_resumes_and_repairs_a_torn_line(scorer, synth, tmp_path):
    rows = load_rows(synth, "test").rows[:4]
    out = scoring.score_rows(scorer, rows[:2], tmp_path, batch_size=2)
    with out.open("a") as f:
        f.write('{"id": "torn')  # a kill in the middle of a write
    scoring.score_rows(scorer, rows, tmp_path, batch_size=2)
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == [r["id"] for r in rows]


def test_each_batch_is_on_disk_before_the_next_batch_starts(synth, tmp_path, monkeypatch):
    """A crash loses at most the batch in flight: each batch's records are flushed and fsynced
    (out of Python's buffer and the page cache) before the next batch is scored, and a rerun
    scores only the rows not on disk yet, after cutting a line torn by the crash."""
    out = tmp_path / "predictions.jsonl"
    synced = {}  # inode -> file size when it was last fsynced
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced[os.fstat(fd).st_ino] = os.fstat(fd).st_size
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)

    class Recorder:
        """Checks, at each batch, that what earlier batches wrote was synced whole."""

        def __init__(self) -> None:
            self.lines_seen: list[int] = []

        def score(self, rows: list[dict]) -> list[dict]:
            lines = 0
            if out.exists():
                assert synced.get(out.stat().st_ino) == out.stat().st_size
                lines = len(out.read_text().splitlines())
            self.lines_seen.append(lines)
            return [{"id": row["id"], "pc": row["pc"], "pred": None} for row in rows]

    rows = load_rows(synth, "test").rows[:8]
    scorer = Recorder()
    scoring.score_rows(scorer, rows[:6], tmp_path, batch_size=2)
    assert scorer.lines_seen == [0, 2, 4]
    assert synced[out.stat().st_ino] == out.stat().st_size
    with out.open("a") as f:
        f.write('{"id": "torn')  # a kill in the middle of a write
    scoring.score_rows(scorer, rows, tmp_path, batch_size=2)  # only the rest is scored
    assert scorer.lines_seen == [0, 2, 4, 6]
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [
        row["id"] for row in rows
    ]


def test_predictions_are_plain_json_never_nan(tmp_path):
    with pytest.raises(ValueError, match="Out of range float"):
        scoring.append_records(tmp_path / "predictions.jsonl", [{"id": "a", "expected": np.nan}])


def test_read_only_output_is_refused_before_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(PermissionError, match="file/out"):
        scoring.ensure_writable(blocker / "out")


class ForcedScorer(TransformersScorer):
    """Generation writes `ANSWER` whatever the model prefers; `output_logits` still hands back
    the model's own logits at each step, which is what the expected score is read from."""

    ANSWER = "<answer>\n3\n</answer>"

    def generate_kwargs(self) -> dict:
        from transformers import LogitsProcessorList

        tokenizer = self.processor.tokenizer
        tokens = tokenizer(self.ANSWER).input_ids + [self.stop_ids[0]]

        def force(input_ids, scores):
            start = force.start = getattr(force, "start", input_ids.shape[1])
            forced = torch.full_like(scores, -torch.inf)
            forced[:, tokens[min(input_ids.shape[1] - start, len(tokens) - 1)]] = 0.0
            return forced

        return dict(super().generate_kwargs(), logits_processor=LogitsProcessorList([force]))


def test_expected_score_comes_from_the_models_logits_at_the_answer_digit(tiny_model, prompt, synth):
    scorer = ForcedScorer(tiny_model, prompt, VIDEO, Sampling(max_tokens=12, greedy=True))
    row = load_rows(synth, "test").rows[0]
    [record] = scorer.score([row])
    assert record["raw"] == [ForcedScorer.ANSWER] and record["pred"] == 3
    # The same probabilities from one forward pass over the prompt and the written answer.
    _, messages, clip = scoring.load_clips([row], prompt, VIDEO)[0][0]
    inputs = scoring.chat_inputs(scorer.processor, [messages], [clip])
    tokenizer = scorer.processor.tokenizer
    answer = tokenizer(ForcedScorer.ANSWER).input_ids
    digit = answer.index(tokenizer.convert_tokens_to_ids("3"))
    ids = torch.cat([inputs["input_ids"], torch.tensor([answer])], dim=1)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        logits = scorer.model(**{**inputs, "input_ids": ids, "attention_mask": mask}).logits
    at_digit = logits[0, inputs["input_ids"].shape[1] + digit - 1]
    probs = torch.softmax(at_digit, dim=-1)[scorer.digit_ids]
    assert record["expected"] == pytest.approx(
        float((torch.arange(1, 6) * probs).sum() / probs.sum()), abs=1e-4
    )


def test_vllm_request_holds_the_chat_prompt_and_frames(tiny_model, prompt, synth):
    vllm = VllmScorer(
        tiny_model, prompt, {"fps": 4, "total_pixels": 8192 * 28 * 28}, Sampling(), llm=object()
    )
    row = load_rows(synth, "test").rows[0]
    messages, clip = scoring.load_clips([row], prompt, vllm.video_settings)[0][0][1:]
    request = vllm.request(messages, clip)
    assert request["prompt"].startswith("<|im_start|>system\n" + prompt.system)
    assert "<|vision_start|><|video_pad|><|vision_end|>" + prompt.user in request["prompt"]
    assert request["prompt"].endswith("<|im_start|>assistant\n")
    video = request["multi_modal_data"]["video"]
    assert video.shape == (8, 112, 112, 3) and video.dtype == np.uint8
    assert request["mm_processor_kwargs"]["fps"] == pytest.approx(4.0)


def test_vllm_expected_score_from_logprobs():
    class Logprob:
        def __init__(self, token, p):
            self.decoded_token, self.logprob = token, float(np.log(p))

    class Completion:
        token_ids = [10, 11, 3]
        logprobs = [
            {10: Logprob("<answer", 0.9)},
            {11: Logprob(">\n", 0.9)},
            {3: Logprob("3", 0.5), 4: Logprob("4", 0.5), 99: Logprob("x", 0.1)},
        ]

    assert VllmScorer.expected_score(Completion()) == pytest.approx(3.5)


def test_vllm_missing_gives_an_install_hint(tiny_model, prompt, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match=r"\.\[gpu\]"):
        VllmScorer(tiny_model, prompt, VIDEO).engine()


@pytest.mark.slow
@pytest.mark.parametrize(
    "spread",
    [[], ["--replicas", "2", "--decode-workers", "1"]],
    ids=["one process", "two replicas and a decode worker"],
)
def test_killed_scoring_run_resumes_without_loss_or_duplicates(tiny_model, synth, tmp_path, spread):
    out = tmp_path / "scores"
    command = [
        sys.executable,
        "-m",
        "recipe_utils",
        "score",
        "--model",
        str(tiny_model),
        "--source",
        str(synth),
        "--split",
        "test",
        "--out",
        str(out),
        "--limit",
        "12",
        "--batch-size",
        "1",
        "--fps",
        "4",
        "--max-tokens",
        "48",
        "--greedy",
        *spread,
    ]
    env = dict(os.environ, TQDM_DISABLE="1")
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    predictions = out / "predictions.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and (
        not predictions.exists() or predictions.read_text().count("\n") < 2
    ):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    lines_at_kill = predictions.read_text().count("\n")
    assert 2 <= lines_at_kill < 12
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=600)
    ids = [json.loads(line)["id"] for line in predictions.read_text().splitlines()]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert (out / "report.html").exists()


def test_html_report_shows_frames_answers_and_truth(scorer, synth, tmp_path):
    from recipe_utils.report import write_report

    records = scorer.score(load_rows(synth, "test").rows[:2])
    records.append(scoring.failed_record({"id": "gone", "pc": 3}, "gone.mp4: no such video file"))
    page = write_report(records, tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 8  # 4 frames for each readable video
    assert "gone.mp4: no such video file" in page
    for record in records:
        assert f"<td>{record['pc']}</td>" in page


# ------------------------------------------------------------------ your own clips, no labels

CLI_VIDEO = ["--fps", "4", "--total-pixels", str(4 * 112 * 112), "--max-tokens", "6", "--greedy"]


def clip_folder(root: Path, names: list[str]) -> Path:
    frames = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), np.uint8)
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_clip(root / name, frames, 4)
    return root


def test_score_a_folder_without_labels_ranks_and_filters(tiny_model, tmp_path):
    """Generators reuse file names: both clips are scored, each once, under its own id."""
    clips = clip_folder(tmp_path / "clips", ["cogvideo/0001.mp4", "hunyuan/0001.mp4"])
    out = tmp_path / "scores"
    args = ["score", "--model", str(tiny_model), "--source", str(clips), "--out", str(out)]
    assert main([*args, *CLI_VIDEO, "--keep-above", "2.5"]) == 0
    records = read_predictions(out / "predictions.jsonl")
    assert sorted(Path(r["video"]).relative_to(clips).as_posix() for r in records) == [
        "cogvideo/0001.mp4",
        "hunyuan/0001.mp4",
    ]
    assert all(r["pc"] is None and "error" not in r for r in records)
    with (out / "ranking.csv").open(newline="") as handle:
        ranking = list(csv.DictReader(handle))
    assert list(ranking[0]) == list(RANKING_COLUMNS)
    assert [row["id"] for row in ranking] == [r["id"] for r in ranked(records)]
    assert {row["clip"] for row in ranking} == {r["video"] for r in records}
    kept = (out / "kept.txt").read_text().splitlines()
    dropped = (out / "dropped.txt").read_text().splitlines()
    assert sorted(kept + dropped) == sorted(r["video"] for r in records)
    for record in records:
        assert (record["video"] in kept) == ((rank_score(record) or 0) > 2.5)
    metrics = evaluate(out / "predictions.jsonl", out / "metrics.json")
    assert (metrics["n_rows"], metrics["n_unlabeled"], metrics["n"]) == (2, 2, 0)
    assert "evaluate --labels" in metrics["notes"]["labels"]
    assert "No labels (pc)" in (out / "report.html").read_text()


def test_another_folder_or_model_scored_into_the_same_out_is_refused(tiny_model, tmp_path, capsys):
    """Ids come from paths inside the source, so X/a.mp4 and Y/a.mp4 share one: resuming Y in
    X's folder used to report X's answer for Y's clip and score nothing."""
    first = clip_folder(tmp_path / "X", ["a.mp4"])
    second = clip_folder(tmp_path / "Y", ["a.mp4", "b.mp4"])
    out = tmp_path / "scores"
    args = ["score", "--model", str(tiny_model), "--out", str(out), *CLI_VIDEO]
    assert main([*args, "--source", str(first)]) == 0
    assert main([*args, "--source", str(second)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"holds answers to another source (source was {first})" in err
    assert main([*args, "--source", str(first), "--max-tokens", "7"]) == 2
    assert "holds answers to another sampling" in capsys.readouterr().err
    assert len(read_predictions(out / "predictions.jsonl")) == 1


def test_an_output_folder_refuses_other_inputs_only_once_it_holds_answers(tmp_path):
    out, prompt = tmp_path / "out", PROMPTS_DIR / "video_reward.yaml"
    out.mkdir()
    model, clips, other = tmp_path / "model", tmp_path / "clips", tmp_path / "other"
    bind = dict(split=None, prompt=load_prompt(prompt), video_settings=VIDEO, sampling=Sampling())
    answers = out / "predictions.jsonl"
    answers.write_text(json.dumps({"id": "a", "error": "cannot reach the host"}) + "\n")
    scoring.bind_output(out, model, clips, **bind)  # a folder of failures only starts over:
    scoring.bind_output(out, model, other, **bind)  # its failures are dropped, to be retried
    assert answers.read_text() == ""
    answers.write_text(json.dumps({"id": "a", "pred": 3}) + "\n")
    scoring.bind_output(out, model, other, **bind)  # the same (deleted) model and source resume
    lines = answers.read_text() + json.dumps({"id": "b", "error": "not a readable video"}) + "\n"
    answers.write_text(lines)
    with pytest.raises(ValueError, match=f"another source \\(source was {other}\\)"):
        scoring.bind_output(out, model, clips, **bind)
    assert answers.read_text() == lines  # refused, the folder is as it was
    recorded = json.loads((out / "scoring.json").read_text())
    del recorded["sampling"]["top_k"]  # a record from before a field was added to Sampling
    (out / "scoring.json").write_text(json.dumps(recorded))
    scoring.bind_output(out, model, other, **bind)
    with pytest.raises(ValueError, match="another video, sampling"):
        scoring.bind_output(out, model, other, **bind | {"video_settings": {"fps": 2},
                                                         "sampling": Sampling(seed=2)})  # fmt: skip


def test_answers_to_the_same_question_are_adopted_and_to_another_are_not(tmp_path):
    """A sweep's step 0 often repeats a pass the run made: its folder takes those answers, and
    only answers to the same model, rows, prompt, frames and sampling."""
    model, clips = tmp_path / "model", tmp_path / "clips"
    prompt = PROMPTS_DIR / "video_reward.yaml"
    earlier = tmp_path / "zero_shot"
    earlier.mkdir()
    scoring.bind_output(earlier, model, clips, None, load_prompt(prompt), VIDEO, Sampling())
    lines = "".join(json.dumps({"id": i, "pred": 3}) + "\n" for i in ("a", "b"))
    (earlier / "predictions.jsonl").write_text(lines)
    same = dict(source=clips, split=None, prompt_path=prompt, video_settings=VIDEO)

    def adopt(out, **changed):
        return scoring.adopt_answers(earlier, tmp_path / out, **{"model": model, **same, **changed})

    thinking = PROMPTS_DIR / "video_reward_with_thinking.yaml"
    assert not adopt("other_model", model=tmp_path / "checkpoint")
    assert not adopt("other_prompt", prompt_path=thinking)
    assert not adopt("other_frames", video_settings={**VIDEO, "fps": 2})
    assert not adopt("other_sampling", sampling=Sampling(seed=2))
    assert not any(
        (tmp_path / f"other_{k}").exists() for k in ("model", "prompt", "frames", "sampling")
    )
    assert adopt("sweep/step_0")
    adopted = tmp_path / "sweep" / "step_0"
    assert (adopted / "predictions.jsonl").read_text() == lines
    scoring.bind_output(adopted, model, clips, None, load_prompt(prompt), VIDEO, Sampling())
    (adopted / "predictions.jsonl").write_text(json.dumps({"id": "a", "pred": 5}) + "\n")
    assert not adopt("sweep/step_0")  # a folder with answers of its own keeps them
    assert read_predictions(adopted / "predictions.jsonl")[0]["pred"] == 5


def test_a_moved_run_resumes_and_lists_clips_where_they_are_now(tiny_model, tmp_path):
    """The folder of clips and its scores moved together: nothing is scored again, clips removed
    since leave the outputs (their line stays), and the lists name the clips' new paths."""
    clip_folder(tmp_path / "run" / "clips", ["a.mp4", "b.mp4", "c.mp4"])
    args = [*CLI_VIDEO, "--keep-above", "1"]
    run = tmp_path / "run"

    def score(root: Path) -> int:
        return main(["score", "--model", str(tiny_model), "--source", str(root / "clips"),
                     "--out", str(root / "scores"), *args])  # fmt: skip

    assert score(run) == 0
    moved = tmp_path / "moved"
    run.rename(moved)
    (moved / "clips" / "c.mp4").unlink()
    lines = (moved / "scores" / "predictions.jsonl").read_text()
    assert score(moved) == 0
    assert (moved / "scores" / "predictions.jsonl").read_text() == lines  # nothing rescored
    listed = (moved / "scores" / "kept.txt").read_text().splitlines()
    listed += (moved / "scores" / "dropped.txt").read_text().splitlines()
    assert sorted(listed) == [str(moved / "clips" / name) for name in ("a.mp4", "b.mp4")]
    with (moved / "scores" / "ranking.csv").open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 2


def test_user_mistakes_in_score_end_in_one_line(tiny_model, tmp_path, capsys, monkeypatch):
    clips = clip_folder(tmp_path / "clips", ["a.mp4"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "not_a_model").mkdir()
    given = {"--model": str(tiny_model), "--source": str(clips), "--out": str(tmp_path / "o")}
    cases = {
        "no video file in this folder or below": {"--source": str(tmp_path / "empty")},
        "not a model folder (no config.json)": {"--model": str(tmp_path / "not_a_model")},
        "no such model folder": {"--model": str(tmp_path / "missing")},
    }
    for message, change in cases.items():
        args = [x for pair in (given | change).items() for x in pair]
        assert main(["score", *args, *CLI_VIDEO]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    args = [x for pair in given.items() for x in pair]
    with pytest.raises(SystemExit) as stopped:  # argparse's own one-line error
        main(["score", *args, *CLI_VIDEO, "--keep-above", "6"])
    assert stopped.value.code == 2
    assert "must be at least 1 and below 5 (scores run 1..5), got 6" in capsys.readouterr().err
    assert main(["score", *args, *CLI_VIDEO]) == 0  # the mistakes left nothing in the way
    monkeypatch.chdir(tmp_path)  # the default prompt is the repository's, from any folder
    assert main(["score", *args[:4], "--out", "s", *CLI_VIDEO]) == 0


def test_an_interrupted_command_says_how_to_go_on(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("recipe_utils.cli.cmd_evaluate", interrupted)
    assert main(["evaluate", "--predictions", "p", "--out", "m"]) == 130
    assert "run the same command to go on" in capsys.readouterr().err


def test_a_linked_clip_is_listed_under_its_own_name(tiny_model, tmp_path):
    clip = clip_folder(tmp_path / "elsewhere", ["real.mp4"]) / "real.mp4"
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "mine.mp4").symlink_to(clip)
    out = tmp_path / "scores"
    args = ["--source", str(tmp_path / "clips"), "--out", str(out), "--keep-above", "1"]
    assert main(["score", "--model", str(tiny_model), *args, *CLI_VIDEO]) == 0
    [record] = read_predictions(out / "predictions.jsonl")
    assert record["video"] == str(tmp_path / "clips" / "mine.mp4")


def test_rows_whose_download_failed_keep_their_line(tiny_model, tmp_path):
    """`score` dropped them: predictions.jsonl was shorter and evaluate's counts smaller."""
    clip_folder(tmp_path, ["videos/a.mp4"])
    lost = f"http://127.0.0.1:{closed_port()}/b.mp4"
    rows = [{"video_url": "videos/a.mp4", "pc": 3}, {"video_url": lost, "pc": 4}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "scores"
    predictions = scoring.score_split(
        tiny_model,
        tmp_path / "rows.jsonl",
        None,
        out,
        PROMPTS_DIR / "video_reward.yaml",
        VIDEO,
        Sampling(max_tokens=6, greedy=True),
        report=False,
    )
    records = read_predictions(predictions)
    assert [r["video_url"] for r in records] == [lost, "videos/a.mp4"]
    assert records[0]["error"].startswith("cannot reach") and "error" not in records[1]
    metrics = evaluate(predictions, out / "metrics.json")
    assert (metrics["n_rows"], metrics["n_failed"], metrics["n"]) == (2, 1, 1)
    assert [item["video_url"] for item in read_predictions(out / "failed.jsonl")] == [lost]


def test_evaluate_joins_labels_given_later(tmp_path, capsys):
    """Scores found later need only `pc` and the clip's id, or the video_url it was scored from."""
    clip_id = local_id("gen/b.mp4")
    records = [{"id": "a", "pc": None, "pred": 4}, {"id": clip_id, "pc": None, "pred": 2}]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    args = [
        "evaluate",
        "--predictions",
        str(tmp_path / "p.jsonl"),
        "--out",
        str(tmp_path / "m.json"),
    ]
    labels = tmp_path / "labels.csv"
    labels.write_text(f"id,pc\na,4\n{clip_id},3\nnever_scored,5\n")
    with pytest.warns(UserWarning, match="1 labelled row"):
        assert main([*args, "--labels", str(labels)]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert (metrics["n"], metrics["accuracy"]) == (2, 0.5)
    assert metrics["notes"]["labels_unmatched"] == (
        "1 labelled row(s) match no prediction, e.g. ['never_scored']"
    )
    labels.write_text("id,video_url,pc\na,,4\n,gen/b.mp4,2\n")  # the second by its video_url
    assert main([*args, "--labels", str(labels)]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["accuracy"] == 1.0
    labels.write_text("id,pc\nother_a,4\nother_b,3\n")
    assert main([*args, "--labels", str(labels)]) == 2
    assert "no prediction's id is among the 2 labelled rows" in capsys.readouterr().err
    labels.write_text("id,sa\na,3\n")
    assert main([*args, "--labels", str(labels)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "labels need a `pc` column and an `id` or `video_url` column; found: 'id', 'sa'" in err


def test_ranking_puts_the_best_first_and_keeps_only_scores_above_the_bar(tmp_path):
    records = [
        {"id": "low", "video": "/v/low.mp4", "pred": 2, "expected": 2.2, "raw": ["<answer>2"]},
        {"id": "failed", "video": "/v/x.mp4", "pred": None, "error": "not a readable video"},
        {"id": "top", "video_url": "https://cdn.example/a,b;c'd+e.mp4", "pred": 5, "raw": ["5"]},
        {"id": "unparsed", "video": "/v/u.mp4", "pred": None, "expected": None, "raw": ["hm"]},
        {"id": "edge", "video": "/v/edge.mp4", "pred": 3, "expected": 3.0, "raw": ["3"]},
        {"id": "mid", "video": "/v/mid.mp4", "pred": 3, "expected": 3.6, "raw": ["3"]},
    ]
    with write_ranking(records, tmp_path / "ranking.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["id"] for row in rows] == ["top", "mid", "edge", "low", "failed", "unparsed"]
    assert rows[0]["clip"] == "https://cdn.example/a,b;c'd+e.mp4"  # the URL survives its commas
    assert (rows[1]["score"], rows[1]["expected_score"], rows[1]["answer"]) == ("3", "3.6000", "3")
    assert rows[4]["answer"] == "error: not a readable video" and rows[4]["score"] == ""
    kept, dropped = write_keep_lists(records, tmp_path, above=3.0)
    assert kept.read_text().splitlines() == ["https://cdn.example/a,b;c'd+e.mp4", "/v/mid.mp4"]
    assert dropped.read_text().splitlines() == ["/v/edge.mp4", "/v/low.mp4", "/v/x.mp4", "/v/u.mp4"]


@pytest.mark.parametrize(
    "clip, shown",
    [
        ("/run/clips/generator_a/videos/test_0003.mp4", "generator_a/videos/test_0003.mp4"),
        ("/run/clips/generator_b/videos/test_0003.mp4", "generator_b/videos/test_0003.mp4"),
        ("/elsewhere/test_0003.mp4", "/elsewhere/test_0003.mp4"),
        ("https://cdn.example/test_0003.mp4", "https://cdn.example/test_0003.mp4"),
    ],
)
def test_a_ranked_clip_is_shown_relative_to_the_scored_folder(clip, shown):
    assert relative_clip(clip, "/run/clips") == shown


def test_a_keep_list_is_checked_against_labels_found_later():
    labels = {"a.mp4": 5, "b.mp4": 2, "c.mp4": 4, "d.mp4": 1}
    check = keep_check(["a.mp4", "b.mp4", "new.mp4"], ["c.mp4", "d.mp4"], labels)
    assert check == {"good": 4, "kept": 2, "kept_good": 1, "labelled": 4, "labelled_good": 2}


def test_a_source_with_nothing_to_score_never_loads_the_model(tmp_path):
    """A rerun does not write the failed rows twice; the missing model is never touched."""
    port = closed_port()
    urls = [f"http://127.0.0.1:{port}/{name}.mp4" for name in "ab"]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"video_url": u}) + "\n" for u in urls))
    args = (tmp_path / "no_model", tmp_path / "rows.jsonl", None, tmp_path / "out")
    for _ in range(2):
        with pytest.raises(ValueError, match="no video could be scored: 2 x cannot reach"):
            scoring.score_split(*args, PROMPTS_DIR / "video_reward.yaml", VIDEO)
    assert len(read_predictions(tmp_path / "out/predictions.jsonl")) == 2
    assert (tmp_path / "out/predictions.jsonl").read_text().count("\n") == 2
    assert (tmp_path / "out/failed.jsonl").read_text().count("\n") == 2


def test_a_rerun_retries_the_rows_that_failed(tiny_model, server, tmp_path):
    clip = clip_folder(tmp_path, ["clip.mp4"]) / "clip.mp4"
    url = server.add("/cogvideo/clip.mp4", clip.read_bytes(), "404", "ok")
    (tmp_path / "rows.jsonl").write_text(json.dumps({"video_url": url}) + "\n")
    args = (tiny_model, tmp_path / "rows.jsonl", None, tmp_path / "out")
    settings = (PROMPTS_DIR / "video_reward.yaml", VIDEO, Sampling(max_tokens=6, greedy=True))
    with pytest.raises(ValueError, match="HTTP 404"):
        scoring.score_split(*args, *settings, report=False)
    predictions = scoring.score_split(*args, *settings, report=False)
    [record] = read_predictions(predictions)
    assert "error" not in record and record["video_url"] == url
    assert predictions.read_text().count("\n") == 1
    assert (tmp_path / "out/failed.jsonl").read_text() == ""
