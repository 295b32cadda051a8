"""Tests for ftutils.ner: sub-word label alignment, word-level predictions, the dictionary baseline."""

import datasets
import numpy as np
import pytest
import transformers

from ftutils import models, ner

NAMES = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


@pytest.fixture(scope="module")
def tokenizer():
    return transformers.AutoTokenizer.from_pretrained(models.resolve("minilm"))


def test_align_labels_hand_made():
    # [CLS] ada love ##lace visited paris [SEP]
    word_ids = [None, 0, 1, 1, 2, 3, None]
    tags = [1, 2, 0, 3]
    assert ner.align_labels(word_ids, tags) == [-100, 1, 2, -100, 0, 3, -100]
    assert ner.align_labels(word_ids, tags, label_all_subwords=True, label_names=NAMES) == [-100, 1, 2, 2, 0, 3, -100]
    # a split B- word: later pieces become I- of the same type
    assert ner.align_labels([None, 0, 0, None], [3], label_all_subwords=True, label_names=NAMES) == [-100, 3, 4, -100]


def test_align_labels_errors():
    with pytest.raises(ValueError, match="label_names"):
        ner.align_labels([0], [1], label_all_subwords=True)
    with pytest.raises(ValueError, match="word id 2"):
        ner.align_labels([None, 0, 2], [1, 0])


def test_tokenize_ner_with_real_tokenizer(tokenizer):
    words = ["Ada", "Lovelace", "visited", "Llanfairpwllgwyngyll"]
    ds = datasets.Dataset.from_dict({"tokens": [words], "ner_tags": [[1, 2, 0, 3]]},
                                    features=datasets.Features({
                                        "tokens": datasets.Sequence(datasets.Value("string")),
                                        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=NAMES))}))
    row = ner.tokenize_ner(ds, tokenizer, 64)[0]
    pieces = tokenizer.convert_ids_to_tokens(row["input_ids"])
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]"
    assert len(row["labels"]) == len(row["input_ids"]) == len(row["word_ids"])
    # exactly one labelled token per word, carrying that word's tag, in order
    labelled = [label for label in row["labels"] if label != -100]
    assert labelled == [1, 2, 0, 3]
    assert len(pieces) > len(words) + 2  # some word was split
    assert row["n_words"] == 4
    # truncation: the last words are cut and predicted O
    short = ner.tokenize_ner(ds, tokenizer, 4)[0]
    assert len(short["input_ids"]) == 4
    logits = np.zeros((1, 4, len(NAMES)))
    logits[0, :, 1] = 1.0
    preds = ner.word_predictions(logits, [short["word_ids"]], [short["n_words"]])
    assert len(preds[0]) == 4 and preds[0][-1] == 0


def test_word_predictions_first_subword():
    logits = np.zeros((1, 5, 3))
    logits[0, 1, 1] = 5  # word 0, first piece -> B
    logits[0, 2, 2] = 5  # word 0, second piece: ignored
    logits[0, 3, 2] = 5  # word 1
    assert ner.word_predictions(logits, [[-1, 0, 0, 1, -1]], [2]) == [[1, 2]]


def test_dictionary_tagger():
    tagger = ner.DictionaryTagger().fit([["Paris", "Paris", "paris", "rocks"]], [[3, 3, 1, 0]])
    assert tagger.predict([["PARIS", "rocks", "unseen"]]) == [[3, 0, 0]]
    with pytest.raises(ValueError):
        ner.DictionaryTagger().fit([["a"]], [[0, 1]])


def test_entities_and_examples_show_found_and_missed_entities():
    from ftutils.ner import entities, entity_examples

    names = ["O", "B-LOC", "I-LOC"]
    assert entities(list("北京大学"), [1, 2, 0, 0], names, joiner="") == ["LOC: 北京"]
    table = entity_examples([["in", "Paris"], ["no", "entity"], ["to", "New", "York"], ["at", "Rome"]],
                            [[0, 1], [0, 0], [0, 1, 0], [0, 0]], [[0, 1], [0, 0], [0, 1, 2], [0, 1]], names, n=2)
    assert table["exact"].tolist() == [True, False, False]  # the sentence without entities is skipped
    assert table["predicted"].tolist() == ["LOC: Paris", "LOC: New", ""]
    with pytest.raises(ValueError, match="differ in length"):
        entity_examples([["a"]], [], [[0]], names)
