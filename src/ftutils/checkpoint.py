"""Checkpoints that load no pickles and survive a kill during saving.

A checkpoint is a folder ``checkpoint-<step>`` holding

* ``model.safetensors`` -- the weights;
* ``optimizer.safetensors`` + ``optimizer.json`` -- the optimizer state: every tensor in the
  safetensors file, the structure and the scalars (learning rates, betas, ...) in JSON;
* ``scheduler.json`` -- the learning-rate scheduler's state (plain numbers);
* ``rng-<rank>.safetensors`` + ``rng-<rank>.json`` -- torch (CPU and CUDA), numpy and Python RNG states
  of each process, so dropout after a resume draws the same numbers as without the interruption;
* ``trainer_state.json`` -- step, epoch, batches consumed, history; written last.

Nothing is read with :mod:`pickle` or ``torch.load``: a checkpoint from a stranger cannot run code.

Atomicity: everything is written into ``ckpt-tmp-<step>-<random>`` and renamed to ``checkpoint-<step>``
with :func:`os.replace` once complete; then the ``latest`` pointer file is replaced the same way, and
only then are old checkpoints pruned (``keep_last``). A kill at any moment leaves the previous
checkpoint and pointer intact; leftover ``ckpt-tmp-*`` folders are ignored and removed by the next save.

Example:
    >>> import tempfile, torch
    >>> model = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    >>> model(torch.ones(1, 2)).sum().backward(); opt.step()
    >>> out = tempfile.mkdtemp()
    >>> path = save_checkpoint(out, 1, model=model, optimizer=opt, trainer_state={"step": 1})
    >>> latest_checkpoint(out).name
    'checkpoint-1'
    >>> load_checkpoint(path, model=model, optimizer=opt)["step"]
    1
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "list_checkpoints",
    "save_state",
    "load_state",
    "get_rng_state",
    "set_rng_state",
    "CheckpointError",
]

LATEST = "latest"
STATE_FILE = "trainer_state.json"
_CKPT_RE = re.compile(r"^checkpoint-(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint folder is missing, incomplete or does not fit the model/optimizer."""


# ---------------------------------------------------------------------------------------------------
# Nested state (optimizer/scheduler state_dicts) <-> safetensors + JSON, no pickle.


def _encode(obj: Any, tensors: dict[str, torch.Tensor], path: str) -> Any:
    if isinstance(obj, torch.Tensor):
        key = path or "t"
        tensors[key] = obj.detach().contiguous().cpu()
        return {"__tensor__": key}
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj):
            return {"__dict__": {k: _encode(v, tensors, f"{path}.{k}") for k, v in obj.items()}}
        if all(isinstance(k, int) for k in obj):
            return {"__intdict__": [[k, _encode(v, tensors, f"{path}.{k}")] for k, v in obj.items()]}
        raise TypeError(f"Cannot store a dict with keys of mixed or unusual types at {path!r}: {list(obj)[:5]}.")
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(
        f"Cannot store a {type(obj).__name__} at {path!r} without pickle: only tensors, numbers, strings, "
        "lists, tuples and dicts are supported."
    )


