# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-tools)=
# # Tools and hyperparameters
#
# The article recommends tools -- 🤗 Transformers, PyTorch Lightning, experiment tracking, TPUs -- and
# asks how to choose the optimizer and the hyperparameters. This chapter answers by running them. The
# same fine-tuning (MiniLM on Rotten Tomatoes {cite}`pang2005seeing`, with chapter 3's L2-SP penalty
# {cite}`li2018l2sp`) runs three ways: the book's `ftutils.trainer`, the Hugging Face `Trainer`
# {cite}`wolf2020transformers` and a PyTorch Lightning module. The same script then runs as two
# processes under `accelerate launch`, writes TensorBoard logs that we read back and plot, and finally
# serves as the objective of learning-rate, batch-size, schedule, layer-decay and optimizer sweeps and
# of three searches (grid, random, Optuna's TPE) on the same budget. The chapter ends with a starting
# recipe in which every entry points at a result measured here.

# %% tags=["parameters"]
CONFIG = "cpu-tiny"  # "cpu-tiny" (offline, CPU, a few minutes) or "gpu" (all reviews)
N_TRIALS = None  # trials per search method; None means 6 on cpu-tiny and 12 on gpu
N_WORKERS = 2  # parallel worker processes that finish the stored Optuna study
L2SP_STRENGTH = 0.01  # λ of the L2-SP penalty in every run of the chapter

# %%
import contextlib
import importlib.util
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets: noise

import datasets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import transformers

from ftutils import batching, colab, config, data, metrics, models, plotting, regularizers, search, trainer
from ftutils import lightning as ftl
from ftutils.hf import RegularizedTrainer

CONFIG = colab.auto_config(CONFIG)
# Some 30 short trainings run in this chapter: on cpu-tiny each sees 128 short reviews for one epoch
# (8 steps of 16), which keeps the chapter within minutes; on gpu each uses every review.
CHAPTER_SIZES = {
    "cpu-tiny": dict(n_train=128, n_eval=128, max_length=32, batch_size=16, learning_rate=1e-4, epochs=1),
    "gpu": dict(epochs=2),
}
TRIALS = {"cpu-tiny": 6, "gpu": 12}
cfg = config.get_config(CONFIG, **CHAPTER_SIZES.get(CONFIG, {}))
if N_TRIALS is None:
    N_TRIALS = TRIALS[cfg.name]
if not (isinstance(N_TRIALS, int) and N_TRIALS >= 4):
    raise ValueError(f"N_TRIALS={N_TRIALS!r} is not allowed: expected an integer >= 4 or None.")
if not (isinstance(N_WORKERS, int) and 1 <= N_WORKERS < N_TRIALS):
    raise ValueError(f"N_WORKERS={N_WORKERS!r} is not allowed: expected an integer from 1 to N_TRIALS - 1.")
if not (isinstance(L2SP_STRENGTH, (int, float)) and L2SP_STRENGTH >= 0):
    raise ValueError(f"L2SP_STRENGTH={L2SP_STRENGTH!r} is not allowed: expected a number >= 0, e.g. 0.01.")
pd.set_option("display.max_colwidth", 100)  # the tables' text columns are sentences
transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()
datasets.disable_progress_bars()
workdir = Path(tempfile.mkdtemp(prefix="ftbook-06-"))
print(f"config {cfg.name}: {cfg.encoder}, {cfg.n_train or 'all'} training reviews, max {cfg.max_length} tokens, "
      f"{cfg.epochs} epoch(s), batch {cfg.batch_size}, lr {cfg.learning_rate:g}, {N_TRIALS} trials per search")

# %% tags=["nbval-check-output"]
reviews = data.load("rotten_tomatoes", n_train=cfg.n_train, n_validation=cfg.n_eval, n_test=cfg.n_eval, seed=cfg.seed)
label_names = reviews["train"].features["label"].names
print(data.describe(reviews))

