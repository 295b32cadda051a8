"""Tests of ftutils.plotting: the figure carries what the book promises (title, units, legend, data)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from ftutils.plotting import history_table, plot_learning_curves

HISTORY = [
    {"step": 5, "epoch": 0.5, "train_loss": 0.70, "lr": 1e-4, "samples_per_second": 50.0},
    {"step": 10, "epoch": 1.0, "train_loss": 0.60, "lr": 8e-5, "samples_per_second": 51.0},
    {"step": 10, "epoch": 1.0, "eval_loss": 0.65, "eval_accuracy": 0.70, "eval_f1": 0.6},
    {"step": 15, "epoch": 1.5, "train_loss": 0.40, "lr": 4e-5, "samples_per_second": 52.0},
    {"step": 20, "epoch": 2.0, "train_loss": 0.30, "lr": 0.0, "samples_per_second": 49.0},
    {"step": 20, "epoch": 2.0, "eval_loss": 0.50, "eval_accuracy": 0.80, "eval_f1": 0.7},
]


def test_learning_curves_have_title_units_legend_and_the_data():
    fig = plot_learning_curves(HISTORY, metric="accuracy", title="MiniLM on rotten_tomatoes", show_lr=True)
    assert fig._suptitle.get_text() == "MiniLM on rotten_tomatoes"
    loss_ax, metric_ax, lr_ax = fig.axes
    for ax in fig.axes:
        assert ax.get_xlabel() == "optimizer step" and "(" in ax.get_ylabel() and ax.get_legend() is not None
    lines = {line.get_label(): line for line in loss_ax.get_lines()}
    assert list(lines["training loss"].get_ydata()) == [0.70, 0.60, 0.40, 0.30]
    assert list(lines["validation loss"].get_xdata()) == [10, 20]
    assert list(metric_ax.get_lines()[0].get_ydata()) == [0.70, 0.80]
    assert list(lr_ax.get_lines()[0].get_ydata()) == [1e-4, 8e-5, 4e-5, 0.0]
    plt.close(fig)


def test_epoch_axis_default_metric_and_errors():
    fig = plot_learning_curves(HISTORY, x="epoch")
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() == "epoch"
    assert fig.axes[1].get_title() == "Validation accuracy"  # first eval metric alphabetically
    plt.close(fig)
    only_train = [h for h in HISTORY if "train_loss" in h]
    fig = plot_learning_curves(only_train)
    assert len(fig.axes) == 1
    plt.close(fig)
    with pytest.raises(KeyError, match="eval_accuracy"):
        plot_learning_curves(HISTORY, metric="bleu")
    with pytest.raises(ValueError, match="empty"):
        plot_learning_curves([])
    with pytest.raises(ValueError, match="'step' or 'epoch'"):
        plot_learning_curves(HISTORY, x="time")


def test_history_table_keeps_evaluations():
    rows = history_table(HISTORY)
    assert [r["step"] for r in rows] == [10, 20] and rows[0]["eval_accuracy"] == 0.7


# --- Figures that read at the page's width (issue 19) ---------------------------------------------

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ftutils.evaluation import curve_summary  # noqa: E402
from ftutils.plotting import (  # noqa: E402
    block_label,
    layout_problems,
    plot_best_so_far,
    plot_over_strength,
    plot_parameter_blocks,
    plot_train_size_curve,
    strength_axis,
)


def curve_runs(sizes, seeds=3):
    rng = np.random.default_rng(0)
    return pd.DataFrame([{"method": m, "n": n, "seed": s, "accuracy": 0.5 + 0.1 * np.log10(n) + rng.normal(0, .02)}
                         for m in ("fine-tuned", "tf-idf") for n in sizes for s in range(seeds)])


@pytest.mark.parametrize("sizes", [(40, 120, 360), (50, 150, 450, 1350), (100, 1000, 10000)])
def test_learning_curve_labels_only_the_measured_sizes(sizes):
    fig = plot_train_size_curve(curve_summary(curve_runs(sizes)), chance=0.5)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels(which="both") if t.get_text()]
    assert labels == [f"{n:,}" for n in sizes]  # no "3×10²" next to "360"
    assert layout_problems(fig) == []
    plt.close(fig)


def test_layout_problems_sees_the_old_learning_curve_defect():
    """Before the fix a log axis over 40..360 also labelled minor ticks: '3×10²' overlapped '360'."""
    fig = plot_train_size_curve(curve_summary(curve_runs((40, 120, 360))))
    ax = fig.axes[0]
    # The labels the old figure drew, set by hand: whether Matplotlib labels minor log ticks by itself
    # depends on its version (3.11 does over 40..360, 3.9 does not), which is not what this tests.
    ax.set_xticks([300, 400], ["3×10²", "4×10²"], minor=True)
    assert any("tick labels overlap" in p and "360" in p for p in layout_problems(fig))
    plt.close(fig)


def sweep(strengths=(0.0, 0.01, 1.0, 100.0)):
    return pd.DataFrame({"mean": np.linspace(0.7, 0.8, len(strengths)), "std": 0.01}, index=list(strengths))


def test_strength_axis_shows_zero_as_its_own_point_and_no_negative_strengths():
    fig, ax = plt.subplots(figsize=(5.5, 4))
    plot_over_strength(ax, sweep(), label="l2sp", color="tab:blue")
    strength_axis(ax, [0.0, 0.01, 1.0, 100.0])
    ax.legend()
    fig.tight_layout()
    assert ax.get_xscale() == "log"
    low, high = ax.get_xlim()
    assert low > 0 and high >= 100 * 10 ** 0.4  # the λ = 100 marker and its cap are inside the axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.01", "1", "100"]
    assert not [t for t in ax.get_xticklabels(which="minor") if t.get_text()]
    hollow = [line for line in ax.get_lines() if line.get_markerfacecolor() == "white"]
    assert len(hollow) == 1 and hollow[0].get_xdata()[0] < 0.01 / 10  # λ = 0, left of the break
    assert any(t.get_text() == "//" for t in ax.texts)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["l2sp"]  # one entry per form
    assert layout_problems(fig) == []
    plt.close(fig)


def test_a_form_run_at_fewer_strengths_puts_zero_where_the_axis_has_it():
    """Chapter 3 runs weight decay at λ = 0 and 100 only; its λ = 0 is the same point as L2-SP's."""
    fig, ax = plt.subplots()
    strengths = [0.0, 0.01, 1.0, 100.0]
    plot_over_strength(ax, sweep(strengths), label="l2sp", strengths=strengths)
    plot_over_strength(ax, sweep((0.0, 100.0)), label="weight-decay", strengths=strengths)
    strength_axis(ax, strengths)
    zeros = [line.get_xdata()[0] for line in ax.get_lines() if line.get_markerfacecolor() == "white"]
    assert len(zeros) == 2 and zeros[0] == zeros[1] < 0.01
    plt.close(fig)


