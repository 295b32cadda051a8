"""Text in a language the tokenizer was not built for: measuring the damage, a baseline, and a repair.

An English WordPiece vocabulary (MiniLM's, 30,522 entries) holds a few hundred CJK characters; every
other character becomes ``[UNK]``, and a sentence whose key words are ``[UNK]`` cannot be understood by
any amount of fine-tuning. :func:`unknown_token_rate` measures it before training. :func:`char_bigrams`
gives Chinese text "words" a bag-of-words baseline can count (Chinese has no spaces between words).

:func:`extend_vocabulary` repairs the tokenizer: it adds the missing characters of some training text
and estimates an embedding row for each from that text alone (no labels), so the pretrained
Transformer layers get inputs they can use; :meth:`VocabularyExtension.apply` gives a model the rows,
:func:`nearest_known` shows which old characters a new one starts near.

Example:
    >>> char_bigrams("很好用")
    '很好 好用'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["unknown_token_rate", "char_bigrams", "is_cjk", "missing_characters", "character_vectors",
           "VocabularyExtension", "extend_vocabulary", "nearest_known", "EXTENSION_INITS"]


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


# --------------------------------------------------------------------------------------------------
# Extending a vocabulary: new rows for the characters the tokenizer lacks

EXTENSION_INITS = ("aligned", "mean")


def is_cjk(char: str) -> bool:
    """Whether ``char`` is a CJK unified ideograph (the blocks BERT's tokenizer splits one by one).

    Example:
        >>> is_cjk("好"), is_cjk("a"), is_cjk("。")
        (True, False, False)
    """
    code = ord(char)
    return (0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0x20000 <= code <= 0x2A6DF
            or 0x2A700 <= code <= 0x2CEAF or 0xF900 <= code <= 0xFAFF or 0x2F800 <= code <= 0x2FA1F)


def missing_characters(tokenizer: Any, texts: Sequence[str], *, min_count: int = 1) -> list[str]:
    """CJK characters of ``texts`` that ``tokenizer`` turns into its unknown token, most frequent first.

    Only characters seen at least ``min_count`` times count; ties keep the order of first appearance.
    """
    counts = Counter(c for text in texts for c in text if is_cjk(c))
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return []
    frequent = [c for c, n in counts.most_common() if n >= min_count]
    ids = tokenizer(frequent, add_special_tokens=False)["input_ids"] if frequent else []
    return [c for c, piece in zip(frequent, ids) if piece == [unk]]


def character_vectors(texts: Sequence[str], *, dim: int = 100, window: int = 2,
                      seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Distributional vectors for every character of ``texts`` (spaces excluded): PPMI, then SVD.

    Two characters get similar vectors when they appear beside the same characters (within ``window``
    positions), the unlabelled-text signal word2vec and GloVe learn from. Counting co-occurrences,
    keeping the positive pointwise mutual information and truncating it to ``dim`` dimensions with a
    seeded randomised SVD takes seconds for a few thousand sentences. Returns the characters and their
    vectors (one row each, ``U * sqrt(S)``).

    Example:
        >>> chars, vectors = character_vectors(["我爱北京", "我爱上海", "你爱北京"], dim=2)
        >>> len(chars), vectors.shape
        (7, (7, 2))
    """
    from scipy import sparse
    from sklearn.utils.extmath import randomized_svd

    if dim < 1 or window < 1:
        raise ValueError(f"dim and window must be at least 1, got dim={dim}, window={window}.")
    sequences = ["".join(text.split()) for text in texts]
    chars = sorted({c for text in sequences for c in text})
    if len(chars) < 2:
        raise ValueError("texts hold fewer than two distinct characters: nothing to learn vectors from.")
    index = {c: i for i, c in enumerate(chars)}
    rows, cols = [], []
    for text in sequences:
        ids = [index[c] for c in text]
        for offset in range(1, window + 1):
            rows += ids[:-offset] + ids[offset:]
            cols += ids[offset:] + ids[:-offset]
    counts = sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(chars), len(chars))).tocsr()
    total, row_sums, col_sums = counts.sum(), np.asarray(counts.sum(1)).ravel(), np.asarray(counts.sum(0)).ravel()
    coo = counts.tocoo()
    pmi = np.log(coo.data * total / (row_sums[coo.row] * col_sums[coo.col]))
    keep = pmi > 0
    ppmi = sparse.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=counts.shape)
    k = min(dim, len(chars) - 1)
    u, s, _ = randomized_svd(ppmi, k, random_state=seed)
    return chars, u * np.sqrt(s)


