"""Regularisers that keep a fine-tuned model close to its starting point: L2-SP and friends.

Four kinds, all behind one small interface (:class:`Regularizer`), chosen by name:

* ``"none"`` -- no regularisation (the plain fine-tuning baseline);
* ``"l2sp"`` -- L2-SP as the article writes it: the penalty λ‖θ−θ_p‖² added to the loss, where θ_p is
  the pretrained starting point. :meth:`Regularizer.before_step` adds its exact gradient 2λ(θ−θ_p) to
  ``.grad``, which is the same as putting the penalty in the loss but costs two fused ops per step
  instead of a second pass over the parameters in the autograd graph;
* ``"l2sp-decoupled"`` -- the pull toward θ_p done inside the optimiser step, θ ← θ − lr·λ·(θ−θ_p),
  the way AdamW decouples weight decay from the adaptive gradient scaling;
* ``"weight-decay"`` -- the decoupled pull toward zero, θ ← θ − lr·λ·θ (the baseline the book compares
  against).

Which parameters are anchored: every parameter that requires a gradient when the regulariser is
built, except the newly added task head (``exclude``; by default the model's
``ftutils_new_parameters``, else names starting with ``classifier.``, ``score.``, ``qa_outputs.`` or
``pre_classifier.``). Frozen parameters (``requires_grad=False``) are not anchored unless
``include_frozen=True`` (useful for gradual unfreezing: unfreeze later and the anchor is already there).
At every step only parameters that currently have a ``.grad`` are touched, as an optimiser does, so
frozen layers never move. :meth:`Regularizer.anchored_names` lists the anchored parameters.

The hot path matches parameters by identity, not by name, so a model wrapped later by Accelerate or
``DistributedDataParallel`` (names gain a ``module.`` prefix) keeps working, and the anchors follow the
model if it is moved to another device after the regulariser was built.

Example:
    >>> import torch
    >>> from ftutils.regularizers import make_regularizer
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    >>> reg = make_regularizer("l2sp", model, 0.01, exclude=["1."])
    >>> reg.anchored_names()
    ['0.weight', '0.bias']
    >>> reg.penalty().item()  # nothing has moved yet
    0.0
    >>> loss = model(torch.randn(8, 4)).pow(2).mean()
    >>> loss.backward()
    >>> reg.before_step()  # adds 2λ(θ−θ_p) to .grad (zero here), before clipping and optimizer.step()
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ftutils.anatomy import HEAD_PREFIXES, layer_group, layer_group_order, marked_new_parameters, unwrap

KINDS: tuple[str, ...] = ("none", "l2sp", "l2sp-decoupled", "weight-decay")
# The head prefixes, the unwrapping and the layer groups live in ftutils.anatomy; the names below are
# kept for code that imports them from here.
DEFAULT_HEAD_PREFIXES: tuple[str, ...] = HEAD_PREFIXES
unwrap_model = unwrap


def default_exclude(model: nn.Module) -> list[str]:
    """The parameter names (or name prefixes ending in ``.``) excluded from the anchor by default.

    The model's ``ftutils_new_parameters`` (set by :func:`ftutils.models.load`, read with
    :func:`ftutils.anatomy.marked_new_parameters`) when present, even when empty (nothing is new, so
    everything is anchored), else the usual task-head prefixes of Hugging Face models.

    Example:
        >>> import torch
        >>> default_exclude(torch.nn.Linear(2, 2))
        ['classifier.', 'score.', 'qa_outputs.', 'pre_classifier.']
    """
    new = marked_new_parameters(model)
    if new is not None:
        return list(new)
    return list(DEFAULT_HEAD_PREFIXES)


def _is_excluded(name: str, exclude: Iterable[str]) -> bool:
    for entry in exclude:
        if name == entry or name.startswith(entry if entry.endswith(".") else entry + "."):
            return True
    return False


class Regularizer:
    """A regulariser bound to one model; see the module docstring for the kinds and the call order.

    Build it with :func:`make_regularizer`. In a training loop::

        loss.backward()                       # (and scaler.unscale_(optimizer) under fp16)
        reg.before_step()                     # "l2sp": .grad += 2λ(θ−θ_p)
        clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        reg.after_step(lr)                    # decoupled kinds: pull toward θ_p (or 0)
        optimizer.zero_grad()

    Attributes:
        kind: one of :data:`KINDS`.
        strength: λ (a float ≥ 0). ``strength == 0`` makes every call a no-op, so the run is bit for bit
            the same as ``"none"``.
    """

    def __init__(
        self,
        kind: str,
        model: nn.Module,
        strength: float,
        *,
        exclude: Iterable[str] | None = None,
        include_frozen: bool = False,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(
                f"Unknown regulariser kind {kind!r}: expected one of {', '.join(map(repr, KINDS))}."
            )
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not (
            math.isfinite(strength) and strength >= 0
        ):
            raise ValueError(
                f"strength={strength!r} is not allowed: expected a finite float >= 0 (λ, e.g. 0.01); "
                "use 0 or kind='none' to switch the regulariser off."
            )
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        self.kind = kind
        self.strength = float(strength)
        if isinstance(exclude, str):
            raise TypeError(
                f"exclude={exclude!r} is a string: pass a list of parameter names or prefixes, "
                f"e.g. [{exclude!r}]."
            )
        inner = unwrap(model)
        self.exclude: tuple[str, ...] = tuple(default_exclude(inner) if exclude is None else exclude)
        names: list[str] = []
        params: list[nn.Parameter] = []
        for name, param in inner.named_parameters():
            if _is_excluded(name, self.exclude):
                continue
            if not param.requires_grad and not include_frozen:
                continue
            names.append(name)
            params.append(param)
        self._names = names
        self._params = params
        # The anchor θ_p: detached fp32 copies, so the pull is computed in full precision even when the
        # model is later cast or trained with low-precision weights.
        with torch.no_grad():
            self._anchors = [p.detach().to(dtype=torch.float32, copy=True) for p in params]

    def __repr__(self) -> str:
        return (
            f"Regularizer(kind={self.kind!r}, strength={self.strength}, "
            f"anchored={len(self._names)} tensors / {self.num_anchored_parameters():,} values)"
        )

    @property
    def active(self) -> bool:
        """False for ``"none"`` and for λ = 0: the training loop may skip the calls entirely."""
        return self.kind != "none" and self.strength > 0 and bool(self._params)

    def anchored_names(self) -> list[str]:
        """Names (as in the unwrapped model) of the parameters this regulariser acts on, in model order.

        Example:
            >>> import torch
            >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
            >>> make_regularizer("l2sp", model, 0.1, exclude=["1"]).anchored_names()
            ['0.weight', '0.bias']
        """
        return list(self._names)

    def num_anchored_parameters(self) -> int:
        """How many scalar values are anchored (for "22.7M of 22.7M parameters anchored" lines)."""
        return sum(p.numel() for p in self._params)

    def anchors(self) -> dict[str, torch.Tensor]:
        """The anchor θ_p by parameter name (read-only views: do not modify)."""
        return dict(zip(self._names, self._anchors))

    def penalty(self) -> torch.Tensor:
        """The penalty value λ‖θ−θ_p‖² over the anchored parameters, differentiable (a 0-d fp32 tensor).

        For ``"weight-decay"`` the target is 0 (λ‖θ‖²), for ``"none"`` it is 0. This builds an autograd
        graph over every anchored parameter: it is what the article writes and what the book plots, but
        the training loop uses :meth:`before_step`, which adds the same gradient far more cheaply.

        Example:
            >>> import torch
            >>> model = torch.nn.Linear(1, 1, bias=False)
            >>> _ = torch.nn.init.ones_(model.weight)
            >>> reg = make_regularizer("l2sp", model, 0.5, exclude=[])
            >>> with torch.no_grad():
            ...     _ = model.weight.add_(2.0)
            >>> reg.penalty().item()  # 0.5 * 2²
            2.0
        """
        device = self._params[0].device if self._params else torch.device("cpu")
        total = torch.zeros((), dtype=torch.float32, device=device)
        if self.kind == "none" or not self._params:
            return total
        self._sync_devices()
        for param, anchor in zip(self._params, self._anchors):
            diff = param.float() if self.kind == "weight-decay" else param.float() - anchor
            total = total + diff.pow(2).sum()
        return self.strength * total

    def before_step(self, grad_scale: float = 1.0) -> None:
        """Add the L2-SP gradient 2λ(θ−θ_p) to ``.grad`` (``"l2sp"`` only; a no-op for the other kinds).

        Call once per optimiser step, after ``backward`` (and after gradient unscaling) and before
        clipping and ``optimizer.step()``: the result equals having the penalty in the loss. Parameters
        without a ``.grad`` this step are skipped. ``grad_scale`` multiplies the added gradient, for a
        loop that calls this while gradients are still multiplied by an fp16 loss scale.
        """
        if self.kind != "l2sp" or self.strength == 0 or not self._params:
            return
        params, anchors = self._with_grads()
        if not params:
            return
        grads = [p.grad for p in params]
        alpha = 2.0 * self.strength * float(grad_scale)
        with torch.no_grad():
            torch._foreach_add_(grads, params, alpha=alpha)
            torch._foreach_add_(grads, anchors, alpha=-alpha)

    def after_step(self, lr: float | torch.optim.Optimizer) -> None:
        """The decoupled pull, right after ``optimizer.step()`` and before ``zero_grad``.

        ``"l2sp-decoupled"``: θ ← θ − lr·λ·(θ−θ_p); ``"weight-decay"``: θ ← θ − lr·λ·θ; a no-op for
        ``"none"`` and ``"l2sp"``. ``lr`` is the learning rate the optimiser just used (e.g.
        ``scheduler.get_last_lr()[0]`` before ``scheduler.step()``), or the optimiser itself: then each
        parameter is pulled with its own parameter group's ``lr`` (layer-wise learning rates), and
        anchored parameters the optimiser does not hold are left alone. Parameters without a ``.grad``
        were not updated by the optimiser and are not pulled either.
        """
        if self.kind not in ("l2sp-decoupled", "weight-decay") or self.strength == 0 or not self._params:
            return
        if hasattr(lr, "param_groups"):
            for group_lr, params, anchors in self._by_optimizer_group(lr):
                self._pull(self._checked_lr(group_lr), params, anchors)
            return
        self._pull(self._checked_lr(lr), *self._with_grads())

    @staticmethod
    def _checked_lr(lr: Any) -> float:
        if isinstance(lr, torch.Tensor) and lr.numel() == 1:
            lr = float(lr)
        if isinstance(lr, bool) or not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr >= 0):
            raise ValueError(
                f"lr={lr!r} is not allowed: expected the optimiser's learning rate (a float >= 0) or the "
                "optimiser itself."
            )
        return float(lr)

    def _pull(self, lr: float, params: list[torch.Tensor], anchors: list[torch.Tensor]) -> None:
        step = lr * self.strength
        if step == 0 or not params:
            return
        with torch.no_grad():
            torch._foreach_mul_(params, 1.0 - step)
            if self.kind == "l2sp-decoupled":
                torch._foreach_add_(params, anchors, alpha=step)

    def _by_optimizer_group(self, optimizer: Any) -> list[tuple[Any, list[torch.Tensor], list[torch.Tensor]]]:
        self._sync_devices()
        groups = optimizer.param_groups
        key = (id(optimizer), tuple(len(g["params"]) for g in groups))
        if getattr(self, "_group_key", None) != key:
            position = {id(p): i for i, p in enumerate(self._params)}
            self._group_index = [
                [position[id(p)] for p in g["params"] if id(p) in position] for g in groups
            ]
            self._group_key = key
        out = []
        for group, indices in zip(groups, self._group_index):
            keep = [i for i in indices if self._params[i].grad is not None]
            out.append((group["lr"], [self._params[i] for i in keep], [self._anchors[i] for i in keep]))
        return out

    def distance_by_layer(self) -> dict[str, float]:
        """‖θ−θ_p‖₂ per group of anchored parameters ("embeddings", "layer 0", …, "pooler"), in model order.

        Always measured from the snapshot θ_p taken at construction, whatever the kind (also for
        ``"none"`` and ``"weight-decay"``), so runs with different regularisers can be compared.

        Example:
            >>> import torch
            >>> model = torch.nn.Linear(1, 1, bias=False)
            >>> _ = torch.nn.init.ones_(model.weight)
            >>> reg = make_regularizer("none", model, 0.0, exclude=[])
            >>> with torch.no_grad():
            ...     _ = model.weight.add_(3.0)
            >>> reg.distance_by_layer()
            {'weight': 3.0}
        """
        self._sync_devices()
        squared: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for name, param, anchor in zip(self._names, self._params, self._anchors):
                group = layer_group(name)
                value = (param.float() - anchor).pow(2).sum()
                squared[group] = squared[group] + value if group in squared else value
        ordered = sorted(squared, key=layer_group_order)
        return {group: math.sqrt(float(squared[group])) for group in ordered}

    def state_dict(self) -> dict[str, Any]:
        """What is needed to rebuild this regulariser when resuming from a checkpoint (kind, λ, anchors)."""
        return {
            "kind": self.kind,
            "strength": self.strength,
            "anchors": {name: anchor.cpu() for name, anchor in zip(self._names, self._anchors)},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the anchors saved by :meth:`state_dict` (resuming must not re-anchor at θ_t)."""
        saved = state.get("anchors", {})
        missing = [name for name in self._names if name not in saved]
        if missing:
            raise KeyError(
                f"The saved regulariser state lacks anchors for {missing[:3]} (and {max(0, len(missing) - 3)} "
                "more): was it saved from a different model or exclude list?"
            )
        with torch.no_grad():
            for i, name in enumerate(self._names):
                self._anchors[i] = saved[name].to(device=self._params[i].device, dtype=torch.float32)
        self.kind = state.get("kind", self.kind)
        self.strength = float(state.get("strength", self.strength))

    def _sync_devices(self) -> None:
        # The model may be moved (accelerator.prepare, .to("cuda")) after the snapshot: follow it.
        if self._params and self._anchors[0].device != self._params[0].device:
            self._anchors = [a.to(p.device) for a, p in zip(self._anchors, self._params)]

    def _with_grads(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        self._sync_devices()
        params, anchors = self._params, self._anchors
        keep = [i for i, p in enumerate(params) if p.grad is not None]
        if len(keep) == len(params):
            return params, anchors
        return [params[i] for i in keep], [anchors[i] for i in keep]


def make_regularizer(
    kind: str,
    model: nn.Module,
    strength: float,
    *,
    exclude: Iterable[str] | None = None,
    include_frozen: bool = False,
) -> Regularizer:
    """Build a regulariser of ``kind`` ("none", "l2sp", "l2sp-decoupled", "weight-decay") for ``model``.

    The anchor θ_p is a snapshot of the parameters now: build the regulariser right after loading the
    pretrained model, before any training step. ``exclude`` lists parameter names, or prefixes (a
    prefix matches whole dotted components: ``"classifier"`` excludes ``classifier.weight``), left out
    of the anchor; by default the newly initialised head. ``include_frozen`` also anchors parameters
    that do not require a gradient yet.

    Example:
        >>> import torch
        >>> from transformers import BertConfig, BertForSequenceClassification
        >>> cfg = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
        ...                  intermediate_size=16)
        >>> model = BertForSequenceClassification(cfg)
        >>> reg = make_regularizer("l2sp", model, 0.01)
        >>> any(n.startswith("classifier.") for n in reg.anchored_names())
        False
        >>> list(reg.distance_by_layer())
        ['embeddings', 'layer 0', 'layer 1', 'pooler']
    """
    return Regularizer(kind, model, strength, exclude=exclude, include_frozen=include_frozen)


__all__ = [
    "DEFAULT_HEAD_PREFIXES",
    "KINDS",
    "Regularizer",
    "default_exclude",
    "layer_group",
    "make_regularizer",
    "unwrap_model",
]
