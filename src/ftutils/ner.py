"""Named-entity recognition as token classification: word tags onto sub-word tokens and back.

A NER dataset tags *words* (``tokens`` + ``ner_tags`` columns, BIO scheme), but a transformer sees
*sub-word* tokens: "Lovelace" may become ``love ##lace``, and ``[CLS]``/``[SEP]`` belong to no word.
Training needs one label per sub-word token, evaluation one prediction per word:

* :func:`align_labels` gives each sub-word token a label. The convention here (as in the BERT paper
  and the Hugging Face course): the **first** sub-word of a word gets the word's tag; the **other**
  sub-words and the special tokens get ``-100``, which the cross-entropy loss ignores. With
  ``label_all_subwords=True`` the other sub-words get the word's tag instead, with ``B-X`` turned into
  ``I-X`` (the entity continues);
* :func:`tokenize_ner` tokenises a whole ``DatasetDict`` once, keeping each token's word index;
* :func:`word_predictions` reads the model's prediction for each word off its first sub-word (words cut
  off by truncation are predicted ``O``, so they count against recall, as they should);
* :class:`DictionaryTagger` is the cheap baseline: each training word's most frequent tag;
* :func:`entities` lists a sentence's entities as text, :func:`entity_examples` puts a tagger's found
  and missed entities beside the gold ones for a few sentences.

The exercise's auto-check is :func:`ftutils.checks.check_align_labels`.

Entity-level precision/recall/F1 per type is :func:`ftutils.metrics.span_f1`.

Example:
    >>> names = ["O", "B-PER", "I-PER"]
    >>> # [CLS] ada love ##lace wrote [SEP]  -> word ids None 0 1 1 2 None
    >>> align_labels([None, 0, 1, 1, 2, None], [1, 2, 0])
    [-100, 1, 2, -100, 0, -100]
    >>> align_labels([None, 0, 1, 1, 2, None], [1, 2, 0], label_all_subwords=True, label_names=names)
    [-100, 1, 2, 2, 0, -100]
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "align_labels",
    "tokenize_ner",
    "word_predictions",
    "DictionaryTagger",
    "entities",
    "entity_examples",
]

IGNORE = -100


def _b_to_i(label_names: Sequence[str]) -> dict[int, int]:
    """Map each ``B-X`` label id to the id of ``I-X`` (other ids map to themselves)."""
    index = {name: i for i, name in enumerate(label_names)}
    out = {}
    for i, name in enumerate(label_names):
        if name.startswith("B-") and f"I-{name[2:]}" in index:
            out[i] = index[f"I-{name[2:]}"]
        else:
            out[i] = i
    return out


def align_labels(
    word_ids: Sequence[int | None],
    word_labels: Sequence[int],
    *,
    label_all_subwords: bool = False,
    label_names: Sequence[str] | None = None,
) -> list[int]:
    """One label per sub-word token, from one label per word.

    Args:
        word_ids: for each token, the index of the word it came from, or ``None`` for special tokens
            (what a fast tokenizer's ``encoding.word_ids()`` returns).
        word_labels: the tag id of each word.
        label_all_subwords: ``False`` (default): only the first sub-word of a word gets its tag, the
            others ``-100``. ``True``: the others get the tag too, ``B-X`` changed to ``I-X``.
        label_names: the tag names, needed with ``label_all_subwords=True`` to find ``I-X`` for ``B-X``.

    Example:
        >>> align_labels([None, 0, 0, 1, None], [3, 0])
        [-100, 3, -100, 0, -100]
    """
    if label_all_subwords and label_names is None:
        raise ValueError("label_all_subwords=True needs label_names (to turn B-X into I-X).")
    b_to_i = _b_to_i(label_names) if label_all_subwords else {}
    labels: list[int] = []
    previous: int | None = None
    for word in word_ids:
        if word is None or word < 0:
            labels.append(IGNORE)
        elif word >= len(word_labels):
            raise ValueError(f"word id {word} but only {len(word_labels)} word labels: the tokens and "
                             "tags of this sentence do not match.")
        elif word != previous:
            labels.append(int(word_labels[word]))
        else:
            labels.append(b_to_i.get(int(word_labels[word]), int(word_labels[word])) if label_all_subwords
                          else IGNORE)
        previous = word if word is not None and word >= 0 else None
    return labels


def tokenize_ner(
    dsd: Any,
    tokenizer: Any,
    max_length: int,
    *,
    tokens_column: str = "tokens",
    tags_column: str = "ner_tags",
    label_all_subwords: bool = False,
) -> Any:
    """Tokenise pre-split words (``is_split_into_words=True``), truncated, not padded, labels aligned.

    Returns the same kind of object (``DatasetDict`` or ``Dataset``) with columns ``input_ids``,
    ``attention_mask`` (``token_type_ids``), ``labels`` (aligned, see :func:`align_labels`),
    ``word_ids`` (``-1`` for special tokens) and ``n_words``. Needs a *fast* tokenizer (for word ids).

    Example:
        >>> import datasets, ftutils.models  # doctest: +SKIP
        >>> tok = ftutils.models.load("minilm", "base")[1]  # doctest: +SKIP
        >>> ds = datasets.Dataset.from_dict({"tokens": [["Ada", "Lovelace"]], "ner_tags": [[1, 2]]})  # doctest: +SKIP
        >>> tokenize_ner(ds, tok, 16)[0]["labels"]  # doctest: +SKIP
        [-100, 1, 2, -100, -100]
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("tokenize_ner needs a fast tokenizer (it reads word_ids()); load one with use_fast=True.")
    label_names = None

    def encode(batch: Mapping[str, list]) -> dict[str, list]:
        enc = tokenizer(batch[tokens_column], is_split_into_words=True, truncation=True, max_length=max_length)
        out = dict(enc)
        out["labels"], out["word_ids"] = [], []
        for i, tags in enumerate(batch[tags_column]):
            ids = enc.word_ids(i)
            out["labels"].append(align_labels(ids, tags, label_all_subwords=label_all_subwords,
                                              label_names=label_names))
            out["word_ids"].append([-1 if w is None else w for w in ids])
        out["n_words"] = [len(t) for t in batch[tokens_column]]
        return out

    def one(split: Any) -> Any:
        nonlocal label_names
        for column in (tokens_column, tags_column):
            if column not in split.column_names:
                raise KeyError(f"No column {column!r} (columns: {split.column_names}); pass "
                               "tokens_column=/tags_column=.")
        feature = split.features[tags_column]
        label_names = list(getattr(getattr(feature, "feature", feature), "names", []) or []) or None
        return split.map(encode, batched=True, remove_columns=split.column_names)

    if isinstance(dsd, Mapping):
        import datasets

        return datasets.DatasetDict({name: one(split) for name, split in dsd.items()})
    return one(dsd)


def word_predictions(logits: np.ndarray, word_ids: Sequence[Sequence[int]], n_words: Sequence[int],
                     *, outside: int = 0) -> list[list[int]]:
    """Per-word predicted tag ids: argmax at each word's first sub-word; truncated words get ``outside``.

    ``logits`` is ``(sentences, tokens, tags)`` (padded rows are fine), ``word_ids`` per sentence as
    stored by :func:`tokenize_ner` (``-1`` = special token).

    Example:
        >>> logits = np.zeros((1, 4, 3)); logits[0, 1, 1] = logits[0, 2, 2] = logits[0, 3, 0] = 1
        >>> word_predictions(logits, [[-1, 0, 0, -1]], [2])
        [[1, 0]]
    """
    predictions = []
    for row, (ids, n) in enumerate(zip(word_ids, n_words)):
        words = [outside] * int(n)
        seen = set()
        for position, word in enumerate(ids):
            if word is None or word < 0 or word in seen:
                continue
            seen.add(word)
            words[word] = int(np.argmax(logits[row, position]))
        predictions.append(words)
    return predictions


class DictionaryTagger:
    """The cheapest NER baseline: tag each word with its most frequent tag in the training data.

    Words are matched case-insensitively; unseen words get ``O`` (id ``outside``). No context, no
    model: it finds the entities it has seen before, and nothing else.

    Example:
        >>> tagger = DictionaryTagger().fit([["Paris", "is", "nice"], ["paris"]], [[1, 0, 0], [1]])
        >>> tagger.predict([["PARIS", "rocks"]])
        [[1, 0]]
    """

    def __init__(self, outside: int = 0) -> None:
        self.outside = outside
        self.table: dict[str, int] = {}

    def fit(self, sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[int]]) -> DictionaryTagger:
        counts: dict[str, Counter] = defaultdict(Counter)
        for words, labels in zip(sentences, tags):
            if len(words) != len(labels):
                raise ValueError(f"{len(words)} words but {len(labels)} tags in one sentence.")
            for word, label in zip(words, labels):
                counts[word.casefold()][int(label)] += 1
        # ties broken by the smaller tag id (O = 0 first), so the result does not depend on order
        self.table = {w: min(c, key=lambda t: (-c[t], t)) for w, c in counts.items()}
        return self

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[list[int]]:
        return [[self.table.get(w.casefold(), self.outside) for w in words] for words in sentences]


