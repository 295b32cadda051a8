"""Tests for ftutils.checks: every check passes a right answer and fails wrong ones with a useful hint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ftutils import checks
from ftutils.ner import align_labels


# ------------------------------------------------------------------ answers a reader might write
def mean_loss_right(model, loader, device):
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            total += model(**batch).loss.item() * len(batch["labels"])
            count += len(batch["labels"])
    return total / count


def mean_loss_article(model, loader, device):
    """The article's average: sum of batch means over the number of examples."""
    model.eval()
    total = 0.0
    with torch.no_grad():
        for batch in loader:
            total += model(**batch).loss.item()
    return total / len(loader.dataset)


def mean_loss_batch_average(model, loader, device):
    model.eval()
    with torch.no_grad():
        return float(np.mean([model(**batch).loss.item() for batch in loader]))


def mean_loss_train_mode(model, loader, device):
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            total += model(**batch).loss.item() * len(batch["labels"])
            count += len(batch["labels"])
    return total / count


def mean_loss_with_grad(model, loader, device):
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        total += model(**batch).loss.item() * len(batch["labels"])
        count += len(batch["labels"])
    return total / count


def mean_loss_global_device(model, loader, device):
    model.eval()
    with torch.no_grad():
        for batch in loader:
            batch["input_ids"].to(undefined_device)  # noqa: F821 -- the article's bug
    return 0.0


def epoch_right(model, loader, optimizer, device):
    model.train()
    total, count = 0.0, 0
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        total += loss.item() * len(batch["labels"])
        count += len(batch["labels"])
    return total / count


def epoch_zero_grad_first(model, loader, optimizer, device):
    """Also right: zero_grad before backward is the other common order."""
    model.train()
    losses, sizes = [], []
    for batch in loader:
        optimizer.zero_grad()
        loss = model(batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])[0]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        sizes.append(len(batch["labels"]))
    return torch.tensor(np.dot(losses, sizes) / sum(sizes))


def epoch_no_zero_grad(model, loader, optimizer, device):
    model.train()
    total, count = 0.0, 0
    for batch in loader:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch["labels"])
        count += len(batch["labels"])
    return total / count


def epoch_no_step(model, loader, optimizer, device):
    model.train()
    for batch in loader:
        model(**batch).loss.backward()
        optimizer.zero_grad()
    return 1.0


def epoch_eval_mode(model, loader, optimizer, device):
    for batch in loader:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return 1.0


def epoch_article_average(model, loader, optimizer, device):
    model.train()
    total = 0.0
    for batch in loader:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        total += loss.item()
    return total / len(loader.dataset)


def epoch_without_dataloader(model, loader, optimizer, device):
    model.train()
    for example in loader.dataset:  # single examples: 1-D input_ids
        model(**example).loss.backward()
        optimizer.step()
    return 0.0


# ------------------------------------------------------------------ tests
def test_passed_message_shows_without_quotes() -> None:
    message = checks.check_same_predictions([[0.1, 0.9]], [[0.1, 0.9]])
    assert isinstance(message, str) and message.startswith("Passed:")
    assert repr(message) == str(message)


def test_check_mean_loss_passes_right_answer() -> None:
    assert "per-example mean loss" in checks.check_mean_loss(mean_loss_right)


@pytest.mark.parametrize(
    "fn, hint",
    [
        (mean_loss_article, "number of examples \\(the article's bug\\)"),
        (mean_loss_batch_average, "last, smaller batch"),
        (mean_loss_train_mode, "model.eval\\(\\)"),
        (mean_loss_with_grad, "torch.no_grad"),
        (mean_loss_global_device, "NameError.*`device` argument"),
        (lambda m, l, d: torch.zeros(2), "shape \\(2,\\)"),
        (lambda m, l, d: "1.0", "never called the model"),
    ],
)
def test_check_mean_loss_rejects_wrong_answers(fn, hint) -> None:
    with pytest.raises(AssertionError, match=f"(?s){hint}") as failure:
        checks.check_mean_loss(fn)
    assert "Hint: " in str(failure.value)


