"""Tests for ftutils.baselines: the TF-IDF + logistic-regression baseline, fixed or tuned C."""

from __future__ import annotations

import numpy as np
import pytest

from ftutils.baselines import fit_tuned_logreg, tfidf_features, tfidf_logreg

POS = ["a great film", "great acting and a great story", "wonderful and moving", "a moving, wonderful film",
       "great fun", "a wonderful cast"]
NEG = ["a dull film", "dull and slow", "boring and slow", "a boring, dull story", "slow and tedious",
       "tedious acting"]


def _toy(n_test: int = 4) -> tuple[dict, dict]:
    train = {"text": POS + NEG, "label": [1] * len(POS) + [0] * len(NEG)}
    test = {"text": ["great and wonderful", "moving story", "dull, boring", "so slow"][:n_test],
            "label": [1, 1, 0, 0][:n_test]}
    return train, test


def test_separable_toy_data_is_learned_and_pipeline_predicts_new_text() -> None:
    train, test = _toy()
    result = tfidf_logreg(train, test)
    assert result["accuracy"] == 1.0 and result["macro_f1"] == 1.0
    assert result["predictions"].tolist() == [1, 1, 0, 0]
    assert result["n_train"] == 12 and result["n_test"] == 4
    assert result["pipeline"].predict(["wonderful", "tedious"]).tolist() == [1, 0]
    assert result["n_features"] > 10  # unigrams and bigrams


def test_metrics_match_the_predictions() -> None:
    train, test = _toy()
    test["label"] = [1, 0, 0, 0]  # one gold label flipped: predictions stay, accuracy drops to 3/4
    result = tfidf_logreg(train, test)
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_accepts_datasets_and_custom_columns() -> None:
    datasets = pytest.importorskip("datasets")
    train, test = _toy()
    train_ds = datasets.Dataset.from_dict({"review": train["text"], "y": train["label"]})
    test_ds = datasets.Dataset.from_dict({"review": test["text"], "y": test["label"]})
    result = tfidf_logreg(train_ds, test_ds, text_column="review", label_column="y")
    assert result["accuracy"] == 1.0


def test_errors_name_the_problem() -> None:
    train, test = _toy()
    with pytest.raises(KeyError, match="no column 'sentence'.*text, label"):
        tfidf_logreg(train, test, text_column="sentence")
    with pytest.raises(ValueError, match="at least two classes"):
        tfidf_logreg({"text": ["a", "b"], "label": [1, 1]}, test)
    with pytest.raises(ValueError, match="test is empty"):
        tfidf_logreg(train, {"text": [], "label": []})
    with pytest.raises(TypeError, match="expected str"):
        tfidf_logreg({"text": [1, 2], "label": [0, 1]}, test)
    with pytest.raises(TypeError, match="expected a datasets.Dataset"):
        tfidf_logreg([("a", 1)], test)


@pytest.mark.slow
def test_real_rotten_tomatoes_slice_beats_majority() -> None:
    from ftutils import data

    dsd = data.load("rotten_tomatoes", n_train=2000, n_validation=10, n_test=500)
    result = tfidf_logreg(dsd["train"], dsd["test"])
    majority = max(np.mean(dsd["test"]["label"]), 1 - np.mean(dsd["test"]["label"]))
    assert result["accuracy"] > majority + 0.05, (result["accuracy"], majority)
    assert 0.6 < result["accuracy"] < 0.95


def test_tuned_C_is_chosen_on_validation_and_matches_fit_tuned_logreg() -> None:
    train, test = _toy()
    Cs = (0.01, 1.0, 100.0)
    tuned = tfidf_logreg(train, test, C=Cs, validation=test, seed=1)
    pipeline, C, val_accuracy = fit_tuned_logreg(train["text"], train["label"], test["text"], test["label"], Cs=Cs,
                                                 make_features=tfidf_features, seed=1)
    assert (tuned["C"], tuned["val_accuracy"]) == (C, val_accuracy)
    assert tuned["predictions"].tolist() == pipeline.predict(test["text"]).tolist()
    fixed = tfidf_logreg(train, test, C=C, seed=1)
    assert fixed["predictions"].tolist() == tuned["predictions"].tolist() and "val_accuracy" not in fixed


def test_tuning_needs_a_validation_split_and_a_validation_split_needs_several_C() -> None:
    train, test = _toy()
    with pytest.raises(ValueError, match="validation is None"):
        tfidf_logreg(train, test, C=(0.1, 1.0))
    with pytest.raises(ValueError, match="single value"):
        tfidf_logreg(train, test, C=1.0, validation=test)
    with pytest.raises(ValueError, match="Cs is empty"):
        tfidf_logreg(train, test, C=(), validation=test)


def test_majority_accuracy_uses_the_training_majority_not_the_tests() -> None:
    from ftutils.baselines import majority_accuracy

    assert majority_accuracy([0, 0, 1], [1, 1, 1, 0]) == 0.25  # the test set's own majority would give 0.75
    assert majority_accuracy(["ham", "spam", "ham"], ["ham", "spam"]) == 0.5
    with pytest.raises(ValueError, match="at least one"):
        majority_accuracy([], [1])
