"""The book's training loop, built on 🤗 Accelerate: one code path for CPU, one GPU, multi-GPU and TPU.

``train(model, train_dataset, eval_dataset, config=TrainingConfig(...))`` fine-tunes a Hugging Face model
on a tokenised dataset (see :func:`ftutils.batching.tokenize_classification`) and returns a
:class:`TrainResult` whose ``history`` :func:`ftutils.plotting.plot_learning_curves` draws.

What it does each optimizer step, in this order (the order matters for regularizers and fp16):
forward/backward over ``grad_accum_steps`` micro-batches (gradients synchronised across processes only
on the last one) → unscale fp16 gradients → ``regularizer.before_step()`` → clip → ``optimizer.step()``
→ ``regularizer.after_step(optimizer)`` (so each parameter group is pulled with its own learning rate)
→ ``scheduler.step()`` → ``zero_grad(set_to_none=True)``.

Why it is faster than a generic loop on a CPU: the data is tokenised once, each batch is padded only to
its longest example and examples of similar length are batched together (few pad tokens), the loss is
read back from the device only every ``logging_steps`` steps, AdamW's CPU step writes its temporaries
into one reused buffer (:class:`BufferedAdamW`, the same numbers as ``torch.optim.AdamW``), and
evaluation runs under :func:`torch.inference_mode` on length-sorted batches.

Exact resume: with ``save_steps`` and ``output_dir`` set, checkpoints (:mod:`ftutils.checkpoint`) hold the
weights, optimizer, scheduler and RNG states and the position in the epoch; ``resume=True`` continues
from the latest one and ends with the same weights and metrics as an uninterrupted run (same seed).

What can go wrong, and what happens then:

* A NaN or infinite loss or gradient norm stops training with :class:`NonFiniteError` naming the step,
  before the optimizer takes it, so the weights and every checkpoint stay finite
  (``on_nonfinite="skip"`` skips such a batch instead, with a logged warning). A checkpoint is never
  written from non-finite weights, so a finite one is never pruned because of a later bad one.
* A checkpoint records the run it belongs to (architecture, trainable parameters and shapes, dataset
  size and fingerprint, batch size, accumulation, processes, learning rate and schedule, seed). A
  resume whose setup differs raises :class:`ResumeMismatchError` listing the differing fields; the
  meaningful ones can be accepted with ``resume_override`` (see :data:`RESUME_OVERRIDABLE`).
* Every file of a checkpoint is checked (size, sha256, parse) before any state changes; a damaged
  newest checkpoint is skipped with a logged warning and the newest intact one is used.
* A fresh run (``resume=False``) refuses an ``output_dir`` holding checkpoints of an earlier run
  (:class:`OutputDirInUseError`) unless ``overwrite_output_dir=True``, which deletes them first; pruning
  (``save_total_limit``) only ever removes checkpoints of the current run.

Distributed: ``accelerate launch --num_processes N script.py`` runs the same code; ``batch_size`` is per
process, so the global batch is ``batch_size * N * grad_accum_steps``.

Example:
    >>> import datasets, transformers
    >>> cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
    ...                               num_attention_heads=2, intermediate_size=32, num_labels=2)
    >>> model = transformers.BertForSequenceClassification(cfg)
    >>> data = datasets.Dataset.from_dict({"input_ids": [[1, 5, 2], [1, 7, 8, 2]] * 8, "labels": [0, 1] * 8})
    >>> result = train(model, data, data, config=TrainingConfig(epochs=2, batch_size=4, progress=False))
    >>> sorted(result.final_metrics)
    ['eval_accuracy', 'eval_loss']
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.std import tqdm  # not tqdm.auto: without ipywidgets it prints a warning with the venv's path

from ftutils import checkpoint as ckpt
from ftutils import anatomy
from ftutils.anatomy import HEAD_PREFIXES, head_parameter_names, layer_depth, unwrap  # noqa: F401 (re-exported)
from ftutils.batching import DynamicPaddingCollator, LengthGroupedBatchSampler

__all__ = [
    "TrainingConfig",
    "TrainResult",
    "train",
    "evaluate",
    "predict",
    "build_param_groups",
    "layer_depth",
    "freeze_layers",
    "unfreeze_layers",
    "head_parameter_names",
    "lr_lambda",
    "make_optimizer",
    "BufferedAdamW",
    "cpu_supports_bf16",
    "cpu_bf16_speedup",
    "resolve_mixed_precision",
    "auto_precision",
    "read_tensorboard",
    "OPTIMIZERS",
    "TRACKERS",
    "NonFiniteError",
    "ResumeMismatchError",
    "OutputDirInUseError",
    "RESUME_OVERRIDABLE",
]

log = logging.getLogger(__name__)

SCHEDULERS = ("linear", "cosine", "constant")
OPTIMIZERS = ("adamw", "adamw_fused", "sgd", "adafactor")
TRACKERS = ("none", "tensorboard", "wandb")
EVAL_STRATEGIES = ("epoch", "steps", "no")
SAVE_STRATEGIES = ("steps", "epoch", "no")
NONFINITE_POLICIES = ("error", "skip")
# Fields of a checkpoint's run record that a resume may change on request (resume_override), and what
# the change then means. The others (architecture, trainable_parameters, optimizer) cannot change:
# the saved weights or optimizer state would not fit.
_NEXT_EPOCH = "training continues from the start of the next epoch, batched anew"
RESUME_OVERRIDABLE: dict[str, str] = {
    "dataset_size": _NEXT_EPOCH,
    "dataset_fingerprint": _NEXT_EPOCH,
    "batch_size": _NEXT_EPOCH,
    "grad_accum_steps": _NEXT_EPOCH,
    "num_processes": _NEXT_EPOCH,
    "seed": _NEXT_EPOCH + " in the new seed's order",
    "learning_rate": "the new base learning rate applies from the resumed step on",
    "lr_scheduler": "the new schedule applies from the resumed step on",
    "warmup_steps": "the new schedule applies from the resumed step on",
    "total_steps": "the new schedule applies from the resumed step on",
}
_SCHEDULE_FIELDS = ("learning_rate", "lr_scheduler", "warmup_steps", "total_steps")

NonFiniteError = ckpt.NonFiniteError


class ResumeMismatchError(ckpt.CheckpointError):
    """``resume=True`` found a checkpoint of a run set up differently (model, data, batching, schedule)."""


class OutputDirInUseError(ckpt.CheckpointError):
    """A fresh run's ``output_dir`` holds checkpoints of an earlier run."""


