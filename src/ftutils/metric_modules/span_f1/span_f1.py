"""Entity-level precision/recall/F1 for BIO tags, micro and per type (conlleval counting).

An ``evaluate`` module that delegates to :mod:`ftutils.metrics`, so it loads without the Hugging Face hub:

    from ftutils import metrics
    metric = metrics.load("span_f1")  # = evaluate.load(<this folder>)
    metric.compute(predictions=[["B-PER", "O"]], references=[["B-PER", "O"]])  # {"f1": 1.0, ...}
"""

import datasets
import evaluate

from ftutils import metrics

_DESCRIPTION = 'Entity-level precision/recall/F1 for BIO tags, micro and per type (conlleval counting).'
_KWARGS_DESCRIPTION = "See ftutils.metrics.span_f1 for arguments and scales."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SpanF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Sequence(datasets.Value("string")), "references": datasets.Sequence(datasets.Value("string"))}),
        )

    def _compute(self, predictions, references):
        return metrics.span_f1(predictions, references)
