"""Tests for ftutils.regularizers on a tiny randomly initialised BERT (fast, CPU, offline)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from ftutils.regularizers import KINDS, layer_group, make_regularizer, unwrap_model


def tiny_bert(seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=3,
    )
    return BertForSequenceClassification(cfg)


def batch(seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(0, 64, (4, 10), generator=g), "labels": torch.randint(0, 3, (4,), generator=g)}


def perturb(model: nn.Module, scale: float = 0.05, seed: int = 2) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


def test_head_is_excluded_by_default_and_everything_else_is_anchored() -> None:
    model = tiny_bert()
    reg = make_regularizer("l2sp", model, 0.1)
    names = reg.anchored_names()
    all_names = [n for n, _ in model.named_parameters()]
    assert [n for n in all_names if n not in names] == ["classifier.weight", "classifier.bias"]
    assert reg.num_anchored_parameters() == sum(p.numel() for n, p in model.named_parameters() if n in names)


def test_ftutils_new_parameters_and_explicit_exclude_are_honoured() -> None:
    model = tiny_bert()
    model.ftutils_new_parameters = ("classifier.weight", "classifier.bias", "bert.pooler.dense.weight")
    names = make_regularizer("l2sp", model, 0.1).anchored_names()
    assert "bert.pooler.dense.weight" not in names and "bert.pooler.dense.bias" in names
    names = make_regularizer("l2sp", model, 0.1, exclude=["bert.embeddings"]).anchored_names()
    assert not any(n.startswith("bert.embeddings.") for n in names)
    assert "classifier.weight" in names  # an explicit exclude replaces the default
    # "bert.encoder.layer.1" must not swallow "bert.encoder.layer.10...": prefixes match whole components
    assert "bert.encoder.layer.1.output.dense.weight" not in make_regularizer(
        "l2sp", model, 0.1, exclude=["bert.encoder.layer.1"]
    ).anchored_names()
    with pytest.raises(TypeError, match="is a string"):
        make_regularizer("l2sp", model, 0.1, exclude="classifier")


def test_penalty_gradient_equals_autograd_of_the_penalty_in_the_loss() -> None:
    lam = 0.3
    model_a = tiny_bert()
    reg_a = make_regularizer("l2sp", model_a, lam)
    anchors = {n: p.detach().clone() for n, p in model_a.named_parameters()}
    perturb(model_a)
    model_b = copy.deepcopy(model_a)
    reg_b = make_regularizer("l2sp", model_b, lam)  # only used for its exclude list
    anchored = set(reg_b.anchored_names())

    model_a(**batch()).loss.backward()
    reg_a.before_step()

    loss_b = model_b(**batch()).loss
    penalty = sum((p - anchors[n]).pow(2).sum() for n, p in model_b.named_parameters() if n in anchored)
    (loss_b + lam * penalty).backward()

    assert torch.allclose(reg_a.penalty().detach(), lam * penalty.detach(), rtol=1e-5)
    for (name, pa), pb in zip(model_a.named_parameters(), model_b.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-6, rtol=1e-5), name
    # and penalty() itself is differentiable, with that same gradient
    model_c = copy.deepcopy(model_a)
    reg_c = make_regularizer("l2sp", model_c, lam)
    reg_c.load_state_dict(reg_a.state_dict())  # anchor at θ_p, not at the perturbed copy
    reg_c.penalty().backward()
    for (name, pc), (_, pa) in zip(model_c.named_parameters(), model_a.named_parameters()):
        if name in anchored:
            assert torch.allclose(pc.grad, 2 * lam * (pa.detach() - anchors[name]), atol=1e-6), name
        else:
            assert pc.grad is None


def train_steps(kind: str, strength: float, steps: int = 2, lr: float = 1e-2) -> list[torch.Tensor]:
    model = tiny_bert()
    reg = make_regularizer(kind, model, strength)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    for step in range(steps):
        model(**batch(seed=step)).loss.backward()
        reg.before_step()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        reg.after_step(lr)
        opt.zero_grad()
    return [p.detach().clone() for p in model.parameters()]


@pytest.fixture(scope="module")
def unregularized() -> list[torch.Tensor]:
    return train_steps("none", 0.0)


@pytest.mark.parametrize("kind", ["l2sp", "l2sp-decoupled", "weight-decay"])
def test_zero_strength_is_bit_identical_to_none(kind: str, unregularized: list[torch.Tensor]) -> None:
    reference = unregularized
    for got, want in zip(train_steps(kind, 0.0), reference):
        assert torch.equal(got, want)
    # ...and a non-zero strength does change the result (the comparison above can fail)
    assert any(not torch.equal(g, w) for g, w in zip(train_steps(kind, 1.0), reference))


@pytest.mark.parametrize("kind", ["l2sp-decoupled", "weight-decay"])
def test_decoupled_step_matches_hand_computed_update(kind: str) -> None:
    lam, lr = 0.5, 0.1
    model = tiny_bert()
    theta_p = {n: p.detach().clone() for n, p in model.named_parameters()}
    reg = make_regularizer(kind, model, lam)
    perturb(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model(**batch()).loss.backward()
    reg.before_step()  # a no-op for decoupled kinds: grads untouched
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt.step()
    reg.after_step(lr)
    anchored = set(reg.anchored_names())
    for name, p in model.named_parameters():
        sgd = before[name] - lr * grads[name]
        if name not in anchored:
            expected = sgd
        elif kind == "l2sp-decoupled":
            expected = sgd - lr * lam * (sgd - theta_p[name])
        else:
            expected = sgd - lr * lam * sgd
        assert torch.allclose(p.detach(), expected, atol=1e-7, rtol=1e-6), name


def test_l2sp_adds_nothing_after_step_and_decoupled_adds_nothing_before() -> None:
    model = tiny_bert()
    reg = make_regularizer("l2sp", model, 1.0)
    perturb(model)
    before = [p.detach().clone() for p in model.parameters()]
    reg.after_step(0.1)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    dec = make_regularizer("l2sp-decoupled", model, 1.0)
    perturb(model, seed=5)
    model(**batch()).loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    dec.before_step()
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, model.parameters()))


def test_frozen_parameters_are_not_anchored_and_never_move() -> None:
    model = tiny_bert()
    for p in model.bert.embeddings.parameters():
        p.requires_grad_(False)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    reg = make_regularizer("weight-decay", model, 1.0)
    assert not any(n.startswith("bert.embeddings.") for n in reg.anchored_names())
    with_frozen = make_regularizer("l2sp", model, 1.0, include_frozen=True)
    assert any(n.startswith("bert.embeddings.") for n in with_frozen.anchored_names())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    perturb(model)  # moves the frozen ones too: now θ != θ_p for them
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    model(**batch()).loss.backward()
    with_frozen.before_step()  # frozen params have no .grad: skipped, no error
    opt.step()
    reg.after_step(0.1)
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p.detach(), frozen[name]), name


def test_wrapped_model_gives_the_same_names_and_update() -> None:
    class Wrapper(nn.Module):  # what DDP/Accelerate do: the real model under `.module`
        def __init__(self, module: nn.Module) -> None:
            super().__init__()
            self.module = module

        def forward(self, **kw):  # noqa: ANN003, ANN202
            return self.module(**kw)

    plain, inner = tiny_bert(), tiny_bert()
    wrapped = Wrapper(inner)
    assert unwrap_model(wrapped) is inner
    reg_plain = make_regularizer("l2sp", plain, 0.2)
    reg_wrapped = make_regularizer("l2sp", wrapped, 0.2)
    assert reg_plain.anchored_names() == reg_wrapped.anchored_names()
    perturb(plain)
    perturb(inner)
    plain(**batch()).loss.backward()
    wrapped(**batch()).loss.backward()
    reg_plain.before_step()
    reg_wrapped.before_step()
    for a, b in zip(plain.parameters(), inner.parameters()):
        assert torch.equal(a.grad, b.grad)


def test_distance_by_layer_groups_and_values() -> None:
    model = tiny_bert()
    reg = make_regularizer("none", model, 0.0)
    assert all(v == 0.0 for v in reg.distance_by_layer().values())
    with torch.no_grad():
        model.bert.encoder.layer[1].output.dense.weight.add_(0.5)  # 16x32 = 512 entries
        model.classifier.weight.add_(10.0)  # not anchored: not reported
    distances = reg.distance_by_layer()
    assert list(distances) == ["embeddings", "layer 0", "layer 1", "pooler"]
    assert distances["layer 1"] == pytest.approx(0.5 * 512**0.5, rel=1e-6)
    assert distances["layer 0"] == 0.0 and distances["embeddings"] == 0.0
    assert layer_group("model.layers.7.self_attn.q_proj.weight") == "layer 7"
    assert layer_group("transformer.h.2.attn.c_attn.weight") == "layer 2"
    assert layer_group("model.embed_tokens.weight") == "embeddings"


def test_grad_scale_multiplies_the_added_gradient() -> None:
    model = nn.Linear(3, 1, bias=False)
    reg = make_regularizer("l2sp", model, 0.25, exclude=[])
    with torch.no_grad():
        model.weight.add_(1.0)
    model.weight.grad = torch.zeros_like(model.weight)
    reg.before_step(grad_scale=8.0)
    assert torch.allclose(model.weight.grad, torch.full((1, 3), 2 * 0.25 * 1.0 * 8.0))


def test_state_dict_round_trip_keeps_the_original_anchor() -> None:
    model = tiny_bert()
    reg = make_regularizer("l2sp", model, 0.1)
    state = reg.state_dict()
    perturb(model)
    resumed = make_regularizer("l2sp", model, 0.1)  # would anchor at the moved weights
    assert resumed.penalty().item() == 0.0
    resumed.load_state_dict(state)
    assert resumed.penalty().item() == pytest.approx(reg.penalty().item(), rel=1e-6)
    with pytest.raises(KeyError, match="lacks anchors"):
        make_regularizer("l2sp", model, 0.1, exclude=[]).load_state_dict(state)


def test_bad_arguments_are_named_in_the_error() -> None:
    model = tiny_bert()
    with pytest.raises(ValueError, match="'l2'"):
        make_regularizer("l2", model, 0.1)
    with pytest.raises(ValueError, match="strength=-1"):
        make_regularizer("l2sp", model, -1)
    with pytest.raises(ValueError, match="lr=nan"):
        make_regularizer("weight-decay", model, 0.1).after_step(float("nan"))
    assert set(KINDS) == {"none", "l2sp", "l2sp-decoupled", "weight-decay"}
    assert not make_regularizer("l2sp", model, 0.0).active and make_regularizer("l2sp", model, 0.1).active


def test_after_step_with_an_optimizer_uses_each_groups_learning_rate() -> None:
    lam = 0.5
    model = tiny_bert()
    theta_p = {n: p.detach().clone() for n, p in model.named_parameters()}
    reg = make_regularizer("l2sp-decoupled", model, lam)
    perturb(model)
    emb = [p for n, p in model.named_parameters() if n.startswith("bert.embeddings.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("bert.embeddings.")]
    opt = torch.optim.SGD([{"params": emb, "lr": 0.0}, {"params": rest, "lr": 0.1}], lr=0.1)
    model(**batch()).loss.backward()
    opt.step()
    moved = {n: p.detach().clone() for n, p in model.named_parameters()}
    reg.after_step(opt)
    anchored = set(reg.anchored_names())
    for name, p in model.named_parameters():
        lr = 0.0 if name.startswith("bert.embeddings.") else 0.1
        expected = moved[name] - lr * lam * (moved[name] - theta_p[name]) if name in anchored else moved[name]
        assert torch.allclose(p.detach(), expected, atol=1e-7), name
