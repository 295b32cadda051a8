"""Hyperparameter search on a fixed budget: grid, random search and Optuna's TPE through one API.

A *search space* is a dict of ``name -> spec``, each spec one of

* ``("log", low, high)`` -- a float drawn on a log scale (learning rates),
* ``("float", low, high)`` / ``("int", low, high)`` -- uniform,
* ``("choice", [v1, v2, ...])`` -- one of a list (batch sizes, schedules).

:func:`run_search` runs ``objective(params) -> float`` for ``n_trials`` trials with the sampler that
``method`` names ("grid", "random", "tpe"); all three are Optuna samplers, so the three searches differ
only in how they pick the next point. With ``storage`` (a file path) the study lives in an Optuna
journal file: a killed search resumes where it stopped, and several processes
(:func:`launch_workers`, or ``python -m ftutils.search worker ...`` on other machines that see the
file) add trials to the same study in parallel.

:func:`train_classifier` is the book's objective: fine-tune an encoder on a text-classification set
with :func:`ftutils.recipes.fine_tune` and return the validation metrics; :func:`cached_objective` wraps
it in the on-disk result cache of :mod:`ftutils.experiments`, so a rerun of a chapter trains nothing.

Example:
    >>> df = run_search(lambda p: -(p["x"] - 1) ** 2, {"x": ("float", -3.0, 3.0)}, method="random",
    ...                 n_trials=5, seed=0)
    >>> list(df.columns)
    ['trial', 'x', 'value', 'best_so_far']
    >>> bool((df["best_so_far"].diff().dropna() >= 0).all())
    True
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "METHODS",
    "default_grid",
    "suggest",
    "open_study",
    "run_search",
    "trials_frame",
    "launch_workers",
    "TUNABLE",
    "train_classifier",
    "cached_objective",
    "best_so_far",
    "quadratic_objective",
]

METHODS = ("grid", "random", "tpe")
_OWNER = "ftutils_worker"  # user attribute of a stored trial: "host:pid" of the process that runs it
_KINDS = ("log", "float", "int", "choice")


def _check_space(space: Mapping[str, Sequence[Any]]) -> None:
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"space={space!r} is not allowed: expected a non-empty dict such as "
                         "{'learning_rate': ('log', 1e-5, 1e-3)}.")
    for name, spec in space.items():
        if not isinstance(spec, (tuple, list)) or not spec or spec[0] not in _KINDS:
            raise ValueError(f"space[{name!r}]={spec!r} is not allowed: expected ('log', low, high), "
                             "('float', low, high), ('int', low, high) or ('choice', [values]).")
        if spec[0] == "choice":
            if len(spec) != 2 or not list(spec[1]):
                raise ValueError(f"space[{name!r}]={spec!r}: a choice needs a non-empty list, e.g. ('choice', [8, 16]).")
        elif len(spec) != 3 or not spec[1] < spec[2] or (spec[0] == "log" and spec[1] <= 0):
            raise ValueError(f"space[{name!r}]={spec!r}: expected low < high" + (" and low > 0." if spec[0] == "log" else "."))


def default_grid(space: Mapping[str, Sequence[Any]], points: int = 3) -> dict[str, list[Any]]:
    """A grid over ``space``: every choice, and ``points`` values per numeric axis (log-spaced for "log").

    Example:
        >>> default_grid({"lr": ("log", 1e-5, 1e-3), "bs": ("choice", [8, 32])}, points=3)
        {'lr': [1e-05, 0.0001, 0.001], 'bs': [8, 32]}
    """
    _check_space(space)
    grid: dict[str, list[Any]] = {}
    for name, spec in space.items():
        kind = spec[0]
        if kind == "choice":
            grid[name] = list(spec[1])
        elif kind == "log":
            grid[name] = [float(f"{v:.6g}") for v in np.geomspace(spec[1], spec[2], points)]
        elif kind == "int":
            grid[name] = sorted({int(round(v)) for v in np.linspace(spec[1], spec[2], points)})
        else:
            grid[name] = [float(f"{v:.6g}") for v in np.linspace(spec[1], spec[2], points)]
    return grid


def suggest(trial: Any, space: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """Ask an Optuna ``trial`` for one value per entry of ``space``; returns the parameters."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        kind = spec[0]
        if kind == "choice":
            params[name] = trial.suggest_categorical(name, list(spec[1]))
        elif kind == "int":
            params[name] = trial.suggest_int(name, int(spec[1]), int(spec[2]))
        else:
            params[name] = trial.suggest_float(name, float(spec[1]), float(spec[2]), log=kind == "log")
    return params