# %%
_, tokenizer = models.load(cfg.encoder, "sequence-classification", labels=label_names)
tokenized = batching.tokenize_classification(reviews, tokenizer, cfg.max_length)
steps_per_epoch = -(-len(tokenized["train"]) // cfg.batch_size)
total_steps = cfg.epochs * steps_per_epoch
warmup_steps = max(1, round(0.1 * total_steps))
print(f"{total_steps} optimizer steps per run, {warmup_steps} of them warmup")

# %% [markdown]
# (sec-tools-three-ways)=
# ## One fine-tuning, three tools
#
# The three runs below share everything a reader would want held fixed: the pretrained weights, the
# data, the seed, batch size, learning rate, a linear schedule with 10% warmup, gradient clipping at 1,
# and L2-SP with λ = `L2SP_STRENGTH` anchored at the pretrained weights. They differ only in who owns
# the loop.
#
# **`ftutils.trainer`** is the book's own loop on 🤗 Accelerate (chapter 4). It also writes TensorBoard
# event files here (`report_to="tensorboard"`), which we read back below.

# %%
def fresh_model():
    """The pretrained encoder with a new head, the same on every call (same seed)."""
    transformers.set_seed(cfg.seed)
    model, _ = models.load(cfg.encoder, "sequence-classification", labels=label_names)
    return model


tb_dir = workdir / "tensorboard"
model_ft = fresh_model()
ft_config = trainer.TrainingConfig.from_book_config(
    cfg, warmup=warmup_steps, lr_scheduler="linear", max_grad_norm=1.0, logging_steps=2,
    eval_strategy="steps", eval_steps=max(1, total_steps // 2), progress=False,
    report_to="tensorboard", log_dir=str(tb_dir))
result_ft = trainer.train(model_ft, tokenized["train"], tokenized["validation"], config=ft_config, tokenizer=tokenizer,
                          regularizer=regularizers.make_regularizer("l2sp", model_ft, L2SP_STRENGTH))
print(f"ftutils.trainer: {result_ft.global_step} steps, {result_ft.final_metrics}")

# %% [markdown]
# **The Hugging Face `Trainer`** with the book's adapter, `ftutils.hf.RegularizedTrainer`, which calls
# the regulariser at the same two points of each step. Its settings are `TrainingArguments`; the
# padding is a `DataCollatorWithPadding`.

# %%
model_hf = fresh_model()
args = transformers.TrainingArguments(
    output_dir=str(workdir / "hf"), num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
    per_device_eval_batch_size=2 * cfg.batch_size, learning_rate=cfg.learning_rate, warmup_steps=warmup_steps,
    lr_scheduler_type="linear", max_grad_norm=1.0, weight_decay=0.0, bf16=cfg.mixed_precision == "bf16",
    eval_strategy="no", save_strategy="no", logging_steps=2, report_to=[], seed=cfg.seed, disable_tqdm=True,
    dataloader_pin_memory=False)
hf_trainer = RegularizedTrainer(
    model=model_hf, args=args, train_dataset=tokenized["train"], eval_dataset=tokenized["validation"],
    data_collator=transformers.DataCollatorWithPadding(tokenizer),
    compute_metrics=lambda p: {"accuracy": metrics.accuracy(p.predictions.argmax(-1), p.label_ids)},
    regularizer=regularizers.make_regularizer("l2sp", model_hf, L2SP_STRENGTH))
with contextlib.redirect_stdout(io.StringIO()):  # the Trainer prints every log line
    hf_train = hf_trainer.train()
    hf_eval = hf_trainer.evaluate()
print(f"HF Trainer: {hf_train.global_step} steps, eval_loss {hf_eval['eval_loss']:.4f}, "
      f"eval_accuracy {hf_eval['eval_accuracy']:.4f}")

# %% [markdown]
# **PyTorch Lightning**: `ftutils.lightning.LitClassifier` is a `LightningModule` that says what a
# training and a validation step compute; the regulariser's gradient goes in
# `on_before_optimizer_step` (after backward, before clipping) and its decoupled pull right after the
# optimizer step. `ftl.fit` hands it to `lightning.Trainer`, whose arguments choose devices,
# precision, clipping and logging.

# %%
model_pl = fresh_model()
result_pl = ftl.fit(model_pl, tokenized["train"], tokenized["validation"], epochs=cfg.epochs,
                    batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, warmup=warmup_steps,
                    regularizer=regularizers.make_regularizer("l2sp", model_pl, L2SP_STRENGTH),
                    mixed_precision=cfg.mixed_precision, seed=cfg.seed, pad_token_id=tokenizer.pad_token_id)
print(f"Lightning: {result_pl['global_step']} steps, {result_pl['metrics']}")

# %%
three = pd.DataFrame([
    ("ftutils.trainer", result_ft.global_step, result_ft.final_metrics["eval_accuracy"],
     result_ft.final_metrics["eval_loss"], result_ft.train_runtime_s,
     "a short loop you can read; exact resume; L2-SP, layer decay, freezing built in"),
    ("HF Trainer + RegularizedTrainer", hf_train.global_step, hf_eval["eval_accuracy"], hf_eval["eval_loss"],
     hf_train.metrics["train_runtime"], "the ecosystem: Hub, PEFT, DeepSpeed, integrations, model cards"),
    ("PyTorch Lightning", result_pl["global_step"], result_pl["metrics"]["val_accuracy"],
     result_pl["metrics"]["val_loss"], result_pl["train_runtime_s"],
     "any model, any loop logic in hooks; devices, strategies, loggers as Trainer arguments"),
], columns=["tool", "steps", "validation accuracy", "validation loss", "training time (s)", "what it buys"]
).set_index("tool")
print(f"one run each, seed {cfg.seed}, {len(tokenized['train'])} training / {len(tokenized['validation'])} "
      f"validation reviews, L2-SP λ={L2SP_STRENGTH:g}")
three.round(3)

# %%
majority = max(np.bincount(tokenized["validation"]["labels"])) / len(tokenized["validation"])
print(f"majority-class accuracy on these validation reviews: {majority:.3f}; chance-level loss ln 2 = {np.log(2):.4f}")

# %% tags=["remove-cell"]
# Claims: the three tools take the same number of optimizer steps, all three bring the validation
# loss below chance level, and their accuracies are within 0.1 of each other.
assert three["steps"].nunique() == 1, three["steps"]
assert (three["validation loss"] < np.log(2)).all(), three
assert three["validation accuracy"].max() - three["validation accuracy"].min() < 0.1, three

# %% [markdown]
# The three runs take the same number of steps, bring the validation loss below the chance level
# ln 2, and land close together. They are not bit-identical, because each tool draws its batches in its
# own order (`ftutils` groups reviews of similar length, the others shuffle freely) and runs its own
# dropout stream. Compare the accuracies with the majority-class rate printed above: on cpu-tiny a run
# is only a few steps on 128 reviews, too short to move far from predicting the more frequent label,
# so read this section (and the sweeps below) for *how* the tools and knobs work; `CONFIG = "gpu"`
# runs the same cells on every review. The choice between the tools is about what else you get:
#
# * the **HF `Trainer`** is the shortest path when the model, the data and the task are standard: one
#   object, and the Hub, PEFT adapters, DeepSpeed and logging integrations plug into it;
# * **Lightning** is for custom training logic: the model says what a step computes, the `Trainer`
#   owns devices, precision and checkpoints, and the same module runs on one CPU, eight GPUs or a TPU
#   by changing `Trainer(accelerator=..., devices=..., strategy=...)`;
# * a **plain loop** (here `ftutils.trainer`) is what you can read end to end and change anywhere --
#   the right tool for learning, and for research where the loop itself is the subject.
#
# (sec-tools-scaling)=
# ## Scaling out: the same script on two processes, many GPUs, or a TPU
#
# `ftutils.trainer` is written against 🤗 Accelerate, so one script runs on one device or many. The
# script below is complete: it loads the data, trains and prints what each process saw. The chapter
# launches it as **two CPU processes** that communicate through `gloo`, exactly as eight GPU processes
# would through NCCL.

# %%
script = workdir / "finetune_distributed.py"
script.write_text(textwrap.dedent('''
    """Fine-tune MiniLM with ftutils.trainer; run with `accelerate launch` on any number of processes."""
    import json, sys
    from accelerate import PartialState
    from ftutils import batching, data, models, trainer

    model_name, n_train, steps, batch_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    reviews = data.load("rotten_tomatoes", n_train=n_train, n_validation=n_train, n_test=8, seed=0)
    model, tokenizer = models.load(model_name, "sequence-classification", labels=reviews["train"].features["label"].names)
    tokenized = batching.tokenize_classification(reviews, tokenizer, 32)
    config = trainer.TrainingConfig(max_steps=steps, batch_size=batch_size, learning_rate=1e-4, progress=False,
                                    eval_strategy="no")  # batch_size is per process
    result = trainer.train(model, tokenized["train"], tokenized["validation"], config=config, tokenizer=tokenizer)
    state = PartialState()
    print(json.dumps({"rank": state.process_index, "processes": state.num_processes, "backend": state.backend,
                      "global_batch": batch_size * state.num_processes, "steps": result.global_step,
                      **{k: round(v, 6) for k, v in result.final_metrics.items()}}))
'''))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
          "--main_process_port", str(free_port()), str(script), cfg.encoder, "64", "2", "8"]
env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1")
proc = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=600)
if proc.returncode != 0:
    raise RuntimeError(proc.stderr[-3000:])
