"""Evaluating fine-tuned models honestly: confidence intervals, seed spread, learning curves, privacy.

Five ideas, each a few functions:

* **Confidence intervals** on a test metric by the bootstrap (:func:`bootstrap_ci`), and for the
  difference of two models scored on the *same* test examples (:func:`paired_bootstrap`).
* **Seed variance**: the same recipe run with several seeds; :func:`seed_summary` gives mean, sample
  std, range and a t-interval for the mean per group.
* **Learning curves**: test metric against the number of labelled training examples, for several
  *methods* (fine-tuning, the same architecture from random weights, a linear probe on frozen features,
  TF-IDF + logistic regression). :func:`run_learning_curve` runs every (method, size, seed) through
  :func:`ftutils.experiments.run_grid` (so results are cached on disk); :func:`finetune_method`,
  :func:`probe_method` and :func:`tfidf_method` build the methods; :func:`curve_summary`,
  :func:`examples_to_match` read the result, and :func:`ftutils.plotting.plot_train_size_curve` draws it.
* **Membership inference**: does a model's loss tell its training examples from unseen ones?
  :func:`membership_inference` gives the attack's AUC (0.5 = no leak).
* **Cost**: :func:`seconds_per_example` times a model on a batch of examples.

Example:
    >>> import numpy as np
    >>> from ftutils.evaluation import bootstrap_ci, membership_inference
    >>> from ftutils.metrics import accuracy
    >>> refs = np.array([0, 1] * 50); preds = refs.copy(); preds[:20] = 1 - preds[:20]
    >>> ci = bootstrap_ci(accuracy, preds, refs, n_resamples=500, seed=0)
    >>> round(ci.estimate, 2), ci.low < 0.8 < ci.high
    (0.8, True)
    >>> membership_inference([0.1, 0.2, 0.3], [0.4, 0.5, 0.6])["auc"]
    1.0
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ftutils import baselines, experiments
from ftutils.results import clears  # noqa: F401 (the book's one rule for "beats its baseline", re-exported)

__all__ = [
    "BootstrapResult",
    "bootstrap_ci",
    "paired_bootstrap",
    "seed_summary",
    "over_seeds",
    "clears",
    "verdict",
    "right_and_wrong",
    "stratified_subset",
    "epochs_for",
    "per_example_loss",
    "auc",
    "membership_inference",
    "seconds_per_example",
    "finetune_method",
    "probe_method",
    "tfidf_method",
    "run_learning_curve",
    "curve_summary",
    "examples_to_match",
]

Metric = Callable[[Any, Any], float]
Method = Callable[[np.ndarray, int], Mapping[str, Any]]


# --------------------------------------------------------------------------- confidence intervals
@dataclass(frozen=True)
class BootstrapResult:
    """A metric on the full test set and its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float
    std: float
    n: int
    confidence: float

    def __str__(self) -> str:
        pct = round(100 * self.confidence)
        return f"{self.estimate:.3f} ({pct}% CI {self.low:.3f}-{self.high:.3f}, n={self.n})"


def _resample_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    if n < 2:
        raise ValueError(f"The test set has {n} example(s): a bootstrap needs at least 2.")
    if not isinstance(n_resamples, int) or n_resamples < 10:
        raise ValueError(f"n_resamples={n_resamples!r} is not allowed: expected an integer >= 10 (1000 is usual).")
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} is not allowed: expected a fraction in (0, 1), e.g. 0.95.")


