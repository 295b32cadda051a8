"""LoRA (low-rank adaptation) with 🤗 PEFT, and counting what a method actually trains.

LoRA freezes a pretrained weight matrix W and learns a low-rank update: the layer computes
``W x + (alpha / r) * B A x`` with ``A`` (r x in) and ``B`` (out x r), ``B`` starting at zero so
training starts from the pretrained model. Only ``A``, ``B`` (and whatever ``modules_to_save`` names,
e.g. a new classification head) are trained: a few hundred thousand numbers instead of millions.

On a CPU the saving is in *memory* (gradients and AdamW state exist only for the trained numbers) and
in the size of what you store per task, more than in time: the backward pass still runs through
every layer that holds an adapter. :func:`add_lora` can restrict adapters to the top ``layers`` so
that the backward pass stops early, which is what makes it cheap on a CPU.

Example:
    >>> import transformers
    >>> cfg = transformers.LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
    ...     num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, num_labels=2, pad_token_id=0)
    >>> model = add_lora(transformers.LlamaForSequenceClassification(cfg), r=2, layers=[1])
    >>> trained, total = trainable_parameters(model)
    >>> trained  # layer 1: q_proj A 2x16 + B 16x2, v_proj A 2x16 + B 8x2; head 16x2
    144
"""

from __future__ import annotations

import warnings

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["add_lora", "trainable_parameters"]


def add_lora(
    model: torch.nn.Module,
    *,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
    target_modules: Sequence[str] = ("q_proj", "v_proj"),
    layers: Sequence[int] | None = None,
    modules_to_save: Sequence[str] | None = ("score", "classifier"),
) -> torch.nn.Module:
    """Wrap ``model`` with LoRA adapters (PEFT); everything else is frozen.

    Args:
        r, alpha, dropout: rank, scaling numerator and dropout of the adapters.
        target_modules: names of the linear layers that get adapters (Llama: ``q_proj``, ``k_proj``,
            ``v_proj``, ``o_proj``, ``gate_proj``, ``up_proj``, ``down_proj``; BERT: ``query``, ``value``).
        layers: indices of the transformer blocks that get adapters (``None``: all).
        modules_to_save: modules trained in full besides the adapters (the new task head); names that
            the model does not have are skipped.

    Returns the PEFT model (``print_trainable_parameters()`` works on it).
    """
    from peft import LoraConfig, get_peft_model

    if not isinstance(r, int) or r < 1:
        raise ValueError(f"r={r!r} is not allowed: expected a positive integer rank, e.g. 8.")
    names = {n.split(".")[-1] for n, _ in model.named_modules()}
    missing = [m for m in target_modules if m not in names]
    if missing:
        raise ValueError(f"target_modules {missing} are not modules of this model; linear layers it has "
                         f"include {sorted(n for n in names if 'proj' in n or n in ('query', 'value', 'key'))[:8]}.")
    save = [m for m in (modules_to_save or ()) if m in names] or None
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
                        layers_to_transform=list(layers) if layers is not None else None,
                        modules_to_save=save, bias="none")
    with warnings.catch_warnings():
        # peft asks transformers 5 for `is_gradient_checkpointing`, deprecated there: not the reader's concern
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def trainable_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (shared tensors counted once).

    Example:
        >>> layer = torch.nn.Linear(3, 2); layer.bias.requires_grad_(False)  # doctest: +ELLIPSIS
        Parameter containing:...
        >>> trainable_parameters(layer)
        (6, 8)
    """
    trained = total = 0
    for param in model.parameters():  # parameters() yields a shared tensor once
        total += param.numel()
        if param.requires_grad:
            trained += param.numel()
    return trained, total
