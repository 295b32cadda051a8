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
# (ch-evaluation)=
# # Evaluation, the learning curve, choosing a model, and what comes next
#
# The article this book grew from ends with questions: why transfer learning rather than training from
# scratch; how to choose a pretrained model; how to evaluate a fine-tuned model and compare it with one
# trained from scratch. This chapter answers them with measurements. It starts with the metrics of each
# task family and how each can mislead, puts confidence intervals on test scores, and shows how much a
# fine-tuning result moves when only the random seed changes. Then it runs the book's central
# experiment under one fair protocol: test accuracy against the number of labelled training examples
# for four methods (fine-tuning a pretrained encoder, the same architecture from random weights, a
# linear probe on frozen pretrained features, and TF-IDF with logistic regression), with error bars
# over seeds. It compares two pretrained models on quality *and* cost, and closes with the field's
# current directions, including a privacy check: can a fine-tuned classifier's loss reveal which
# examples it was trained on?

# %% tags=["parameters"]
CONFIG = "cpu-tiny"  # "cpu-tiny" (offline, CPU, minutes) or "gpu" (full data)
SEED = 0  # seeds every random draw: the data samples, new heads, shuffling, dropout, resampling
MIXED_PRECISION = None  # None keeps the config's (fp32 on cpu-tiny); "auto" picks bf16 where this machine has it natively
SIZES = None  # training-set sizes of the learning curve; None: chosen for CONFIG (40, 120, 360 on cpu-tiny)
N_SEEDS = None  # seeds per point of the learning curve; None takes the config's n_seeds
VARIANCE_SEEDS = 5  # seeds of the fine-tuning runs at the smallest size (the seed-variance section)
N_BOOTSTRAP = 1000  # resamples of the test set for each bootstrap interval

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression

from ftutils import (baselines, batching, chapter, checks, data, evaluation, generation, lora, metrics, models, results,
                     plotting, recipes, trainer)

# The learning curve trains 2 x sizes x seeds models; on cpu-tiny they fit in a few minutes on two CPU cores
# (short reviews, small sizes, one epoch). The sizes of each configuration: ftutils.config.CHAPTERS["07"].
chapter.check("SIZES", SIZES, items=int, minimum=16, allow_none=True)
for name, value, least in (("N_SEEDS", N_SEEDS, 2), ("VARIANCE_SEEDS", VARIANCE_SEEDS, 2), ("N_BOOTSTRAP", N_BOOTSTRAP, 100)):
    chapter.check(name, value, kind=int, minimum=least, allow_none=name == "N_SEEDS")
cfg = chapter.start(CONFIG, SEED, chapter="07", **chapter.given(sizes=SIZES, mixed_precision=MIXED_PRECISION))
SIZES = sorted(set(cfg.chapter.sizes))
N_SEEDS = cfg.n_seeds if N_SEEDS is None else N_SEEDS
SEEDS = cfg.seeds(N_SEEDS)  # training seeds of the learning curve: a block of its own for each SEED
if cfg.n_train is not None and SIZES[-1] > cfg.n_train:  # a larger size than the config's pool: grow the pool
    cfg = chapter.start(CONFIG, SEED, chapter="07", **chapter.given(sizes=SIZES), n_train=SIZES[-1])
device = "cuda" if torch.cuda.is_available() else "cpu"
print(f"config {cfg.name}: {cfg.encoder}, sizes {SIZES}, {N_SEEDS} seeds, max {cfg.max_length} tokens, "
      f"lr {cfg.learning_rate:g}, batch {cfg.batch_size}, device {device}")

# %% [markdown]
# (sec-metrics-mislead)=
# ## Metrics for each task family, and when they mislead
#
# Every task family of this book has its standard metric, and each one hides something:
#
# | task family | metric (`ftutils.metrics`) | misleads when |
# |---|---|---|
# | classification | `accuracy` | classes are imbalanced: predicting the majority class scores its share |
# | classification | `macro_f1` (mean of per-class F1) | classes are balanced and errors have unequal costs; it also hides *which* class fails (read the `confusion_matrix`) |
# | token classification (NER) | `span_f1` (entity-level) | rare types vanish in the micro average (read `per_type`); token accuracy is almost meaningless, because most tokens are `O` |
# | extractive QA | `squad` (exact match, token F1) | answers are long or have several valid spans: EM is harsh, F1 lenient |
# | generation, translation | `bleu`, `chrf` | outputs are short (BLEU's n-gram statistics collapse), or paraphrases are valid; on a small test set every corpus metric is noisy |
#
# Two of these can be shown in seconds. First, the spam e-mails: about a third are spam, so a "filter"
# that lets everything through is right on most messages.

# %% tags=["nbval-check-output"]
spam = data.load("spam_assassin", n_train=cfg.chapter.spam_train, seed=cfg.seed)
spam_test_y = np.array(spam["test"]["label"])
spam_majority = np.full_like(spam_test_y, np.bincount(spam["train"]["label"]).argmax())
spam_tfidf = baselines.tfidf_logreg(spam["train"], spam["test"])
spam_rows = [("always 'ham' (majority class)", spam_majority), ("TF-IDF + logistic regression", spam_tfidf["predictions"])]
spam_table = pd.DataFrame(
    [(name, metrics.accuracy(p, spam_test_y), metrics.macro_f1(p, spam_test_y, labels=[0, 1]),
      float(((p == 1) & (spam_test_y == 1)).sum() / (spam_test_y == 1).sum()))
     for name, p in spam_rows],
    columns=["spam filter", "accuracy", "macro-F1", "spam caught (recall)"]).set_index("spam filter")
print(f"{len(spam['train']):,} training e-mails; test: {len(spam_test_y)} e-mails, "
      f"{spam_test_y.mean():.0%} spam")
spam_table.round(3)

