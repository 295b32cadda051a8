"""Benchmark: ftutils.trainer vs the Hugging Face Trainer on MiniLM + rotten_tomatoes (CPU, offline).

Two tables in one run, then one ``RESULT`` line:

1. *Time to accuracy*: each run trains until its validation accuracy first reaches ``--target``
   (0.75 by default; the majority class is about 0.6, and every row levels off near 0.78-0.80 within
   two epochs of 2,000 examples), scored every ``--eval-every-samples`` training examples on a fixed
   seeded validation subset. Seconds are training wall-clock (set-up included, evaluation excluded).
   A run that has not reached the target after ``--max-epochs`` counts with its whole time, so a
   row whose median run missed is a lower bound, and a speed-up against it is printed ``>=X``.
   Each row is the median over ``--seeds`` seeds. Rows:

   * ``ftutils, book recipe``: the book's recipe through ``ftutils.trainer``: mean-pooling head
     (``models.load(..., pooling="mean")``), learning rate ``RECIPE["learning_rate"]`` with a 10x
     head rate, 10% warm-up, linear decay over the cap, batch ``RECIPE["batch_size"]``, max_length 64;
   * ``HF Trainer, defaults``: what a user copying a tutorial runs: the architecture's [CLS]/pooler
     head (``AutoModelForSequenceClassification``) and the ``TrainingArguments`` defaults (lr 5e-5,
     batch 8, no warm-up, linear decay, random batches, fused AdamW), ``num_train_epochs`` = the cap;
   * ``HF Trainer, book recipe``: the same head and hyperparameters as the first row (head rate via
     ftutils' parameter groups, the same warm-up and schedule), with HF's length grouping and its
     default fused AdamW.

2. *Throughput*: samples/s of ``--epochs`` epoch(s) of ``--n-train`` examples with the book's recipe (a
   setting that learns: each row's accuracy afterwards is printed, and flagged if it is at the
   majority class), median of ``--repeats`` interleaved runs.

Every run is seeded from its seed: the training subsample, the new head's weights, the batch order and
dropout (the validation subset is fixed). ``--precision bf16`` runs the book-recipe rows under bf16
autocast (CPUs with AVX512-BF16/AMX, see :func:`ftutils.trainer.cpu_supports_bf16`); ``both`` adds
bf16 rows to the fp32 ones (the RESULT line then uses fp32). ``--bf16-accuracy`` instead compares
fp32 and bf16 final accuracy over three seeds.

    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python benchmarks/bench_trainer.py --precision both  # the tables
    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python benchmarks/bench_trainer.py --quick           # a smoke test
    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python benchmarks/bench_trainer.py --bf16-accuracy --n-train 1000 --epochs 2
    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python benchmarks/bench_trainer.py --init-comparison

``--quick`` uses tiny sizes (seconds; its numbers mean nothing). The last form compares pretrained
MiniLM with the same architecture from random init, both trained with ftutils.trainer.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np
import torch

from ftutils import data as ftdata
from ftutils import models as ftmodels
from ftutils import trainer as fttrainer
from ftutils.batching import LengthGroupedBatchSampler, padding_fraction, tokenize_classification
from ftutils.trainer import TrainingConfig, build_param_groups, evaluate

# The book's recipe (rows "book recipe"), and what the HF Trainer does when given nothing.
RECIPE = {"batch_size": 16, "learning_rate": 1e-4, "head_lr_multiplier": 10.0, "warmup": 0.1, "pooling": "mean"}
HF_DEFAULTS = {"batch_size": 8, "learning_rate": 5e-5, "head_lr_multiplier": 1.0, "warmup": 0.0, "pooling": "model"}
EVAL_SEED = 0  # the validation subset is the same for every run seed
MAJORITY_MARGIN = 0.05  # a final accuracy within this of the majority class is flagged
RESULT_KEYS = ("tta_vs_hf_defaults", "tta_vs_hf_same", "throughput_vs_hf_grouped")


# ---------------------------------------------------------------------------------------------------
# Data and models


def load_data(n_train: int, n_eval: int, max_length: int, seed: int) -> tuple[Any, Any, Any]:
    """Tokenised training subsample (drawn by ``seed``), the fixed validation subsample and the tokenizer."""
    tok = ftmodels.load("minilm", "base")[1]
    train_rows = ftdata.load("rotten_tomatoes", n_train=n_train, n_validation=1, n_test=1, seed=seed)
    val_rows = ftdata.load("rotten_tomatoes", n_train=1, n_validation=n_eval, n_test=1, seed=EVAL_SEED)
    enc_train = tokenize_classification(train_rows["train"], tok, max_length)
    enc_val = tokenize_classification(val_rows["validation"], tok, max_length)
    return enc_train, enc_val, tok


def load_model(pooling: str, seed: int, pretrained: bool = True) -> torch.nn.Module:
    """A fresh MiniLM classifier whose new weights are drawn from ``seed``."""
    return ftmodels.load("minilm", "sequence-classification", num_labels=2, pooling=pooling, seed=seed,
                         pretrained=pretrained)[0]


def majority(dataset: Any) -> float:
    labels = np.asarray(dataset["labels"])
    return float(np.bincount(labels).max() / len(labels))


# ---------------------------------------------------------------------------------------------------
# Evaluation during training, excluded from the training time


class TargetWatch:
    """Evaluates every ``every_steps`` optimizer steps and notes when the accuracy first reaches each of
    ``targets``; training should stop once it has reached them all.

    ``clock()`` is the training time so far: wall-clock since :meth:`start` minus the time spent here.
    """

    def __init__(self, validation: Any, tokenizer: Any, targets: list[float], every_steps: int) -> None:
        self.validation, self.tokenizer, self.targets, self.every = validation, tokenizer, sorted(targets), every_steps
        self.eval_s = 0.0
        self.started = time.perf_counter()
        self.curve: list[dict[str, float]] = []
        self.reached: dict[float, dict[str, float]] = {}

    def start(self) -> None:
        self.started, self.eval_s = time.perf_counter(), 0.0

    def clock(self) -> float:
        return time.perf_counter() - self.started - self.eval_s

    def due(self, step: int) -> bool:
        return bool(self.targets) and step % self.every == 0

    def check(self, model: torch.nn.Module, step: int, samples: int) -> bool:
        """Evaluate now; True once every target is reached (training should stop)."""
        train_s = self.clock()
        t0 = time.perf_counter()
        acc = evaluate(model, self.validation, tokenizer=self.tokenizer, batch_size=64)["eval_accuracy"]
        self.eval_s += time.perf_counter() - t0
        point = {"step": step, "samples": samples, "train_s": train_s, "accuracy": acc}
        self.curve.append(point)
        for target in self.targets:
            if target not in self.reached and acc >= target:
                self.reached[target] = point
        return len(self.reached) == len(self.targets)


class _WatchedRun(fttrainer._Run):
    """ftutils' training loop with the :class:`TargetWatch` in place of its own evaluation (the loop's
    private class: what ``train()`` runs, stopped the way early stopping stops it)."""

    watch: TargetWatch

    def _evaluate_if_due(self, step: int, epoch_end: bool) -> None:
        if self.watch.due(step) and self.watch.check(self.model, step, self.state["samples_seen"]):
            self.stopped_early = True


def _recipe_config(recipe: dict[str, Any], *, epochs: int, seed: int, precision: str,
                   optimizer: str = "adamw") -> TrainingConfig:
    return TrainingConfig(epochs=epochs, batch_size=recipe["batch_size"], learning_rate=recipe["learning_rate"],
                          head_lr_multiplier=recipe["head_lr_multiplier"], warmup=recipe["warmup"],
                          mixed_precision="bf16" if precision == "bf16" else "no", eval_strategy="no",
                          progress=False, seed=seed, logging_steps=10, optimizer=optimizer)


def progress(message: str) -> None:
    """A line on stderr as each run ends (the tables come at the end, on stdout)."""
    print(f"# {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def every_steps(eval_every_samples: int, batch_size: int) -> int:
    """Steps between evaluations: every ``eval_every_samples`` training examples, at least every step."""
    return max(1, round(eval_every_samples / batch_size))


# ---------------------------------------------------------------------------------------------------
# One run of each trainer


def run_ours(args: argparse.Namespace, data: tuple, recipe: dict[str, Any], *, precision: str = "fp32",
             epochs: int, targets: list[float] = (), pretrained: bool = True,
             optimizer: str = "adamw") -> dict[str, Any]:
    """ftutils.trainer: training seconds (set-up included, evaluation excluded), samples, accuracy.

    ``optimizer``: the book's "adamw" (:class:`ftutils.trainer.BufferedAdamW`, torch's unfused AdamW
    arithmetic) or "adamw_fused" (torch's fused AdamW, the HF Trainer's default arithmetic)."""
    enc_train, enc_val, tok = data
    model = load_model(recipe["pooling"], args.seed, pretrained)
    cfg = _recipe_config(recipe, epochs=epochs, seed=args.seed, precision=precision, optimizer=optimizer)
    watch = TargetWatch(enc_val, tok, list(targets), every_steps(args.eval_every_samples, recipe["batch_size"]))
    watch.start()
    run = _WatchedRun(model, enc_train, None, cfg, tokenizer=tok, regularizer=None, compute_metrics=None)
    run.watch = watch
    run.train_until_done()
    seconds = watch.clock()
    steps, samples = run.state["global_step"], run.state["samples_seen"]
    run.finish()  # gives the model back without Accelerate's autocast wrapper
    final = evaluate(model, enc_val, tokenizer=tok, batch_size=64)["eval_accuracy"]
    return _summary(watch, seconds, steps, samples, final)


def run_hf(args: argparse.Namespace, data: tuple, recipe: dict[str, Any], *, precision: str = "fp32",
           epochs: int, targets: list[float] = (), sampler: str = "group_by_length",
           optim: str = "adamw_torch_fused") -> dict[str, Any]:
    """The HF Trainer, timed like :func:`run_ours` (Trainer construction and train(), no evaluation).

    A recipe with ``head_lr_multiplier`` != 1 gets ftutils' parameter groups and an AdamW of the
    implementation ``optim`` names, with HF's linear warm-up schedule; otherwise HF builds both itself.
    """
    import transformers

    enc_train, enc_val, tok = data
    model = load_model(recipe["pooling"], args.seed)
    bs = recipe["batch_size"]
    steps_per_epoch = math.ceil(len(enc_train) / bs)
    total = epochs * steps_per_epoch
    warmup_steps = int(recipe["warmup"] * total)
    targs = dict(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=bs,
                 learning_rate=recipe["learning_rate"], num_train_epochs=epochs, lr_scheduler_type="linear",
                 warmup_steps=warmup_steps, max_grad_norm=1.0, eval_strategy="no", save_strategy="no",
                 report_to="none", logging_steps=10, seed=args.seed, use_cpu=True, disable_tqdm=True,
                 dataloader_num_workers=0, bf16=precision == "bf16", optim=optim)
    if sampler == "group_by_length":
        try:
            hf_args = transformers.TrainingArguments(**targs, train_sampling_strategy="group_by_length")
        except TypeError:  # transformers < 5.x spelled it group_by_length=True
            hf_args = transformers.TrainingArguments(**targs, group_by_length=True)
    else:
        hf_args = transformers.TrainingArguments(**targs)
    watch = TargetWatch(enc_val, tok, list(targets), every_steps(args.eval_every_samples, bs))

    class Watch(transformers.TrainerCallback):
        samples = 0

        def on_step_end(self, hf_args, state, control, model=None, **kw):
            self.samples = min(state.global_step * bs, len(enc_train) * epochs)
            if watch.due(state.global_step) and watch.check(model, state.global_step, self.samples):
                control.should_training_stop = True

    callback = Watch()
    watch.start()
    optimizers = (None, None)
    if recipe["head_lr_multiplier"] != 1.0:
        groups = build_param_groups(model, learning_rate=recipe["learning_rate"],
                                    head_lr_multiplier=recipe["head_lr_multiplier"])
        opt = torch.optim.AdamW(groups, lr=recipe["learning_rate"], fused=optim == "adamw_torch_fused")
        optimizers = (opt, transformers.get_linear_schedule_with_warmup(opt, warmup_steps, total))
    trainer = transformers.Trainer(model=model, args=hf_args, train_dataset=enc_train, processing_class=tok,
                                   callbacks=[callback], optimizers=optimizers)
    trainer.remove_callback(transformers.PrinterCallback)  # it prints the final log dict
    out = trainer.train()
    seconds = watch.clock()
    final = evaluate(model, enc_val, tokenizer=tok, batch_size=64)["eval_accuracy"]
    return _summary(watch, seconds, out.global_step, callback.samples, final)


def _summary(watch: TargetWatch, seconds: float, steps: int, samples: int, final: float) -> dict[str, Any]:
    return {"reached": {t: dict(p) for t, p in watch.reached.items()}, "train_s": seconds, "steps": steps,
            "samples": samples, "step_s": seconds / max(steps, 1), "samples_per_s": samples / seconds,
            "accuracy": final, "curve": watch.curve}


# ---------------------------------------------------------------------------------------------------
# Ratios


def time_to(runs: list[dict[str, Any]], target: float) -> tuple[float, str, float]:
    """Median over seeds of the training seconds to ``target``, whether it is exact ("=") or a lower
    bound (">=": the median run never reached it, its whole time counts), and the median samples.

    A run that missed the target counts as its whole run (time and samples), which is less than its
    true time to target, so the median is a lower bound exactly when it falls on such a run.
    """
    points = sorted(((r["reached"][target]["train_s"], "=", r["reached"][target]["samples"]) if target in r["reached"]
                     else (r["train_s"], ">=", r["samples"])) for r in runs)
    seconds, kind, _ = points[(len(points) - 1) // 2] if len(points) % 2 else _middle(points)
    samples = statistics.median(p[2] for p in points)
    return seconds, kind, samples


def _middle(points: list[tuple[float, str, int]]) -> tuple[float, str, int]:
    a, b = points[len(points) // 2 - 1], points[len(points) // 2]
    return (a[0] + b[0]) / 2, "=" if a[1] == b[1] == "=" else ">=", (a[2] + b[2]) // 2


def speedup(ours: list[dict[str, Any]], theirs: list[dict[str, Any]], target: float) -> tuple[float, str]:
    """Their (median) time to ``target`` over ours, and how to read it: "=" (both reached it), ">="
    (only ours: a lower bound), "<=" (only theirs: an upper bound), "n/a" (neither)."""
    a, a_kind, _ = time_to(ours, target)
    b, b_kind, _ = time_to(theirs, target)
    if a_kind == b_kind == "=":
        return b / a, "="
    if a_kind == "=":
        return b / a, ">="
    if b_kind == "=":
        return b / a, "<="
    return float("nan"), "n/a"


def fmt_ratio(value: float, kind: str) -> str:
    if kind == "n/a" or not math.isfinite(value):
        return "n/a"
    return f"{value:.2f}" if kind == "=" else f"{kind}{value:.2f}"


def parse_result(line: str) -> dict[str, tuple[str, float]]:
    """The ``RESULT`` line as {key: (bound, value)}; bound is "=", ">=", "<=" (value NaN for "n/a").

    Example:
        >>> parse_result("RESULT tta_vs_hf_defaults=>=2.50 tta_vs_hf_same=1.10 throughput_vs_hf_grouped=n/a")
        {'tta_vs_hf_defaults': ('>=', 2.5), 'tta_vs_hf_same': ('=', 1.1), 'throughput_vs_hf_grouped': ('n/a', nan)}
    """
    if not line.startswith("RESULT "):
        raise ValueError(f"not a RESULT line: {line!r}")
    out: dict[str, tuple[str, float]] = {}
    for item in line.split()[1:]:
        key, _, value = item.partition("=")
        m = re.fullmatch(r"(>=|<=)?(\d+(?:\.\d+)?)", value)
        if value == "n/a":
            out[key] = ("n/a", float("nan"))
        elif m:
            out[key] = (m.group(1) or "=", float(m.group(2)))
        else:
            raise ValueError(f"cannot read {item!r} in {line!r}")
    if tuple(out) != RESULT_KEYS:
        raise ValueError(f"expected keys {RESULT_KEYS}, got {tuple(out)}")
    return out


# ---------------------------------------------------------------------------------------------------
# The tables


def precisions(args: argparse.Namespace) -> list[str]:
    return ["fp32", "bf16"] if args.precision == "both" else [args.precision]


def tta_targets(args: argparse.Namespace) -> list[float]:
    """The main target first, then the extra ones (reported, not in the RESULT line)."""
    return [args.target] + [t for t in args.extra_targets if t != args.target]


def warm_up(args: argparse.Namespace, data: tuple) -> None:
    """A few untimed steps of each trainer, so that no timed row pays the process's one-time costs
    (oneDNN kernel set-up, lazy imports, the first allocations)."""
    enc_train, enc_val, tok = data
    n = min(len(enc_train), 2 * RECIPE["batch_size"])
    small = (enc_train.select(range(n)), enc_val.select(range(min(len(enc_val), 16))), tok)
    for p in precisions(args):
        run_ours(args, small, RECIPE, precision=p, epochs=1)
        run_hf(args, small, RECIPE, precision=p, epochs=1)


def seeds_of(args: argparse.Namespace) -> list[int]:
    return list(range(args.seed, args.seed + args.seeds))


def tta_table(args: argparse.Namespace) -> dict[str, Any]:
    """Time to the target accuracies for the book's recipe (ftutils, HF) and HF's defaults, median over seeds."""
    targets = tta_targets(args)
    names = ([f"ftutils, book recipe, {p}" for p in precisions(args)] + ["HF Trainer, defaults, fp32"]
             + [f"HF Trainer, book recipe, {p}" for p in precisions(args)])
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for seed in seeds_of(args):
        seeded = argparse.Namespace(**{**vars(args), "seed": seed})
        data = load_data(args.tta_n_train, args.n_eval, args.max_length, seed)
        if seed == args.seed:
            warm_up(seeded, data)
        for p in precisions(args):
            rows[f"ftutils, book recipe, {p}"].append(run_ours(seeded, data, RECIPE, precision=p,
                                                               epochs=args.max_epochs, targets=targets))
        rows["HF Trainer, defaults, fp32"].append(run_hf(seeded, data, HF_DEFAULTS, epochs=args.max_epochs,
                                                         targets=targets, sampler="random"))
        for p in precisions(args):
            rows[f"HF Trainer, book recipe, {p}"].append(run_hf(seeded, data, RECIPE, precision=p,
                                                                epochs=args.max_epochs, targets=targets))
        for name, runs in rows.items():
            r = runs[-1]
            progress(f"seed {seed}, {name}: " + ", ".join(f"{t:.2f} after {p['train_s']:.1f} s / {p['samples']} samples"
                                                         for t, p in r["reached"].items()) + f" (run {r['train_s']:.1f} s)")
    main = precisions(args)[0]
    ours = rows[f"ftutils, book recipe, {main}"]
    ratios = {"tta_vs_hf_defaults": speedup(ours, rows["HF Trainer, defaults, fp32"], args.target),
              "tta_vs_hf_same": speedup(ours, rows[f"HF Trainer, book recipe, {main}"], args.target)}
    enc_val = data[1]
    seeds = seeds_of(args)
    print(f"\nTime to accuracy: MiniLM + rotten_tomatoes, {args.tta_n_train} train examples (at most "
          f"{args.max_epochs} epochs), scored every {args.eval_every_samples} training examples on {len(enc_val)} "
          f"validation examples (majority class {majority(enc_val):.3f}); training seconds (set-up included, "
          f"evaluation excluded) and samples, median over seeds {seeds[0]}-{seeds[-1]}; CPU threads "
          f"{torch.get_num_threads()}")
    print(f"book recipe: mean pooling, lr {RECIPE['learning_rate']:g} (head x{RECIPE['head_lr_multiplier']:g}), "
          f"warm-up {RECIPE['warmup']:g}, linear decay, batch {RECIPE['batch_size']}, max_length {args.max_length} "
          f"(HF: length grouping, fused AdamW); HF defaults: [CLS] pooler head, lr {HF_DEFAULTS['learning_rate']:g}, "
          f"batch {HF_DEFAULTS['batch_size']}, no warm-up, random batches, fused AdamW")
    head = f"{'run':30s}" + "".join(f" {'s to ' + format(t, '.2f'):>10s} {'samples':>8s} {'hit':>5s}" for t in targets)
    head += f" {'best acc':>9s} {'s/step':>7s}" + "".join(f" {'ours x @' + format(t, '.2f'):>12s}" for t in targets)
    print(head)
    for name, runs in rows.items():
        line = f"{name:30s}"
        for t in targets:
            seconds, kind, samples = time_to(runs, t)
            hits = sum(t in r["reached"] for r in runs)
            mark = "" if kind == "=" else ">"
            line += f" {mark + format(seconds, '.1f'):>10s} {mark + format(samples, '.0f'):>8s} {f'{hits}/{len(runs)}':>5s}"
        best = statistics.median(max((c["accuracy"] for c in r["curve"]), default=float("nan")) for r in runs)
        line += f" {best:9.3f} {statistics.median(r['step_s'] for r in runs):7.2f}"
        if not name.startswith("ftutils"):
            mine = rows.get(f"ftutils, book recipe, {name.rsplit(', ', 1)[1]}", ours)
            line += "".join(f" {fmt_ratio(*speedup(mine, runs, t)):>12s}" for t in targets)
        if time_to(runs, args.target)[1] != "=":
            line += "  (not reached)"
        print(line)
    print(f"'ours x': the book's recipe through ftutils over the row (the ftutils row of the same precision; "
          f"for HF defaults the {main} one); '>X' / '>=X': the median "
          f"run never reached the target, so X is a lower bound. RESULT uses {args.target:.2f}.")
    return {"rows": rows, "ratios": ratios}


def throughput_table(args: argparse.Namespace, data: tuple) -> dict[str, Any]:
    """Samples/s of ``args.epochs`` epoch(s) of the book's recipe: ftutils vs the HF Trainer (median of repeats)."""
    enc_train, enc_val, _ = data
    lengths = [len(x) for x in enc_train["input_ids"]]
    bs = RECIPE["batch_size"]
    waste = {g: padding_fraction(lengths, list(LengthGroupedBatchSampler(lengths, bs, group_by_length=g)))
             for g in (True, False)}
    main = precisions(args)[0]
    runs = {}
    for p in precisions(args):
        runs[f"ftutils.trainer, {p}"] = lambda p=p: run_ours(args, data, RECIPE, precision=p, epochs=args.epochs)
    # HF's default optimizer arithmetic (fused AdamW) in ftutils' loop: the identical-numerics pair of the
    # HF group_by_length row, and so the RESULT row.
    runs[f"ftutils.trainer, fused AdamW, {main}"] = lambda: run_ours(args, data, RECIPE, precision=main,
                                                                     epochs=args.epochs, optimizer="adamw_fused")
    runs[f"HF Trainer, random batches, {main}"] = lambda: run_hf(args, data, RECIPE, precision=main,
                                                                 epochs=args.epochs, sampler="random")
    for p in precisions(args):
        runs[f"HF Trainer, group_by_length, {p}"] = lambda p=p: run_hf(args, data, RECIPE, precision=p,
                                                                        epochs=args.epochs)
    runs[f"HF group_by_length, adamw_torch, {main}"] = lambda: run_hf(args, data, RECIPE, precision=main,
                                                                      epochs=args.epochs, optim="adamw_torch")
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
    for _ in range(args.repeats):  # interleaved, so that a slow spell of a shared machine hits every row
        for name, fn in runs.items():
            samples[name].append(fn())
            progress(f"{name}: {samples[name][-1]['samples_per_s']:.1f} samples/s")
    rows = {}
    for name, results in samples.items():
        rate = statistics.median(r["samples_per_s"] for r in results)
        rows[name] = {"samples_per_s": rate, "all_samples_per_s": [r["samples_per_s"] for r in results],
                      "step_s": statistics.median(r["step_s"] for r in results),
                      "accuracy": results[0]["accuracy"]}
    floor = majority(enc_val)
    print(f"\nThroughput, book recipe (mean pooling, lr {RECIPE['learning_rate']:g}, head x"
          f"{RECIPE['head_lr_multiplier']:g}, warm-up {RECIPE['warmup']:g}, batch {bs}), {len(enc_train)} train "
          f"examples, {args.epochs} epoch(s), max_length {args.max_length}, median of {args.repeats}, CPU threads "
          f"{torch.get_num_threads()}; accuracy on {len(enc_val)} validation examples (majority {floor:.3f})")
    print(f"pad tokens per batch: {waste[True]:.1%} with length grouping, {waste[False]:.1%} random batches")
    print(f"{'trainer':38s} {'samples/s':>10s} {'s/step':>8s} {'accuracy':>9s} {'ours/this':>10s}")
    for name, r in rows.items():
        flag = "  (majority class: learned nothing)" if r["accuracy"] <= floor + MAJORITY_MARGIN else ""
        precision = "bf16" if name.endswith("bf16") else "fp32"
        fused_pair = name.startswith("HF Trainer, group_by_length") and precision == main
        mine = rows[f"ftutils.trainer, fused AdamW, {main}" if fused_pair else f"ftutils.trainer, {precision}"][
            "samples_per_s"]
        print(f"{name:38s} {r['samples_per_s']:10.1f} {r['step_s']:8.2f} {r['accuracy']:9.3f} "
              f"{mine / r['samples_per_s']:9.2f}x{flag}")
    print("'ours/this': ftutils at the same precision and optimizer arithmetic over the row: the HF "
          f"group_by_length {main} row (HF's fused AdamW) against ftutils with optimizer='adamw_fused', the "
          "others against ftutils' default AdamW (adamw_torch: HF with torch's unfused AdamW, the arithmetic "
          f"of ftutils' default). RESULT uses the {main} group_by_length pair: identical numerics.")
    ours = rows[f"ftutils.trainer, fused AdamW, {main}"]["samples_per_s"]
    grouped = rows[f"HF Trainer, group_by_length, {main}"]["samples_per_s"]
    return {"rows": rows, "pad_fraction": waste, "ratio": ours / grouped}


