"""Run a grid of training settings over seeds, cache every run, and summarise the results.

A chapter's experiment is a list of *settings* (plain dicts such as ``{"kind": "l2sp", "strength": 1.0}``),
a list of seeds, and a ``train_fn(settings, seed) -> dict`` that trains once and returns its results
(scalar metrics, and anything else JSON can hold: per-layer distances, a training history).
:func:`run_grid` calls ``train_fn`` once per (settings, seed) pair that is not cached yet, stores the
result as JSON under ``cache_dir()/"results"/<config name>/<hash>.json`` and returns one row per run.
A rerun of the chapter, or a later chapter asking for the same runs, reads them back instead of training;
an empty cache only means everything is trained again.

The hash covers the experiment name, the settings, the seed and the configuration's values (not only its
name), so changing ``n_train`` or a learning rate never returns a stale result.

Example:
    >>> import tempfile
    >>> from ftutils.experiments import run_grid, summarize
    >>> def train_fn(settings, seed):
    ...     return {"accuracy": 0.5 + settings["x"] / 10 + seed / 100}
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     df = run_grid([{"x": 1}, {"x": 2}], [0, 1], train_fn, config="cpu-tiny",
    ...                   experiment="doc", root=tmp, progress=False)
    >>> df[["x", "seed", "accuracy", "cached"]].to_string(index=False)
    ' x  seed  accuracy  cached\\n 1     0      0.60   False\\n 1     1      0.61   False\\n 2     0      0.70   False\\n 2     1      0.71   False'
    >>> summarize(df, by="x", metric="accuracy").round(3).to_dict("index")
    {1: {'mean': 0.605, 'std': 0.007, 'n': 2, 'min': 0.6, 'max': 0.61}, 2: {'mean': 0.705, 'std': 0.007, 'n': 2, 'min': 0.7, 'max': 0.71}}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ftutils import assets
from ftutils.config import BookConfig, get_config

__all__ = [
    "CACHE_FORMAT",
    "settings_hash",
    "results_dir",
    "run_grid",
    "summarize",
    "mean_pm_std",
    "paired_difference",
]

#: Bump when the layout of a cached file changes: older files are then ignored (retrained), not misread.
CACHE_FORMAT = 2  # 2: heads seeded at the point of use; mi_auc_before

TrainFn = Callable[[dict[str, Any], int], Mapping[str, Any]]


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (numpy scalars/arrays and tensors become numbers/lists)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "detach") and hasattr(value, "tolist"):  # a torch tensor, without importing torch
        return value.detach().cpu().tolist()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(
        f"Cannot store {value!r} (type {type(value).__name__}) in a result: expected numbers, strings, "
        "lists or dicts of them. Convert it (e.g. float(x), x.tolist()) before returning it."
    )


def _config_dict(config: str | BookConfig) -> dict[str, Any]:
    cfg = get_config(config) if isinstance(config, str) else config
    if not isinstance(cfg, BookConfig):
        raise TypeError(
            f"config={config!r} is not allowed: expected a config name such as 'cpu-tiny' or a "
            "BookConfig from ftutils.config.get_config."
        )
    return _jsonable(dataclasses.asdict(cfg))


def _library_versions() -> dict[str, str]:
    """The versions a cached result depends on: another torch or transformers trains differently."""
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}


def settings_hash(settings: Mapping[str, Any], seed: int, *, config: str | BookConfig = "cpu-tiny",
                  experiment: str = "") -> str:
    """A stable 16-hex-digit key for one run: same inputs, same key, on any machine and Python.

    Key order in ``settings`` does not matter; ``1`` and ``1.0`` are different settings. The versions of
    torch and transformers are part of the key, so a result computed under other versions is not reused.

    Example:
        >>> settings_hash({"a": 1, "b": 2}, 0) == settings_hash({"b": 2, "a": 1}, 0)
        True
        >>> settings_hash({"a": 1}, 0) == settings_hash({"a": 1}, 1)
        False
    """
    payload = {
        "format": CACHE_FORMAT,
        "libraries": _library_versions(),
        "experiment": experiment,
        "config": _config_dict(config),
        "settings": _jsonable(dict(settings)),
        "seed": int(seed),
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def results_dir(config: str | BookConfig = "cpu-tiny", root: str | os.PathLike | None = None) -> Path:
    """The folder holding the cached runs of one configuration.

    Example:
        >>> results_dir("gpu", root="/tmp/x").as_posix()
        '/tmp/x/results/gpu'
    """
    name = config if isinstance(config, str) else config.name
    base = Path(root) if root is not None else assets.cache_dir()
    return base / "results" / name


def _write_atomic(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)  # a crash never leaves a half-written file under the final name
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: Path, key: str) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # missing or damaged: train again
    if record.get("format") != CACHE_FORMAT or record.get("key") != key:
        return None
    return record


def run_grid(
    settings: Sequence[Mapping[str, Any]],
    seeds: Iterable[int] | int,
    train_fn: TrainFn,
    *,
    config: str | BookConfig = "cpu-tiny",
    experiment: str = "",
    root: str | os.PathLike | None = None,
    refresh: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Run ``train_fn(settings, seed)`` for every settings dict and seed, reusing cached results.

    Args:
        settings: the grid, one dict of JSON-able values per point (e.g. ``{"kind": "l2sp", "strength": 1}``).
            Every dict's keys become columns of the result.
        seeds: the seeds to repeat each point with, or an int ``n`` meaning ``range(n)``.
        train_fn: trains once and returns a mapping of results. Scalars become columns; lists and dicts
            (histories, per-layer distances) become object columns. It must not return the keys
            ``seed``, ``cached``, ``seconds`` or any settings key.
        config: the configuration name or object the runs used; its *values* are part of the cache key,
            its name is the cache folder.
        experiment: a name that keeps two experiments with equal settings apart (e.g. ``"ch03-sweep"``).
        root: the cache root (default :func:`ftutils.assets.cache_dir`); the files go under
            ``root/results/<config name>/``.
        refresh: train again even when a cached result exists (and overwrite it).
        progress: print one line per run (what ran, how long, or that it came from the cache).

    Returns:
        One row per (settings, seed) in grid order, seeds inner, with the settings columns, ``seed``,
        the results, ``seconds`` (training time when it was first run) and ``cached`` (True if read back).

    Example:
        >>> import tempfile
        >>> calls = []
        >>> def fn(s, seed):
        ...     calls.append(seed)
        ...     return {"loss": s["lr"] * seed}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = run_grid([{"lr": 0.1}], 2, fn, root=tmp, progress=False)
        ...     df = run_grid([{"lr": 0.1}], 2, fn, root=tmp, progress=False)
        >>> len(calls), df["cached"].tolist()
        (2, [True, True])
    """
    seeds = list(range(seeds)) if isinstance(seeds, int) and not isinstance(seeds, bool) else list(seeds)
    if not seeds or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"seeds={seeds!r} is not allowed: expected a positive int n or a non-empty list of ints.")
    settings = [dict(s) for s in settings]
    if not settings:
        raise ValueError("settings=[] is not allowed: expected at least one settings dict, e.g. [{}].")
    reserved = {"seed", "cached", "seconds"}
    for s in settings:
        clash = reserved & set(s)
        if clash:
            raise ValueError(
                f"Settings {s!r} use the reserved key(s) {', '.join(sorted(clash))}: rename them "
                "(run_grid adds these columns itself)."
            )
    folder = results_dir(config, root)
    total = len(settings) * len(seeds)
    rows: list[dict[str, Any]] = []
    for s in settings:
        for seed in seeds:
            seed = int(seed)
            key = settings_hash(s, seed, config=config, experiment=experiment)
            path = folder / f"{key}.json"
            record = None if refresh else _read(path, key)
            cached = record is not None
            if record is None:
                start = time.perf_counter()
                result = train_fn(dict(s), seed)
                seconds = time.perf_counter() - start
                if not isinstance(result, Mapping):
                    raise TypeError(
                        f"train_fn returned {type(result).__name__} for settings {s!r}, seed {seed}: "
                        "expected a dict of results such as {'accuracy': 0.81}."
                    )
                clash = (reserved | set(s)) & set(result)
                if clash:
                    raise ValueError(
                        f"train_fn returned the key(s) {', '.join(sorted(clash))}, which are settings or "
                        "reserved columns: rename them in train_fn's result."
                    )
                record = {
                    "format": CACHE_FORMAT,
                    "key": key,
                    "experiment": experiment,
                    "config": _config_dict(config),
                    "settings": _jsonable(s),
                    "seed": seed,
                    "seconds": seconds,
                    "result": _jsonable(dict(result)),
                }
                _write_atomic(path, record)
            if progress:
                done = len(rows) + 1
                how = "cached" if cached else f"{record['seconds']:.1f} s"
                print(f"[{done}/{total}] {_describe(s)} seed={seed}: {how}", file=sys.stdout, flush=True)
            rows.append({**s, "seed": seed, **record["result"], "seconds": record["seconds"], "cached": cached})
    return pd.DataFrame(rows)


