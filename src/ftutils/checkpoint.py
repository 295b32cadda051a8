"""Checkpoints that load no pickles, survive a kill during saving and are checked before use.

A checkpoint is a folder ``checkpoint-<step>`` holding

* ``model.safetensors`` -- the weights;
* ``optimizer.safetensors`` + ``optimizer.json`` -- the optimizer state: every tensor in the
  safetensors file, the structure and the scalars (learning rates, betas, ...) in JSON;
* ``scheduler.json`` -- the learning-rate scheduler's state (plain numbers);
* ``rng-<rank>.safetensors`` + ``rng-<rank>.json`` -- torch (CPU and CUDA), numpy and Python RNG states
  of each process, so dropout after a resume draws the same numbers as without the interruption;
* ``trainer_state.json`` -- step, epoch, batches consumed, history, the run it belongs to, and the size
  and sha256 of every other file; written last.

Nothing is read with :mod:`pickle` or ``torch.load``: a checkpoint from a stranger cannot run code.
Weights whose parameters hold NaN or infinity are refused (:class:`NonFiniteError`), so a diverged run
never replaces a good checkpoint with a useless one.

Atomicity: everything is written into ``ckpt-tmp-<step>-<random>``, fsynced (files and folder), and
renamed to ``checkpoint-<step>`` with :func:`os.replace` once complete; then the ``latest`` pointer file is
replaced the same way, and only then are old checkpoints of the same run pruned (``keep_last``). A kill
at any moment leaves the previous checkpoint and pointer intact; leftover ``ckpt-tmp-*`` folders are
ignored and removed by the next save.

Reading: :func:`read_checkpoint` checks every file (present, size and sha256 as recorded, parseable)
and returns it in memory; only :func:`apply_checkpoint` changes a model, optimizer, scheduler or RNG,
after checking that the weights and optimizer state fit. :func:`read_intact_checkpoint` falls back from
a damaged newest checkpoint to the newest intact one and says which ones it skipped.

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

import hashlib
import json
import logging
import os
import random
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    "read_checkpoint",
    "read_intact_checkpoint",
    "apply_checkpoint",
    "Checkpoint",
    "run_id_of",
    "CheckpointError",
    "DamagedCheckpointError",
    "NonFiniteError",
    "fsync_dir",
    "fsync_file",
]

log = logging.getLogger(__name__)

LATEST = "latest"
STATE_FILE = "trainer_state.json"
_CKPT_RE = re.compile(r"^checkpoint-(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint folder is missing, incomplete or does not fit the model/optimizer."""


class DamagedCheckpointError(CheckpointError):
    """A file of a checkpoint is missing, truncated, changed or unreadable."""


class NonFiniteError(FloatingPointError):
    """A loss, gradient norm or weight is NaN or infinite, so training stopped or a save was refused."""


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
    """Save a nested state (e.g. ``optimizer.state_dict()``) as ``<path>.safetensors`` + ``<path>.json``.

    Both files are fsynced.
    """
    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(state, tensors, "")
    save_file(tensors, f"{os.fspath(path)}.safetensors")
    fsync_file(f"{os.fspath(path)}.safetensors")
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


