"""Figures for the book: one run's training curves, and a test metric against the training-set size.

:func:`plot_learning_curves` draws a :func:`ftutils.trainer.train` history (loss and a validation
metric against the optimizer step); :func:`plot_train_size_curve` draws a learning curve over
training-set sizes (:func:`ftutils.evaluation.run_learning_curve`, summarised by
:func:`ftutils.evaluation.curve_summary`).

Every figure has a title, axis labels with units and a legend, and is returned (not shown), so a
notebook cell ends with the figure and the build renders it.

Example:
    >>> history = [{"step": 10, "epoch": 0.5, "train_loss": 0.7, "lr": 5e-5},
    ...            {"step": 20, "epoch": 1.0, "train_loss": 0.5, "lr": 4e-5},
    ...            {"step": 20, "epoch": 1.0, "eval_loss": 0.55, "eval_accuracy": 0.8}]
    >>> fig = plot_learning_curves(history, metric="accuracy")
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['loss (cross-entropy, nats)', 'accuracy (fraction)']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["plot_learning_curves", "plot_train_size_curve", "history_table"]


def _series(history: Sequence[Mapping[str, Any]], key: str, x: str) -> tuple[list[float], list[float]]:
    points = [(h[x], h[key]) for h in history if key in h and h.get(key) is not None and x in h]
    return [p[0] for p in points], [p[1] for p in points]


def plot_learning_curves(
    history: Sequence[Mapping[str, Any]] | Any,
    *,
    metric: str | None = None,
    x: str = "step",
    title: str = "Learning curves",
    metric_label: str | None = None,
    show_lr: bool = False,
) -> Figure:
    """Training and validation loss against ``x`` ("step" or "epoch"), plus a validation metric panel.

    ``history`` is ``TrainResult.history`` (or the TrainResult itself). ``metric`` names an eval
    metric with or without the ``eval_`` prefix (e.g. "accuracy"); by default the first eval metric
    other than the loss. ``show_lr`` adds the learning rate on a third panel.
    """
    history = getattr(history, "history", history)
    if not history:
        raise ValueError("history is empty: train for at least one logging step (logging_steps) first.")
    if x not in ("step", "epoch"):
        raise ValueError(f"x={x!r} is not allowed: expected 'step' or 'epoch'.")
    eval_keys = sorted({k for h in history for k in h if k.startswith("eval_") and k != "eval_loss"})
    if metric is not None:
        key = metric if metric.startswith("eval_") else f"eval_{metric}"
        if key not in eval_keys:
            raise KeyError(f"metric={metric!r} is not in the history; it has {eval_keys or 'no eval metrics'}.")
    else:
        key = eval_keys[0] if eval_keys else None
    panels = 1 + (key is not None) + show_lr
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.4), squeeze=False)
    axes = list(axes[0])
    xlabel = "optimizer step" if x == "step" else "epoch"

    ax = axes[0]
    xs, ys = _series(history, "train_loss", x)
    if xs:
        ax.plot(xs, ys, label="training loss", color="tab:blue")
    xs, ys = _series(history, "eval_loss", x)
    if xs:
        ax.plot(xs, ys, "o-", label="validation loss", color="tab:orange")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("loss (cross-entropy, nats)")
    ax.set_title("Loss")
    ax.legend()
    ax.grid(alpha=0.3)

    if key is not None:
        ax = axes[1]
        name = key[len("eval_"):]
        xs, ys = _series(history, key, x)
        ax.plot(xs, ys, "o-", color="tab:green", label=f"validation {name}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric_label or f"{name} (fraction)")
        ax.set_title(f"Validation {name}")
        ax.legend()
        ax.grid(alpha=0.3)
    if show_lr:
        ax = axes[-1]
        xs, ys = _series(history, "lr", x)
        ax.plot(xs, ys, color="tab:purple", label="base learning rate")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("learning rate (per step)")
        ax.set_title("Schedule")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_train_size_curve(summary: Any, *, metric_label: str = "test accuracy (fraction)",
                          title: str = "Learning curve", labels: Mapping[str, str] | None = None,
                          chance: float | None = None) -> Figure:
    """Mean ± one std (error bars over seeds) of each method against the training-set size, log x-axis.

    ``summary`` is :func:`ftutils.evaluation.curve_summary`'s table (a test metric per method and
    training-set size, from :func:`ftutils.evaluation.run_learning_curve`); not to be confused with
    :func:`plot_learning_curves`, which draws one run's loss against its optimizer steps. ``labels``
    maps method names to legend entries; ``chance`` draws a dashed line (e.g. the majority-class
    accuracy). Returns the figure.

    Example:
        >>> import pandas as pd
        >>> from ftutils.evaluation import curve_summary
        >>> runs = pd.DataFrame({"method": ["a"] * 4, "n": [10, 10, 40, 40], "seed": [0, 1] * 2,
        ...                      "accuracy": [0.6, 0.7, 0.8, 0.8]})
        >>> fig = plot_train_size_curve(curve_summary(runs), chance=0.5)
        >>> fig.axes[0].get_xlabel(), [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        ('labelled training examples (log scale)', ['majority class', 'a (2 seeds)'])
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in dict.fromkeys(summary.index.get_level_values("method")):
        rows = summary.loc[name].sort_index()
        n_seeds = int(rows["n"].min())
        ax.errorbar(rows.index, rows["mean"], yerr=rows["std"].fillna(0), marker="o", capsize=3,
                    label=f"{(labels or {}).get(name, name)} ({n_seeds} seeds)")
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="majority class")
    ax.set_xscale("log")
    sizes = sorted(set(summary.index.get_level_values("n")))
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.set_xlabel("labelled training examples (log scale)")
    ax.set_ylabel(metric_label)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def history_table(history: Sequence[Mapping[str, Any]] | Any, *, evals_only: bool = True) -> list[dict[str, Any]]:
    """Rows of the history (by default only evaluations), rounded for display in a notebook.

    Example:
        >>> history_table([{"step": 5, "epoch": 1.0, "eval_loss": 0.123456}])
        [{'step': 5, 'epoch': 1.0, 'eval_loss': 0.1235}]
    """
    history = getattr(history, "history", history)
    rows = [h for h in history if not evals_only or any(k.startswith("eval_") for k in h)]
    return [{k: round(v, 4) if isinstance(v, float) else v for k, v in h.items()} for h in rows]
