"""The book's headline results, one row each: what a chapter measured, against which baseline.

A chapter calls :func:`record` where it states a result; the book runner collects every chapter's rows
into ``book/results.json`` (``cpu-tiny``; another configuration writes ``book/results-<config>.json``
beside it) and renders the page ``book/results.md`` from it (:func:`write_page`), the table a teacher
or a reader scanning the book looks at first.

A row has the keys of :data:`KEYS`: ``score`` is the mean over the seeds, ``spread`` the max - min over
them (0 for one seed), ``baseline_score`` the baseline's mean. :func:`margin_holds` says whether the
model beats its baseline by more than the seed spread (for a metric where lower is better, the row
says so with ``higher_is_better=False``).

Outside the runner :func:`record` only returns the row, so a chapter runs the same anywhere.

Example:
    >>> row = record(task="sentiment (rotten_tomatoes)", metric="accuracy", scores=[0.80, 0.84, 0.82],
    ...              baseline="TF-IDF + logistic regression", baseline_score=0.70, config="cpu-tiny", seconds=31.0)
    >>> row["score"], row["spread"], row["seeds"], margin_holds(row)
    (0.82, 0.04, 3, True)
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

KEYS = ("chapter", "task", "metric", "score", "spread", "seeds", "baseline", "baseline_score", "config", "seconds")
RESULTS_ENV = "FTUTILS_RECORD_RESULTS"  # the file the runner asks record() to append rows to


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)  # numbers.Real: NumPy's scalars too


def clears(scores: Sequence[float], baseline: float | Sequence[float], margin: float = 0.0, *,
           higher_is_better: bool = True) -> bool:
    """Whether the seeds' mean beats ``baseline`` (a score, or one per seed) by more than their spread
    (max - min) plus ``margin``: the test behind every "beats its baseline" in the book, in a chapter
    (``ftutils.evaluation.clears`` is this function) and on the results page.

    Example:
        >>> clears([0.80, 0.84, 0.82], 0.70), clears([0.70, 0.84], 0.70)
        (True, False)
        >>> clears([0.20, 0.22], 0.30, higher_is_better=False)  # a loss, say
        True
    """
    values = [float(v) for v in scores]
    base = [float(baseline)] if _is_number(baseline) else [float(b) for b in baseline]
    if not values or not base:
        raise ValueError("clears needs at least one score and one baseline score.")
    gain = sum(values) / len(values) - sum(base) / len(base)
    return (gain if higher_is_better else -gain) > max(values) - min(values) + margin


def _scores(name: str, values: float | Sequence[float]) -> list[float]:
    listed = [values] if _is_number(values) else list(values)
    if not listed or not all(_is_number(v) and math.isfinite(v) for v in listed):
        raise ValueError(f"{name}={values!r} is not allowed: expected a finite number or a non-empty list of them "
                         "(one per seed).")
    return [float(v) for v in listed]


def record(*, task: str, metric: str, scores: float | Sequence[float], baseline: str,
           baseline_score: float | Sequence[float], config: str, seconds: float | None = None,
           higher_is_better: bool = True, note: str = "") -> dict[str, Any]:
    """One headline result: ``scores`` (one per seed) of ``metric`` on ``task`` against ``baseline``.

    ``seconds``: the training time behind the row (all seeds together), if measured. ``note``: what the
    row needs said beside it (e.g. why it does not beat its baseline). Under the book runner the row
    is appended to the file named by ``$FTUTILS_RECORD_RESULTS``; the runner adds the chapter.
    """
    for name, value in (("task", task), ("metric", metric), ("baseline", baseline), ("config", config)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name}={value!r} is not allowed: expected a non-empty string.")
    values, base = _scores("scores", scores), _scores("baseline_score", baseline_score)
    row = {"chapter": None, "task": task, "metric": metric, "score": round(_mean(values), 4),
           "spread": round(max(values) - min(values), 4), "seeds": len(values), "baseline": baseline,
           "baseline_score": round(_mean(base), 4), "config": config,
           "seconds": None if seconds is None else round(float(seconds), 1)}
    if not higher_is_better:
        row["higher_is_better"] = False
    row["clears"] = clears(values, base, higher_is_better=higher_is_better)  # on the unrounded scores
    if note:
        row["note"] = note
    target = os.environ.get(RESULTS_ENV)
    if target:
        with open(target, "a") as fh:
            fh.write(json.dumps(row) + "\n")
    return row


def margin_holds(row: dict[str, Any]) -> bool:
    """Whether the row's model beats its baseline by more than its seed spread: :func:`clears`, as
    :func:`record` computed it from the seeds' scores (a row written before it did so: from the
    rounded mean, spread and baseline)."""
    if "clears" in row:
        return bool(row["clears"])
    gain = row["score"] - row["baseline_score"]
    return (gain if row.get("higher_is_better", True) else -gain) > row["spread"]


def read_recorded(file: Path, chapter: str) -> list[dict[str, Any]]:
    """The rows a chapter's run appended to ``file``, with ``chapter`` filled in (none: empty list)."""
    if not file.is_file():
        return []
    rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    return [{**row, "chapter": chapter} for row in rows]


