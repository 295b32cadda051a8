"""The book's evaluation metrics as plain functions, and as ``evaluate`` modules that load offline.

* classification: :func:`accuracy`, :func:`macro_f1`, :func:`confusion_matrix`;
* named entities: :func:`bio_spans` and :func:`span_f1` (entity-level precision/recall/F1 for BIO
  tags, per type and micro-averaged, counted as CoNLL's ``conlleval`` does);
* extractive QA: :func:`normalize_answer` and :func:`squad` (exact match and token F1, SQuAD-style);
* translation: :func:`bleu` and :func:`chrf` (sacrebleu).

Scales: accuracy, F1, precision, recall and exact match are fractions in [0, 1]; BLEU and chrF are on
sacrebleu's 0-100 scale, as papers quote them.

``evaluate.load("accuracy")`` needs the Hugging Face hub; :func:`load` returns the same kind of
``evaluate`` metric from a module shipped inside this package, so it works offline and gives the same
numbers as the plain functions here.

Example:
    >>> from ftutils import metrics
    >>> metrics.accuracy([0, 1, 1, 0], [0, 1, 0, 0])
    0.75
    >>> metrics.span_f1([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]])["f1"]
    1.0
    >>> metrics.squad(["the Eiffel Tower"], [["Eiffel Tower", "the tower"]])["exact_match"]
    1.0
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

MODULES_DIR = Path(__file__).with_name("metric_modules")
MODULE_NAMES: tuple[str, ...] = ("accuracy", "macro_f1", "confusion_matrix", "span_f1", "squad", "bleu", "chrf")


def _as_labels(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 2:  # logits or probabilities: the predicted class is the arg-max
        array = array.argmax(axis=-1)
    if array.ndim != 1:
        raise ValueError(
            f"{name} has shape {array.shape}: expected one label per example (1-D) or one row of scores per "
            "example (2-D logits)."
        )
    return array


def _check_pair(predictions: Any, references: Any) -> tuple[np.ndarray, np.ndarray]:
    pred = _as_labels(predictions, "predictions")
    ref = _as_labels(references, "references")
    if len(pred) != len(ref):
        raise ValueError(
            f"{len(pred)} predictions but {len(ref)} references: pass one prediction per reference."
        )
    if len(ref) == 0:
        raise ValueError("No examples: predictions and references are empty.")
    return pred, ref


def accuracy(predictions: Any, references: Any) -> float:
    """Fraction of predictions equal to the reference label (2-D ``predictions`` are arg-maxed logits).

    Example:
        >>> accuracy([[0.1, 0.9], [0.8, 0.2]], [1, 1])
        0.5
    """
    pred, ref = _check_pair(predictions, references)
    return float(np.mean(pred == ref))


def confusion_matrix(predictions: Any, references: Any, labels: Sequence[Any] | None = None) -> np.ndarray:
    """Counts ``C[i, j]`` of examples whose reference is ``labels[i]`` and prediction ``labels[j]``.

    ``labels`` defaults to the sorted labels seen in either argument; pass it (e.g. ``range(k)``) to get a
    fixed k×k matrix.

    Example:
        >>> confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2]).tolist()
        [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    """
    pred, ref = _check_pair(predictions, references)
    labels = sorted(set(pred.tolist()) | set(ref.tolist())) if labels is None else list(labels)
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({v for v in (*pred.tolist(), *ref.tolist()) if v not in index}, key=str)
    if unknown:
        raise ValueError(f"Labels {unknown[:5]} are not in labels={labels!r}: add them or drop those examples.")
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, ([index[v] for v in ref.tolist()], [index[v] for v in pred.tolist()]), 1)
    return matrix


def macro_f1(predictions: Any, references: Any, labels: Sequence[Any] | None = None) -> float:
    """Unweighted mean over classes of each class's F1 (a class never predicted nor present scores 0).

    ``labels`` defaults to the labels seen in either argument (as scikit-learn does).

    Example:
        >>> round(macro_f1([0, 0, 1, 1], [0, 1, 1, 1]), 4)  # F1: class 0 = 2/3, class 1 = 4/5
        0.7333
    """
    matrix = confusion_matrix(predictions, references, labels)
    true_positive = np.diag(matrix).astype(float)
    denominator = matrix.sum(axis=0) + matrix.sum(axis=1)  # predicted + actual = 2TP + FP + FN
    f1 = np.divide(2 * true_positive, denominator, out=np.zeros_like(true_positive), where=denominator > 0)
    return float(f1.mean())


def bio_spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entity spans ``(type, start, end_exclusive)`` in one BIO-tagged sentence.

    Read as CoNLL's ``conlleval`` does: a ``B-X`` starts an entity; an ``I-X`` continues one of type X
    and otherwise starts a new one (so a stray ``I-X`` after ``O`` still counts); ``O`` ends it.
    ``E-``/``S-`` tags (BIOES) are read as ``I-``/``B-``.

    Example:
        >>> bio_spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"])
        [('PER', 0, 2), ('LOC', 3, 4), ('LOC', 4, 5), ('ORG', 5, 6)]
    """
    spans: list[tuple[str, int, int]] = []
    current: str | None = None
    start = 0
    for i, tag in enumerate(list(tags) + ["O"]):
        if not isinstance(tag, str):
            raise TypeError(f"Tag {tag!r} at position {i} is not a string: map label ids to names first.")
        if tag == "O" or tag == "":
            prefix, kind = "O", None
        elif len(tag) > 2 and tag[1] in "-_" and tag[0] in "BIES":
            prefix, kind = tag[0], tag[2:]
        else:
            raise ValueError(f"Tag {tag!r} at position {i} is not BIO: expected 'O', 'B-TYPE' or 'I-TYPE'.")
        starts_new = prefix in ("B", "S") or (prefix in ("I", "E") and kind != current)
        if current is not None and (prefix == "O" or starts_new):
            spans.append((current, start, i))
            current = None
        if prefix != "O" and current is None:
            current, start = kind, i
    return spans


def span_f1(
    predictions: Sequence[Sequence[str]],
    references: Sequence[Sequence[str]],
    label_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Entity-level precision, recall and F1: an entity counts only if type and both boundaries match.

    Returns micro-averaged ``precision``, ``recall``, ``f1`` over all entities, ``accuracy`` (token
    level), and ``per_type``: ``{type: {"precision", "recall", "f1", "support"}}`` (support = number of
    reference entities). Sentences are lists of BIO tag strings, or of label ids together with
    ``label_names``. Labels like ``-100`` (ignored sub-word positions) must be removed first.

    Example:
        >>> out = span_f1([["B-PER", "O", "B-LOC"]], [["B-PER", "O", "B-ORG"]])
        >>> out["precision"], out["recall"], out["per_type"]["PER"]["f1"], out["per_type"]["ORG"]["recall"]
        (0.5, 0.5, 1.0, 0.0)
    """
    if len(predictions) != len(references):
        raise ValueError(
            f"{len(predictions)} predicted sentences but {len(references)} reference sentences: pass one per sentence."
        )
    found: Counter[str] = Counter()
    gold: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    tokens = tokens_right = 0
    for n, (pred, ref) in enumerate(zip(predictions, references)):
        if label_names is not None:
            pred = [label_names[int(t)] for t in pred]
            ref = [label_names[int(t)] for t in ref]
        if len(pred) != len(ref):
            raise ValueError(
                f"Sentence {n}: {len(pred)} predicted tags but {len(ref)} reference tags; "
                "align predictions to the reference tokens (drop -100 positions) first."
            )
        pred_spans, ref_spans = set(bio_spans(pred)), set(bio_spans(ref))
        found.update(kind for kind, _, _ in pred_spans)
        gold.update(kind for kind, _, _ in ref_spans)
        correct.update(kind for kind, _, _ in pred_spans & ref_spans)
        tokens += len(ref)
        tokens_right += sum(p == r for p, r in zip(pred, ref))

    def prf(c: int, f: int, g: int) -> tuple[float, float, float]:
        precision = c / f if f else 0.0
        recall = c / g if g else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1

    per_type = {}
    for kind in sorted(set(found) | set(gold)):
        p, r, f = prf(correct[kind], found[kind], gold[kind])
        per_type[kind] = {"precision": p, "recall": r, "f1": f, "support": gold[kind]}
    p, r, f = prf(sum(correct.values()), sum(found.values()), sum(gold.values()))
    return {
        "precision": p,
        "recall": r,
        "f1": f,
        "accuracy": tokens_right / tokens if tokens else 0.0,
        "per_type": per_type,
    }


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lower case, drop punctuation and the articles a/an/the, squeeze spaces.

    Example:
        >>> normalize_answer("The  Eiffel-Tower!")
        'eiffeltower'
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _token_f1(prediction: str, reference: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    ref_tokens = normalize_answer(reference).split()
    if not pred_tokens or not ref_tokens:  # SQuAD 2.0 convention: both empty = match
        return float(pred_tokens == ref_tokens)
    common = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def squad(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> dict[str, float]:
    """SQuAD-style ``exact_match`` and token ``f1``, each the best over an example's gold answers, averaged.

    ``references`` holds, per question, one answer string or a list of acceptable answers. Fractions in
    [0, 1] (the official script prints them ×100).

    Example:
        >>> out = squad(["Denver Broncos", "1990"], [["Denver Broncos", "The Broncos"], ["in 1991"]])
        >>> out["exact_match"], round(out["f1"], 4)  # second: F1(["1990"], ["in", "1991"]) = 0
        (0.5, 0.5)
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references: pass one per question.")
    if not predictions:
        raise ValueError("No examples: predictions and references are empty.")
    exact = f1 = 0.0
    for n, (pred, golds) in enumerate(zip(predictions, references)):
        golds = [golds] if isinstance(golds, str) else list(golds)
        if not golds:
            raise ValueError(f"Question {n} has no reference answer: give at least one (may be '').")
        exact += max(float(normalize_answer(pred) == normalize_answer(g)) for g in golds)
        f1 += max(_token_f1(pred, g) for g in golds)
    return {"exact_match": exact / len(predictions), "f1": f1 / len(predictions)}


def _reference_streams(predictions: Sequence[str], references: Sequence[str | Sequence[str]]) -> list[list[str]]:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references: pass one per sentence.")
    per_sentence = [[r] if isinstance(r, str) else list(r) for r in references]
    counts = {len(r) for r in per_sentence}
    if len(counts) > 1:
        raise ValueError(
            f"Sentences have different numbers of references ({sorted(counts)}): sacrebleu needs the same "
            "number for every sentence."
        )
    # sacrebleu wants one stream per reference "set": transpose sentence-major to set-major.
    return [list(stream) for stream in zip(*per_sentence)]


def bleu(
    predictions: Sequence[str], references: Sequence[str | Sequence[str]], *, tokenize: str = "13a"
) -> dict[str, float]:
    """Corpus BLEU (sacrebleu, 0-100) with one or several references per sentence.

    ``tokenize``: sacrebleu's tokenizer ("13a" default, "zh" for Chinese, "char", "intl", …).

    Example:
        >>> round(bleu(["the cat sat on the mat"], ["the cat sat on the mat"])["bleu"], 6)
        100.0
    """
    import sacrebleu

    result = sacrebleu.corpus_bleu(list(predictions), _reference_streams(predictions, references), tokenize=tokenize)
    return {
        "bleu": float(result.score),
        "brevity_penalty": float(result.bp),
        "precisions": [float(p) for p in result.precisions],
    }


def chrf(predictions: Sequence[str], references: Sequence[str | Sequence[str]], *, word_order: int = 0) -> dict[str, float]:
    """Corpus chrF (sacrebleu, 0-100); ``word_order=2`` gives chrF++.

    Example:
        >>> chrf(["Bonjour le monde"], ["Bonjour le monde"])["chrf"]
        100.0
    """
    import sacrebleu

    result = sacrebleu.corpus_chrf(list(predictions), _reference_streams(predictions, references), word_order=word_order)
    return {"chrf": float(result.score)}


def load(name: str, **kwargs: Any) -> Any:
    """The ``evaluate`` metric ``name`` from this package's local modules (works with ``HF_HUB_OFFLINE=1``).

    Names: accuracy, macro_f1, confusion_matrix, span_f1, squad, bleu, chrf. ``kwargs`` go to
    ``evaluate.load`` (e.g. ``experiment_id``).

    Example:
        >>> from ftutils import metrics
        >>> metrics.load("accuracy").compute(predictions=[0, 1], references=[0, 0])
        {'accuracy': 0.5}
    """
    if name not in MODULE_NAMES:
        raise ValueError(
            f"Unknown metric {name!r}: expected one of {', '.join(MODULE_NAMES)}. For the hub's metrics "
            "(online only) call evaluate.load directly."
        )
    import evaluate

    return evaluate.load(str(MODULES_DIR / name), **kwargs)


__all__ = [
    "MODULE_NAMES",
    "accuracy",
    "bio_spans",
    "bleu",
    "chrf",
    "confusion_matrix",
    "load",
    "macro_f1",
    "normalize_answer",
    "span_f1",
    "squad",
]