def bf16_accuracy_table(args: argparse.Namespace) -> dict[str, Any]:
    """Final validation accuracy of the book's recipe in fp32 and bf16 for three seeds, and step times."""
    rows = []
    for seed in (args.seed, args.seed + 1, args.seed + 2):
        seeded = argparse.Namespace(**{**vars(args), "seed": seed})
        data = load_data(args.n_train, args.n_eval, args.max_length, seed)
        for p in ("fp32", "bf16"):
            r = run_ours(seeded, data, RECIPE, precision=p, epochs=args.epochs)
            rows.append({"seed": seed, "precision": p, "accuracy": r["accuracy"], "step_s": r["step_s"]})
    print(f"\nbf16 vs fp32, book recipe through ftutils: {args.n_train} train, {args.epochs} epoch(s), "
          f"{args.n_eval} validation examples, CPU threads {torch.get_num_threads()}, bf16 CPU: "
          f"{fttrainer.cpu_supports_bf16()}")
    print(f"{'seed':>4s} {'fp32 acc':>9s} {'bf16 acc':>9s} {'fp32 s/step':>12s} {'bf16 s/step':>12s}")
    by = {(r["seed"], r["precision"]): r for r in rows}
    for seed in sorted({r["seed"] for r in rows}):
        a, b = by[(seed, "fp32")], by[(seed, "bf16")]
        print(f"{seed:4d} {a['accuracy']:9.3f} {b['accuracy']:9.3f} {a['step_s']:12.3f} {b['step_s']:12.3f}")
    acc = {p: [r["accuracy"] for r in rows if r["precision"] == p] for p in ("fp32", "bf16")}
    step = {p: statistics.mean(r["step_s"] for r in rows if r["precision"] == p) for p in ("fp32", "bf16")}
    print(f"mean accuracy fp32 {np.mean(acc['fp32']):.3f} (range {min(acc['fp32']):.3f}-{max(acc['fp32']):.3f}), "
          f"bf16 {np.mean(acc['bf16']):.3f} (range {min(acc['bf16']):.3f}-{max(acc['bf16']):.3f}); "
          f"step time fp32/bf16 {step['fp32'] / step['bf16']:.2f}x")
    return {"rows": rows, "step_ratio": step["fp32"] / step["bf16"]}


