"""Text in a language the tokenizer was not built for: measuring the damage, and a baseline that copes.

An English WordPiece vocabulary (MiniLM's, 30,522 entries) holds a few thousand CJK characters at
most; every other character becomes ``[UNK]``, and a sentence whose key words are ``[UNK]`` cannot be
understood by any amount of fine-tuning. :func:`unknown_token_rate` measures it before training.
:func:`char_bigrams` gives Chinese text "words" a bag-of-words baseline can count (Chinese has no
spaces between words).

Example:
    >>> char_bigrams("很好用")
    '很好 好用'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["unknown_token_rate", "char_bigrams"]


def unknown_token_rate(tokenizer: Any, texts: Sequence[str]) -> dict[str, float]:
    """Share of tokens that are the unknown token, and share of texts with at least one.

    Special tokens ([CLS], [SEP]) are not counted. A tokenizer without an unknown token (byte-level BPE,
    as in GPT-2 or SmolLM2) has rate 0 by construction.

    Returns ``{"unk_rate", "texts_with_unk", "tokens_per_char"}``.

    Example:
        >>> class Toy:
        ...     unk_token_id = 0
        ...     def __call__(self, texts, add_special_tokens=False):
        ...         return {"input_ids": [[0 if c == "?" else 1 for c in t] for t in texts]}
        >>> unknown_token_rate(Toy(), ["ab?", "cd"])
        {'unk_rate': 0.2, 'texts_with_unk': 0.5, 'tokens_per_char': 1.0}
    """
    if not texts:
        raise ValueError("texts is empty: pass at least one text.")
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    unk = getattr(tokenizer, "unk_token_id", None)
    n_tokens = sum(len(x) for x in ids)
    n_unk = sum(sum(1 for t in x if t == unk) for x in ids) if unk is not None else 0
    with_unk = sum(1 for x in ids if unk is not None and unk in x)
    n_chars = sum(len(t) for t in texts)
    return {"unk_rate": n_unk / n_tokens if n_tokens else 0.0, "texts_with_unk": with_unk / len(texts),
            "tokens_per_char": n_tokens / n_chars if n_chars else 0.0}


def char_bigrams(text: str) -> str:
    """Overlapping character pairs, space-separated (spaces in the text are dropped first).

    Word-level TF-IDF (:func:`ftutils.baselines.tfidf_logreg`) then counts character bigrams, the usual
    bag-of-words unit for Chinese. A one-character text stays as it is.

    Example:
        >>> char_bigrams("好")
        '好'
    """
    chars = "".join(text.split())
    if len(chars) < 2:
        return chars
    return " ".join(chars[i:i + 2] for i in range(len(chars) - 1))
