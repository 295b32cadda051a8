"""Efficient batching: tokenise once, pad each batch only to its own longest example, group by length.

A CPU step costs time in proportion to the tokens in the padded batch, pad tokens included. Padding
every example to ``max_length`` (what many tutorials do) or mixing short and long examples in one batch
wastes most of that time on padding. Three pieces fix it:

* :func:`tokenize_classification` tokenises a :class:`datasets.DatasetDict` once, without padding;
* :class:`DynamicPaddingCollator` pads a batch to the length of its longest example;
* :class:`LengthGroupedBatchSampler` puts examples of similar length into the same batch while keeping
  the order random from epoch to epoch (seeded by ``seed`` and the epoch, so a resumed run sees the
  same batches as an uninterrupted one).

Example:
    >>> lengths = [5, 50, 6, 49, 7, 48, 8, 47]
    >>> sampler = LengthGroupedBatchSampler(lengths, batch_size=2, seed=0)
    >>> batches = list(sampler)
    >>> sorted(i for b in batches for i in b) == list(range(8))
    True
    >>> all(abs(lengths[b[0]] - lengths[b[-1]]) <= 3 for b in batches)
    True
    >>> collate = DynamicPaddingCollator(pad_token_id=0)
    >>> batch = collate([{"input_ids": [1, 2, 3], "label": 1}, {"input_ids": [4], "label": 0}])
    >>> batch["input_ids"].tolist(), batch["attention_mask"].tolist(), batch["labels"].tolist()
    ([[1, 2, 3], [4, 0, 0]], [[1, 1, 1], [1, 0, 0]], [1, 0])
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "tokenize_classification",
    "DynamicPaddingCollator",
    "LengthGroupedBatchSampler",
    "padding_fraction",
]

# Columns the collator pads with the tokenizer's pad id; any other sequence column is padded with 0
# except label sequences, which get -100 (ignored by the cross-entropy loss).
_PAD_WITH_TOKEN = ("input_ids",)
_LABEL_KEYS = ("labels", "label", "label_ids")


def tokenize_classification(
    dsd: Any,
    tokenizer: Any,
    max_length: int,
    *,
    text_column: str = "text",
    label_column: str = "label",
    text_pair_column: str | None = None,
) -> Any:
    """Tokenise every split of a classification ``DatasetDict`` once, truncated but not padded.

    Returns a DatasetDict (or Dataset, if given one) with columns ``input_ids``, ``attention_mask``
    (and ``token_type_ids`` when the tokenizer makes them) and ``labels``; the text columns are dropped.
    Padding happens per batch in :class:`DynamicPaddingCollator`.

    Example:
        >>> import datasets  # doctest: +SKIP
        >>> tok = ftutils.models.load("minilm", "base")[1]  # doctest: +SKIP
        >>> dsd = datasets.DatasetDict(train=datasets.Dataset.from_dict({"text": ["good", "bad"], "label": [1, 0]}))  # doctest: +SKIP
        >>> tokenize_classification(dsd, tok, max_length=16)["train"].column_names  # doctest: +SKIP
        ['labels', 'input_ids', 'token_type_ids', 'attention_mask']
    """
    if not isinstance(max_length, int) or max_length < 2:
        raise ValueError(f"max_length={max_length!r} is not allowed: expected an integer >= 2, e.g. 128.")

    def check(split: Any, name: str) -> None:
        for column in (text_column, label_column) + ((text_pair_column,) if text_pair_column else ()):
            if column not in split.column_names:
                raise KeyError(
                    f"Split {name!r} has no column {column!r} (it has {split.column_names}). Pass "
                    f"text_column=/label_column= naming the text and label columns."
                )

    def encode(batch: Mapping[str, list]) -> dict[str, list]:
        pair = batch[text_pair_column] if text_pair_column else None
        out = dict(tokenizer(batch[text_column], pair, truncation=True, max_length=max_length))
        out["labels"] = batch[label_column]
        return out

    def one(split: Any, name: str) -> Any:
        check(split, name)
        return split.map(encode, batched=True, remove_columns=split.column_names, desc=None)

    if isinstance(dsd, Mapping):  # DatasetDict is a dict of splits
        import datasets

        return datasets.DatasetDict({name: one(split, name) for name, split in dsd.items()})
    return one(dsd, "dataset")


class DynamicPaddingCollator:
    """Turn a list of tokenised examples into a batch of tensors padded to the longest example.

    ``input_ids`` are padded with ``pad_token_id``, ``attention_mask``/``token_type_ids`` with 0 and
    label sequences (token classification) with -100. A scalar ``label``/``labels`` becomes
    ``labels``. ``pad_to_multiple_of`` (e.g. 8) helps tensor cores on GPU; leave it ``None`` on CPU.

    Example:
        >>> DynamicPaddingCollator(pad_token_id=0)([{"input_ids": [7, 8]}, {"input_ids": [9]}])["input_ids"]
        tensor([[7, 8],
                [9, 0]])
    """

    def __init__(self, pad_token_id: int, *, pad_to_multiple_of: int | None = None) -> None:
        if pad_token_id is None:
            raise ValueError(
                "pad_token_id is None: the tokenizer has no pad token. Set one first, e.g. "
                "`tokenizer.pad_token = tokenizer.eos_token`."
            )
        if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of={pad_to_multiple_of!r}: expected a positive integer or None.")
        self.pad_token_id = int(pad_token_id)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("Cannot collate an empty list of examples.")
        first = examples[0]
        if "input_ids" not in first:
            raise KeyError(f"Examples need an 'input_ids' field; got fields {sorted(first)}. Tokenise first.")
        longest = max(len(ex["input_ids"]) for ex in examples)
        if self.pad_to_multiple_of:
            longest = int(math.ceil(longest / self.pad_to_multiple_of) * self.pad_to_multiple_of)
        batch: dict[str, torch.Tensor] = {}
        for key, value in first.items():
            values = [ex[key] for ex in examples]
            name = "labels" if key in _LABEL_KEYS else key
            if isinstance(value, (list, tuple, np.ndarray, torch.Tensor)) and np.ndim(value) == 1:
                if key in _PAD_WITH_TOKEN:
                    pad = self.pad_token_id
                elif key in _LABEL_KEYS:
                    pad = -100
                else:
                    pad = 0
                out = torch.full((len(values), longest), pad, dtype=torch.long)
                for row, seq in enumerate(values):
                    out[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
                batch[name] = out
            elif isinstance(value, (int, np.integer, bool)):
                batch[name] = torch.tensor(values, dtype=torch.long)
            elif isinstance(value, (float, np.floating)):
                batch[name] = torch.tensor(values, dtype=torch.float32)
            # strings and other metadata are dropped: the model cannot take them
        if "attention_mask" not in batch:
            lengths = torch.tensor([len(ex["input_ids"]) for ex in examples])
            batch["attention_mask"] = (torch.arange(longest)[None, :] < lengths[:, None]).long()
        return batch


class LengthGroupedBatchSampler:
    """Batches of indices whose examples have similar lengths, in a random but reproducible order.

    Each epoch: shuffle all indices (seed + epoch), cut them into "mega-batches" of
    ``mega_batch_factor * batch_size`` examples, sort each mega-batch by length (longest first) and
    cut it into batches, then shuffle the batch order. The longest batch always comes first, so an
    out-of-memory error shows at step one rather than late in an epoch. ``group_by_length=False`` gives
    plain shuffled batches with the same seeding (the baseline).

    ``num_replicas``/``rank`` shard each batch across processes: every process builds the same global
    batches of ``batch_size * num_replicas`` examples and takes its slice, so N processes with batch
    ``b`` see exactly the data one process with batch ``N*b`` sees.

    Call :meth:`set_epoch` before each epoch. ``len()`` is the number of batches per epoch.

    Example:
        >>> s = LengthGroupedBatchSampler([3, 1, 2, 9], batch_size=2, seed=1)
        >>> s.set_epoch(0); a = list(s); s.set_epoch(0); a == list(s)
        True
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        shuffle: bool = True,
        group_by_length: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        mega_batch_factor: int = 50,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} is not allowed: expected a positive integer.")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank={rank} is not allowed with num_replicas={num_replicas}: expected 0 <= rank < num_replicas.")
        if len(lengths) == 0:
            raise ValueError("lengths is empty: the dataset has no examples to batch.")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.group_by_length = group_by_length
        self.seed = seed
        self.drop_last = drop_last
        self.mega_batch_factor = mega_batch_factor
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.num_replicas

    def global_batches(self) -> list[np.ndarray]:
        """The batches of all processes together for the current epoch (same on every process)."""
        n = len(self.lengths)
        size = self.global_batch_size
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.group_by_length:
            mega = size * self.mega_batch_factor
            chunks = [order[i : i + mega] for i in range(0, n, mega)]
            # stable sort keeps the shuffled order among equal lengths
            order = np.concatenate([c[np.argsort(-self.lengths[c], kind="stable")] for c in chunks])
        batches = [order[i : i + size] for i in range(0, n, size)]
        if self.drop_last and len(batches[-1]) < size:
            batches = batches[:-1]
        if self.group_by_length and self.shuffle and len(batches) > 1:
            longest = max(range(len(batches)), key=lambda i: int(self.lengths[batches[i]].max()))
            batches[0], batches[longest] = batches[longest], batches[0]
            rest = batches[1:]
            perm = rng.permutation(len(rest))
            batches = [batches[0]] + [rest[i] for i in perm]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches():
            # contiguous slices keep each process's examples of similar length too
            per = int(math.ceil(len(batch) / self.num_replicas))
            mine = batch[self.rank * per : (self.rank + 1) * per]
            if len(mine) == 0:  # a tiny last batch: repeat one example rather than stall a process
                mine = batch[-1:]
            yield mine.tolist()

    def __len__(self) -> int:
        n = len(self.lengths)
        size = self.global_batch_size
        return n // size if self.drop_last else int(math.ceil(n / size))


def padding_fraction(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Share of the tokens in padded batches that are padding (0 = none wasted).

    Example:
        >>> round(padding_fraction([1, 3], [[0, 1]]), 3)
        0.333
    """
    lengths = np.asarray(lengths)
    real = padded = 0
    for b in batches:
        ls = lengths[list(b)]
        real += int(ls.sum())
        padded += int(ls.max()) * len(ls)
    return 1.0 - real / padded if padded else 0.0
