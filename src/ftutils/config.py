"""The book's run configurations, and each chapter's own values, in one place.

Every chapter starts from one named configuration and lets the reader override single knobs:

* ``cpu-tiny`` -- offline, real small models and data, the whole book on 2 CPU cores in minutes;
* ``gpu`` -- the same code on the full data, bf16 autocast, more epochs.

A chapter that needs other sizes than these defaults has an entry in :data:`CHAPTERS`: its book
configuration on ``cpu-tiny`` and on ``gpu``, side by side, and where it has knobs of its own a typed
frozen dataclass of them in ``chapter`` (:class:`ApplicationsValues`, :class:`ToolsValues`,
:class:`EvaluationValues`, :class:`InstructionValues`). ``get_config(name, chapter="05")`` returns it; :func:`ftutils.chapter.start`
is how a chapter calls it.

Model entries accept a registry name from :mod:`ftutils.assets` (``"minilm"``, ``"smollm2-135m"``),
a local folder, or any Hugging Face hub id (used only where the hub is reachable).

Example:
    >>> from ftutils.config import get_config
    >>> cfg = get_config("cpu-tiny", epochs=3)
    >>> cfg.epochs, cfg.encoder
    (3, 'minilm')
    >>> cfg = get_config("gpu", chapter="05")
    >>> cfg.n_train, cfg.chapter.topic_max_length, cfg.head_lr_multiplier
    (None, 256, 1.0)
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar

# "auto": bf16 where this machine runs it natively (a GPU with bf16, or a CPU with AVX512-BF16/AMX),
# else "no"; resolved when a chapter starts (ftutils.trainer.resolve_mixed_precision).
MIXED_PRECISION_CHOICES = ("no", "bf16", "fp16", "auto")
POOLING_CHOICES = ("mean", "model")  # ftutils.models.POOLINGS


@dataclass(frozen=True)
class ChapterValues:
    """A chapter's own values. Subclasses declare typed fields; each is checked on creation.

    ``SMOKE`` holds the sizes a smoke run (:func:`smoke_sized`) caps each size field at.

    The check follows the annotation: ``int`` is an integer >= 1 (>= ``minimum`` where the field's
    metadata gives one), ``int | None`` the same or ``None`` (the whole split), ``float`` a number > 0,
    ``tuple[int, ...]`` a non-empty tuple of integers >= 1 (a list is accepted and stored as a tuple),
    ``tuple[float, ...]`` a non-empty tuple of numbers > 0 (the same),
    ``str | None`` a non-empty string or ``None``.
    """

    SMOKE: ClassVar[dict[str, Any]] = {}

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            given = value = getattr(self, f.name)
            if f.type in ("tuple[int, ...]", "tuple[float, ...]") and isinstance(value, list):
                value = tuple(value)
                object.__setattr__(self, f.name, value)
            problem = _problem(f.type, value, f.metadata.get("minimum", 1))
            if problem:
                raise ValueError(f"{type(self).__name__}.{f.name}={given!r} is not allowed: expected {problem}.")


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _problem(kind: str, value: Any, minimum: int) -> str | None:
    """What ``value`` should have been for the annotation ``kind``; ``None`` when it is allowed."""
    if kind == "int":
        return None if _is_int(value, minimum) else f"an integer >= {minimum}"
    if kind == "int | None":
        return None if value is None or _is_int(value, minimum) else f"an integer >= {minimum} or None (all)"
    if kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        return None if ok else "a number > 0"
    if kind == "tuple[int, ...]":
        ok = isinstance(value, tuple) and bool(value) and all(_is_int(v, minimum) for v in value)
        return None if ok else f"a non-empty list of integers >= {minimum}"
    if kind == "tuple[float, ...]":
        ok = isinstance(value, tuple) and bool(value) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value)
        return None if ok else "a non-empty list of numbers > 0"
    if kind == "str | None":
        return None if value is None or (isinstance(value, str) and value.strip()) else "a non-empty name or None"
    raise TypeError(f"ChapterValues cannot check a field of type {kind!r}: use int, int | None, float, "
                    "str | None, tuple[int, ...] or tuple[float, ...].")


@dataclass(frozen=True)
class ApplicationsValues(ChapterValues):
    """Chapter 5's own values: per-task lengths, rates and sizes (``None``: the whole split)."""

    topic_max_length: int  # tokens per BBC news article
    tagging_train: int | None  # training tweets (NER) and the tweets the QA questions come from
    tagging_max_length: int  # tokens per tweet (NER) and per question + context (QA)
    tagging_learning_rate: float  # NER and QA runs
    tagging_epochs: int  # NER and QA runs
    tagging_batch_size: int  # NER and QA runs
    lora_learning_rate: float  # the MiniLM LoRA classifier
    translation_learning_rate: float  # SmolLM2's LoRA adapters for translation
    decoder_train: int | None  # spam e-mails for the decoder-as-classifier section
    decoder_eval: int | None
    decoder_max_length: int
    translation_train: int | None  # Django sentence pairs
    translation_eval: int | None
    translation_max_length: int
    translation_epochs: int
    new_tokens: int  # tokens generated per translation
    chinese_train: int | None  # People's Daily sentences for the Chinese section
    # None: MiniLM with its vocabulary extended by the Chinese characters of the training text;
    # a registry name, folder or hub id: a Chinese encoder, used where it can be loaded (the hub online)
    chinese_encoder: str | None

    SMOKE: ClassVar[dict[str, Any]] = dict(
        topic_max_length=16, tagging_train=48, tagging_max_length=32, tagging_epochs=1, decoder_train=16, decoder_eval=16, decoder_max_length=32,
        translation_train=16, translation_eval=8, translation_max_length=32, translation_epochs=1, new_tokens=4,
        chinese_train=48)


