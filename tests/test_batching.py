"""Tests of ftutils.batching: tokenise once, dynamic padding, length-grouped reproducible batches."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import datasets
import numpy as np
import pytest
import torch

from ftutils.batching import DynamicPaddingCollator, LengthGroupedBatchSampler, padding_fraction, tokenize_classification


class WordTokenizer:
    """A stand-in tokenizer: one id per whitespace word, [CLS]=1 ... [SEP]=2."""

    def __call__(self, texts, pairs=None, truncation=True, max_length=8):
        ids = [[1, *[10 + len(w) for w in t.split()][: max_length - 2], 2] for t in texts]
        return {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids]}


def test_tokenize_classification_truncates_without_padding_and_keeps_labels():
    dsd = datasets.DatasetDict(
        train=datasets.Dataset.from_dict({"text": ["a bb", "one two three four five six seven"], "label": [0, 1]}),
        test=datasets.Dataset.from_dict({"text": ["x"], "label": [1]}),
    )
    out = tokenize_classification(dsd, WordTokenizer(), max_length=5)
    assert set(out) == {"train", "test"}
    assert out["train"]["input_ids"] == [[1, 11, 12, 2], [1, 13, 13, 15, 2]]
    assert out["train"]["labels"] == [0, 1] and "text" not in out["train"].column_names
    with pytest.raises(KeyError, match="text_column"):
        tokenize_classification(dsd, WordTokenizer(), max_length=5, text_column="sentence")
    with pytest.raises(ValueError, match="max_length"):
        tokenize_classification(dsd, WordTokenizer(), max_length=0)


def test_collator_pads_to_longest_and_handles_token_labels():
    collate = DynamicPaddingCollator(pad_token_id=3)
    batch = collate([
        {"input_ids": [1, 5, 2], "labels": [0, 4, 0], "id": "a"},
        {"input_ids": [1, 2], "labels": [0, 0], "id": "b"},
    ])
    assert batch["input_ids"].tolist() == [[1, 5, 2], [1, 2, 3]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[0, 4, 0], [0, 0, -100]]
    assert "id" not in batch and batch["input_ids"].dtype == torch.long
    assert DynamicPaddingCollator(0, pad_to_multiple_of=8)([{"input_ids": [1, 2, 3]}])["input_ids"].shape == (1, 8)
    with pytest.raises(ValueError, match="pad token"):
        DynamicPaddingCollator(None)


def test_sampler_covers_each_index_once_and_is_reproducible_per_epoch():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 200, size=1000).tolist()
    s = LengthGroupedBatchSampler(lengths, batch_size=32, seed=7, mega_batch_factor=10)
    epoch0 = list(s)
    assert sorted(i for b in epoch0 for i in b) == list(range(1000)) and len(epoch0) == len(s) == 32
    assert list(s) == epoch0
    s.set_epoch(1)
    assert list(s) != epoch0
    s.set_epoch(0)
    assert list(s) == epoch0
    assert max(lengths[i] for i in epoch0[0]) == max(lengths)  # the largest batch first: an out-of-memory error shows at step one
    plain = LengthGroupedBatchSampler(lengths, batch_size=32, seed=7, group_by_length=False)
    grouped_waste, plain_waste = padding_fraction(lengths, epoch0), padding_fraction(lengths, list(plain))
    assert grouped_waste < 0.1 < 0.4 < plain_waste


def test_sampler_shards_global_batches_across_processes():
    lengths = list(range(3, 53))
    one = list(LengthGroupedBatchSampler(lengths, batch_size=8, seed=1))
    shards = [list(LengthGroupedBatchSampler(lengths, batch_size=4, seed=1, num_replicas=2, rank=r)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == len(one)
    for glob, a, b in zip(one, *shards):
        assert a + b == glob
    with pytest.raises(ValueError, match="rank"):
        LengthGroupedBatchSampler(lengths, 4, num_replicas=2, rank=2)
    assert len(LengthGroupedBatchSampler(lengths, 8, drop_last=True)) == 6
