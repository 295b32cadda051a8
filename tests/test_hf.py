"""The Hugging Face Trainer adapter gives the same update as a hand-written PyTorch step."""

from __future__ import annotations

import contextlib
import copy
import io

import pytest
import torch
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

from ftutils.hf import RegularizedTrainer
from ftutils.regularizers import make_regularizer
from ftutils.trainer import TrainingConfig, build_param_groups, train

N = 8
# The key bias has an exactly-zero true gradient in attention (softmax ignores a constant shift), so its
# computed gradient is rounding noise, which Adam with eps=1e-8 would blow up to a ±lr step in either
# direction. A larger eps keeps such noise from deciding the comparison.
EPS = 1e-4


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=2,
    )
    model = BertForSequenceClassification(cfg)
    return model


def data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {"input_ids": torch.randint(0, 64, (N, 12), generator=g), "labels": torch.randint(0, 2, (N,), generator=g)}


def perturb(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


def trainer_step(
    model, reg, optim: str, lr: float, tmp_path, steps: int = 1, accumulation: int = 1, max_grad_norm: float = 1.0
) -> None:
    batch = data()
    dataset = Dataset.from_dict({k: v.tolist() for k, v in batch.items()})
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=N // accumulation,
        gradient_accumulation_steps=accumulation, learning_rate=lr, optim=optim, weight_decay=0.0,
        max_grad_norm=max_grad_norm, adam_epsilon=EPS, lr_scheduler_type="constant", report_to=[], save_strategy="no", use_cpu=True,
        disable_tqdm=True, logging_strategy="no", seed=0,
    )
    trainer = RegularizedTrainer(model=model, args=args, train_dataset=dataset, regularizer=reg)
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.train()


def hand_step(model, reg, optim: str, lr: float) -> None:
    opt = (torch.optim.AdamW(model.parameters(), lr=lr, eps=EPS, weight_decay=0.0) if optim == "adamw_torch"
           else torch.optim.SGD(model.parameters(), lr=lr))
    model.train()
    model(**data()).loss.backward()
    reg.before_step()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    reg.after_step(lr)
    opt.zero_grad()


@pytest.mark.parametrize("kind", ["l2sp", "l2sp-decoupled"])
@pytest.mark.parametrize("optim", ["adamw_torch", "sgd"])
def test_trainer_and_hand_written_step_agree(kind: str, optim: str, tmp_path) -> None:
    lam, lr = 2.0, 0.05
    model_t = tiny_bert()
    model_h, model_none = copy.deepcopy(model_t), copy.deepcopy(model_t)
    reg_t = make_regularizer(kind, model_t, lam)
    reg_h = make_regularizer(kind, model_h, lam)
    for m in (model_t, model_h, model_none):
        perturb(m)  # so θ != θ_p and the regulariser has something to do
    start = [p.detach().clone() for p in model_t.parameters()]

    trainer_step(model_t, reg_t, optim, lr, tmp_path)
    hand_step(model_h, reg_h, optim, lr)
    hand_step(model_none, make_regularizer("none", model_none, 0.0), optim, lr)

    for (name, pt), ph in zip(model_t.named_parameters(), model_h.parameters()):
        assert torch.allclose(pt.detach(), ph.detach(), atol=1e-6, rtol=1e-5), name
    # The comparison can fail: the step moved the weights, and differently from an unregularised step.
    assert any(not torch.equal(p.detach(), s) for p, s in zip(model_t.parameters(), start))
    gap = max((pt - pn).abs().max().item() for pt, pn in zip(model_t.parameters(), model_none.parameters()))
    assert gap > 1e-4


def test_penalty_gradient_is_added_once_per_accumulation_window(tmp_path) -> None:
    # With plain SGD and no clipping, a step with L2-SP minus the same step without it is exactly
    # -lr·2λ(θ−θ_p), however the Trainer scales the data loss over the accumulation window.
    lam, lr = 2.0, 0.05
    model_reg = tiny_bert()
    model_none = copy.deepcopy(model_reg)
    reg = make_regularizer("l2sp", model_reg, lam)
    theta_p = [p.detach().clone() for p in model_reg.parameters()]
    perturb(model_reg)
    perturb(model_none)
    theta_0 = [p.detach().clone() for p in model_reg.parameters()]
    anchored = set(reg.anchored_names())
    trainer_step(model_reg, reg, "sgd", lr, tmp_path, accumulation=2, max_grad_norm=0.0)
    trainer_step(model_none, None, "sgd", lr, tmp_path, accumulation=2, max_grad_norm=0.0)
    for (name, pr), pn, t0, tp in zip(model_reg.named_parameters(), model_none.parameters(), theta_0, theta_p):
        expected = -lr * 2 * lam * (t0 - tp) if name in anchored else torch.zeros_like(t0)
        assert torch.allclose((pr - pn).detach(), expected, atol=1e-6), name


def test_rejects_something_that_is_not_a_regularizer(tmp_path) -> None:
    with pytest.raises(TypeError, match="Regularizer"):
        RegularizedTrainer(model=tiny_bert(), args=TrainingArguments(str(tmp_path), use_cpu=True, report_to=[]),
                           regularizer=0.01)


def test_book_loop_and_adapter_pull_each_parameter_group_with_its_own_learning_rate(tmp_path) -> None:
    # With layer-wise LR decay the decoupled L2-SP pull θ ← θ − lr_g·λ·(θ−θ_p) must use each group's
    # lr_g, in ftutils.trainer.train as in the Hugging Face adapter. (Pulling with the base rate
    # everywhere, as train() once did, pulls layer 1, layer 0 and the embeddings 2, 4 and 8 times too hard.)
    lam, lr, steps, decay = 2.0, 0.05, 3, 0.5
    model_b = tiny_bert()
    model_t = copy.deepcopy(model_b)
    reg_b = make_regularizer("l2sp-decoupled", model_b, lam)
    reg_t = make_regularizer("l2sp-decoupled", model_t, lam)
    for m in (model_b, model_t):
        perturb(m)

    config = TrainingConfig(max_steps=steps, batch_size=N, learning_rate=lr, lr_scheduler="constant",
                            layer_decay=decay, adam_eps=EPS, max_grad_norm=1.0, eval_strategy="no",
                            progress=False)
    train(model_b, {k: v.tolist() for k, v in data().items()}, config=config, regularizer=reg_b)

    groups = build_param_groups(model_t, learning_rate=lr, layer_decay=decay)
    assert len({g["lr"] for g in groups}) > 2  # embeddings, two layers, the rest
    opt = torch.optim.AdamW(groups, lr=lr, eps=EPS, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=N, max_grad_norm=1.0,
        report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True, logging_strategy="no", seed=0,
    )
    dataset = Dataset.from_dict({k: v.tolist() for k, v in data().items()})
    trainer = RegularizedTrainer(model=model_t, args=args, train_dataset=dataset, regularizer=reg_t,
                                 optimizers=(opt, sched))
    with contextlib.redirect_stdout(io.StringIO()):
        trainer.train()

    for (name, pb), pt in zip(model_b.named_parameters(), model_t.parameters()):
        torch.testing.assert_close(pb.detach(), pt.detach(), atol=1e-6, rtol=1e-5, msg=name)