@dataclass
class VocabularyExtension:
    """New tokens for a tokenizer and the embedding rows they start from (see :func:`extend_vocabulary`).

    ``tokenizer`` is an extended copy (the original is untouched); :meth:`apply` gives a model the new
    rows. ``anchors`` is how many characters were both in the old vocabulary and in the texts: the
    aligned initialisation learns its map from them.
    """

    tokenizer: Any
    new_tokens: list[str]
    rows: Any  # torch.Tensor (len(new_tokens), hidden size)
    init: str
    anchors: int

    def apply(self, model: Any, *, estimated_rows: bool = True, mark_new: bool = True) -> Any:
        """Resize ``model``'s input embeddings to the extended tokenizer and write the new rows.

        Old rows are kept as they are. ``estimated_rows=False`` leaves the new rows as the model's own
        initialiser draws them (random), for a model trained from scratch. With ``mark_new`` the
        embedding table joins the parameters :func:`ftutils.anatomy.marked_new_parameters` lists, so the
        trainer gives it the new head's larger learning rate (its new rows start from an estimate, not
        from pretraining). Returns the model.
        """
        import torch

        from ftutils import anatomy

        embeddings = model.get_input_embeddings()
        old_size = embeddings.weight.shape[0]
        if old_size + len(self.new_tokens) != len(self.tokenizer):
            raise ValueError(f"the model has {old_size} embedding rows but the extension was built for a "
                             f"vocabulary of {len(self.tokenizer) - len(self.new_tokens)}: build it from this "
                             "model's own tokenizer and embeddings.")
        model.resize_token_embeddings(len(self.tokenizer), mean_resizing=False)
        if estimated_rows:
            with torch.no_grad():
                model.get_input_embeddings().weight[old_size:] = self.rows.to(embeddings.weight.dtype)
        if mark_new:
            name = next(n for n, p in model.named_parameters() if p is model.get_input_embeddings().weight)
            marked = anatomy.marked_new_parameters(model) or ()
            anatomy.mark_new_parameters(model, [*marked, name] if name not in marked else marked)
        return model


def extend_vocabulary(tokenizer: Any, model: Any, texts: Sequence[str], *, init: str = "aligned",
                      min_count: int = 1, dim: int = 100, window: int = 2, ridge: float = 0.1,
                      seed: int = 0) -> VocabularyExtension:
    """Add the CJK characters of ``texts`` that ``tokenizer`` lacks, with a starting embedding for each.

    ``init="aligned"`` learns character vectors from ``texts`` themselves (:func:`character_vectors`,
    no labels needed), fits a ridge map from those vectors to the model's embeddings on the *anchor*
    characters (in the vocabulary and in the texts), and sends each new character through it, rescaled
    to the anchors' mean norm: a new character starts near the pretrained characters it is used like.
    ``init="mean"`` starts every new row at the mean of the old rows (what a plain resize does).
    ``model`` is only read (its input embeddings); use :meth:`VocabularyExtension.apply` on each model
    to train. ``ridge`` scales the map's L2 penalty relative to the vectors' mean squared norm.
    """
    import copy

    import torch

    if init not in EXTENSION_INITS:
        raise ValueError(f"init={init!r} is not one of {EXTENSION_INITS}.")
    new = missing_characters(tokenizer, texts, min_count=min_count)
    if not new:
        raise ValueError("the texts hold no CJK character this tokenizer lacks: there is nothing to add.")
    extended = copy.deepcopy(tokenizer)
    extended.add_tokens(new)
    table = model.get_input_embeddings().weight.detach().float().cpu().numpy()
    vocab = tokenizer.get_vocab()
    if init == "mean":
        rows = np.tile(table.mean(0), (len(new), 1))
        return VocabularyExtension(extended, new, torch.tensor(rows, dtype=torch.float32), init, 0)
    chars, vectors = character_vectors(texts, dim=dim, window=window, seed=seed)
    position = {c: i for i, c in enumerate(chars)}
    anchors = [c for c in chars if is_cjk(c) and c in vocab]
    if len(anchors) < 10:
        raise ValueError(f"only {len(anchors)} characters of the texts are in the vocabulary: too few to align "
                         'new rows with (need 10); use init="mean".')
    x = vectors[[position[c] for c in anchors]]
    y = table[[vocab[c] for c in anchors]]
    penalty = ridge * float((x ** 2).sum(1).mean())
    mapping = np.linalg.solve(x.T @ x + penalty * np.eye(x.shape[1]), x.T @ y)
    rows = vectors[[position[c] for c in new]] @ mapping
    target = float(np.linalg.norm(y, axis=1).mean())
    rows *= target / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-8)
    return VocabularyExtension(extended, new, torch.tensor(rows, dtype=torch.float32), init, len(anchors))


def nearest_known(extension: VocabularyExtension, model: Any, tokens: Sequence[str], *, k: int = 3) -> dict[str, list[str]]:
    """For each new token, the ``k`` old CJK characters whose pretrained rows are closest (cosine) to its start row.

    A look at what the aligned initialisation did: a new character should start near characters it
    is used like. ``model`` is the *unextended* model the extension was built from.
    """
    import torch

    vocab = extension.tokenizer.get_vocab()
    added = set(extension.new_tokens)
    old = [c for c in vocab if len(c) == 1 and is_cjk(c) and c not in added]
    table = model.get_input_embeddings().weight.detach().float()[[vocab[c] for c in old]]
    position = {t: i for i, t in enumerate(extension.new_tokens)}
    unknown = [t for t in tokens if t not in position]
    if unknown:
        raise ValueError(f"{unknown} are not new tokens of this extension: pick from extension.new_tokens.")
    rows = extension.rows[[position[t] for t in tokens]].float()
    cosine = torch.nn.functional.normalize(rows, dim=1) @ torch.nn.functional.normalize(table, dim=1).T
    return {t: [old[j] for j in cosine[i].topk(k).indices.tolist()] for i, t in enumerate(tokens)}