# %% tags=["remove-cell", "claims"]
# Claims: doing nothing scores a high accuracy (> 0.6) but catches no spam and has a macro-F1 below 0.5;
# the real filter beats it on every column.
assert spam_table.iloc[0]["accuracy"] > 0.6 and spam_table.iloc[0]["macro-F1"] < 0.5, spam_table
assert spam_table.iloc[0]["spam caught (recall)"] == 0.0
assert (spam_table.iloc[1] > spam_table.iloc[0]).all(), spam_table

# %% [markdown]
# Accuracy rewards the filter that does nothing with a respectable number; macro-F1 and the share of
# spam caught expose it. The same trap, worse, in named-entity recognition: on the WNUT-16 tweets a
# tagger that never finds an entity labels almost every *token* correctly.

# %% tags=["nbval-check-output"]
tweets = data.load("wnut16", seed=cfg.seed)["test"]
tag_names = tweets.features["ner_tags"].feature.names
gold = [[tag_names[t] for t in sentence] for sentence in tweets["ner_tags"]]
nothing = [["O"] * len(sentence) for sentence in gold]
lazy = metrics.span_f1(nothing, gold)
print(f"{len(gold)} test tweets, {sum(map(len, gold)):,} tokens, {len(metrics.bio_spans(sum(gold, [])))} entities")
print(f"tagger that always says 'O': token accuracy {lazy['accuracy']:.3f}, entity F1 {lazy['f1']:.3f}")

# %% tags=["remove-cell", "claims"]
assert lazy["accuracy"] > 0.85 and lazy["f1"] == 0.0, lazy

# %% [markdown]
# The rule: report the metric that matches the cost of mistakes, always next to a trivial baseline
# (majority class, "no entity", copy the input), and look at per-class numbers.
#
# (sec-fair-protocol)=
# ## A fair comparison protocol
#
# A claim "method A beats method B" is only as good as the comparison behind it. This chapter's protocol:
#
# 1. **Same split.** Every method trains on the *same* labelled reviews, chosen by
#    `evaluation.stratified_subset(labels, n, seed)` (nested: a larger subset includes the smaller), and is
#    scored on the same test reviews, which no choice ever looks at.
# 2. **Same budget.** Both neural methods (pretrained and random init) use the same architecture,
#    recipe, optimiser, learning rate, batch size and number of steps (`evaluation.epochs_for` gives
#    small training sets enough epochs to make a minimum number of steps, where the config asks for one).
# 3. **Tuned baselines.** The cheap baselines get their regularisation strength `C` chosen on a fixed
#    validation split (`baselines.fit_tuned_logreg`). The neural runs are *not* tuned per size (that
#    would multiply the cost); this favours the baselines, so a lead of the pretrained model is, if
#    anything, understated.
# 4. **Several seeds.** Each point repeats over seeds; the seed picks the training subset, the head's
#    initialisation and the batch order. We report the mean and the spread.
#
# The data: the same Rotten Tomatoes review snippets as chapters 2 to 4, tokenised once.

# %% tags=["nbval-check-output"]
reviews = data.load_for("rotten_tomatoes", cfg, n_validation=cfg.chapter.n_validation)
label_names = reviews["train"].features["label"].names
train_y, val_y, test_y = (np.array(reviews[s]["label"]) for s in ("train", "validation", "test"))
print(data.describe(reviews))

# %%
_, tokenizer = models.load(cfg.encoder, "sequence-classification", labels=label_names)
tokenized = batching.tokenize_classification(reviews, tokenizer, cfg.max_length)
majority_accuracy = baselines.majority_accuracy(train_y, test_y)
print(f"majority-class test accuracy {majority_accuracy:.3f}")

# %% [markdown]
# The four methods, each a function of (training indices, seed) built by `ftutils.evaluation`:
#
# * **fine-tuned**: MiniLM with its pretrained weights and a new head on the *mean* of its token
#   vectors (`models.load(..., pooling="mean")`: this checkpoint was trained to produce sentence vectors
#   by mean pooling, so its [CLS] vector, which `AutoModelForSequenceClassification` would classify,
#   carries little), every weight trained. A short run from a random head barely moves a pretrained
#   classifier, so we use *linear probing then fine-tuning* (LP-FT, {cite}`kumar2022finetuning`): the
#   head starts as a logistic regression fitted on the training examples' frozen features
#   (`models.init_head_from_probe`), then every weight trains;
# * **random init**: the same architecture with random weights, trained with the same recipe (LP-FT);
# * **linear probe**: logistic regression on MiniLM's frozen mean-pooled vectors (chapter 2's feature
#   extraction); the reviews are embedded once and reused for every size and seed;
# * **TF-IDF**: word and word-pair frequencies with logistic regression.

# %%
def make_classifier(pretrained: bool, seed: int):
    """MiniLM (pretrained or random weights) with a mean-pooling head, its new weights drawn from `seed`."""
    model, _ = models.load(cfg.encoder, "sequence-classification", labels=label_names, pretrained=pretrained,
                           pooling=cfg.pooling, seed=seed)
    return model.to(device)


train_config = trainer.TrainingConfig.from_book_config(cfg, eval_strategy="no", progress=False)
started = time.perf_counter()
encoder, encoder_tokenizer = models.load(cfg.encoder, "base")
encoder.to(device)
features = {s: models.mean_pooled_features(encoder, encoder_tokenizer, reviews[s]["text"], max_length=cfg.max_length)
            for s in ("train", "validation", "test")}
embed_seconds = time.perf_counter() - started
n_embedded = sum(len(v) for v in features.values())
print(f"embedded {n_embedded:,} reviews with the frozen encoder in {embed_seconds:.0f} s")

