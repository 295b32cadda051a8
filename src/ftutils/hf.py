"""Use :mod:`ftutils.regularizers` with the Hugging Face ``Trainer``: :class:`RegularizedTrainer`.

For readers who train with ``transformers.Trainer`` rather than :func:`ftutils.trainer.train`. The
subclass puts the regulariser's two calls where the book's own loop puts them:

* ``before_step`` (the L2-SP gradient 2λ(θ−θ_p)) once per optimiser step, after the last backward of the
  gradient-accumulation window and before the Trainer clips gradients -- exactly as if the penalty
  were in the loss (under fp16 loss scaling the added gradient is scaled to match);
* ``after_step`` (the decoupled pull) right after ``optimizer.step()``, with each parameter group's
  learning rate, skipped when a mixed-precision step was skipped.

:func:`precision_arguments` turns the book's ``mixed_precision`` into ``TrainingArguments`` settings that
work on a CPU-only machine too (the ``Trainer`` refuses ``bf16=True`` there unless told ``use_cpu``).

It also logs the penalty value λ‖θ−θ_p‖² next to the loss (``"reg_penalty"``). DeepSpeed and FSDP
shard or replace parameters, which the regulariser's identity-based bookkeeping does not follow: use
plain DDP or a single device.

Example:
    >>> import contextlib, io, tempfile, torch
    >>> from datasets import Dataset
    >>> from transformers import BertConfig, BertForSequenceClassification, TrainingArguments
    >>> from ftutils.regularizers import make_regularizer
    >>> model = BertForSequenceClassification(BertConfig(vocab_size=30, hidden_size=8,
    ...     num_hidden_layers=1, num_attention_heads=2, intermediate_size=16))
    >>> reg = make_regularizer("l2sp", model, 0.01)
    >>> data = Dataset.from_dict({"input_ids": [[1, 2, 3]] * 4, "labels": [0, 1, 0, 1]})
    >>> args = TrainingArguments(tempfile.mkdtemp(), max_steps=1, per_device_train_batch_size=4,
    ...     report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True)
    >>> trainer = RegularizedTrainer(model=model, args=args, train_dataset=data, regularizer=reg)
    >>> with contextlib.redirect_stdout(io.StringIO()):  # the Trainer prints its final metrics
    ...     result = trainer.train()
    >>> result.global_step
    1
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer, TrainerCallback

from ftutils.regularizers import Regularizer


def precision_arguments(mixed_precision: str) -> dict[str, bool]:
    """``TrainingArguments`` keywords for the book's ``mixed_precision`` ("no", "bf16" or "fp16").

    On a machine with no GPU, TPU or Apple GPU, ``use_cpu=True`` comes with them: the ``Trainer``
    otherwise refuses bf16 ("Your setup doesn't support bf16/gpu"), while CPU autocast runs it.

    Example:
        >>> precision_arguments("no")
        {'bf16': False, 'fp16': False}
        >>> import torch
        >>> precision_arguments("bf16")["use_cpu"] == (not torch.cuda.is_available())  # on this machine
        True
    """
    if mixed_precision not in ("no", "bf16", "fp16"):
        raise ValueError(f"mixed_precision={mixed_precision!r} is not allowed: expected 'no', 'bf16' or 'fp16'.")
    chosen = {"bf16": mixed_precision == "bf16", "fp16": mixed_precision == "fp16"}
    if mixed_precision != "no" and not _has_accelerator():
        chosen["use_cpu"] = True
    return chosen


def _has_accelerator() -> bool:
    """A CUDA/ROCm GPU, a TPU (torch_xla) or an Apple GPU (MPS) is there."""
    from transformers.utils import is_torch_xla_available

    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or is_torch_xla_available() or bool(mps and mps.is_available())


class _DecoupledPull(TrainerCallback):
    """Calls ``regularizer.after_step(optimizer)`` between ``optimizer.step()`` and ``zero_grad``."""

    def __init__(self, trainer: RegularizedTrainer) -> None:
        self.trainer = trainer

    def on_optimizer_step(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        reg = self.trainer.regularizer
        if reg is None or not reg.active or optimizer is None:
            return
        if getattr(self.trainer.accelerator, "optimizer_step_was_skipped", False):
            return  # fp16 overflow: the optimiser did not move the weights, so neither do we
        reg.after_step(optimizer)


class RegularizedTrainer(Trainer):
    """A ``transformers.Trainer`` that applies an :class:`ftutils.regularizers.Regularizer` every step.

    Args:
        *args, **kwargs: as for ``transformers.Trainer``.
        regularizer: built with :func:`ftutils.regularizers.make_regularizer` on the same ``model``
            before training (the anchor is the weights at that moment). ``None`` behaves like ``Trainer``.

    See the module docstring for an example.
    """

    def __init__(self, *args: Any, regularizer: Regularizer | None = None, **kwargs: Any) -> None:
        if regularizer is not None and not isinstance(regularizer, Regularizer):
            raise TypeError(
                f"regularizer must be an ftutils Regularizer (from make_regularizer), got "
                f"{type(regularizer).__name__}."
            )
        super().__init__(*args, **kwargs)
        self.regularizer = regularizer
        if getattr(self, "is_deepspeed_enabled", False) or getattr(self, "is_fsdp_enabled", False):
            if regularizer is not None and regularizer.active:
                raise ValueError(
                    "RegularizedTrainer does not support DeepSpeed or FSDP (they shard the parameters the "
                    "regulariser anchors): train on one device or with plain DDP."
                )
        self.add_callback(_DecoupledPull(self))

    def training_step(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        loss = super().training_step(model, inputs, num_items_in_batch)
        reg = self.regularizer
        # The Trainer marks the last micro-batch of an accumulation window as the sync step; the
        # penalty gradient belongs to the optimiser step, so it is added once, there.
        if reg is not None and reg.active and self.accelerator.sync_gradients:
            reg.before_step(grad_scale=self._loss_scale())
        return loss

    def _loss_scale(self) -> float:
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None and scaler.is_enabled():
            return float(scaler.get_scale())
        return 1.0

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        reg = self.regularizer
        if reg is not None and reg.active and "loss" in logs:
            with torch.no_grad():
                logs["reg_penalty"] = round(float(reg.penalty()), 6)
        super().log(logs, *args, **kwargs)


__all__ = ["RegularizedTrainer"]
