"""Fraction of predicted labels equal to the reference label.

An ``evaluate`` module that delegates to :mod:`ftutils.metrics`, so it loads without the Hugging Face hub:

    from ftutils import metrics
    metric = metrics.load("accuracy")  # = evaluate.load(<this folder>)
    metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])  # {"accuracy": 0.666...}
"""

import datasets
import evaluate

from ftutils import metrics

_DESCRIPTION = 'Fraction of predicted labels equal to the reference label.'
_KWARGS_DESCRIPTION = "See ftutils.metrics.accuracy for arguments and scales."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        return {"accuracy": metrics.accuracy(predictions, references)}