@dataclass(frozen=True)
class ToolsValues(ChapterValues):
    """Chapter 6's own values."""

    sweep_learning_rate: float  # the base learning rate of the searches and sweeps
    n_trials: int = field(metadata={"minimum": 4})  # trials per search method

    SMOKE: ClassVar[dict[str, Any]] = dict(n_trials=4)


@dataclass(frozen=True)
class EvaluationValues(ChapterValues):
    """Chapter 7's own values (``None``: the whole split)."""

    sizes: tuple[int, ...]  # training-set sizes of the learning curve
    min_steps: int = field(metadata={"minimum": 0})  # optimizer steps each learning-curve run takes at least
    n_validation: int  # validation reviews of the learning curve
    mi_members: int  # training reviews the membership-inference attack scores
    choice_train: int  # training reviews of the model-choice section
    choice_test: int | None
    spam_train: int | None  # spam e-mails of the metrics section
    translation_train: int | None  # Django sentence pairs
    translation_test: int | None
    translation_max_length: int
    translation_epochs: int
    new_tokens: int  # tokens generated per translation

    SMOKE: ClassVar[dict[str, Any]] = dict(
        sizes=(16, 32), min_steps=0, n_validation=32, mi_members=16, choice_train=32, choice_test=32,
        spam_train=64, translation_train=16, translation_test=8, translation_max_length=32, translation_epochs=1,
        new_tokens=4)