methods = {
    "fine-tuned": evaluation.finetune_method(make_classifier, tokenized["train"], tokenized["test"], config=train_config,
                                             pretrained=True, min_steps=cfg.chapter.min_steps, tokenizer=tokenizer,
                                             probe_init=True, n_members=cfg.chapter.mi_members),
    "random init": evaluation.finetune_method(make_classifier, tokenized["train"], tokenized["test"], config=train_config,
                                              pretrained=False, min_steps=cfg.chapter.min_steps, tokenizer=tokenizer,
                                              probe_init=True, n_members=cfg.chapter.mi_members),
    "linear probe": evaluation.probe_method(features["train"], train_y, features["validation"], val_y,
                                            features["test"], test_y),
    "TF-IDF": evaluation.tfidf_method(reviews["train"]["text"], train_y, reviews["validation"]["text"], val_y,
                                      reviews["test"]["text"], test_y),
}

# %% [markdown]
# `evaluation.run_learning_curve` runs every method at every size and seed through
# `experiments.run_grid`, which stores each run's result on disk: rerunning the chapter (or changing
# only the plot) reads them back instead of training again. On an empty cache this cell is the
# chapter's expensive part.

# %%
started = time.perf_counter()
curve = evaluation.run_learning_curve(methods, SIZES, SEEDS, labels=train_y, config=cfg,
                                      experiment="ch07-learning-curve", progress=False)
curve_seconds = time.perf_counter() - started
print(f"{len(curve)} runs ({int(curve['cached'].sum())} from the cache) in {curve_seconds:.0f} s")
curve[["method", "n", "seed", "accuracy", "macro_f1", "seconds"]].round(3).head(len(SIZES) * N_SEEDS)

# %% [markdown]
# (sec-bootstrap)=
# ## Confidence intervals on a test score
#
# A test accuracy is an average over a finite sample of test reviews; another sample of the same size
# would give a different number. The **bootstrap** {cite}`efron1979bootstrap` estimates how different: resample the test set with
# replacement many times, recompute the metric on each resample, and take the central 95 % of the
# values. Here are the intervals for every method at the largest training size (first seed):

# %%
largest = curve[(curve["n"] == SIZES[-1]) & (curve["seed"] == SEEDS[0])].set_index("method")
intervals = {name: evaluation.bootstrap_ci(metrics.accuracy, np.array(row["test_predictions"]), test_y,
                                           n_resamples=N_BOOTSTRAP, seed=cfg.seed)
             for name, row in largest.iterrows()}
ci_table = pd.DataFrame({name: {"accuracy": r.estimate, "95% CI low": r.low, "95% CI high": r.high,
                                "CI width": r.high - r.low} for name, r in intervals.items()}).T
print(f"n = {SIZES[-1]} training reviews, seed {SEEDS[0]}; {len(test_y)} test reviews, {N_BOOTSTRAP} bootstrap resamples")
ci_table.round(3)

# %% [markdown]
# With a few hundred test reviews an interval is several points wide (roughly
# $\pm 1.96\sqrt{p(1-p)/n_\text{test}}$), so differences of a point or two between methods mean
# nothing on their own. Two models scored on the *same* reviews can be compared more sharply with the
# **paired** bootstrap, which resamples the same indices for both: what they share (easy and hard
# reviews) cancels.

# %%
pairs = [("fine-tuned", "TF-IDF"), ("fine-tuned", "linear probe"), ("fine-tuned", "random init")]
paired = pd.DataFrame({
    f"{a} - {b}": evaluation.paired_bootstrap(metrics.accuracy, np.array(largest.loc[a, "test_predictions"]),
                                              np.array(largest.loc[b, "test_predictions"]), test_y,
                                              n_resamples=N_BOOTSTRAP, seed=cfg.seed)
    for a, b in pairs}).T
# Unpaired, the two intervals' uncertainties would add (in quadrature); paired, the shared part cancels.
ft, lp = intervals["fine-tuned"], intervals["linear probe"]
unpaired_width = float(np.hypot(ft.high - ft.low, lp.high - lp.low))
paired_width = float(paired.loc["fine-tuned - linear probe", "high"] - paired.loc["fine-tuned - linear probe", "low"])
print(f"fine-tuned - linear probe: paired interval {paired_width:.3f} wide; treating the two scores as "
      f"independent would give about {unpaired_width:.3f}")
paired.round(3)

# %% tags=["remove-cell", "claims"]
# Claims: every interval contains its estimate and is wider than 2 points with this test set; pairing
# narrows the interval of a difference between two models that share most of their errors.
assert all(r.low <= r.estimate <= r.high and r.high - r.low > 0.02 for r in intervals.values())
assert paired_width < unpaired_width, (paired_width, unpaired_width)

# %% [markdown]
# (sec-seed-variance)=
# ## Variance over seeds
#
# The bootstrap answers "how much would the score move with other test reviews?". A second, often
# larger, source of variation is the training run itself: fine-tuning a pretrained model on little data
# is known to be unstable {cite}`mosbach2021stability`, {cite}`dodge2020finetuning`. Here is the
# fine-tuned model at the smallest size with `VARIANCE_SEEDS` seeds (the first `N_SEEDS` come from the
# cache of the learning curve). Each seed draws its own training subset, head and batch order.

# %%
variance_runs = evaluation.run_learning_curve({"fine-tuned": methods["fine-tuned"]}, [SIZES[0]],
                                              list(range(SEEDS[0], SEEDS[0] + VARIANCE_SEEDS)), labels=train_y, config=cfg,
                                              experiment="ch07-learning-curve", progress=False)
variance_runs[["n", "seed", "accuracy", "macro_f1", "steps", "cached"]].round(3)

# %% tags=["nbval-check-output"]
spread = evaluation.seed_summary(variance_runs, "n", "accuracy").iloc[0]
seed0_ci = evaluation.bootstrap_ci(metrics.accuracy, np.array(variance_runs.iloc[0]["test_predictions"]), test_y,
                                   n_resamples=N_BOOTSTRAP, seed=cfg.seed)
print(f"fine-tuned on {SIZES[0]} reviews, {int(spread['n'])} seeds: accuracy {spread['mean']:.3f} ± {spread['std']:.3f} (std), "
      f"from {spread['min']:.3f} to {spread['max']:.3f}")
