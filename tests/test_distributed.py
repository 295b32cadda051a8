"""Two CPU processes (gloo, launched by torchrun) give the same loss curve as one process with the
same global batch. Runs the real distributed code path of ftutils.trainer in CI, in well under a minute.

The file doubles as the worker script: ``python -m torch.distributed.run --nproc_per_node 2
tests/test_distributed.py OUT.json`` trains and writes the history from rank 0.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import pytest

GLOBAL_BATCH = 8
N_TRAIN, N_EVAL = 64, 21  # 21: the eval split does not divide evenly across 2 processes


def run(per_process_batch: int) -> dict:
    import numpy as np
    import torch
    import transformers

    from ftutils.trainer import TrainingConfig, predict, train

    torch.manual_seed(0)
    # no dropout: two processes draw different dropout masks than one, which is not what is compared
    cfg = transformers.BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=64, num_labels=2,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = transformers.BertForSequenceClassification(cfg)
    rng = np.random.default_rng(0)
    def data(n):
        ids = [[1, *rng.integers(10, 60, size=int(rng.integers(3, 16))).tolist(), 2] for _ in range(n)]
        return {"input_ids": ids, "labels": [int(7 in x or x[1] < 30) for x in ids]}
    train_data, eval_data = data(N_TRAIN), data(N_EVAL)
    config = TrainingConfig(epochs=2, batch_size=per_process_batch, learning_rate=2e-3, logging_steps=2,
                            progress=False, seed=3, eval_strategy="epoch", cpu=True)
    result = train(model, train_data, eval_data, config=config)
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    logits = predict(model, eval_data, batch_size=4, accelerator=acc)
    return {"history": result.history, "num_processes": result.extra["num_processes"],
            "logits": logits.tolist(), "rank": acc.process_index}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process(tmp_path):
    out = tmp_path / "two.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), __file__, str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads(out.read_text())
    one = run(per_process_batch=GLOBAL_BATCH)
    assert two["num_processes"] == 2 and one["num_processes"] == 1

    def curve(h, key):
        return [(e["step"], e[key]) for e in h if key in e]

    for key in ("train_loss", "eval_loss", "eval_accuracy"):
        a, b = curve(one["history"], key), curve(two["history"], key)
        assert [s for s, _ in a] == [s for s, _ in b] and len(a) > 0, key
        assert [v for _, v in b] == pytest.approx([v for _, v in a], rel=1e-3, abs=1e-4), key
    # predictions gathered from both processes come back complete and in dataset order
    assert len(two["logits"]) == N_EVAL
    np.testing.assert_allclose(np.array(two["logits"]), np.array(one["logits"]), atol=1e-3)


if __name__ == "__main__":
    result = run(per_process_batch=GLOBAL_BATCH // int(os.environ.get("WORLD_SIZE", "1")))
    if result["rank"] == 0:
        Path(sys.argv[1]).write_text(json.dumps(result))
