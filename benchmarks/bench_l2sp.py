"""How much does L2-SP add to a training step? Prints ratios measured in this one run.

Fine-tunes MiniLM (``ftutils.assets.path("minilm")``, fp32) on one fixed batch (random token ids,
32 × 64 by default) with AdamW, four ways:

* ``none``           -- plain step;
* ``l2sp``           -- ``Regularizer.before_step()``: .grad += 2λ(θ−θ_p), two fused foreach ops;
* ``l2sp-decoupled`` -- ``Regularizer.after_step(lr)``: the pull inside the optimiser step;
* ``naive``          -- λ Σ‖θ−θ_p‖² summed in the loss with a Python loop over the parameters
                        (what a first implementation does; autograd then differentiates it).

Variants are timed in interleaved blocks (order reshuffled every repeat) and the median step time is
reported, because the machine may be shared and its speed drifts. It also times the regulariser
calls alone, many times, which gives a steadier estimate of their share of a step.

Run:  HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_l2sp.py [--repeats 5 --steps 2 --device cpu]
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time

import torch
from transformers import AutoModelForSequenceClassification

from ftutils import assets
from ftutils.regularizers import make_regularizer

VARIANTS = ("none", "l2sp", "l2sp-decoupled", "naive")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timing blocks per variant")
    parser.add_argument("--steps", type=int, default=2, help="optimiser steps per timing block")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--strength", type=float, default=0.01, help="λ")
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Runner:
    """One model copy, its optimiser and its regulariser; ``step()`` is one training step."""

    def __init__(self, variant: str, base: torch.nn.Module, args: argparse.Namespace) -> None:
        self.variant = variant
        self.model = copy.deepcopy(base).train()
        kind = {"none": "none", "l2sp": "l2sp", "l2sp-decoupled": "l2sp-decoupled", "naive": "none"}[variant]
        self.reg = make_regularizer(kind, self.model, args.strength)
        if variant == "naive":  # the anchor a naive loop keeps: one tensor per anchored parameter
            anchored = set(self.reg.anchored_names())
            self.pairs = [(p, p.detach().clone()) for n, p in self.model.named_parameters() if n in anchored]
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=args.lr, weight_decay=0.0)
        self.lr = args.lr
        self.strength = args.strength

    def step(self, batch: dict[str, torch.Tensor]) -> None:
        loss = self.model(**batch).loss
        if self.variant == "naive":
            penalty = 0.0
            for param, anchor in self.pairs:
                penalty = penalty + ((param - anchor) ** 2).sum()
            loss = loss + self.strength * penalty
        loss.backward()
        self.reg.before_step()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.reg.after_step(self.lr)
        self.opt.zero_grad(set_to_none=True)


def time_hooks(runner: Runner, device: torch.device, calls: int = 50) -> float:
    """Seconds per call of the regulariser's hot-path work alone (grads present, as in a step)."""
    for p in runner.model.parameters():
        p.grad = torch.zeros_like(p)
    sync(device)
    start = time.perf_counter()
    for _ in range(calls):
        runner.reg.before_step()
        runner.reg.after_step(runner.lr)
    sync(device)
    elapsed = (time.perf_counter() - start) / calls
    runner.opt.zero_grad(set_to_none=True)
    return elapsed


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    base = AutoModelForSequenceClassification.from_pretrained(
        assets.path("minilm"), num_labels=2, dtype=torch.float32
    ).to(device)
    vocab = base.config.vocab_size
    batch = {
        "input_ids": torch.randint(1000, vocab, (args.batch_size, args.seq_len), device=device),
        "attention_mask": torch.ones(args.batch_size, args.seq_len, dtype=torch.long, device=device),
        "labels": torch.randint(0, 2, (args.batch_size,), device=device),
    }
    runners = {v: Runner(v, base, args) for v in VARIANTS}
    n_anchored = runners["l2sp"].reg.num_anchored_parameters()
    print(
        f"MiniLM on {device} ({torch.get_num_threads()} CPU threads), batch {args.batch_size} x {args.seq_len}, "
        f"AdamW, λ={args.strength}; {n_anchored:,} anchored values in "
        f"{len(runners['l2sp'].reg.anchored_names())} tensors"
    )
    for runner in runners.values():  # warm-up: allocator, optimiser state, kernels
        runner.step(batch)
    sync(device)

    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    rng = random.Random(args.seed)
    for _ in range(args.repeats):
        order = list(VARIANTS)
        rng.shuffle(order)
        for variant in order:
            sync(device)
            start = time.perf_counter()
            for _ in range(args.steps):
                runners[variant].step(batch)
            sync(device)
            times[variant].append((time.perf_counter() - start) / args.steps)

    median = {v: statistics.median(t) for v, t in times.items()}
    print(f"\n{'variant':<16}{'median s/step':>14}{'min':>9}{'max':>9}{'ratio to none':>15}")
    for v in VARIANTS:
        print(f"{v:<16}{median[v]:>14.4f}{min(times[v]):>9.4f}{max(times[v]):>9.4f}{median[v] / median['none']:>15.3f}")

    hooks = {v: time_hooks(runners[v], device) for v in ("l2sp", "l2sp-decoupled")}
    print("\nRegulariser calls alone (before_step + after_step, 50 calls each), as a share of a plain step:")
    for v, seconds in hooks.items():
        print(f"  {v:<16}{seconds * 1e3:8.2f} ms/call  ->  step ratio ≈ {1 + seconds / median['none']:.3f}")
    print(
        f"\nRESULT l2sp_ratio={median['l2sp'] / median['none']:.3f} "
        f"l2sp_decoupled_ratio={median['l2sp-decoupled'] / median['none']:.3f} "
        f"naive_ratio={median['naive'] / median['none']:.3f} (target for L2-SP: <= 1.05; "
        f"{args.repeats} interleaved repeats x {args.steps} steps, medians; noisy on a shared machine)"
    )


if __name__ == "__main__":
    main()
