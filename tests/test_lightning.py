"""ftutils.lightning: the Lightning module takes the same step as a hand-written loop with L2-SP, and
learns a toy task; a tiny random BERT keeps it to seconds on a CPU."""

from __future__ import annotations

import copy
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
import transformers

from ftutils import lightning as ftl
from ftutils.regularizers import make_regularizer
from ftutils.trainer import build_param_groups


def tiny_bert(dropout: float = 0.0) -> transformers.BertForSequenceClassification:
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=64, num_labels=2,
                                  hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return transformers.BertForSequenceClassification(cfg)


def toy_data(n: int, seed: int = 0, length: int | None = None) -> dict[str, list]:
    """Label 1 iff the first word is token 7 (else 8)."""
    rng = np.random.default_rng(seed)
    ids, labels = [], []
    for _ in range(n):
        seq = rng.integers(10, 60, size=length or int(rng.integers(3, 16)))
        label = int(rng.integers(0, 2))
        seq[0] = 7 if label else 8
        ids.append([1, *seq.tolist(), 2])
        labels.append(label)
    return {"input_ids": ids, "labels": labels}


@pytest.mark.parametrize("kind", ["l2sp", "l2sp-decoupled"])
def test_one_lightning_step_equals_a_hand_written_regularised_step(kind):
    data = toy_data(8, length=10)  # one full batch of equal lengths: no padding, order irrelevant
    model, reference = tiny_bert(), tiny_bert()
    # move away from the anchor first, so the regulariser has something to pull
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
        for p in reference.parameters():
            p.add_(0.01)
    lam, lr = 0.5, 1e-3
    anchor_model = tiny_bert()
    reg = make_regularizer(kind, anchor_model, lam)
    reg_ref = make_regularizer(kind, anchor_model, lam)
    # bind the regularisers to the trained copies, anchored at the unperturbed weights
    reg._params = [dict(model.named_parameters())[n] for n in reg.anchored_names()]
    reg_ref._params = [dict(reference.named_parameters())[n] for n in reg_ref.anchored_names()]

    ftl.fit(model, data, data, epochs=1, batch_size=8, learning_rate=lr, lr_scheduler="constant",
            regularizer=reg, max_grad_norm=1.0)

    opt = torch.optim.AdamW(build_param_groups(reference, learning_rate=lr), lr=lr)
    batch = {"input_ids": torch.tensor(data["input_ids"]), "labels": torch.tensor(data["labels"]),
             "attention_mask": torch.ones(8, 12, dtype=torch.long)}
    reference.train()
    reference(**batch).loss.backward()
    reg_ref.before_step()
    torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
    opt.step()
    reg_ref.after_step(opt)
    for (name, a), b in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)


def test_lightning_learns_the_toy_task_and_reports_history():
    train_data, held_out = toy_data(128), toy_data(48, seed=1)
    model = tiny_bert(dropout=0.1)
    reg = make_regularizer("l2sp", model, 1e-3)
    out = ftl.fit(model, train_data, held_out, epochs=8, batch_size=16, learning_rate=3e-3, warmup=0.1, regularizer=reg)
    assert out["metrics"]["val_accuracy"] > 0.85, out["metrics"]
    assert out["global_step"] == 8 * 8
    evals = [h for h in out["history"] if "val_accuracy" in h]
    assert len(evals) == 8 and evals[-1]["val_accuracy"] == out["metrics"]["val_accuracy"]
    with pytest.raises(ValueError, match="mixed_precision='fp8'"):
        ftl.fit(model, train_data, held_out, mixed_precision="fp8")
