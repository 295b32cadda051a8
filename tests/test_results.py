"""Tests of ftutils.results: headline rows, the margin check, merging and the page."""

from __future__ import annotations

import json

import pytest

from ftutils import results


def row(**changes):
    base = dict(task="t", metric="accuracy", scores=[0.7, 0.74], baseline="majority", baseline_score=0.6,
                config="cpu-tiny")
    return results.record(**{**base, **changes})


def test_record_summarises_seeds_and_appends_under_the_runner(tmp_path, monkeypatch):
    target = tmp_path / "rows.jsonl"
    monkeypatch.setenv(results.RESULTS_ENV, str(target))
    first = row()
    row(scores=0.5, task="u")
    assert (first["score"], first["spread"], first["seeds"], first["baseline_score"]) == (0.72, 0.04, 2, 0.6)
    written = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["task"] for r in written] == ["t", "u"] and written[1]["spread"] == 0.0
    assert set(results.KEYS) <= set(written[0])


def test_record_without_the_runner_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(results.RESULTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    row()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [[], [float("nan")], "0.7", [True]])
def test_record_refuses_scores_that_are_not_numbers(bad):
    with pytest.raises(ValueError, match="scores="):
        row(scores=bad)


def test_margin_must_exceed_the_spread_in_the_metrics_direction():
    assert results.margin_holds(row(scores=[0.7, 0.74], baseline_score=0.6))
    assert not results.margin_holds(row(scores=[0.6, 0.8], baseline_score=0.65))  # gain 0.05 < spread 0.2
    lower = row(metric="perplexity", scores=[10.0, 11.0], baseline_score=15.0, higher_is_better=False)
    assert results.margin_holds(lower) and not results.margin_holds(row(
        metric="perplexity", scores=[10.0, 11.0], baseline_score=8.0, higher_is_better=False))


def test_one_rule_for_clears_in_chapters_and_on_the_page():
    import numpy as np

    from ftutils import evaluation

    assert evaluation.clears is results.clears  # a chapter's `clears` column and the page cannot disagree
    recorded = row(scores=[np.float32(0.7), np.float32(0.74)], baseline_score=np.float32(0.6))  # NumPy scalars
    assert recorded["clears"] is True and results.margin_holds(recorded)
    assert results.clears([0.7, 0.74], np.float64(0.6)) and results.clears([0.7, 0.74], np.float32(0.6))
    # A row written before rows carried "clears" is judged on its rounded numbers, by the same rule.
    old = {k: v for k, v in row(scores=[0.6, 0.8], baseline_score=0.65).items() if k != "clears"}
    assert not results.margin_holds(old) and results.margin_holds({**old, "baseline_score": 0.45})


def test_merge_replaces_one_chapters_rows_and_page_lists_them(tmp_path):
    file = tmp_path / "results.json"
    results.merge(file, "03", [{**row(task="old"), "chapter": "03"}])
    results.merge(file, "02", [{**row(task="a"), "chapter": "02"}])
    every = results.merge(file, "03", [{**row(task="new", note="why"), "chapter": "03"}])
    assert [(r["chapter"], r["task"]) for r in every] == [("02", "a"), ("03", "new")]
    text = results.page(every, "cpu-tiny")
    assert "| 03 | new | accuracy | 0.720 | 0.040 | 2 | majority | 0.600 | yes | – |" in text
    assert "- 03, new: why" in text