def fsync_file(path: str | os.PathLike) -> None:
    """Flush a written file's data to disk, so a rename that publishes it cannot outrun its content."""
    fd = os.open(os.fspath(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a folder's entries (new names, renames) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY)
    except OSError:  # Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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


def _step_of(folder: Path) -> int | None:
    match = _CKPT_RE.match(folder.name)
    return int(match.group(1)) if match else None


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete ``checkpoint-<step>`` folders in ``output_dir``, oldest first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        step = _step_of(child)
        if step is not None and (child / STATE_FILE).is_file():
            found.append((step, child))
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


def run_id_of(folder: str | os.PathLike) -> str | None:
    """The ``run_id`` a checkpoint records, or ``None`` (none recorded, or its state file is unreadable)."""
    try:
        state = json.loads((Path(folder) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state.get("run_id") if isinstance(state, dict) else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_finite(model: torch.nn.Module) -> None:
    params = [(n, p) for n, p in model.named_parameters() if p.is_floating_point()]
    if not params:
        return
    finite = torch.stack([torch.isfinite(p.detach()).all() for _, p in params])
    if bool(finite.all()):
        return
    bad = [n for (n, _), ok in zip(params, finite.tolist()) if not ok]
    raise NonFiniteError(
        f"Refusing to save a checkpoint: {len(bad)} parameter(s) hold NaN or infinity (first: {bad[0]}). "
        "The existing checkpoints are kept; train again from the newest one with a lower learning rate "
        "(ftutils.trainer.train stops at the first non-finite loss or gradient by default)."
    )


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
    run_id: str | None = None,
) -> Path:
    """Write ``output_dir/checkpoint-<step>`` atomically, point ``latest`` at it, prune old ones.

    With an :class:`accelerate.Accelerator` of several processes, every process must call this (each
    saves its RNG state); the main process writes the rest. ``keep_last=None`` keeps every checkpoint.
    ``run_id`` is recorded, and then only checkpoints recording the same ``run_id`` are pruned or
    replaced: another run's checkpoints in the same folder are never touched. Weights holding NaN or
    infinity raise :class:`NonFiniteError` before anything is written. Returns the checkpoint folder.
    """
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"keep_last={keep_last!r} is not allowed: expected a positive integer or None (keep all).")
    root = Path(output_dir)
    final = root / f"checkpoint-{int(step)}"
    is_main = accelerator is None or accelerator.is_main_process
    rank = 0 if accelerator is None else accelerator.process_index
    unwrapped = accelerator.unwrap_model(model) if accelerator is not None else model
    _check_finite(unwrapped)
    if run_id is not None and (final / STATE_FILE).is_file():
        owner = run_id_of(final)
        if owner is not None and owner != run_id:
            raise CheckpointError(
                f"{final} belongs to another run (run_id {owner}), so it is not replaced. Use another "
                "output_dir, or delete that run's checkpoints first."
            )
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
            save_model(unwrapped, str(tmp / "model.safetensors"))
            fsync_file(tmp / "model.safetensors")
            if optimizer is not None:
                save_state(optimizer.state_dict(), tmp / "optimizer")
            if scheduler is not None:
                save_state(scheduler.state_dict(), tmp / "scheduler")
            files = {p.name: {"size": p.stat().st_size, "sha256": _sha256(p)}
                     for p in sorted(tmp.iterdir()) if p.is_file()}
            state = dict(trainer_state or {}, step=int(step), files=files)
            if run_id is not None:
                state["run_id"] = run_id
            _write_json(tmp / STATE_FILE, state)
            fsync_dir(tmp)
            if final.exists():  # re-saving the same step (e.g. after a resume): replace it
                shutil.rmtree(final)
            os.replace(tmp, final)
            fsync_dir(root)
            pointer_tmp = root / f".{LATEST}.tmp"
            with open(pointer_tmp, "w") as fh:
                fh.write(final.name)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(pointer_tmp, root / LATEST)
            fsync_dir(root)
            (root / f".ckpt-tmp-{int(step)}").unlink(missing_ok=True)
            if keep_last is not None:
                ours = [c for c in list_checkpoints(root) if run_id is None or c == final or run_id_of(c) == run_id]
                for old in ours[:-keep_last]:
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


@dataclass
class Checkpoint:
    """A checkpoint read into memory by :func:`read_checkpoint`: every file checked, nothing applied yet."""

    path: Path
    state: dict[str, Any]
    model: dict[str, torch.Tensor] | None = None
    optimizer: Any = None
    scheduler: Any = None
    rng: dict[str, Any] | None = None
    files: list[str] = field(default_factory=list)


def _damaged(folder: Path, name: str, why: str) -> DamagedCheckpointError:
    error = DamagedCheckpointError(
        f"{folder / name} is damaged ({why}). Resume from an older checkpoint (train(resume=True) and "
        f"read_intact_checkpoint fall back by themselves) or delete {folder}."
    )
    error.file, error.reason = folder / name, f"{name}: {why}"
    return error


def _check_rng(state: Any) -> None:
    """Raise ValueError unless ``state`` has the layout :func:`get_rng_state` produces."""
    if not isinstance(state, dict) or not isinstance(state.get("torch"), torch.Tensor):
        raise ValueError("no torch generator state")
    np_state = state.get("numpy")
    if not isinstance(np_state, dict) or not isinstance(np_state.get("keys"), torch.Tensor) or np_state["keys"].numel() != 624:
        raise ValueError("no numpy generator state")
    python = state.get("python")
    if not isinstance(python, list) or len(python) != 3 or not isinstance(python[1], list) or len(python[1]) != 625:
        raise ValueError("no Python generator state")


def read_checkpoint(path: str | os.PathLike, *, rank: int = 0) -> Checkpoint:
    """Read and check every file of one checkpoint folder; change nothing.

    Each file must be present with the size and sha256 that ``trainer_state.json`` records (checkpoints
    written before sizes and hashes were recorded are only parsed), and must parse. Any problem raises
    :class:`DamagedCheckpointError` naming the file. Apply the result with :func:`apply_checkpoint`.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a checkpoint folder: it does not exist.")
    try:
        state = json.loads((folder / STATE_FILE).read_text())
        if not isinstance(state, dict) or not isinstance(state.get("step"), int):
            raise ValueError("no step recorded")
    except FileNotFoundError:
        raise _damaged(folder, STATE_FILE, "missing") from None
    except (OSError, ValueError) as exc:
        raise _damaged(folder, STATE_FILE, f"{type(exc).__name__}: {exc}") from exc
    files = state.get("files")
    if isinstance(files, dict):
        for name, entry in files.items():
            file = folder / name
            if not file.is_file():
                raise _damaged(folder, name, "missing")
            size = file.stat().st_size
            if size != entry.get("size"):
                raise _damaged(folder, name, f"{size} bytes, {entry.get('size')} were written")
            if _sha256(file) != entry.get("sha256"):
                raise _damaged(folder, name, "its sha256 differs from the one recorded when it was written")
    ckpt = Checkpoint(path=folder, state=state, files=sorted(files) if isinstance(files, dict) else [])

    def parse(name: str, reader: Any) -> Any:
        try:
            return reader()
        except FileNotFoundError:
            raise _damaged(folder, name, "missing") from None
        except Exception as exc:  # SafetensorError, JSONDecodeError, KeyError from a corrupted structure...
            raise _damaged(folder, name, f"{type(exc).__name__}: {exc}") from exc

    ckpt.model = parse("model.safetensors", lambda: load_file(str(folder / "model.safetensors")))
    if (folder / "optimizer.json").is_file() or (folder / "optimizer.safetensors").is_file():
        ckpt.optimizer = parse("optimizer.json", lambda: load_state(folder / "optimizer"))
        if not (isinstance(ckpt.optimizer, dict) and isinstance(ckpt.optimizer.get("param_groups"), list)):
            raise _damaged(folder, "optimizer.json", "no param_groups")
    if (folder / "scheduler.json").is_file() or (folder / "scheduler.safetensors").is_file():
        ckpt.scheduler = parse("scheduler.json", lambda: load_state(folder / "scheduler"))
    rng_name = f"rng-{rank}"
    if not (folder / f"{rng_name}.json").is_file() and rank != 0 and (folder / "rng-0.json").is_file():
        rng_name = "rng-0"  # resumed on more processes than saved: best effort
    ckpt.rng = parse(f"{rng_name}.json", lambda: load_state(folder / rng_name))
    try:
        _check_rng(ckpt.rng)
    except ValueError as exc:
        raise _damaged(folder, f"{rng_name}.json", str(exc)) from exc
    return ckpt


def _candidates(root: Path) -> list[Path]:
    """Checkpoint folders to try, best first: the one ``latest`` names, then by step, newest first."""
    found = sorted((c for c in root.iterdir() if c.is_dir() and _step_of(c) is not None),
                   key=_step_of, reverse=True) if root.is_dir() else []
    pointer = root / LATEST
    if pointer.is_file():
        target = root / pointer.read_text().strip()
        if target in found:
            found.remove(target)
            found.insert(0, target)
    return found


def read_intact_checkpoint(output_dir: str | os.PathLike, *, rank: int = 0) -> tuple[Checkpoint, list[tuple[Path, str]]]:
    """The newest intact checkpoint of an output folder, and the damaged newer ones skipped (with why).

    Tries the checkpoint ``latest`` names, then the others from the newest step down; a damaged one is
    reported (a logged warning) and the next older one is tried. No intact one raises
    :class:`DamagedCheckpointError` listing what is wrong with each; no checkpoint at all raises
    :class:`CheckpointError`.
    """
    root = Path(output_dir)
    candidates = _candidates(root)
    if not candidates:
        raise CheckpointError(
            f"No complete checkpoint in {root} (no {STATE_FILE}, no checkpoint-<step> folders). "
            "Train with save_steps set first, or pass resume=False."
        )
    skipped: list[tuple[Path, str]] = []
    for candidate in candidates:
        try:
            ckpt = read_checkpoint(candidate, rank=rank)
        except DamagedCheckpointError as exc:
            skipped.append((candidate, getattr(exc, "reason", str(exc))))
            continue
        if skipped:
            log.warning("Resuming from %s: the newer %s %s damaged (%s).", ckpt.path.name,
                        ", ".join(p.name for p, _ in skipped), "is" if len(skipped) == 1 else "are",
                        "; ".join(f"{p.name}/{why}" for p, why in skipped))
        return ckpt, skipped
    raise DamagedCheckpointError(
        f"No intact checkpoint in {root}: " + "; ".join(f"{p.name}/{why}" for p, why in skipped)
        + ". Start a fresh run (resume=False, overwrite_output_dir=True) or restore the folder from a backup."
    )


def _check_model_fits(model: torch.nn.Module, tensors: Mapping[str, torch.Tensor], where: Path) -> None:
    hint = "Build the same architecture (same num_labels) before resuming."
    own = model.state_dict()
    unexpected = sorted(k for k in tensors if k not in own)
    wrong = sorted(k for k in tensors if k in own and tuple(tensors[k].shape) != tuple(own[k].shape))
    # safetensors stores one name per shared storage (tied weights): the other names are not missing
    storage: dict[int, list[str]] = {}
    for k, v in own.items():
        if v.device.type != "meta" and v.numel():
            storage.setdefault(v.untyped_storage().data_ptr(), []).append(k)
    missing = sorted(k for k, v in own.items() if k not in tensors and not (
        v.device.type != "meta" and v.numel() and any(o in tensors for o in storage.get(v.untyped_storage().data_ptr(), []))))
    if wrong:
        k = wrong[0]
        raise CheckpointError(
            f"{where} does not fit the model: {len(wrong)} tensor(s) differ in shape, e.g. {k} is "
            f"{tuple(tensors[k].shape)} in the checkpoint and {tuple(own[k].shape)} in the model. {hint}"
        )
    if unexpected or missing:
        raise CheckpointError(
            f"{where} does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}. {hint}"
        )


def apply_checkpoint(
    ckpt: Checkpoint,
    *,
    model: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_rng: bool = True,
) -> None:
    """Load a :class:`Checkpoint` into the given objects, after checking that everything fits."""
    where = ckpt.path / "model.safetensors"
    if model is not None:
        _check_model_fits(model, ckpt.model, where)
    if optimizer is not None:
        if ckpt.optimizer is None:
            raise CheckpointError(f"{ckpt.path} has no optimizer state: it cannot resume training exactly.")
        saved = [len(g.get("params", [])) for g in ckpt.optimizer["param_groups"]]
        own = [len(g["params"]) for g in optimizer.param_groups]
        if saved != own:
            raise CheckpointError(
                f"{ckpt.path / 'optimizer.json'} does not fit the optimizer: parameter groups of sizes {saved} "
                f"were saved, the optimizer has {own}. Resume with the same optimizer settings "
                "(weight_decay, layer_decay, head_lr_multiplier, frozen layers)."
            )
    # everything is checked: from here on, state changes
    if model is not None:
        model.load_state_dict(ckpt.model, strict=False)
    if optimizer is not None:
        optimizer.load_state_dict(ckpt.optimizer)
    if scheduler is not None and ckpt.scheduler is not None:
        scheduler.load_state_dict(ckpt.scheduler)
    if restore_rng:
        set_rng_state(ckpt.rng)


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

    ``path`` is a checkpoint folder, or an output folder: then its newest intact checkpoint is used (a
    damaged newer one is skipped with a logged warning). Every file is checked before anything changes.
    """
    folder = Path(path)
    if (folder / STATE_FILE).is_file() or _step_of(folder) is not None:
        ckpt = read_checkpoint(folder, rank=rank)
    else:
        ckpt, _ = read_intact_checkpoint(folder, rank=rank)
    apply_checkpoint(ckpt, model=model, optimizer=optimizer, scheduler=scheduler, restore_rng=restore_rng)
    state = dict(ckpt.state)
    state["checkpoint"] = str(ckpt.path)
    return state