@pytest.mark.parametrize("fn", [epoch_right, epoch_zero_grad_first])
def test_check_corrected_loop_passes_right_answers(fn) -> None:
    assert "trains like the reference loop" in checks.check_corrected_loop(fn)


@pytest.mark.parametrize(
    "fn, hint",
    [
        (epoch_no_zero_grad, "optimizer.zero_grad\\(\\)"),
        (epoch_no_step, "optimizer.step\\(\\)"),
        (epoch_eval_mode, "model.train\\(\\)"),
        (epoch_article_average, "the article's bug"),
        (epoch_without_dataloader, "DataLoader"),
    ],
)
def test_check_corrected_loop_rejects_wrong_answers(fn, hint) -> None:
    with pytest.raises((AssertionError, ValueError), match=f"(?s){hint}"):
        checks.check_corrected_loop(fn)


def test_check_same_predictions() -> None:
    logits = torch.tensor([[0.1, 0.9], [2.0, -1.0]])
    assert "2 examples" in checks.check_same_predictions(logits, logits.numpy().copy())
    with pytest.raises(AssertionError, match="1 predicted labels change"):
        checks.check_same_predictions(logits, torch.tensor([[0.1, 0.9], [-2.0, 1.0]]))
    with pytest.raises(AssertionError, match="shapes"):
        checks.check_same_predictions(logits, logits[:1])


def test_check_confusion_matrix() -> None:
    def right(predictions, references, k):
        m = np.zeros((k, k), dtype=int)
        np.add.at(m, (references, predictions), 1)
        return m

    from ftutils import metrics

    assert "matches" in checks.check_confusion_matrix(
        lambda p, r, k: metrics.confusion_matrix(p, r, labels=range(k)))

    assert "matches" in checks.check_confusion_matrix(right)
    with pytest.raises(AssertionError, match="transposed"):
        checks.check_confusion_matrix(lambda p, r, k: right(r, p, k))
    with pytest.raises(AssertionError, match="by num_labels"):
        checks.check_confusion_matrix(lambda p, r, k: right(p, r, max(max(p), max(r)) + 1))


def test_check_l2sp_penalty() -> None:
    def right(params, anchor, strength):
        return strength * sum(((params[n] - a) ** 2).sum() for n, a in anchor.items())

    def norm_not_squared(params, anchor, strength):
        return strength * torch.sqrt(sum(((params[n] - a) ** 2).sum() for n, a in anchor.items()))

    def all_params(params, anchor, strength):
        return strength * sum((p ** 2).sum() if n not in anchor else ((p - anchor[n]) ** 2).sum()
                              for n, p in params.items())

    def detached(params, anchor, strength):
        with torch.no_grad():
            return right(params, anchor, strength)

    assert "skips the new head" in checks.check_l2sp_penalty(right)
    with pytest.raises(AssertionError, match="squared"):
        checks.check_l2sp_penalty(norm_not_squared)
    with pytest.raises(AssertionError, match="only the anchored parameters"):
        checks.check_l2sp_penalty(all_params)
    with pytest.raises(AssertionError, match="without gradient"):
        checks.check_l2sp_penalty(detached)
    with pytest.raises(AssertionError, match="multiply by the strength"):
        checks.check_l2sp_penalty(lambda p, a, s: right(p, a, s) / s)
    with pytest.raises(AssertionError, match="not a tensor"):
        checks.check_l2sp_penalty(lambda p, a, s: right(p, a, s).item())


