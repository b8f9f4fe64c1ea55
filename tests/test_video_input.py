"""What the model receives of a clip: frames kept, frame size and visual tokens, per setting."""

from recipe_utils.scoring import video_inputs


def test_tokens_follow_frames_and_frame_size(tiny_model, synth):
    clip = next((synth / "videos").glob("*.mp4"))
    shown = video_inputs(
        tiny_model,
        clip,
        {
            "scoring": {"fps": 8, "total_pixels": 8 * 56 * 56},
            "training": {"fps": 1, "max_pixels": 56 * 56},
        },
    )
    scoring, training = shown["scoring"], shown["training"]
    assert scoring["pixel budget"] == "25,088 per clip"
    assert training["pixel budget"] == "3,136 per frame"
    assert scoring["frames kept"] > training["frames kept"] >= 4
    for row in (scoring, training):
        height, width = (int(side) for side in row["frame size (h x w)"].split(" x "))
        assert height % 28 == 0 and width % 28 == 0
        assert row["frame pairs"] == row["frames kept"] // 2
        assert row["tokens per pair"] == (height // 28) * (width // 28)
        assert row["visual tokens"] == row["frame pairs"] * row["tokens per pair"]
