"""Tests for ftutils.experiments: caching, stable keys, summary statistics, pairing and the exercise check."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ftutils import experiments
from ftutils.config import get_config
from ftutils.experiments import (
    mean_pm_std,
    paired_difference,
    results_dir,
    run_grid,
    settings_hash,
    summarize,
)


class CountingTrainer:
    """A fake train_fn that records its calls and returns results derived from its inputs."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict, int]] = []

    def __call__(self, settings: dict, seed: int) -> dict:
        self.calls.append((dict(settings), seed))
        return {
            "accuracy": np.float32(0.5 + settings["strength"] / 100 + seed / 1000),
            "distance_by_layer": {"encoder.layer.0": settings["strength"] * 2.0},
            "history": [{"step": 1, "loss": np.float64(0.7)}],
        }


GRID = [{"kind": "l2sp", "strength": 1.0}, {"kind": "l2sp", "strength": 10.0}]


def test_second_call_reads_the_cache_and_does_not_train(tmp_path):
    train = CountingTrainer()
    first = run_grid(GRID, [0, 1, 2], train, root=tmp_path, experiment="t", progress=False)
    assert len(train.calls) == 6
    assert not first["cached"].any()
    second = run_grid(GRID, [0, 1, 2], train, root=tmp_path, experiment="t", progress=False)
    assert len(train.calls) == 6, "the second call must not train"
    assert second["cached"].all()
    cols = ["kind", "strength", "seed", "accuracy"]
    pd.testing.assert_frame_equal(first[cols], second[cols])
    assert second.loc[0, "distance_by_layer"] == {"encoder.layer.0": 2.0}
    assert second.loc[0, "history"] == [{"step": 1, "loss": 0.7}]


def test_only_missing_runs_are_trained(tmp_path):
    train = CountingTrainer()
    run_grid(GRID[:1], [0, 1], train, root=tmp_path, progress=False)
    df = run_grid(GRID, [0, 1, 2], train, root=tmp_path, progress=False)
    assert len(train.calls) == 2 + 4
    assert df["cached"].tolist() == [True, True, False, False, False, False]
    assert df[["strength", "seed"]].values.tolist() == [
        [1.0, 0], [1.0, 1], [1.0, 2], [10.0, 0], [10.0, 1], [10.0, 2]
    ]


def test_files_go_under_results_config_hash(tmp_path):
    train = CountingTrainer()
    run_grid(GRID[:1], [3], train, config="gpu", experiment="e", root=tmp_path, progress=False)
    key = settings_hash(GRID[0], 3, config="gpu", experiment="e")
    path = tmp_path / "results" / "gpu" / f"{key}.json"
    assert path.exists()
    record = json.loads(path.read_text())
    assert record["settings"] == GRID[0] and record["seed"] == 3
    assert record["result"]["accuracy"] == pytest.approx(0.513, abs=1e-6)
    assert results_dir("gpu", root=tmp_path) == path.parent


def test_default_root_is_the_asset_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FTUTILS_CACHE", str(tmp_path))
    assert results_dir("cpu-tiny") == tmp_path / "results" / "cpu-tiny"


def test_refresh_retrains(tmp_path):
    train = CountingTrainer()
    run_grid(GRID[:1], [0], train, root=tmp_path, progress=False)
    df = run_grid(GRID[:1], [0], train, root=tmp_path, refresh=True, progress=False)
    assert len(train.calls) == 2 and not df["cached"].any()


def test_damaged_cache_file_is_retrained(tmp_path):
    train = CountingTrainer()
    run_grid(GRID[:1], [0], train, root=tmp_path, progress=False)
    (path,) = (tmp_path / "results" / "cpu-tiny").glob("*.json")
    path.write_text("{not json")
    df = run_grid(GRID[:1], [0], train, root=tmp_path, progress=False)
    assert len(train.calls) == 2 and not df["cached"].any()
    assert json.loads(path.read_text())["seed"] == 0


def test_failed_training_leaves_no_cache_file(tmp_path):
    def boom(settings, seed):
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        run_grid(GRID[:1], [0], boom, root=tmp_path, progress=False)
    assert not list(tmp_path.rglob("*.json"))


def test_hash_is_stable_across_processes_and_key_order():
    code = (
        "from ftutils.experiments import settings_hash;"
        "print(settings_hash({'strength': 1.0, 'kind': 'l2sp'}, 2, config='cpu-tiny', experiment='x'))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = settings_hash({"kind": "l2sp", "strength": 1.0}, 2, config="cpu-tiny", experiment="x")
    assert other.stdout.strip() == here
    assert len(here) == 16 and int(here, 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        dict(settings={"kind": "l2sp", "strength": 2.0}),
        dict(seed=1),
        dict(experiment="other"),
        dict(config="gpu"),
        dict(config=get_config("cpu-tiny", n_train=256)),
    ],
)
def test_hash_changes_with_every_input(change):
    base = dict(settings={"kind": "l2sp", "strength": 1.0}, seed=0, config="cpu-tiny", experiment="x")
    new = {**base, **change}
    assert settings_hash(**base) != settings_hash(**new)


