"""Extractive question answering: questions built from NER data, start/end features, answer decoding.

An extractive QA model reads ``[CLS] question [SEP] context [SEP]`` and scores every context token as
the answer's start and as its end (two logits per token, the ``qa_outputs`` head). The pieces:

* :func:`ner_to_qa` builds a SQuAD-2.0-style set from NER annotations (the *machine reading* view of
  NER): for a sentence and an entity type, the question "Which company is mentioned?" has the gold
  entities of that type as answers, or none (an *unanswerable* question, answer ``""``);
* :func:`prepare_features` tokenises question/context pairs, maps each answer's character span to
  token positions through the tokenizer's ``offset_mapping``, and points unanswerable (or truncated)
  answers at ``[CLS]`` (position 0). The start/end positions go in a two-element ``labels`` column so
  that :func:`ftutils.trainer.train` (which needs ``labels``) can train the model wrapped in
  :class:`QAForTrainer`;
* :func:`best_answer` turns start/end logits back into text: the best span with start <= end, inside
  the context and at most ``max_answer_tokens`` long, or ``""`` when the no-answer score (start and end
  at ``[CLS]``) is higher;
* :class:`GazetteerQA` is the baseline: answer with a training answer of that type found in the context.

Contexts here are short (tweets), so each question becomes one feature; long documents would need the
sliding window (``stride``, ``return_overflowing_tokens``) of SQuAD-style preprocessing.

Example:
    >>> import numpy as np
    >>> offsets = [None, None, (0, 3), (4, 9), (10, 15), None]  # [CLS] q [SEP] "met Alice today" [SEP]
    >>> start = np.array([0., 0, 0, 5, 0, 0]); end = np.array([0., 0, 0, 4, 1, 0])
    >>> best_answer(start, end, offsets, "met Alice today")
    'Alice'
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ftutils.metrics import bio_spans

__all__ = ["QUESTIONS", "ner_to_qa", "prepare_features", "QAForTrainer", "best_answer", "answers_from_logits",
           "GazetteerQA"]

# WNUT-16 entity types -> the question asked about a tweet.
QUESTIONS: dict[str, str] = {
    "company": "Which company is mentioned?",
    "facility": "Which facility is mentioned?",
    "geo-loc": "Which place is mentioned?",
    "movie": "Which movie is mentioned?",
    "musicartist": "Which music artist is mentioned?",
    "other": "Which other named thing is mentioned?",
    "person": "Which person is mentioned?",
    "product": "Which product is mentioned?",
    "sportsteam": "Which sports team is mentioned?",
    "tvshow": "Which TV show is mentioned?",
}


def _fraction(text: str) -> float:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16) / 16**12


def ner_to_qa(
    split: Any,
    label_names: Sequence[str],
    *,
    questions: Mapping[str, str] = QUESTIONS,
    unanswerable_per_answerable: float = 1.0,
    tokens_column: str = "tokens",
    tags_column: str = "ner_tags",
) -> dict[str, list]:
    """Question/context/answers rows from a BIO-tagged split.

    For each sentence (context = its tokens joined by single spaces) and each type in ``questions``:
    if the sentence has entities of that type, one answerable question whose answers are all of them
    (text and character start); otherwise an unanswerable question, kept for a deterministic
    (hash-chosen) share of sentences so that there are about ``unanswerable_per_answerable``
    unanswerable questions per answerable one. Returns a dict of columns ``id``, ``type``,
    ``question``, ``context``, ``answers`` (``{"text": [...], "answer_start": [...]}``), as in SQuAD 2.0.

    Example:
        >>> split = {"tokens": [["I", "love", "Apple"]], "ner_tags": [[0, 0, 1]]}
        >>> rows = ner_to_qa(split, ["O", "B-company", "I-company"], questions={"company": "Which company?"})
        >>> rows["question"], rows["answers"]
        (['Which company?'], [{'text': ['Apple'], 'answer_start': [7]}])
    """
    if unanswerable_per_answerable < 0:
        raise ValueError(f"unanswerable_per_answerable={unanswerable_per_answerable!r}: expected a number >= 0.")
    unknown = sorted(set(questions) - {n[2:] for n in label_names if n[:2] in ("B-", "I-")})
    if unknown:
        raise ValueError(f"No entity type(s) {unknown} in the labels; expected types among "
                         f"{sorted({n[2:] for n in label_names if n != 'O'})}.")
    sentences, tags = list(split[tokens_column]), list(split[tags_column])
    contexts, spans = [], []
    for words, ids in zip(sentences, tags):
        starts, position = [], 0
        for word in words:
            starts.append(position)
            position += len(word) + 1
        context = " ".join(words)
        found = defaultdict(list)
        for kind, a, b in bio_spans([label_names[int(t)] for t in ids]):
            begin, end = starts[a], starts[b - 1] + len(words[b - 1])
            found[kind].append((context[begin:end], begin))
        contexts.append(context)
        spans.append(found)
    n_answerable = sum(1 for f in spans for kind in questions if f.get(kind))
    n_unanswerable = sum(1 for f in spans for kind in questions if not f.get(kind))
    keep = min(1.0, unanswerable_per_answerable * n_answerable / max(1, n_unanswerable))
    rows: dict[str, list] = {"id": [], "type": [], "question": [], "context": [], "answers": []}
    for n, (context, found) in enumerate(zip(contexts, spans)):
        for kind, question in questions.items():
            answers = found.get(kind, [])
            if not answers and _fraction(f"{kind}|{context}") >= keep:
                continue
            rows["id"].append(f"{n}-{kind}")
            rows["type"].append(kind)
            rows["question"].append(question)
            rows["context"].append(context)
            rows["answers"].append({"text": [t for t, _ in answers], "answer_start": [s for _, s in answers]})
    return rows


def prepare_features(rows: Mapping[str, Sequence], tokenizer: Any, max_length: int) -> dict[str, list]:
    """Tokenise question/context pairs; ``labels`` = [start token, end token] of the first answer.

    Unanswerable questions, and answers cut off by truncation, point at position 0 (``[CLS]``).
    Also returns ``offsets``: per token, the ``(start, end)`` characters in the context, or ``None``
    for question and special tokens (what :func:`best_answer` needs).

    Example:
        >>> import ftutils.models  # doctest: +SKIP
        >>> tok = ftutils.models.load("minilm", "base")[1]  # doctest: +SKIP
        >>> rows = {"question": ["Who?"], "context": ["met Alice today"],
        ...         "answers": [{"text": ["Alice"], "answer_start": [4]}]}  # doctest: +SKIP
        >>> f = prepare_features(rows, tok, 32); tok.decode(f["input_ids"][0][f["labels"][0][0]])  # doctest: +SKIP
        'alice'
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("prepare_features needs a fast tokenizer (offset mappings).")
    enc = tokenizer(list(rows["question"]), list(rows["context"]), truncation="only_second",
                    max_length=max_length, return_offsets_mapping=True)
    out: dict[str, list] = {k: list(v) for k, v in enc.items() if k != "offset_mapping"}
    out["labels"], out["offsets"] = [], []
    for i, answers in enumerate(rows["answers"]):
        sequence_ids = enc.sequence_ids(i)
        offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][i], sequence_ids)]
        start_tok = end_tok = 0
        if answers["text"]:
            a_start = answers["answer_start"][0]
            a_end = a_start + len(answers["text"][0])
            in_context = [j for j, o in enumerate(offsets) if o is not None]
            if in_context and offsets[in_context[-1]][1] >= a_end:  # the answer survived truncation
                start_tok = next(j for j in in_context if offsets[j][1] > a_start)
                end_tok = next(j for j in reversed(in_context) if offsets[j][0] < a_end)
        out["labels"].append([start_tok, end_tok])
        out["offsets"].append(offsets)
    return out


