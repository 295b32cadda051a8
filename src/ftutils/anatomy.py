"""Parameter anatomy: what a parameter's name says about where it sits in a transformer.

One module answers, for the whole library, the questions that layer-wise learning rates, freezing,
the L2-SP anchor and the per-layer plots all ask about a parameter:

* :func:`unwrap` -- the model inside DDP / Accelerate / ``torch.compile`` wrappers (their parameter
  names gain a ``module.`` or ``_orig_mod.`` prefix);
* :func:`marked_new_parameters` / :func:`mark_new_parameters` -- the names :func:`ftutils.models.load`
  records as initialised at random (``model.ftutils_new_parameters``), and :func:`head_parameter_names`,
  the task head (those names, else the usual head prefixes :data:`HEAD_PREFIXES`);
* :func:`layer_index` -- which transformer block a name belongs to (``None`` outside the blocks),
  :func:`is_embedding`, :func:`layer_depth` (0 embeddings, i+1 for block i, L+1 above) and
  :func:`num_layers`;
* :func:`layer_group` -- the plotting group ("embeddings", "layer 3", "pooler").

PEFT wrappers are not unwrapped: a LoRA model's names (``base_model.model.…``) still carry their
layer index, which is all the layer functions need.

Example:
    >>> from ftutils import anatomy
    >>> name = "bert.encoder.layer.2.attention.self.query.weight"
    >>> anatomy.layer_index(name), anatomy.layer_depth(name, 6), anatomy.layer_group(name)
    (2, 3, 'layer 2')
    >>> anatomy.is_embedding("model.embed_tokens.weight")
    True
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from torch import nn

__all__ = [
    "HEAD_PREFIXES",
    "NEW_PARAMETERS_ATTRIBUTE",
    "LAYER_PATTERN",
    "unwrap",
    "mark_new_parameters",
    "marked_new_parameters",
    "head_parameter_names",
    "layer_index",
    "is_embedding",
    "layer_depth",
    "num_layers",
    "layer_group",
    "layer_group_order",
]

# Parameter-name prefixes of freshly initialised task heads in Hugging Face models.
HEAD_PREFIXES: tuple[str, ...] = ("classifier.", "score.", "qa_outputs.", "pre_classifier.")
# Where ftutils.models.load records the names of the parameters the checkpoint did not provide.
NEW_PARAMETERS_ATTRIBUTE = "ftutils_new_parameters"
# Wrappers that hide the real model behind an attribute (DDP/Accelerate: `module`, torch.compile:
# `_orig_mod`).
_WRAPPER_ATTRIBUTES: tuple[str, ...] = ("module", "_orig_mod")
# ".layer.3." (BERT), ".layers.3." (Llama, Mistral), ".h.3." (GPT-2), ".block.3." (T5), ".blocks.3.".
# The index may also end the name ("model.layers.3", a module name or an nn.ParameterList entry):
# trainer.py once required a "." after the index and so put such a name above the top layer, while
# regularizers.py accepted the end of the name. The block's index is the same either way, so the end
# of the name is accepted here; on every name that ends in ".weight"/".bias" the two agreed already.
LAYER_PATTERN = re.compile(r"(?:^|\.)(?:layers?|h|blocks?)\.(\d+)(?:\.|$)")
# Base-model prefixes stripped from a name outside the blocks, for its plotting group.
_BASE_MODEL_PREFIXES: tuple[str, ...] = (
    "bert.", "roberta.", "distilbert.", "deberta.", "electra.", "albert.", "xlm_roberta.",
    "model.", "transformer.", "base_model.", "encoder.",
)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP/Accelerate/``torch.compile`` wrappers (the model itself if unwrapped).

    Wrappers may nest in any order (``torch.compile`` of a DDP model, DDP of a compiled model); the
    search stops after a few levels, so a module that refers to itself cannot loop forever.

    Example:
        >>> import torch
        >>> inner = torch.nn.Linear(2, 2)
        >>> class Wrapper(torch.nn.Module):
        ...     def __init__(self, module):
        ...         super().__init__()
        ...         self.module = module
        >>> unwrap(Wrapper(inner)) is inner, unwrap(inner) is inner
        (True, True)
    """
    for _ in range(8):  # wrappers nest at most a few deep; the bound guards against cycles
        for attribute in _WRAPPER_ATTRIBUTES:
            inner = getattr(model, attribute, None)
            if isinstance(inner, nn.Module) and inner is not model:
                model = inner
                break
        else:
            return model
    return model


def mark_new_parameters(model: nn.Module, names: Iterable[str]) -> None:
    """Record ``names`` as the parameters of ``model`` initialised at random (the new task head).

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(2, 2)
        >>> mark_new_parameters(layer, ["bias"])
        >>> marked_new_parameters(layer)
        ('bias',)
    """
    setattr(model, NEW_PARAMETERS_ATTRIBUTE, tuple(names))


