"""Seeds drawn at the point of use, so that a result never depends on what ran before it.

A chapter's numbers must be the same with a cold or a warm cache and whatever else ran in the kernel.
The global random generators of torch, NumPy and Python cannot promise that: anything (converting a
GGUF file, building a tokenizer, an earlier experiment) may draw from them. So every draw a result
depends on -- a new classification head, a model built from scratch, a subsample, a shuffle -- takes
its own seed, made from the run's seed and the name of what is being drawn:

* :func:`derive_seed` turns ``(seed, name)`` into a 32-bit seed (a hash, the same on every machine);
* :func:`seeded` runs a block with the torch, NumPy and Python generators seeded from it, and puts
  the generators back as they were afterwards, so the block neither depends on nor disturbs the rest;
* :func:`set_run_seed` / :func:`run_seed` hold the run's seed (a chapter's ``SEED``), the default for
  functions such as :func:`ftutils.models.load` that take ``seed=None``.

Example:
    >>> import torch
    >>> with seeded(0, "head"):
    ...     a = torch.randn(2)
    >>> _ = torch.randn(100)  # anything else drawing from the global generator
    >>> with seeded(0, "head"):
    ...     b = torch.randn(2)
    >>> torch.equal(a, b), derive_seed(0, "head") == derive_seed(1, "head")
    (True, False)
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from collections.abc import Iterator

import numpy as np
import torch

_RUN_SEED = 0


def _check_seed(seed: object) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed={seed!r} is not allowed: expected a non-negative integer, e.g. 0.")
    return seed


def set_run_seed(seed: int) -> None:
    """Make ``seed`` the run's seed: the default of every ``seed=None`` in :mod:`ftutils`."""
    global _RUN_SEED
    _RUN_SEED = _check_seed(seed)


def run_seed() -> int:
    """The run's seed (0 until :func:`set_run_seed` or :func:`ftutils.chapter.start` sets another)."""
    return _RUN_SEED


def derive_seed(seed: int | None, name: str) -> int:
    """A 32-bit seed for the draw called ``name`` in the run seeded ``seed`` (``None``: the run's seed).

    Different names give unrelated seeds, so two draws never share a stream by accident.

    Example:
        >>> derive_seed(0, "models.load|minilm")
        2883140301
    """
    seed = run_seed() if seed is None else _check_seed(seed)
    if not isinstance(name, str):
        raise ValueError(f"name={name!r} is not allowed: expected a string naming the draw.")
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@contextlib.contextmanager
def seeded(seed: int | None, name: str) -> Iterator[int]:
    """Run the block with every global generator seeded from ``(seed, name)``; restore them afterwards.

    Seeds torch (CPU and every CUDA device), NumPy's legacy global generator and Python's ``random``.
    Yields the derived seed. The generators' states before the block come back after it, so the block
    is reproducible whatever ran before, and what runs after it is not changed by it.
    """
    derived = derive_seed(seed, name)
    py_state, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derived)
        random.seed(derived)
        np.random.seed(derived)
        try:
            yield derived
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