def bootstrap_ci(metric: Metric, predictions: Any, references: Any, *, n_resamples: int = 1000,
                 confidence: float = 0.95, seed: int = 0) -> BootstrapResult:
    """Percentile bootstrap interval of ``metric(predictions, references)`` over the test examples.

    The test set is resampled *with replacement* ``n_resamples`` times; the interval holds the central
    ``confidence`` share of the metric's values on those resamples. It measures how much the score
    depends on *which* test examples were drawn, not the training randomness (see :func:`seed_summary`).

    Example:
        >>> from ftutils.metrics import accuracy
        >>> r = bootstrap_ci(accuracy, [1] * 80 + [0] * 20, [1] * 100, n_resamples=200)
        >>> r.estimate, 0.7 < r.low < 0.8 < r.high < 0.9
        (0.8, True)
    """
    _check_confidence(confidence)
    predictions, references = np.asarray(predictions), np.asarray(references)
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references: expected equal lengths.")
    idx = _resample_indices(len(references), n_resamples, seed)
    values = np.array([metric(predictions[i], references[i]) for i in idx], dtype=float)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return BootstrapResult(float(metric(predictions, references)), float(low), float(high),
                           float(values.std(ddof=1)), len(references), confidence)


def paired_bootstrap(metric: Metric, predictions_a: Any, predictions_b: Any, references: Any, *,
                     n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Bootstrap interval of ``metric(a) - metric(b)`` when both models were scored on the same examples.

    Each resample draws the same example indices for both models, so what the two share (easy and
    hard examples) cancels. Returns ``difference``, ``low``, ``high`` and ``share_not_better`` (the
    fraction of resamples where ``a`` does not beat ``b``: a one-sided bootstrap p-value).

    Example:
        >>> from ftutils.metrics import accuracy
        >>> refs = [1] * 100
        >>> d = paired_bootstrap(accuracy, [1] * 90 + [0] * 10, [1] * 70 + [0] * 30, refs, n_resamples=200)
        >>> round(d["difference"], 2), d["low"] > 0
        (0.2, True)
    """
    _check_confidence(confidence)
    a, b, refs = np.asarray(predictions_a), np.asarray(predictions_b), np.asarray(references)
    if not len(a) == len(b) == len(refs):
        raise ValueError(f"Lengths differ ({len(a)}, {len(b)}, {len(refs)}): both models must be scored on "
                         "the same test examples, in the same order.")
    idx = _resample_indices(len(refs), n_resamples, seed)
    diffs = np.array([metric(a[i], refs[i]) - metric(b[i], refs[i]) for i in idx], dtype=float)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(diffs, [alpha, 1 - alpha])
    return {"difference": float(metric(a, refs) - metric(b, refs)), "low": float(low), "high": float(high),
            "share_not_better": float(np.mean(diffs <= 0))}


# --------------------------------------------------------------------------- seeds
def seed_summary(df: pd.DataFrame, by: str | Sequence[str], metric: str, *, confidence: float = 0.95) -> pd.DataFrame:
    """:func:`ftutils.experiments.summarize` plus ``range`` (max - min), ``sem`` and a t-interval of the mean.

    ``ci_low``/``ci_high`` are ``mean ± t · std / sqrt(n)`` (Student t with n - 1 degrees of freedom):
    where the *average over seeds* probably lies. A single run can land anywhere in ``[min, max]``.

    Example:
        >>> df = pd.DataFrame({"m": ["a"] * 5, "acc": [0.6, 0.7, 0.8, 0.7, 0.7]})
        >>> s = seed_summary(df, "m", "acc").round(3)
        >>> s.loc["a", ["mean", "range", "n"]].tolist(), bool(s.loc["a", "ci_low"] < 0.7 < s.loc["a", "ci_high"])
        ([0.7, 0.2, 5.0], True)
    """
    from scipy import stats

    _check_confidence(confidence)
    out = experiments.summarize(df, by, metric)
    out["range"] = out["max"] - out["min"]
    out["sem"] = out["std"] / np.sqrt(out["n"])
    t = np.array([stats.t.ppf(0.5 + confidence / 2, n - 1) if n > 1 else np.nan for n in out["n"]])
    out["ci_low"] = out["mean"] - t * out["sem"]
    out["ci_high"] = out["mean"] + t * out["sem"]
    return out


# --------------------------------------------------------------------------- training subsets
def over_seeds(scores: Sequence[float], digits: int = 3) -> str:
    """One score per seed as text: the mean, and the range when there is more than one seed.

    Example:
        >>> over_seeds([0.80, 0.84, 0.82])
        '0.820 (0.800-0.840, 3 seeds)'
        >>> over_seeds([0.5])
        '0.500 (1 seed)'
    """
    values = [float(v) for v in scores]
    if not values:
        raise ValueError("over_seeds needs at least one score.")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f} (1 seed)"
    return f"{mean:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f}, {len(values)} seeds)"


def verdict(scores: Sequence[float], baseline: float) -> str:
    """How the seeds' ``scores`` stand against ``baseline``, in words, by the rule of :func:`clears`.

    For a sentence whose outcome differs from sample to sample: the chapter prints the verdict its
    run measured instead of asserting one.

    Example:
        >>> verdict([0.80, 0.84, 0.82], 0.70), verdict([0.72, 0.84], 0.70), verdict([0.66, 0.84], 0.70)
        ('beats it by more than the seed spread', 'beats it on every seed, by less than the seed spread', 'does not beat it on every seed')
    """
    values = [float(v) for v in scores]
    if clears(values, baseline):
        return "beats it by more than the seed spread"
    if min(values) > float(baseline):
        return "beats it on every seed, by less than the seed spread"
    return "does not beat it on every seed"


def right_and_wrong(texts: Sequence[str], predictions: Sequence[Any], references: Sequence[Any], *,
                    n: int = 2, width: int = 90) -> pd.DataFrame:
    """The first ``n`` examples a model gets right and the first ``n`` it gets wrong, side by side.

    ``predictions`` and ``references`` are labels (names or ids) per text; texts are put on one line and
    cut to ``width`` characters.

    Example:
        >>> right_and_wrong(["good film", "dull", "fine"], ["pos", "pos", "pos"], ["pos", "neg", "pos"], n=1)
                text prediction reference  correct
        0  good film        pos       pos     True
        1       dull        pos       neg    False
    """
    if not len(texts) == len(predictions) == len(references):
        raise ValueError(f"texts, predictions and references differ in length: {len(texts)}, "
                         f"{len(predictions)}, {len(references)}.")
    right = [i for i in range(len(texts)) if predictions[i] == references[i]][:n]
    wrong = [i for i in range(len(texts)) if predictions[i] != references[i]][:n]
    flat = [" ".join(str(t).split()) for t in texts]  # one line per example: a headline's line breaks go
    rows = [{"text": (flat[i] if len(flat[i]) <= width else flat[i][:width - 1] + "…"),
             "prediction": predictions[i], "reference": references[i], "correct": i in right}
            for i in right + wrong]
    return pd.DataFrame(rows, columns=["text", "prediction", "reference", "correct"])


def stratified_subset(labels: Sequence[int], n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` examples whose label shares follow ``labels``; nested in ``n`` for a fixed seed.

    Each class is shuffled with ``seed``; example ``r`` of a class of size ``m`` gets the key
    ``(r + u) / m`` (``u`` uniform in [0, 1)) and the ``n`` smallest keys are taken. So the subset of
    size 50 is contained in that of size 200 (a learning curve adds examples instead of redrawing them),
    and every class appears about in proportion.

    Example:
        >>> labels = [0] * 60 + [1] * 40
        >>> idx = stratified_subset(labels, 10, seed=0)
        >>> len(idx), int(sum(labels[i] for i in idx))
        (10, 4)
        >>> set(idx) <= set(stratified_subset(labels, 30, seed=0))
        True
    """
    labels = np.asarray(labels)
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or not 1 <= n <= len(labels):
        raise ValueError(f"n={n!r} is not allowed: expected an integer between 1 and the pool size {len(labels)}.")
    rng = np.random.default_rng(seed)
    keys = np.empty(len(labels))
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        order = rng.permutation(len(members))
        keys[members[order]] = (np.arange(len(members)) + rng.random(len(members))) / len(members)
    return np.argsort(keys, kind="stable")[:n]


def epochs_for(n: int, batch_size: int, min_steps: int, min_epochs: int = 1) -> int:
    """Epochs so that a run on ``n`` examples takes at least ``min_steps`` optimizer steps.

    Tiny training sets need several passes to move a pretrained model at all; large ones need one.

    Example:
        >>> epochs_for(50, 16, 20), epochs_for(800, 16, 20)
        (5, 1)
    """
    steps_per_epoch = math.ceil(n / batch_size)
    return max(min_epochs, math.ceil(min_steps / steps_per_epoch))


# --------------------------------------------------------------------------- membership inference
def per_example_loss(logits: Any, labels: Any) -> np.ndarray:
    """Cross-entropy of every example (nats) from ``logits`` (n, k) and integer ``labels`` (n,).

    Example:
        >>> per_example_loss([[0.0, 0.0]], [1]).round(4).tolist()
        [0.6931]
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(f"logits have shape {logits.shape} and labels {labels.shape}: expected (n, k) and (n,).")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(labels)), labels]


def auc(positive_scores: Sequence[float], negative_scores: Sequence[float]) -> float:
    """Area under the ROC curve: P(score of a random positive > that of a random negative), ties half.

    Example:
        >>> auc([3, 2], [1, 2])
        0.875
    """
    pos, neg = np.asarray(positive_scores, float), np.asarray(negative_scores, float)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("auc needs at least one positive and one negative score.")
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def membership_inference(member_losses: Sequence[float], nonmember_losses: Sequence[float]) -> dict[str, float]:
    """The loss-threshold attack: guess "was in the training set" when an example's loss is low.

    Returns ``auc`` (0.5: the loss says nothing about membership; 1.0: it reveals it perfectly),
    ``advantage`` (the best threshold's true-positive rate minus false-positive rate) and the two mean
    losses. Members should be as many as non-members and drawn from the same distribution.

    Example:
        >>> r = membership_inference([0.1, 0.2, 0.9], [0.3, 0.8, 1.0])
        >>> round(r["auc"], 3), round(r["advantage"], 3)
        (0.778, 0.667)
    """
    members, others = np.asarray(member_losses, float), np.asarray(nonmember_losses, float)
    score = auc(-members, -others)  # lower loss = more likely a member
    thresholds = np.unique(np.concatenate([members, others]))
    tpr = (members[None, :] <= thresholds[:, None]).mean(1)
    fpr = (others[None, :] <= thresholds[:, None]).mean(1)
    return {"auc": score, "advantage": float(np.max(tpr - fpr)), "member_loss": float(members.mean()),
            "nonmember_loss": float(others.mean())}


# --------------------------------------------------------------------------- cost
def seconds_per_example(fn: Callable[[], Any], n_examples: int, *, repeats: int = 1) -> float:
    """Wall-clock seconds per example of ``fn()`` (which processes ``n_examples``), best of ``repeats``.

    Example:
        >>> seconds_per_example(lambda: sum(range(1000)), 10) < 0.01
        True
    """
    if n_examples < 1:
        raise ValueError(f"n_examples={n_examples!r} is not allowed: expected a positive integer.")
    best = math.inf
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / n_examples


# --------------------------------------------------------------------------- methods of a learning curve
def _scores(pred: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    from ftutils import metrics

    return {"accuracy": metrics.accuracy(pred, labels),
            "macro_f1": metrics.macro_f1(pred, labels, labels=sorted(set(labels.tolist()))),
            "test_predictions": pred.astype(int).tolist()}


def finetune_method(make_model: Callable[[bool, int], Any], train: Any, test: Any, *, config: Any,
                    pretrained: bool = True, min_steps: int = 0, tokenizer: Any = None,
                    n_members: int = 200, probe_init: bool = False, probe_C: float = 10.0) -> Method:
    """A learning-curve method that fine-tunes a fresh model on the chosen training examples.

    ``make_model(pretrained, seed)`` returns a new classifier (pretrained weights, or the same
    architecture with random weights when ``pretrained`` is False) whose new weights are drawn from
    ``seed`` (pass it to :func:`ftutils.models.load`); the run is :func:`ftutils.recipes.fine_tune`. ``train`` and
    ``test`` are tokenised datasets with ``labels``; ``config`` is a
    :class:`ftutils.trainer.TrainingConfig` whose ``epochs`` is raised so every run makes at least
    ``min_steps`` steps (:func:`epochs_for`). With ``probe_init`` the head starts as a logistic
    regression fitted on the training examples (:func:`ftutils.models.init_head_from_probe`, LP-FT). The result holds test accuracy, macro-F1, predictions,
    training time, and the loss-threshold membership-inference AUC on up to ``n_members`` training
    examples against as many test examples, after training (``mi_auc``) and before its first step
    (``mi_auc_before``: with ``probe_init`` the head was already fitted on those members).
    """
    import dataclasses

    from ftutils import models, recipes, trainer

    test_labels = np.asarray(test["labels"])

    def run(indices: np.ndarray, seed: int) -> dict[str, Any]:
        epochs = epochs_for(len(indices), config.batch_size, min_steps, config.epochs)
        cfg = dataclasses.replace(config, epochs=epochs, seed=seed)
        subset = train.select(indices.tolist())
        k = min(n_members, len(indices), len(test_labels))

        def attack(model: Any) -> dict[str, float]:
            member_logits = trainer.predict(model, subset.select(range(k)), tokenizer=tokenizer)
            test_logits = trainer.predict(model, test.select(range(k)), tokenizer=tokenizer)
            return membership_inference(per_example_loss(member_logits, subset["labels"][:k]),
                                        per_example_loss(test_logits, test_labels[:k]))

        before: dict[str, float] = {}

        def start(model: Any) -> None:
            if probe_init:
                models.init_head_from_probe(model, subset, tokenizer=tokenizer, C=probe_C)
            # what the starting point (a head fitted on the members, if probe_init) leaks
            before.update(attack(model))

        tuned = recipes.fine_tune(lambda s: make_model(pretrained, s), subset, None, config=cfg,
                                  tokenizer=tokenizer, before_training=start, test=test)
        result = tuned.result
        after = attack(tuned.model)
        return {**_scores(tuned.test_logits.argmax(-1), test_labels), "train_seconds": result.train_runtime_s,
                "epochs": epochs, "steps": result.global_step, "mi_auc": after["auc"],
                "mi_auc_before": before["auc"],
                "member_loss": after["member_loss"], "nonmember_loss": after["nonmember_loss"]}

    return run


def probe_method(train_x: np.ndarray, train_y: Any, val_x: np.ndarray, val_y: Any, test_x: np.ndarray,
                 test_y: Any, *, Cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0)) -> Method:
    """A learning-curve method: logistic regression on frozen features (embedded once), C tuned on validation.

    Example:
        >>> rng = np.random.default_rng(0); X = rng.normal(size=(40, 3)); y = (X[:, 0] > 0).astype(int)
        >>> r = probe_method(X, y, X, y, X, y)(np.arange(20), 0)
        >>> r["accuracy"] > 0.8
        True
    """
    train_x, train_y = np.asarray(train_x), np.asarray(train_y)
    test_y = np.asarray(test_y)

    def run(indices: np.ndarray, seed: int) -> dict[str, Any]:
        model, C, val_acc = baselines.fit_tuned_logreg(train_x[indices], train_y[indices], val_x, val_y, Cs=Cs,
                                                       seed=seed)
        return {**_scores(np.asarray(model.predict(test_x)), test_y), "C": C, "val_accuracy": val_acc}

    return run


def tfidf_method(train_texts: Sequence[str], train_y: Any, val_texts: Sequence[str], val_y: Any,
                 test_texts: Sequence[str], test_y: Any, *, Cs: Sequence[float] = (0.1, 1.0, 10.0, 100.0)) -> Method:
    """A learning-curve method: :func:`ftutils.baselines.tfidf_logreg` (word 1-2 grams, sublinear tf), C tuned on validation.

    Example:
        >>> texts = ["good film", "bad film", "very good", "very bad"] * 5; y = [1, 0, 1, 0] * 5
        >>> tfidf_method(texts, y, texts, y, texts, y)(np.arange(8), 0)["accuracy"]
        1.0
    """
    train_texts, train_y, test_y = np.asarray(train_texts, dtype=object), np.asarray(train_y), np.asarray(test_y)
    validation = {"text": list(val_texts), "label": list(np.asarray(val_y).tolist())}
    test = {"text": list(test_texts), "label": test_y.tolist()}

    def run(indices: np.ndarray, seed: int) -> dict[str, Any]:
        train = {"text": list(train_texts[indices]), "label": train_y[indices].tolist()}
        r = baselines.tfidf_logreg(train, test, C=tuple(Cs), validation=validation, seed=seed)
        return {**_scores(r["predictions"], test_y), "C": r["C"], "val_accuracy": r["val_accuracy"]}

    return run


def run_learning_curve(methods: Mapping[str, Method], sizes: Sequence[int], seeds: Sequence[int] | int, *,
                       labels: Sequence[int], config: Any = "cpu-tiny", experiment: str = "learning-curve",
                       root: str | os.PathLike | None = None, progress: bool = True,
                       refresh: bool = False) -> pd.DataFrame:
    """Run every method at every training-set size and seed; one row per run (cached by ``run_grid``).

    For size ``n`` and seed ``s`` every method gets the same training examples,
    ``stratified_subset(labels, n, s)`` (so the methods differ only in what they do with them), and is
    called as ``methods[name](indices, s)``. The settings are ``{"method": name, "n": n}``: a rerun, or
    another chapter asking for the same runs under the same config, reads them from the cache.

    Example:
        >>> import tempfile
        >>> fake = {"a": lambda idx, s: {"accuracy": len(idx) / 100}, "b": lambda idx, s: {"accuracy": 0.5}}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     df = run_learning_curve(fake, [10, 40], 2, labels=[0, 1] * 50, root=tmp, progress=False)
        >>> curve_summary(df)["mean"].round(2).tolist()
        [0.1, 0.4, 0.5, 0.5]
    """
    if not methods:
        raise ValueError("methods is empty: expected a dict {name: method}, e.g. {'tfidf': tfidf_method(...)}.")
    sizes = [int(n) for n in sizes]
    if not sizes or any(n < 2 or n > len(labels) for n in sizes):
        raise ValueError(f"sizes={sizes!r} is not allowed: expected training-set sizes between 2 and the "
                         f"pool size {len(labels)}.")
    settings = [{"method": name, "n": n} for name in methods for n in sizes]

    def train_fn(s: dict[str, Any], seed: int) -> Mapping[str, Any]:
        return methods[s["method"]](stratified_subset(labels, s["n"], seed), seed)

    return experiments.run_grid(settings, seeds, train_fn, config=config, experiment=experiment, root=root,
                                progress=progress, refresh=refresh)


def curve_summary(df: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Mean, std, n, min, max (and range, sem, t-interval) of ``metric`` per (method, n), grid order.

    See :func:`run_learning_curve` for an example.
    """
    return seed_summary(df, ["method", "n"], metric)


def examples_to_match(summary: pd.DataFrame, method: str, reference: str, at_n: int) -> int | None:
    """Smallest training-set size at which ``method``'s mean reaches ``reference``'s mean at ``at_n``.

    ``summary`` is :func:`curve_summary`'s table. Returns ``None`` when no measured size gets there: the
    honest answer is then "more than the largest size measured", not an extrapolation.

    Example:
        >>> df = pd.DataFrame({"method": ["a", "a", "b", "b"], "n": [10, 100] * 2, "seed": 0,
        ...                    "accuracy": [0.6, 0.8, 0.5, 0.7]})
        >>> s = curve_summary(df)
        >>> examples_to_match(s, "b", "a", 10), examples_to_match(s, "b", "a", 100)
        (100, None)
    """
    for name in (method, reference):
        if name not in summary.index.get_level_values("method"):
            raise KeyError(f"method {name!r} is not in the summary: expected one of "
                           f"{sorted(set(summary.index.get_level_values('method')))}.")
    target = summary.loc[(reference, at_n), "mean"]
    rows = summary.loc[method].sort_index()
    reached = rows[rows["mean"] >= target]
    return None if reached.empty else int(reached.index[0])