def _describe(settings: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in settings.items()) or "(default settings)"


def summarize(df: pd.DataFrame, by: str | Sequence[str], metric: str) -> pd.DataFrame:
    """Mean, sample standard deviation (ddof=1), count, min and max of ``metric`` per group of ``by``.

    ``std`` is NaN for a group with a single run (a spread needs two). Groups keep their order of first
    appearance, so a grid's order survives (λ stays sorted as the grid was written).

    Example:
        >>> df = pd.DataFrame({"lam": [0, 0, 1, 1], "acc": [0.7, 0.9, 0.5, 0.5]})
        >>> summarize(df, "lam", "acc").round(4).to_dict("index")
        {0: {'mean': 0.8, 'std': 0.1414, 'n': 2, 'min': 0.7, 'max': 0.9}, 1: {'mean': 0.5, 'std': 0.0, 'n': 2, 'min': 0.5, 'max': 0.5}}
    """
    by_list = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*by_list, metric] if c not in df.columns]
    if missing:
        raise KeyError(
            f"Column(s) {', '.join(map(repr, missing))} not in the results: expected some of "
            f"{', '.join(map(str, df.columns))}."
        )
    values = pd.to_numeric(df[metric], errors="coerce")
    if (values.isna() & df[metric].notna()).any():
        raise TypeError(f"Column {metric!r} holds non-numbers; summarize needs a numeric metric column.")
    grouped = values.groupby([df[c] for c in by_list], sort=False, dropna=False)
    out = pd.DataFrame({
        "mean": grouped.mean(),
        "std": grouped.std(ddof=1),
        "n": grouped.count().astype(int),
        "min": grouped.min(),
        "max": grouped.max(),
    })
    if len(by_list) == 1:
        out.index.name = by_list[0]
    return out