def _storage(storage: str | os.PathLike | None) -> Any:
    if storage is None:
        return None
    import optuna

    text = str(storage)
    if "://" in text:  # an Optuna storage URL such as sqlite:///study.db
        return text
    Path(text).parent.mkdir(parents=True, exist_ok=True)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(text))


def _sampler(method: str, seed: int, space: Mapping[str, Sequence[Any]], grid: Mapping[str, list] | None) -> Any:
    import optuna

    if method == "grid":
        return optuna.samplers.GridSampler(dict(grid or default_grid(space)), seed=seed)
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if method == "tpe":
        # few startup trials: a budget of 6-8 trials leaves TPE something to model
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=3, multivariate=True)
    raise ValueError(f"method={method!r} is not allowed: expected one of {', '.join(METHODS)}.")


def open_study(
    method: str,
    space: Mapping[str, Sequence[Any]],
    *,
    storage: str | os.PathLike | None = None,
    study_name: str | None = None,
    seed: int = 0,
    grid: Mapping[str, list] | None = None,
    direction: str = "maximize",
) -> Any:
    """Create the Optuna study for ``method``, or load it from ``storage`` if it already exists.

    ``storage``: ``None`` (in memory), a file path (an Optuna journal file, safe for several processes)
    or an Optuna storage URL (``sqlite:///study.db``).
    """
    import optuna

    _check_space(space)
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not allowed: expected one of {', '.join(METHODS)}.")
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction={direction!r} is not allowed: expected 'maximize' or 'minimize'.")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=study_name or f"search-{method}", storage=_storage(storage),
        sampler=_sampler(method, seed, space, grid), direction=direction, load_if_exists=storage is not None,
    )


def trials_frame(study: Any) -> pd.DataFrame:
    """One row per finished trial, in order: ``trial``, the parameters, ``value``, ``best_so_far``."""
    import optuna

    trials = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    trials.sort(key=lambda t: t.number)
    names = list(dict.fromkeys(k for t in trials for k in t.params))
    rows = [{"trial": t.number, **{n: t.params.get(n) for n in names}, "value": t.value} for t in trials]
    df = pd.DataFrame(rows, columns=["trial", *names, "value"])
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    df["best_so_far"] = best_so_far(df["value"].tolist(), maximize=maximize)
    return df


def run_search(
    objective: Callable[[dict[str, Any]], float],
    space: Mapping[str, Sequence[Any]],
    *,
    method: str,
    n_trials: int,
    seed: int = 0,
    grid: Mapping[str, list] | None = None,
    storage: str | os.PathLike | None = None,
    study_name: str | None = None,
    direction: str = "maximize",
) -> pd.DataFrame:
    """Run ``objective`` on ``n_trials`` points of ``space`` picked by ``method``; see the module docstring.

    With ``storage``, trials already finished in the stored study count toward ``n_trials``: calling
    again after an interruption runs only the missing ones (resume). A grid stops early when it has
    been covered. Returns :func:`trials_frame` of the study.
    """
    import optuna

    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        raise ValueError(f"n_trials={n_trials!r} is not allowed: expected a positive integer.")
    study = open_study(method, space, storage=storage, study_name=study_name, seed=seed, grid=grid,
                       direction=direction)
    done = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False))

    def run_trial(trial: Any) -> float:
        if storage is not None and _over_budget(trial, n_trials):
            trial.study.stop()  # another process is already running the last trial of the budget
            raise optuna.TrialPruned(f"the study already has {n_trials} finished or running trials")
        return float(objective(suggest(trial, space)))

    if done < n_trials:
        study.optimize(run_trial, n_trials=n_trials - done,
                       callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=(optuna.trial.TrialState.COMPLETE,))])
    return trials_frame(study)


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(trial: Any) -> bool:
    """Whether a RUNNING trial's process still runs (unknown owner or another host: assume it does)."""
    host, _, pid = str(trial.user_attrs.get(_OWNER, "")).rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _over_budget(trial: Any, n_trials: int) -> bool:
    """True if ``n_trials`` trials numbered before ``trial`` are finished or running in a live process.

    Several processes share a stored study (:func:`launch_workers`). Counting only finished trials,
    two workers that both see ``n_trials - 1`` of them each start one more, and the study ends with
    ``n_trials + 1``. Trial numbers are handed out by the storage one at a time, so the first
    ``n_trials`` of them run and a later one is surplus; a trial left RUNNING by a process that was
    killed (on this machine) does not count, so a resumed search replaces it.
    """
    import optuna

    trial.set_user_attr(_OWNER, _owner())
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
    earlier = [t for t in trial.study.get_trials(deepcopy=False, states=states) if t.number < trial.number
               and (t.state == optuna.trial.TrialState.COMPLETE or _alive(t))]
    return len(earlier) >= n_trials


