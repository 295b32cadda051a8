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

from ftutils.generation import IGNORE
from ftutils.seeding import derive_seed

__all__ = ["Task", "TASKS", "IGNORE", "build", "chat_features", "parse_choice", "messages"]

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
                  max_length: int) -> dict[str, list[list[int]]]:
    """Token ids of each conversation in the tokenizer's chat template, labels on the last turn only.

    The last turn must be the assistant's. Its tokens (including the template's end-of-turn token,
    so the model learns to stop) keep their ids as labels; every earlier token gets ``-100``.
    Sequences are cut to ``max_length`` from the right.

    Raises ``ValueError`` when the last turn is not the assistant's, or when the template renders the
    conversation without its prompt as a prefix (then no cut between prompt and answer exists).
    """
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("The tokenizer has no chat template: set tokenizer.chat_template, or use a model "
                         "that ships one (SmolLM2 does).")
    out: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
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
