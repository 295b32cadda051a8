"""Tests of ftutils.search: grid/random/TPE through Optuna, resumable storage, parallel workers, and
the fine-tuning objective on a tiny random BERT (seconds on a CPU)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import itertools
import socket
import subprocess
import sys

import numpy as np
import pytest

from ftutils import search

SPACE = {"learning_rate": ("log", 1e-5, 1e-1), "batch_size": ("choice", [8, 32])}


def test_default_grid_and_space_validation():
    grid = search.default_grid(SPACE, points=3)
    assert grid == {"learning_rate": [1e-5, 1e-3, 1e-1], "batch_size": [8, 32]}
    with pytest.raises(ValueError, match="low < high and low > 0"):
        search.default_grid({"lr": ("log", 0.0, 1.0)})
    with pytest.raises(ValueError, match=r"\('log', low, high\)"):
        search.default_grid({"lr": ("uniform", 0.0, 1.0)})
    with pytest.raises(ValueError, match="method='bayes'.*grid, random, tpe"):
        search.run_search(search.quadratic_objective, SPACE, method="bayes", n_trials=2)


def test_grid_search_visits_every_point_once():
    grid = search.default_grid(SPACE, points=3)
    seen = []

    def objective(p):
        seen.append((p["learning_rate"], p["batch_size"]))
        return search.quadratic_objective(p)

    df = search.run_search(objective, SPACE, method="grid", n_trials=10, grid=grid)
    assert len(df) == 6  # the grid is exhausted after 6 of the 10 allowed trials
    assert sorted(seen) == sorted(itertools.product(grid["learning_rate"], grid["batch_size"]))
    best = max(search.quadratic_objective({"learning_rate": lr, "batch_size": bs})
               for lr, bs in itertools.product(grid["learning_rate"], grid["batch_size"]))
    assert df["best_so_far"].iloc[-1] == df["value"].max() == pytest.approx(best)


def test_random_search_is_reproducible_and_stays_in_the_space():
    a = search.run_search(search.quadratic_objective, SPACE, method="random", n_trials=6, seed=3)
    b = search.run_search(search.quadratic_objective, SPACE, method="random", n_trials=6, seed=3)
    c = search.run_search(search.quadratic_objective, SPACE, method="random", n_trials=6, seed=4)
    assert a.equals(b) and not a.equals(c)
    assert a["learning_rate"].between(1e-5, 1e-1).all() and set(a["batch_size"]) <= {8, 32}


def test_tpe_beats_random_on_a_smooth_objective():
    space = {"learning_rate": ("log", 1e-6, 1.0)}
    best = {}
    for method in ("random", "tpe"):
        values = [search.run_search(search.quadratic_objective, space, method=method, n_trials=20, seed=s)["value"].max()
                  for s in range(3)]
        best[method] = np.mean(values)
    assert best["tpe"] > best["random"], best
    assert best["tpe"] > -0.05  # within ~0.2 decades of the optimum


def _counted_quadratic():
    """The quadratic objective and the list of the parameters of every call it gets."""
    calls = []

    def objective(p):
        calls.append(p)
        return search.quadratic_objective(p)

    return calls, objective


def test_stored_study_resumes_without_repeating_trials(tmp_path):
    calls, objective = _counted_quadratic()

    storage = tmp_path / "study.journal"
    first = search.run_search(objective, SPACE, method="tpe", n_trials=3, storage=storage, study_name="s")
    again = search.run_search(objective, SPACE, method="tpe", n_trials=5, storage=storage, study_name="s")
    assert len(first) == 3 and len(again) == 5 and len(calls) == 5
    assert again.iloc[:3].equals(first)
    # asking for no more trials than stored runs nothing
    search.run_search(objective, SPACE, method="tpe", n_trials=4, storage=storage, study_name="s")
    assert len(calls) == 5


def test_parallel_workers_fill_one_study(tmp_path):
    storage = tmp_path / "study.journal"
    procs = search.launch_workers(2, storage=storage, study_name="par", method="random", space=SPACE, spec={},
                                  n_trials=6, objective="quadratic", timeout=120)
    pids = {p.stdout.split()[2] for p in procs}
    assert len(pids) == 2
    df = search.trials_frame(search.open_study("random", SPACE, storage=storage, study_name="par"))
    assert len(df) == 6  # the budget: a worker that would start a seventh trial stops instead
    assert df["trial"].tolist() == list(range(len(df)))


def test_a_trial_running_elsewhere_counts_toward_the_budget_and_a_dead_one_does_not(tmp_path):
    """Chapter 6's TPE once ran 7 trials on a budget of 6: two workers both started the last one."""
    import optuna

    calls, objective = _counted_quadratic()

    storage = tmp_path / "study.journal"
    search.run_search(objective, SPACE, method="random", n_trials=5, storage=storage, study_name="s")
    study = search.open_study("random", SPACE, storage=storage, study_name="s")
    elsewhere = study.ask()  # trial 5, running in a live process (this one)
    elsewhere.set_user_attr("ftutils_worker", f"{socket.gethostname()}:{os.getpid()}")
    df = search.run_search(objective, SPACE, method="random", n_trials=6, storage=storage, study_name="s")
    assert len(calls) == 5 and len(df) == 5  # the sixth trial is the one running elsewhere: none started here
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states.count(optuna.trial.TrialState.PRUNED) == 1
    study.tell(elsewhere, 0.0)

    # A trial left RUNNING by a process that was killed does not hold up a resumed search.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = study.ask()
    stale.set_user_attr("ftutils_worker", f"{socket.gethostname()}:{int(gone.stdout)}")
    df = search.run_search(objective, SPACE, method="random", n_trials=7, storage=storage, study_name="s")
    assert len(df) == 7 and len(calls) == 6


