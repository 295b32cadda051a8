"""Tests of ftutils.recipes: the one fine-tuning recipe gives what its steps, written out, give."""

from __future__ import annotations

import datasets
import numpy as np
import torch
import transformers

from ftutils import recipes, trainer
from ftutils.trainer import TrainingConfig


def _tiny_bert(seed: int) -> transformers.PreTrainedModel:
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=32, num_labels=2)
    return transformers.BertForSequenceClassification(cfg)


def _data(n: int, seed: int) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n).tolist()
    ids = [[1, 7 if y else 8, *rng.integers(10, 40, 5).tolist(), 2] for y in labels]
    return datasets.Dataset.from_dict({"input_ids": ids, "labels": labels})


def test_fine_tune_equals_its_steps_written_out_and_calls_the_hooks_in_order() -> None:
    train, test = _data(32, 0), _data(16, 1)
    config = TrainingConfig(epochs=2, batch_size=8, learning_rate=3e-3, eval_strategy="no", progress=False, seed=4)
    calls = []

    def regularizer(model):
        calls.append("regularizer")
        return None  # trainer.train accepts None: no regulariser

    run = recipes.fine_tune(_tiny_bert, train, test, config=config, regularizer=regularizer,
                            before_training=lambda model: calls.append("before_training"), test=test)
    assert calls == ["regularizer", "before_training"] and run.regularizer is None

    transformers.set_seed(config.seed)
    model = _tiny_bert(config.seed)
    result = trainer.train(model, train, test, config=config)
    assert run.result.global_step == result.global_step == 8
    assert run.result.final_metrics["eval_loss"] == result.final_metrics["eval_loss"]
    assert np.array_equal(run.test_logits, trainer.predict(model, test))


def test_fine_tune_without_test_has_no_logits() -> None:
    config = TrainingConfig(epochs=1, batch_size=8, eval_strategy="no", progress=False)
    assert recipes.fine_tune(_tiny_bert, _data(16, 0), config=config).test_logits is None
