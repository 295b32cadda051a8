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
# (ch-core-concepts)=
# # Core concepts: pretrained models, transfer, fine-tuning
#
# This chapter puts the vocabulary of the book on real objects. We load two pretrained language
# models that fit on a laptop, an **encoder** (all-MiniLM-L6-v2, BERT-style {cite}`devlin2019bert,wang2020minilm`)
# and a **decoder** (SmolLM2-135M, Llama-style {cite}`allal2025smollm2`), and compare how they cut
# text into tokens, where their parameters sit and what they predict. Then we use the encoder on film
# reviews {cite}`pang2005seeing` to see what **transfer learning** buys, and contrast the two ways of
# using a pretrained model for a task: **feature extraction** (freeze it, train a small classifier on
# its outputs) and **fine-tuning** (train everything, starting from the pretrained weights).

# %% tags=["parameters"]
CONFIG = "cpu-tiny"  # "cpu-tiny" (offline, CPU, minutes) or "gpu" (full data)
SEED = 0  # seeds every random draw: the review sample, new weights, shuffling, dropout
PROJECTION = "pca"  # how reviews are drawn in 2-D: "pca" or "tsne"
FINETUNE_EPOCHS = 1  # passes over the training reviews in the fine-tuning demo
FINETUNE_EXAMPLES = 500  # training reviews the demo fine-tunes on; None means every training review of the config

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE

from ftutils import chapter, data, models, plotting, results

chapter.check("FINETUNE_EPOCHS", FINETUNE_EPOCHS, kind=int, minimum=1)
cfg = chapter.start(CONFIG, SEED, chapter="02", epochs=FINETUNE_EPOCHS)  # sizes: ftutils.config.CHAPTERS
chapter.check("PROJECTION", PROJECTION, choices=("pca", "tsne"))
chapter.check("FINETUNE_EXAMPLES", FINETUNE_EXAMPLES, kind=int, minimum=1, allow_none=True)
device = "cuda" if torch.cuda.is_available() else "cpu"
print(f"config {cfg.name}, seed {cfg.seed}: encoder {cfg.encoder}, decoder {cfg.decoder}, device {device}")

# %% [markdown]
# ## Two pretrained language models
#
# `ftutils.models.load(name, task)` returns a model and its tokenizer. The task `"base"` gives the
# encoder without any head; `"causal-lm"` gives the decoder with its next-token head.
#
# Offline, the decoder's weights come from a registry package as a **4-bit GGUF file** (Q4_1: blocks of
# 32 weights share a scale and an offset) of the instruction-tuned SmolLM2-135M-Instruct. `ftutils`
# dequantises it once to an fp32 folder, so every chapter starts from the *quantised* model, slightly
# off the original bf16 checkpoint: its predictions are close to, not identical with, those of
# `HuggingFaceTB/SmolLM2-135M-Instruct` on the hub.

# %%
encoder, enc_tok = models.load(cfg.encoder, "base")
decoder, dec_tok = models.load(cfg.decoder, "causal-lm")
encoder.eval().to(device)
decoder.eval().to(device)
print(models.describe(encoder))
print(models.describe(decoder))

# %% [markdown]
# ### Tokenisation
#
# Neither model reads characters or whole words. Each has a fixed vocabulary of sub-word pieces learned
# from its pretraining corpus, and a tokenizer that splits text into them. The encoder's WordPiece
# vocabulary is lower-cased and marks a piece that continues a word with `##`; the decoder's byte-level
# BPE keeps case and marks a piece that *starts* after a space with `Ġ`.

# %% tags=["nbval-check-output"]
sentence = "An unpretentious, charming film about friendship."
enc_tokens = enc_tok.tokenize(sentence)
dec_tokens = dec_tok.tokenize(sentence)
print(f"encoder ({len(enc_tokens)} tokens, vocabulary {enc_tok.vocab_size:,}):", enc_tokens)
print(f"decoder ({len(dec_tokens)} tokens, vocabulary {dec_tok.vocab_size:,}):", dec_tokens)

