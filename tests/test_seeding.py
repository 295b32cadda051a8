"""Seeds drawn at the point of use: same weights and rows whatever drew random numbers before."""

import random

import numpy as np
import pytest
import torch

from ftutils import chapter, config, data, models, seeding


def _consume_global_randomness() -> None:
    torch.randn(1000)
    np.random.rand(1000)
    random.random()


def test_seeded_block_ignores_and_keeps_the_global_state():
    torch.manual_seed(123)
    expected_after = torch.randn(3)
    torch.manual_seed(123)
    with seeding.seeded(0, "x"):
        inside = torch.randn(3)
    assert torch.equal(torch.randn(3), expected_after), "the block changed the global generator"
    _consume_global_randomness()
    with seeding.seeded(0, "x"):
        assert torch.equal(torch.randn(3), inside)
    with seeding.seeded(0, "y"):
        assert not torch.equal(torch.randn(3), inside)


def test_derive_seed_rejects_bad_seeds():
    for bad in (-1, "1", 1.0, True):
        with pytest.raises(ValueError, match="seed="):
            seeding.derive_seed(bad, "x")


def _head(seed=None, **kwargs):
    model, _ = models.load("minilm", "sequence-classification", labels=["neg", "pos"], seed=seed, **kwargs)
    return model.classifier.weight.detach().clone()


def test_new_head_does_not_depend_on_what_ran_before():
    first = _head(seed=0)
    _consume_global_randomness()
    assert torch.equal(_head(seed=0), first)
    assert not torch.equal(_head(seed=1), first)


def test_load_leaves_the_global_generator_alone():
    torch.manual_seed(5)
    expected = torch.randn(4)
    torch.manual_seed(5)
    _head(seed=0)
    assert torch.equal(torch.randn(4), expected)


def test_seed_none_takes_the_run_seed():
    try:
        seeding.set_run_seed(7)
        assert torch.equal(_head(), _head(seed=7))
    finally:
        seeding.set_run_seed(0)


def test_model_from_scratch_is_reproducible_after_other_draws():
    def weights():
        model, _ = models.load("minilm", "base", pretrained=False, seed=3)
        return model.embeddings.word_embeddings.weight[:5].detach().clone()

    first = weights()
    _consume_global_randomness()
    assert torch.equal(weights(), first)


def test_mean_pooling_head_is_seeded():
    first = _head(seed=0, pooling="mean")
    _consume_global_randomness()
    assert torch.equal(_head(seed=0, pooling="mean"), first)


def test_subsample_does_not_depend_on_global_state():
    first = data.load("rotten_tomatoes", n_train=16, seed=2)["train"]["text"]
    _consume_global_randomness()
    assert data.load("rotten_tomatoes", n_train=16, seed=2)["train"]["text"] == first


def test_chapter_start_sets_the_run_seed_and_checks_values():
    try:
        cfg = chapter.start("cpu-tiny", 2, sizes={"cpu-tiny": {"epochs": 1}, "gpu": {"epochs": 9}})
        assert (cfg.seed, cfg.epochs, seeding.run_seed()) == (2, 1, 2)
        with pytest.raises(ValueError, match="SEED=-1 is not allowed"):
            chapter.start("cpu-tiny", -1)
        with pytest.raises(ValueError, match="cpu-tiny"):
            chapter.start("tpu", 0)
    finally:
        seeding.set_run_seed(0)


def test_config_seeds_are_disjoint_blocks():
    blocks = [set(config.get_config("cpu-tiny", seed=s).seeds()) for s in range(3)]
    assert all(len(b) == 3 for b in blocks)
    assert not (blocks[0] & blocks[1]) and not (blocks[1] & blocks[2])
    with pytest.raises(ValueError, match="seed="):
        config.get_config("cpu-tiny", seed="x")
    with pytest.raises(ValueError, match="Unknown config field"):
        config.get_config("cpu-tiny", extra="notadict")  # chapters' own values are typed: config.CHAPTERS


@pytest.mark.parametrize("value, kwargs, ok", [
    (3, dict(kind=int, minimum=1), True),
    (True, dict(kind=int), False),
    (2.5, dict(kind=float, minimum=0), True),
    (None, dict(kind=int, allow_none=True), True),
    (None, dict(kind=int), False),
    ("tsne", dict(choices=("pca", "tsne")), True),
    ("umap", dict(choices=("pca", "tsne")), False),
    ([1, 2], dict(items=int, minimum=1), True),
    ([], dict(items=int), False),
    (["a", 1], dict(items=str), False),
])
def test_check(value, kwargs, ok):
    if ok:
        assert chapter.check("X", value, **kwargs) == value
    else:
        with pytest.raises(ValueError, match=r"^X=.* is not allowed: expected "):
            chapter.check("X", value, **kwargs)