print(f"range over seeds {spread['range']:.3f}; 95% t-interval of the mean {spread['ci_low']:.3f}-{spread['ci_high']:.3f}")
print(f"for comparison, seed 0's bootstrap interval over test reviews is {seed0_ci.high - seed0_ci.low:.3f} wide")

# %%
fig, ax = plt.subplots(figsize=(5.2, 2.6))
ax.scatter(variance_runs["accuracy"], np.zeros(len(variance_runs)), s=60, alpha=0.7, label="one seed")
ax.errorbar([seed0_ci.estimate], [0.3], xerr=[[seed0_ci.estimate - seed0_ci.low], [seed0_ci.high - seed0_ci.estimate]],
            fmt="s", color="C1", capsize=4, label="seed 0 with its 95% bootstrap CI")
ax.axvline(majority_accuracy, color="grey", linestyle="--", linewidth=1, label="majority class")
ax.set_yticks([])
ax.set_ylim(-0.5, 0.8)
ax.set_xlabel("test accuracy (fraction)")
ax.set_title(f"Fine-tuned MiniLM, {SIZES[0]} training reviews, {len(variance_runs)} seeds")
ax.legend(fontsize=7, loc="upper left")
fig.tight_layout()
plt.show()

# %% tags=["remove-cell", "claims"]
# Claim: at the smallest size, the seeds spread over more than 2 points of accuracy.
assert spread["range"] > 0.02, spread

# %% [markdown]
# A single fine-tuning run on a small training set is one draw from this spread. Reporting it alone
# (or, worse, the best of several seeds) says little; report the mean and standard deviation over at
# least three seeds, and compare methods seed by seed when they share seeds
# (`experiments.paired_difference`, chapter 3).
#
# (sec-learning-curve)=
# ## The learning curve: what pretraining is worth, in labelled examples
#
# The book's central result. For each method and training-set size, the mean test accuracy over seeds,
# with error bars of one standard deviation:

# %%
summary = evaluation.curve_summary(curve, "accuracy")
print(f"test accuracy (mean ± std over {N_SEEDS} seeds) on {len(test_y)} test reviews, config {cfg.name}")
curve_table = pd.DataFrame({m: [f"{summary.loc[(m, n), 'mean']:.3f} ± {summary.loc[(m, n), 'std']:.3f}" for n in SIZES]
                            for m in methods}, index=pd.Index(SIZES, name="training reviews"))
ft_steps = curve[curve["method"] == "fine-tuned"].groupby("n")["steps"].first()
curve_table["fine-tuning steps"] = [int(ft_steps[n]) for n in SIZES]
curve_table

# %% [markdown]
# (fig-learning-curve)=
# **The learning curve** (next figure): mean test accuracy against the number of labelled training
# reviews, log scale, error bars one standard deviation over seeds; the dashed line is the majority class.

# %%
fig = plotting.plot_train_size_curve(summary, title="Test accuracy against labelled training examples (Rotten Tomatoes)",
                                     chance=majority_accuracy)
plt.show()

# %% tags=["nbval-check-output"]
for n in SIZES:
    need = evaluation.examples_to_match(summary, "random init", "fine-tuned", n)
    tfidf_need = evaluation.examples_to_match(summary, "TF-IDF", "fine-tuned", n)
    say = lambda k: f"{k:,} examples" if k is not None else f"more than {SIZES[-1]:,} (not reached)"
    print(f"to match fine-tuning on {n:>5,} examples: random init needs {say(need)}; TF-IDF needs {say(tfidf_need)}")

# %% [markdown]
# Is each lead larger than what reseeding moves? The book's rule (`evaluation.verdict`, the one the
# results page applies): a method beats a baseline when its mean over seeds is ahead by more than its
# spread (max − min) over those seeds.

# %%
seed_accuracies = curve.groupby(["method", "n"])["accuracy"].apply(list)  # one list per (method, size)
for n in SIZES:
    tfidf_mean = float(np.mean(seed_accuracies[("TF-IDF", n)]))
    for method in ("fine-tuned", "linear probe"):
        verdict = evaluation.verdict(seed_accuracies[(method, n)], tfidf_mean)
        print(f"{n:>5,} reviews, {method:<12} against TF-IDF ({tfidf_mean:.3f}): {verdict}")

# %% tags=["remove-cell", "claims"]
# Claims in the text below: fine-tuning beats random init at every size; at the smallest size both
# methods on pretrained weights are above the majority class and above TF-IDF and random init.
m = summary["mean"]
assert all(m[("fine-tuned", n)] > m[("random init", n)] for n in SIZES), m
small = {k: m[(k, SIZES[0])] for k in methods}
assert min(small["fine-tuned"], small["linear probe"]) > majority_accuracy + 0.02, small
assert min(small["fine-tuned"], small["linear probe"]) > max(small["TF-IDF"], small["random init"]), small


# %% tags=["remove-cell"]
# For the results page (book/results.md): each method at each size of the learning curve over its seeds, against TF-IDF at that size.
for (method, n), group in curve.groupby(["method", "n"], sort=False):
    if method == "TF-IDF":
        continue
    results.record(task=f"sentiment (rotten_tomatoes), {n} training reviews: {method}", metric="test accuracy",
                   scores=group["accuracy"].tolist(), baseline="TF-IDF + logistic regression",
                   baseline_score=seed_accuracies[("TF-IDF", n)],
                   config=cfg.name, seconds=group["seconds"].sum())