# %% [markdown]
# ### Where the parameters are
#
# `models.count_parameters` groups the weights by block: the token embeddings, each Transformer layer,
# and what comes after the last layer.

# %% tags=["nbval-check-output"]
enc_blocks = models.count_parameters(encoder)
dec_blocks = models.count_parameters(decoder)


def summarise_blocks(blocks: dict[str, int]) -> dict[str, int]:
    """Embeddings / all layers / the rest, from per-block counts."""
    layers = sum(n for name, n in blocks.items() if ".layer" in name)
    embeddings = sum(n for name, n in blocks.items() if "embed" in name)
    return {"embeddings": embeddings, "layers": layers, "other": sum(blocks.values()) - layers - embeddings}


for label, blocks in (("encoder", enc_blocks), ("decoder", dec_blocks)):
    parts = summarise_blocks(blocks)
    total = sum(parts.values())
    shares = ", ".join(f"{k} {v / 1e6:.2f}M ({v / total:.0%})" for k, v in parts.items())
    n_layers = sum(1 for name in blocks if ".layer" in name)
    print(f"{label}: {total:,} parameters in {n_layers} layers; {shares}")

# %%
fig = plotting.plot_parameter_blocks({"encoder: all-MiniLM-L6-v2": enc_blocks, "decoder: SmolLM2-135M": dec_blocks})
plt.show()

# %% tags=["remove-cell"]
# The text below says: token embeddings are the largest single block of both models, and a bigger share
# of the small encoder than of the decoder.
enc_parts, dec_parts = summarise_blocks(enc_blocks), summarise_blocks(dec_blocks)
assert max(enc_blocks, key=enc_blocks.get).endswith("word_embeddings"), enc_blocks
assert max(dec_blocks, key=dec_blocks.get).endswith("embed_tokens"), dec_blocks
assert enc_parts["embeddings"] / sum(enc_parts.values()) > dec_parts["embeddings"] / sum(dec_parts.values())
assert decoder.config.hidden_size / encoder.config.hidden_size == 1.5, (decoder.config.hidden_size, encoder.config.hidden_size)
assert decoder.config.num_hidden_layers == 5 * encoder.config.num_hidden_layers

# %% [markdown]
# In both models the single largest block is the token-embedding matrix (one vector per vocabulary
# entry), and it is a larger share of the small encoder than of the decoder: a small model spends much
# of its budget just on *naming* tokens. Each Transformer layer of the decoder is 1.5 times as wide
# (hidden size 576 against 384) and there are five times as many of them (30 against 6).
#
# ### What each model predicts
#
# The encoder returns one vector per token, computed from the whole sentence in both directions. This
# checkpoint was trained to make sentence vectors useful for similarity, so it has no head that predicts
# words. The decoder returns, at every position, a score for each of its 49,152 vocabulary entries:
# a distribution over the *next* token.

# %% tags=["nbval-check-output"]
with torch.inference_mode():
    enc_in = enc_tok(sentence, return_tensors="pt").to(device)
    enc_out = encoder(**enc_in).last_hidden_state
    prompt = "The film was"
    dec_in = dec_tok(prompt, return_tensors="pt").to(device)
    logits = decoder(**dec_in).logits
print("encoder output:", tuple(enc_out.shape), "= (sentences, tokens incl. [CLS] and [SEP], hidden size)")
print("decoder output:", tuple(logits.shape), "= (sentences, tokens, vocabulary)")

# %%
probs = logits[0, -1].float().softmax(-1)
top = probs.topk(5)
print(f"next token after {prompt!r}:")
for p, i in zip(top.values.tolist(), top.indices.tolist()):
    print(f"  {dec_tok.decode([i])!r:>14}  p = {p:.3f}")

# %% [markdown]
# Because the encoder reads the context, the same word gets a different vector in different sentences.
# Here is the cosine similarity of the vector for *light* in two sentences (a static word embedding
# such as word2vec would give exactly 1):

# %%
def token_vector(text: str, word: str) -> torch.Tensor:
    """The encoder's output vector for the first token of ``word`` in ``text``."""
    batch = enc_tok(text, return_tensors="pt").to(device)
    position = batch["input_ids"][0].tolist().index(enc_tok.convert_tokens_to_ids(word))
    with torch.inference_mode():
        return encoder(**batch).last_hidden_state[0, position]


