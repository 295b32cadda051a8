"""Non-neural baselines that every fine-tuned classifier in the book is compared against.

A fine-tuned transformer is only worth its cost if it beats a cheap model trained on the *same*
split. The cheapest strong text classifier is TF-IDF features + logistic regression (scikit-learn):
it trains in well under a second on thousands of snippets and is hard to beat on small data.

:func:`tfidf_logreg` is that pipeline (:func:`tfidf_features` then :func:`logistic_regression`), with
C fixed or chosen on a validation split; :func:`fit_tuned_logreg` chooses C for any features (a linear
probe on frozen sentence vectors, see :func:`ftutils.models.mean_pooled_features`).

Example:
    >>> from ftutils.baselines import tfidf_logreg
    >>> train = {"text": ["a great film", "great acting", "a dull film", "dull and slow"],
    ...          "label": [1, 1, 0, 0]}
    >>> test = {"text": ["great fun", "so dull"], "label": [1, 0]}
    >>> result = tfidf_logreg(train, test)
    >>> result["accuracy"], result["predictions"].tolist()
    (1.0, [1, 0])
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["tfidf_logreg", "fit_tuned_logreg", "tfidf_features", "logistic_regression", "majority_accuracy"]


def majority_accuracy(train_labels: Sequence[Any], test_labels: Sequence[Any]) -> float:
    """Test accuracy of always predicting the most frequent *training* label: the floor a classifier
    has to clear before any comparison of classifiers means something (ties: the smallest label).

    Example:
        >>> majority_accuracy([0, 1, 1], [1, 0, 1, 1])
        0.75
    """
    train, test = list(train_labels), list(test_labels)
    if not train or not test:
        raise ValueError("majority_accuracy needs at least one training and one test label.")
    values, counts = np.unique(np.asarray(train), return_counts=True)
    majority = values[np.argmax(counts)]
    return float(np.mean(np.asarray(test) == majority))


def _column(split: Any, column: str, role: str, name: str) -> list:
    """Read one column from a ``datasets.Dataset``, a pandas DataFrame or a dict of lists."""
    try:
        names = list(split.column_names) if hasattr(split, "column_names") else list(split.keys())
    except AttributeError as exc:
        raise TypeError(
            f"{role} is a {type(split).__name__}: expected a datasets.Dataset, a pandas DataFrame or a "
            f"dict of lists with a {column!r} column."
        ) from exc
    if column not in names:
        raise KeyError(
            f"{role} has no column {column!r} (its columns: {', '.join(map(str, names))}). "
            f"Pass {name}=... naming the right column."
        )
    values = split[column]
    return list(values.tolist() if hasattr(values, "tolist") else values)


def logistic_regression(C: float, *, seed: int = 0) -> Any:
    """The book's logistic regression: ``C`` the inverse L2 strength, at most 2000 L-BFGS iterations.

    Example:
        >>> logistic_regression(4.0).C
        4.0
    """
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=2000, random_state=seed)


def tfidf_features(ngram_range: tuple[int, int] = (1, 2), min_df: int = 1) -> Any:
    """The book's TF-IDF vectoriser: word n-grams in ``ngram_range``, sublinear term frequency.

    Example:
        >>> tfidf_features().fit(["a good film", "a bad film"]).get_feature_names_out()[:3].tolist()
        ['bad', 'bad film', 'film']
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(ngram_range=ngram_range, min_df=min_df, sublinear_tf=True)


def fit_tuned_logreg(train_x: Any, train_y: Any, val_x: Any, val_y: Any, *,
                     Cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0), make_features: Callable[[], Any] | None = None,
                     seed: int = 0) -> tuple[Any, float, float]:
    """Logistic regression with C chosen on the validation split; returns (fitted model, C, val accuracy).

    ``make_features``, if given, is a scikit-learn transformer factory (e.g. :func:`tfidf_features`) put in
    front of the classifier; ``train_x``/``val_x`` are then raw inputs (texts). Of equally accurate values
    of C the first in ``Cs`` wins.

    Example:
        >>> X = [[0.0], [1.0], [0.1], [0.9]]; y = [0, 1, 0, 1]
        >>> model, C, acc = fit_tuned_logreg(X, y, X, y, Cs=(1.0, 10.0))
        >>> acc
        1.0
    """
    from sklearn.pipeline import make_pipeline

    if not Cs:
        raise ValueError("Cs is empty: expected at least one regularisation value C, e.g. (0.1, 1.0, 10.0).")
    if len(set(np.asarray(train_y).tolist())) < 2:
        raise ValueError("The training labels hold a single class: expected at least two.")
    best = (None, None, -1.0)
    for C in Cs:
        clf = logistic_regression(C, seed=seed)
        model = make_pipeline(make_features(), clf) if make_features else clf
        model.fit(train_x, train_y)
        acc = float(np.mean(np.asarray(model.predict(val_x)) == np.asarray(val_y)))
        if acc > best[2]:
            best = (model, float(C), acc)
    return best


