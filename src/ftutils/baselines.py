"""Non-neural baselines that every fine-tuned classifier in the book is compared against.

A fine-tuned transformer is only worth its cost if it beats a cheap model trained on the *same*
split. The cheapest strong text classifier is TF-IDF features + logistic regression (scikit-learn):
it trains in well under a second on thousands of snippets and is hard to beat on small data.

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

from typing import Any

import numpy as np

__all__ = ["tfidf_logreg"]


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


def tfidf_logreg(
    train: Any,
    test: Any,
    text_column: str = "text",
    label_column: str = "label",
    *,
    ngram_range: tuple[int, int] = (1, 2),
    min_df: int = 1,
    C: float = 4.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit TF-IDF (word 1-2 grams, sublinear tf) + logistic regression on ``train``; score it on ``test``.

    ``train`` and ``test`` are ``datasets.Dataset`` splits (or DataFrames / dicts of lists) with a text
    column and an integer label column. Returns a dict with the fitted ``pipeline`` (call
    ``pipeline.predict(list_of_texts)`` on new text), ``predictions`` (np.ndarray for ``test``),
    ``accuracy``, ``macro_f1``, ``n_train``, ``n_test`` and ``n_features``.

    Example:
        >>> r = tfidf_logreg({"text": ["good", "bad"], "label": [1, 0]}, {"text": ["good"], "label": [1]})
        >>> r["accuracy"]
        1.0
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline

    train_texts = _column(train, text_column, "train", "text_column")
    train_labels = _column(train, label_column, "train", "label_column")
    test_texts = _column(test, text_column, "test", "text_column")
    test_labels = _column(test, label_column, "test", "label_column")
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

    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=ngram_range, min_df=min_df, sublinear_tf=True),
        LogisticRegression(C=C, max_iter=2000, random_state=seed),
    )
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
    }