light_a = token_vector("a light and breezy comedy", "light")
light_b = token_vector("the light in the old cinema went out", "light")
light_similarity = torch.nn.functional.cosine_similarity(light_a, light_b, dim=0).item()
print(f"cosine similarity of 'light' in the two sentences: {light_similarity:.2f}")

# %% tags=["remove-cell", "claims"]
assert light_similarity < 0.95, light_similarity

# %% [markdown]
# ## Transfer learning on real reviews
#
# The task for the rest of the chapter: is a Rotten Tomatoes review snippet *fresh* (positive) or
# *rotten* (negative)? `ftutils.data.load` returns seeded, de-duplicated splits.

# %% tags=["nbval-check-output"]
reviews = data.load_for("rotten_tomatoes", cfg)
label_names = reviews["train"].features["label"].names
print(data.describe(reviews))

# %% [markdown]
# **Transfer learning** means reusing what a model learned on one problem (here: predicting masked
# words and matching similar sentences on large corpora) for another (sentiment). The simplest way is
# **feature extraction**: run the frozen encoder, average its token vectors into one vector per review
# (*mean pooling*, as this checkpoint was trained), and fit a logistic regression on those vectors.
# Only the classifier's $384 \times 2 + 2 = 770$ numbers are learned.
#
# To see what the *pretraining* contributes, we do exactly the same with an encoder of the same
# architecture whose weights are random (`pretrained=False`).

# %%
def embed(model: torch.nn.Module, tokenizer, texts: list[str]) -> np.ndarray:
    """Mean-pooled last-layer vectors, one row per text: the average of the token vectors, padding excluded."""
    return models.mean_pooled_features(model, tokenizer, texts, max_length=cfg.max_length)


def probe_accuracy(train_x: np.ndarray, test_x: np.ndarray) -> float:
    """Accuracy on the test reviews of a logistic regression fitted on frozen features."""
    probe = LogisticRegression(max_iter=2000, C=1.0).fit(train_x, train_y)
    return float((probe.predict(test_x) == test_y).mean())


train_texts, train_y = reviews["train"]["text"], np.array(reviews["train"]["label"])
test_texts, test_y = reviews["test"]["text"], np.array(reviews["test"]["label"])
started = time.perf_counter()
pretrained_train, pretrained_test = embed(encoder, enc_tok, train_texts), embed(encoder, enc_tok, test_texts)
random_encoder, _ = models.load(cfg.encoder, "base", pretrained=False)
random_encoder.to(device)
random_train, random_test = embed(random_encoder, enc_tok, train_texts), embed(random_encoder, enc_tok, test_texts)
print(f"embedded {len(train_texts) + len(test_texts):,} reviews twice in {time.perf_counter() - started:.0f} s")

# %%
majority = float((test_y == np.bincount(train_y).argmax()).mean())
acc_pretrained = probe_accuracy(pretrained_train, pretrained_test)
acc_random = probe_accuracy(random_train, random_test)
print(f"test accuracy, always the majority class:      {majority:.2f}")
print(f"test accuracy, probe on random-encoder vectors: {acc_random:.2f}")
print(f"test accuracy, probe on pretrained vectors:     {acc_pretrained:.2f}")

# %% tags=["remove-cell", "claims"]
# Claim in the text: the pretrained features beat random features by a wide margin (>= 10 points),
# and random features are barely better than guessing the majority class (< 10 points above it).
assert acc_pretrained >= acc_random + 0.10, (acc_pretrained, acc_random)
assert acc_random < majority + 0.10, (acc_random, majority)

# %% [markdown]
# The same architecture and the same 770-parameter classifier: with random weights the vectors carry
# little the classifier can use, and accuracy stays within a few points of always answering the
# majority class; with pretrained weights the frozen vectors already separate fresh from rotten well.
# That difference is what pretraining transferred. The picture below shows it: each dot is a test
# review, placed by a 2-D projection of its 384-dimensional vector and coloured by its true label.