ranks = sorted((json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")), key=lambda r: r["rank"])
print("accelerate launch", " ".join(launch[3:13]), "finetune_distributed.py ...")
pd.DataFrame(ranks).set_index("rank")

# %% tags=["remove-cell"]
assert len(ranks) == 2 and all(r["processes"] == 2 and r["backend"] == "gloo" for r in ranks), ranks
# every process computes the same gathered evaluation
assert ranks[0]["eval_accuracy"] == ranks[1]["eval_accuracy"], ranks

# %% [markdown]
# Two processes, one `gloo` process group, a global batch of twice the per-process batch, and the same
# evaluation on both ranks (each scores half the reviews; `ftutils.trainer.evaluate` gathers them).
# Two details of this CPU run: `accelerate launch --cpu` with several processes expects MPI, so we
# use the `torchrun`-based launcher (`--multi_gpu`) and tell Accelerate to stay on the CPU with
# `ACCELERATE_USE_CPU=1`.
#
# What changes on real hardware is the launch line and, for big models, one configuration file --
# never the script:
#
# | where | launch | what Accelerate does |
# |---|---|---|
# | 8 GPUs, one machine | `accelerate launch --multi_gpu --num_processes 8 finetune_distributed.py ...` | DDP over NCCL: every GPU holds the whole model, gradients are averaged |
# | 8 GPUs, model too big for one | `accelerate launch --use_fsdp --num_processes 8 --fsdp_sharding_strategy FULL_SHARD ...` | FSDP {cite}`zhao2023fsdp`: parameters, gradients and optimizer state sharded across GPUs |
# | 2 machines × 8 GPUs | add `--num_machines 2 --machine_rank R --main_process_ip HOST` on each | the same, across machines |
# | a TPU v4-8 | `accelerate launch --tpu --num_processes 8 ...` (needs `torch_xla`) | XLA devices; the loop is traced and compiled |
#
# Things that do change in meaning: `batch_size` is per process, so the global batch (and usually the
# learning rate you want) grows with the number of processes; a TPU recompiles for every new tensor
# shape, so there one pads to a fixed length (`DynamicPaddingCollator(pad_to_multiple_of=...)`)
# instead of to each batch's longest review; and FSDP replaces the parameters the L2-SP anchor points
# at, so `RegularizedTrainer` refuses FSDP (use DDP, or keep the anchor inside the sharded module).
# `accelerate config` writes the same choices to a YAML file once per machine:

# %%
print(textwrap.dedent("""\
    # ~/.cache/huggingface/accelerate/default_config.yaml, written by `accelerate config` (8 GPUs, FSDP, bf16)
    compute_environment: LOCAL_MACHINE
    distributed_type: FSDP
    num_machines: 1
    num_processes: 8
    mixed_precision: bf16
    fsdp_config:
      fsdp_sharding_strategy: FULL_SHARD
      fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
      fsdp_state_dict_type: SHARDED_STATE_DICT
    # on a TPU VM instead: distributed_type: XLA, num_processes: 8 (and `pip install torch_xla`)"""))

# %% [markdown]
# (sec-tools-tracking)=
# ## Experiment tracking without an account
#
# The `ftutils.trainer` run above logged every history entry to TensorBoard event files. TensorBoard
# needs no account and no server to write: `tensorboard --logdir <folder>` shows them in a browser, and
# `ftutils.trainer.read_tensorboard` reads them back, so the book can draw the curves from the files
# themselves:

# %%
tb_history = trainer.read_tensorboard(tb_dir)
print(f"{len(list(tb_dir.rglob('events.out.tfevents.*')))} event file(s) in {tb_dir.name}/; "
      f"{len(tb_history)} logged points")
fig = plotting.plot_learning_curves(tb_history, metric="accuracy", show_lr=True,
                                    title="ftutils.trainer run, read back from TensorBoard event files")
plt.show()

# %% tags=["remove-cell"]
ours = [(h["step"], h["train_loss"]) for h in result_ft.history if "train_loss" in h]
theirs = [(h["step"], h["train_loss"]) for h in tb_history if "train_loss" in h]
assert [s for s, _ in ours] == [s for s, _ in theirs] and np.allclose([v for _, v in ours], [v for _, v in theirs])

# %% [markdown]
# Weights & Biases works the same way with `report_to="wandb"`: with `WANDB_MODE=offline` (the default
# `ftutils` sets) it writes the run to `log_dir` without an account, and `wandb sync` uploads it later.
# The package is not part of the book's requirements; this cell says whether this machine has it:

# %%
if importlib.util.find_spec("wandb") is None:
    try:
        trainer.train(fresh_model(), tokenized["train"], config=trainer.TrainingConfig(
            max_steps=1, batch_size=8, progress=False, report_to="wandb", log_dir=str(workdir / "wandb")))
    except ImportError as error:
        print("wandb is not installed here:", error)
else:
    print("wandb is installed: TrainingConfig(report_to='wandb', log_dir=...) logs offline runs")

# %% [markdown]
# The HF `Trainer` takes `report_to=["tensorboard"]` (or `"wandb"`, `"mlflow"`, ...) and
# `logging_dir`; Lightning takes `logger=lightning.pytorch.loggers.TensorBoardLogger(folder)`.
#
# (sec-tools-hparams)=
# ## Hyperparameters, measured
#
# Every run from here on is one call of `search.train_classifier`: load the pretrained encoder, fine-tune
# it with `ftutils.trainer` and the given settings (L2-SP on) and return the validation accuracy.
# `search.cached_objective` stores each result on disk keyed by every setting, so a second run of the
# chapter reads them back; on an empty cache everything trains.

# %%
spec = dict(model=cfg.encoder, dataset="rotten_tomatoes", n_train=cfg.n_train, n_eval=cfg.n_eval,
            max_length=cfg.max_length, seed=cfg.seed, epochs=cfg.epochs, mixed_precision=cfg.mixed_precision,
            l2sp=L2SP_STRENGTH)
BASE = {"learning_rate": cfg.learning_rate, "batch_size": cfg.batch_size, "warmup": 0.1, "lr_scheduler": "linear"}
objective = search.cached_objective(spec, base=BASE, config=cfg.name, experiment="ch06")
DEFAULTS = trainer.TrainingConfig()


def run(**changes) -> float:
    """Validation accuracy of one fine-tuning: BASE with ``changes`` (a default value is no change)."""
    return objective({k: v for k, v in changes.items() if k in BASE or getattr(DEFAULTS, k) != v})


base_accuracy = run()
print(f"base settings {BASE}: validation accuracy {base_accuracy:.3f}")

# %% [markdown]
# ### Searching on a budget: grid, random and TPE
#
# The two knobs that matter most are the learning rate and the batch size. We give three search
# methods the same space -- learning rate log-uniform in [1e-5, 1e-3], batch size 16 or 32 -- and the
# same budget of `N_TRIALS` trainings (batch sizes 16 or 32: smaller batches are slow on a CPU):
#
# * **grid**: a fixed lattice (three learning rates × two batch sizes on cpu-tiny), visited in random
#   order;
# * **random search** {cite}`bergstra2012random`: independent draws, which on the same budget try more
#   distinct learning rates than a grid;
# * **TPE** {cite}`bergstra2011tpe`, Optuna's default {cite}`akiba2019optuna`: after a few random
#   trials it models which region scored well and samples there.
#
# All three are Optuna samplers behind `search.run_search`, so they differ only in how they choose.

# %%
SPACE = {"learning_rate": ("log", 1e-5, 1e-3), "batch_size": ("choice", [16, 32])}
lr_points = max(2, N_TRIALS // 2)
GRID = {"learning_rate": [float(f"{v:.3g}") for v in np.geomspace(1e-5, 1e-3, lr_points)], "batch_size": [16, 32]}
searches = {}
searches["grid"] = search.run_search(lambda p: run(**p), SPACE, method="grid", grid=GRID, n_trials=N_TRIALS, seed=cfg.seed)
searches["random"] = search.run_search(lambda p: run(**p), SPACE, method="random", n_trials=N_TRIALS, seed=cfg.seed)
searches["grid"].round({"value": 4, "best_so_far": 4})

# %% [markdown]
# TPE runs with its study **stored on disk** (an Optuna journal file). That makes it resumable -- a
# killed search picks up where it stopped, counting the trials already stored -- and shareable: other
# processes, here `N_WORKERS` worker processes started by `search.launch_workers` (each runs
# `python -m ftutils.search worker ...`), open the same file and add trials until the study holds
# `N_TRIALS`. On a cluster, the same command runs once per machine.

# %%
journal = workdir / "tpe.journal"
first = search.run_search(lambda p: run(**p), SPACE, method="tpe", n_trials=N_TRIALS - N_WORKERS,
                          storage=journal, study_name="ch06-tpe", seed=cfg.seed)
print(f"this process: {len(first)} trials stored in {journal.name}")
workers = search.launch_workers(N_WORKERS, storage=journal, study_name="ch06-tpe", method="tpe", space=SPACE,
                                spec=spec, base=BASE, n_trials=N_TRIALS, seed=cfg.seed + 1, config=cfg.name,
                                experiment="ch06")
for w in workers:
    print(w.stdout.strip().splitlines()[-1])
searches["tpe"] = search.trials_frame(search.open_study("tpe", SPACE, storage=journal, study_name="ch06-tpe"))
resumed = search.run_search(lambda p: run(**p), SPACE, method="tpe", n_trials=N_TRIALS, storage=journal,
                            study_name="ch06-tpe", seed=cfg.seed)
print(f"resuming with n_trials={N_TRIALS} finds {len(resumed)} trials stored and trains none")
searches["tpe"].round({"value": 4, "best_so_far": 4})

# %% tags=["remove-cell"]
assert len(first) == N_TRIALS - N_WORKERS and N_TRIALS <= len(searches["tpe"]) <= N_TRIALS + N_WORKERS - 1
assert len(resumed) == len(searches["tpe"])
assert len(searches["grid"]) == min(N_TRIALS, lr_points * 2) and len(searches["random"]) == N_TRIALS

# %%
fig, ax = plt.subplots(figsize=(6, 3.6))
for (name, df), marker in zip(searches.items(), "osD"):
    ax.step(df["trial"] + 1, df["best_so_far"], where="post", marker=marker, label=name)
ax.set_xlabel("trials run (fine-tunings)")
ax.set_ylabel("best validation accuracy so far (fraction)")
ax.set_title("Grid vs random vs TPE on the same budget")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()
best_by_method = pd.DataFrame({name: {"best accuracy": df["value"].max(),
                                      "its learning rate": df.loc[df["value"].idxmax(), "learning_rate"],
                                      "its batch size": df.loc[df["value"].idxmax(), "batch_size"],
                                      "distinct learning rates tried": df["learning_rate"].nunique(),
                                      "trials": len(df)}
                               for name, df in searches.items()}).T
best_by_method

# %% tags=["remove-cell"]
for name, df in searches.items():
    assert (np.diff(df["best_so_far"]) >= 0).all(), name
assert best_by_method.loc["random", "distinct learning rates tried"] > best_by_method.loc["grid", "distinct learning rates tried"]

# %% [markdown]
# Read the curves with the budget in mind: with a handful of trials, one seed and runs this short,
# which method ends highest is partly luck, and differences of a few points are within what a change of
# seed does to one run. What the table shows reliably is *how* they spend the budget:
# random search and TPE try a new learning rate on every trial, while the grid revisits the same few
# values once per batch size. Since one knob (the learning rate) matters much more than the other here,
# that is the argument of {cite}`bergstra2012random` in miniature. TPE pays off with larger budgets,
# when its model of the good region has more points to learn from.
#
# ### Learning rate and batch size
#
# The grid's results are also a sweep: validation accuracy against the learning rate, one line per batch
# size, with the number of optimizer steps each run took.

# %%
grid_df = searches["grid"].sort_values(["batch_size", "learning_rate"])
fig, ax = plt.subplots(figsize=(6, 3.6))
for bs, part in grid_df.groupby("batch_size"):
    steps = cfg.epochs * -(-len(tokenized["train"]) // int(bs))
    ax.plot(part["learning_rate"], part["value"], "o-", label=f"batch {bs} ({steps} steps)")
ax.axhline(majority, color="grey", ls="--", label="majority class")
ax.set_xscale("log")
ax.set_xlabel("peak learning rate (log scale)")
ax.set_ylabel("validation accuracy (fraction)")
ax.set_title(f"Learning-rate sweep, {cfg.epochs} epoch(s), one run per point")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()
lr_table = grid_df.pivot(index="learning_rate", columns="batch_size", values="value")
lr_table.columns = [f"batch {c}" for c in lr_table.columns]
lr_table.round(3)

# %% tags=["remove-cell"]
# Claim: the smallest learning rate is not the best (it barely moves the weights in so few steps).
smallest = grid_df["learning_rate"].min()
assert grid_df.loc[grid_df["learning_rate"] == smallest, "value"].max() < grid_df["value"].max(), grid_df

# %% [markdown]
# The smallest learning rate is not the best: in so few steps it barely moves the model from where it
# started. For a fixed number of epochs the batch size changes the number of steps: a batch of 16 takes
# twice as many (smaller, noisier) steps as a batch of 32. A larger batch averages away gradient
# noise and takes fewer steps, which is why the best learning rate tends to grow with the batch size
# -- the rule of scaling the learning rate with the batch size {cite}`goyal2017accurate` -- and why the
# two knobs are searched together.
#
# ### Warmup and schedule
#
# A freshly initialised head sends large, poorly aimed gradients into the pretrained layers during the
# first steps; warmup ramps the learning rate from 0 over the first steps, and a decay brings it back to 0
# by the end {cite}`howard2018ulmfit,devlin2019bert`. The three schedules compared:

# %%
schedules = [("constant", 0.0), ("linear", 0.1), ("cosine", 0.1)]
fig, ax = plt.subplots(figsize=(6, 3.2))
for kind, warm in schedules:
    f = trainer.lr_lambda(kind, int(warm * 100), 100)
    ax.plot(range(101), [f(s) for s in range(101)], label=f"{kind}, warmup {warm:.0%}")
ax.set_xlabel("training progress (% of steps)")
ax.set_ylabel("learning rate / peak (fraction)")
ax.set_title("Learning-rate schedules (trainer.lr_lambda)")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()
schedule_table = pd.DataFrame([{"schedule": kind, "warmup": warm, "validation accuracy": run(lr_scheduler=kind, warmup=warm)}
                               for kind, warm in schedules]).set_index("schedule")
schedule_table.round(3)

# %% [markdown]
# ### Layer-wise learning-rate decay
#
# Lower layers hold more general features than upper ones {cite}`yosinski2014transferable`, so
# layer-wise decay gives each layer the learning rate of the layer above times a factor ξ < 1
# {cite}`howard2018ulmfit,sun2019finetune`; the new head keeps the full rate. With ξ = 0.8 and MiniLM's
# six layers, the embeddings learn at 0.8⁷ ≈ 0.21 of the top rate:

# %%
groups = trainer.build_param_groups(fresh_model(), learning_rate=cfg.learning_rate, layer_decay=0.8)
print(", ".join(f"{g['lr']:.2e} ({len(g['names'])} tensors)" for g in groups))
llrd_table = pd.DataFrame([{"layer decay ξ": xi, "peak learning rate": lr, "validation accuracy": run(layer_decay=xi, learning_rate=lr)}
                           for xi, lr in [(1.0, cfg.learning_rate), (0.8, cfg.learning_rate)]])
llrd_table.round(4)

# %% tags=["remove-cell"]
assert len({round(g["lr"], 12) for g in groups}) >= 7, groups

# %% [markdown]
# Decay with the same peak learning rate trains the lower layers less (a common companion is a somewhat
# higher peak rate, so the top layers get more while the bottom ones stay near the original rate). On
# a run this short the effect on accuracy is not measurable; the technique earns its keep on longer
# runs and larger models, where it protects the general lower layers.
#
# ### Choosing the optimizer
#
# AdamW {cite}`loshchilov2019adamw` is the default for transformers: it adapts a step size per
# parameter. SGD with momentum has one global step size, which suits no layer of a transformer at once
# (the gradient scales of embeddings, attention and the new head differ by orders of magnitude).
# Adafactor {cite}`shazeer2018adafactor` keeps factored second moments (a row and a column vector per
# matrix instead of a full matrix), so its optimizer state is far smaller -- useful when memory, not
# speed, is the limit. Each is run at the book's learning rate and at a rate typical for it:

# %%
optimizers = [("adamw", cfg.learning_rate), ("sgd", cfg.learning_rate), ("sgd", 100 * cfg.learning_rate),
              ("adafactor", 10 * cfg.learning_rate)]
optimizer_table = pd.DataFrame([{"optimizer": name, "learning rate": lr, "validation accuracy": run(optimizer=name, learning_rate=lr)}
                                for name, lr in optimizers])
probe, state_floats = fresh_model(), {}
probe_batch = batching.DynamicPaddingCollator(tokenizer.pad_token_id)(tokenized["train"].select(range(4)).to_list())
for name in ("adamw", "sgd", "adafactor"):  # one step on 4 reviews, then count the floats the optimizer keeps
    opt = trainer.make_optimizer(trainer.build_param_groups(probe, learning_rate=1e-6), trainer.TrainingConfig(optimizer=name))
    probe(**probe_batch).loss.backward()
    opt.step()
    opt.zero_grad()
    state_floats[name] = sum(t.numel() for s in opt.state.values() for t in s.values() if hasattr(t, "ndim") and t.ndim > 0)
optimizer_table["optimizer state (million floats)"] = optimizer_table["optimizer"].map(state_floats) / 1e6
n_params = sum(p.numel() for p in probe.parameters())
print(f"{n_params / 1e6:.1f} million parameters")
optimizer_table.round(4)

# %% tags=["remove-cell"]
acc_of = {(r["optimizer"], r["learning rate"]): r["validation accuracy"] for _, r in optimizer_table.iterrows()}
assert acc_of[("sgd", cfg.learning_rate)] < acc_of[("adamw", cfg.learning_rate)], acc_of
assert acc_of[("sgd", 100 * cfg.learning_rate)] >= acc_of[("sgd", cfg.learning_rate)], acc_of
assert abs(state_floats["adamw"] - 2 * n_params) < 0.01 * n_params, (state_floats, n_params)
assert abs(state_floats["sgd"] - n_params) < 0.01 * n_params, (state_floats, n_params)
assert state_floats["adafactor"] < 0.5 * n_params, state_floats

# %% [markdown]
# The memory column is exact and does not depend on the run: AdamW keeps two floats per parameter
# (first and second moments), SGD with momentum one, and Adafactor's factored second moments less than
# half a float per parameter. In accuracy, SGD at AdamW's learning rate ends below AdamW: with one
# global step size that small, the randomly initialised head barely moves in so few steps. A learning
# rate a hundred times larger does at least as well as SGD at AdamW's rate. On longer runs the usual
# picture is that SGD needs a learning rate one to two orders of magnitude above AdamW's and is more
# sensitive to it, which is one reason AdamW is the default for fine-tuning transformers
# {cite}`mosbach2021stability`.
#
# (sec-tools-recipe)=
# ## A starting recipe for fine-tuning an encoder
#
# Each row is a default to start from, with the result of this chapter that bears on it. On cpu-tiny
# these are single short runs, so the evidence column shows what was measured, not a significant
# difference; a rerun with `CONFIG = "gpu"` (every review, more steps) or a larger `N_TRIALS` gives
# firmer numbers, and the defaults themselves follow the fine-tuning literature
# {cite}`devlin2019bert,sun2019finetune,mosbach2021stability`.

# %%
best_grid = searches["grid"].loc[searches["grid"]["value"].idxmax()]
recipe = pd.DataFrame([
    ("optimizer", "AdamW, weight decay or L2-SP λ≈0.01",
     f"AdamW {acc_of[('adamw', cfg.learning_rate)]:.3f}, SGD {acc_of[('sgd', cfg.learning_rate)]:.3f} at the same lr, "
     f"{acc_of[('sgd', 100 * cfg.learning_rate)]:.3f} at 100x; state {state_floats['adamw'] / n_params:.1f} floats/param"),
    ("learning rate", "search first, log scale 1e-5 to 1e-3 (2e-5 to 1e-4 is typical)",
     f"lr {smallest:.0e}: {grid_df[grid_df.learning_rate == smallest].value.max():.3f}; "
     f"larger: up to {grid_df[grid_df.learning_rate > smallest].value.max():.3f}"),
    ("batch size", "16-32; scale the lr with it",
     "grid: " + ", ".join(f"{c} best {lr_table[c].max():.3f}" for c in lr_table.columns)),
    ("schedule", "linear decay, 10% warmup",
     ", ".join(f"{k} {v:.3f}" for k, v in schedule_table["validation accuracy"].items())),
    ("layer-wise lr decay", "optional: ξ≈0.8-0.95 for deep models",
     ", ".join(f"ξ={r['layer decay ξ']}, lr {r['peak learning rate']:.0e}: {r['validation accuracy']:.3f}" for _, r in llrd_table.iterrows())),
    ("search", "random or TPE over the lr first, stored on disk",
     ", ".join(f"{m} best {v:.3f}" for m, v in best_by_method["best accuracy"].items()) + f" in {N_TRIALS} trials"),
    ("tracking", "TensorBoard (or W&B offline) from the first run",
     f"{len(tb_history)} points read back from event files"),
], columns=["knob", "start with", "evidence in this chapter (validation accuracy)"]).set_index("knob")
recipe

# %% [markdown]
# ## Summary
#
# * One fine-tuning ran three ways -- `ftutils.trainer`, the HF `Trainer` with the regulariser adapter,
#   and a Lightning module -- with the same number of steps and close results; pick the tool for what
#   it connects to, not for accuracy.
# * On cpu-tiny every run is a few steps on 128 reviews: enough to show each tool and knob working,
#   not to rank settings; the `gpu` configuration runs the same cells on all reviews.
# * The same Accelerate script ran as two processes; GPUs, FSDP and TPUs change the launch line and a
#   configuration file, not the script (but the global batch grows with the number of processes).
# * TensorBoard logs need no account; the book reads them back and plots them. W&B runs offline.
# * The learning rate is the knob to search first; the batch size changes the number of steps and
#   shifts the best learning rate. Warmup with a decay and layer-wise decay are cheap safety margins.
# * AdamW is the default; SGD needs a far larger learning rate; Adafactor keeps less than half a float
#   of optimizer state per parameter where AdamW keeps two.
# * Random search and TPE spend a small budget on more distinct values than a grid; Optuna's stored
#   studies resume after a crash and accept trials from parallel workers.
#
# ## Exercises
#
# :::{exercise}
# :label: ex-tools-1
#
# Write `best_so_far(values)`, which returns, for each trial, the best validation accuracy among the
# trials up to and including it (the curves of the search plot). Check it with
# `search.check_best_so_far(best_so_far)` and compare with `searches["random"]["best_so_far"]`.
# :::
#
# :::{solution} ex-tools-1
# :class: dropdown
#
# ```python
# def best_so_far(values):
#     out, best = [], float("-inf")
#     for v in values:
#         best = max(best, v)
#         out.append(best)
#     return out
#
# search.check_best_so_far(best_so_far)
# assert best_so_far(searches["random"]["value"]) == searches["random"]["best_so_far"].tolist()
# ```
# `np.maximum.accumulate(values)` does the same in one call.
# :::
#
# :::{exercise}
# :label: ex-tools-2
#
# Rerun the chapter with `-p N_TRIALS 12`. Does the ranking of grid, random and TPE change? Then add a
# third knob to `SPACE`, `"warmup": ("float", 0.0, 0.3)`, and give the grid two values of it: how many
# grid points does a three-knob grid need, and how many distinct learning rates can it still afford?
# :::
#
# :::{solution} ex-tools-2
# :class: dropdown
#
# With more trials the best-so-far curves rise and move closer together; TPE's advantage, if any, shows
# only after its random start-up trials. A grid with k learning rates, 2 batch sizes and 2 warmups has
# 4k points, so a budget of 12 allows only k = 3 learning rates, while random search and TPE try 12
# distinct ones: the gap grows with every knob that matters little.
# :::
#
# :::{exercise}
# :label: ex-tools-3
#
# Interrupt a search and resume it: run `search.run_search(lambda p: run(**p), SPACE, method="tpe",
# n_trials=3, storage=workdir / "mine.journal", study_name="mine")`, then the same call with
# `n_trials=5`. How many new trainings does the second call start (watch the cache lines, or count the
# calls with a wrapper)? What happens if you give a different `study_name`?
# :::
#
# :::{solution} ex-tools-3
# :class: dropdown
#
# The second call finds 3 finished trials in the journal and runs only 2 more; a different
# `study_name` starts a new, empty study in the same file. Trials whose settings were already trained
# elsewhere in the chapter come back from the result cache instead of training.
# :::
#
# :::{exercise}
# :label: ex-tools-4
#
# Log the HF `Trainer` run to TensorBoard too (`report_to=["tensorboard"]`, `logging_dir=...`) and read
# the files with `trainer.read_tensorboard`. Which tag names does the HF `Trainer` use, and what would
# you change to plot both runs in one figure?
# :::
#
# :::{solution} ex-tools-4
# :class: dropdown
#
# The HF `Trainer` writes tags such as `train/loss`, `train/learning_rate` and `train/grad_norm`, so
# `read_tensorboard` returns keys `loss`, `learning_rate`, `grad_norm` (ours are `train_loss`, `lr`).
# Rename the keys (e.g. `{"loss": "train_loss", "learning_rate": "lr"}`) before calling
# `plotting.plot_learning_curves`, or plot the two series directly with matplotlib.
# :::
