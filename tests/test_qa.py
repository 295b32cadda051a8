"""Tests for ftutils.qa: building QA from NER, start/end features, answer post-processing, training wrapper."""

import numpy as np
import pytest
import torch
import transformers

from ftutils import metrics, models, qa

NAMES = ["O", "B-company", "I-company", "B-person", "I-person"]


@pytest.fixture(scope="module")
def tokenizer():
    return transformers.AutoTokenizer.from_pretrained(models.resolve("minilm"))


def test_ner_to_qa_hand_made():
    split = {"tokens": [["Tim", "Cook", "runs", "Apple", "and", "Apple", "Music"], ["nothing", "here"]],
             "ner_tags": [[3, 4, 0, 1, 0, 1, 2], [0, 0]]}
    rows = qa.ner_to_qa(split, NAMES, questions={"company": "Which company?", "person": "Who?"},
                        unanswerable_per_answerable=10)
    by_id = dict(zip(rows["id"], rows["answers"]))
    assert by_id["0-person"] == {"text": ["Tim Cook"], "answer_start": [0]}
    assert by_id["0-company"]["text"] == ["Apple", "Apple Music"]
    context = rows["context"][rows["id"].index("0-company")]
    for text, start in zip(by_id["0-company"]["text"], by_id["0-company"]["answer_start"]):
        assert context[start:start + len(text)] == text
    # the empty sentence gives unanswerable questions (all kept at this ratio)
    assert by_id["1-person"] == {"text": [], "answer_start": []}
    none = qa.ner_to_qa(split, NAMES, questions={"company": "Which company?"}, unanswerable_per_answerable=0)
    assert none["id"] == ["0-company"]
    with pytest.raises(ValueError, match="No entity type"):
        qa.ner_to_qa(split, NAMES, questions={"movie": "Which movie?"})


def test_prepare_features_and_round_trip(tokenizer):
    rows = {"question": ["Which company?", "Who?"], "context": ["I love Apple Music a lot", "no one here"],
            "answers": [{"text": ["Apple Music"], "answer_start": [7]}, {"text": [], "answer_start": []}]}
    features = qa.prepare_features(rows, tokenizer, 32)
    start, end = features["labels"][0]
    pieces = tokenizer.convert_ids_to_tokens(features["input_ids"][0][start:end + 1])
    assert pieces == ["apple", "music"]
    assert features["labels"][1] == [0, 0]
    # question tokens have no context offsets
    assert features["offsets"][0][1] is None and features["offsets"][0][start] is not None
    # gold positions as logits decode back to the answer text
    n = len(features["input_ids"][0])
    s, e = np.zeros(n), np.zeros(n)
    s[start], e[end] = 5.0, 5.0
    assert qa.best_answer(s, e, features["offsets"][0], rows["context"][0]) == "Apple Music"
    # an answer lost to truncation points at [CLS]
    cut = qa.prepare_features(rows, tokenizer, 7)
    assert cut["labels"][0] == [0, 0]


def test_best_answer_rules():
    offsets = [None, None, (0, 3), (4, 9), (10, 15)]
    context = "met Alice today"
    # end before start is not allowed: best valid span instead
    s = np.array([0, 0, 0, 0, 6.0]); e = np.array([0, 0, 0, 6.0, 0])
    # (start "today", end "Alice") would score 12; every valid span scores 6, the first found wins
    assert qa.best_answer(s, e, offsets, context) == "met Alice"
    # no answer wins when [CLS] scores highest; null_bias shifts it
    s = np.array([3.0, 0, 0, 1, 0]); e = np.array([3.0, 0, 0, 1, 0])
    assert qa.best_answer(s, e, offsets, context) == ""
    assert qa.best_answer(s, e, offsets, context, null_bias=-10) == "Alice"
    # max_answer_tokens
    s = np.array([0, 0, 5.0, 0, 0]); e = np.array([0, 0, 0, 0, 5.0])
    assert qa.best_answer(s, e, offsets, context, max_answer_tokens=2) != "met Alice today"
    assert metrics.squad([qa.best_answer(s, e, offsets, context)], [["met Alice today"]])["exact_match"] == 1.0


def test_qa_wrapper_trains_with_ftutils_trainer():
    from ftutils import trainer

    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=16)
    model = qa.QAForTrainer(transformers.BertForQuestionAnswering(cfg))
    data = {"input_ids": [[1, 5, 2, 7, 8, 9, 2]] * 16, "labels": [[4, 5]] * 16}
    before = trainer.evaluate(model, data)["eval_loss"]
    result = trainer.train(model, data, data, config=trainer.TrainingConfig(
        epochs=10, batch_size=8, learning_rate=1e-2, eval_strategy="no", progress=False))
    logits = trainer.predict(model, data)
    assert logits.shape == (16, 7, 2)
    assert logits[0, :, 0].argmax() == 4 and logits[0, :, 1].argmax() == 5
    assert result.final_metrics["eval_loss"] < before


def test_gazetteer():
    g = qa.GazetteerQA().fit(["company", "company", "company"],
                             [{"text": ["Apple"]}, {"text": ["Apple"]}, {"text": ["IBM"]}])
    assert g.predict(["company", "person"], ["IBM and Apple", "IBM"]) == ["Apple", ""]