# %%
def project(x: np.ndarray) -> np.ndarray:
    if PROJECTION == "tsne":
        return TSNE(n_components=2, init="pca", perplexity=30, random_state=cfg.seed).fit_transform(x)
    return PCA(n_components=2, random_state=cfg.seed).fit_transform(x)


def scatter_by_label(ax, points: np.ndarray, title: str) -> None:
    for label, color in ((0, "tab:red"), (1, "tab:green")):
        chosen = test_y == label
        ax.scatter(points[chosen, 0], points[chosen, 1], s=8, alpha=0.6, color=color,
                   label=f"{label_names[label]} ({chosen.sum()})")
    ax.set_title(title)
    ax.set_xlabel(f"{PROJECTION.upper()} component 1")
    ax.set_ylabel(f"{PROJECTION.upper()} component 2")
    ax.legend(title="true label", loc="best")


fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
scatter_by_label(axes[0], project(random_test), f"random encoder (probe accuracy {acc_random:.2f})")
scatter_by_label(axes[1], project(pretrained_test), f"pretrained encoder (probe accuracy {acc_pretrained:.2f})")
fig.suptitle(f"{len(test_y)} test reviews before any fine-tuning, mean-pooled vectors in 2-D")
fig.tight_layout()
plt.show()

# %% [markdown]
# (sec-head-convention)=
# ## Which vector does the classifier read?
#
# A classifier on an encoder needs *one* vector per text, and there are two customary choices. BERT
# {cite}`devlin2019bert` was pretrained to put a summary of the sentence in the vector of its first
# token, `[CLS]`, and Hugging Face's `AutoModelForSequenceClassification` classifies that vector (after
# BERT's small "pooler" layer). The checkpoint this book uses, all-MiniLM-L6-v2, was trained
# differently: sentence-transformers {cite}`reimers2019sbert` trained it on about a billion sentence
# pairs to make the *mean* of its token vectors a sentence embedding. Nothing in that training asked
# the `[CLS]` vector to summarise anything. A linear probe on each of the two frozen vectors shows the
# difference:

# %% tags=["nbval-check-output"]
cls_train = models.sentence_features(encoder, enc_tok, train_texts, max_length=cfg.max_length, pooling="cls")
cls_test = models.sentence_features(encoder, enc_tok, test_texts, max_length=cfg.max_length, pooling="cls")
acc_cls_probe = probe_accuracy(cls_train, cls_test)
print(f"test accuracy, probe on the frozen [CLS] vector:      {acc_cls_probe:.2f}")
print(f"test accuracy, probe on the frozen mean of the tokens: {acc_pretrained:.2f}")

# %% tags=["remove-cell", "claims"]
# Claim: the mean carries more of the sentence than the [CLS] vector (SEED 0/1/2 in development: mean
# 0.746/0.752/0.728, [CLS] 0.672/0.664/0.692, so 3.6 to 8.8 points), and [CLS] still beats the majority class.
assert acc_pretrained > acc_cls_probe + 0.03, (acc_pretrained, acc_cls_probe)
assert acc_cls_probe > majority + 0.03, (acc_cls_probe, majority)

# %% [markdown]
# The `[CLS]` vector is not empty (it is a function of the whole sentence, like every token's vector),
# but the mean is better for the same probe (by 3.6 to 8.8 points for SEED 0, 1 and 2). So every classifier
# in this book reads the mean: `models.load(name, "sequence-classification",
# pooling=cfg.pooling)` with `pooling="mean"` in every configuration (`ftutils.config`), which puts the
# new linear head on the mean of the last layer's token vectors (`models.MeanPoolingClassifier`).
# Fine-tuning then starts from the representation the checkpoint was trained to produce, instead of
# first teaching `[CLS]` to summarise. How much that buys depends on the step budget: chapter 6 trains
# both heads alike for a few steps, and the mean head is ahead on every seed. (With a hub checkpoint
# pretrained the BERT way, such as `bert-base-uncased`, `pooling="model"` gives its own `[CLS]` head.)
#
# ## Fine-tuning versus feature extraction
#
# Fine-tuning puts a fresh classification head on the encoder and trains *all* parameters on the labelled
# reviews, starting from the pretrained values $\theta_p$. The whole procedure is the loop below
# (chapter 4 replaces it with the tested `ftutils.trainer`, which adds evaluation, scheduling and
# checkpoints).