def test_best_so_far_minimizing():
    assert search.best_so_far([3, 1, 2], maximize=False) == [3, 1, 1]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A 1-layer, hidden-16 BERT with MiniLM's tokenizer, saved as a folder models.load reads."""
    import torch
    import transformers

    from ftutils import models

    _, tokenizer = models.load("minilm", "sequence-classification", num_labels=2)
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    folder = tmp_path_factory.mktemp("tiny-bert")
    transformers.BertModel(cfg).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_train_classifier_objective_and_its_cache(tiny_model_dir, tmp_path, monkeypatch):
    spec = {"model": tiny_model_dir, "dataset": "rotten_tomatoes", "n_train": 48, "n_eval": 24, "max_length": 16,
            "seed": 0, "epochs": 1, "batch_size": 16}
    out = search.train_classifier({"learning_rate": 1e-3, "warmup": 0.1, "l2sp": 0.01}, spec)
    assert out["steps"] == 3 and 0.0 <= out["accuracy"] <= 1.0 and out["loss"] > 0
    with pytest.raises(ValueError, match="Unknown parameter.*lr"):
        search.train_classifier({"lr": 1e-3}, spec)
    calls = []
    real = search.train_classifier
    monkeypatch.setattr(search, "train_classifier", lambda p, s: calls.append(p) or real(p, s))
    objective = search.cached_objective(spec, experiment="test", root=tmp_path)
    a = objective({"learning_rate": 1e-3, "batch_size": 8})
    b = objective({"learning_rate": 1e-3, "batch_size": 8})
    assert a == b and len(calls) == 1  # the second call is read from the cache
    objective({"learning_rate": 1e-3, "batch_size": 16})
    assert len(calls) == 2
    # a seed parameter is a new training seed (a new result), and spec["seed"] is the default one
    objective({"learning_rate": 1e-3, "batch_size": 16, "seed": 1})
    assert len(calls) == 3 and calls[-1]["seed"] == 1
    objective({"learning_rate": 1e-3, "batch_size": 16, "seed": 0})
    assert len(calls) == 3


def test_train_classifier_builds_the_head_the_spec_asks_for(tiny_model_dir, monkeypatch):
    from ftutils import models

    built = []
    real_load = models.load

    def recording_load(*args, **kwargs):
        model, tokenizer = real_load(*args, **kwargs)
        built.append(model)
        return model, tokenizer

    monkeypatch.setattr(models, "load", recording_load)
    spec = {"model": tiny_model_dir, "dataset": "rotten_tomatoes", "n_train": 32, "n_eval": 16, "max_length": 16,
            "seed": 0, "epochs": 1, "batch_size": 16, "pooling": "mean"}
    out = search.train_classifier({"learning_rate": 1e-3}, spec)
    assert out["steps"] == 2
    assert isinstance(built[-1], models.MeanPoolingClassifier)
    search.train_classifier({"learning_rate": 1e-3}, {**spec, "pooling": "model"})
    assert not isinstance(built[-1], models.MeanPoolingClassifier)