@dataclass(frozen=True)
class InstructionValues(ChapterValues):
    """Chapter 8's own values: the instruction set, the trained blocks, the regulariser's strengths."""

    train_per_task: int  # training conversations per trained task
    test_per_task: int  # test prompts per task (the held-out task too)
    text_chars: int  # each review, e-mail or article is cut to its first text_chars characters
    max_tokens: int  # tokens per conversation, the chat template's turns included
    trained_blocks: int  # the top blocks that full fine-tuning (and LoRA) trains
    lora_rank: int
    strengths: tuple[float, ...]  # λ of the L2-SP runs (the trade-off curve); 0, plain SFT, always runs
    decoupled_strength: float  # λ of the decoupled L2-SP run
    strength_seeds: int  # training seeds per point of the trade-off curve
    answer_tokens: int  # tokens generated for a classification answer
    long_answer_tokens: int  # tokens generated for an entity list or a translation
    perplexity_texts: int  # held-out BBC articles of the forgetting measurement
    perplexity_length: int  # tokens of each article scored

    SMOKE: ClassVar[dict[str, Any]] = dict(
        train_per_task=4, test_per_task=4, text_chars=80, max_tokens=96, strengths=(1.0,), strength_seeds=1, answer_tokens=3,
        long_answer_tokens=4, perplexity_texts=4, perplexity_length=32)


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
    warmup: float = 0.0  # learning-rate warm-up, a fraction of all steps in [0, 1)
    head_lr_multiplier: float = 1.0  # the new head's learning rate, in multiples of learning_rate
    mixed_precision: str = "no"
    # The encoder's sequence-classification head, the book's convention (chapter 2): "mean" classifies the
    # mean of the token vectors, what all-MiniLM-L6-v2 was trained to produce; "model" the checkpoint's
    # own head ([CLS] and BERT's pooler for an encoder, the last token for a decoder).
    pooling: str = "mean"
    n_seeds: int = 3  # repeats for every result that quotes a spread
    seed: int = 0
    chapter: ChapterValues | None = None  # the chapter's own values (see CHAPTERS), if it has any

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
        if isinstance(self.warmup, bool) or not (isinstance(self.warmup, (int, float)) and 0 <= self.warmup < 1):
            raise ValueError(f"warmup={self.warmup!r} is not allowed: expected a fraction of the steps in [0, 1), "
                             "e.g. 0.1.")
        if isinstance(self.head_lr_multiplier, bool) or not (
                isinstance(self.head_lr_multiplier, (int, float)) and self.head_lr_multiplier > 0):
            raise ValueError(f"head_lr_multiplier={self.head_lr_multiplier!r} is not allowed: expected a "
                             "number > 0, e.g. 10.")
        if self.mixed_precision not in MIXED_PRECISION_CHOICES:
            raise ValueError(
                f"mixed_precision={self.mixed_precision!r} is not allowed: expected one of "
                f"{', '.join(MIXED_PRECISION_CHOICES)}."
            )
        if self.pooling not in POOLING_CHOICES:
            raise ValueError(f"pooling={self.pooling!r} is not allowed: expected one of {', '.join(POOLING_CHOICES)}.")
        for name in ("encoder", "decoder"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name} must be a registry name, a folder or a hub id (a string).")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r} is not allowed: expected a non-negative integer, e.g. 0.")
        if self.chapter is not None and not isinstance(self.chapter, ChapterValues):
            raise ValueError(f"chapter={self.chapter!r} is not allowed: expected None or a chapter's values "
                             "(a ChapterValues, e.g. ApplicationsValues).")

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


def _on(name: str, **values: Any) -> BookConfig:
    """The configuration ``name`` with a chapter's own ``values``."""
    return dataclasses.replace(CONFIGS[name], **values)