# %% [markdown]
# Read the figure from left to right. With the fewest labelled reviews only the two methods built on
# pretrained weights (fine-tuning and the probe) are above the majority class and ahead of the others;
# TF-IDF and the randomly initialised transformer have too few examples to learn which words matter,
# let alone English. At every size the fine-tuned model is ahead of the same architecture trained from
# random weights. Both transformer arms start from a head fitted as a probe on their training reviews
# (LP-FT) and then take the optimizer steps in the table's last column, at the small learning rate
# printed under the set-up cell; at the smallest size that is a handful of steps, so there the
# fine-tuned arm is close to the linear probe, and the curve measures fine-tuning proper only where the
# steps grow. "How many labelled examples does pretraining save?" is answered by the printed
# lines: for each size, the smallest measured training set on which random init (or TF-IDF) matches
# the fine-tuned model, or "not reached" when no size we ran gets there, on this task and budget; we
# do not extrapolate beyond the largest size. The verdict lines hold the two pretrained arms to the
# book's rule: with three seeds and a few hundred reviews at most, the spread is several points, so an
# arm can be ahead on average and still not clear TF-IDF by more than its spread; where a line says
# so, the lead at that size is within what reseeding moves (the results page marks the same rows), and
# which sizes those are changes with `SEED`. The linear probe shows how much of the benefit is in the frozen
# features alone; the difference between it and fine-tuning is what adapting the weights adds, or costs,
# on such short runs (chapter 2 compares the two). The `gpu` configuration extends the curve to
# thousands of reviews; rerun it there to see how far the cheaper methods climb.
#
# (sec-choosing-a-model)=
# ## Choosing a pretrained model: quality beside cost
#
# Which pretrained model should a reader with the Hugging Face hub pick? Bigger is not automatically
# better for a given task and budget. We compare the book's two models on the same classification task:
# MiniLM, a 22.7M-parameter encoder distilled for sentence embeddings {cite}`wang2020minilm`,
# {cite}`reimers2019sbert`, and SmolLM2-135M, a 135M-parameter instruction-tuned decoder
# {cite}`allal2025smollm2`, plus MiniLM's architecture with random weights. Each is used as a frozen
# feature extractor with a linear probe (fine-tuning SmolLM2 is out of a CPU's budget), on the same
# training and test reviews, and we time the forward pass per review.

# %%
choice_idx = evaluation.stratified_subset(train_y, cfg.chapter.choice_train, seed=cfg.seed)
n_choice_test = cfg.chapter.choice_test or len(test_y)
choice_texts = list(reviews["train"].select(choice_idx)["text"]) + reviews["test"]["text"][:n_choice_test]
choice_y = np.concatenate([train_y[choice_idx], test_y[:n_choice_test]])
candidates = {"MiniLM (pretrained)": (cfg.encoder, True), "MiniLM (random init)": (cfg.encoder, False),
              "SmolLM2-135M (pretrained)": (cfg.decoder, True)}
choice_rows, choice_predictions = [], {}
for name, (model_name, pretrained) in candidates.items():
    model, tok = models.load(model_name, "base", pretrained=pretrained)
    model.to(device)
    vectors = []
    per_review = evaluation.seconds_per_example(
        lambda: vectors.append(models.mean_pooled_features(model, tok, choice_texts, max_length=cfg.max_length)),
        len(choice_texts))
    x = vectors[0]
    k = len(choice_idx)
    pred = LogisticRegression(C=0.1, max_iter=2000).fit(x[:k], choice_y[:k]).predict(x[k:])
    choice_predictions[name] = pred
    choice_rows.append((name, sum(p.numel() for p in model.parameters()) / 1e6, 1000 * per_review,
                        metrics.accuracy(pred, choice_y[k:]), x.shape[1]))
    del model
choice = pd.DataFrame(choice_rows, columns=["model", "parameters (M)", "ms per review (forward)",
                                            "probe test accuracy", "vector size"]).set_index("model")
print(f"linear probe (C=0.1) on {len(choice_idx)} training reviews, scored on {n_choice_test} test reviews; "
      f"max {cfg.max_length} tokens, device {device}")
choice.round(3)

# %% tags=["nbval-check-output"]
mini_acc, smol_acc = choice.loc["MiniLM (pretrained)", "probe test accuracy"], choice.loc["SmolLM2-135M (pretrained)", "probe test accuracy"]
smol_minus_mini = evaluation.paired_bootstrap(metrics.accuracy, choice_predictions["SmolLM2-135M (pretrained)"],
                                               choice_predictions["MiniLM (pretrained)"], choice_y[k:],
                                               n_resamples=N_BOOTSTRAP, seed=cfg.seed)
interval = f"paired bootstrap 95% interval of SmolLM2 - MiniLM [{smol_minus_mini['low']:+.3f}, {smol_minus_mini['high']:+.3f}]"
cost_ratio = choice.loc["SmolLM2-135M (pretrained)", "ms per review (forward)"] / choice.loc["MiniLM (pretrained)", "ms per review (forward)"]
if smol_minus_mini["low"] <= 0 <= smol_minus_mini["high"]:
    verdict = f"the two probes differ by {smol_acc - mini_acc:+.3f}, within the {interval}: MiniLM gives the same quality"
elif mini_acc > smol_acc:
    verdict = f"MiniLM's probe is {mini_acc - smol_acc:.3f} more accurate ({interval})"
else:
    verdict = f"SmolLM2's probe is {smol_acc - mini_acc:.3f} more accurate ({interval})"
print(f"{verdict}; SmolLM2 costs {cost_ratio:.1f}x MiniLM's time per review")

# %% [markdown]
# (tab-choose-model)=
# The fine-tuned MiniLM from the learning curve adds the quality of adapting every weight, at a
# training cost measured in the same runs:

# %% tags=["nbval-check-output"]
ft_mid = curve[(curve["method"] == "fine-tuned")]
per_example_train = (ft_mid["train_seconds"] / (ft_mid["n"] * ft_mid["epochs"])).median()
print(f"fine-tuning MiniLM: median {1000 * per_example_train:.0f} ms per training review and epoch "
      f"(forward + backward + update), device {device}")