def test_strength_axis_with_many_strengths_and_without_zero():
    fig, ax = plt.subplots(figsize=(5.5, 4))
    strengths = (0.0, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0)
    plot_over_strength(ax, sweep(strengths), label="l2sp")
    strength_axis(ax, strengths)
    fig.tight_layout()
    assert layout_problems(fig) == []
    plt.close(fig)
    fig, ax = plt.subplots()
    plot_over_strength(ax, sweep((0.1, 1.0)), label="only positive")
    strength_axis(ax, (0.1, 1.0))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.1", "1"] and not ax.texts
    plt.close(fig)
    with pytest.raises(ValueError, match="negative"):
        plot_over_strength(plt.subplots()[1], sweep((-1.0, 1.0)), label="x")
    plt.close("all")


ENCODER = ["embeddings.word_embeddings", "embeddings.position_embeddings", "embeddings.token_type_embeddings",
           "embeddings.LayerNorm", *[f"encoder.layer.{i}" for i in range(6)], "pooler.dense"]
DECODER = ["model.embed_tokens", *[f"model.layers.{i}" for i in range(30)], "model.norm"]


def test_parameter_blocks_have_readable_uncut_labels():
    blocks = {"encoder: all-MiniLM-L6-v2": dict.fromkeys(ENCODER, 1_000_000),
              "decoder: SmolLM2-135M": dict.fromkeys(DECODER, 3_000_000)}
    fig = plot_parameter_blocks(blocks)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels[:4] == ["token emb.", "position emb.", "segment emb.", "emb. norm"] and labels[-1] == "pooler"
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()][-1] == "final norm"
    assert layout_problems(fig) == []
    plt.close(fig)
    assert block_label("bert.encoder.layer.11") == "11"


def test_layout_problems_sees_the_old_parameter_bar_labels():
    """The chapter's first version: 7 pt labels cut to 10 characters on an 11-inch figure."""
    fig, ax = plt.subplots(figsize=(11, 3.6))
    ax.bar(range(len(ENCODER)), 1.0)
    ax.set_xticks(range(len(ENCODER)), [n.split(".")[-1][:10] for n in ENCODER], rotation=90, fontsize=7)
    fig.tight_layout()
    assert any("px high on the page" in p for p in layout_problems(fig))
    plt.close(fig)


def test_best_so_far_curves_that_coincide_stay_visible():
    same = pd.DataFrame({"trial": range(6), "best_so_far": [0.3, 0.5, 0.5, 0.6, 0.6, 0.7]})
    fig = plot_best_so_far({"grid": same.assign(best_so_far=same.best_so_far - 0.1), "random": same, "tpe": same},
                           baseline=0.25)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    random, tpe = lines["random (6 trials)"], lines["tpe (6 trials)"]
    assert random.get_linestyle() != tpe.get_linestyle() and random.get_marker() != tpe.get_marker()
    assert not np.allclose(random.get_xdata(), tpe.get_xdata())  # dodged sideways, never on top
    ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert ticks and all(t.lstrip("−-").isdigit() for t in ticks)  # trials are counted in integers
    assert layout_problems(fig) == []
    plt.close(fig)


def test_scores_against_baselines_are_readable_and_colour_who_clears():
    from ftutils.plotting import plot_against_baselines

    rows = [{"label": "NER, English tweets (wnut16)\nMiniLM vs dictionary", "scores": [0.40, 0.35, 0.42],
             "baseline_score": 0.22},
            {"label": "sentiment, Chinese (chn_sentiment)\nMiniLM (English vocabulary) vs TF-IDF+logreg (char bigrams)",
             "scores": [0.53], "baseline_score": 0.72},
            {"label": "translation en→fr (django_po)\nSmolLM2-135M + LoRA vs untuned SmolLM2", "scores": [26.1],
             "baseline_score": 17.1, "scale": 100.0}]
    fig = plot_against_baselines(rows)
    ax = fig.axes[0]
    assert layout_problems(fig) == []
    means = [c for c in ax.collections if c.get_gid() == "mean"]  # the vertical mean bars
    colors = [tuple(np.round(c.get_color()[0][:3], 2)) for c in means]
    blue, orange = tuple(np.round(matplotlib.colors.to_rgb("tab:blue"), 2)), tuple(np.round(matplotlib.colors.to_rgb("tab:orange"), 2))
    assert colors == [blue, orange, blue], colors
    assert ax.get_xlim() == (0.0, pytest.approx(0.80))  # chrF drawn as 0.261; the highest point 0.72 + 0.08
    plt.close(fig)
    with pytest.raises(ValueError, match="at least one row"):
        plot_against_baselines([])