def test_overridden_config_is_a_different_cache_entry(tmp_path):
    train = CountingTrainer()
    run_grid(GRID[:1], [0], train, config=get_config("cpu-tiny"), root=tmp_path, progress=False)
    run_grid(GRID[:1], [0], train, config=get_config("cpu-tiny", epochs=1), root=tmp_path, progress=False)
    assert len(train.calls) == 2


def test_bad_inputs_name_the_value(tmp_path):
    train = CountingTrainer()
    with pytest.raises(ValueError, match="seeds=\\[\\]"):
        run_grid(GRID, [], train, root=tmp_path)
    with pytest.raises(ValueError, match="reserved key"):
        run_grid([{"seed": 1, "strength": 1.0}], [0], train, root=tmp_path)
    with pytest.raises(TypeError, match="expected a dict"):
        run_grid(GRID, [0], lambda s, seed: 0.5, root=tmp_path)
    with pytest.raises(TypeError, match="Cannot store"):
        run_grid(GRID, [0], lambda s, seed: {"model": object()}, root=tmp_path)
    with pytest.raises(ValueError, match="tpu"):
        run_grid(GRID, [0], train, config="tpu", root=tmp_path)


def test_progress_lines(tmp_path, capsys):
    train = CountingTrainer()
    run_grid(GRID[:1], 2, train, root=tmp_path)
    run_grid(GRID[:1], 2, train, root=tmp_path)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("[1/2] kind=l2sp strength=1.0 seed=0:")
    assert lines[-1] == "[2/2] kind=l2sp strength=1.0 seed=1: cached"


def test_summarize_math_on_a_hand_made_frame():
    df = pd.DataFrame({
        "kind": ["l2sp", "l2sp", "l2sp", "wd", "wd", "none"],
        "strength": [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        "acc": [0.6, 0.8, 0.7, 0.5, 0.9, 0.75],
    })
    out = summarize(df, by=["kind", "strength"], metric="acc")
    assert list(out.index) == [("l2sp", 1.0), ("wd", 1.0), ("none", 0.0)], "grid order is kept"
    l2sp = out.loc[("l2sp", 1.0)]
    assert l2sp["mean"] == pytest.approx(0.7)
    assert l2sp["std"] == pytest.approx(0.1)  # sample std of 0.6, 0.8, 0.7
    assert l2sp["n"] == 3 and l2sp["min"] == 0.6 and l2sp["max"] == 0.8
    wd = out.loc[("wd", 1.0)]
    assert wd["std"] == pytest.approx(np.sqrt(0.08))
    assert np.isnan(out.loc[("none", 0.0), "std"]), "one run has no spread"
    assert out.loc[("none", 0.0), "n"] == 1


def test_summarize_errors():
    df = pd.DataFrame({"g": [1, 2], "m": ["a", "b"]})
    with pytest.raises(KeyError, match="'missing'"):
        summarize(df, "missing", "m")
    with pytest.raises(TypeError, match="non-numbers"):
        summarize(df, "g", "m")


def test_mean_pm_std_formats_and_marks_single_runs():
    out = summarize(pd.DataFrame({"g": ["a", "a", "b"], "m": [1.0, 3.0, 5.0]}), "g", "m")
    assert mean_pm_std(out, 1).tolist() == ["2.0 ± 1.4", "5.0 ± n/a"]


def test_paired_difference_matches_by_seed():
    df = pd.DataFrame({
        "lam": [0, 0, 0, 1, 1, 1],
        "seed": [0, 1, 2, 2, 0, 1],  # shuffled seeds: pairing must follow the seed, not the row order
        "acc": [0.70, 0.80, 0.90, 0.93, 0.71, 0.85],
    })
    diff = paired_difference(df, "lam", 1, 0, "acc")
    assert diff.index.tolist() == [0, 1, 2]
    assert diff.tolist() == pytest.approx([0.01, 0.05, 0.03])


def test_paired_difference_errors():
    df = pd.DataFrame({"lam": [0, 0, 1], "seed": [0, 1, 0], "acc": [0.5, 0.6, 0.7]})
    with pytest.raises(ValueError, match="different seeds"):
        paired_difference(df, "lam", 1, 0, "acc")
    with pytest.raises(ValueError, match="No runs with lam=5"):
        paired_difference(df, "lam", 5, 0, "acc")
    dup = pd.concat([df, df])
    with pytest.raises(ValueError, match="repeat a seed"):
        paired_difference(dup, "lam", 1, 0, "acc")


def test_module_doctests():
    import doctest

    failures, _ = doctest.testmod(experiments, optionflags=doctest.ELLIPSIS)
    assert failures == 0


def test_hash_changes_with_the_library_versions(monkeypatch):
    import ftutils.experiments as ex

    before = settings_hash({"a": 1}, 0)
    monkeypatch.setattr(ex, "_library_versions", lambda: {"torch": "2.8.0", "transformers": "4.57.1"})
    assert settings_hash({"a": 1}, 0) != before
