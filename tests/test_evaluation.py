"""Tests of ftutils.evaluation: intervals, seed summaries, subsets, membership inference, learning curves."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import dataclasses

import datasets
import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
import transformers

matplotlib.use("Agg")

from ftutils import evaluation as ev
from ftutils import plotting
from ftutils.metrics import accuracy
from ftutils.trainer import TrainingConfig


# --------------------------------------------------------------------------- bootstrap
def test_bootstrap_ci_matches_normal_approximation():
    rng = np.random.default_rng(1)
    refs = rng.integers(0, 2, 1000)
    preds = np.where(rng.random(1000) < 0.8, refs, 1 - refs)
    r = ev.bootstrap_ci(accuracy, preds, refs, n_resamples=2000, seed=0)
    p = r.estimate
    half = 1.96 * np.sqrt(p * (1 - p) / 1000)
    assert r.low < p < r.high
    assert abs((r.high - r.low) / 2 - half) < 0.15 * half, (r, half)
    assert abs(r.std - np.sqrt(p * (1 - p) / 1000)) < 0.15 * r.std
    assert "95% CI" in str(r)


def test_bootstrap_ci_narrows_with_more_test_examples_and_is_seeded():
    small = ev.bootstrap_ci(accuracy, [1] * 40 + [0] * 10, [1] * 50, n_resamples=500)
    large = ev.bootstrap_ci(accuracy, [1] * 400 + [0] * 100, [1] * 500, n_resamples=500)
    assert (large.high - large.low) < 0.5 * (small.high - small.low)
    again = ev.bootstrap_ci(accuracy, [1] * 40 + [0] * 10, [1] * 50, n_resamples=500)
    assert again == small


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="equal lengths"):
        ev.bootstrap_ci(accuracy, [1, 0], [1, 0, 1])
    with pytest.raises(ValueError, match="confidence"):
        ev.bootstrap_ci(accuracy, [1, 0], [1, 0], confidence=95)
    with pytest.raises(ValueError, match="n_resamples"):
        ev.bootstrap_ci(accuracy, [1, 0], [1, 0], n_resamples=3)


def test_paired_bootstrap_is_tighter_than_unpaired_for_correlated_models():
    rng = np.random.default_rng(0)
    refs = rng.integers(0, 2, 400)
    hard = rng.random(400) < 0.3  # both models fail on the same hard examples
    a = np.where(hard, 1 - refs, refs)
    b = a.copy()
    flip = np.flatnonzero(~hard)[:20]  # b makes 20 extra mistakes
    b[flip] = 1 - b[flip]
    d = ev.paired_bootstrap(accuracy, a, b, refs, n_resamples=1000)
    assert d["difference"] == pytest.approx(20 / 400)
    assert d["low"] > 0 and d["share_not_better"] == 0.0
    ca, cb = ev.bootstrap_ci(accuracy, a, refs), ev.bootstrap_ci(accuracy, b, refs)
    assert cb.high > ca.low  # the separate intervals overlap, the paired one excludes 0
    with pytest.raises(ValueError, match="same test examples"):
        ev.paired_bootstrap(accuracy, a, b[:-1], refs)


# --------------------------------------------------------------------------- seeds and subsets
def test_seed_summary_adds_range_and_t_interval():
    df = pd.DataFrame({"m": ["a"] * 5 + ["b"], "acc": [0.6, 0.7, 0.8, 0.7, 0.7, 0.9]})
    s = ev.seed_summary(df, "m", "acc")
    assert s.loc["a", "range"] == pytest.approx(0.2)
    assert s.loc["a", "sem"] == pytest.approx(np.std([0.6, 0.7, 0.8, 0.7, 0.7], ddof=1) / np.sqrt(5))
    half = s.loc["a", "ci_high"] - s.loc["a", "mean"]
    assert half == pytest.approx(2.776 * s.loc["a", "sem"], rel=1e-3)  # t(0.975, 4 dof)
    assert np.isnan(s.loc["b", "ci_low"])  # one run: no interval


def test_stratified_subset_is_nested_proportional_and_seeded():
    labels = np.array([0] * 700 + [1] * 300)
    a, b = ev.stratified_subset(labels, 50, 3), ev.stratified_subset(labels, 400, 3)
    assert set(a) <= set(b) and len(set(b)) == 400
    assert abs(labels[b].mean() - 0.3) < 0.02 and abs(labels[a].mean() - 0.3) < 0.06
    assert not np.array_equal(np.sort(a), np.sort(ev.stratified_subset(labels, 50, 4)))
    assert np.array_equal(a, ev.stratified_subset(labels, 50, 3))
    with pytest.raises(ValueError, match="pool size 1000"):
        ev.stratified_subset(labels, 1001, 0)


def test_epochs_for_guarantees_min_steps():
    for n in (10, 50, 200, 800):
        epochs = ev.epochs_for(n, 16, 25)
        assert epochs * -(-n // 16) >= 25
        assert (epochs - 1) * -(-n // 16) < 25 or epochs == 1
    assert ev.epochs_for(800, 16, 25, min_epochs=3) == 3


# --------------------------------------------------------------------------- membership inference
def test_per_example_loss_matches_torch():
    logits = torch.randn(7, 3, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    want = torch.nn.functional.cross_entropy(logits, labels, reduction="none").numpy()
    assert np.allclose(ev.per_example_loss(logits.numpy(), labels.numpy()), want, atol=1e-6)


def test_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    pos, neg = rng.integers(0, 5, 30), rng.integers(1, 6, 40)
    want = roc_auc_score([1] * 30 + [0] * 40, np.concatenate([pos, neg]))
    assert ev.auc(pos, neg) == pytest.approx(want)


def test_membership_inference_detects_memorisation_and_not_noise():
    rng = np.random.default_rng(0)
    same = ev.membership_inference(rng.exponential(0.5, 2000), rng.exponential(0.5, 2000))
    assert abs(same["auc"] - 0.5) < 0.03
    leak = ev.membership_inference(rng.exponential(0.1, 500), rng.exponential(0.5, 500))
    assert leak["auc"] > 0.75 and leak["advantage"] > 0.4
    assert leak["member_loss"] < leak["nonmember_loss"]


# --------------------------------------------------------------------------- learning-curve methods
def test_probe_and_tfidf_methods_learn_and_tune_C():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] + 0.1 * rng.normal(size=300) > 0).astype(int)
    probe = ev.probe_method(X[:200], y[:200], X[200:250], y[200:250], X[250:], y[250:])
    r = probe(np.arange(100), 0)
    assert r["accuracy"] > 0.8 and r["C"] in (0.01, 0.1, 1.0, 10.0) and len(r["test_predictions"]) == 50

    words = np.array(["great", "awful"])
    texts = [f"a {words[label]} film {i}" for i, label in enumerate(y)]
    tfidf = ev.tfidf_method(texts[:200], y[:200], texts[200:250], y[200:250], texts[250:], y[250:])
    assert tfidf(np.arange(40), 0)["accuracy"] == 1.0


def _tiny_bert(pretrained: bool, seed: int) -> transformers.PreTrainedModel:
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=64, num_labels=2,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return transformers.BertForSequenceClassification(cfg)


def _toy(n: int, seed: int) -> datasets.Dataset:
    """Label 1 iff the first word is token 7 (else 8)."""
    rng = np.random.default_rng(seed)
    ids, labels = [], []
    for _ in range(n):
        label = int(rng.integers(0, 2))
        seq = rng.integers(10, 60, size=int(rng.integers(3, 12))).tolist()
        ids.append([1, 7 if label else 8, *seq, 2])
        labels.append(label)
    return datasets.Dataset.from_dict({"input_ids": ids, "attention_mask": [[1] * len(s) for s in ids],
                                       "labels": labels})


def test_finetune_method_trains_scores_and_runs_the_attack():
    train, test = _toy(64, 0), _toy(40, 1)
    config = TrainingConfig(epochs=1, batch_size=16, learning_rate=3e-3, eval_strategy="no", progress=False)
    method = ev.finetune_method(_tiny_bert, train, test, config=config, min_steps=30, n_members=32)
    r = method(np.arange(48), seed=0)
    assert r["epochs"] == 10 and r["steps"] == 30
    assert r["accuracy"] > 0.8, r["accuracy"]
    assert len(r["test_predictions"]) == 40 and 0.0 <= r["mi_auc"] <= 1.0 and 0.0 <= r["mi_auc_before"] <= 1.0
    assert r["mi_auc"] != r["mi_auc_before"], "the attack before and after training saw the same model"
    assert r["member_loss"] <= r["nonmember_loss"] + 0.05


def test_run_learning_curve_caches_and_gives_all_methods_the_same_examples(tmp_path):
    seen = {}

    def recorder(name):
        def run(indices, seed):
            seen[(name, len(indices), seed)] = tuple(sorted(indices.tolist()))
            return {"accuracy": 0.5 + len(indices) / 1000 + (0.1 if name == "a" else 0.0)}
        return run

    labels = [0, 1] * 100
    kwargs = dict(labels=labels, root=tmp_path, progress=False)
    df = ev.run_learning_curve({"a": recorder("a"), "b": recorder("b")}, [20, 80], 2, **kwargs)
    assert len(df) == 8 and not df["cached"].any()
    assert seen[("a", 20, 1)] == seen[("b", 20, 1)] and seen[("a", 20, 0)] != seen[("a", 20, 1)]
    seen.clear()
    again = ev.run_learning_curve({"a": recorder("a"), "b": recorder("b")}, [20, 80], 2, **kwargs)
    assert again["cached"].all() and not seen
    s = ev.curve_summary(df)
    assert ev.examples_to_match(s, "b", "a", 20) is None  # b at 80 is 0.58 < a at 20 (0.62)
    assert ev.examples_to_match(s, "a", "b", 80) == 20
    with pytest.raises(KeyError, match="expected one of"):
        ev.examples_to_match(s, "c", "a", 20)
    fig = plotting.plot_train_size_curve(s, title="t", labels={"a": "A"}, chance=0.5)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "examples" in ax.get_xlabel()
    assert "A (2 seeds)" in [t.get_text() for t in ax.get_legend().get_texts()]
    with pytest.raises(ValueError, match="pool size"):
        ev.run_learning_curve({"a": recorder("a")}, [500], 1, **kwargs)


def test_over_seeds_and_clears_read_the_spread():
    from ftutils.evaluation import clears, over_seeds

    assert over_seeds([0.7, 0.9]) == "0.800 (0.700-0.900, 2 seeds)"
    assert clears([0.80, 0.84, 0.82], 0.70) and not clears([0.80, 0.84, 0.82], 0.70, margin=0.09)
    assert not clears([0.60, 0.90], [0.70, 0.72])  # mean 0.75, gain 0.04 < spread 0.30
    with pytest.raises(ValueError, match="at least one score"):
        clears([], 0.5)


def test_verdict_follows_clears_and_the_worst_seed():
    from ftutils.evaluation import clears, verdict

    cases = [([0.80, 0.84, 0.82], 0.70, "more than the seed spread"),
             ([0.71, 0.84], 0.70, "on every seed, by less"),
             ([0.70, 0.84], 0.70, "does not beat"),  # a tie on one seed is not a win
             ([0.60, 0.62], 0.70, "does not beat")]
    for scores, baseline, words in cases:
        assert words in verdict(scores, baseline), (scores, baseline, verdict(scores, baseline))
        assert ("more than" in verdict(scores, baseline)) == clears(scores, baseline)


def test_right_and_wrong_shows_both_kinds_and_cuts_long_texts():
    from ftutils.evaluation import right_and_wrong

    table = right_and_wrong(["a" * 200, "b", "c", "d\n\n"], [1, 0, 0, 1], [1, 1, 0, 0], n=2, width=10)
    assert list(table["correct"]) == [True, True, False, False]
    assert table["text"][0] == "a" * 9 + "…" and list(table["text"][2:]) == ["b", "d"]
    with pytest.raises(ValueError, match="differ in length"):
        right_and_wrong(["a"], [1, 0], [1])