@dataclass
class TrainingConfig:
    """Every knob of :func:`train`. ``batch_size`` is per process; values are checked on creation.

    ``warmup``: an int is a number of steps, a float in [0, 1) a fraction of all steps.
    ``layer_decay`` < 1 gives layer-wise learning-rate decay: the top layer gets ``learning_rate``,
    each layer below ``layer_decay`` times the one above, embeddings the smallest. The new head gets
    ``learning_rate * head_lr_multiplier`` (discriminative learning rates).
    ``eval_strategy``: "epoch", "steps" (every ``eval_steps``) or "no" (only at the end).
    ``early_stopping_patience``: stop after that many evaluations without improving
    ``metric_for_best`` (a key of the eval metrics, with or without the ``eval_`` prefix).
    ``optimizer``: "adamw" (default), "sgd" (with ``momentum``; ``weight_decay`` is then a coupled L2
    term) or "adafactor" (``torch.optim.Adafactor``: factored second moments, less optimizer memory).
    ``report_to``: "none", "tensorboard" (event files under ``log_dir``, read back with
    :func:`read_tensorboard`) or "wandb" (Weights & Biases; offline unless ``WANDB_MODE`` says
    otherwise, files under ``log_dir``). Every history entry is logged as it is recorded.
    ``on_nonfinite``: "error" (default) stops at the first step whose loss or gradient norm is NaN or
    infinite, with :class:`NonFiniteError` naming it; "skip" drops that batch (no optimizer step) and
    goes on. ``overwrite_output_dir``: a fresh run (``resume=False``) into an ``output_dir`` holding
    checkpoints deletes them first instead of refusing. ``resume_override``: fields of the run record
    a resume may change (keys of :data:`RESUME_OVERRIDABLE`), e.g. ``("learning_rate",)``.

    Example:
        >>> TrainingConfig(epochs=3, layer_decay=0.8).layer_decay
        0.8
        >>> TrainingConfig(lr_scheduler="step")
        Traceback (most recent call last):
        ...
        ValueError: lr_scheduler='step' is not allowed: expected one of linear, cosine, constant.
    """

    output_dir: str | None = None
    epochs: int = 2
    max_steps: int | None = None
    batch_size: int = 32
    eval_batch_size: int | None = None
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    lr_scheduler: str = "linear"
    warmup: float = 0.0
    layer_decay: float = 1.0
    head_lr_multiplier: float = 1.0
    freeze_prefixes: tuple[str, ...] = ()
    freeze_bottom_layers: int = 0
    unfreeze_at_epoch: int | None = None
    grad_accum_steps: int = 1
    max_grad_norm: float | None = 1.0
    mixed_precision: str = "no"
    group_by_length: bool = True
    eval_strategy: str = "epoch"
    eval_steps: int | None = None
    logging_steps: int = 10
    save_strategy: str = "no"
    save_steps: int | None = None
    save_total_limit: int | None = 2
    resume: bool = False
    metric_for_best: str = "eval_loss"
    greater_is_better: bool | None = None
    early_stopping_patience: int | None = None
    load_best_at_end: bool = False
    seed: int = 0
    progress: bool = True
    compile: bool = False
    cpu: bool = False
    optimizer: str = "adamw"
    momentum: float = 0.9
    report_to: str = "none"
    log_dir: str | None = None
    on_nonfinite: str = "error"
    overwrite_output_dir: bool = False
    resume_override: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self._check_numbers()
        self._check_choices()
        self._check_combinations()
        self._normalise_sequences()

    def _check_numbers(self) -> None:
        """Counts, rates and fractions in their ranges."""
        def positive_int(name: str, allow_none: bool = False) -> None:
            value = getattr(self, name)
            if value is None and allow_none:
                return
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r} is not allowed: expected a positive integer"
                                 + (" or None." if allow_none else "."))

        for name in ("epochs", "batch_size", "grad_accum_steps", "logging_steps"):
            positive_int(name)
        for name in ("max_steps", "eval_batch_size", "eval_steps", "save_steps", "early_stopping_patience",
                     "save_total_limit"):
            positive_int(name, allow_none=True)
        if not 0 < self.learning_rate < 1:
            raise ValueError(f"learning_rate={self.learning_rate!r} is not allowed: expected a float in (0, 1), e.g. 5e-5.")
        if not 0 < self.layer_decay <= 1:
            raise ValueError(f"layer_decay={self.layer_decay!r} is not allowed: expected a float in (0, 1], e.g. 0.9 (1 = off).")
        if self.head_lr_multiplier <= 0:
            raise ValueError(f"head_lr_multiplier={self.head_lr_multiplier!r} is not allowed: expected a positive number.")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum={self.momentum!r} is not allowed: expected a float in [0, 1), e.g. 0.9.")
        if isinstance(self.warmup, bool) or self.warmup < 0 or (isinstance(self.warmup, float) and self.warmup >= 1):
            raise ValueError(f"warmup={self.warmup!r} is not allowed: expected a step count (int >= 0) or a fraction in [0, 1).")

    def _check_choices(self) -> None:
        """Fields that name one of a few options."""
        choices = {"lr_scheduler": SCHEDULERS, "eval_strategy": EVAL_STRATEGIES, "save_strategy": SAVE_STRATEGIES,
                   "optimizer": OPTIMIZERS, "report_to": TRACKERS, "on_nonfinite": NONFINITE_POLICIES}
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not allowed: expected one of {', '.join(allowed)}.")
        if self.mixed_precision not in ("no", "bf16", "fp16", "auto"):
            raise ValueError(f"mixed_precision={self.mixed_precision!r} is not allowed: expected 'no', 'bf16', "
                             "'fp16' or 'auto'.")
        self.mixed_precision = resolve_mixed_precision(self.mixed_precision)

    def _check_combinations(self) -> None:
        """Fields that need another one set (and ``save_steps`` switching saving on)."""
        if self.report_to != "none" and not (self.log_dir or self.output_dir):
            raise ValueError(f"report_to={self.report_to!r} needs log_dir (or output_dir) for its files.")
        if self.eval_strategy == "steps" and self.eval_steps is None:
            raise ValueError("eval_strategy='steps' needs eval_steps (e.g. eval_steps=50).")
        if self.save_strategy == "steps" and self.save_steps is None:
            raise ValueError("save_strategy='steps' needs save_steps (e.g. save_steps=100).")
        if self.save_steps is not None and self.save_strategy == "no":
            self.save_strategy = "steps"  # giving save_steps means saving
        if self.save_strategy != "no" and not self.output_dir:
            raise ValueError(f"save_strategy={self.save_strategy!r} needs output_dir (a folder for the checkpoints).")
        if self.resume and not self.output_dir:
            raise ValueError("resume=True needs output_dir, the folder holding the checkpoints to resume from.")

    def _normalise_sequences(self) -> None:
        """Tuples for the sequence fields (a list or, for resume_override, one string is accepted)."""
        if isinstance(self.resume_override, str):
            self.resume_override = (self.resume_override,)
        self.resume_override = tuple(self.resume_override)
        unknown = [f for f in self.resume_override if f not in RESUME_OVERRIDABLE]
        if unknown:
            raise ValueError(f"resume_override={self.resume_override!r} is not allowed: {', '.join(map(repr, unknown))} "
                             f"cannot be overridden; expected some of {', '.join(RESUME_OVERRIDABLE)}.")
        self.adam_betas = tuple(self.adam_betas)
        self.freeze_prefixes = tuple(self.freeze_prefixes)

    @classmethod
    def from_book_config(cls, book: Any, **overrides: Any) -> TrainingConfig:
        """The training knobs of a :class:`ftutils.config.BookConfig`: every field in :data:`BOOK_FIELDS`.

        Epochs, batch size, learning rate, warm-up, the head's learning-rate multiplier, precision and
        seed come from ``book``; ``overrides`` change any of them or set the other fields.

        Example:
            >>> from ftutils.config import get_config
            >>> run = TrainingConfig.from_book_config(get_config("cpu-tiny", chapter="03"), progress=False)
            >>> run.batch_size, run.learning_rate, run.warmup, run.head_lr_multiplier
            (8, 0.0002, 0.1, 10.0)
        """
        base = {name: getattr(book, name) for name in BOOK_FIELDS}
        base.update(overrides)
        return cls(**base)


# The fields of ftutils.config.BookConfig that have a training meaning, under the same names here.
BOOK_FIELDS = ("epochs", "batch_size", "learning_rate", "warmup", "head_lr_multiplier", "mixed_precision", "seed")


@dataclass
class TrainResult:
    """What :func:`train` returns. ``history`` is a list of dicts, one per log or evaluation."""

    history: list[dict[str, float]]
    final_metrics: dict[str, float]
    best_metrics: dict[str, float] | None
    checkpoint_dir: Path | None
    global_step: int
    train_runtime_s: float
    train_samples_per_second: float
    stopped_early: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# Parameter groups, layer-wise LR decay, freezing. Which parameters are the head and which block a
# name belongs to is ftutils.anatomy's; head_parameter_names, layer_depth and HEAD_PREFIXES are
# re-exported from here for the chapters that call them as trainer.*.