# Each chapter's configurations, cpu-tiny beside gpu. A chapter missing here runs the defaults above.
CHAPTERS: dict[str, dict[str, BookConfig]] = {
    # The fine-tuning demo takes only ~30 optimizer steps on cpu-tiny; at the config's learning rate
    # (5e-5, batch 32) it measured barely above the majority class, at 1e-4 with batch 16 near the probe.
    "02": {
        "cpu-tiny": _on("cpu-tiny", batch_size=16, learning_rate=1e-4),
        "gpu": _on("gpu"),
    },
    # A short run per setting: the grid trains (forms x λ + 1) x seeds models, and the whole chapter must
    # fit in a few minutes on two CPU cores. Small batches and a larger learning rate give 48 steps per
    # run, enough to lift MiniLM clearly above the majority class (16 steps of batch 16 at 1e-4 did not,
    # in our measurements; the chapter's mean-pooling head starts from a linear probe, so every λ learns);
    # the gpu configuration keeps its full data, epochs and learning rate.
    "03": {
        "cpu-tiny": _on("cpu-tiny", n_train=384, n_eval=256, max_length=32, epochs=1, batch_size=8,
                        learning_rate=2e-4, warmup=0.1, head_lr_multiplier=10.0),
        "gpu": _on("gpu", warmup=0.1, head_lr_multiplier=10.0),
    },
    # Three models train in chapter 4, so on cpu-tiny it uses fewer, shorter reviews than the defaults
    # to stay within its ~3 minutes; on gpu it uses the config as it is (every review).
    "04": {
        "cpu-tiny": _on("cpu-tiny", n_train=384, n_eval=300, max_length=48, batch_size=16, learning_rate=1e-4,
                        warmup=0.1),
        "gpu": _on("gpu", warmup=0.1),
    },
    # Per-section sizes. cpu-tiny: a few hundred examples per task and short sequences, so that the whole
    # chapter takes minutes on 2 cores; gpu: every example (None = whole split). Tagging and span
    # extraction learn only from the rare entity tokens: at 192 tweets and 48 steps of lr 5e-4 the tagger
    # found no entity (F1 0.00, dictionary 0.085); 768 tweets, 3 epochs of 16 at 2e-4 (144 steps) gave
    # entity F1 0.40/0.35/0.42 against dictionaries at 0.23/0.21/0.19 (SEED 0/1/2). The classifiers' head
    # is the book's mean pooling, at 1e-4: rotten_tomatoes, 48 steps, training seeds 0/1/2 gave 0.73/0.725/0.715
    # at 1e-4 and 0.63/0.735/0.705 at 2e-4 ([CLS] head at 2e-4, the chapter's earlier setting: 0.705/0.745/0.70).
    "05": {
        "cpu-tiny": _on("cpu-tiny", n_train=192, n_eval=200, max_length=32, batch_size=8, learning_rate=1e-4,
                        epochs=2, warmup=0.1, head_lr_multiplier=10.0, chapter=ApplicationsValues(
                            topic_max_length=48, tagging_train=768, tagging_max_length=40, tagging_learning_rate=2e-4,
                            tagging_epochs=3, tagging_batch_size=16, lora_learning_rate=3e-3,
                            decoder_train=96, decoder_eval=96, decoder_max_length=32, translation_train=128,
                            translation_eval=32, translation_max_length=40, translation_epochs=2,
                            translation_learning_rate=1e-3, new_tokens=16, chinese_train=512, chinese_encoder=None)),
        "gpu": _on("gpu", warmup=0.1, chapter=ApplicationsValues(
            topic_max_length=256, tagging_train=None, tagging_max_length=128, tagging_learning_rate=1e-4,
            tagging_epochs=3, tagging_batch_size=32,
            lora_learning_rate=5e-4, decoder_train=None, decoder_eval=None, decoder_max_length=128,
            translation_train=None, translation_eval=None, translation_max_length=64,
            translation_epochs=3, translation_learning_rate=5e-4, new_tokens=48, chinese_train=None,
            chinese_encoder="google-bert/bert-base-chinese")),
    },
    # Some 40 short trainings run in chapter 6: on cpu-tiny each sees 128 articles, cut to their first 32
    # tokens, for one epoch (8 steps of 16) and is scored on all 198 validation articles, which keeps the
    # chapter within minutes; on gpu each uses every example. The searches show 3e-4 is a good base rate.
    "06": {
        "cpu-tiny": _on("cpu-tiny", n_train=128, n_eval=None, max_length=32, batch_size=16, learning_rate=3e-4,
                        epochs=1, warmup=0.1, chapter=ToolsValues(sweep_learning_rate=3e-4, n_trials=6)),
        "gpu": _on("gpu", epochs=2, warmup=0.1, chapter=ToolsValues(sweep_learning_rate=3e-4, n_trials=12)),
    },
    # The learning curve trains 2 x sizes x seeds models. On cpu-tiny that has to fit in a few minutes on
    # two CPU cores: short reviews (32 tokens), three small sizes drawn from a pool of 720, one epoch per
    # run, 200 test reviews. The gpu configuration keeps its own lengths and epochs (at least `min_steps`
    # steps), every review, larger sizes.
    "07": {
        "cpu-tiny": _on("cpu-tiny", n_train=720, n_eval=200, max_length=32, batch_size=16, learning_rate=2e-5,
                        epochs=1, warmup=0.1, chapter=EvaluationValues(
                            sizes=(40, 120, 360), min_steps=0, n_validation=200, mi_members=50,
                            choice_train=120, choice_test=None, spam_train=1500, translation_train=96,
                            translation_test=24, translation_max_length=40, translation_epochs=2, new_tokens=16)),
        "gpu": _on("gpu", warmup=0.1, chapter=EvaluationValues(
            sizes=(50, 200, 800, 2000, 8000), min_steps=50, n_validation=500, mi_members=500,
            choice_train=800, choice_test=None, spam_train=None, translation_train=None, translation_test=None,
            translation_max_length=64, translation_epochs=3, new_tokens=48)),
    },
    # Every SFT run trains the top blocks of SmolLM2-135M (forward through all 30 blocks): on one CPU core
    # about 190 tokens a second, so cpu-tiny keeps 16 conversations per task (64, ~82 tokens each, two
    # epochs of batch 8 = 16 steps, ~55 s a run) and 12 test prompts per task; 16 steps already move format
    # compliance from 0 to near 1 (scoping runs in the stop-29 note). The trade-off curve runs one λ on
    # cpu-tiny and a grid with seeds on gpu. gpu's precision is "auto": bf16 on a GPU that has it (not a
    # T4), fp32 elsewhere; a smoke run on a CPU without fast bf16 took 160 s a step under bf16 autocast.
    "08": {
        "cpu-tiny": _on("cpu-tiny", batch_size=8, learning_rate=2e-4, epochs=2, warmup=0.1,
                        chapter=InstructionValues(
                            train_per_task=16, test_per_task=12, text_chars=200, max_tokens=192, trained_blocks=4,
                            lora_rank=16,
                            strengths=(1.0,), decoupled_strength=200.0, strength_seeds=1, answer_tokens=4,
                            long_answer_tokens=20, perplexity_texts=16, perplexity_length=96)),
        "gpu": _on("gpu", batch_size=16, learning_rate=1e-4, epochs=2, warmup=0.1, mixed_precision="auto",
                   chapter=InstructionValues(
                       train_per_task=1000, test_per_task=200, text_chars=1000, max_tokens=384, trained_blocks=8,
                       lora_rank=16,
                       strengths=(0.1, 0.3, 1.0, 3.0, 10.0), decoupled_strength=200.0, strength_seeds=3,
                       answer_tokens=4, long_answer_tokens=48, perplexity_texts=200, perplexity_length=256)),
    },
}


