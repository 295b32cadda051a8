"""Translation with a decoder-only model: a prompt template, loss on the answer only, greedy decoding.

A causal language model translates when it continues a prompt such as::

    Translate English to French.
    English: Save changes
    French: Enregistrer les modifications<eos>

Fine-tuning it on such texts with the plain language-modelling loss would also teach it to predict the
*prompt* (the English side and the fixed instruction). :func:`causal_lm_features` masks those
positions: their label is ``-100``, so the loss (and the gradient) comes from the answer tokens and the
end-of-sequence token only. :func:`translate` decodes greedily, stopping at end-of-sequence or at the
end of the line.

Example:
    >>> TEMPLATE.format(source="Save")
    'Translate English to French.\\nEnglish: Save\\nFrench:'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["TEMPLATE", "causal_lm_features", "translate", "perplexity"]

TEMPLATE = "Translate English to French.\nEnglish: {source}\nFrench:"
IGNORE = -100


def causal_lm_features(
    sources: Sequence[str],
    targets: Sequence[str],
    tokenizer: Any,
    max_length: int,
    *,
    template: str = TEMPLATE,
) -> dict[str, list[list[int]]]:
    """``input_ids`` = prompt + " " + target + eos; ``labels`` = -100 over the prompt, the ids elsewhere.

    The model shifts labels internally (position t predicts token t+1), so ``labels`` is aligned with
    ``input_ids``. Sequences longer than ``max_length`` are cut from the right (the prompt is kept;
    a pair whose prompt alone fills ``max_length`` keeps no answer token and so adds no loss).

    Example:
        >>> class Chars:  # a toy tokenizer: one id per character, eos = 0
        ...     eos_token_id = 0
        ...     def __call__(self, text, add_special_tokens=False):
        ...         return {"input_ids": [ord(c) for c in text]}
        >>> f = causal_lm_features(["a"], ["b"], Chars(), 32, template="{source}=")
        >>> f["input_ids"][0], f["labels"][0]
        ([97, 61, 32, 98, 0], [-100, -100, 32, 98, 0])
    """
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} sources but {len(targets)} targets: pass one target per source.")
    if tokenizer.eos_token_id is None:
        raise ValueError("The tokenizer has no eos token: the model could not learn where to stop.")
    if "{source}" not in template:
        raise ValueError(f"template={template!r} has no '{{source}}' placeholder.")
    out: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
    for source, target in zip(sources, targets):
        prompt = tokenizer(template.format(source=source), add_special_tokens=False)["input_ids"]
        answer = tokenizer(" " + target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids = (prompt + answer)[:max_length]
        labels = ([IGNORE] * len(prompt) + answer)[:max_length]
        out["input_ids"].append(ids)
        out["attention_mask"].append([1] * len(ids))
        out["labels"].append(labels)
    return out


@torch.inference_mode()
def translate(
    model: Any,
    tokenizer: Any,
    sources: Sequence[str],
    *,
    template: str = TEMPLATE,
    max_new_tokens: int = 32,
    batch_size: int = 32,
) -> list[str]:
    """Greedy decoding of ``template.format(source=...)`` for each source; returns the first line.

    Prompts are left-padded into batches (a decoder continues from the last position), generation stops
    at eos, and the text is cut at the first newline (the model may go on with another "English:").

    Example:
        >>> translate(model, tokenizer, ["Save"])  # doctest: +SKIP
        ['Enregistrer']
    """
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    results: list[str] = []
    try:
        for begin in range(0, len(sources), batch_size):
            prompts = [template.format(source=s) for s in sources[begin:begin + batch_size]]
            batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            generated = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            new = generated[:, batch["input_ids"].shape[1]:]
            for text in tokenizer.batch_decode(new, skip_special_tokens=True):
                results.append(text.strip().split("\n")[0].strip())
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return results


@torch.inference_mode()
def perplexity(model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int, batch_size: int = 8) -> float:
    """exp(mean negative log-likelihood per predicted token) of ``texts``, each cut to ``max_length`` tokens.

    Every token after the first of each text is predicted (no prompt is masked), so this measures how well
    the model still models plain text: the usual gauge of *forgetting* after fine-tuning on another task.
    Texts are right-padded into batches; padding is never scored, and the result does not depend on
    ``batch_size``.

    Example:
        >>> perplexity(model, tokenizer, ["The cat sat on the mat."], max_length=32)  # doctest: +SKIP
        41.7
    """
    if not texts:
        raise ValueError("perplexity needs at least one text.")
    if max_length < 2:
        raise ValueError(f"max_length={max_length} is not allowed: at least 2 tokens are needed to predict one.")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total_nll, total_tokens = 0.0, 0
    try:
        for begin in range(0, len(texts), batch_size):
            ids = [tokenizer(t, add_special_tokens=False)["input_ids"][:max_length] for t in texts[begin:begin + batch_size]]
            width = max(len(i) for i in ids)
            input_ids = torch.zeros(len(ids), width, dtype=torch.long)
            mask = torch.zeros(len(ids), width, dtype=torch.long)
            for row, i in enumerate(ids):
                input_ids[row, :len(i)] = torch.tensor(i)
                mask[row, :len(i)] = 1
            input_ids, mask = input_ids.to(device), mask.to(device)
            logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1].float()
            targets, scored = input_ids[:, 1:], mask[:, 1:].bool()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
            total_nll += float(nll[scored].sum())
            total_tokens += int(scored.sum())
    finally:
        model.train(was_training)
    if total_tokens == 0:
        raise ValueError("No text has two tokens: nothing to predict.")
    return float(torch.exp(torch.tensor(total_nll / total_tokens)))