# ------------------------------------------------------------------ chapter 3: seeds
def test_check_summarize_accepts_right_and_rejects_wrong_answers():
    def mine(df, by, metric):
        return {g: (v.mean(), v.std(ddof=1), len(v)) for g, v in df.groupby(by)[metric]}

    assert checks.check_summarize(mine).startswith("Passed:")

    def population_std(df, by, metric):
        return {g: (v.mean(), v.std(ddof=0), len(v)) for g, v in df.groupby(by)[metric]}

    with pytest.raises(AssertionError, match="population std"):
        checks.check_summarize(population_std)

    def overall_mean(df, by, metric):
        return {g: (df[metric].mean(), v.std(), len(v)) for g, v in df.groupby(by)[metric]}

    with pytest.raises(AssertionError, match="mean="):
        checks.check_summarize(overall_mean)

    with pytest.raises(AssertionError, match="column 'std'"):
        checks.check_summarize(lambda df, by, m: df.groupby(by)[m].agg(["mean", "count"]).rename(columns={"count": "n"}))


# ------------------------------------------------------------------ chapter 5: NER labels
def test_check_align_labels_passes_and_explains():
    assert checks.check_align_labels(align_labels).startswith("Passed")

    def label_every_piece(word_ids, tags):
        return [-100 if w is None else tags[w] for w in word_ids]

    with pytest.raises(AssertionError, match="later sub-words"):
        checks.check_align_labels(label_every_piece)

    def forgets_special(word_ids, tags):
        return [0 if w is None else tags[w] for w in word_ids]

    with pytest.raises(AssertionError, match="special tokens"):
        checks.check_align_labels(forgets_special)


# ------------------------------------------------------------------ chapter 6: search
def test_check_best_so_far() -> None:
    assert str(checks.check_best_so_far(lambda v: list(np.maximum.accumulate(v)))).startswith("Passed")
    with pytest.raises(AssertionError, match="Hint"):
        checks.check_best_so_far(lambda v: list(v))
    with pytest.raises(AssertionError, match="raised ZeroDivisionError"):
        checks.check_best_so_far(lambda v: [1 / 0])


# ------------------------------------------------------------------ chapter 7: evaluation
def test_check_bootstrap_ci_and_check_membership_auc() -> None:
    def ci(correct, n_resamples=1000, seed=0):
        correct = np.asarray(correct)
        rng = np.random.default_rng(seed)
        means = [correct[rng.integers(0, len(correct), len(correct))].mean() for _ in range(n_resamples)]
        return tuple(np.quantile(means, [0.025, 0.975]))

    def ci_permutation(correct, n_resamples=1000, seed=0):
        rng = np.random.default_rng(seed)
        means = [np.asarray(correct)[rng.permutation(len(correct))].mean() for _ in range(n_resamples)]
        return tuple(np.quantile(means, [0.025, 0.975]))

    assert str(checks.check_bootstrap_ci(ci)).startswith("Passed")
    with pytest.raises(AssertionError, match="replacement"):
        checks.check_bootstrap_ci(ci_permutation)

    def auc_ok(m, o):
        m, o = np.asarray(m)[:, None], np.asarray(o)[None, :]
        return float((m < o).mean() + 0.5 * (m == o).mean())

    assert str(checks.check_membership_auc(auc_ok)).startswith("Passed")
    with pytest.raises(AssertionError, match="lower"):
        checks.check_membership_auc(lambda m, o: 1 - auc_ok(m, o))
    with pytest.raises(AssertionError, match="one half"):
        checks.check_membership_auc(lambda m, o: float((np.asarray(m)[:, None] < np.asarray(o)[None, :]).mean()))


def test_check_answer_labels_names_the_usual_mistakes():
    assert str(checks.check_answer_labels(lambda p, a: [-100] * len(p) + list(a))).startswith("Passed")
    with pytest.raises(AssertionError, match="nothing is masked"):
        checks.check_answer_labels(lambda p, a: list(p) + list(a))
    with pytest.raises(AssertionError, match="the mask is on the answer"):
        checks.check_answer_labels(lambda p, a: list(p) + [-100] * len(a))


def test_check_format_compliance_rejects_the_lenient_count():
    with pytest.raises(AssertionError, match="starts with"):
        checks.check_format_compliance(lambda outputs, choices: sum(any(c in o.lower() for c in choices)
                                                                     for o in outputs) / len(outputs))
