"""Fine-tune a Hugging Face classifier with PyTorch Lightning, with the book's regularisers.

:class:`LitClassifier` wraps any ``AutoModelFor...`` that returns ``.loss`` and ``.logits`` in a
``lightning.LightningModule``; :func:`fit` trains it with ``lightning.Trainer`` on tokenised datasets
(as :func:`ftutils.batching.tokenize_classification` makes them) and returns the validation metrics.
What Lightning buys: the loop, devices (``accelerator="auto"``, ``devices=N``, ``strategy="ddp"`` or
``"fsdp"``, TPUs through ``accelerator="tpu"``), precision (``precision="bf16-mixed"``), callbacks and
loggers are Trainer arguments; the module only says what one step computes.

The regulariser's two calls sit where :func:`ftutils.trainer.train` puts them:
``before_step`` (L2-SP gradient) in ``on_before_optimizer_step`` -- after backward and unscaling,
before gradient clipping -- and ``after_step`` (decoupled pull, with each parameter group's learning
rate) right after ``optimizer.step()``. The optimizer is AdamW over
:func:`ftutils.trainer.build_param_groups` with the warmup + decay schedule of
:func:`ftutils.trainer.lr_lambda`, stepped every optimizer step.

Example:
    >>> import transformers
    >>> cfg = transformers.BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1,
    ...                               num_attention_heads=2, intermediate_size=16, num_labels=2)
    >>> model = transformers.BertForSequenceClassification(cfg)
    >>> data = {"input_ids": [[1, 5, 2], [1, 7, 8, 2]] * 4, "labels": [0, 1] * 4}
    >>> out = fit(model, data, data, epochs=1, batch_size=4, learning_rate=1e-3)
    >>> sorted(out["metrics"])
    ['val_accuracy', 'val_loss']
"""

from __future__ import annotations

import logging
import time
import warnings
from typing import Any

import torch

from ftutils.batching import DynamicPaddingCollator
from ftutils.trainer import _Rows, build_param_groups, lr_lambda

__all__ = ["LitClassifier", "make_loader", "fit"]

_PRECISION = {"no": "32-true", "bf16": "bf16-mixed", "fp16": "16-mixed"}


def _lightning() -> Any:
    try:
        import lightning
    except ImportError as exc:  # pragma: no cover - lightning is in requirements.txt
        raise ImportError("ftutils.lightning needs PyTorch Lightning: pip install 'lightning>=2.4'.") from exc
    return lightning


L = _lightning()


