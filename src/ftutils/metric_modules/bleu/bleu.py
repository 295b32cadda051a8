"""Corpus BLEU from sacrebleu (0-100), one or several references per sentence.

An ``evaluate`` module that delegates to :mod:`ftutils.metrics`, so it loads without the Hugging Face hub:

    from ftutils import metrics
    metric = metrics.load("bleu")  # = evaluate.load(<this folder>)
    metric.compute(predictions=["the cat sat"], references=[["the cat sat"]])  # {"bleu": 100.0, ...}
"""

import datasets
import evaluate

from ftutils import metrics

_DESCRIPTION = 'Corpus BLEU from sacrebleu (0-100), one or several references per sentence.'
_KWARGS_DESCRIPTION = "See ftutils.metrics.bleu for arguments and scales."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Bleu(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
            datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}),
            datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        ],
        )

    def _compute(self, predictions, references, tokenize="13a"):
        return metrics.bleu(predictions, references, tokenize=tokenize)