def _decode(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {k: _decode(v, tensors) for k, v in obj["__dict__"].items()}
        if "__intdict__" in obj:
            return {int(k): _decode(v, tensors) for k, v in obj["__intdict__"]}
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        if "__float__" in obj:
            return float(obj["__float__"])
        raise CheckpointError(f"Unknown entry {sorted(obj)} in a state JSON: the file is not ours or is corrupted.")
    return obj


def save_state(state: Any, path: str | os.PathLike) -> None:
    """Save a nested state (e.g. ``optimizer.state_dict()``) as ``<path>.safetensors`` + ``<path>.json``."""
    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(state, tensors, "")
    save_file(tensors, f"{os.fspath(path)}.safetensors")
    _write_json(Path(f"{os.fspath(path)}.json"), structure)


def load_state(path: str | os.PathLike) -> Any:
    """Inverse of :func:`save_state`."""
    tensors = load_file(f"{os.fspath(path)}.safetensors")
    return _decode(json.loads(Path(f"{os.fspath(path)}.json").read_text()), tensors)


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w") as fh:
        json.dump(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())


# ---------------------------------------------------------------------------------------------------
# RNG states


def get_rng_state() -> dict[str, Any]:
    """torch (CPU + every CUDA device), numpy and Python RNG states as tensors and plain values."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (np_state["kind"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
         np_state["has_gauss"], np_state["cached_gaussian"])
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------------------
# Checkpoint folders


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete ``checkpoint-<step>`` folders in ``output_dir``, oldest first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _CKPT_RE.match(child.name)
        if match and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return [p for _, p in sorted(found)]


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The checkpoint the ``latest`` pointer names, else the newest complete one, else ``None``."""
    root = Path(output_dir)
    pointer = root / LATEST
    if pointer.is_file():
        target = root / pointer.read_text().strip()
        if (target / STATE_FILE).is_file():
            return target
    checkpoints = list_checkpoints(root)
    return checkpoints[-1] if checkpoints else None


def save_checkpoint(
    output_dir: str | os.PathLike,
    step: int,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    trainer_state: Mapping[str, Any] | None = None,
    keep_last: int | None = 2,
    accelerator: Any = None,
) -> Path:
    """Write ``output_dir/checkpoint-<step>`` atomically, point ``latest`` at it, prune old ones.

    With an :class:`accelerate.Accelerator` of several processes, every process must call this (each
    saves its RNG state); the main process writes the rest. ``keep_last=None`` keeps every checkpoint.
    Returns the checkpoint folder.
    """
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"keep_last={keep_last!r} is not allowed: expected a positive integer or None (keep all).")
    root = Path(output_dir)
    final = root / f"checkpoint-{int(step)}"
    is_main = accelerator is None or accelerator.is_main_process
    rank = 0 if accelerator is None else accelerator.process_index
    if is_main:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob("ckpt-tmp-*"):  # from a run killed mid-save
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"ckpt-tmp-{int(step)}-", dir=root))
        (root / f".ckpt-tmp-{int(step)}").write_text(tmp.name)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    tmp = root / (root / f".ckpt-tmp-{int(step)}").read_text().strip()
    try:
        save_state(get_rng_state(), tmp / f"rng-{rank}")
        if accelerator is not None:
            accelerator.wait_for_everyone()
        if is_main:
            unwrapped = accelerator.unwrap_model(model) if accelerator is not None else model
            save_model(unwrapped, str(tmp / "model.safetensors"))
            if optimizer is not None:
                save_state(optimizer.state_dict(), tmp / "optimizer")
            if scheduler is not None:
                save_state(scheduler.state_dict(), tmp / "scheduler")
            _write_json(tmp / STATE_FILE, dict(trainer_state or {}, step=int(step)))
            if final.exists():  # re-saving the same step (e.g. after a resume): replace it
                shutil.rmtree(final)
            os.replace(tmp, final)
            pointer_tmp = root / f".{LATEST}.tmp"
            pointer_tmp.write_text(final.name)
            os.replace(pointer_tmp, root / LATEST)
            (root / f".ckpt-tmp-{int(step)}").unlink(missing_ok=True)
            if keep_last is not None:
                for old in list_checkpoints(root)[:-keep_last]:
                    if old != final:
                        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        if is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if accelerator is not None:
            accelerator.wait_for_everyone()
    return final


def load_checkpoint(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_rng: bool = True,
    rank: int = 0,
) -> dict[str, Any]:
    """Load what :func:`save_checkpoint` wrote into the given objects; return the trainer state.

    ``path`` is a checkpoint folder or an output folder (then its latest checkpoint is used).
    """
    folder = Path(path)
    if not (folder / STATE_FILE).is_file():
        found = latest_checkpoint(folder)
        if found is None:
            raise CheckpointError(
                f"No complete checkpoint in {folder} (no {STATE_FILE}, no checkpoint-<step> folders). "
                "Train with save_steps set first, or pass resume=False."
            )
        folder = found
    if model is not None:
        hint = "Build the same architecture (same num_labels) before resuming."
        try:
            missing, unexpected = load_model(model, str(folder / "model.safetensors"), strict=False)
        except RuntimeError as exc:  # shape mismatch
            raise CheckpointError(f"{folder / 'model.safetensors'} does not fit the model: {exc}. {hint}") from exc
        if unexpected or missing:
            raise CheckpointError(
                f"{folder / 'model.safetensors'} does not fit the model: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}. {hint}"
            )
    if optimizer is not None:
        if not (folder / "optimizer.json").is_file():
            raise CheckpointError(f"{folder} has no optimizer state: it cannot resume training exactly.")
        optimizer.load_state_dict(load_state(folder / "optimizer"))
    if scheduler is not None and (folder / "scheduler.json").is_file():
        scheduler.load_state_dict(load_state(folder / "scheduler"))
    if restore_rng:
        rng_file = folder / f"rng-{rank}"
        if not Path(f"{rng_file}.json").is_file():
            rng_file = folder / "rng-0"  # resumed on more processes than saved: best effort
        set_rng_state(load_state(rng_file))
    state = json.loads((folder / STATE_FILE).read_text())
    state["checkpoint"] = str(folder)
    return state
