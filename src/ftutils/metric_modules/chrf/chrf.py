"""Corpus chrF from sacrebleu (0-100); word_order=2 gives chrF++.

An ``evaluate`` module that delegates to :mod:`ftutils.metrics`, so it loads without the Hugging Face hub:

    from ftutils import metrics
    metric = metrics.load("chrf")  # = evaluate.load(<this folder>)
    metric.compute(predictions=["Bonjour"], references=[["Bonjour"]])  # {"chrf": 100.0}
"""

import datasets
import evaluate

from ftutils import metrics

_DESCRIPTION = 'Corpus chrF from sacrebleu (0-100); word_order=2 gives chrF++.'
_KWARGS_DESCRIPTION = "See ftutils.metrics.chrf for arguments and scales."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Chrf(evaluate.Metric):
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

    def _compute(self, predictions, references, word_order=0):
        return metrics.chrf(predictions, references, word_order=word_order)