mid = SIZES[len(SIZES) // 2]
print(f"fine-tuned MiniLM on {mid} reviews: test accuracy {summary.loc[('fine-tuned', mid), 'mean']:.3f} "
      f"(mean of {N_SEEDS} seeds, full test set)")

# %% tags=["remove-cell", "claims"]
# Claims: SmolLM2 has > 5x the parameters of MiniLM and costs more time per review; pretrained MiniLM
# features beat random-init features clearly.
mini, rand, smol = (choice.loc[n] for n in candidates)
assert smol["parameters (M)"] > 5 * mini["parameters (M)"], choice
assert smol["ms per review (forward)"] > mini["ms per review (forward)"], choice
assert mini["probe test accuracy"] > rand["probe test accuracy"] + 0.03, choice

# %% [markdown]
# SmolLM2 has six times the parameters of MiniLM and costs more per review; the verdict printed above
# weighs its probe accuracy against MiniLM's, with the bootstrap interval deciding whether a difference
# is real. MiniLM was trained precisely to produce sentence vectors; SmolLM2 to continue and answer text.
# Pretrained MiniLM's features beat its random-weight twin's clearly.
#
# (sec-choosing-generation)=
# ### The same choice on a generation task
#
# Translation turns the comparison around. The task is chapter 5's: Django's English interface strings
# into French, scored with chrF {cite}`popovic2015chrf` on held-out strings. The candidates are MiniLM;
# SmolLM2 used as it is, with a plain prompt (`English: ... French:`); SmolLM2 after chapter 5's
# fine-tuning recipe (LoRA adapters {cite}`hu2022lora` in its top eight blocks, learning rate 1e-3);
# and SmolLM2's architecture with random weights, every weight trained for the same number of steps
# (a from-scratch model gets no adapters: it has nothing to adapt).

# %%
pairs = data.load("django_po", n_train=cfg.chapter.translation_train, n_validation=8,
                  n_test=cfg.chapter.translation_test, seed=cfg.seed)
sources, references = list(pairs["test"]["source"]), list(pairs["test"]["target"])
try:
    models.load(cfg.encoder, "causal-lm")
except ValueError as error:
    print(f"MiniLM: {error}")


def chrf(predictions, refs) -> float:
    return metrics.chrf(list(predictions), list(refs))["chrf"]


def translate_and_time(model, tokenizer):
    """Greedy translations of the test sources, and the seconds each took on average."""
    started = time.perf_counter()
    out = generation.translate(model.to(device), tokenizer, sources, max_new_tokens=cfg.chapter.new_tokens)
    return out, (time.perf_counter() - started) / len(sources)


def train_translator(make_model, tokenizer, learning_rate):
    """`recipes.fine_tune` of a fresh `make_model(seed)` on the training pairs."""
    features = generation.causal_lm_features(list(pairs["train"]["source"]), list(pairs["train"]["target"]),
                                             tokenizer, cfg.chapter.translation_max_length)
    return recipes.fine_tune(make_model, features, tokenizer=tokenizer, config=trainer.TrainingConfig.from_book_config(
        cfg, batch_size=8, learning_rate=learning_rate, epochs=cfg.chapter.translation_epochs,
        eval_strategy="no", progress=False))


translations, generation_rows = {}, []
decoder, decoder_tokenizer = models.load(cfg.decoder, "causal-lm")
n_decoder = sum(p.numel() for p in decoder.parameters())
top_blocks = range(decoder.config.num_hidden_layers - 8, decoder.config.num_hidden_layers)
translations["SmolLM2, prompt only"], per_string = translate_and_time(decoder, decoder_tokenizer)
generation_rows.append(("SmolLM2-135M (pretrained)", "none: prompt only", 0, 0.0, per_string))
del decoder


def decoder_with_lora(seed):
    return lora.add_lora(models.load(cfg.decoder, "causal-lm", seed=seed)[0], r=16, alpha=32, layers=top_blocks,
                         target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"))


lora_run = train_translator(decoder_with_lora, decoder_tokenizer, learning_rate=1e-3)
lora_result = lora_run.result
translations["SmolLM2 + LoRA"], per_string = translate_and_time(lora_run.model, decoder_tokenizer)
generation_rows.append(("SmolLM2-135M (pretrained)", f"LoRA, {lora_result.global_step} steps",
                        lora.trainable_parameters(lora_run.model)[0], lora_result.train_runtime_s, per_string))
del lora_run

scratch_run = train_translator(lambda seed: models.load(cfg.decoder, "causal-lm", pretrained=False, seed=seed)[0],
                               decoder_tokenizer, learning_rate=1e-3)
scratch_result = scratch_run.result
translations["random init, trained"], per_string = translate_and_time(scratch_run.model, decoder_tokenizer)
generation_rows.append(("SmolLM2-135M (random init)", f"every weight, {scratch_result.global_step} steps",
                        n_decoder, scratch_result.train_runtime_s, per_string))
del scratch_run

generation_choice = pd.DataFrame(generation_rows, columns=["model", "training", "trained parameters (M)",
                                                           "training time (s)", "ms per string"])
generation_choice["trained parameters (M)"] /= 1e6
generation_choice["ms per string"] *= 1000
generation_choice["chrF"] = [chrf(t, references) for t in translations.values()]
generation_choice.index = list(translations)
print(f"{len(pairs['train'])} training pairs, {len(sources)} test strings, greedy decoding of up to "
      f"{cfg.chapter.new_tokens} tokens, device {device}; SmolLM2 has {n_decoder / 1e6:.1f}M parameters")
generation_choice.round(2)

# %%
lora_gain = evaluation.paired_bootstrap(chrf, translations["SmolLM2 + LoRA"], translations["SmolLM2, prompt only"],
                                        references, n_resamples=N_BOOTSTRAP, seed=cfg.seed)
print(f"chrF of LoRA minus prompt only: {lora_gain['difference']:+.1f}, 95% paired bootstrap interval "
      f"[{lora_gain['low']:+.1f}, {lora_gain['high']:+.1f}]")
pd.DataFrame({"English": sources, "reference": references, **translations}).head(5)

# %% tags=["remove-cell", "claims"]
# Claims: MiniLM cannot generate (load refuses causal-lm); the pretrained decoder, prompted or with LoRA,
# writes far more French than the from-scratch one (chrF at least 10 higher), which produces no usable
# French (chrF < 5) although it trained every weight (over 100x LoRA's trained parameters) for the same steps.
# (LoRA over the prompt alone: its paired interval straddled zero for SEED 1, so the text makes no claim.)
chrf_of = generation_choice["chrF"]
assert min(chrf_of["SmolLM2, prompt only"], chrf_of["SmolLM2 + LoRA"]) > chrf_of["random init, trained"] + 10, generation_choice
assert chrf_of["random init, trained"] < 5, generation_choice
assert generation_choice.loc["SmolLM2 + LoRA", "trained parameters (M)"] < 0.01 * n_decoder / 1e6, generation_choice
# (No claim on training time: wall-clock seconds on a shared CPU can invert; the table shows them.)
assert scratch_result.global_step == lora_result.global_step, (scratch_result.global_step, lora_result.global_step)

# %% [markdown]
# The encoder is out before the race starts: MiniLM has no language-modelling head and reads every
# token in both directions, so it has no way to write a sentence left to right; `models.load` refuses
# the task. The pretrained decoder translates a little with a prompt alone. A short LoRA training on a
# hundred pairs, under 1% of its weights, changes chrF by the paired interval printed above: on 24 test
# strings after 24 steps that gain is small and not reliable -- with some seeds the interval lies
# above zero, with others it straddles it. Neither
# is a translator you would ship -- read the examples -- because 135M parameters and a hundred pairs
# are very little; the `gpu` configuration trains on every pair. The same architecture from random
# weights, with every weight trained for the same steps (over a hundred times LoRA's trained
# parameters), produces no French at all -- it has learnt neither language nor the format.
# Generation is where pretraining is most obviously indispensable: the model must already know the
# language it writes.
#
# The practical rules, for a reader with the hub:
#
# * **Understanding tasks** (classification, NER, extractive QA): start with an encoder of the BERT
#   family {cite}`devlin2019bert` of a size your budget can fine-tune several times (seeds, a learning-rate
#   sweep): MiniLM or DistilBERT-size on a CPU, BERT-base or DeBERTa-v3-base on a GPU. Bidirectional
#   attention sees the whole sentence at every token.
# * **Generation tasks** (translation, summarisation, dialogue): a decoder of the GPT family
#   {cite}`radford2019gpt2` (or an encoder-decoder such as T5), pretrained on the language you generate
#   ({ref}`the translation comparison <sec-choosing-generation>`); LoRA makes adapting one cheap.
# * **Match the pretraining data** to yours (language, domain: tweets, biomedical, code), and prefer a
#   model that was already tuned for a related objective (sentence similarity, instructions).
# * **Measure cost beside quality**, as in the table: parameters, time per example, memory. A model
#   you can afford to run three times with three seeds beats one you can run once.
# * Decide with a learning curve on *your* data: a few hundred labelled examples and an afternoon tell
#   you more than any leaderboard.
#
# (sec-trends)=
# ## Trends and challenges
#
# **Parameter-efficient fine-tuning.** Instead of updating every weight, train a small number of new
# ones: adapters {cite}`houlsby2019adapters` or low-rank updates (LoRA {cite}`hu2022lora`). One base
# model then serves many tasks, each a few megabytes; chapter 5 ({ref}`ch-applications`) applies LoRA.
#
# **Instruction tuning.** Fine-tuning on many tasks phrased as instructions {cite}`wei2022flan` turns a
# pretrained language model into one that follows new instructions without task-specific training;
# SmolLM2-Instruct, the decoder of this book, is such a model. Its chat template is part of the
# tokenizer:

# %% tags=["nbval-check-output"]
_, smol_tokenizer = models.load(cfg.decoder, "causal-lm")
prompt = smol_tokenizer.apply_chat_template(
    [{"role": "user", "content": "Is this review positive or negative? 'A warm, funny film.'"}],
    tokenize=False, add_generation_prompt=True)
print(prompt)

# %% [markdown]
# **Cross-modal transfer.** The recipe of this book (pretrain on much unlabelled data, fine-tune on a
# little labelled data) carries over to images, audio and their combinations: CLIP {cite}`radford2021clip`
# learns a shared text-image space from captions and transfers to image classification without labels.
#
# (sec-membership-inference)=
# **Privacy: what a fine-tuned model memorises.** A model that fits its training examples better than
# unseen ones leaks which examples it was trained on: the *membership inference* attack
# {cite}`shokri2017membership` guesses "member" when the loss on an example is low. Its AUC is 0.5 when
# the loss says nothing and 1.0 when it reveals membership perfectly. Every fine-tuning run of the
# learning curve measured it, on some of its training reviews against as many test reviews:

# %%
neural = curve[curve["method"].isin(["fine-tuned", "random init"])]
mi = (neural.groupby(["method", "n"], sort=False)
      .agg(epochs=("epochs", "first"), steps=("steps", "first"), member_loss=("member_loss", "mean"),
           nonmember_loss=("nonmember_loss", "mean"), auc_before_steps=("mi_auc_before", "mean"),
           attack_auc=("mi_auc", "mean"), attack_auc_std=("mi_auc", "std")))
print(f"loss-threshold membership inference, mean over {N_SEEDS} seeds (losses in nats); auc_before_steps: the "
      "same attack on the starting point, a head fitted on the members as a probe, before any training step")
mi.round(3).astype({"epochs": int, "steps": int})  # counts as integers (TF-IDF rows made the columns float)

# %% tags=["remove-cell", "claims"]
# Claim: the fine-tuned model's training reviews have a lower mean loss than unseen reviews at every size,
# and the attack does better than chance (AUC > 0.5) at the smallest size, where the model saw each
# review most often.
ft_mi = mi.loc["fine-tuned"]
assert (ft_mi["member_loss"] < ft_mi["nonmember_loss"]).all(), ft_mi
assert ft_mi.loc[SIZES[0], "attack_auc"] > 0.5, ft_mi
# and the head fitted on the members leaks before any training step, on pretrained and random vectors alike.
assert all(mi.loc[(arm, SIZES[0]), "auc_before_steps"] > 0.6 for arm in ("fine-tuned", "random init")), mi

# %% [markdown]
# The fine-tuned classifier's loss is lower on its own training reviews than on unseen ones, so the
# attack does better than a coin flip. Read the `auc_before_steps` column before blaming the
# fine-tuning steps: both transformer arms start from a logistic head fitted on the very reviews the
# attack calls members, and that head alone already separates members from non-members, even on the
# vectors of a random encoder. Memorisation is a property of everything fitted on the private data,
# the head included, not of gradient steps through the encoder only. These are short runs; training
# to convergence, as real projects do, memorises more. Fine-tuning on private data (e-mails, medical notes) therefore
# needs care: fewer epochs, regularisation such as chapter 3's L2-SP, or differentially private
# training, and never publishing per-example scores. Larger models memorise more, and
# generative models can even reproduce training text verbatim {cite}`carlini2021extracting`.
#
# ## Summary
#
# * Pick the metric that matches the cost of mistakes and always print a trivial baseline next to it:
#   accuracy flatters a do-nothing spam filter, token accuracy a tagger that finds no entity.
# * A test score needs an interval: the bootstrap over test examples (paired, when comparing two models on
#   the same examples), and the spread over seeds, which on small data is of the same order.
# * A fair comparison uses the same split, the same budget, tuned baselines and several seeds.
# * The learning curve is the answer to "why transfer learning": on a few hundred labelled reviews, the
#   pretrained model is ahead of the same architecture from scratch at every size measured; the printed
#   lines say how many examples (if any, within the range) the other methods need to catch up.
# * Choose a model by quality *and* cost on your own data: parameters and time per example beside the
#   accuracy, with an interval. For generation the encoder is out altogether, and a decoder trained
#   from random weights produced no French where the pretrained one, prompted or adapted, wrote some.
# * Fine-tuned models leak membership through their loss; budget for privacy when the data are private.
#
# The FAQ ({doc}`/book/09_faq`) collects the article's questions with links to the evidence.
#
# ## Exercises
#
# :::{exercise} A bootstrap interval
# :label: ex-eval-1
#
# Write `bootstrap_accuracy_ci(correct, n_resamples, seed)` that takes a 0/1 array (1 = the model was
# right on that test example) and returns the 95 % percentile interval `(low, high)` of the accuracy.
# Check it with `ftutils.checks.check_bootstrap_ci(bootstrap_accuracy_ci)`, then apply it to the
# fine-tuned model's predictions above and compare with `evaluation.bootstrap_ci`.
# :::
#
# :::{solution} ex-eval-1
# :class: dropdown
#
# ```python
# def bootstrap_accuracy_ci(correct, n_resamples=1000, seed=0):
#     correct = np.asarray(correct)
#     rng = np.random.default_rng(seed)
#     means = [correct[rng.integers(0, len(correct), len(correct))].mean() for _ in range(n_resamples)]
#     return tuple(np.quantile(means, [0.025, 0.975]))
#
# print(checks.check_bootstrap_ci(bootstrap_accuracy_ci))
# correct = np.array(largest.loc["fine-tuned", "test_predictions"]) == test_y
# print(bootstrap_accuracy_ci(correct), intervals["fine-tuned"])
# ```
# Resampling *without* replacement (a permutation) returns the same accuracy every time: the interval
# collapses to a point. The check recognises that mistake.
# :::
#
# :::{exercise} The membership attack's AUC
# :label: ex-eval-2
#
# Write `attack_auc(member_losses, nonmember_losses)`, the AUC of the loss-threshold membership
# attack (the probability that a random member has a *lower* loss than a random non-member, ties
# counting half), and check it with `ftutils.checks.check_membership_auc(attack_auc)`.
# :::
#
# :::{solution} ex-eval-2
# :class: dropdown
#
# ```python
# def attack_auc(member_losses, nonmember_losses):
#     m = np.asarray(member_losses)[:, None]
#     o = np.asarray(nonmember_losses)[None, :]
#     return float((m < o).mean() + 0.5 * (m == o).mean())
#
# print(checks.check_membership_auc(attack_auc))
# ```
# The pairwise comparison is $O(n^2)$ in memory; `evaluation.auc` does the same with ranks.
# :::
#
# :::{exercise} Extend the learning curve
# :label: ex-eval-3
#
# Rerun the chapter with `-p SIZES '[40, 120, 360, 1080]'` (several times the time). Does random
# init reach the fine-tuned model's accuracy at 40 reviews now? Use `evaluation.examples_to_match` and
# report only what your numbers support.
# :::
#
# :::{solution} ex-eval-3
# :class: dropdown
#
# Typically not: on cpu-tiny's short runs the random-init transformer stays near the majority class even
# with a thousand reviews, so the answer stays "more than the largest size measured". TF-IDF climbs
# steadily as reviews are added. (A size larger than the configuration's pool of training reviews
# enlarges the pool, which changes every run's cache key, so all sizes train again.)
# :::
#
# :::{exercise} Tune the from-scratch baseline
# :label: ex-eval-4
#
# The random-init baseline was not tuned. Give it a fair chance: train it at the largest size with
# learning rates `[1e-4, 3e-4, 1e-3]` (pass `dataclasses.replace(train_config, learning_rate=lr)` to
# `evaluation.finetune_method`), choose the best on the validation reviews, and report its test accuracy
# with a bootstrap interval. Does tuning change the conclusion of the learning curve?
# :::
#
# :::{solution} ex-eval-4
# :class: dropdown
#
# A from-scratch transformer usually wants a larger learning rate than fine-tuning, and gains a few
# points with it, but a few hundred reviews are far too few to learn a language; the gap to the
# pretrained model shrinks by less than the width of the intervals. This is why the protocol calls for
# tuned baselines: a claim that survives tuning the baseline is a stronger claim.
# :::