def build_param_groups(
    model: torch.nn.Module,
    *,
    learning_rate: float,
    weight_decay: float = 0.0,
    layer_decay: float = 1.0,
    head_lr_multiplier: float = 1.0,
    head_names: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups with layer-wise LR decay and a separate head learning rate.

    A parameter at depth d (:func:`ftutils.anatomy.layer_depth`) gets ``learning_rate * layer_decay ** (L + 1 - d)``
    (L = number of layers); head parameters get ``learning_rate * head_lr_multiplier``. Biases and
    norm weights (1-D tensors) get no weight decay. Frozen parameters are included (their gradient is
    ``None``, so the optimizer skips them) so that unfreezing later needs no new optimizer.
    Each group carries ``names`` (for inspection) besides ``params``, ``lr`` and ``weight_decay``.

    Example:
        >>> import transformers
        >>> cfg = transformers.BertConfig(hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
        ...                               intermediate_size=8, vocab_size=20, num_labels=2)
        >>> groups = build_param_groups(transformers.BertForSequenceClassification(cfg),
        ...                             learning_rate=1e-3, layer_decay=0.5, head_lr_multiplier=10)
        >>> sorted({round(g["lr"], 6) for g in groups})
        [0.000125, 0.00025, 0.0005, 0.001, 0.01]
    """
    model = unwrap(model)
    heads = set(head_parameter_names(model) if head_names is None else head_names)
    num_layers = anatomy.num_layers(model)
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if name in heads:
            lr = learning_rate * head_lr_multiplier
        else:
            lr = learning_rate * layer_decay ** (num_layers + 1 - layer_depth(name, num_layers))
        wd = 0.0 if param.ndim < 2 else weight_decay
        group = groups.setdefault((lr, wd), {"params": [], "names": [], "lr": lr, "weight_decay": wd})
        group["params"].append(param)
        group["names"].append(name)
    return sorted(groups.values(), key=lambda g: (g["lr"], g["weight_decay"]))


def freeze_layers(
    model: torch.nn.Module, *, prefixes: Sequence[str] = (), bottom_layers: int = 0
) -> list[str]:
    """Freeze parameters whose name starts with one of ``prefixes`` and/or the embeddings plus the
    ``bottom_layers`` lowest blocks. Returns the names now frozen.

    Example:
        >>> import transformers
        >>> cfg = transformers.BertConfig(hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
        ...                               intermediate_size=8, vocab_size=20)
        >>> m = transformers.BertForSequenceClassification(cfg)
        >>> frozen = freeze_layers(m, bottom_layers=1)
        >>> any("layer.0." in n for n in frozen), any("layer.1." in n for n in frozen)
        (True, False)
    """
    model = unwrap(model)
    if bottom_layers < 0:
        raise ValueError(f"bottom_layers={bottom_layers!r} is not allowed: expected an integer >= 0.")
    num_layers = anatomy.num_layers(model)
    if bottom_layers > num_layers:
        raise ValueError(f"bottom_layers={bottom_layers} but the model has only {num_layers} layers.")
    all_names = [n for n, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(n.startswith(prefix) for n in all_names):
            raise ValueError(f"Freeze prefix {prefix!r} matches no parameter; names look like {all_names[:3]}.")
    frozen = []
    for name, param in model.named_parameters():
        depth = layer_depth(name, num_layers)
        if name.startswith(tuple(prefixes)) or (bottom_layers and depth <= bottom_layers):
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def unfreeze_layers(model: torch.nn.Module, prefixes: Sequence[str] | None = None) -> list[str]:
    """Make parameters trainable again (all, or those starting with ``prefixes``); returns their names."""
    model = unwrap(model)
    done = []
    for name, param in model.named_parameters():
        if not param.requires_grad and (prefixes is None or name.startswith(tuple(prefixes))):
            param.requires_grad_(True)
            done.append(name)
    return done


# ---------------------------------------------------------------------------------------------------
# Learning-rate schedule


def lr_lambda(kind: str, warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the base learning rate at a step: linear warmup, then linear/cosine decay to 0
    or constant.

    Example:
        >>> f = lr_lambda("linear", 2, 10)
        >>> [round(f(s), 3) for s in (0, 1, 2, 6, 10)]
        [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    if kind not in SCHEDULERS:
        raise ValueError(f"lr_scheduler={kind!r} is not allowed: expected one of {', '.join(SCHEDULERS)}.")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        if kind == "constant":
            return 1.0
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        progress = min(1.0, progress)
        if kind == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


# ---------------------------------------------------------------------------------------------------
# Data helpers


class _Rows:
    """A tokenised dataset held as Python lists, so building a batch never touches Arrow per step."""

    def __init__(self, dataset: Any, what: str) -> None:
        if hasattr(dataset, "column_names") and hasattr(dataset, "to_dict"):
            self.columns = dataset.to_dict()
        elif isinstance(dataset, Mapping):
            self.columns = {k: list(v) for k, v in dataset.items()}
        elif isinstance(dataset, Sequence) and dataset and isinstance(dataset[0], Mapping):
            self.columns = {k: [row[k] for row in dataset] for k in dataset[0]}
        else:
            raise TypeError(
                f"{what} is a {type(dataset).__name__}: expected a datasets.Dataset, a dict of columns or a "
                "list of dicts, tokenised (see ftutils.batching.tokenize_classification)."
            )
        if "input_ids" not in self.columns:
            raise KeyError(
                f"{what} has no 'input_ids' column (it has {sorted(self.columns)}): tokenise it first with "
                "ftutils.batching.tokenize_classification(dsd, tokenizer, max_length)."
            )
        if "label" in self.columns and "labels" not in self.columns:
            self.columns["labels"] = self.columns.pop("label")
        self.keys = [k for k, v in self.columns.items() if _is_model_input(k, v)]
        self.lengths = [len(x) for x in self.columns["input_ids"]]

    def __len__(self) -> int:
        return len(self.lengths)

    def rows(self, indices: Iterable[int]) -> list[dict[str, Any]]:
        return [{k: self.columns[k][i] for k in self.keys} for i in indices]

    @property
    def has_labels(self) -> bool:
        return "labels" in self.keys


def _is_model_input(key: str, values: list) -> bool:
    return key in ("input_ids", "attention_mask", "token_type_ids", "labels", "position_ids",
                   "start_positions", "end_positions") and len(values) > 0


def _pad_token_id(model: torch.nn.Module, tokenizer: Any) -> int:
    for source in (tokenizer, getattr(unwrap(model), "config", None)):
        value = getattr(source, "pad_token_id", None)
        if value is not None:
            return int(value)
    return 0


def _device_of(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _to_device(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


# ---------------------------------------------------------------------------------------------------
# Evaluation and prediction


def default_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy of argmax predictions, ignoring label -100 (padding in token classification)."""
    preds = logits.argmax(-1)
    mask = labels != -100
    return {"accuracy": float((preds[mask] == labels[mask]).mean()) if mask.any() else float("nan")}


def _forward_all(
    model: torch.nn.Module, data: _Rows, *, batch_size: int, collator: DynamicPaddingCollator,
    accelerator: Any = None,
) -> tuple[np.ndarray, np.ndarray | None, float | None]:
    """Logits (and labels, mean loss) for every example, in dataset order, across processes."""
    world = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    device = accelerator.device if accelerator is not None else _device_of(model)
    # longest first, so padding is minimal and a memory error shows on the first batch
    order = np.argsort(-np.asarray(data.lengths), kind="stable")
    mine = order[rank::world]
    was_training = model.training
    model.eval()
    logits_parts, label_parts, loss_sum, n_loss = [], [], torch.zeros((), device=device), 0
    with torch.inference_mode():
        for start in range(0, len(mine), batch_size):
            idx = mine[start : start + batch_size]
            batch = _to_device(collator(data.rows(idx)), device)
            out = model(**batch)
            if getattr(out, "loss", None) is not None:
                loss_sum += out.loss.float() * len(idx)
                n_loss += len(idx)
            logits_parts.append(out.logits.float().cpu())
            if "labels" in batch:
                label_parts.append(batch["labels"].cpu())
    model.train(was_training)
    logits = _cat_ragged(logits_parts, pad=0.0)
    labels = _cat_ragged(label_parts, pad=-100) if label_parts else None
    indices = torch.as_tensor(mine, dtype=torch.long)
    if world > 1:
        logits, labels, indices, loss_sum, n_loss = _gather(accelerator, logits, labels, indices, loss_sum, n_loss)
    back = torch.empty_like(indices)
    back[indices] = torch.arange(len(indices))
    logits = logits[back].numpy()
    labels = labels[back].numpy() if labels is not None else None
    loss = float(loss_sum.item() / n_loss) if n_loss else None
    return logits, labels, loss


def _cat_ragged(parts: list[torch.Tensor], pad: float) -> torch.Tensor:
    if not parts:
        return torch.empty(0)
    if parts[0].ndim == 1 or all(p.shape[1:] == parts[0].shape[1:] for p in parts):
        return torch.cat(parts)
    longest = max(p.shape[1] for p in parts)
    padded = []
    for p in parts:
        shape = (p.shape[0], longest) + tuple(p.shape[2:])
        out = torch.full(shape, pad, dtype=p.dtype)
        out[:, : p.shape[1]] = p
        padded.append(out)
    return torch.cat(padded)


def _gather(accelerator: Any, logits, labels, indices, loss_sum, n_loss):
    device = accelerator.device

    def gather(t: torch.Tensor, pad: float) -> torch.Tensor:
        t = t.to(device)
        if t.ndim > 1:
            t = accelerator.pad_across_processes(t, dim=1, pad_index=pad)
        t = accelerator.pad_across_processes(t, dim=0, pad_index=pad)
        return accelerator.gather(t).cpu()

    all_idx = gather(indices, -1)
    keep = all_idx >= 0
    logits = gather(logits, 0.0)[keep]
    labels = gather(labels, -100)[keep] if labels is not None else None
    loss_sum = accelerator.reduce(loss_sum.reshape(1), reduction="sum")[0]
    n = accelerator.reduce(torch.tensor([n_loss], device=device), reduction="sum")[0]
    return logits, labels, all_idx[keep], loss_sum, int(n.item())


def evaluate(
    model: torch.nn.Module,
    dataset: Any,
    *,
    batch_size: int = 64,
    tokenizer: Any = None,
    compute_metrics: Callable[[np.ndarray, np.ndarray], Mapping[str, float]] | None = None,
    prefix: str = "eval_",
    accelerator: Any = None,
) -> dict[str, float]:
    """Loss and metrics of ``model`` on a tokenised labelled dataset, keys prefixed with ``prefix``.

    ``compute_metrics(logits, labels) -> dict`` gets numpy arrays in dataset order; the default is
    accuracy (labels -100 ignored).

    Example:
        >>> import transformers
        >>> cfg = transformers.BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1,
        ...                               num_attention_heads=2, intermediate_size=8)
        >>> m = transformers.BertForSequenceClassification(cfg)
        >>> sorted(evaluate(m, {"input_ids": [[1, 2], [3]], "labels": [0, 1]}))
        ['eval_accuracy', 'eval_loss']
    """
    data = _Rows(dataset, "The evaluation dataset")
    if not data.has_labels:
        raise KeyError("The evaluation dataset has no 'labels'/'label' column; use predict() for unlabelled data.")
    collator = DynamicPaddingCollator(_pad_token_id(model, tokenizer))
    logits, labels, loss = _forward_all(model, data, batch_size=batch_size, collator=collator, accelerator=accelerator)
    metrics = dict((compute_metrics or default_metrics)(logits, labels))
    out = {f"{prefix}loss": loss} if loss is not None else {}
    out.update({f"{prefix}{k}": float(v) for k, v in metrics.items()})
    return out


def predict(
    model: torch.nn.Module, dataset: Any, *, batch_size: int = 64, tokenizer: Any = None, accelerator: Any = None
) -> np.ndarray:
    """Logits for every example of a tokenised dataset, in dataset order (labels are not needed).

    Example:
        >>> import transformers
        >>> cfg = transformers.BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1,
        ...                               num_attention_heads=2, intermediate_size=8, num_labels=3)
        >>> predict(transformers.BertForSequenceClassification(cfg), {"input_ids": [[1, 2], [3]]}).shape
        (2, 3)
    """
    data = _Rows(dataset, "The prediction dataset")
    data.keys = [k for k in data.keys if k != "labels"]
    collator = DynamicPaddingCollator(_pad_token_id(model, tokenizer))
    logits, _, _ = _forward_all(model, data, batch_size=batch_size, collator=collator, accelerator=accelerator)
    return logits


# ---------------------------------------------------------------------------------------------------
# Training


def _make_accelerator(config: TrainingConfig) -> Any:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    kwargs = dict(mixed_precision=config.mixed_precision, cpu=config.cpu, step_scheduler_with_optimizer=False)
    try:
        return Accelerator(**kwargs)
    except ValueError as exc:
        # A notebook that trains twice with different precision: the state is a process-wide singleton.
        if "already been initialized" not in str(exc):
            raise
        AcceleratorState._reset_state(reset_partial_state=False)
        return Accelerator(**kwargs)


def cpu_supports_bf16(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """Whether this machine's CPU has native bfloat16 instructions (AVX512-BF16 or AMX-BF16).

    On such a CPU ``mixed_precision="bf16"`` runs matrix products in bfloat16 and a MiniLM training
    step takes about 1/1.45 of its fp32 time (see ``benchmarks/README.md``); on one without them bf16
    autocast is emulated and usually slower than fp32. Linux only: it reads the ``flags`` lines of
    ``cpuinfo``; on other systems, or when the file cannot be read, the answer is ``False``.

    Example:
        >>> isinstance(cpu_supports_bf16(), bool)
        True
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


# bf16 autocast on a CPU is worth its changed numbers only where it is clearly faster.
BF16_MIN_SPEEDUP = 1.1


@functools.lru_cache(maxsize=1)
def cpu_bf16_speedup(tokens: int = 512, width: int = 384, repeats: int = 5) -> float:
    """fp32 time over bf16-autocast time of one transformer feed-forward block, forward and backward,
    on this CPU (> 1: bf16 is faster). Measured once per process (about 0.5 s), then cached.

    Native bfloat16 instructions are not enough to make bf16 pay: on the 2-core AMD EPYC this book was
    developed on (``avx512_bf16``) a MiniLM training step ran 1.46x faster under bf16 autocast, while
    on a 2-core Intel Xeon with the same flag the benchmark's bf16 training runs took about 1.3x
    *longer* than fp32, and this block measured 0.55x (``benchmarks/README.md``). The block is
    MiniLM-sized (``width`` 384, a 4x wider hidden layer, ``tokens`` = batch x sequence length); its
    weights come from a private generator, so measuring leaves every global random state as it was.

    Example:
        >>> cpu_bf16_speedup() > 0
        True
    """
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, width, generator=generator)
    w_in = (torch.randn(width, 4 * width, generator=generator) / width ** 0.5).requires_grad_()
    w_out = (torch.randn(4 * width, width, generator=generator) / (4 * width) ** 0.5).requires_grad_()

    def step(bf16: bool) -> float:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = torch.nn.functional.gelu(x @ w_in) @ w_out
        out.float().pow(2).mean().backward()
        w_in.grad = w_out.grad = None
        return time.perf_counter() - started

    times: dict[bool, list[float]] = {False: [], True: []}
    for bf16 in (False, True):  # warm-up: the first call of each kind builds its kernels
        step(bf16)
    for _ in range(repeats):  # interleaved, so a busy neighbour slows both alike
        for bf16 in (False, True):
            times[bf16].append(step(bf16))
    return min(times[False]) / min(times[True])


def resolve_mixed_precision(mixed_precision: str) -> str:
    """``mixed_precision`` with ``"auto"`` replaced by what makes this machine faster.

    ``"auto"`` becomes ``"bf16"`` on a GPU that supports bfloat16 and, without a GPU, on a CPU with
    native bfloat16 instructions (:func:`cpu_supports_bf16`) where a bf16 block also runs at least
    ``BF16_MIN_SPEEDUP`` times faster than fp32 (:func:`cpu_bf16_speedup`); otherwise ``"no"``
    (fp32): emulated bf16 is slower than fp32, and so, on some CPUs, is native bf16. Every other
    value is returned as it is.

    Example:
        >>> resolve_mixed_precision("no"), resolve_mixed_precision("bf16")
        ('no', 'bf16')
        >>> resolve_mixed_precision("auto") in ("no", "bf16")
        True
    """
    return auto_precision()[0] if mixed_precision == "auto" else mixed_precision


def auto_precision() -> tuple[str, str]:
    """What ``mixed_precision="auto"`` becomes on this machine (see :func:`resolve_mixed_precision`),
    and why, in words for a chapter to print.

    Example:
        >>> choice, reason = auto_precision()
        >>> choice in ("no", "bf16") and bool(reason)
        True
    """
    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return "bf16", "a GPU with bfloat16"
        return "no", "a GPU without bfloat16"
    if not cpu_supports_bf16():
        return "no", "this CPU has no native bfloat16 instructions, and emulated bf16 is slower than fp32"
    speedup = cpu_bf16_speedup()
    return ("bf16" if speedup >= BF16_MIN_SPEEDUP else "no",
            f"this CPU has native bfloat16 instructions, and a bf16 block ran {speedup:.2f}x the speed of "
            f"fp32 here; bf16 is used from {BF16_MIN_SPEEDUP:g}x on")


def _clip(accelerator: Any, model: torch.nn.Module, max_norm: float) -> torch.Tensor:
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP and hasattr(model, "clip_grad_norm_"):
        return model.clip_grad_norm_(max_norm)
    # gradients are already unscaled: accelerator.clip_grad_norm_ would unscale a second time (an error)
    params = [p for p in model.parameters() if p.grad is not None]
    return torch.nn.utils.clip_grad_norm_(params, max_norm)


def _metric_key(config: TrainingConfig) -> tuple[str, bool]:
    key = config.metric_for_best
    key = key if key.startswith("eval_") else f"eval_{key}"
    greater = config.greater_is_better
    if greater is None:
        greater = "loss" not in key
    return key, greater


# ---------------------------------------------------------------------------------------------------
# Runs, resumes and non-finite steps


def _has_checkpoints(output_dir: Path) -> bool:
    """Whether ``output_dir`` holds ``checkpoint-<step>`` folders (complete or not)."""
    if not output_dir.is_dir():
        return False
    return any(child.is_dir() and re.fullmatch(r"checkpoint-\d+", child.name) for child in output_dir.iterdir())


def _claim_output_dir(output_dir: Path, config: TrainingConfig, accelerator: Any) -> None:
    """A fresh run's output folder: refuse one holding checkpoints, unless told to overwrite them."""
    if not _has_checkpoints(output_dir):
        return
    found = sorted(c.name for c in output_dir.iterdir() if c.is_dir() and c.name.startswith("checkpoint-"))
    if not config.overwrite_output_dir:
        raise OutputDirInUseError(
            f"output_dir {output_dir} holds checkpoints of an earlier run ({', '.join(found[:4])}"
            f"{', ...' if len(found) > 4 else ''}) and resume=False. Pass resume=True to continue that run, "
            "overwrite_output_dir=True to delete them and start afresh, or another output_dir."
        )
    if accelerator.is_main_process:
        for name in found:
            shutil.rmtree(output_dir / name, ignore_errors=True)
        for stale in [*output_dir.glob("ckpt-tmp-*"), *output_dir.glob(".ckpt-tmp-*")]:
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
        for name in (ckpt.LATEST, "best-model.safetensors"):
            (output_dir / name).unlink(missing_ok=True)
        log.warning("overwrite_output_dir=True: deleted %d checkpoint(s) of an earlier run from %s.",
                    len(found), output_dir)
    accelerator.wait_for_everyone()


def _data_fingerprint(data: _Rows) -> str:
    digest = hashlib.sha256()
    for key in sorted(data.keys):
        values = json.dumps(data.columns[key], separators=(",", ":"),
                            default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
        digest.update(f"{key}:{len(values)}:".encode())
        digest.update(values.encode())
    return digest.hexdigest()


def _run_record(model: torch.nn.Module, data: _Rows, config: TrainingConfig, *, world: int, total_steps: int,
                warmup_steps: int) -> dict[str, Any]:
    """What a checkpoint of this run belongs to; a resume must match it (see :func:`_check_resume`)."""
    model = unwrap(model)
    record = {
        "architecture": type(model).__name__,
        "trainable_parameters": {n: list(p.shape) for n, p in model.named_parameters() if p.requires_grad},
        "optimizer": {"name": config.optimizer, "betas": list(config.adam_betas), "eps": config.adam_eps,
                      "momentum": config.momentum, "weight_decay": config.weight_decay,
                      "layer_decay": config.layer_decay, "head_lr_multiplier": config.head_lr_multiplier},
        "dataset_size": len(data),
        "dataset_fingerprint": _data_fingerprint(data),
        "batch_size": config.batch_size,
        "grad_accum_steps": config.grad_accum_steps,
        "num_processes": world,
        "learning_rate": config.learning_rate,
        "lr_scheduler": config.lr_scheduler,
        "warmup_steps": warmup_steps,
        "total_steps": total_steps,
        "seed": config.seed,
    }
    return json.loads(json.dumps(record))  # as it reads back from trainer_state.json


def _describe_difference(name: str, saved: Any, now: Any) -> str:
    if name == "trainable_parameters" and isinstance(saved, dict) and isinstance(now, dict):
        keys = sorted(set(saved) | set(now))
        differing = [k for k in keys if saved.get(k) != now.get(k)]
        k = differing[0]
        return (f"trainable_parameters: {len(differing)} differ, e.g. {k} is {saved.get(k, 'absent')} in the "
                f"checkpoint and {now.get(k, 'absent (or frozen)')} now")
    if name == "optimizer" and isinstance(saved, dict) and isinstance(now, dict):
        parts = [f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k)]
        return f"optimizer: {', '.join(parts)}"
    if name == "dataset_fingerprint":
        return f"dataset_fingerprint: {str(saved)[:12]}... in the checkpoint, {str(now)[:12]}... now (other examples or order)"
    return f"{name}: {saved!r} in the checkpoint, {now!r} now"


def _check_resume(loaded: ckpt.Checkpoint, record: dict[str, Any] | None, config: TrainingConfig) -> list[str]:
    """Compare a checkpoint's run record with this run's; raise on a difference not overridden.

    Returns the overridden fields that differ (to be applied by :func:`_apply_overrides`).
    """
    saved = loaded.state.get("run")
    if not isinstance(saved, dict) or record is None:
        log.warning("%s records no run setup (written by an older ftutils): resuming without checking that "
                    "model, data and schedule match.", loaded.path)
        return []
    differing = [k for k in record if k in saved and saved[k] != record[k]]
    refused = [k for k in differing if k not in config.resume_override]
    if refused:
        details = "; ".join(_describe_difference(k, saved[k], record[k]) for k in refused)
        fixed = [k for k in refused if k not in RESUME_OVERRIDABLE]
        if fixed:
            fix = (f"{', '.join(fixed)} cannot change in a resume: resume with the model and settings it was "
                   "saved with, or start a fresh run (resume=False with another output_dir, or "
                   "overwrite_output_dir=True).")
        else:
            meaning = "; ".join(sorted({f"{k}: {RESUME_OVERRIDABLE[k]}" for k in refused}))
            fix = (f"To continue anyway with the new values, pass resume_override={tuple(differing)!r} ({meaning}); "
                   "or resume with the saved values, or start a fresh run (overwrite_output_dir=True).")
        raise ResumeMismatchError(f"Cannot resume from {loaded.path}: this run is set up differently ({details}). {fix}")
    return differing


def _apply_overrides(overrides: list[str], state: dict[str, Any], optimizer: Any, scheduler: Any,
                     new_base_lrs: list[float], schedule: Callable[[int], float]) -> None:
    """After loading a checkpoint, make the accepted differences (resume_override) take effect."""
    if not overrides:
        return
    if "learning_rate" in overrides:
        scheduler.base_lrs = list(new_base_lrs)
        for group, base in zip(optimizer.param_groups, new_base_lrs):
            group["initial_lr"] = base
    if any(k in _SCHEDULE_FIELDS for k in overrides):
        for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
            group["lr"] = base * schedule(scheduler.last_epoch)
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
    moved = ""
    if any(RESUME_OVERRIDABLE[k].startswith(_NEXT_EPOCH) for k in overrides) and state["batches_done"]:
        state["epoch"] += 1
        state["batches_done"] = 0
        moved = f"; the rest of the interrupted epoch is skipped, training goes on with epoch {state['epoch']}"
    log.warning("Resuming with changed %s (resume_override)%s.", ", ".join(overrides), moved)


def _grad_norm(model: torch.nn.Module) -> torch.Tensor:
    """The total L2 norm of all gradients, changing none (for the finiteness check without clipping)."""
    grads = [p.grad.detach() for p in model.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if hasattr(torch.nn.utils, "get_total_norm"):
        return torch.nn.utils.get_total_norm(grads)
    norms = [torch.linalg.vector_norm(g.float()) for g in grads]
    return torch.linalg.vector_norm(torch.stack([n.to(norms[0].device) for n in norms]))


def _nonfinite_what(running: torch.Tensor, norm: torch.Tensor | None) -> str:
    loss_ok = bool(torch.isfinite(running).item())
    loss = "the loss is finite" if loss_ok else f"the loss is {float(running.item())}"
    if norm is None:
        return loss
    return f"{loss} and the gradient norm is {float(norm)}"


def train(
    model: torch.nn.Module,
    train_dataset: Any,
    eval_dataset: Any = None,
    *,
    config: TrainingConfig,
    tokenizer: Any = None,
    regularizer: Any = None,
    compute_metrics: Callable[[np.ndarray, np.ndarray], Mapping[str, float]] | None = None,
) -> TrainResult:
    """Fine-tune ``model`` on a tokenised ``train_dataset``; see the module docstring and
    :class:`TrainingConfig`. The model is trained in place (and returned weights are the final or,
    with ``load_best_at_end``, the best ones).

    ``regularizer``: an object with ``before_step()`` and ``after_step(optimizer)`` (see
    :mod:`ftutils.regularizers`), called around each optimizer step.
    """
    if not isinstance(config, TrainingConfig):
        raise TypeError(f"config is a {type(config).__name__}: expected a ftutils.trainer.TrainingConfig.")
    run = _Run(model, train_dataset, eval_dataset, config, tokenizer=tokenizer, regularizer=regularizer,
               compute_metrics=compute_metrics)
    run.train_until_done()
    return run.finish()


class _Run:
    """One call of :func:`train`: what it sets up, the state its loop changes, and the loop in parts.

    Construction does the set-up, in an order that matters for exact resumes (seed, data, freezing,
    run record, optimizer and schedule, Accelerate, then the checkpoint's states on top);
    :meth:`train_until_done` runs the epochs, each optimizer step followed by logging, evaluation and
    saving when they are due; :meth:`finish` builds the :class:`TrainResult`.
    """

    def __init__(self, model: torch.nn.Module, train_dataset: Any, eval_dataset: Any, config: TrainingConfig, *,
                 tokenizer: Any, regularizer: Any,
                 compute_metrics: Callable[[np.ndarray, np.ndarray], Mapping[str, float]] | None) -> None:
        from accelerate.utils import set_seed

        self.config, self.tokenizer, self.regularizer, self.compute_metrics = (
            config, tokenizer, regularizer, compute_metrics)
        self.started = time.perf_counter()
        self.accelerator = _make_accelerator(config)
        self.world, self.rank = self.accelerator.num_processes, self.accelerator.process_index
        if self.world > 1 and config.unfreeze_at_epoch is not None:
            raise ValueError(
                "unfreeze_at_epoch is not supported with several processes (DDP fixes the trainable set when "
                "it wraps the model). Run on one process, or freeze without unfreezing."
            )
        set_seed(config.seed)
        self._set_up_data(model, train_dataset, eval_dataset)
        self._set_up_output_dir()
        if config.freeze_prefixes or config.freeze_bottom_layers:
            freeze_layers(model, prefixes=config.freeze_prefixes, bottom_layers=config.freeze_bottom_layers)
        # what a checkpoint of this run belongs to; computed before training changes the trainable set
        self.record = (_run_record(model, self.data, config, world=self.world, total_steps=self.total_steps,
                                   warmup_steps=self.warmup_steps)
                       if self.output_dir is not None and (config.save_strategy != "no" or self.resuming) else None)
        self._set_up_optimization(model)
        self.device = self.accelerator.device
        self.eval_bs = config.eval_batch_size or 2 * config.batch_size
        self.metric_key, self.greater = _metric_key(config)

        self.state: dict[str, Any] = {
            "global_step": 0, "epoch": 0, "batches_done": 0, "history": [], "best": None,
            "bad_evals": 0, "loss_sum": 0.0, "loss_n": 0, "samples_seen": 0, "skipped_steps": [],
        }
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.run_id = uuid.uuid4().hex
        self.resume_info: dict[str, Any] = {}
        if self.resuming:
            self._resume()
        self.tracker = _Tracker(config) if self.accelerator.is_main_process else None
        self._set_up_loop()

    # -- set-up ---------------------------------------------------------------------------------------

    def _set_up_data(self, model: torch.nn.Module, train_dataset: Any, eval_dataset: Any) -> None:
        """The datasets as rows, the length-grouped batches, and how many optimizer steps they make."""
        config = self.config
        self.data = _Rows(train_dataset, "The training dataset")
        if not self.data.has_labels:
            raise KeyError("The training dataset has no 'labels'/'label' column: a supervised loss needs labels.")
        self.eval_data = _Rows(eval_dataset, "The evaluation dataset") if eval_dataset is not None else None
        self.collator = DynamicPaddingCollator(_pad_token_id(model, self.tokenizer))
        self.sampler = LengthGroupedBatchSampler(
            self.data.lengths, config.batch_size, group_by_length=config.group_by_length, seed=config.seed,
            num_replicas=self.world, rank=self.rank,
        )
        self.batches_per_epoch = len(self.sampler)
        if self.batches_per_epoch == 0:
            raise ValueError("The training dataset is empty (or has fewer examples than processes): pass at least "
                             "one example per process.")
        steps_per_epoch = math.ceil(self.batches_per_epoch / config.grad_accum_steps)
        self.total_steps = config.max_steps or config.epochs * steps_per_epoch
        warmup = config.warmup
        self.warmup_steps = int(warmup) if warmup >= 1 or warmup == 0 else int(warmup * self.total_steps)

    def _set_up_output_dir(self) -> None:
        """Whether this run resumes; a fresh run claims its output folder (see :func:`_claim_output_dir`)."""
        config = self.config
        self.output_dir = Path(config.output_dir) if config.output_dir else None
        self.resuming = bool(config.resume and self.output_dir is not None and _has_checkpoints(self.output_dir))
        if self.output_dir is not None and not self.resuming:
            _claim_output_dir(self.output_dir, config, self.accelerator)

    def _set_up_optimization(self, model: torch.nn.Module) -> None:
        """Parameter groups (layer-wise decay, head rate), optimizer and schedule; model and optimizer
        prepared by Accelerate (and the model compiled if asked)."""
        config = self.config
        groups = build_param_groups(
            model, learning_rate=config.learning_rate, weight_decay=config.weight_decay,
            layer_decay=config.layer_decay, head_lr_multiplier=config.head_lr_multiplier,
        )
        optimizer = make_optimizer(groups, config)
        self.schedule = lr_lambda(config.lr_scheduler, self.warmup_steps, self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.schedule)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        # the torch optimizer inside Accelerate's AcceleratedOptimizer: the regulariser reads each
        # parameter group's learning rate from it, as ftutils.hf and ftutils.lightning do
        self.torch_optimizer = getattr(self.optimizer, "optimizer", self.optimizer)
        if config.compile:
            self.model = torch.compile(self.model)

    def _resume(self) -> None:
        """Continue from the newest intact checkpoint: weights, optimizer, scheduler, RNG and loop state."""
        config, output_dir = self.config, self.output_dir
        # every file is read and checked before anything changes; a damaged newest checkpoint is skipped
        loaded, skipped = ckpt.read_intact_checkpoint(output_dir, rank=self.rank)
        overrides = _check_resume(loaded, self.record, config)
        best_file = output_dir / "best-model.safetensors"
        if config.load_best_at_end and best_file.is_file():
            self.best_weights = _read_best_weights(best_file)
        new_base_lrs = list(self.scheduler.base_lrs)
        ckpt.apply_checkpoint(loaded, model=self.accelerator.unwrap_model(self.model), optimizer=self.optimizer,
                              scheduler=self.scheduler)
        self.state.update({k: loaded.state[k] for k in self.state if k in loaded.state})
        self.run_id = loaded.state.get("run_id") or self.run_id
        _apply_overrides(overrides, self.state, self.optimizer, self.scheduler, new_base_lrs, self.schedule)
        self.resume_info = {"resumed_from": str(loaded.path), "skipped_checkpoints": [str(p) for p, _ in skipped],
                            "resume_overrides": overrides}

    def _set_up_loop(self) -> None:
        """The progress bar and the loop's running values (a resumed run continues its loss sum)."""
        config, state = self.config, self.state
        self.bar = tqdm(total=self.total_steps, initial=state["global_step"], desc="train", unit="step",
                        disable=not (config.progress and self.accelerator.is_main_process), file=sys.stderr,
                        dynamic_ncols=False, ncols=100)
        self.running = torch.zeros((), device=self.device)  # loss summed on the device: no host sync per step
        self.running_n = 0
        if state["loss_n"]:
            self.running += state["loss_sum"]
            self.running_n = state["loss_n"]
        self.last_log_time, self.last_log_samples = time.perf_counter(), state["samples_seen"]
        self.stopped_early = False
        self.postfix: dict[str, str] = {}
        history = state["history"]
        self.last_eval_step = history[-1]["step"] if history and self.metric_key in history[-1] else -1
        self.check_grads = self.accelerator.scaler is None  # with fp16 the grad scaler skips overflowing steps itself
        self.skip_bad = config.on_nonfinite == "skip"
        self.model.train()

    # -- the loop -------------------------------------------------------------------------------------

    def train_until_done(self) -> None:
        """Run epochs until ``total_steps`` optimizer steps are done or early stopping ends the run."""
        try:
            while self.state["global_step"] < self.total_steps and not self.stopped_early:
                self._train_epoch()
        except BaseException:
            if self.tracker is not None:
                self.tracker.close()
            raise
        finally:
            self.bar.close()

    def _train_epoch(self) -> None:
        """The current epoch from ``state["batches_done"]`` on: per optimizer step, the step itself, then
        logging, evaluation and saving when they are due."""
        config, state = self.config, self.state
        epoch = state["epoch"]
        if config.unfreeze_at_epoch is not None and epoch >= config.unfreeze_at_epoch:
            unfreeze_layers(self.model)
        self.sampler.set_epoch(epoch)
        batches = list(self.sampler)
        i = state["batches_done"]
        if i >= len(batches):  # a position past this epoch's end: go on with the next epoch, never spin
            state["epoch"] += 1
            state["batches_done"] = 0
            return
        while i < len(batches) and state["global_step"] < self.total_steps:
            group = batches[i : i + config.grad_accum_steps]
            n_group = sum(len(b) for b in group)
            grad_norm, lr_now = self._optimizer_step(group, n_group, where=(epoch, i))
            i += len(group)
            state["global_step"] += 1
            state["batches_done"] = i
            state["samples_seen"] += n_group * self.world
            step = state["global_step"]
            self.bar.update(1)
            epoch_end = i >= len(batches)
            self._log_if_due(step, epoch_end, grad_norm, lr_now)
            self._evaluate_if_due(step, epoch_end)
            if epoch_end:
                state["epoch"] += 1
                state["batches_done"] = 0
            self._save_if_due(step, epoch_end)
            if self.stopped_early:
                break

    # -- one optimizer step ---------------------------------------------------------------------------

    def _optimizer_step(self, group: list[list[int]], n_group: int, *, where: tuple[int, int]
                        ) -> tuple[torch.Tensor | None, float]:
        """One optimizer step over the micro-batches ``group`` (``n_group`` examples), in the order of the
        module docstring, or none if the loss or gradient norm is not finite (see :meth:`_not_finite`).

        ``where``: (epoch, index of the first micro-batch in it), for the error message. Returns the
        gradient norm before clipping (``None`` without clipping) and the base learning rate of the step.
        """
        config, optimizer, regularizer = self.config, self.optimizer, self.regularizer
        if self.skip_bad:
            running_before, running_n_before = self.running.clone(), self.running_n
        self._forward_backward(group, n_group)
        if self.accelerator.scaler is not None:
            self.accelerator.unscale_gradients()
        if regularizer is not None:
            regularizer.before_step()
        grad_norm = _clip(self.accelerator, self.model, config.max_grad_norm) if config.max_grad_norm else None
        finite, norm = self._all_finite(grad_norm)
        lr_now = config.learning_rate * self.schedule(self.state["global_step"])
        if finite:
            optimizer.step()
            if regularizer is not None and not getattr(optimizer, "step_was_skipped", False):
                # the optimizer, not lr_now: each parameter group is pulled with its own learning rate
                # (layer-wise decay, head multiplier), as in ftutils.hf and ftutils.lightning
                regularizer.after_step(self.torch_optimizer)
            self.scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        else:
            optimizer.zero_grad(set_to_none=True)
            self._not_finite(norm, where=where, n_micro=len(group))
            self.running.copy_(running_before)
            self.running_n = running_n_before
            self.scheduler.step()  # the schedule stays aligned with the position in the data
        return grad_norm, lr_now

    def _forward_backward(self, group: list[list[int]], n_group: int) -> None:
        """Forward and backward over the micro-batches of one step, the loss summed into ``running``;
        gradients are synchronised across processes only on the last micro-batch."""
        accelerator, model = self.accelerator, self.model
        for j, idx in enumerate(group):
            batch = _to_device(self.collator(self.data.rows(idx)), self.device)
            sync = j == len(group) - 1
            with contextlib.nullcontext() if sync or self.world == 1 else accelerator.no_sync(model):
                loss = model(**batch).loss
                # weight by examples so a short last micro-batch counts as much as it contains
                accelerator.backward(loss * (len(idx) / n_group))
            self.running += loss.detach().float() * len(idx)
            self.running_n += len(idx)

    def _all_finite(self, grad_norm: torch.Tensor | None) -> tuple[bool, torch.Tensor | None]:
        """Whether the running loss and the gradient norm are finite on every process, and that norm."""
        # one host sync per step: a NaN must stop the step before the optimizer spreads it to the weights
        norm = (grad_norm if grad_norm is not None else _grad_norm(self.model)) if self.check_grads else None
        finite = torch.isfinite(self.running) if norm is None else torch.isfinite(self.running) & torch.isfinite(norm)
        finite = finite.float().reshape(1)
        if self.world > 1:
            finite = self.accelerator.reduce(finite, reduction="sum") / self.world
        return bool(finite.item() == 1.0), norm

    def _not_finite(self, norm: torch.Tensor | None, *, where: tuple[int, int], n_micro: int) -> None:
        """A step with a non-finite loss or gradient norm: raise :class:`NonFiniteError` naming it, or
        with ``on_nonfinite="skip"`` log a warning and record it as skipped."""
        what = _nonfinite_what(self.running, norm)
        epoch, first = where
        step = self.state["global_step"]
        place = f"step {step + 1} (batches {first}-{first + n_micro - 1} of epoch {epoch}, counted from 0)"
        if not self.skip_bad:
            newest = ckpt.latest_checkpoint(self.output_dir) if self.output_dir is not None else None
            raise NonFiniteError(
                f"Training stopped at {place}: {what}. The optimizer step was not taken, so the weights "
                f"are those after step {step}"
                + (f" and the newest checkpoint, {newest}, is finite" if newest is not None else "")
                + ". Lower learning_rate or set max_grad_norm, look at that batch's examples, or pass "
                "on_nonfinite='skip' to skip such batches."
            )
        log.warning("Skipped %s: %s (on_nonfinite='skip').", place, what)
        self.state["skipped_steps"].append(step + 1)

    # -- logging, evaluation, saving ------------------------------------------------------------------

    def _epoch_float(self) -> float:
        return self.state["epoch"] + self.state["batches_done"] / self.batches_per_epoch

    def _record(self, entry: dict[str, float]) -> None:
        """Append a history entry and send it to the tracker."""
        self.state["history"].append(entry)
        if self.tracker is not None:
            self.tracker.log(entry)

    def _log_if_due(self, step: int, epoch_end: bool, grad_norm: torch.Tensor | None, lr_now: float) -> None:
        """Every ``logging_steps`` steps, at the last step and at an epoch's end: the mean training loss
        since the last log (over all processes), learning rate, throughput and gradient norm."""
        config = self.config
        if not ((step % config.logging_steps == 0 or step == self.total_steps or epoch_end) and self.running_n):
            return
        running = self.running
        total = self.accelerator.reduce(running.reshape(1), reduction="sum")[0] if self.world > 1 else running
        count = self.running_n * self.world
        now = time.perf_counter()
        samples = self.state["samples_seen"]
        entry = {"step": step, "epoch": round(self._epoch_float(), 4),
                 "train_loss": float(total.item()) / count, "lr": lr_now,
                 "samples_per_second": (samples - self.last_log_samples) / max(now - self.last_log_time, 1e-9)}
        if grad_norm is not None:
            entry["grad_norm"] = float(grad_norm)
        self._record(entry)
        self.postfix["loss"] = f"{entry['train_loss']:.4f}"
        self.bar.set_postfix(self.postfix, refresh=False)
        running.zero_()
        self.running_n = 0
        self.last_log_time, self.last_log_samples = now, samples

    def _evaluate(self, record: bool = True) -> dict[str, float]:
        """Metrics on the evaluation set at the current step (recorded in the history if ``record``)."""
        metrics = evaluate(self.model, self.eval_data.columns, batch_size=self.eval_bs, tokenizer=self.tokenizer,
                           compute_metrics=self.compute_metrics, accelerator=self.accelerator)
        entry = {"step": self.state["global_step"], "epoch": round(self._epoch_float(), 4), **metrics}
        if record:
            self._record(entry)
        return entry

    def _evaluate_if_due(self, step: int, epoch_end: bool) -> None:
        """Evaluate per ``eval_strategy``; keep track of the best metrics (and weights) and early stopping."""
        config = self.config
        due = self.eval_data is not None and (
            (config.eval_strategy == "steps" and step % config.eval_steps == 0)
            or (config.eval_strategy == "epoch" and epoch_end)
        )
        if not due:
            return
        entry = self._evaluate()
        self.last_eval_step = step
        key = self.metric_key
        self.postfix[key] = f"{entry.get(key, float('nan')):.4f}"
        self.bar.set_postfix(self.postfix, refresh=False)
        value = entry.get(key)
        if value is None:
            raise KeyError(f"metric_for_best={config.metric_for_best!r} is not among the eval metrics "
                           f"{sorted(entry)}; pass one of them.")
        best = self.state["best"]
        if best is None or (value > best[key] if self.greater else value < best[key]):
            self._new_best(entry)
        else:
            self.state["bad_evals"] += 1
            if config.early_stopping_patience and self.state["bad_evals"] >= config.early_stopping_patience:
                self.stopped_early = True

    def _new_best(self, entry: dict[str, float]) -> None:
        """Remember the best evaluation; with ``load_best_at_end`` also its weights (in memory and on disk)."""
        self.state["best"] = entry
        self.state["bad_evals"] = 0
        if self.config.load_best_at_end:
            weights = self.accelerator.unwrap_model(self.model).state_dict()
            self.best_weights = {k: v.detach().cpu().clone() for k, v in weights.items()}
            if self.output_dir is not None and self.accelerator.is_main_process:
                _save_weights_atomic(self.best_weights, self.output_dir / "best-model.safetensors")

    def _save_if_due(self, step: int, epoch_end: bool) -> None:
        """Write a checkpoint per ``save_strategy``, and always at the end of a run that saves."""
        config = self.config
        due = (config.save_strategy == "steps" and step % config.save_steps == 0) or (
            config.save_strategy == "epoch" and epoch_end)
        if due or (config.save_strategy != "no" and (step == self.total_steps or self.stopped_early)):
            self.state["loss_sum"], self.state["loss_n"] = float(self.running.item()), self.running_n
            self._save()

    def _save(self) -> None:
        trainer_state = {k: v for k, v in self.state.items()}
        trainer_state["run"] = self.record
        ckpt.save_checkpoint(self.output_dir, self.state["global_step"], model=self.model, optimizer=self.optimizer,
                             scheduler=self.scheduler, trainer_state=trainer_state,
                             keep_last=self.config.save_total_limit, accelerator=self.accelerator,
                             run_id=self.run_id)

    # -- the end --------------------------------------------------------------------------------------

    def finish(self) -> TrainResult:
        """Load the best weights if asked, take the final metrics, close the tracker, build the result."""
        config, state, accelerator = self.config, self.state, self.accelerator
        if self.best_weights is not None:
            accelerator.unwrap_model(self.model).load_state_dict(self.best_weights)
        final_metrics: dict[str, float] = {}
        if self.eval_data is not None:
            reloaded = config.load_best_at_end and self.best_weights is not None
            if self.last_eval_step == state["global_step"] and not reloaded:
                final_metrics = {k: v for k, v in state["history"][-1].items() if k.startswith("eval_")}
            else:  # the best weights' metrics are already in the history: do not log them twice
                final_metrics = {k: v for k, v in self._evaluate(record=not reloaded).items() if k.startswith("eval_")}
        if self.tracker is not None:
            self.tracker.close()
        runtime = time.perf_counter() - self.started
        # give the caller back a plain model: drop the autocast wrapper Accelerate put on forward()
        accelerator.unwrap_model(self.model, keep_fp32_wrapper=False)
        checkpoint_dir = ckpt.latest_checkpoint(self.output_dir) if self.output_dir is not None else None
        trained = [h for h in state["history"] if "samples_per_second" in h]
        return TrainResult(
            history=state["history"],
            final_metrics=final_metrics,
            best_metrics=state["best"],
            checkpoint_dir=checkpoint_dir,
            global_step=state["global_step"],
            train_runtime_s=runtime,
            train_samples_per_second=state["samples_seen"] / runtime if runtime > 0 else float("nan"),
            stopped_early=self.stopped_early,
            extra={"total_steps": self.total_steps, "num_processes": self.world, "warmup_steps": self.warmup_steps,
                   "log_entries": len(trained), "skipped_steps": list(state["skipped_steps"]), **self.resume_info},
        )


def _read_best_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # SafetensorError on a truncated or overwritten file
        raise ckpt.DamagedCheckpointError(
            f"{path} is damaged ({type(exc).__name__}: {exc}), so load_best_at_end cannot restore the best "
            "weights. Delete it to resume without them (the run then ends with its last weights), or pass "
            "load_best_at_end=False."
        ) from exc


def _save_weights_atomic(weights: Mapping[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # tied weights share storage; safetensors refuses shared tensors, so store independent copies
    save_file({k: v.contiguous().clone() for k, v in weights.items()}, str(tmp))
    ckpt.fsync_file(tmp)
    os.replace(tmp, path)
    ckpt.fsync_dir(path.parent)


# ---------------------------------------------------------------------------------------------------
# Optimizers and experiment tracking


try:  # what torch's own Adam.step is wrapped in: no grad, unless the optimizer is differentiable
    from torch.optim.optimizer import _use_grad_for_differentiable
except ImportError:  # pragma: no cover - a torch without it
    _use_grad_for_differentiable = torch.no_grad()


class BufferedAdamW(torch.optim.AdamW):
    """:class:`torch.optim.AdamW` whose CPU step reuses one scratch buffer: same numbers, less time.

    On a CPU, torch's AdamW takes its single-tensor path, which allocates two temporaries the size of
    each parameter every step (``exp_avg_sq.sqrt() / bias_correction2_sqrt``); for MiniLM that is
    2 x 22.7 M floats, half of them the 47 MB word-embedding matrix, and most of the step's time goes
    into the kernel mapping and zeroing those fresh pages. This class runs the very same operations in
    the same order on the same tensors, writing the denominator into a buffer kept between steps
    (``torch.sqrt(..., out=)``, then ``div_``/``add_`` in place), so the parameters and moments are
    bit-for-bit those of ``torch.optim.AdamW`` (``tests/test_trainer.py`` checks it) in a half to a
    fifth of the time (MiniLM: 0.11 s -> 0.05 s per step at 1 CPU thread, 0.17 s -> 0.035 s at 2; see
    ``benchmarks/README.md``).

    Everything else is torch's AdamW: constructor, state (``step``, ``exp_avg``, ``exp_avg_sq``),
    ``state_dict`` (checkpoints of either class load into the other), hooks. A parameter group that
    is not on the CPU, or uses ``amsgrad``, ``maximize``, ``foreach``, ``fused``, ``capturable``,
    ``differentiable``, complex or sparse tensors, a tensor learning rate or ``torch.compile``, is
    stepped by torch's own code. It is not torch's ``fused=True`` CPU kernel: that one is faster
    still but rounds differently, so seeded runs would not reproduce their recorded numbers.
    The buffer (the size of the largest parameter) is not part of the state.

    Example:
        >>> layer = torch.nn.Linear(3, 2)
        >>> opt = BufferedAdamW(layer.parameters(), lr=0.1)
        >>> layer(torch.ones(1, 3)).sum().backward(); opt.step()
        >>> sorted(opt.state[layer.weight])
        ['exp_avg', 'exp_avg_sq', 'step']
    """

    @_use_grad_for_differentiable
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One AdamW step (see the class docstring); ``closure`` as in :meth:`torch.optim.AdamW.step`."""
        if hasattr(self, "_accelerator_graph_capture_health_check"):
            self._accelerator_graph_capture_health_check()
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps = [], [], [], [], [], []
            has_complex = self._init_group(group, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs,
                                           state_steps)
            if not params:
                continue
            if self._buffered_path(group, params, grads, has_complex):
                self._buffered_step(group, params, grads, exp_avgs, exp_avg_sqs, state_steps)
                continue
            from torch.optim.adam import adam

            beta1, beta2 = group["betas"]
            adam(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, amsgrad=group["amsgrad"],
                 has_complex=has_complex, beta1=beta1, beta2=beta2, lr=group["lr"],
                 weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
                 foreach=group["foreach"], capturable=group["capturable"], differentiable=group["differentiable"],
                 fused=group["fused"], grad_scale=getattr(self, "grad_scale", None),
                 found_inf=getattr(self, "found_inf", None),
                 decoupled_weight_decay=group.get("decoupled_weight_decay", True))
        return loss

    def _buffered_path(self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor],
                       has_complex: bool) -> bool:
        """Whether torch would take its single-tensor path for ``group`` and this class can take it instead."""
        if (group["amsgrad"] or group["maximize"] or group["foreach"] or group["fused"] or group["capturable"]
                or group["differentiable"] or not group.get("decoupled_weight_decay", True) or has_complex
                or getattr(self, "grad_scale", None) is not None or getattr(self, "found_inf", None) is not None
                or torch.compiler.is_compiling() or torch.jit.is_scripting()):
            return False
        if not all(isinstance(v, float) for v in (group["lr"], *group["betas"])):
            return False
        return all(p.device.type == "cpu" and g.layout == torch.strided for p, g in zip(params, grads))

    def _scratch(self, like: torch.Tensor) -> torch.Tensor:
        """A buffer shaped like ``like`` (contiguous), carved from one kept per dtype."""
        buffers = self.__dict__.setdefault("_scratch_buffers", {})
        flat = buffers.get(like.dtype)
        if flat is None or flat.numel() < like.numel():
            largest = max(p.numel() for g in self.param_groups for p in g["params"] if p.dtype == like.dtype)
            flat = buffers[like.dtype] = torch.empty(max(largest, like.numel()), dtype=like.dtype)
        return flat[: like.numel()].view(like.shape)

    def _buffered_step(self, group: dict[str, Any], params: list[torch.Tensor], grads: list[torch.Tensor],
                       exp_avgs: list[torch.Tensor], exp_avg_sqs: list[torch.Tensor],
                       state_steps: list[torch.Tensor]) -> None:
        """torch's ``_single_tensor_adam`` for AdamW (decoupled decay, no amsgrad), op for op, with the
        denominator written into :meth:`_scratch` instead of two fresh tensors."""
        lr, (beta1, beta2) = group["lr"], group["betas"]
        weight_decay, eps = group["weight_decay"], group["eps"]
        for param, grad, exp_avg, exp_avg_sq, step_t in zip(params, grads, exp_avgs, exp_avg_sqs, state_steps):
            step_t += 1
            if weight_decay != 0:
                param.mul_(1 - lr * weight_decay)
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step = step_t.item()
            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            step_size = lr / bias_correction1
            bias_correction2_sqrt = bias_correction2**0.5
            if exp_avg_sq.is_contiguous():
                denom = torch.sqrt(exp_avg_sq, out=self._scratch(exp_avg_sq))
                denom.div_(bias_correction2_sqrt).add_(eps)
            else:  # keep torch's own layout for the temporaries
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
            param.addcdiv_(exp_avg, denom, value=-step_size)


def _buffered_adamw_fits_this_torch() -> bool:
    """Whether torch's AdamW has the internals :class:`BufferedAdamW` builds on (torch 2.6 and later:
    AdamW is an Adam with ``decoupled_weight_decay``, whose ``_init_group`` takes the lists below)."""
    import inspect

    init_group = getattr(torch.optim.AdamW, "_init_group", None)
    if init_group is None or not issubclass(torch.optim.AdamW, torch.optim.Adam):
        return False
    names = list(inspect.signature(init_group).parameters)
    return names == ["self", "group", "params_with_grad", "grads", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs",
                     "state_steps"]


_BUFFERED_ADAMW = _buffered_adamw_fits_this_torch()


def make_optimizer(groups: list[dict[str, Any]], config: TrainingConfig) -> torch.optim.Optimizer:
    """The optimizer ``config.optimizer`` names, over parameter groups from :func:`build_param_groups`.

    "adamw" gives a :class:`BufferedAdamW` (torch's AdamW, same numbers, a faster CPU step; plain
    ``torch.optim.AdamW`` on a torch whose AdamW internals it does not know). "adamw_fused" gives
    ``torch.optim.AdamW(fused=True)``: one kernel for all parameters, faster again, rounding a little
    differently; it is the HF Trainer's default (``optim="adamw_torch_fused"``), so a run with it does the
    same arithmetic as the HF Trainer's.

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(2, 2)
        >>> groups = [{"params": list(layer.parameters()), "lr": 0.1, "weight_decay": 0.0}]
        >>> type(make_optimizer(groups, TrainingConfig(optimizer="sgd"))).__name__
        'SGD'
    """
    if config.optimizer == "adamw":
        adamw = BufferedAdamW if _BUFFERED_ADAMW else torch.optim.AdamW
        return adamw(groups, lr=config.learning_rate, betas=config.adam_betas, eps=config.adam_eps)
    if config.optimizer == "adamw_fused":
        return torch.optim.AdamW(groups, lr=config.learning_rate, betas=config.adam_betas, eps=config.adam_eps,
                                 fused=True)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.learning_rate, momentum=config.momentum)
    if config.optimizer == "adafactor":
        if not hasattr(torch.optim, "Adafactor"):
            raise RuntimeError("optimizer='adafactor' needs torch >= 2.5 (torch.optim.Adafactor); upgrade torch.")
        return torch.optim.Adafactor(groups, lr=config.learning_rate)
    raise ValueError(f"optimizer={config.optimizer!r} is not allowed: expected one of {', '.join(OPTIMIZERS)}.")


def _tag(key: str) -> str:
    return f"eval/{key[len('eval_'):]}" if key.startswith("eval_") else f"train/{key}"


class _Tracker:
    """Writes each history entry to TensorBoard event files or to Weights & Biases (offline by default)."""

    def __init__(self, config: TrainingConfig) -> None:
        self.kind = config.report_to
        self.writer: Any = None
        self.run: Any = None
        log_dir = config.log_dir or (str(Path(config.output_dir) / "runs") if config.output_dir else None)
        if self.kind == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=log_dir)
            hparams = {k: v for k, v in dataclasses.asdict(config).items() if isinstance(v, (int, float, str, bool))}
            self.writer.add_text("config", "\n".join(f"    {k} = {v!r}" for k, v in sorted(hparams.items())))
        elif self.kind == "wandb":
            try:
                import wandb
            except ImportError as exc:
                raise ImportError(
                    "report_to='wandb' needs the wandb package (pip install wandb). Without an account, set "
                    "WANDB_MODE=offline and sync later with `wandb sync`; or use report_to='tensorboard'."
                ) from exc
            os.environ.setdefault("WANDB_MODE", "offline")
            Path(log_dir).mkdir(parents=True, exist_ok=True)
            self.run = wandb.init(dir=log_dir, config=dataclasses.asdict(config), reinit=True)

    def log(self, entry: Mapping[str, float]) -> None:
        step = int(entry["step"])
        is_eval = any(k.startswith("eval_") for k in entry)
        skip = ("step", "epoch") if is_eval else ("step",)  # an eval entry's epoch is the train entry's
        scalars = {k: float(v) for k, v in entry.items() if k not in skip and isinstance(v, (int, float))}
        if self.writer is not None:
            for key, value in scalars.items():
                self.writer.add_scalar(_tag(key), value, step)
        elif self.run is not None:
            self.run.log({_tag(k): v for k, v in scalars.items()}, step=step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.run is not None:
            self.run.finish()


def read_tensorboard(log_dir: str | os.PathLike) -> list[dict[str, float]]:
    """Read the scalars of TensorBoard event files back as a history (one dict per step and group).

    The result has the layout of ``TrainResult.history`` (``"train_loss"``, ``"eval_accuracy"``, ...),
    so :func:`ftutils.plotting.plot_learning_curves` draws it. Event files in sub-folders are included.

    Example (a run with ``report_to="tensorboard"`` wrote ``log_dir``)::

        history = read_tensorboard(log_dir)
        plot_learning_curves(history, metric="accuracy")
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = Path(log_dir)
    files = sorted(folder.rglob("events.out.tfevents.*"))
    if not files:
        raise FileNotFoundError(f"No TensorBoard event files under {folder}: train with report_to='tensorboard', "
                                f"log_dir='{folder}' first.")
    rows: dict[tuple[int, str], dict[str, float]] = {}
    for path in files:
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            group, _, name = tag.partition("/")
            key = f"eval_{name}" if group == "eval" else name
            for event in acc.Scalars(tag):
                row = rows.setdefault((event.step, group), {"step": event.step})
                row[key] = float(event.value)
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0], k[1] != "train"))]