def best_so_far(values: Sequence[float], *, maximize: bool = True) -> list[float]:
    """The best value among the first 1, 2, ... trials (the curve a search is judged by).

    Example:
        >>> best_so_far([0.5, 0.7, 0.6, 0.8])
        [0.5, 0.7, 0.7, 0.8]
    """
    out: list[float] = []
    for v in values:
        v = float(v)
        out.append(v if not out else (max(out[-1], v) if maximize else min(out[-1], v)))
    return out


# ---------------------------------------------------------------------------------------------------
# The book's objective: fine-tune an encoder classifier and return validation metrics

#: TrainingConfig fields a search may set through ``params`` (besides ``l2sp``, the L2-SP strength).
TUNABLE = ("learning_rate", "batch_size", "epochs", "max_steps", "warmup", "lr_scheduler", "layer_decay",
           "head_lr_multiplier", "optimizer", "weight_decay", "momentum", "max_grad_norm", "seed")


@functools.lru_cache(maxsize=4)
def _tokenized(model: str, dataset: str, n_train: int | None, n_eval: int | None, max_length: int, seed: int):
    from ftutils import batching, data, models

    dsd = data.load(dataset, n_train=n_train, n_validation=n_eval, n_test=n_eval, seed=seed)
    labels = dsd["train"].features["label"].names
    _, tokenizer = models.load(model, "sequence-classification", labels=labels)
    return batching.tokenize_classification(dsd, tokenizer, max_length), tokenizer, labels


