"""Benchmark: ftutils.trainer vs the Hugging Face Trainer on MiniLM + rotten_tomatoes (CPU, offline).

Same model, data, batch size, learning rate, schedule, epochs, max length and clipping for every row;
training throughput is wall-clock samples/s around the training call (setup included, no evaluation
inside), and accuracy is measured afterwards by the same code (ftutils.trainer.evaluate) on the same
held-out examples.

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python benchmarks/bench_trainer.py              # speed table
    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python benchmarks/bench_trainer.py --init-comparison

The second form compares pretrained MiniLM with the same architecture from random init (1,000
training examples by default), both trained with ftutils.trainer.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import torch

from ftutils import data as ftdata
from ftutils import models as ftmodels
from ftutils.batching import LengthGroupedBatchSampler, padding_fraction, tokenize_classification
from ftutils.trainer import TrainingConfig, evaluate, train


def load(n_train: int, n_eval: int, max_length: int, seed: int, pretrained: bool = True):
    dsd = ftdata.load("rotten_tomatoes", n_train=n_train, n_validation=n_eval, n_test=n_eval, seed=seed)
    torch.manual_seed(seed)
    model, tok = ftmodels.load("minilm", "sequence-classification", num_labels=2, pretrained=pretrained)
    return model, tok, tokenize_classification(dsd, tok, max_length)


def run_ours(args, pretrained: bool = True, epochs: int | None = None) -> dict:
    model, tok, enc = load(args.n_train, args.n_eval, args.max_length, args.seed, pretrained)
    cfg = TrainingConfig(epochs=epochs or args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                         eval_strategy="no", progress=False, seed=args.seed, logging_steps=10)
    start = time.perf_counter()
    result = train(model, enc["train"], config=cfg, tokenizer=tok)
    seconds = time.perf_counter() - start
    metrics = evaluate(model, enc["validation"], tokenizer=tok)
    return {"samples_per_s": len(enc["train"]) * cfg.epochs / seconds, "seconds": seconds,
            "step_s": seconds / result.global_step, "accuracy": metrics["eval_accuracy"]}


def run_hf(args, strategy: str) -> dict:
    import transformers

    model, tok, enc = load(args.n_train, args.n_eval, args.max_length, args.seed)
    targs = dict(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=args.batch_size,
                 learning_rate=args.lr, num_train_epochs=args.epochs, lr_scheduler_type="linear",
                 max_grad_norm=1.0, eval_strategy="no", save_strategy="no", report_to="none",
                 logging_steps=10, seed=args.seed, use_cpu=True, disable_tqdm=True, dataloader_num_workers=0)
    if strategy == "group_by_length":
        try:
            hf_args = transformers.TrainingArguments(**targs, train_sampling_strategy="group_by_length")
        except TypeError:  # transformers < 5.x spelled it group_by_length=True
            hf_args = transformers.TrainingArguments(**targs, group_by_length=True)
    else:
        hf_args = transformers.TrainingArguments(**targs)
    trainer = transformers.Trainer(model=model, args=hf_args, train_dataset=enc["train"], processing_class=tok)
    start = time.perf_counter()
    out = trainer.train()
    seconds = time.perf_counter() - start
    metrics = evaluate(model, enc["validation"], tokenizer=tok)
    return {"samples_per_s": len(enc["train"]) * args.epochs / seconds, "seconds": seconds,
            "step_s": seconds / out.global_step, "accuracy": metrics["eval_accuracy"]}


def speed_table(args) -> dict:
    _, _, enc = load(args.n_train, args.n_eval, args.max_length, args.seed)
    lengths = [len(x) for x in enc["train"]["input_ids"]]
    waste = {g: padding_fraction(lengths, list(LengthGroupedBatchSampler(lengths, args.batch_size, group_by_length=g)))
             for g in (True, False)}
    rows = {"ftutils.trainer": run_ours(args), "HF Trainer (defaults)": run_hf(args, "default"),
            "HF Trainer (group_by_length)": run_hf(args, "group_by_length")}
    ours = rows["ftutils.trainer"]["samples_per_s"]
    print(f"\nMiniLM + rotten_tomatoes, {args.n_train} train / {args.n_eval} eval, batch {args.batch_size}, "
          f"lr {args.lr}, {args.epochs} epoch(s), max_length {args.max_length}, CPU threads {torch.get_num_threads()}")
    print(f"pad tokens per batch: {waste[True]:.1%} with length grouping, {waste[False]:.1%} random batches")
    print(f"{'trainer':32s} {'samples/s':>10s} {'s/step':>8s} {'accuracy':>9s} {'ours/this':>10s}")
    for name, r in rows.items():
        print(f"{name:32s} {r['samples_per_s']:10.1f} {r['step_s']:8.2f} {r['accuracy']:9.3f} "
              f"{ours / r['samples_per_s']:9.2f}x")
    return {"rows": rows, "pad_fraction": waste}


def init_table(args) -> dict:
    rows = {"pretrained MiniLM": run_ours(args, pretrained=True),
            "random init (same architecture)": run_ours(args, pretrained=False)}
    print(f"\nrotten_tomatoes, {args.n_train} train / {args.n_eval} validation, {args.epochs} epoch(s), ftutils.trainer")
    print(f"{'model':34s} {'accuracy':>9s} {'s/step':>8s}")
    for name, r in rows.items():
        print(f"{name:34s} {r['accuracy']:9.3f} {r['step_s']:8.2f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--init-comparison", action="store_true", help="pretrained vs random init instead of speed")
    parser.add_argument("--n-train", type=int, default=None, help="512 for speed, 1000 for --init-comparison")
    parser.add_argument("--n-eval", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    args.n_train = args.n_train or (1000 if args.init_comparison else 512)
    out = init_table(args) if args.init_comparison else speed_table(args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
