"""Instruction data from the book's labelled datasets, in a chat format, with the loss on the answer only.

An instruction-tuned language model is a pretrained one fine-tuned on conversations: a user turn that
states a task in words, an assistant turn that does it. No instruction dataset ships in the package
registries this book reads, so this module builds one the way FLAN did: it turns labelled examples of
several tasks (sentiment, topic, spam, entity listing, translation) into user turns through several
natural-language *templates* per task, so the model learns the tasks rather than one phrasing.

* :data:`TASKS` holds each task's templates and, for a classification task, the answers it allows.
* :func:`build` draws seeded train/test examples per task and keeps one task out of training (the
  held-out task tests whether following instructions carries over to a task never trained on).
* :func:`chat_features` formats a conversation with the tokenizer's chat template and masks every
  token before the assistant's answer (label ``-100``), so the loss counts the answer tokens only.
* :func:`parse_choice` reads a generated answer back into one of the allowed answers (or ``None``:
  the answer is outside the label set, which is what *format compliance* counts).
* :func:`respond` generates the assistant's answers to user prompts (greedy, in the chat template);
  :func:`judge` scores one answer: in the expected format or not, correct or not.
* :func:`run_tests` answers every test prompt and judges each answer; :func:`summarise` gives each
  task's compliance and accuracy with bootstrap intervals.
* :func:`entity_answer` writes a tagged sentence's entities as the entity-listing task's answer.

Example:
    >>> TASKS["sentiment"].prompt("A gem.", template=0)
    'Is this movie review positive or negative?\\n\\nA gem.'
    >>> parse_choice("Positive, clearly.", TASKS["sentiment"].choices)
    'positive'
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ftutils.generation import IGNORE
from ftutils.seeding import derive_seed

__all__ = ["Task", "TASKS", "IGNORE", "build", "chat_features", "parse_choice", "messages", "respond", "judge",
           "entity_answer", "run_tests", "summarise"]

@dataclass(frozen=True)
class Task:
    """A task as instructions: templates holding ``{text}`` (and ``{choices}``), and the allowed answers.

    ``choices`` is empty for a free-text task (entity listing, translation)."""

    name: str
    templates: tuple[str, ...]
    choices: tuple[str, ...] = ()

    def prompt(self, text: str, *, template: int) -> str:
        """The user turn: template number ``template`` filled with ``text`` (and the choices)."""
        if not 0 <= template < len(self.templates):
            raise ValueError(f"template={template} is not allowed for task {self.name!r}: expected 0 to "
                             f"{len(self.templates) - 1} (it has {len(self.templates)} templates).")
        return self.templates[template].format(text=text, choices=" or ".join(self.choices))


TASKS: dict[str, Task] = {
    task.name: task for task in [
        Task("sentiment", (
            "Is this movie review positive or negative?\n\n{text}",
            "Review: {text}\n\nDid the critic like the film? Answer {choices}.",
            "{text}\n\nWhat is the sentiment of this review: {choices}?",
        ), ("negative", "positive")),
        Task("topic", (
            "Which section of a newspaper does this article belong to: {choices}?\n\n{text}",
            "Article: {text}\n\nTopic ({choices}):",
            "{text}\n\nClassify the topic of this news story as {choices}.",
        ), ("business", "entertainment", "politics", "sports", "tech")),
        Task("spam", (
            "Is this e-mail spam? Answer spam or not spam.\n\n{text}",
            "E-mail: {text}\n\nShould a spam filter block it? Answer {choices}.",
            "{text}\n\nClassify this message as {choices}.",
        ), ("not spam", "spam")),
        Task("entities", (
            "List the people, places, companies and other names in this text, separated by semicolons, "
            "or say none.\n\n{text}",
            "Text: {text}\n\nWhich named entities does it mention? Give type: name pairs separated by "
            "semicolons, or none.",
        )),
        Task("translation", (
            "Translate into French: {text}",
            "How does a French user interface say \"{text}\"?",
            "English: {text}\nFrench:",
        )),
    ]
}


def messages(prompt: str, answer: str | None = None) -> list[dict[str, str]]:
    """A one-turn conversation in the chat format: the user's prompt, then the assistant's answer if given."""
    turns = [{"role": "user", "content": prompt}]
    if answer is not None:
        turns.append({"role": "assistant", "content": answer})
    return turns


def build(pools: Mapping[str, tuple[Sequence[str], Sequence[str]]], *, n_train: int, n_test: int,
          held_out: str | None, seed: int) -> dict[str, list[dict[str, Any]]]:
    """Seeded train/test instruction examples from ``pools[task] = (texts, answers)``.

    Each task gives ``n_train`` training and ``n_test`` test examples, drawn without overlap (fewer if
    its pool is smaller); each example gets one of the task's templates at random. The ``held_out``
    task gives test examples only. Every draw is seeded from ``seed`` and the task's name, so one
    task's examples do not change when another task is added. Returns ``{"train": rows, "test": rows}``;
    a row holds ``task``, ``template``, ``prompt``, ``answer`` and ``messages`` (user + assistant).

    Example:
        >>> pools = {"sentiment": (["Fine.", "Awful.", "Great."], ["positive", "negative", "positive"]),
        ...          "translation": (["Save"], ["Enregistrer"])}
        >>> split = build(pools, n_train=2, n_test=1, held_out="translation", seed=0)
        >>> [len(split["train"]), len(split["test"])], sorted({r["task"] for r in split["test"]})
        ([2, 2], ['sentiment', 'translation'])
    """
    unknown = sorted(set(pools) - set(TASKS))
    if unknown:
        raise ValueError(f"Unknown task(s) {unknown}: expected names from {sorted(TASKS)}.")
    if held_out is not None and held_out not in pools:
        raise ValueError(f"held_out={held_out!r} is not one of the tasks given ({sorted(pools)}).")
    if n_train < 0 or n_test < 0:
        raise ValueError(f"n_train={n_train} and n_test={n_test} must be at least 0.")
    split: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    for name, (texts, answers) in pools.items():
        if len(texts) != len(answers):
            raise ValueError(f"Task {name!r} has {len(texts)} texts but {len(answers)} answers: pass one answer per text.")
        task = TASKS[name]
        bad = sorted({a for a in answers if task.choices and a not in task.choices})
        if bad:
            raise ValueError(f"Task {name!r} allows the answers {list(task.choices)}, got {bad}.")
        draw = random.Random(derive_seed(seed, f"instructions.build|{name}"))
        order = draw.sample(range(len(texts)), len(texts))
        test_idx = order[:n_test]
        train_idx = [] if name == held_out else order[n_test:n_test + n_train]
        for part, idx in (("test", test_idx), ("train", train_idx)):
            for i in idx:
                template = draw.randrange(len(task.templates))
                prompt = task.prompt(texts[i], template=template)
                split[part].append(dict(task=name, template=template, prompt=prompt, answer=answers[i],
                                        messages=messages(prompt, answers[i])))
    return split


def chat_features(conversations: Sequence[Sequence[Mapping[str, str]]], tokenizer: Any,
                  max_length: int, *, require_answer: bool = False) -> dict[str, list[list[int]]]:
    """Token ids of each conversation in the tokenizer's chat template, labels on the last turn only.

    The last turn must be the assistant's. Its tokens (including the template's end-of-turn token,
    so the model learns to stop) keep their ids as labels; every earlier token gets ``-100``.
    Sequences are cut to ``max_length`` from the right; a conversation whose prompt alone fills
    ``max_length`` keeps no answer token and adds no loss. With ``require_answer=True`` that is an error
    instead, naming how many conversations lost their answer and the length that keeps every answer
    (a batch of such conversations has no token to learn from: its mean loss is 0/0).

    Raises ``ValueError`` when the last turn is not the assistant's, or when the template renders the
    conversation without its prompt as a prefix (then no cut between prompt and answer exists).
    """
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("The tokenizer has no chat template: set tokenizer.chat_template, or use a model "
                         "that ships one (SmolLM2 does).")
    out: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
    needed = 0
    for turns in conversations:
        if not turns or turns[-1]["role"] != "assistant":
            raise ValueError("Each conversation must end with the assistant's turn (the answer to learn).")
        prompt = tokenizer.apply_chat_template(list(turns[:-1]), tokenize=False, add_generation_prompt=True)
        whole = tokenizer.apply_chat_template(list(turns), tokenize=False)
        if not whole.startswith(prompt):
            raise ValueError("The chat template does not render the prompt as a prefix of the whole "
                             "conversation, so the answer's tokens cannot be told apart.")
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(whole[len(prompt):], add_special_tokens=False)["input_ids"]
        ids = (prompt_ids + answer_ids)[:max_length]
        out["input_ids"].append(ids)
        out["attention_mask"].append([1] * len(ids))
        out["labels"].append(([IGNORE] * len(prompt_ids) + answer_ids)[:max_length])
        needed = max(needed, len(prompt_ids) + len(answer_ids))
    lost = sum(all(label == IGNORE for label in labels) for labels in out["labels"])
    if require_answer and lost:
        raise ValueError(f"max_length={max_length} cuts away the whole answer of {lost} of {len(out['labels'])} "
                         f"conversations (the chat template's system and user turns come first): raise it to "
                         f"{needed} to keep every answer, or shorten the texts.")
    return out


def parse_choice(generated: str, choices: Sequence[str]) -> str | None:
    """The allowed answer that ``generated`` names first (case ignored), or ``None`` if it names none.

    At the same position the longer answer wins ("not spam" before "spam"); a choice counts only as a
    whole word ("spammy" does not name "spam").

    Example:
        >>> parse_choice("It is not spam.", ["not spam", "spam"])
        'not spam'
        >>> parse_choice("I cannot tell", ["negative", "positive"]) is None
        True
    """
    text = generated.lower()
    best: tuple[int, int, str] | None = None
    for choice in choices:
        match = re.search(rf"(?<!\w){re.escape(choice.lower())}(?!\w)", text)
        if match and (best is None or (match.start(), -len(choice)) < (best[0], best[1])):
            best = (match.start(), -len(choice), choice)
    return None if best is None else best[2]


def entity_answer(tokens: Sequence[str], tags: Sequence[int], label_names: Sequence[str]) -> str:
    """The entity-listing answer for a tagged sentence: ``"type: name; type: name"``, or ``"none"``.

    Example:
        >>> entity_answer(["Ada", "met", "Babbage"], [1, 0, 1], ["O", "B-person", "I-person"])
        'person: Ada; person: Babbage'
        >>> entity_answer(["hi"], [0], ["O"])
        'none'
    """
    from ftutils.ner import entities

    found = entities(tokens, tags, label_names)
    return "; ".join(found) if found else "none"


def _entity_set(text: str) -> set[str]:
    return {" ".join(item.lower().split()) for item in text.split(";") if item.strip()}


def judge(task: str, output: str, answer: str) -> dict[str, bool]:
    """Whether ``output`` is in the task's expected format (``compliant``) and whether it is ``correct``.

    A classification task: compliant when the output *starts with* one of the allowed answers (case and
    surrounding punctuation ignored; "positive." counts, "The review is positive" does not), correct when
    that answer is ``answer``. Entity listing: compliant when it is "none" or every ``;``-separated item
    reads ``type: name``; correct when the set of items equals the reference's. Translation: compliant
    when it is one non-empty line; correct on an exact match (case and spaces ignored).

    Example:
        >>> judge("sentiment", "Positive.", "positive")
        {'compliant': True, 'correct': True}
        >>> judge("sentiment", "The review is positive", "positive")
        {'compliant': False, 'correct': False}
        >>> judge("entities", "person: Ada;  geo-loc: London", "geo-loc: london; person: Ada")
        {'compliant': True, 'correct': True}
    """
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}: expected one of {sorted(TASKS)}.")
    choices = TASKS[task].choices
    text = output.strip()
    if choices:
        named = parse_choice(text, choices)
        starts = named is not None and re.match(rf"\W*{re.escape(named)}(?!\w)", text, flags=re.IGNORECASE)
        compliant = bool(starts)
        return {"compliant": compliant, "correct": compliant and named == answer}
    if task == "entities":
        items = [item.strip() for item in text.split(";") if item.strip()]
        compliant = text.lower().rstrip(".") == "none" or (
            bool(items) and all(re.fullmatch(r"[\w-]+: .+", item) for item in items))
        if text.lower().rstrip(".") == "none" or answer == "none":
            correct = text.lower().rstrip(".") == answer
        else:
            correct = _entity_set(text) == _entity_set(answer)
        return {"compliant": compliant, "correct": compliant and correct}
    compliant = bool(text) and "\n" not in text
    return {"compliant": compliant, "correct": compliant and " ".join(text.lower().split()) == " ".join(answer.lower().split())}


@torch.inference_mode()
def respond(model: Any, tokenizer: Any, prompts: Sequence[str], *, max_new_tokens: int,
            batch_size: int = 16) -> list[str]:
    """The model's answers to ``prompts``, each a user turn in the tokenizer's chat template (greedy decoding).

    Prompts are left-padded into batches; generation stops at the template's end-of-turn token (or
    after ``max_new_tokens``). Special tokens are dropped and the answer is stripped.

    Example:
        >>> respond(model, tokenizer, ["Is this movie review positive or negative?\\n\\nA gem."],
        ...         max_new_tokens=4)  # doctest: +SKIP
        ['Positive']
    """
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("The tokenizer has no chat template: set tokenizer.chat_template, or use a model "
                         "that ships one (SmolLM2 does).")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    stop = [tokenizer.eos_token_id]
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() else None
    if end_of_turn is not None and end_of_turn not in stop:
        stop.append(end_of_turn)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    answers: list[str] = []
    try:
        for begin in range(0, len(prompts), batch_size):
            texts = [tokenizer.apply_chat_template(messages(p), tokenize=False, add_generation_prompt=True)
                     for p in prompts[begin:begin + batch_size]]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            generated = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id, eos_token_id=stop)
            new = generated[:, batch["input_ids"].shape[1]:]
            answers.extend(text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return answers


def run_tests(model: Any, tokenizer: Any, rows: Sequence[Mapping[str, Any]], *,
              max_new_tokens: int | Mapping[str, int], batch_size: int = 16) -> "pd.DataFrame":
    """Answer each test row's prompt (:func:`respond`) and judge the answer (:func:`judge`).

    ``max_new_tokens`` is one budget, or one per task (a label needs fewer tokens than a translation).
    Returns one row per prompt: ``task``, ``prompt``, ``answer`` (the reference), ``output``,
    ``compliant``, ``correct``, in the order of ``rows``.
    """
    import pandas as pd

    out: list[dict[str, Any]] = []
    for task in dict.fromkeys(r["task"] for r in rows):
        these = [r for r in rows if r["task"] == task]
        budget = max_new_tokens if isinstance(max_new_tokens, int) else max_new_tokens[task]
        answers = respond(model, tokenizer, [r["prompt"] for r in these], max_new_tokens=budget,
                          batch_size=batch_size)
        for row, output in zip(these, answers):
            out.append(dict(task=task, prompt=row["prompt"], answer=row["answer"], output=output,
                            **judge(task, output, row["answer"])))
    order = {id(r): i for i, r in enumerate(rows)}
    positions = [order[id(r)] for task in dict.fromkeys(r["task"] for r in rows) for r in rows if r["task"] == task]
    return pd.DataFrame(out, index=positions).sort_index()


def summarise(tests: "pd.DataFrame", *, n_resamples: int = 1000, seed: int = 0) -> "pd.DataFrame":
    """Per task: test prompts, the share in the expected format and the share correct, each with its
    95 % bootstrap interval over the test prompts (:func:`ftutils.evaluation.bootstrap_ci`).

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame(dict(task=["spam"] * 4, compliant=[1, 1, 1, 0], correct=[1, 0, 1, 0]))
        >>> row = summarise(t, n_resamples=200).loc["spam"]
        >>> int(row["n"]), float(row["compliant"]), float(row["correct"])
        (4, 0.75, 0.5)
    """
    import numpy as np
    import pandas as pd

    from ftutils.evaluation import bootstrap_ci

    def share(values: Any, _: Any) -> float:
        return float(np.mean(values))

    rows = {}
    for task, group in tests.groupby("task", sort=False):
        row: dict[str, Any] = {"n": len(group)}
        for column in ("compliant", "correct"):
            values = group[column].astype(float).to_numpy()
            ci = bootstrap_ci(share, values, values, n_resamples=n_resamples, seed=seed)
            row[column], row[f"{column} 95% CI"] = round(ci.estimate, 3), f"{ci.low:.2f}–{ci.high:.2f}"
        rows[task] = row
    return pd.DataFrame.from_dict(rows, orient="index")
