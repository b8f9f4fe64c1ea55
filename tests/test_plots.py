"""Every course figure draws from small synthetic inputs, is labelled, and survives None metrics."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from recipe_utils import plots  # noqa: E402

ROWS = [
    {
        "id": f"row_{i}",
        "pc": 1 + i % 5,
        "sa": 1 + (i * 2) % 5,
        "joint": int(i % 5 >= 3),
        "model_name": ["Cosmos", "Wan", "Sora"][i % 3],
        "category": ["sports", "animals"][i % 2],
        "is_hard": i % 2,
    }
    for i in range(30)
]


def make_metrics(pearson: float | None = 0.3, ci: list[float] | None = None) -> dict:
    """A metrics dict shaped like recipe_utils.metrics.compute_metrics output."""
    matrix = np.eye(5, dtype=int) * 3 + 1
    return {
        "n": 50,
        "accuracy": 0.3,
        "pearson": pearson,
        "spearman": pearson,
        "mae": 1.1,
        "within1": 0.7,
        "parse_failure_rate": 0.04,
        "confusion": matrix.tolist(),
        "accuracy_ci": [0.2, 0.4],
        "pearson_ci": ci,
        "prediction_histogram": {"1": 2, "2": 5, "3": 20, "4": 18, "5": 3, "none": 2},
        "slices": {
            "model_name": {
                "Cosmos": {"n": 20, "accuracy": 0.35, "pearson": pearson, "mae": 1.0},
                "Wan": {"n": 30, "accuracy": 0.25, "pearson": None, "mae": 1.2},
            }
        },
    }


NAMED = {"zero-shot": make_metrics(0.29, [0.2, 0.38]), "SFT": make_metrics(None)}
PUBLISHED = [
    {"system": "Cosmos-Reason1-7B zero-shot", "accuracy": 0.196, "pearson": 0.293, "source": "x"},
    {"system": "VideoPhy-2-AutoEval", "accuracy": None, "pearson": 0.37, "source": "y"},
]


def assert_labelled(fig: matplotlib.figure.Figure, legend: bool) -> None:
    """Each plotting axes has a title (or the figure a suptitle) and both axis labels."""
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert axes
    has_suptitle = fig._suptitle is not None and fig._suptitle.get_text()
    for ax in axes:
        twins = ax.get_shared_x_axes().get_siblings(ax)  # a right-hand axis shares its x label
        assert ax.get_title() or ax.get_title(loc="left") or has_suptitle
        assert any(twin.get_xlabel() for twin in twins)
        assert ax.get_ylabel()
    if legend:
        assert any(ax.get_legend() is not None for ax in axes) or fig.legends


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_label_histograms_counts_every_pc_value():
    fig = plots.label_histograms(ROWS)
    assert_labelled(fig, legend=False)
    pc_heights = [patch.get_height() for patch in fig.axes[0].patches]
    assert pc_heights == [6, 6, 6, 6, 6]


def test_label_histograms_names_the_row_missing_a_column():
    rows = [dict(ROWS[0]), {k: v for k, v in ROWS[1].items() if k != "sa"}]
    with pytest.raises(KeyError, match="row_1"):
        plots.label_histograms(rows)


@pytest.mark.parametrize("column", ["model_name", "category", "is_hard"])
def test_label_by_group_draws_one_bar_per_value(column):
    fig = plots.label_by_group(ROWS, column)
    assert_labelled(fig, legend=True)
    n_values = len({row[column] for row in ROWS})
    assert len(fig.axes[0].patches) == n_values
    ticks = [tick.get_text() for tick in fig.axes[0].get_xticklabels()]  # counts below the bars
    assert sum(int(t.split("(n=")[1].rstrip(")")) for t in ticks) == len(ROWS)


def test_label_counts_before_after_accepts_json_string_keys():
    fig = plots.label_counts_before_after({1: 3, 4: 20}, {"1": 8, "4": 8})
    assert_labelled(fig, legend=True)
    heights = [patch.get_height() for patch in fig.axes[0].patches]
    assert heights == [3, 0, 0, 20, 0, 8, 0, 0, 8, 0]


def test_frame_grid_has_one_row_per_clip_and_no_ticks():
    clip = np.zeros((10, 8, 8, 3), dtype=np.uint8)
    fig = plots.frame_grid([("pc=2 · ball hovers", clip), ("pc=5 · ball falls", clip[:2])])
    assert len(fig.axes) == 8
    assert [row._suptitle.get_text() for row in fig.subfigs] == [
        "pc=2 · ball hovers",
        "pc=5 · ball falls",
    ]
    assert [ax.get_xlabel() for ax in fig.axes[:4]] == ["frame 0", "frame 3", "frame 6", "frame 9"]
    assert all(not ax.get_xticks().size and not ax.get_yticks().size for ax in fig.axes)
    assert fig._suptitle.get_text()


def test_frame_grid_rejects_frames_of_the_wrong_shape():
    with pytest.raises(ValueError, match="bad clip"):
        plots.frame_grid([("bad clip", np.zeros((4, 8, 8), dtype=np.uint8))])


def test_confusion_accepts_metrics_or_matrix():
    for source in (make_metrics(), make_metrics()["confusion"]):
        fig = plots.confusion(source, "zero-shot")
        assert_labelled(fig, legend=False)
        assert len(fig.axes[0].texts) == 25


def test_confusion_without_matrix_says_undefined():
    fig = plots.confusion({"confusion": None}, "empty")
    assert [text.get_text() for text in fig.axes[0].texts] == ["undefined"]


def test_confusions_side_by_side():
    fig = plots.confusions(NAMED)
    assert_labelled(fig, legend=False)
    assert len(fig.axes) == 2


def test_prediction_histograms_shows_parse_failures_and_the_labels():
    fig = plots.prediction_histograms(NAMED, truth_counts={1: 5, 2: 5, 3: 10, 4: 20, 5: 10})
    assert_labelled(fig, legend=True)
    ax = fig.axes[0]
    assert len(ax.patches) == 3 * 6
    assert [text.get_text() for text in ax.get_legend().get_texts()][0] == "labels"
    assert ax.get_xticklabels()[-1].get_text().startswith("none")
    shares = [patch.get_height() for patch in ax.patches[6:12]]
    assert sum(shares) == pytest.approx(1.0)


def test_correlation_bars_keep_this_run_apart_from_published():
    fig = plots.correlation_bars(NAMED, PUBLISHED, data="synthetic clips")
    assert_labelled(fig, legend=False)
    ax = fig.axes[0]
    names = [label.get_text() for label in ax.get_yticklabels()]
    assert names == ["zero-shot", "SFT", "Cosmos-Reason1-7B zero-shot", "VideoPhy-2-AutoEval"]
    texts = [text.get_text() for text in ax.texts]
    assert "undefined" in texts
    assert "this run:\nsynthetic clips" in texts and "published:\nVideoPhy-2 test" in texts
    separator = [line for line in ax.lines if list(line.get_ydata()) == [1.5, 1.5]]
    assert separator  # a line between this run's two rows and the published ones
    assert len(ax.patches) == 3  # zero-shot and two published; SFT's r is undefined


def test_metric_vs_step_skips_none_and_draws_references():
    sweeps = {
        "SFT": [
            {"step": 20, "pearson": 0.2},
            {"step": 40, "pearson": None},
            {"step": 60, "pearson": 0.3},
        ],
        "GRPO": [{"step": 100, "pearson": 0.4}],
    }
    references = {"zero-shot (this run)": 0.25, "published SFT best": 0.395, "undefined": None}
    fig = plots.metric_vs_step(sweeps, "pearson", references)
    assert_labelled(fig, legend=True)
    lines = fig.axes[0].lines
    assert list(lines[0].get_xdata()) == [20, 60]
    assert len(lines) == 4
    assert lines[3].get_linestyle() == "--"


def test_metric_vs_step_rejects_unknown_metric():
    with pytest.raises(ValueError, match="pearsn"):
        plots.metric_vs_step({}, "pearsn", {})


def test_metric_by_stage_gives_each_stage_its_own_step_axis_and_ring():
    stages = {
        "SFT": [{"step": s, "pearson": 0.1 + s / 4000, "val_pearson": 0.5} for s in (0, 800, 1600)],
        "GRPO (from SFT step 1600)": [{"step": s, "pearson": 0.5} for s in (0, 20, 40, 60)],
    }
    selected = {"SFT": 800, "GRPO (from SFT step 1600)": 40}
    fig = plots.metric_by_stage(stages, "pearson", {"zero-shot (this run)": 0.3}, selected)
    sft, grpo = fig.axes
    assert sft.get_title() == "SFT" and grpo.get_xlim()[1] < 100  # not on SFT's 1600 steps
    for ax, step in ((sft, 800), (grpo, 40)):
        ring = next(line for line in ax.lines if "selected" in line.get_label())
        assert list(ring.get_xdata()) == [step]
        assert any("zero-shot (this run) (0.300)" in t.get_text() for t in ax.get_legend().texts)
    assert sft.get_ylim() == grpo.get_ylim()


def test_loss_curve_is_log_scaled_with_a_rolling_mean_over_full_windows():
    """A loss that starts at 8 and drops to 0.2 at once: each point of the mean is the mean of
    the `window` losses up to it, so it reaches the low loss `window` steps after the drop (the
    QA report saw a long, partly filled window hold the line high, then drop far later)."""
    losses = [8.0] * 10 + [0.2] * 190
    log = [{"step": step, "loss": loss, "lr": 1e-5} for step, loss in enumerate(losses, 1)]
    fig = plots.loss_curve(log)
    assert_labelled(fig, legend=True)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    raw, mean = ax.lines
    window = len(raw.get_xdata()) - len(mean.get_xdata()) + 1
    assert window == 4 and "last 4 steps" in mean.get_label()
    assert list(mean.get_xdata()) == list(raw.get_xdata())[window - 1 :]
    expected = [sum(losses[end - window : end]) / window for end in range(window, len(losses) + 1)]
    assert list(mean.get_ydata()) == pytest.approx(expected)
    at_step = dict(zip(mean.get_xdata(), mean.get_ydata(), strict=True))
    assert at_step[10 + window] == pytest.approx(0.2) and at_step[10 + window - 1] > 0.2


def test_loss_curve_without_loss_names_the_fix():
    with pytest.raises(ValueError, match="loss"):
        plots.loss_curve([{"step": 1, "reward_mean": 0.1}])


def test_reward_curves_four_panels():
    log = [
        {
            "step": step,
            "reward_mean": 0.5 + 0.01 * step,
            "reward_std": 0.1,
            "kl": 0.001 * step,
            "response_length": 200 - step,
            "accuracy_reward": 0.4,
            "format_reward": 0.9,
            "zero_spread_share": 0.25,
            "clipped_share": 0.02 * step,
        }
        for step in range(10)
    ]
    fig = plots.reward_curves(log)
    assert_labelled(fig, legend=True)
    assert len(fig.axes) == 5  # four panels, the last with a right axis for clipped tokens
    assert len(fig.axes[0].collections) == 1  # the +-std band
    (groups,), (clipped,) = fig.axes[3].lines, fig.axes[4].lines
    assert list(groups.get_ydata()) == [0.25] * 10 and fig.axes[3].get_ylim()[1] > 1
    assert list(clipped.get_ydata()) == pytest.approx([2.0 * step for step in range(10)])
    assert fig.axes[4].get_ylim()[1] == pytest.approx(18 * 1.15)  # its own scale, in percent
    assert len(fig.axes[3].get_legend().get_texts()) == 2


def test_reward_curves_with_missing_keys_says_not_logged():
    fig = plots.reward_curves([{"step": 0, "reward_mean": 0.3}])
    assert_labelled(fig, legend=True)
    assert "kl not logged" in [text.get_text() for text in fig.axes[1].texts]
    assert "shares not logged" in [text.get_text() for text in fig.axes[3].texts]


def test_dense_reward_compares_with_exact_match():
    def reward_fn(completion: str, reference: str) -> float:
        pred = int(completion.split("<answer>")[1].split("</answer>")[0])
        truth = int(reference.split("<answer>")[1].split("</answer>")[0])
        return {0: 1.0, 1: 0.5}.get(abs(pred - truth), 0.0)

    fig = plots.dense_reward(reward_fn)
    assert_labelled(fig, legend=True)
    dense, sparse = fig.axes[0].lines
    assert list(dense.get_ydata()) == [1.0, 0.5, 0.0, 0.0, 0.0]
    assert list(sparse.get_ydata()) == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_slice_bars_survives_undefined_pearson():
    fig = plots.slice_bars(NAMED, "model_name")
    assert_labelled(fig, legend=True)
    accuracy_ax, pearson_ax = fig.axes
    assert len(accuracy_ax.patches) == 4
    assert len(pearson_ax.patches) == 1  # only zero-shot on Cosmos has a defined r
    assert "undefined" in [text.get_text() for text in pearson_ax.texts]


def test_slice_bars_names_missing_slice_column():
    with pytest.raises(KeyError, match="category"):
        plots.slice_bars(NAMED, "category")


def test_expected_vs_sampled_counts_undrawn_records():
    records = [{"pc": 1 + i % 5, "pred": 1 + i % 4, "expected": 2.5 + 0.1 * i} for i in range(20)]
    records += [{"pc": 3, "pred": None, "expected": 3.1}, {"pc": 2, "pred": 2, "expected": None}]
    fig = plots.expected_vs_sampled(records)
    assert_labelled(fig, legend=True)
    ax = fig.axes[0]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 20
    assert "2 lack an answer or expected score" in ax.get_title()
    assert ": GRPO (" in plots.expected_vs_sampled(records, "GRPO").axes[0].get_title()


def test_save_figure_writes_png_and_creates_folder(tmp_path):
    fig = plots.label_histograms(ROWS)
    assert plots.save_figure(fig, tmp_path / "figures" / "labels.png") is None  # no echo
    assert (tmp_path / "figures" / "labels.png").read_bytes().startswith(b"\x89PNG")


def test_save_figure_rejects_non_png_suffix(tmp_path):
    fig = plots.label_histograms(ROWS)
    with pytest.raises(ValueError, match=".png"):
        plots.save_figure(fig, tmp_path / "labels.jpg")


def test_metric_vs_step_draws_validation_dotted_and_rings_the_selected_step():
    steps = [
        {"step": 0, "pearson": 0.1, "val_pearson": None},
        {"step": 20, "pearson": 0.5, "val_pearson": 0.6},
        {"step": 40, "pearson": 0.7, "val_pearson": 0.55},
    ]
    fig = plots.metric_vs_step({"SFT": steps}, "pearson", selected={"SFT": 20})
    test, val, ring = fig.axes[0].lines
    assert list(val.get_xdata()) == [20, 40] and val.get_linestyle() == ":"
    assert (list(ring.get_xdata()), list(ring.get_ydata())) == ([20], [0.5])
    assert "selected on validation (step 20)" in ring.get_label()
