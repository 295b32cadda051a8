"""The book's fine-tuning recipe, written once: seed -> fresh model -> train -> score.

Every fine-tuning run in the book follows the same steps, in the same order:

1. ``transformers.set_seed(config.seed)``;
2. build a fresh model whose new weights are drawn from that seed (``make_model(seed)``, e.g.
   ``lambda seed: models.load(name, "sequence-classification", labels=labels, seed=seed)[0]``);
3. optionally attach a regulariser built on that model (L2-SP anchors the *loaded* weights), and run a
   hook on the untrained model (a linear-probe head for LP-FT, a measurement before training);
4. :func:`ftutils.trainer.train` on the tokenised training split (scored on ``validation`` at the end);
5. optionally :func:`ftutils.trainer.predict` on a tokenised ``test`` split.

:func:`fine_tune` is those steps. :func:`ftutils.search.train_classifier` (the objective of a search)
and :func:`ftutils.evaluation.finetune_method` (a learning-curve method) both call it, so a search and a
learning curve train a model the same way, with the seeds drawn at the same points (see
:mod:`ftutils.seeding`): results cached by :func:`ftutils.experiments.run_grid` stay valid.

Tokenising is not a step of the recipe: a dataset is tokenised once (``batching.tokenize_classification``)
and many runs train on it; the recipe takes the tokenised splits. It lives in its own module, not in
:mod:`ftutils.trainer`, because it composes the trainer with a model factory and hooks and knows nothing
about how a step is taken.

Example:
    >>> import datasets, transformers
    >>> from ftutils.trainer import TrainingConfig
    >>> def tiny(seed):
    ...     cfg = transformers.BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1,
    ...                                   num_attention_heads=2, intermediate_size=8)
    ...     return transformers.BertForSequenceClassification(cfg)
    >>> data = datasets.Dataset.from_dict({"input_ids": [[1, 5, 2], [1, 6, 2]] * 4, "labels": [0, 1] * 4})
    >>> run = fine_tune(tiny, data, config=TrainingConfig(epochs=1, batch_size=4, progress=False,
    ...                                                    eval_strategy="no"), test=data)
    >>> run.result.global_step, run.test_logits.shape
    (2, (8, 2))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FineTuned", "fine_tune"]


@dataclass
class FineTuned:
    """What :func:`fine_tune` returns: the trained ``model``, the :class:`ftutils.trainer.TrainResult`,
    the model's logits on ``test`` when one was given, and the ``regularizer`` it built (else ``None``;
    e.g. for L2-SP's ``distance_by_layer()`` after training)."""

    model: Any
    result: Any
    test_logits: np.ndarray | None = None
    regularizer: Any = None


def fine_tune(
    make_model: Callable[[int], Any],
    train: Any,
    validation: Any = None,
    *,
    config: Any,
    tokenizer: Any = None,
    regularizer: Callable[[Any], Any] | None = None,
    before_training: Callable[[Any], Any] | None = None,
    test: Any = None,
    compute_metrics: Callable[[np.ndarray, np.ndarray], Mapping[str, float]] | None = None,
) -> FineTuned:
    """Seed, build a fresh model with ``make_model(config.seed)``, train it on ``train``, score it.

    ``train``/``validation``/``test`` are tokenised datasets with ``labels``; ``config`` is a
    :class:`ftutils.trainer.TrainingConfig` (its ``seed`` seeds everything). ``regularizer(model)``
    builds the regulariser passed to :func:`ftutils.trainer.train` (e.g.
    ``lambda m: regularizers.make_regularizer("l2sp", m, 0.1)``); ``before_training(model)`` runs on
    the untrained model after it (e.g. :func:`ftutils.models.init_head_from_probe`). ``validation``
    is scored by the trainer (``result.final_metrics``); ``test``, if given, by
    :func:`ftutils.trainer.predict` (``test_logits``). See the module docstring for an example.
    """
    import transformers

    from ftutils import trainer

    transformers.set_seed(config.seed)
    model = make_model(config.seed)
    reg = regularizer(model) if regularizer is not None else None
    if before_training is not None:
        before_training(model)
    result = trainer.train(model, train, validation, config=config, tokenizer=tokenizer, regularizer=reg,
                           compute_metrics=compute_metrics)
    logits = trainer.predict(model, test, tokenizer=tokenizer) if test is not None else None
    return FineTuned(model, result, logits, reg)
