"""Figures for the book: training curves, learning curves, λ sweeps, parameter counts, search curves.

:func:`plot_learning_curves` draws a :func:`ftutils.trainer.train` history (loss and a validation
metric against the optimizer step); :func:`plot_train_size_curve` draws a learning curve over
training-set sizes (:func:`ftutils.evaluation.run_learning_curve`, summarised by
:func:`ftutils.evaluation.curve_summary`); :func:`plot_over_strength` and :func:`strength_axis` draw a
metric against a regularisation strength λ with λ = 0 as its own point beyond an axis break;
:func:`plot_parameter_blocks` draws parameters per block of one or more models;
:func:`plot_best_so_far` draws the best-so-far curves of searches that may coincide;
:func:`plot_against_baselines` puts each task's scores over seeds beside its baseline.

Every figure has a title, axis labels with units and a legend, and is returned (not shown), so a
notebook cell ends with the figure and the build renders it. :func:`layout_problems` says what a
reader could not read in a figure: tick labels that overlap, text cut at the figure's edge, and text
smaller than ``min_font_px`` once the figure is scaled to the page's text column (the tests hold
every helper to it).

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
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter, NullLocator
from matplotlib.transforms import blended_transform_factory

__all__ = ["plot_learning_curves", "plot_train_size_curve", "plot_over_strength", "strength_axis",
           "zero_position", "plot_parameter_blocks", "block_label", "plot_best_so_far", "plot_against_baselines",
           "layout_problems",
           "PAGE_WIDTH_PX", "history_table"]

#: Width (CSS px) of the book's text column at desktop width: a wider figure is scaled down to it.
PAGE_WIDTH_PX = 800


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
    # Only the measured sizes are labelled: a log axis spanning about one decade also labels minor
    # ticks ("3×10²", "4×10²"), which collide with a size such as 360.
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("labelled training examples (log scale)")
    ax.set_ylabel(metric_label)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def zero_position(strengths: Sequence[float]) -> float:
    """Where a log λ axis draws λ = 0: 1.5 decades below the smallest positive λ (below 1 if none).

    Example:
        >>> zero_position([0.0, 0.01, 1.0, 100.0])
        0.0003162...
    """
    positive = [float(v) for v in strengths if float(v) > 0]
    return (min(positive) if positive else 1.0) / 10 ** 1.5


def plot_over_strength(ax: Any, summary: Any, *, label: str, color: str | None = None,
                       strengths: Sequence[float] | None = None) -> None:
    """Mean ± std of a metric against a strength λ (the index of ``summary``) on a log x-axis.

    ``summary`` has columns ``mean`` and ``std`` indexed by λ (e.g. one form of
    :func:`ftutils.experiments.summarize`). A log axis has no room for λ = 0, and a symlog axis spends
    its width on negative λ that were never run, so λ = 0 is drawn as its own hollow marker at
    :func:`zero_position` of ``strengths`` (every λ on the axis, as given to :func:`strength_axis`;
    default: this summary's), joined to the rest by a dotted line across the axis break.
    """
    rows = summary.sort_index()
    lam = np.asarray(rows.index, dtype=float)
    mean = np.asarray(rows["mean"], dtype=float)
    std = np.nan_to_num(np.asarray(rows["std"], dtype=float)) if "std" in rows else np.zeros_like(mean)
    positive = lam > 0
    if (lam < 0).any():
        raise ValueError(f"strengths {sorted(lam[lam < 0])} are negative: λ must be >= 0.")
    line = None
    if positive.any():
        line = ax.errorbar(lam[positive], mean[positive], yerr=std[positive], marker="o", capsize=3,
                           color=color, label=label)
        color = line.lines[0].get_color()
    if (~positive).any():
        x0 = zero_position(lam if strengths is None else strengths)
        ax.errorbar([x0], mean[~positive][:1], yerr=std[~positive][:1], marker="o", markerfacecolor="white",
                    capsize=3, color=color, linestyle="none", label=None if line is not None else label)
        if positive.any():
            ax.plot([x0, lam[positive][0]], [mean[~positive][0], mean[positive][0]], ":", color=color)


def strength_axis(ax: Any, strengths: Sequence[float], *, label: str = "λ (strength; 0 = no regulariser)") -> None:
    """A log x-axis labelled with the strengths that were run, λ = 0 beyond a break (``//``).

    Pairs with :func:`plot_over_strength`; the limits leave half a decade on each side, so the
    markers and error bars at the ends are not cut.

    Example:
        >>> fig, ax = plt.subplots()
        >>> strength_axis(ax, [0.0, 0.01, 1.0, 100.0])
        >>> [t.get_text() for t in ax.get_xticklabels()]
        ['0', '0.01', '1', '100']
        >>> plt.close(fig)
    """
    values = sorted({float(v) for v in strengths})
    positive = [v for v in values if v > 0]
    x0 = zero_position(values)
    ticks = ([x0] if values and values[0] == 0 else []) + positive
    ax.set_xscale("log")
    ax.set_xticks(ticks, [("0" if t == x0 and values[0] == 0 else f"{t:g}") for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim((ticks[0] if ticks else x0) / 10 ** 0.5, (positive[-1] if positive else x0) * 10 ** 0.5)
    if positive and values[0] == 0:
        at = (x0 * positive[0]) ** 0.5
        ax.text(at, 0, "//", transform=blended_transform_factory(ax.transData, ax.transAxes), ha="center",
                va="center", fontsize=11, clip_on=False, bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
    ax.set_xlabel(label)


def block_label(name: str) -> str:
    """A short, readable label for a parameter block of :func:`ftutils.models.count_parameters`.

    Example:
        >>> [block_label(n) for n in ("embeddings.position_embeddings", "encoder.layer.3", "model.embed_tokens",
        ...                           "model.norm", "pooler.dense", "embeddings.LayerNorm")]
        ['position emb.', '3', 'token emb.', 'final norm', 'pooler', 'emb. norm']
    """
    parts = name.split(".")
    last = parts[-1]
    if last.isdigit():
        return last
    known = {"word_embeddings": "token emb.", "embed_tokens": "token emb.", "wte": "token emb.",
             "position_embeddings": "position emb.", "wpe": "position emb.", "token_type_embeddings": "segment emb.",
             "norm": "final norm", "ln_f": "final norm", "final_layernorm": "final norm", "lm_head": "LM head",
             "classifier": "head", "score": "head"}
    if "pooler" in parts:
        return "pooler"
    if last.lower() == "layernorm":
        return "emb. norm" if "embeddings" in parts else "norm"
    return known.get(last, last.replace("_", " ")[:14])


def plot_parameter_blocks(blocks: Mapping[str, Mapping[str, int]], *, colors: Sequence[str] | None = None,
                          title: str = "Where the parameters sit: one bar per block",
                          xlabel: str = "block (embeddings, layer index, final parts)") -> Figure:
    """One bar chart per model of the parameters (millions) in each block, side by side, shared y.

    ``blocks`` maps a panel title (e.g. "encoder: all-MiniLM-L6-v2") to
    :func:`ftutils.models.count_parameters`. Panels are as wide as their number of bars, so every
    bar label (:func:`block_label`) is readable at the page's width.

    Example:
        >>> fig = plot_parameter_blocks({"tiny": {"embeddings.word_embeddings": 1000, "encoder.layer.0": 500}})
        >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
        ['token emb.', '0']
        >>> plt.close(fig)
    """
    counts = [max(len(b), 4) for b in blocks.values()]
    fig, axes = plt.subplots(1, len(blocks), figsize=(min(9.0, 2.0 + 0.21 * sum(counts)), 3.8), sharey=True,
                             squeeze=False, gridspec_kw={"width_ratios": counts})
    palette = list(colors or ("tab:blue", "tab:orange", "tab:green", "tab:purple"))
    for i, (ax, (label, model_blocks)) in enumerate(zip(axes[0], blocks.items())):
        names = list(model_blocks)
        ax.bar(range(len(names)), [model_blocks[n] / 1e6 for n in names], color=palette[i % len(palette)],
               label="parameters per block")
        ax.set_xticks(range(len(names)), [block_label(n) for n in names], rotation=90, fontsize=9)
        ax.set_xlim(-0.7, len(names) - 0.3)
        ax.set_title(label, fontsize=10)
        ax.legend(loc="upper right", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("parameters (millions)")
    fig.supxlabel(xlabel, fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


_SEARCH_STYLES = ({"linestyle": "-", "linewidth": 3.0, "marker": "o", "alpha": 0.75},
                  {"linestyle": "--", "linewidth": 2.0, "marker": "s", "markerfacecolor": "white"},
                  {"linestyle": ":", "linewidth": 2.0, "marker": "D", "markersize": 5})


def plot_best_so_far(searches: Mapping[str, Any], *, baseline: float | None = None,
                     baseline_label: str = "majority class",
                     ylabel: str = "best validation accuracy so far (fraction)",
                     title: str = "Grid vs random vs TPE on the same budget", dodge: float = 0.1) -> Figure:
    """The best-so-far curve of each search (a :func:`ftutils.search.trials_frame`) against trials run.

    Searches that share their first trials (TPE starts with random search's draws) have identical
    curves there; each series gets its own line style and marker and is shifted sideways by
    ``dodge`` trials, so none hides another. The x-axis counts trials, in integers.

    Example:
        >>> import pandas as pd
        >>> same = pd.DataFrame({"trial": [0, 1], "best_so_far": [0.5, 0.6]})
        >>> fig = plot_best_so_far({"random": same, "tpe": same})
        >>> [line.get_xdata().tolist() for line in fig.axes[0].get_lines()[:2]]
        [[0.95, 1.95], [1.05, 2.05]]
        >>> plt.close(fig)
    """
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    n = len(searches)
    for i, (name, df) in enumerate(searches.items()):
        shift = (i - (n - 1) / 2) * dodge
        ax.step(np.asarray(df["trial"], dtype=float) + 1 + shift, df["best_so_far"], where="post",
                label=f"{name} ({len(df)} trials)", **_SEARCH_STYLES[i % len(_SEARCH_STYLES)])
    if baseline is not None:
        ax.axhline(baseline, color="grey", ls="--", linewidth=1, label=baseline_label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trials run (fine-tunings)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_against_baselines(rows: Sequence[Mapping[str, Any]], *, title: str = "Fine-tuned models against their baselines",
                           xlabel: str = "score (fraction; chrF / 100)") -> Figure:
    """One line per row: each seed's score as a dot, their mean as a bar, the baseline as a diamond.

    A row has ``label`` (what the line is), ``scores`` (one per seed), ``baseline_score`` and,
    optionally, ``scale`` (scores and baseline are divided by it, e.g. 100 for chrF). A model that beats
    its baseline by more than its seed spread (:func:`ftutils.evaluation.clears`) is drawn in blue, one
    that does not in orange.

    Example:
        >>> fig = plot_against_baselines([{"label": "topics", "scores": [0.9, 0.95], "baseline_score": 0.8},
        ...                               {"label": "chrF", "scores": [30.0], "baseline_score": 20.0, "scale": 100}])
        >>> bool(fig.axes[0].get_xlim()[1] <= 1.0), len(fig.axes[0].get_yticks())
        (True, 2)
        >>> plt.close(fig)
    """
    from ftutils import evaluation

    if not rows:
        raise ValueError("plot_against_baselines needs at least one row.")
    fig, ax = plt.subplots(figsize=(8.0, 0.62 * len(rows) + 1.3))
    for y, row in enumerate(rows):
        scale = float(row.get("scale", 1.0))
        scores = np.asarray(row["scores"], dtype=float) / scale
        base = float(row["baseline_score"]) / scale
        color = "tab:blue" if evaluation.clears(scores, base) else "tab:orange"
        ax.hlines(y, min(base, scores.min()), max(base, scores.max()), color="lightgrey", linewidth=1, zorder=1)
        ax.scatter(scores, np.full(len(scores), y), color=color, s=22, zorder=3, alpha=0.8)
        ax.vlines(scores.mean(), y - 0.28, y + 0.28, color=color, linewidth=2.5, zorder=3, gid="mean")
        ax.scatter([base], [y], marker="D", facecolor="white", edgecolor="black", s=40, zorder=4)
    ax.set_yticks(range(len(rows)), [str(row["label"]) for row in rows], fontsize=9)
    ax.invert_yaxis()
    high = max(max(np.asarray(r["scores"], dtype=float).max(), float(r["baseline_score"])) / float(r.get("scale", 1.0))
               for r in rows)
    ax.set_xlim(0.0, min(1.0, high + 0.08) if high <= 1.0 else high * 1.05)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    handles = [plt.Line2D([], [], color="tab:blue", marker="o", ls="", label="model, one dot per seed (clears)"),
               plt.Line2D([], [], color="tab:orange", marker="o", ls="", label="model (does not clear)"),
               plt.Line2D([], [], color="black", marker="D", markerfacecolor="white", ls="", label="baseline")]
    height = fig.get_figheight()
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0.0, 0.35 / height, 1.0, 1.0))  # room for the legend below the axis label
    return fig


def _drawn_tick_labels(axis: Any) -> list[Any]:
    """The tick labels an axis draws: visible, not empty, at a tick inside the view limits."""
    low, high = sorted(axis.get_view_interval())
    span = (high - low) * 1e-9
    found = []
    for ticks, locations in ((axis.get_major_ticks(), axis.get_majorticklocs()),
                             (axis.get_minor_ticks(), axis.get_minorticklocs())):
        for tick, at in zip(ticks, locations):
            if low - span <= at <= high + span:
                found += [t for t in (tick.label1, tick.label2) if t.get_visible() and t.get_text()]
    return found


def _texts(fig: Figure) -> list[Any]:
    """Every text the figure draws: the drawn tick labels and every other visible, non-empty text."""
    ticks = [t for ax in fig.axes for axis in (ax.xaxis, ax.yaxis) for t in _drawn_tick_labels(axis)]
    every_tick = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
                  for tick in (*axis.get_major_ticks(), *axis.get_minor_ticks()) for t in (tick.label1, tick.label2)}
    others = [t for t in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_fontsize"))
              if id(t) not in every_tick and t.get_visible() and str(t.get_text()).strip()]
    return ticks + others


def layout_problems(fig: Figure, *, page_width_px: float = PAGE_WIDTH_PX, min_font_px: float = 8.5) -> list[str]:
    """What a reader could not read in ``fig`` as the book shows it; ``[]`` if nothing.

    The figure is drawn, then: tick labels of one axis that overlap each other; text that ends beyond
    the figure's edge (cut in the saved image); text smaller than ``min_font_px`` once the figure is
    scaled to ``page_width_px`` (the book's text column; a narrower figure is shown at its own size).

    Example:
        >>> fig, ax = plt.subplots(figsize=(3, 2))
        >>> _ = ax.set_xticks(range(8), [f"label number {i}" for i in range(8)])
        >>> layout_problems(fig)[0]  # doctest: +ELLIPSIS
        "x tick labels overlap: 'label number 0' and 'label number 1'..."
        >>> plt.close(fig)
    """
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    figure_box = fig.bbox
    scale = min(1.0, page_width_px / figure_box.width) * fig.dpi / 72.0  # on-page px per point
    problems: list[str] = []
    seen: set[int] = set()
    ticks: dict[tuple[int, str], list[tuple[str, Any]]] = {}
    for ax_index, ax in enumerate(fig.axes):
        for axis_name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
            ticks[(ax_index, axis_name)] = [(t.get_text(), t.get_window_extent(renderer))
                                            for t in _drawn_tick_labels(axis)]
    for (_, axis_name), boxes in ticks.items():
        for i, (text_a, box_a) in enumerate(boxes):
            for text_b, box_b in boxes[i + 1:]:
                if box_a.overlaps(box_b) and box_a.width > 0 and box_b.width > 0:
                    overlap_x = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
                    overlap_y = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
                    if overlap_x > 0.5 and overlap_y > 0.5:
                        problems.append(f"{axis_name} tick labels overlap: {text_a!r} and {text_b!r}")
    for text in _texts(fig):
        if id(text) in seen:
            continue
        seen.add(id(text))
        box = text.get_window_extent(renderer)
        if box.width == 0 or not text.get_text().strip():
            continue
        if (box.x0 < figure_box.x0 - 1 or box.x1 > figure_box.x1 + 1 or box.y0 < figure_box.y0 - 1
                or box.y1 > figure_box.y1 + 1):
            problems.append(f"text {text.get_text()!r} is cut at the figure's edge")
        size = text.get_fontsize() * scale
        if size < min_font_px:
            problems.append(f"text {text.get_text()!r} is {size:.1f} px high on the page (< {min_font_px} px): "
                            f"use a larger font or a narrower figure")
    return problems


def history_table(history: Sequence[Mapping[str, Any]] | Any, *, evals_only: bool = True) -> list[dict[str, Any]]:
    """Rows of the history (by default only evaluations), rounded for display in a notebook.

    Example:
        >>> history_table([{"step": 5, "epoch": 1.0, "eval_loss": 0.123456}])
        [{'step': 5, 'epoch': 1.0, 'eval_loss': 0.1235}]
    """
    history = getattr(history, "history", history)
    rows = [h for h in history if not evals_only or any(k.startswith("eval_") for k in h)]
    return [{k: round(v, 4) if isinstance(v, float) else v for k, v in h.items()} for h in rows]