def results_file(root: Path, config: str) -> Path:
    """``book/results.json`` for ``cpu-tiny``, ``book/results-<config>.json`` for another configuration."""
    return root / "book" / ("results.json" if config == "cpu-tiny" else f"results-{config}.json")


def merge(file: Path, chapter: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace ``chapter``'s rows in ``file`` by ``rows`` (the other chapters' stay); return them all."""
    kept = [r for r in json.loads(file.read_text()) if r["chapter"] != chapter] if file.is_file() else []
    every = sorted(kept + rows, key=lambda r: r["chapter"])  # stable: a chapter's rows keep their order
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(every, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, file)
    return every


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def page(rows: list[dict[str, Any]], config: str) -> str:
    """The results page (MyST markdown) for ``rows`` of one configuration."""
    lines = [
        "# Results at a glance", "",
        f"Every headline number the book states, as its last `{config}` run measured it, next to the baseline "
        "it is compared with. *Score* is the mean over the seeds, *spread* the max - min over them; "
        "*clears* says whether the model beats its baseline by more than that spread. The chapter's "
        "text says what each row means, and why where one does not clear. *Seconds* is the training time "
        "behind the row (all its seeds), measured as the book ran, two chapters at a time where there are "
        "two cores: compare it within a chapter, not across chapters or machines. This page is generated "
        "by the book runner from `book/results.json`; rerunning a chapter rewrites its rows.", "",
        "| chapter | task | metric | score | spread | seeds | baseline | baseline score | clears | seconds |",
        "|---|---|---|---:|---:|---:|---|---:|:-:|---:|",
    ]
    for r in rows:
        clears = "yes" if margin_holds(r) else "no"
        metric = r["metric"] + ("" if r.get("higher_is_better", True) else " (lower is better)")
        lines.append(f"| {r['chapter']} | {r['task']} | {metric} | {_number(r['score'])} | {_number(r['spread'])} | "
                     f"{r['seeds']} | {r['baseline']} | {_number(r['baseline_score'])} | {clears} | "
                     f"{_number(r['seconds'], 0)} |")
    notes = [r for r in rows if r.get("note")]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {r['chapter']}, {r['task']}: {r['note']}" for r in notes]
    return "\n".join(lines) + "\n"


def write_page(root: Path, config: str = "cpu-tiny") -> Path | None:
    """Write ``book/results.md`` from the ``cpu-tiny`` results file (other configs: no page). Returns it."""
    file = results_file(root, config)
    if config != "cpu-tiny" or not file.is_file():
        return None
    out = root / "book" / "results.md"
    out.write_text(page(json.loads(file.read_text()), config))
    return out