@torch.no_grad()
def relative_update_gap(start: Mapping[str, torch.Tensor], model_a: torch.nn.Module, model_b: torch.nn.Module) -> float:
    """‖Δa − Δb‖ / ‖Δa‖ over all parameters, where Δ is how far each model moved from ``start``.

    ``start`` is a state dict both models were trained from. 0 means the two trainings made the same
    update; it is a fairer comparison than the largest single difference, which Adam's first step
    makes large for weights whose gradient is near zero (the sign of a tiny gradient depends on the
    order of summation, and Adam scales every update to about the learning rate).

    Example:
        >>> a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
        >>> start = {k: v.clone() for k, v in a.state_dict().items()}
        >>> b.load_state_dict(start)
        <All keys matched successfully>
        >>> with torch.no_grad():
        ...     _ = a.weight.add_(1.0), b.weight.add_(1.0)
        >>> relative_update_gap(start, a, b)
        0.0
    """
    params_b = dict(model_b.named_parameters())
    gap = moved = 0.0
    for name, p in model_a.named_parameters():
        delta_a = p.detach().float() - start[name].float()
        delta_b = params_b[name].detach().float() - start[name].float()
        gap += float(((delta_a - delta_b) ** 2).sum())
        moved += float((delta_a ** 2).sum())
    if moved == 0:
        raise ValueError("model_a did not move from start: there is no update to compare.")
    return (gap / moved) ** 0.5
