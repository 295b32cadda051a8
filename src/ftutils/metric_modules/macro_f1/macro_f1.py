"""Unweighted mean over classes of the per-class F1.

An ``evaluate`` module that delegates to :mod:`ftutils.metrics`, so it loads without the Hugging Face hub:

    from ftutils import metrics
    metric = metrics.load("macro_f1")  # = evaluate.load(<this folder>)
    metric.compute(predictions=[0, 0, 1, 1], references=[0, 1, 1, 1])  # {"macro_f1": 0.733...}
"""

import datasets
import evaluate

from ftutils import metrics

_DESCRIPTION = 'Unweighted mean over classes of the per-class F1.'
_KWARGS_DESCRIPTION = "See ftutils.metrics.macro_f1 for arguments and scales."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MacroF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, labels=None):
        return {"macro_f1": metrics.macro_f1(predictions, references, labels)}
