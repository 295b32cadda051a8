"""Auto-checks for the book's exercises: call one on your answer and read what it says.

Every ``check_*`` function either returns a :class:`Passed` message (a ``str`` that a notebook shows
without quotes) or raises ``AssertionError`` whose message says what is wrong *and* a hint towards
the fix. Checks that take a function run it on a tiny model and tiny data built here, compare with a
reference implementation, and recognise the common wrong answers (e.g. the loss averaged over the
wrong count) so the hint can be specific.

All the book's auto-checks live here, in one section per chapter (3: seeds and the L2-SP penalty;
4: saving, scoring and the training loop; 5: aligning NER labels; 6: the best-so-far curve of a search;
7: bootstrap intervals and the membership attack; 8: the answer-only loss mask and format compliance). ``book/assignments.md`` lists which exercise uses
which check.

Example:
    >>> from ftutils.checks import check_same_predictions
    >>> check_same_predictions([[0.1, 0.9]], [[0.1, 0.9]], what="the reloaded MiniLM")
    Passed: the reloaded MiniLM gives the same predictions on 1 examples (max |logit diff| 0.0e+00).
    >>> check_same_predictions([[0.1, 0.9]], [[0.9, 0.1]])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: the logits differ by up to 8.00e-01 (> 1e-05); 1 predicted labels change. Hint: ...
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "Passed",
    "TinyClassifier",
    "check_align_labels",
    "check_answer_labels",
    "check_format_compliance",
    "check_best_so_far",
    "check_bootstrap_ci",
    "check_confusion_matrix",
    "check_corrected_loop",
    "check_l2sp_penalty",
    "check_mean_loss",
    "check_membership_auc",
    "check_same_predictions",
    "check_summarize",
]


class Passed(str):
    """A passing check's message; shown without quotes in a notebook and by ``print``."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_markdown_(self) -> str:
        return f"**{self}**"


def _passed(message: str) -> Passed:
    return Passed(f"Passed: {message}")


def _fail(problem: str, hint: str) -> AssertionError:
    return AssertionError(f"{problem} Hint: {hint}")


def _as_float(value: Any, what: str) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise _fail(f"{what} is a tensor of shape {tuple(value.shape)}, not a single number.",
                        "reduce it to one number and return it with `.item()`.")
        value = value.item()
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _fail(f"{what} is {value!r} ({type(value).__name__}), not a number.",
                    "return a Python float (e.g. `total / count`, or `tensor.item()`).") from None
    if math.isnan(number):
        raise _fail(f"{what} is NaN.", "check for a division by zero or an empty loop.")
    return number


# --------------------------------------------------------------------------- chapter 4: saving and scoring
def check_same_predictions(
    logits_a: Any, logits_b: Any, *, atol: float = 1e-5, what: str = "the reloaded model"
) -> Passed:
    """Pass when two models' logits (arrays or tensors of equal shape) agree within ``atol``.

    Example:
        >>> check_same_predictions([[0.1, 0.9]], [[0.1, 0.9]])
        Passed: the reloaded model gives the same predictions on 1 examples (max |logit diff| 0.0e+00).
    """
    a = np.asarray(logits_a.detach().cpu() if isinstance(logits_a, torch.Tensor) else logits_a, float)
    b = np.asarray(logits_b.detach().cpu() if isinstance(logits_b, torch.Tensor) else logits_b, float)
    if a.shape != b.shape:
        raise _fail(f"the logits have shapes {a.shape} and {b.shape}.",
                    "run both models on the same batch, in the same order.")
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    if diff > atol:
        changed = int(np.sum(a.argmax(-1) != b.argmax(-1))) if a.ndim > 1 else 0
        raise _fail(
            f"the logits differ by up to {diff:.2e} (> {atol:.0e}); {changed} predicted labels change.",
            "put both models in eval mode (dropout!), save *after* training, and reload every weight "
            "including the classification head (load_state_dict should report no missing keys).",
        )
    return _passed(f"{what} gives the same predictions on {len(a)} examples (max |logit diff| {diff:.1e}).")


