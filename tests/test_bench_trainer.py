"""Tests of benchmarks/bench_trainer.py: its helpers, and the --quick run end to end (real MiniLM, seconds)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import bench_trainer as bench  # noqa: E402


def run(reached: dict[float, float], train_s: float, samples: int = 1000) -> dict:
    """A run summary as run_ours/run_hf return it: the training seconds at which each target was
    reached (samples: 10 per second), and the whole run's seconds and samples."""
    return {"reached": {t: {"train_s": s, "samples": int(10 * s)} for t, s in reached.items()}, "train_s": train_s,
            "samples": samples}


def test_time_to_target_is_the_median_over_seeds_and_a_lower_bound_when_the_median_run_missed():
    three = [run({0.75: 12.0}, 30), run({0.75: 10.0}, 30), run({}, 50, samples=500)]
    assert bench.time_to(three, 0.75) == (12.0, "=", 120)  # the miss counts as 50 s: above the median
    missed = [run({0.75: 12.0}, 30), run({}, 40, samples=400), run({}, 50, samples=500)]
    assert bench.time_to(missed, 0.75) == (40, ">=", 400)
    assert bench.time_to([run({0.75: 10.0}, 30), run({0.75: 20.0}, 30)], 0.75) == (15.0, "=", 150)
    assert bench.time_to([run({0.75: 10.0}, 30), run({}, 20)], 0.75)[:2] == (15.0, ">=")


def test_speedup_is_their_time_over_ours_and_a_bound_when_a_run_missed_the_target():
    ours = [run({0.75: 10.0}, train_s=30.0)]
    assert bench.speedup(ours, [run({0.75: 25.0}, 60.0)], 0.75) == (2.5, "=")
    # they never got there within their 80 s: at least 8x
    assert bench.speedup(ours, [run({}, 80.0)], 0.75) == (8.0, ">=")
    # we never got there within our 30 s, they did in 15 s: at most 0.5x
    assert bench.speedup([run({}, 30.0)], [run({0.75: 15.0}, 60.0)], 0.75) == (0.5, "<=")
    value, kind = bench.speedup([run({}, 30.0)], [run({}, 60.0)], 0.75)
    assert kind == "n/a" and math.isnan(value)
    assert [bench.fmt_ratio(*r) for r in [(2.5, "="), (8.0, ">="), (0.5, "<="), (float("nan"), "n/a")]] == \
        ["2.50", ">=8.00", "<=0.50", "n/a"]


def test_result_line_round_trips_and_bad_lines_are_refused():
    line = "RESULT tta_vs_hf_defaults=>=2.41 tta_vs_hf_same=1.05 throughput_vs_hf_grouped=0.98"
    assert bench.parse_result(line) == {"tta_vs_hf_defaults": (">=", 2.41), "tta_vs_hf_same": ("=", 1.05),
                                        "throughput_vs_hf_grouped": ("=", 0.98)}
    with pytest.raises(ValueError, match="expected keys"):
        bench.parse_result("RESULT tta_vs_hf_defaults=1.0")
    with pytest.raises(ValueError, match="cannot read"):
        bench.parse_result("RESULT tta_vs_hf_defaults=fast tta_vs_hf_same=1 throughput_vs_hf_grouped=1")
    with pytest.raises(ValueError, match="not a RESULT"):
        bench.parse_result("tta_vs_hf_defaults=1.0")


def test_every_steps_evaluates_after_the_same_number_of_examples_whatever_the_batch():
    assert [bench.every_steps(160, b) for b in (8, 16, 32, 1000)] == [20, 10, 5, 1]


def test_target_watch_excludes_evaluation_time_and_notes_first_crossings(monkeypatch):
    accuracies = iter([0.6, 0.76, 0.74, 0.79])

    def slow_evaluate(model, data, **kw):
        time.sleep(0.3)
        return {"eval_accuracy": next(accuracies)}

    monkeypatch.setattr(bench, "evaluate", slow_evaluate)
    watch = bench.TargetWatch(validation=None, tokenizer=None, targets=[0.78, 0.75], every_steps=5)
    watch.start()
    assert [watch.due(s) for s in (4, 5, 10)] == [False, True, True]
    stops = [watch.check(None, step=5 * i, samples=80 * i) for i in (1, 2, 3, 4)]
    assert stops == [False, False, False, True]  # stop once every target is reached
    assert watch.reached[0.75]["step"] == 10 and watch.reached[0.78]["step"] == 20  # the first crossing counts
    assert watch.eval_s >= 1.2 and watch.clock() < 0.2  # four 0.3 s evaluations, none of them counted
    assert [p["samples"] for p in watch.curve] == [80, 160, 240, 320]
    assert not bench.TargetWatch(None, None, targets=[], every_steps=1).due(1)  # no target: never evaluates


@pytest.mark.slow
def test_quick_run_ends_with_one_parsable_result_line():
    start = time.perf_counter()
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    proc = subprocess.run([sys.executable, str(BENCH / "bench_trainer.py"), "--quick"], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert sum(line.startswith("RESULT") for line in lines) == 1 and lines[-1].startswith("RESULT ")
    result = bench.parse_result(lines[-1])
    assert all(kind == "n/a" or value > 0 for kind, value in result.values())
    assert "Time to accuracy" in proc.stdout and "Throughput" in proc.stdout
    assert time.perf_counter() - start < 120