def get_config(name: str, chapter: str | None = None, **overrides: Any) -> BookConfig:
    """Return the named configuration (of ``chapter``, if given) with ``overrides`` applied.

    ``overrides`` may name a field of :class:`BookConfig` or one of the chapter's own values
    (``get_config("gpu", chapter="07", sizes=[100, 400])``). Raises ``ValueError`` naming the allowed
    configurations, chapters or fields when ``name``, ``chapter`` or an override is unknown, and naming
    the field and what it allows when a value is bad.

    Example:
        >>> get_config("gpu").mixed_precision
        'bf16'
        >>> get_config("cpu-tiny", chapter="07", sizes=[40, 80]).chapter.sizes
        (40, 80)
        >>> get_config("tpu")
        Traceback (most recent call last):
        ...
        ValueError: Unknown config 'tpu': expected one of cpu-tiny, gpu.
        >>> get_config("cpu-tiny", chapter="05", topic_max_length=0)
        Traceback (most recent call last):
        ...
        ValueError: ApplicationsValues.topic_max_length=0 is not allowed: expected an integer >= 1.
    """
    if name not in CONFIGS:
        raise ValueError(f"Unknown config {name!r}: expected one of {', '.join(CONFIGS)}.")
    if chapter is not None and chapter not in CHAPTERS:
        raise ValueError(f"Unknown chapter {chapter!r}: expected None (the defaults) or one of "
                         f"{', '.join(CHAPTERS)}.")
    base = CONFIGS[name] if chapter is None else CHAPTERS[chapter][name]
    own = {f.name for f in dataclasses.fields(base.chapter)} if base.chapter is not None else set()
    known = {f.name for f in dataclasses.fields(BookConfig)} - {"name", "chapter"}
    unknown = sorted(set(overrides) - known - own)
    if unknown:
        raise ValueError(
            f"Unknown config field(s) {', '.join(unknown)}: expected some of {', '.join(sorted(known | own))}."
        )
    chapter_changes = {k: overrides.pop(k) for k in own & set(overrides)}
    if chapter_changes:
        overrides["chapter"] = dataclasses.replace(base.chapter, **chapter_changes)
    return dataclasses.replace(base, **overrides)


