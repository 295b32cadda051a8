"""Tests of ftutils.checkpoint: no pickles, exact round trips, atomic saves."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from ftutils import checkpoint as ckpt


def make(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW([{"params": model[0].parameters(), "lr": 1e-2, "names": ["0.weight", "0.bias"]},
                             {"params": model[2].parameters(), "lr": 1e-3}], betas=(0.8, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    return model, opt, sched


def step(model, opt, sched, n: int = 1) -> None:
    for _ in range(n):
        model(torch.randn(3, 4)).pow(2).sum().backward()
        opt.step()
        sched.step()
        opt.zero_grad()


def test_round_trip_restores_everything_and_training_continues_identically(tmp_path):
    model, opt, sched = make()
    step(model, opt, sched, 3)
    ckpt.save_checkpoint(tmp_path, 3, model=model, optimizer=opt, scheduler=sched, trainer_state={"history": [1.5]})
    step(model, opt, sched, 2)  # the reference continuation (same RNG draws after the save)
    expected = [p.detach().clone() for p in model.parameters()]

    model2, opt2, sched2 = make(seed=1)  # different start: all must come from the checkpoint
    random.random(), np.random.rand(), torch.rand(1)  # disturb every RNG
    state = ckpt.load_checkpoint(tmp_path, model=model2, optimizer=opt2, scheduler=sched2)
    assert state["step"] == 3 and state["history"] == [1.5]
    assert sched2.last_epoch == 3 and opt2.param_groups[0]["betas"] == (0.8, 0.95)
    assert opt2.param_groups[0]["names"] == ["0.weight", "0.bias"]
    step(model2, opt2, sched2, 2)
    for a, b in zip(expected, model2.parameters()):
        assert torch.equal(a, b)


def test_rng_state_round_trip():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    np.random.randn()  # leaves a cached gaussian in numpy's state
    state = ckpt.get_rng_state()
    expected = (random.random(), np.random.randn(), torch.rand(2))
    ckpt.set_rng_state(state)
    got = (random.random(), np.random.randn(), torch.rand(2))
    assert expected[0] == got[0] and expected[1] == got[1] and torch.equal(expected[2], got[2])


def test_no_pickle_files_and_json_is_plain(tmp_path):
    model, opt, sched = make()
    step(model, opt, sched)
    path = ckpt.save_checkpoint(tmp_path, 1, model=model, optimizer=opt, scheduler=sched)
    names = sorted(p.name for p in path.iterdir())
    assert names == ["model.safetensors", "optimizer.json", "optimizer.safetensors", "rng-0.json",
                     "rng-0.safetensors", "scheduler.json", "scheduler.safetensors", "trainer_state.json"]
    for json_file in path.glob("*.json"):
        json.loads(json_file.read_text())
    with pytest.raises(TypeError, match="without pickle"):
        ckpt.save_state({"fn": object()}, tmp_path / "bad")


def test_crash_during_save_leaves_previous_checkpoint_loadable(tmp_path, monkeypatch):
    model, opt, sched = make()
    step(model, opt, sched)
    ckpt.save_checkpoint(tmp_path, 1, model=model, optimizer=opt, scheduler=sched)
    saved = [p.detach().clone() for p in model.parameters()]
    step(model, opt, sched)

    real_save_file = ckpt.save_file
    calls = {"n": 0}

    def dying_save_file(tensors, filename, *args, **kwargs):
        calls["n"] += 1
        if "optimizer" in str(filename):  # the weights are already written when the "kill" comes
            with open(filename, "wb") as fh:
                fh.write(b"half-written")
            raise KeyboardInterrupt("killed during save")
        return real_save_file(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(ckpt, "save_file", dying_save_file)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(tmp_path, 2, model=model, optimizer=opt, scheduler=sched)
    assert calls["n"] >= 2
    assert (tmp_path / "latest").read_text() == "checkpoint-1"
    assert not (tmp_path / "checkpoint-2").exists()

    # a hard kill leaves its temporary folder behind: it must be ignored, then cleaned by the next save
    (tmp_path / "ckpt-tmp-3-abcd").mkdir()
    (tmp_path / "ckpt-tmp-3-abcd" / "model.safetensors").write_bytes(b"junk")
    fresh, fresh_opt, fresh_sched = make(seed=5)
    assert ckpt.latest_checkpoint(tmp_path).name == "checkpoint-1"
    ckpt.load_checkpoint(tmp_path, model=fresh, optimizer=fresh_opt, scheduler=fresh_sched)
    for a, b in zip(saved, fresh.parameters()):
        assert torch.equal(a, b)
    monkeypatch.setattr(ckpt, "save_file", real_save_file)
    ckpt.save_checkpoint(tmp_path, 4, model=model, optimizer=opt)
    assert not list(tmp_path.glob("ckpt-tmp-*"))


def test_keep_last_and_latest_pointer(tmp_path):
    model, opt, sched = make()
    for s in (1, 2, 3, 4):
        ckpt.save_checkpoint(tmp_path, s, model=model, optimizer=opt, keep_last=2)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == ["checkpoint-3", "checkpoint-4"]
    (tmp_path / "latest").write_text("checkpoint-99")  # dangling pointer: fall back to the newest
    assert ckpt.latest_checkpoint(tmp_path).name == "checkpoint-4"
    with pytest.raises(ValueError, match="keep_last"):
        ckpt.save_checkpoint(tmp_path, 5, model=model, keep_last=0)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ckpt.CheckpointError, match="No complete checkpoint"):
        ckpt.load_checkpoint(tmp_path)
    model, opt, _ = make()
    path = ckpt.save_checkpoint(tmp_path, 1, model=model)
    with pytest.raises(ckpt.CheckpointError, match="does not fit the model"):
        ckpt.load_checkpoint(path, model=torch.nn.Linear(4, 8))
    with pytest.raises(ckpt.CheckpointError, match="no optimizer state"):
        ckpt.load_checkpoint(path, model=model, optimizer=opt)


def test_files_and_folders_are_fsynced_before_the_rename_that_publishes_them(tmp_path, monkeypatch):
    events = []
    real_file, real_dir, real_replace = ckpt.fsync_file, ckpt.fsync_dir, os.replace

    def fsync_file(path):
        events.append(("file", Path(path).name))
        real_file(path)

    def fsync_dir(path):
        events.append(("dir", Path(path).name))
        real_dir(path)

    def replace(src, dst):
        events.append(("rename", Path(src).name, Path(dst).name))
        real_replace(src, dst)

    monkeypatch.setattr(ckpt, "fsync_file", fsync_file)
    monkeypatch.setattr(ckpt, "fsync_dir", fsync_dir)
    monkeypatch.setattr(ckpt.os, "replace", replace)
    model, opt, sched = make()
    step(model, opt, sched)
    ckpt.save_checkpoint(tmp_path, 1, model=model, optimizer=opt, scheduler=sched)
    publish = next(i for i, e in enumerate(events) if e[0] == "rename" and e[2] == "checkpoint-1")
    before = events[:publish]
    for name in ("model.safetensors", "optimizer.safetensors", "rng-0.safetensors"):
        assert ("file", name) in before, name
    assert before[-1][0] == "dir" and before[-1][1].startswith("ckpt-tmp-1-")  # the folder, last
    assert events[publish + 1] == ("dir", tmp_path.name)  # the rename itself, before the pointer moves
    pointer = events.index(("rename", ".latest.tmp", "latest"))
    assert pointer > publish and events[pointer + 1] == ("dir", tmp_path.name)


def test_every_file_is_recorded_with_size_and_sha256(tmp_path):
    model, opt, sched = make()
    step(model, opt, sched)
    path = ckpt.save_checkpoint(tmp_path, 1, model=model, optimizer=opt, scheduler=sched, run_id="abc")
    state = json.loads((path / "trainer_state.json").read_text())
    assert state["run_id"] == "abc" and ckpt.run_id_of(path) == "abc"
    assert sorted(state["files"]) == sorted(p.name for p in path.iterdir() if p.name != "trainer_state.json")
    for name, entry in state["files"].items():
        assert entry["size"] == (path / name).stat().st_size and len(entry["sha256"]) == 64
    loaded = ckpt.read_checkpoint(path)
    assert loaded.state["step"] == 1 and set(loaded.model) == set(model.state_dict())
