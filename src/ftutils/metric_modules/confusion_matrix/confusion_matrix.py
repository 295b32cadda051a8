"""Counts C[i][j] of examples with reference labels[i] predicted as labels[j].

An ``evaluate`` module that delegates to :mod:`ftutils.metrics`, so it loads without the Hugging Face hub:

    from ftutils import metrics
    metric = metrics.load("confusion_matrix")  # = evaluate.load(<this folder>)
    metric.compute(predictions=[0, 1], references=[1, 1], labels=[0, 1])  # {"confusion_matrix": [[0, 0], [1, 1]]}
"""

import datasets
import evaluate

from ftutils import metrics

_DESCRIPTION = 'Counts C[i][j] of examples with reference labels[i] predicted as labels[j].'
_KWARGS_DESCRIPTION = "See ftutils.metrics.confusion_matrix for arguments and scales."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ConfusionMatrix(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, labels=None):
        return {"confusion_matrix": metrics.confusion_matrix(predictions, references, labels).tolist()}