# A smoke run executes a configuration's code paths (the gpu one, on a CPU) on tiny data, to catch a
# typo or a hub-only call in a branch cpu-tiny never takes. The book runner sets the variable
# (``python -m ftutils.book run --config gpu --smoke``); :func:`ftutils.chapter.start` reads it.
SMOKE_ENV = "FTUTILS_SMOKE"
# The gpu configuration trains in bf16, and on a CPU without native bf16 (no avx512_bf16 or AMX) a bf16
# matrix product is 30-60x slower than in fp32 (a 512x384 @ 384x1536 product: 7-16 ms fp32, 450 ms bf16 on
# a 2-core AMD EPYC), so there a smoke run is mostly emulated matrix products, whose cost grows with the
# tokens: one MiniLM step of 16 texts took 8.1 s at 32 tokens and 4.2 s at 16. Sixteen tokens still cut
# and pad every text, which is the code path a smoke run is for.
SMOKE_SIZES: dict[str, Any] = dict(n_train=48, n_eval=32, max_length=16, epochs=1, n_seeds=2)


def smoke_requested() -> bool:
    """Whether this process runs a smoke run (``$FTUTILS_SMOKE`` is ``1``)."""
    return os.environ.get(SMOKE_ENV) == "1"


def smoke_sized(cfg: BookConfig) -> BookConfig:
    """``cfg`` with every size capped at its smoke value (:data:`SMOKE_SIZES`, the chapter's ``SMOKE``).

    Everything else stays: the configuration's name, models, precision, learning rates and schedule, so
    the same branches run. A size of ``None`` (the whole split) becomes the smoke size.

    Example:
        >>> small = smoke_sized(get_config("gpu", chapter="07"))
        >>> small.name, small.n_train, small.epochs, small.mixed_precision, small.chapter.sizes
        ('gpu', 48, 1, 'bf16', (16, 32))
    """
    def capped(value: Any, cap: Any) -> Any:
        if value is None or isinstance(cap, tuple):
            return cap
        return min(value, cap)

    changes = {name: capped(getattr(cfg, name), cap) for name, cap in SMOKE_SIZES.items()}
    if cfg.chapter is not None and cfg.chapter.SMOKE:
        own = {name: capped(getattr(cfg.chapter, name), cap) for name, cap in cfg.chapter.SMOKE.items()}
        changes["chapter"] = dataclasses.replace(cfg.chapter, **own)
    return dataclasses.replace(cfg, **changes)