@dataclass
class _QAOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor


class QAForTrainer(torch.nn.Module):
    """Wrap a ``...ForQuestionAnswering`` model so that :func:`ftutils.trainer.train` can train it.

    The trainer passes ``labels``; here ``labels[:, 0]`` is the start and ``labels[:, 1]`` the end
    position (the collator pads the rest of the row with -100, which is never read). The output's
    ``logits`` stack start and end logits: shape ``(batch, tokens, 2)``.

    Example:
        >>> import transformers
        >>> cfg = transformers.BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1,
        ...                               num_attention_heads=2, intermediate_size=8)
        >>> qa = QAForTrainer(transformers.BertForQuestionAnswering(cfg))
        >>> out = qa(input_ids=torch.tensor([[1, 5, 6, 2]]), labels=torch.tensor([[2, 3, -100, -100]]))
        >>> out.logits.shape, out.loss.ndim
        (torch.Size([1, 4, 2]), 0)
    """

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model
        self.config = model.config

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> _QAOutput:
        kwargs = {"attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        if labels is not None:
            kwargs.update(start_positions=labels[:, 0], end_positions=labels[:, 1])
        out = self.model(input_ids=input_ids, **kwargs)
        return _QAOutput(loss=out.loss, logits=torch.stack([out.start_logits, out.end_logits], dim=-1))


def best_answer(start_logits: Sequence[float], end_logits: Sequence[float],
                offsets: Sequence[tuple[int, int] | None], context: str, *,
                max_answer_tokens: int = 15, null_bias: float = 0.0) -> str:
    """The answer text for one feature, or ``""`` (no answer).

    Scores every span (i, j) of context tokens with i <= j < i + ``max_answer_tokens`` by
    ``start_logits[i] + end_logits[j]``; the no-answer score is ``start_logits[0] + end_logits[0]``
    (both at ``[CLS]``) plus ``null_bias``. Returns the context characters of the best span if it beats
    the no-answer score. Positions beyond ``len(offsets)`` (batch padding) are never chosen.

    Example:
        >>> best_answer([9, 0, 1], [9, 1, 0], [None, (0, 2), (3, 5)], "hi yo")
        ''
    """
    n = len(offsets)
    start = np.asarray(start_logits, dtype=float)[:n]
    end = np.asarray(end_logits, dtype=float)[:n]
    candidates = [i for i, o in enumerate(offsets) if o is not None]
    best, best_score = "", float(start[0] + end[0]) + null_bias
    for i in candidates:
        for j in candidates:
            if j < i or j >= i + max_answer_tokens:
                continue
            score = float(start[i] + end[j])
            if score > best_score:
                best, best_score = context[offsets[i][0]:offsets[j][1]], score
    return best


def answers_from_logits(logits: np.ndarray, features: Mapping[str, Sequence], contexts: Sequence[str],
                        **kwargs: Any) -> list[str]:
    """:func:`best_answer` for every feature; ``logits`` is ``(features, tokens, 2)`` as predicted
    by :class:`QAForTrainer`. Keyword arguments go to :func:`best_answer`."""
    return [best_answer(logits[k, :, 0], logits[k, :, 1], offsets, context, **kwargs)
            for k, (offsets, context) in enumerate(zip(features["offsets"], contexts))]


class GazetteerQA:
    """Baseline: answer with the most frequent training answer of the question's type found in the context.

    Matching is case-insensitive on whole words; no match gives ``""`` (no answer).

    Example:
        >>> g = GazetteerQA().fit(["company"], [{"text": ["Apple"], "answer_start": [0]}])
        >>> g.predict(["company", "company"], ["i like apple pie", "nothing here"])
        ['apple', '']
    """

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {}

    def fit(self, types: Sequence[str], answers: Sequence[Mapping[str, Sequence]]) -> GazetteerQA:
        counts: dict[str, Counter] = defaultdict(Counter)
        for kind, answer in zip(types, answers):
            counts[kind].update(t.casefold() for t in answer["text"])
        self.names = {k: [name for name, _ in c.most_common()] for k, c in counts.items()}
        return self

    def predict(self, types: Sequence[str], contexts: Sequence[str]) -> list[str]:
        out = []
        for kind, context in zip(types, contexts):
            padded = f" {context.casefold()} "
            match = next((name for name in self.names.get(kind, []) if f" {name} " in padded), "")
            if match:
                start = padded.index(f" {match} ")
                match = context[start:start + len(match)]
            out.append(match)
        return out