def train_classifier(params: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """Fine-tune ``spec["model"]`` on ``spec["dataset"]`` with ``params`` and return validation metrics.

    ``spec``: ``model``, ``dataset``, ``n_train``, ``n_eval``, ``max_length``, ``seed``, optionally
    ``pooling`` (see :func:`ftutils.models.load`; default ``"model"``) and any
    :class:`ftutils.trainer.TrainingConfig` field as the default for every trial (e.g. ``epochs``,
    ``batch_size``, ``learning_rate``, ``mixed_precision``). ``params``: the trial's values, names from
    :data:`TUNABLE`, plus ``l2sp`` (L2-SP strength λ, 0 = off). Returns ``accuracy``, ``loss``,
    ``steps``, ``train_seconds`` and the training ``history``.
    """
    from ftutils import models, recipes, regularizers, trainer

    unknown = sorted(set(params) - set(TUNABLE) - {"l2sp"})
    if unknown:
        raise ValueError(f"Unknown parameter(s) {', '.join(unknown)}: expected some of {', '.join(TUNABLE)}, l2sp.")
    spec = dict(spec)
    required = ("model", "dataset", "n_train", "n_eval", "max_length", "seed")
    missing = [k for k in required if k not in spec]
    if missing:
        raise ValueError(f"spec lacks {', '.join(missing)}: expected the keys {', '.join(required)}.")
    tokenized, tokenizer, labels = _tokenized(spec["model"], spec["dataset"], spec["n_train"], spec["n_eval"],
                                              int(spec["max_length"]), int(spec["seed"]))
    l2sp = float(params.get("l2sp", spec.get("l2sp", 0.0)))
    fields = {k: v for k, v in spec.items() if k not in required and k not in ("l2sp", "pooling")}
    fields.update({k: v for k, v in params.items() if k != "l2sp"})
    fields.setdefault("seed", int(spec["seed"]))
    fields.setdefault("progress", False)
    fields.setdefault("eval_strategy", "no")
    config = trainer.TrainingConfig(**fields)

    def make_model(seed: int) -> Any:
        return models.load(spec["model"], "sequence-classification", labels=labels,
                           pooling=spec.get("pooling", "model"), seed=seed)[0]

    result = recipes.fine_tune(
        make_model, tokenized["train"], tokenized["validation"], config=config, tokenizer=tokenizer,
        regularizer=(lambda model: regularizers.make_regularizer("l2sp", model, l2sp)) if l2sp > 0 else None,
    ).result
    return {"accuracy": result.final_metrics["eval_accuracy"], "loss": result.final_metrics["eval_loss"],
            "steps": result.global_step, "train_seconds": result.train_runtime_s, "history": result.history}


def cached_objective(
    spec: Mapping[str, Any], *, base: Mapping[str, Any] | None = None, config: str = "cpu-tiny",
    metric: str = "accuracy", experiment: str = "search", root: str | os.PathLike | None = None,
) -> Callable[[dict[str, Any]], float]:
    """``params -> metric`` of :func:`train_classifier` on ``{**base, **params}``, cached on disk with
    :func:`ftutils.experiments.run_grid`.

    The cache key holds ``experiment``, the whole ``spec`` and the merged parameters, so equal trials of
    two searches, of parallel workers, or of two runs of a chapter train once. A ``seed`` parameter
    changes the training seed only (``spec["seed"]``, its default, also chooses the data subset).
    """
    from ftutils import experiments

    spec = dict(spec)
    base = dict(base or {})
    name = f"{experiment}:{json.dumps(spec, sort_keys=True)}"

    def objective(params: dict[str, Any]) -> float:
        params = {**base, **params}
        # A trial's "seed" is the training seed (head init, batch order, dropout); run_grid keys results
        # by seed itself, so it travels there, and spec["seed"] (which also draws the data) stays put.
        seed = int(params.pop("seed", spec["seed"]))
        df = experiments.run_grid([params], [seed], lambda s, sd: train_classifier({**s, "seed": sd}, spec),
                                  config=config, experiment=name, root=root, progress=False)
        return float(df[metric].iloc[0])

    return objective


def quadratic_objective(params: Mapping[str, Any]) -> float:
    """A cheap objective for tests and demos: ``-sum((log10(v) + 3)^2)`` over numeric values (best at 1e-3).

    Example:
        >>> quadratic_objective({"learning_rate": 1e-3})
        -0.0
    """
    return -float(sum((np.log10(float(v)) + 3) ** 2 for v in params.values() if isinstance(v, (int, float))))


# ---------------------------------------------------------------------------------------------------
# Parallel workers


def launch_workers(
    n_workers: int,
    *,
    storage: str | os.PathLike,
    study_name: str,
    method: str,
    space: Mapping[str, Sequence[Any]],
    spec: Mapping[str, Any],
    n_trials: int,
    seed: int = 0,
    config: str = "cpu-tiny",
    experiment: str = "search",
    base: Mapping[str, Any] | None = None,
    objective: str = "finetune",
    timeout: float = 900,
) -> list[subprocess.CompletedProcess]:
    """Start ``n_workers`` processes that add trials to one stored study until it holds ``n_trials``.

    Each runs ``python -m ftutils.search worker``, which opens the study from ``storage`` (a journal
    file: processes append to it under a file lock) and calls :func:`run_search` with
    :func:`cached_objective` (``objective="finetune"``) or :func:`quadratic_objective`
    (``objective="quadratic"``, for tests). On a cluster, start the same command on each machine instead.
    Returns the finished processes (their ``stdout``/``stderr`` hold the workers' output).
    """
    if not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers={n_workers!r} is not allowed: expected a positive integer.")
    cmd = [sys.executable, "-m", "ftutils.search", "worker", "--storage", str(storage), "--study", study_name,
           "--method", method, "--space", json.dumps(space), "--spec", json.dumps(dict(spec)),
           "--n-trials", str(n_trials), "--config", config, "--experiment", experiment,
           "--objective", objective, "--base", json.dumps(dict(base or {}))]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    procs = [subprocess.Popen([*cmd, "--seed", str(seed + i)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(n_workers)]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    failed = [p for p in done if p.returncode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} worker(s) failed; the first said:\n{failed[0].stderr[-2000:]}")
    return done


def _main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ftutils.search")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="add trials to a stored study until it holds --n-trials")
    w.add_argument("--storage", required=True)
    w.add_argument("--study", required=True)
    w.add_argument("--method", choices=METHODS, required=True)
    w.add_argument("--space", required=True, help="JSON dict name -> spec")
    w.add_argument("--spec", required=True, help="JSON dict for train_classifier")
    w.add_argument("--n-trials", type=int, required=True)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--config", default="cpu-tiny")
    w.add_argument("--experiment", default="search")
    w.add_argument("--objective", choices=("finetune", "quadratic"), default="finetune")
    w.add_argument("--base", default="{}", help="JSON dict of parameters every trial starts from")
    args = parser.parse_args(argv)
    space = {k: tuple(v) for k, v in json.loads(args.space).items()}
    if args.objective == "quadratic":
        objective = quadratic_objective
    else:
        objective = cached_objective(json.loads(args.spec), base=json.loads(args.base), config=args.config,
                                     experiment=args.experiment)
    df = run_search(objective, space, method=args.method, n_trials=args.n_trials, seed=args.seed,
                    storage=args.storage, study_name=args.study)
    print(f"worker pid {os.getpid()}: study {args.study!r} now holds {len(df)} finished trials")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