class LitClassifier(L.LightningModule):
    """A LightningModule around a Hugging Face sequence classifier, with an optional regulariser.

    Args:
        model: a model whose forward takes the batch (with ``labels``) and returns ``.loss``, ``.logits``.
        regularizer: from :func:`ftutils.regularizers.make_regularizer` on ``model`` (or ``None``).
        learning_rate, weight_decay, layer_decay, warmup, lr_scheduler: as in
            :class:`ftutils.trainer.TrainingConfig` (``warmup`` an int step count or a fraction).
    """

    def __init__(self, model: torch.nn.Module, *, regularizer: Any = None, learning_rate: float = 5e-5,
                 weight_decay: float = 0.0, layer_decay: float = 1.0, warmup: float = 0.0,
                 lr_scheduler: str = "linear") -> None:
        super().__init__()
        self.model = model
        self.regularizer = regularizer
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.layer_decay = layer_decay
        self.warmup = warmup
        self.lr_scheduler = lr_scheduler
        self.history: list[dict[str, float]] = []
        self._val: list[tuple[torch.Tensor, torch.Tensor, int]] = []

    def forward(self, **batch: torch.Tensor) -> Any:
        return self.model(**batch)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.model(**batch).loss
        self.log("train_loss", loss, prog_bar=False, batch_size=len(batch["labels"]))
        if self.global_step % 5 == 0:
            self.history.append({"step": self.global_step, "train_loss": float(loss.detach())})
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.regularizer is not None:
            self.regularizer.before_step()

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        if self.regularizer is not None:
            inner = getattr(optimizer, "optimizer", optimizer)  # Lightning wraps the torch optimizer
            self.regularizer.after_step(inner)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        out = self.model(**batch)
        n = len(batch["labels"])
        correct = (out.logits.argmax(-1) == batch["labels"]).sum()
        self._val.append((out.loss.detach().float() * n, correct, n))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        loss = torch.stack([v[0] for v in self._val]).sum()
        correct = torch.stack([v[1] for v in self._val]).sum().float()
        n = torch.tensor(float(sum(v[2] for v in self._val)), device=loss.device)
        self._val.clear()
        # sums across processes, then one division: the per-example mean over the whole split
        loss, correct, n = (self.all_gather(x).sum() for x in (loss, correct, n))
        metrics = {"val_loss": float(loss / n), "val_accuracy": float(correct / n)}
        self.log_dict(metrics, sync_dist=False)
        if not self.trainer.sanity_checking:
            self.history.append({"step": self.global_step, **metrics})

    def configure_optimizers(self) -> dict[str, Any]:
        groups = build_param_groups(self.model, learning_rate=self.learning_rate,
                                    weight_decay=self.weight_decay, layer_decay=self.layer_decay)
        optimizer = torch.optim.AdamW(groups, lr=self.learning_rate)
        total = int(self.trainer.estimated_stepping_batches)
        warmup = int(self.warmup) if self.warmup >= 1 or self.warmup == 0 else int(self.warmup * total)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(self.lr_scheduler, warmup, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def make_loader(dataset: Any, *, batch_size: int, pad_token_id: int = 0, shuffle: bool = False,
                seed: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader over a tokenised dataset (datasets.Dataset, dict of columns or list of dicts),
    each batch padded to its longest example."""
    rows = _Rows(dataset, "The dataset")
    examples = rows.rows(range(len(rows)))
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(examples, batch_size=batch_size, shuffle=shuffle, generator=generator,
                                       collate_fn=DynamicPaddingCollator(pad_token_id))


def fit(
    model: torch.nn.Module,
    train_dataset: Any,
    eval_dataset: Any,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    learning_rate: float = 5e-5,
    warmup: float = 0.0,
    lr_scheduler: str = "linear",
    regularizer: Any = None,
    mixed_precision: str = "no",
    max_grad_norm: float | None = 1.0,
    seed: int = 0,
    pad_token_id: int = 0,
    trainer_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train ``model`` with ``lightning.Trainer`` and return ``{"metrics", "history", "train_runtime_s",
    "global_step", "module"}``. ``mixed_precision`` takes the book's values ("no", "bf16", "fp16");
    ``trainer_kwargs`` go to ``lightning.Trainer`` (e.g. ``devices=2, strategy="ddp"``)."""
    if mixed_precision not in _PRECISION:
        raise ValueError(f"mixed_precision={mixed_precision!r} is not allowed: expected one of {', '.join(_PRECISION)}.")
    L.seed_everything(seed, verbose=False)
    model.train()  # from_pretrained returns a model in eval mode; Lightning warns about that
    module = LitClassifier(model, regularizer=regularizer, learning_rate=learning_rate, warmup=warmup,
                           lr_scheduler=lr_scheduler)
    train_loader = make_loader(train_dataset, batch_size=batch_size, pad_token_id=pad_token_id, shuffle=True, seed=seed)
    eval_loader = make_loader(eval_dataset, batch_size=2 * batch_size, pad_token_id=pad_token_id)
    kwargs = dict(max_epochs=epochs, accelerator="auto", devices=1, precision=_PRECISION[mixed_precision],
                  gradient_clip_val=max_grad_norm, logger=False, enable_checkpointing=False,
                  enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                  check_val_every_n_epoch=1)
    kwargs.update(trainer_kwargs or {})
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.seed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        trainer = L.Trainer(**kwargs)
        started = time.perf_counter()
        trainer.fit(module, train_loader, eval_loader)
        runtime = time.perf_counter() - started
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
    return {"metrics": metrics, "history": module.history, "train_runtime_s": runtime,
            "global_step": trainer.global_step, "module": module}