def tfidf_logreg(
    train: Any,
    test: Any,
    text_column: str = "text",
    label_column: str = "label",
    *,
    ngram_range: tuple[int, int] = (1, 2),
    min_df: int = 1,
    C: float | Sequence[float] = 4.0,
    validation: Any = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit TF-IDF (word 1-2 grams, sublinear tf) + logistic regression on ``train``; score it on ``test``.

    ``train``, ``test`` (and ``validation``) are ``datasets.Dataset`` splits (or DataFrames / dicts of
    lists) with a text column and an integer label column. ``C`` is the inverse regularisation strength;
    several values, e.g. ``C=(0.1, 1.0, 10.0, 100.0)``, are tried and the one most accurate on
    ``validation`` (then required) is kept (:func:`fit_tuned_logreg`). Returns a dict with the fitted
    ``pipeline`` (call ``pipeline.predict(list_of_texts)`` on new text), ``predictions`` (np.ndarray for
    ``test``), ``accuracy``, ``macro_f1``, ``n_train``, ``n_test``, ``n_features``, the ``C`` used and,
    when C was tuned, ``val_accuracy``.

    Example:
        >>> r = tfidf_logreg({"text": ["good", "bad"], "label": [1, 0]}, {"text": ["good"], "label": [1]})
        >>> r["accuracy"]
        1.0
        >>> split = {"text": ["good film", "bad film", "very good", "very bad"], "label": [1, 0, 1, 0]}
        >>> r = tfidf_logreg(split, split, C=(0.1, 10.0), validation=split)
        >>> r["C"], r["val_accuracy"]
        (0.1, 1.0)
    """
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline

    train_texts = _column(train, text_column, "train", "text_column")
    train_labels = _column(train, label_column, "train", "label_column")
    test_texts = _column(test, text_column, "test", "text_column")
    test_labels = _column(test, label_column, "test", "label_column")
    tuned = not isinstance(C, numbers.Real)
    if tuned and validation is None:
        raise ValueError(f"C={C!r} holds several values but validation is None: pass validation=... (the split "
                         "that chooses C), or a single C.")
    if not tuned and validation is not None:
        raise ValueError(f"validation was given but C={C!r} is a single value: pass several, e.g. "
                         "C=(0.1, 1.0, 10.0, 100.0), for validation to choose among.")
    if len(set(train_labels)) < 2:
        raise ValueError(
            f"train has {len(train_labels)} examples but only the label(s) {sorted(set(train_labels))}: "
            "expected at least two classes. Use a larger or stratified training sample."
        )
    if not test_texts:
        raise ValueError("test is empty: expected at least one example to score the baseline on.")
    bad = [t for t in (*train_texts[:1000], *test_texts[:1000]) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"column {text_column!r} holds {type(bad[0]).__name__} values: expected str.")

    extra: dict[str, Any] = {}
    if tuned:
        val_texts = _column(validation, text_column, "validation", "text_column")
        val_labels = _column(validation, label_column, "validation", "label_column")
        pipeline, C, extra["val_accuracy"] = fit_tuned_logreg(
            train_texts, train_labels, val_texts, val_labels, Cs=tuple(C), seed=seed,
            make_features=lambda: tfidf_features(ngram_range, min_df))
    else:
        pipeline = make_pipeline(tfidf_features(ngram_range, min_df), logistic_regression(C, seed=seed))
        pipeline.fit(train_texts, train_labels)
    predictions = np.asarray(pipeline.predict(test_texts))
    return {
        "pipeline": pipeline,
        "predictions": predictions,
        "accuracy": float(accuracy_score(test_labels, predictions)),
        "macro_f1": float(f1_score(test_labels, predictions, average="macro")),
        "n_train": len(train_texts),
        "n_test": len(test_texts),
        "n_features": len(pipeline[0].vocabulary_),
        "C": float(C),
        **extra,
    }