def init_table(args: argparse.Namespace) -> dict[str, Any]:
    data = load_data(args.n_train, args.n_eval, args.max_length, args.seed)
    recipe = dict(RECIPE, pooling="model", batch_size=args.batch_size or RECIPE["batch_size"],
                  learning_rate=args.lr or RECIPE["learning_rate"])
    rows = {"pretrained MiniLM": run_ours(args, data, recipe, epochs=args.epochs),
            "random init (same architecture)": run_ours(args, data, recipe, epochs=args.epochs, pretrained=False)}
    print(f"\nrotten_tomatoes, {args.n_train} train / {args.n_eval} validation, {args.epochs} epoch(s), ftutils.trainer, "
          f"[CLS] head, batch {recipe['batch_size']}, lr {recipe['learning_rate']:g} (head x{recipe['head_lr_multiplier']:g})")
    print(f"{'model':34s} {'accuracy':>9s} {'s/step':>8s}")
    for name, r in rows.items():
        print(f"{name:34s} {r['accuracy']:9.3f} {r['step_s']:8.2f}")
    return rows


QUICK = {"n_train": 32, "n_eval": 16, "tta_n_train": 32, "max_epochs": 1, "eval_every_samples": 16,
         "target": 0.5, "extra_targets": [], "repeats": 1, "max_length": 16, "seeds": 1}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test in seconds, numbers meaningless")
    parser.add_argument("--init-comparison", action="store_true", help="pretrained vs random init instead")
    parser.add_argument("--bf16-accuracy", action="store_true", help="fp32 vs bf16 accuracy over three seeds instead")
    parser.add_argument("--only", choices=("tta", "throughput"), help="one table (the other's RESULT values: n/a)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "both"), default="fp32",
                        help="precision of the book-recipe rows; with 'both' the RESULT line uses fp32")
    parser.add_argument("--target", type=float, default=0.75, help="validation accuracy to reach (RESULT line)")
    parser.add_argument("--extra-targets", type=float, nargs="*", default=[],
                        help="further accuracies reported in the time-to-accuracy table")
    parser.add_argument("--tta-n-train", type=int, default=2000, help="training pool of the time-to-accuracy runs")
    parser.add_argument("--max-epochs", type=int, default=2, help="cap of a time-to-accuracy run")
    parser.add_argument("--eval-every-samples", type=int, default=160)
    parser.add_argument("--n-train", type=int, default=None,
                        help="training examples of the throughput runs (512) or of --init-comparison (1000)")
    parser.add_argument("--batch-size", type=int, help="--init-comparison only (default: the recipe's)")
    parser.add_argument("--lr", type=float, help="--init-comparison only (default: the recipe's)")
    parser.add_argument("--n-eval", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=1, help="epochs of a throughput run")
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs per row (median)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--seeds", type=int, default=3, help="time-to-accuracy runs per row, seeds seed, seed+1, ...")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    args.n_train = args.n_train or (1000 if args.init_comparison else 512)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.init_comparison:
        out: dict[str, Any] = init_table(args)
    elif args.bf16_accuracy:
        out = bf16_accuracy_table(args)
    else:
        missing = (float("nan"), "n/a")
        out = {}
        if args.only != "throughput":
            out["time_to_accuracy"] = tta_table(args)
        if args.only != "tta":
            data = load_data(args.n_train, args.n_eval, args.max_length, args.seed)
            if args.only == "throughput":
                warm_up(args, data)
            out["throughput"] = throughput_table(args, data)
        ratios = out["time_to_accuracy"]["ratios"] if "time_to_accuracy" in out else {}
        a, b = ratios.get("tta_vs_hf_defaults", missing), ratios.get("tta_vs_hf_same", missing)
        c = (out["throughput"]["ratio"], "=") if "throughput" in out else missing
        out["result"] = (f"RESULT tta_vs_hf_defaults={fmt_ratio(*a)} tta_vs_hf_same={fmt_ratio(*b)} "
                         f"throughput_vs_hf_grouped={fmt_ratio(*c)}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1, default=str)
    if "result" in out:
        print(out["result"])
    return out


if __name__ == "__main__":
    main()