def check_confusion_matrix(fn: Callable[[Sequence[int], Sequence[int], int], Any]) -> Passed:
    """Check ``fn(predictions, references, num_labels) -> matrix``: cell [i, j] counts the examples whose
    reference (true) label is i and whose predicted label is j, as :func:`ftutils.metrics.confusion_matrix`.

    Example:
        >>> import numpy as np
        >>> def cm(predictions, references, k):
        ...     m = np.zeros((k, k), dtype=int)
        ...     for p, r in zip(predictions, references):
        ...         m[r, p] += 1
        ...     return m
        >>> check_confusion_matrix(cm)
        Passed: your confusion matrix matches scikit-learn's on 3 test cases.
    """
    from sklearn.metrics import confusion_matrix

    rng = np.random.default_rng(0)
    cases = [([0, 1, 0, 0, 0], [0, 1, 1, 0, 1], 2),
             (rng.integers(0, 3, 50).tolist(), rng.integers(0, 3, 50).tolist(), 3),
             ([0, 0, 0], [0, 0, 1], 3)]  # class 2 absent: the matrix must still be 3x3
    for predictions, references, k in cases:
        got = np.asarray(fn(list(predictions), list(references), k))
        want = confusion_matrix(references, predictions, labels=list(range(k)))
        if got.shape != want.shape:
            raise _fail(f"for {k} labels your matrix has shape {got.shape}, expected {want.shape}.",
                        "size it by num_labels, not by the classes that happen to occur.")
        if np.array_equal(got, want.T) and not np.array_equal(got, want):
            raise _fail("your matrix is transposed.",
                        "rows are the reference (true) label, columns the prediction: m[reference, prediction] += 1.")
        if not np.array_equal(got, want):
            raise _fail(f"for predictions={predictions[:6]}..., references={references[:6]}... you return\n"
                        f"{got}\nbut the expected matrix is\n{want}.",
                        "add 1 to cell [reference, prediction] for every example.")
    return _passed(f"your confusion matrix matches scikit-learn's on {len(cases)} test cases.")