def mean_pm_std(summary: pd.DataFrame, digits: int = 3) -> pd.Series:
    """``"mean ± std"`` strings of a :func:`summarize` table, for a compact printed table.

    Example:
        >>> s = summarize(pd.DataFrame({"g": ["a", "a"], "m": [1.0, 2.0]}), "g", "m")
        >>> mean_pm_std(s, 2).tolist()
        ['1.50 ± 0.71']
    """
    def fmt(row: pd.Series) -> str:
        std = "n/a" if math.isnan(row["std"]) else f"{row['std']:.{digits}f}"
        return f"{row['mean']:.{digits}f} ± {std}"

    return summary.apply(fmt, axis=1)


def paired_difference(df: pd.DataFrame, by: str, a: Any, b: Any, metric: str, *,
                      pair_on: str = "seed") -> pd.Series:
    """Per-pair differences ``metric[by == a] - metric[by == b]``, matched on ``pair_on`` (the seed).

    Runs that share a seed share the data order and the head's initialisation, so the difference per
    seed removes that shared noise; its mean and spread say whether ``a`` beats ``b`` more reliably
    than two independent means could. Raises if a pair is missing or duplicated.

    Example:
        >>> df = pd.DataFrame({"lam": [0, 0, 1, 1], "seed": [0, 1, 0, 1], "acc": [0.7, 0.9, 0.75, 0.92]})
        >>> paired_difference(df, "lam", 1, 0, "acc").round(3).tolist()
        [0.05, 0.02]
    """
    for col in (by, metric, pair_on):
        if col not in df.columns:
            raise KeyError(f"Column {col!r} not in the results: expected some of {', '.join(map(str, df.columns))}.")
    sides = []
    for value in (a, b):
        part = df[df[by] == value]
        if part.empty:
            raise ValueError(f"No runs with {by}={value!r}: expected one of {sorted(df[by].unique().tolist())}.")
        if part[pair_on].duplicated().any():
            raise ValueError(
                f"Runs with {by}={value!r} repeat a {pair_on}: filter the frame to one setting per "
                f"{pair_on} before pairing (e.g. df[df.kind == 'l2sp'])."
            )
        sides.append(part.set_index(pair_on)[metric].astype(float))
    left, right = sides
    if set(left.index) != set(right.index):
        raise ValueError(
            f"{by}={a!r} and {by}={b!r} were run with different {pair_on}s "
            f"({sorted(left.index)} vs {sorted(right.index)}): pair only runs that share them."
        )
    diff = (left - right.reindex(left.index)).sort_index()
    diff.name = f"{metric}[{a}] - {metric}[{b}]"
    return diff