def entities(tokens: Sequence[str], tags: Sequence[int], label_names: Sequence[str], *, joiner: str = " ") -> list[str]:
    """The entities of one tagged sentence as ``"type: words"`` strings, in order.

    ``joiner`` glues an entity's words (``""`` for Chinese, one character per word).

    Example:
        >>> entities(["Ada", "Lovelace", "met", "Babbage"], [1, 2, 0, 1], ["O", "B-person", "I-person"])
        ['person: Ada Lovelace', 'person: Babbage']
    """
    from ftutils.metrics import bio_spans

    names = [label_names[t] for t in tags]
    return [f"{kind}: {joiner.join(tokens[start:end])}" for kind, start, end in bio_spans(names)]


def entity_examples(tokens: Sequence[Sequence[str]], predicted: Sequence[Sequence[int]], gold: Sequence[Sequence[int]],
                    label_names: Sequence[str], *, n: int = 2, joiner: str = " ", width: int = 80) -> Any:
    """A table of ``n`` sentences whose entities a tagger got exactly right and ``n`` it got wrong
    (only sentences with at least one gold entity), with the gold and predicted entities.

    Example:
        >>> names = ["O", "B-person", "I-person"]
        >>> table = entity_examples([["Ada", "wrote"], ["Bob", "ran"]], [[1, 0], [0, 0]], [[1, 0], [1, 0]], names, n=1)
        >>> table[["gold", "predicted", "exact"]].values.tolist()
        [['person: Ada', 'person: Ada', True], ['person: Bob', '', False]]
    """
    import pandas as pd

    if not len(tokens) == len(predicted) == len(gold):
        raise ValueError(f"tokens, predicted and gold differ in length: {len(tokens)}, {len(predicted)}, {len(gold)}.")
    rows: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for words, pred, ref in zip(tokens, predicted, gold):
        want = entities(words, ref, label_names, joiner=joiner)
        if not want:
            continue
        got = entities(words, pred, label_names, joiner=joiner)
        exact = got == want
        if len(rows[exact]) < n:
            text = joiner.join(words)
            rows[exact].append({"sentence": text if len(text) <= width else text[:width - 1] + "…",
                                "gold": "; ".join(want), "predicted": "; ".join(got), "exact": exact})
    return pd.DataFrame(rows[True] + rows[False], columns=["sentence", "gold", "predicted", "exact"])