# --------------------------------------------------------------------------- chapter 4: training-loop pieces
class _Output(dict):
    """Like transformers' ModelOutput: ``out.loss``, ``out["loss"]`` and ``out[0]`` all work."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int):
            return list(self.values())[key]
        return super().__getitem__(key)


class TinyClassifier(nn.Module):
    """A two-layer bag-of-embeddings classifier with the Hugging Face calling convention.

    ``model(input_ids, attention_mask=..., labels=...)`` returns an object with ``.loss`` and
    ``.logits``, as ``AutoModelForSequenceClassification`` does. It records, for every forward call,
    whether it was in training mode and whether gradients were enabled, so checks can tell a loop that
    forgot ``model.train()`` / ``model.eval()`` / ``torch.no_grad()``.
    """

    def __init__(self, vocab_size: int = 30, num_labels: int = 3, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.embed = nn.Embedding(vocab_size, 8)
        self.head = nn.Linear(8, num_labels)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **unused: Any) -> _Output:
        self.calls.append((self.training, torch.is_grad_enabled()))
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids has shape {tuple(input_ids.shape)}: expected (batch, seq_len). "
                             "Iterate over a DataLoader, not over the dataset itself.")
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        mask = mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1)
        logits = self.head(torch.tanh(pooled))
        out = _Output()
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits, labels)
        out["logits"] = logits
        return out


def _tiny_loader(n: int = 10, batch_size: int = 4, seed: int = 1) -> torch.utils.data.DataLoader:
    """``n`` examples in batches of ``batch_size``; n % batch_size != 0 so the last batch is smaller."""
    g = torch.Generator().manual_seed(seed)
    examples = [
        {"input_ids": torch.randint(1, 30, (6,), generator=g),
         "attention_mask": torch.tensor([1, 1, 1, 1, 0, 0]) if i % 2 else torch.ones(6, dtype=torch.long),
         "labels": torch.randint(0, 3, (), generator=g)}
        for i in range(n)
    ]
    return torch.utils.data.DataLoader(examples, batch_size=batch_size, shuffle=False)


def _call(fn: Callable, args: tuple, what: str) -> Any:
    try:
        return fn(*args)
    except NameError as exc:
        raise _fail(f"{what} raised NameError: {exc}.",
                    "use only the arguments it receives (e.g. the `device` argument) and names you "
                    "define inside it.") from exc
    except TypeError as exc:
        raise _fail(f"{what} raised TypeError: {exc}.",
                    f"it is called as {what}; check its parameters and what it returns.") from exc


def _per_example_losses(model: nn.Module, loader: torch.utils.data.DataLoader) -> list[torch.Tensor]:
    out = []
    with torch.no_grad():
        for batch in loader:
            logits = model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            out.append(nn.functional.cross_entropy(logits, batch["labels"], reduction="none"))
    return out


def _explain_average(got: float, batch_means: list[float], sizes: list[int], what: str) -> str:
    """Name the common wrong ways of averaging losses, if ``got`` matches one."""
    n = sum(sizes)
    wrong = {
        "you divided the sum of per-batch mean losses by the number of examples (the article's bug), "
        "which shrinks the loss by about the batch size":
            sum(batch_means) / n,
        "you averaged the per-batch means, so the last, smaller batch weighs as much as a full one":
            sum(batch_means) / len(batch_means),
        "you returned the sum of the batch losses without dividing": sum(batch_means),
        "you returned only the last batch's loss": batch_means[-1],
    }
    for reason, value in wrong.items():
        if math.isclose(got, value, rel_tol=1e-5, abs_tol=1e-7):
            return f"{reason}. Weight each batch's mean loss by its size: total += loss.item() * len(labels)"
    return (f"the per-example mean loss is what {what} should return: add up loss.item() * batch_size over "
            "the batches and divide by the number of examples")


def check_mean_loss(fn: Callable[[nn.Module, Any, Any], Any]) -> Passed:
    """Check ``fn(model, dataloader, device) -> float``: the mean loss *per example* over the loader.

    It is run on a tiny classifier and 10 examples in batches of 4, 4 and 2 (so a wrong average
    shows), and must leave the model in eval mode with gradients off while it computes.

    Example:
        >>> import torch
        >>> def mean_loss(model, loader, device):
        ...     model.eval()
        ...     total, count = 0.0, 0
        ...     with torch.no_grad():
        ...         for batch in loader:
        ...             batch = {k: v.to(device) for k, v in batch.items()}
        ...             total += model(**batch).loss.item() * len(batch["labels"])
        ...             count += len(batch["labels"])
        ...     return total / count
        >>> check_mean_loss(mean_loss)
        Passed: mean_loss returns the per-example mean loss (1.2258) and evaluates in eval mode without gradients.
    """
    what = f"{getattr(fn, '__name__', 'your function')}"
    model, loader = TinyClassifier(), _tiny_loader()
    model.train()  # the function has to switch to eval mode itself
    per_example = _per_example_losses(model, loader)
    want = float(torch.cat(per_example).mean())
    model.calls.clear()
    got = _as_float(_call(fn, (model, loader, torch.device("cpu")), f"{what}(model, dataloader, device)"),
                    f"the value {what} returns")
    if not model.calls:
        raise _fail(f"{what} never called the model.", "loop over the dataloader and call model(**batch).")
    if any(training for training, _ in model.calls):
        raise _fail(f"{what} ran the model in training mode.",
                    "call model.eval() first: dropout would make the validation loss noisy.")
    if any(grad for _, grad in model.calls):
        raise _fail(f"{what} computed the loss with gradients enabled.",
                    "wrap the loop in `with torch.no_grad():` to save memory and time.")
    if not math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-7):
        means = [float(x.mean()) for x in per_example]
        raise _fail(f"{what} returns {got:.6f}, but the per-example mean loss is {want:.6f}.",
                    _explain_average(got, means, [len(x) for x in per_example], what))
    return _passed(f"{what} returns the per-example mean loss ({got:.4f}) and evaluates in eval mode "
                   "without gradients.")


def _reference_epoch(model: nn.Module, loader: Any, optimizer: torch.optim.Optimizer,
                     *, zero_grad: bool = True) -> float:
    model.train()
    total, count = 0.0, 0
    for batch in loader:
        out = model(batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        out.loss.backward()
        optimizer.step()
        if zero_grad:
            optimizer.zero_grad()
        total += out.loss.item() * len(batch["labels"])
        count += len(batch["labels"])
    return total / count


def check_corrected_loop(fn: Callable[[nn.Module, Any, torch.optim.Optimizer, Any], Any]) -> Passed:
    """Check ``fn(model, dataloader, optimizer, device) -> float``: one corrected training epoch.

    The function must put the model in training mode, move each batch to ``device``, and for every
    batch run forward, backward, ``optimizer.step()`` and ``optimizer.zero_grad()``; it returns the
    per-example mean training loss of the epoch. The check runs it on a tiny classifier (given in eval
    mode) and compares the updated weights and the returned loss with a reference epoch.

    Example:
        >>> def train_one_epoch(model, loader, optimizer, device):
        ...     model.train()
        ...     total, count = 0.0, 0
        ...     for batch in loader:
        ...         batch = {k: v.to(device) for k, v in batch.items()}
        ...         loss = model(**batch).loss
        ...         loss.backward()
        ...         optimizer.step()
        ...         optimizer.zero_grad()
        ...         total += loss.item() * len(batch["labels"])
        ...         count += len(batch["labels"])
        ...     return total / count
        >>> check_corrected_loop(train_one_epoch)
        Passed: train_one_epoch trains like the reference loop (same weights after 3 steps, mean loss 1.2048).
    """
    what = f"{getattr(fn, '__name__', 'your function')}"
    model, loader = TinyClassifier(), _tiny_loader()
    reference = copy.deepcopy(model)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    lr = 0.5  # large, so that every mistake moves the weights visibly
    want_loss = _reference_epoch(reference, loader, torch.optim.SGD(reference.parameters(), lr=lr))

    model.eval()  # the function has to switch to training mode itself
    model.calls.clear()
    got = _call(fn, (model, loader, torch.optim.SGD(model.parameters(), lr=lr), torch.device("cpu")),
                f"{what}(model, dataloader, optimizer, device)")
    got = _as_float(got, f"the value {what} returns")
    n_batches = len(loader)
    if len(model.calls) != n_batches:
        raise _fail(f"{what} called the model {len(model.calls)} times for {n_batches} batches.",
                    "make exactly one forward pass per batch of the dataloader.")
    if not all(training for training, _ in model.calls):
        raise _fail(f"{what} trained with the model in eval mode.",
                    "call model.train() at the start of the epoch (evaluation switches it to eval mode).")
    state = model.state_dict()
    if all(torch.equal(state[k], start[k]) for k in start):
        raise _fail(f"{what} did not change any weight.",
                    "call loss.backward() and then optimizer.step() for every batch.")
    ref_state = reference.state_dict()
    if not all(torch.allclose(state[k], ref_state[k], atol=1e-5) for k in state):
        no_zero = TinyClassifier()
        no_zero.load_state_dict(start)
        _reference_epoch(no_zero, loader, torch.optim.SGD(no_zero.parameters(), lr=lr), zero_grad=False)
        if all(torch.allclose(state[k], v, atol=1e-5) for k, v in no_zero.state_dict().items()):
            hint = ("gradients accumulate across batches: call optimizer.zero_grad() after "
                    "optimizer.step() (or before loss.backward()).")
        else:
            hint = ("for each batch do exactly: forward with labels, loss.backward(), optimizer.step(), "
                    "optimizer.zero_grad(); do not rescale the loss before backward.")
        raise _fail(f"after one epoch {what} gives different weights from the reference loop.", hint)
    if not math.isclose(got, want_loss, rel_tol=1e-5, abs_tol=1e-7):
        # the losses the reference saw, batch by batch, for the diagnosis
        replay = TinyClassifier()
        replay.load_state_dict(start)
        opt = torch.optim.SGD(replay.parameters(), lr=lr)
        means, sizes = [], []
        for batch in loader:
            out = replay(batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
            out.loss.backward()
            opt.step()
            opt.zero_grad()
            means.append(out.loss.item())
            sizes.append(len(batch["labels"]))
        raise _fail(f"{what} trains correctly but returns {got:.6f}; the per-example mean training loss "
                    f"is {want_loss:.6f}.", _explain_average(got, means, sizes, what))
    return _passed(f"{what} trains like the reference loop (same weights after {n_batches} steps, "
                   f"mean loss {got:.4f}).")


# --------------------------------------------------------------------------- chapters 3 and 4: regularisation
def check_l2sp_penalty(fn: Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor], float], Any]) -> Passed:
    """Check ``fn(params, anchor, strength) -> tensor``: the L2-SP penalty λ·Σ‖θ−θ_p‖² over ``anchor``'s keys.

    ``params`` maps names to current parameters, ``anchor`` maps the anchored names to their
    pretrained values (the new task head is *not* in ``anchor``); the result must be a differentiable
    0-d tensor.

    Example:
        >>> def l2sp(params, anchor, strength):
        ...     return strength * sum(((params[n] - a) ** 2).sum() for n, a in anchor.items())
        >>> check_l2sp_penalty(l2sp)
        Passed: l2sp computes λ·Σ‖θ−θ_p‖² (0.2364 here), skips the new head and is differentiable.
    """
    what = f"{getattr(fn, '__name__', 'your function')}"
    g = torch.Generator().manual_seed(3)
    anchor = {"encoder.weight": torch.randn(4, 3, generator=g), "encoder.bias": torch.randn(4, generator=g)}
    params = {n: (a + 0.2 * torch.randn(a.shape, generator=g)).requires_grad_() for n, a in anchor.items()}
    params["head.weight"] = torch.randn(2, 4, generator=g).requires_grad_()  # new: not anchored
    strength = 0.7
    want = strength * sum(((params[n] - a) ** 2).sum() for n, a in anchor.items())
    got = _call(fn, (params, anchor, strength), f"{what}(params, anchor, strength)")
    if not isinstance(got, torch.Tensor):
        raise _fail(f"{what} returns a {type(got).__name__}, not a tensor.",
                    "keep it a tensor (no .item()) so that loss + penalty can be backpropagated.")
    value = _as_float(got, f"the value {what} returns")
    if not got.requires_grad:
        raise _fail(f"{what} returns a tensor without gradient.",
                    "compute it from the parameters themselves, without torch.no_grad() or .detach().")
    expected = want.item()
    if not math.isclose(value, expected, rel_tol=1e-5):
        distance2 = expected / strength
        if math.isclose(value, math.sqrt(distance2) * strength, rel_tol=1e-5):
            hint = "the penalty uses the *squared* distance: sum ((θ − θ_p) ** 2), not the norm."
        elif math.isclose(value, distance2, rel_tol=1e-5):
            hint = "multiply by the strength λ."
        elif value > expected:
            hint = "only the anchored parameters count: loop over anchor's names, not over all params."
        else:
            hint = "sum (θ − θ_p)² over every element of every anchored tensor, then multiply by λ."
        raise _fail(f"{what} returns {value:.6f}; λ·Σ‖θ−θ_p‖² is {expected:.6f}.", hint)
    return _passed(f"{what} computes λ·Σ‖θ−θ_p‖² ({value:.4f} here), skips the new head and is "
                   "differentiable.")


# --------------------------------------------------------------------------- chapter 3: seeds
def check_summarize(fn: Callable[[Any, str, str], Any], *, seed: int = 0) -> str:
    """Check a reader's own ``fn(df, by, metric)`` (mean, sample std and count per group) on random data.

    ``fn`` may return a DataFrame with columns ``mean``, ``std``, ``n`` indexed by the group, or a dict
    ``{group: (mean, std, n)}``. Raises ``AssertionError`` naming the first group that disagrees with
    :func:`ftutils.experiments.summarize` (chapter 3); returns a short success message otherwise.

    Example:
        >>> from ftutils.experiments import summarize
        >>> check_summarize(lambda df, by, m: summarize(df, by, m))
        'Passed: mean, std and n agree with ftutils.experiments.summarize on 4 groups.'
    """
    import pandas as pd

    from ftutils.experiments import summarize

    rng = np.random.default_rng(seed)
    groups = [0.0, 0.01, 1.0, 100.0]
    n_per = [3, 5, 2, 4]
    df = pd.DataFrame({
        "strength": np.repeat(groups, n_per),
        "accuracy": rng.uniform(0.5, 0.9, size=sum(n_per)),
    })
    df = df.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # groups interleaved, as in a grid
    expected = summarize(df, "strength", "accuracy")
    got = fn(df.copy(), "strength", "accuracy")
    if isinstance(got, pd.DataFrame):
        for col in ("mean", "std", "n"):
            if col not in got.columns:
                raise AssertionError(f"Your result has no column {col!r}: expected columns mean, std, n.")
        got = {g: (row["mean"], row["std"], row["n"]) for g, row in got.iterrows()}
    if not isinstance(got, Mapping):
        raise AssertionError(
            f"Your function returned {type(got).__name__}: expected a DataFrame (columns mean, std, n) "
            "or a dict {group: (mean, std, n)}."
        )
    for group, row in expected.iterrows():
        if group not in got:
            raise AssertionError(f"Group strength={group!r} is missing from your result.")
        mean, std, n = got[group]
        if int(n) != row["n"]:
            raise AssertionError(f"strength={group}: n={n}, expected {row['n']}.")
        if not math.isclose(float(mean), row["mean"], rel_tol=1e-9, abs_tol=1e-12):
            raise AssertionError(f"strength={group}: mean={mean}, expected {row['mean']:.6f}.")
        if not math.isclose(float(std), row["std"], rel_tol=1e-9, abs_tol=1e-12):
            hint = ""
            population = float(np.std(df.loc[df.strength == group, "accuracy"], ddof=0))
            if math.isclose(float(std), population, rel_tol=1e-9):
                hint = " You computed the population std (ddof=0); use the sample std (ddof=1)."
            raise AssertionError(f"strength={group}: std={std}, expected {row['std']:.6f}.{hint}")
    return f"Passed: mean, std and n agree with ftutils.experiments.summarize on {len(expected)} groups."


# --------------------------------------------------------------------------- chapter 5: applications
def check_align_labels(fn: Callable[[Sequence[int | None], Sequence[int]], Any]) -> Passed:
    """Auto-check a reader's ``fn(word_ids, word_labels) -> labels`` against :func:`ftutils.ner.align_labels` (chapter 5).

    The expected convention: first sub-word gets the word's tag, later sub-words and special tokens
    ``-100``. Returns a :class:`Passed` message, or raises ``AssertionError`` with a hint.

    Example:
        >>> from ftutils.ner import align_labels
        >>> check_align_labels(align_labels)
        Passed: your alignment matches on 4 hand-made sentences (special tokens, split words, truncation).
    """
    from ftutils.ner import IGNORE, align_labels

    cases = [
        ([None, 0, 1, 1, 2, None], [1, 2, 0], "a word split into two sub-words"),
        ([None, 0, 0, 0, None], [3], "one word split into three sub-words"),
        ([None, 0, 1, 2, None], [0, 1, 0], "no split words"),
        ([None, 0, 1, 1, None], [1, 2, 2, 0], "a sentence truncated after two words"),
    ]
    for word_ids, tags, what in cases:
        expected = align_labels(word_ids, tags)
        try:
            got = fn(list(word_ids), list(tags))
        except Exception as exc:  # noqa: BLE001 -- shown to the reader
            raise AssertionError(f"Your function raised {type(exc).__name__}: {exc} on {what} "
                                 f"(word_ids={word_ids}, tags={tags}). Hint: special tokens have word id None.") from None
        got = [int(x) for x in got]
        if len(got) != len(word_ids):
            raise AssertionError(f"On {what} you returned {len(got)} labels for {len(word_ids)} tokens. "
                                 "Hint: return one label per token, special tokens included.")
        if got != expected:
            hint = "give -100 to special tokens (word id None)."
            if all(g == e for g, e, w in zip(got, expected, word_ids) if w is None):
                subword = align_labels(word_ids, tags, label_all_subwords=True,
                                       label_names=["O", "B-X", "I-X", "B-Y"])
                hint = ("later sub-words of a word should get -100, not the word's tag." if got == subword
                        or any(e == IGNORE and g != IGNORE for g, e in zip(got, expected))
                        else "the first sub-word of each word gets that word's tag.")
            raise AssertionError(f"On {what} (word_ids={word_ids}, tags={tags}) you returned {got}, "
                                 f"expected {expected}. Hint: {hint}")
    return _passed(f"your alignment matches on {len(cases)} hand-made sentences "
                   "(special tokens, split words, truncation).")


# --------------------------------------------------------------------------- chapter 6: tools
def check_best_so_far(fn: Callable[[Sequence[float]], Sequence[float]]) -> Passed:
    """Check ``fn(values)``: the running maximum, as :func:`ftutils.search.best_so_far` (chapter 6).

    Example:
        >>> import numpy as np
        >>> check_best_so_far(lambda v: list(np.maximum.accumulate(v)))
        Passed: best_so_far returns the running maximum on 4 test cases.
    """
    from ftutils.search import best_so_far

    cases = [[0.5], [0.5, 0.7, 0.6, 0.8], [0.9, 0.1, 0.2], [0.1, 0.1, 0.3, 0.2, 0.3]]
    for values in cases:
        try:
            got = [float(x) for x in fn(list(values))]
        except Exception as exc:  # noqa: BLE001 - report any failure of the reader's code
            raise _fail(f"fn({values}) raised {type(exc).__name__}: {exc}.", "return a list of floats.") from exc
        want = best_so_far(values)
        if len(got) != len(want):
            raise _fail(f"fn({values}) returned {len(got)} values, expected {len(want)}.",
                        "return one value per trial, the best seen up to and including it.")
        if not np.allclose(got, want):
            hint = ("that is the running mean or the last value, not the best so far" if got[-1] != max(values)
                    else "each entry is the maximum of the values up to that trial")
            raise _fail(f"fn({values}) returned {got}, expected {want}.", hint + ".")
    return _passed(f"best_so_far returns the running maximum on {len(cases)} test cases.")


# --------------------------------------------------------------------------- chapter 7: evaluation
def check_bootstrap_ci(fn: Callable[..., Any]) -> Passed:
    """Check ``fn(correct, n_resamples, seed) -> (low, high)``: a 95% percentile bootstrap interval of accuracy.

    ``correct`` is a 0/1 array (1 = right on that test example). The check runs ``fn`` on 400 examples
    with accuracy 0.75 and compares with the normal approximation ``p ± 1.96·sqrt(p(1-p)/n)``
    (within 25% of its half-width), and recognises resampling without replacement (a zero-width
    interval) and a standard deviation returned instead of an interval.

    Example:
        >>> import numpy as np
        >>> def ci(correct, n_resamples=1000, seed=0):
        ...     correct = np.asarray(correct)
        ...     rng = np.random.default_rng(seed)
        ...     means = [correct[rng.integers(0, len(correct), len(correct))].mean() for _ in range(n_resamples)]
        ...     return tuple(np.quantile(means, [0.025, 0.975]))
        >>> check_bootstrap_ci(ci)  # doctest: +ELLIPSIS
        Passed: ci gives (0.7..., 0.7...) around accuracy 0.750; the normal approximation says 0.708-0.792.
    """
    what = f"{getattr(fn, '__name__', 'your function')}"
    correct = np.array([1] * 300 + [0] * 100)
    np.random.default_rng(7).shuffle(correct)
    p, n = correct.mean(), len(correct)
    half = 1.96 * math.sqrt(p * (1 - p) / n)
    got = _call(fn, (correct.copy(), 1000, 0), f"{what}(correct, n_resamples, seed)")
    try:
        low, high = (float(v) for v in got)
    except (TypeError, ValueError):
        raise _fail(f"{what} returned {got!r}.",
                    "return two numbers, the interval's ends: (low, high) = np.quantile(values, [0.025, 0.975]).") from None
    if math.isclose(low, high, abs_tol=1e-9):
        hint = ("every resample gave the same accuracy: draw indices *with* replacement "
                "(rng.integers(0, n, n)), not a permutation of the test set.")
        if math.isclose(low, p, abs_tol=1e-9):
            raise _fail(f"{what} returns a zero-width interval at {low:.3f}.", hint)
        raise _fail(f"{what} returns a zero-width interval at {low:.3f}.", "return the 2.5% and 97.5% quantiles of the resampled accuracies.")
    if not low < high:
        raise _fail(f"{what} returns low={low:.4f} >= high={high:.4f}.", "return (low, high) in that order.")
    if high < 0.5 * half and low < 0.5 * half:
        raise _fail(f"{what} returns ({low:.4f}, {high:.4f}), which look like spreads, not accuracies.",
                    "return the quantiles of the resampled accuracies themselves, not their standard deviation.")
    if not low < p < high:
        raise _fail(f"the interval ({low:.3f}, {high:.3f}) does not contain the accuracy {p:.3f}.",
                    "compute the accuracy of each resample as correct[indices].mean().")
    if abs((high - low) / 2 - half) > 0.25 * half:
        raise _fail(f"the interval ({low:.3f}, {high:.3f}) has half-width {(high - low) / 2:.4f}; for 400 examples at "
                    f"accuracy {p:.2f} it should be close to {half:.4f}.",
                    "resample n = len(correct) examples each time, and take the 2.5% and 97.5% quantiles (95%).")
    return _passed(f"{what} gives ({low:.3f}, {high:.3f}) around accuracy {p:.3f}; the normal approximation "
                   f"says {p - half:.3f}-{p + half:.3f}.")


def check_membership_auc(fn: Callable[[Sequence[float], Sequence[float]], Any]) -> Passed:
    """Check ``fn(member_losses, nonmember_losses) -> float``: the loss-threshold attack's AUC.

    The AUC is the probability that a random training example (member) has a *lower* loss than a random
    unseen one, ties counting one half. The check uses cases with ties and with unequal group sizes,
    and recognises the reversed orientation (``1 - AUC``) and ties counted as 0 or 1.

    Example:
        >>> import numpy as np
        >>> def attack_auc(members, others):
        ...     m, o = np.asarray(members)[:, None], np.asarray(others)[None, :]
        ...     return float((m < o).mean() + 0.5 * (m == o).mean())
        >>> check_membership_auc(attack_auc)
        Passed: attack_auc agrees with the reference AUC on 3 cases (ties count one half).
    """
    what = f"{getattr(fn, '__name__', 'your function')}"
    rng = np.random.default_rng(5)
    cases = [([0.1, 0.2, 0.9], [0.3, 0.8, 1.0]),
             ([0.5, 0.5, 0.2, 0.7], [0.5, 0.9]),  # ties and unequal sizes
             (rng.exponential(0.3, 50).round(2).tolist(), rng.exponential(0.6, 70).round(2).tolist())]
    for members, others in cases:
        m, o = np.asarray(members)[:, None], np.asarray(others)[None, :]
        less, ties = float((m < o).mean()), float((m == o).mean())
        want = less + 0.5 * ties
        got = _as_float(_call(fn, (list(members), list(others)), f"{what}(member_losses, nonmember_losses)"),
                        f"the value {what} returns")
        if math.isclose(got, want, abs_tol=1e-9):
            continue
        if math.isclose(got, 1 - want, abs_tol=1e-9):
            hint = "members have *lower* losses: count pairs where the member's loss is below the non-member's."
        elif ties and (math.isclose(got, less, abs_tol=1e-9) or math.isclose(got, less + ties, abs_tol=1e-9)):
            hint = "a tie (equal losses) counts one half."
        else:
            hint = "average, over all (member, non-member) pairs, 1 if member loss < non-member loss, 0.5 if equal."
        raise _fail(f"for members {members[:4]}... and non-members {others[:4]}... {what} returns {got:.4f}, "
                    f"expected {want:.4f}.", hint)
    return _passed(f"{what} agrees with the reference AUC on {len(cases)} cases (ties count one half).")


# ---------------------------------------------------------------------------------------------------
# Chapter 8: the loss on the answer only, and format compliance.


def check_answer_labels(fn: Callable[[Sequence[int], Sequence[int]], Any]) -> Passed:
    """Check ``fn(prompt_ids, answer_ids) -> labels``: the labels of ``prompt_ids + answer_ids`` for SFT.

    Every prompt position gets ``-100`` (no loss), every answer position its own token id (the model
    shifts labels itself). The check recognises labels shifted by one, the mask put on the answer
    instead of the prompt, and a missing mask.

    Example:
        >>> check_answer_labels(lambda prompt, answer: [-100] * len(prompt) + list(answer))
        Passed: <lambda> masks the prompt and keeps the answer's ids on 3 cases.
    """
    what = f"{getattr(fn, '__name__', 'your function')}"
    cases = [([1, 9690, 198, 4093], [17728, 2]), ([5, 6, 7], [8]), ([3], [11, 12, 13, 2])]
    for prompt, answer in cases:
        want = [-100] * len(prompt) + answer
        got = _call(fn, (list(prompt), list(answer)), f"{what}(prompt_ids, answer_ids)")
        got = got.tolist() if hasattr(got, "tolist") else list(got)
        if got == want:
            continue
        if got == prompt + answer:
            hint = "nothing is masked: give every prompt position the label -100, so only the answer is learned."
        elif got == prompt + [-100] * len(answer):
            hint = "the mask is on the answer: it is the *prompt* whose labels are -100."
        elif got == [-100] * (len(prompt) - 1) + answer + [-100] or got[:len(prompt) - 1] == want[1:len(prompt)]:
            hint = "do not shift the labels: the model compares position t's logits with label t+1 itself."
        elif len(got) != len(want):
            hint = f"return one label per token: {len(prompt)} + {len(answer)} = {len(want)} labels."
        else:
            hint = "labels = [-100] * len(prompt_ids) + answer_ids."
        raise _fail(f"for prompt {prompt} and answer {answer}, {what} returns {got}, expected {want}.", hint)
    return _passed(f"{what} masks the prompt and keeps the answer's ids on {len(cases)} cases.")


def check_format_compliance(fn: Callable[[Sequence[str], Sequence[str]], Any]) -> Passed:
    """Check ``fn(outputs, choices) -> float``: the share of outputs that *start with* an allowed answer.

    Case and leading punctuation or spaces are ignored, and a choice counts only as a whole word
    ("Positive." complies, "positively" and "The review is positive" do not), as in
    :func:`ftutils.instructions.judge`. The check recognises the lenient "mentions a choice anywhere".

    Example:
        >>> import re
        >>> def compliance(outputs, choices):
        ...     pattern = re.compile(r"\\W*(" + "|".join(map(re.escape, choices)) + r")(?!\\w)", re.IGNORECASE)
        ...     return sum(bool(pattern.match(o)) for o in outputs) / len(outputs)
        >>> check_format_compliance(compliance)
        Passed: compliance agrees with the reference on 3 cases.
    """
    from ftutils.instructions import judge

    what = f"{getattr(fn, '__name__', 'your function')}"
    sentiment = ["negative", "positive"]
    cases = [(["Positive", "negative.", "The review is positive", "I think so"], sentiment),
             ([" POSITIVE!", "positively good", "Negative, clearly", "negative"], sentiment),
             (["spam", "not spam", "Not spam.", "It is spam"], ["not spam", "spam"])]
    task_of = {tuple(sentiment): "sentiment", ("not spam", "spam"): "spam"}
    for outputs, choices in cases:
        task = task_of[tuple(choices)]
        want = sum(judge(task, o, choices[0])["compliant"] for o in outputs) / len(outputs)
        got = _as_float(_call(fn, (list(outputs), list(choices)), f"{what}(outputs, choices)"),
                        f"the value {what} returns")
        if math.isclose(got, want, abs_tol=1e-9):
            continue
        anywhere = sum(any(c in o.lower() for c in choices) for o in outputs) / len(outputs)
        if math.isclose(got, anywhere, abs_tol=1e-9):
            hint = "an answer complies only when it *starts with* a choice; mentioning one later does not count."
        elif got > 1:
            hint = "return a share between 0 and 1, not a count."
        else:
            hint = "ignore case and leading punctuation, and match a choice as a whole word at the start."
        raise _fail(f"for outputs {outputs} and choices {choices}, {what} returns {got:.3f}, expected {want:.3f}.", hint)
    return _passed(f"{what} agrees with the reference on {len(cases)} cases.")