def marked_new_parameters(model: nn.Module) -> tuple[str, ...] | None:
    """The names :func:`mark_new_parameters` recorded on the (unwrapped) model; ``None`` if unmarked.

    An empty tuple means "marked, and nothing is new" (a reloaded fine-tuned model), which is not the
    same as unmarked.

    Example:
        >>> import torch
        >>> marked_new_parameters(torch.nn.Linear(2, 2)) is None
        True
    """
    names = getattr(unwrap(model), NEW_PARAMETERS_ATTRIBUTE, None)
    return None if names is None else tuple(names)


def head_parameter_names(model: nn.Module) -> list[str]:
    """Names of the task head's parameters, in model order (as named in the unwrapped model).

    The model's marked new parameters (:func:`marked_new_parameters`) if there are any, else the
    parameters whose name starts with one of :data:`HEAD_PREFIXES`. An empty mark therefore falls back
    to the prefixes here (the head learning rate still applies to a reloaded head), whereas
    :func:`ftutils.regularizers.default_exclude` then anchors every parameter (nothing is new).

    Example:
        >>> import transformers
        >>> cfg = transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        ...                               intermediate_size=8, vocab_size=20)
        >>> model = transformers.BertForSequenceClassification(cfg)
        >>> head_parameter_names(model)
        ['classifier.weight', 'classifier.bias']
        >>> mark_new_parameters(model, ["bert.pooler.dense.weight"])
        >>> head_parameter_names(model)
        ['bert.pooler.dense.weight']
    """
    model = unwrap(model)
    names = [n for n, _ in model.named_parameters()]
    new = marked_new_parameters(model)
    if new:
        marked = set(new)
        return [n for n in names if n in marked]
    return [n for n in names if n.startswith(HEAD_PREFIXES)]


def layer_index(name: str) -> int | None:
    """The index of the transformer block a parameter (or module) name belongs to, else ``None``.

    Example:
        >>> layer_index("bert.encoder.layer.3.output.dense.weight"), layer_index("transformer.h.11.attn.c_attn.bias")
        (3, 11)
        >>> layer_index("model.layers.7"), layer_index("bert.pooler.dense.weight")
        (7, None)
    """
    match = LAYER_PATTERN.search(name)
    return int(match.group(1)) if match else None


def is_embedding(name: str) -> bool:
    """Whether a name outside the blocks is an embedding (token, position or type; GPT-2's wte/wpe).

    Example:
        >>> is_embedding("bert.embeddings.word_embeddings.weight"), is_embedding("transformer.wpe.weight")
        (True, True)
        >>> is_embedding("classifier.weight")
        False
    """
    return "embed" in name or name.startswith(("wte.", "wpe.")) or ".wte." in name or ".wpe." in name


def layer_depth(name: str, num_layers: int) -> int:
    """Depth of a parameter for layer-wise decay: 0 embeddings, i+1 for block i, num_layers+1 above.

    Example:
        >>> layer_depth("bert.embeddings.word_embeddings.weight", 6)
        0
        >>> layer_depth("bert.encoder.layer.2.attention.self.query.weight", 6)
        3
        >>> layer_depth("model.layers.0.mlp.up_proj.weight", 30), layer_depth("model.norm.weight", 30)
        (1, 31)
    """
    index = layer_index(name)
    if index is not None:
        return index + 1
    if is_embedding(name):
        return 0
    return num_layers + 1


def num_layers(model: nn.Module) -> int:
    """The number of transformer blocks: from the config (``num_hidden_layers``, ``n_layer`` or
    ``num_layers``), else one more than the highest block index in the parameter names (0 if none).

    Example:
        >>> import torch
        >>> blocks = torch.nn.Module()
        >>> blocks.layers = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(3)])
        >>> num_layers(blocks), num_layers(torch.nn.Linear(2, 2))
        (3, 0)
    """
    model = unwrap(model)
    config = getattr(model, "config", None)
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    found = [i for n, _ in model.named_parameters() if (i := layer_index(n)) is not None]
    return max(found) + 1 if found else 0


def layer_group(name: str) -> str:
    """The book's plotting group of a parameter name: "embeddings", "layer N", or the module prefix.

    Example:
        >>> layer_group("bert.encoder.layer.3.attention.self.query.weight")
        'layer 3'
        >>> layer_group("bert.embeddings.word_embeddings.weight")
        'embeddings'
        >>> layer_group("model.layers.11.mlp.up_proj.weight")
        'layer 11'
        >>> layer_group("bert.pooler.dense.bias")
        'pooler'
    """
    index = layer_index(name)
    if index is not None:
        return f"layer {index}"
    if is_embedding(name):
        return "embeddings"
    stripped = name
    for prefix in _BASE_MODEL_PREFIXES:
        if stripped.startswith(prefix) and "." in stripped[len(prefix):]:
            stripped = stripped[len(prefix):]
            break
    return stripped.split(".", 1)[0]


def layer_group_order(group: str) -> tuple[int, int, str]:
    """Sort key for :func:`layer_group` names: embeddings, then the layers by index, then the rest.

    Example:
        >>> sorted(["pooler", "layer 10", "embeddings", "layer 2"], key=layer_group_order)
        ['embeddings', 'layer 2', 'layer 10', 'pooler']
    """
    if group == "embeddings":
        return (0, 0, group)
    if group.startswith("layer "):
        return (1, int(group.split()[1]), group)
    return (2, 0, group)
