"""What every chapter does before its first real cell, in one call: :func:`start`.

``cfg = start(CONFIG, SEED, chapter="05")``

1. switches the default ``cpu-tiny`` to ``gpu`` on a Colab GPU runtime (:func:`ftutils.colab.auto_config`);
2. builds the chapter's configuration for it (:data:`ftutils.config.CHAPTERS`: its sizes, training
   values and, as ``cfg.chapter``, its own typed values) with the reader's knobs and the seed
   (:func:`ftutils.config.get_config`; a bad value fails here, naming the field and the allowed values);
3. makes ``SEED`` the run's seed (:mod:`ftutils.seeding`): every random draw in :mod:`ftutils` that is
   not given a seed (new heads, models from scratch) derives its own from it, and the global
   generators start from it too;
4. silences progress bars and the library messages that would clutter a printed page.

:func:`check` validates one parameters-cell value with a message naming the parameter and what is
allowed, so chapters do not write that test by hand; :func:`given` drops the knobs a reader left at
``None`` (the chapter's value).

Example:
    >>> cfg = start("cpu-tiny", 1, chapter="05", **given(epochs=1, topic_max_length=None))
    >>> cfg.name, cfg.seed, cfg.epochs, cfg.chapter.topic_max_length
    ('cpu-tiny', 1, 1, 48)
    >>> check("N_SEEDS", 0, kind=int, minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: N_SEEDS=0 is not allowed: expected an integer >= 1.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from ftutils import colab, config, seeding

# Messages that say nothing to a reader of a printed page (each seen in a chapter's outputs).
_NOISE = (
    "IProgress not found",  # tqdm without ipywidgets
    ".*is_gradient_checkpointing.*",  # PEFT calls a renamed transformers API
    "`gradient_checkpointing` is deprecated",  # TRL's SFTConfig sets the old name (transformers 5)
)


def start(config_name: str, seed: int, sizes: Mapping[str, Mapping[str, Any]] | None = None, *,
          chapter: str | None = None, **overrides: Any) -> config.BookConfig:
    """Start a chapter: the configuration it runs, seeded with ``seed``, libraries quiet.

    Args:
        config_name: the parameters cell's ``CONFIG`` (``"cpu-tiny"`` or ``"gpu"``).
        seed: the parameters cell's ``SEED`` (a non-negative integer).
        sizes: for a notebook that is not a book chapter: its own values per configuration name, e.g.
            ``{"cpu-tiny": {"epochs": 1}}``; a configuration missing from it runs with its defaults.
        chapter: the book chapter (``"02"`` ... ``"07"``), whose entry in :data:`ftutils.config.CHAPTERS`
            gives its configuration.
        overrides: values that apply whatever the configuration (a reader's knob, say): fields of
            :class:`ftutils.config.BookConfig` or of the chapter's own values.
    """
    seed = check("SEED", seed, kind=int, minimum=0)
    name = colab.auto_config(config_name)
    if name not in config.CONFIGS:
        raise ValueError(f"CONFIG={name!r} is not allowed: expected one of {', '.join(map(repr, config.CONFIGS))}.")
    if sizes is not None and chapter is not None:
        raise ValueError("start takes a chapter or sizes, not both: a book chapter's sizes live in "
                         "ftutils.config.CHAPTERS.")
    chosen = {**dict((sizes or {}).get(name, {})), **overrides, "seed": seed}
    cfg = config.get_config(name, chapter, **chosen)
    if cfg.mixed_precision == "auto":
        cfg = _resolved_precision(cfg)
    if config.smoke_requested():
        cfg = config.smoke_sized(cfg)
        print(f"SMOKE RUN of config {name}: every size capped (n_train {cfg.n_train}, n_eval {cfg.n_eval}, "
              f"{cfg.epochs} epoch, {cfg.n_seeds} seeds); claims are reported, not asserted.")
    seeding.set_run_seed(seed)
    _seed_globals(seed)
    quiet()
    _record(cfg)
    return cfg


def _resolved_precision(cfg: config.BookConfig) -> config.BookConfig:
    """``cfg`` with ``mixed_precision="auto"`` replaced by what makes this machine faster, said aloud."""
    from ftutils import trainer

    chosen, reason = trainer.auto_precision()
    print(f"MIXED_PRECISION 'auto' -> {chosen!r} ({reason})"
          + ("; scores differ a little from the book's recorded fp32 ones." if chosen != "no" else "."))
    return dataclasses.replace(cfg, mixed_precision=chosen)


def run_claims(source: str, namespace: dict[str, Any]) -> bool:
    """Run a claims cell's ``source`` in ``namespace`` the way a smoke run does; return whether it held.

    On smoke-sized data a result may not hold, so a failing ``assert`` is printed ("claim not checked
    in a smoke run: ...") instead of raised; every other error still raises, so a typo or a missing
    name in a claims cell fails the smoke run. The book runner puts this call in place of every cell
    tagged ``claims`` when it runs with ``--smoke``; normal runs execute those cells as they are.

    Example:
        >>> run_claims("x = 2; assert x == 3, x", {})
        claim not checked in a smoke run (AssertionError: 2)
        False
        >>> run_claims("assert y", {})
        Traceback (most recent call last):
        ...
        NameError: name 'y' is not defined
    """
    try:
        exec(compile(source, "<claims cell>", "exec"), namespace)
    except AssertionError as failed:
        print(f"claim not checked in a smoke run (AssertionError: {failed})")
        return False
    return True


def given(**knobs: Any) -> dict[str, Any]:
    """The parameters-cell ``knobs`` a reader set: those left at ``None`` keep the chapter's value.

    Example:
        >>> given(n_train=None, sizes=[40, 80])
        {'sizes': [40, 80]}
    """
    return {k: v for k, v in knobs.items() if v is not None}


RECORD_ENV = "FTUTILS_RECORD_CONFIG"


def _record(cfg: config.BookConfig) -> None:
    """Write the configuration the chapter really runs where the book runner asked (``$FTUTILS_RECORD_CONFIG``).

    The runner turns these files into the table of chapter sizes in chapter 1, so the book states
    what each chapter runs instead of a typed copy that can drift.
    """
    target = os.environ.get(RECORD_ENV)
    if target:
        tmp = f"{target}.tmp"
        with open(tmp, "w") as fh:
            json.dump(dataclasses.asdict(cfg), fh, indent=1, sort_keys=True, default=str)
        os.replace(tmp, target)


def _seed_globals(seed: int) -> None:
    import transformers

    # What a chapter still leaves to the global generators starts from the same state every run.
    transformers.set_seed(seeding.derive_seed(seed, "chapter.start"))


def quiet() -> None:
    """Hide progress bars, load reports and known-noise warnings (a printed page keeps results only)."""
    import datasets
    import transformers

    for message in _NOISE:
        warnings.filterwarnings("ignore", message=message)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    logging.getLogger("ftutils").setLevel(logging.WARNING)


def check(name: str, value: Any, *, kind: type | tuple[type, ...] | None = None,
          choices: Sequence[Any] | None = None, minimum: float | None = None, maximum: float | None = None,
          allow_none: bool = False, items: type | None = None) -> Any:
    """Return ``value`` if it is allowed for the parameter ``name``; else raise a ``ValueError`` saying why.

    ``kind`` is the expected type (``int`` excludes ``bool``; ``float`` accepts ints); ``choices`` the
    allowed values; ``minimum``/``maximum`` inclusive bounds; ``allow_none`` lets ``None`` through
    (the chapter's default); ``items`` checks a non-empty list whose elements have that type (and
    bounds).

    Example:
        >>> check("PROJECTION", "pca", choices=("pca", "tsne"))
        'pca'
        >>> check("SIZES", [40, 8], items=int, minimum=16)
        Traceback (most recent call last):
        ...
        ValueError: SIZES=[40, 8] is not allowed: expected a non-empty list of integers >= 16.
    """
    if value is None and allow_none:
        return value
    expected = _describe(kind, choices, minimum, maximum, items)
    if allow_none:
        expected += " or None"
    if not _allowed(value, kind, choices, minimum, maximum, items):
        raise ValueError(f"{name}={value!r} is not allowed: expected {expected}.")
    return value


def _is(value: Any, kind: type | tuple[type, ...] | None) -> bool:
    if kind is None:
        return True
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False
    if float in kinds and isinstance(value, int):
        return True
    return isinstance(value, kinds)


def _in_range(value: Any, minimum: float | None, maximum: float | None) -> bool:
    if minimum is None and maximum is None:
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def _allowed(value: Any, kind: Any, choices: Any, minimum: Any, maximum: Any, items: Any) -> bool:
    if choices is not None:
        return value in choices and (kind is None or _is(value, kind))
    if items is not None:
        return (isinstance(value, list) and bool(value)
                and all(_is(v, items) and _in_range(v, minimum, maximum) for v in value))
    return _is(value, kind) and _in_range(value, minimum, maximum)


def _describe(kind: Any, choices: Any, minimum: Any, maximum: Any, items: Any) -> str:
    if choices is not None:
        return "one of " + ", ".join(map(repr, choices))
    names = {int: "an integer", float: "a number", str: "a string", bool: "True or False", list: "a list"}
    plural = {int: "integers", float: "numbers", str: "strings", bool: "booleans"}
    if items is not None:
        text = f"a non-empty list of {plural.get(items, items.__name__)}"
    elif kind is None:
        text = "a value"
    else:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        text = " or ".join(names.get(k, k.__name__) for k in kinds)
    if minimum is not None and maximum is not None:
        text += f" from {minimum} to {maximum}"
    elif minimum is not None:
        text += f" >= {minimum}"
    elif maximum is not None:
        text += f" <= {maximum}"
    return text
