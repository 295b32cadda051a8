"""The book's run configurations, in one place.

Every chapter starts from one named configuration and lets the reader override single knobs:

* ``cpu-tiny`` -- offline, real small models and data, the whole book on 2 CPU cores in minutes;
* ``gpu`` -- the same code on the full data, bf16 autocast, more epochs.

Model entries accept a registry name from :mod:`ftutils.assets` (``"minilm"``, ``"smollm2-135m"``),
a local folder, or any Hugging Face hub id (used only where the hub is reachable).

Example:
    >>> from ftutils.config import get_config
    >>> cfg = get_config("cpu-tiny", epochs=3)
    >>> cfg.epochs, cfg.encoder
    (3, 'minilm')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

MIXED_PRECISION_CHOICES = ("no", "bf16", "fp16")


@dataclass(frozen=True)
class BookConfig:
    """The knobs shared by every chapter. Chapters read these instead of writing literals."""

    name: str
    encoder: str = "minilm"  # model for understanding tasks (classification, NER, QA)
    decoder: str = "smollm2-135m"  # model for generation tasks
    n_train: int | None = 1000  # training examples per task; None = the whole split
    n_eval: int | None = 500  # validation/test examples per task; None = the whole split
    max_length: int = 64  # tokens per example after truncation
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 5e-5
    mixed_precision: str = "no"
    n_seeds: int = 3  # repeats for every result that quotes a spread
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_positive_or_none(self, "n_train")
        _check_positive_or_none(self, "n_eval")
        for name in ("max_length", "epochs", "batch_size", "n_seeds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r} is not allowed: expected a positive integer.")
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < 1):
            raise ValueError(
                f"learning_rate={self.learning_rate!r} is not allowed: expected a float in (0, 1), "
                "e.g. 5e-5."
            )
        if self.mixed_precision not in MIXED_PRECISION_CHOICES:
            raise ValueError(
                f"mixed_precision={self.mixed_precision!r} is not allowed: expected one of "
                f"{', '.join(MIXED_PRECISION_CHOICES)}."
            )
        for name in ("encoder", "decoder"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a registry name, a folder or a hub id (a string).")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r} is not allowed: expected a non-negative integer, e.g. 0.")
        if not isinstance(self.extra, dict):
            raise ValueError(f"extra={self.extra!r} is not allowed: expected a dict.")

    def seeds(self, n: int | None = None) -> list[int]:
        """The training seeds of a result repeated ``n`` times (default ``n_seeds``).

        Runs with ``seed`` 0, 1, 2 ... get disjoint blocks, so another ``SEED`` is a fresh sample of
        the seed spread, not a shifted copy of the same runs.

        Example:
            >>> get_config("cpu-tiny").seeds(), get_config("cpu-tiny", seed=1).seeds()
            ([0, 1, 2], [3, 4, 5])
        """
        n = self.n_seeds if n is None else n
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n={n!r} is not allowed: expected a positive integer.")
        return list(range(self.seed * n, self.seed * n + n))


def _check_positive_or_none(cfg: BookConfig, name: str) -> None:
    value = getattr(cfg, name)
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name}={value!r} is not allowed: expected a positive integer or None (all).")


CONFIGS: dict[str, BookConfig] = {
    "cpu-tiny": BookConfig(
        name="cpu-tiny",
        n_train=1000,
        n_eval=500,
        max_length=64,
        epochs=2,
        batch_size=32,
        mixed_precision="no",
        n_seeds=3,
    ),
    "gpu": BookConfig(
        name="gpu",
        n_train=None,
        n_eval=None,
        max_length=128,
        epochs=3,
        batch_size=32,
        mixed_precision="bf16",
        n_seeds=5,
    ),
}


def get_config(name: str, **overrides: Any) -> BookConfig:
    """Return the named configuration with ``overrides`` applied.

    Raises ``ValueError`` naming the allowed configurations or fields when ``name`` or an override is
    unknown, and naming the expected type when a value is bad.

    Example:
        >>> get_config("gpu").mixed_precision
        'bf16'
        >>> get_config("tpu")
        Traceback (most recent call last):
        ...
        ValueError: Unknown config 'tpu': expected one of cpu-tiny, gpu.
    """
    if name not in CONFIGS:
        raise ValueError(f"Unknown config {name!r}: expected one of {', '.join(CONFIGS)}.")
    known = {f.name for f in dataclasses.fields(BookConfig)} - {"name"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(
            f"Unknown config field(s) {', '.join(unknown)}: expected some of {', '.join(sorted(known))}."
        )
    return dataclasses.replace(CONFIGS[name], **overrides)