# %%
classifier, cls_tok = models.load(cfg.encoder, "sequence-classification", labels=label_names, pooling=cfg.pooling)
classifier.to(device)
print("new (randomly initialised) parameters:", models.new_parameter_names(classifier))
theta_p = {name: p.detach().clone() for name, p in classifier.named_parameters()}
optimizer = torch.optim.AdamW(classifier.parameters(), lr=cfg.learning_rate)
generator = torch.Generator().manual_seed(cfg.seed)
n_finetune = len(train_texts) if FINETUNE_EXAMPLES is None else min(FINETUNE_EXAMPLES, len(train_texts))
started = time.perf_counter()
classifier.train()
for epoch in range(cfg.epochs):
    order = torch.randperm(n_finetune, generator=generator).tolist()
    for start in range(0, len(order), cfg.batch_size):
        rows = order[start:start + cfg.batch_size]
        batch = cls_tok([train_texts[i] for i in rows], padding=True, truncation=True,
                        max_length=cfg.max_length, return_tensors="pt").to(device)
        loss = classifier(**batch, labels=torch.tensor(train_y[rows], device=device)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
print(f"fine-tuned {FINETUNE_EPOCHS} epoch(s) on {n_finetune:,} reviews in {time.perf_counter() - started:.0f} s")

# %%
classifier.eval()
finetuned_test = embed(classifier.encoder, cls_tok, test_texts)
with torch.inference_mode():  # predict from the full model: its head reads the fine-tuned mean vectors
    predictions = np.concatenate([
        classifier(**cls_tok(test_texts[s:s + 64], padding=True, truncation=True, max_length=cfg.max_length,
                             return_tensors="pt").to(device)).logits.argmax(-1).cpu().numpy()
        for s in range(0, len(test_texts), 64)])
acc_finetuned = float((predictions == test_y).mean())
print(f"test accuracy, feature extraction (frozen encoder + probe): {acc_pretrained:.2f}")
print(f"test accuracy, fine-tuned for {FINETUNE_EPOCHS} epoch(s):              {acc_finetuned:.2f}")

# %%
changes = {}
for name, p in classifier.named_parameters():
    if name in models.new_parameter_names(classifier):
        continue
    block = name.split(".")[3] if ".layer." in name else "embeddings"
    before = theta_p[name]
    moved, size = changes.get(block, (0.0, 0.0))
    changes[block] = (moved + (p.detach() - before).pow(2).sum().item(), size + before.pow(2).sum().item())
relative = {block: (moved / size) ** 0.5 for block, (moved, size) in changes.items()}

fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.2, 1]})
scatter_by_label(axes[0], project(finetuned_test), f"after fine-tuning (accuracy {acc_finetuned:.2f})")
names = list(relative)
axes[1].bar(names, [relative[n] * 100 for n in names], color="tab:purple", label=r"$\|\theta-\theta_p\| / \|\theta_p\|$")
axes[1].set_title("How far each block moved from its pretrained values")
axes[1].set_xlabel("encoder block (embeddings, layers 0-5)")
axes[1].set_ylabel("relative change (%)")
axes[1].legend()
fig.tight_layout()
plt.show()

# %% tags=["remove-cell", "claims"]
# Claims in the text: every pretrained block moved; the embeddings and the six layers each by less than
# 5% of their size, so the fine-tuned model stays close to theta_p; fine-tuning lands within 10 points
# of the probe or above it.
assert set(relative) == {"embeddings", *map(str, range(6))}, relative
assert all(0 < r < 0.05 for r in relative.values()), relative
assert acc_finetuned > acc_pretrained - 0.10, (acc_finetuned, acc_pretrained)
assert acc_finetuned > majority + 0.05, (acc_finetuned, majority)


