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