# %% tags=["remove-cell"]
# For the results page (book/results.md): the probe and the fine-tuned model, one run each.
results.record(task="sentiment (rotten_tomatoes): linear probe on frozen MiniLM features", metric="test accuracy",
               scores=acc_pretrained, baseline="the same probe on random-init features", baseline_score=acc_random,
               config=cfg.name)
results.record(task=f"sentiment (rotten_tomatoes): MiniLM fine-tuned {FINETUNE_EPOCHS} epoch(s)", metric="test accuracy",
               scores=acc_finetuned, baseline="majority class", baseline_score=majority, config=cfg.name)

# %% [markdown]
# Fine-tuning changed every block of the encoder, yet the embeddings and the six transformer layers each
# by only a small fraction of their size (under 5% here). The fine-tuned model is still close to
# $\theta_p$, which is the intuition behind the L2-SP penalty of chapter 3. Whether a short fine-tuning run beats a well-trained probe on frozen vectors depends on the
# data size, the number of epochs and the learning rate; chapter 4 measures this over several seeds and
# against a model trained from scratch. With this checkpoint, whose vectors were already trained to make
# similar sentences close, the frozen features are a strong baseline in their own right
# {cite}`peters2019tune`.
#
# | | feature extraction | fine-tuning |
# |---|---|---|
# | trained parameters | the head only (770 here) | all (22.7M here) |
# | cost per example | one forward pass, once | forward + backward, every epoch |
# | one model serves many tasks | yes, the encoder is shared | no, one copy per task |
# | adapts the representation to the task | no | yes |
#
# ## Summary
#
# * A pretrained encoder maps text to context-dependent vectors; a pretrained decoder maps a prefix to
#   a distribution over the next token. Both cut text into sub-word tokens from a fixed vocabulary.
# * In small models the token-embedding matrix is the largest single block.
# * Transfer learning is visible without any training: vectors from the pretrained encoder let a linear
#   classifier separate the sentiment of reviews, vectors from the same architecture with random weights
#   do not.
# * Feature extraction trains only a head on frozen vectors; fine-tuning trains everything and moves each
#   block only slightly away from the pretrained values.
#
# ## Exercises
#
# :::{exercise} t-SNE versus PCA
# :label: ex-core-1
#
# Rerun the chapter with `-p PROJECTION tsne` (or set it in the parameters cell). Does t-SNE
# {cite}`vandermaaten2008tsne` separate the classes more clearly than PCA? Why is a 2-D picture weaker
# evidence than the probe accuracy?
# :::
#
# :::{solution} ex-core-1
# :class: dropdown
#
# t-SNE usually draws tighter, more separated clusters, because it preserves neighbourhoods rather than
# directions of largest variance. But any 2-D projection discards most of the 384 dimensions, and t-SNE
# distances between clusters are not meaningful; the probe accuracy measures separability in the full
# space on held-out reviews, so it is the number to trust.
# :::
#
# :::{exercise} Tokenising unusual words
# :label: ex-core-2
#
# Tokenise a sentence with an unusual word (a film title, a misspelling) with both tokenizers. Which one
# splits it into more pieces, and why can a model still represent it?
# :::
#
# :::{solution} ex-core-2
# :class: dropdown
#
# Both fall back to smaller pieces (down to characters for WordPiece, bytes for byte-level BPE), so no
# input is ever out of vocabulary. Run `enc_tok.tokenize(...)` and `dec_tok.tokenize(...)`: the encoder
# also lower-cases, so it loses the capitalisation that the decoder keeps. The model builds the word's
# meaning from its pieces in context, layer by layer.
# :::
#
# :::{exercise} More epochs
# :label: ex-core-3
#
# Run with `-p FINETUNE_EPOCHS 3`. How do the test accuracy and the relative change of each block move?
# :::
#
# :::{solution} ex-core-3
# :class: dropdown
#
# More epochs move every block further from $\theta_p$ (the bars grow) and usually raise the accuracy
# until the small training set is fitted; after that, test accuracy can fall while the parameters keep
# drifting, which is the over-fitting that chapter 3's penalty is designed to limit.
# :::
