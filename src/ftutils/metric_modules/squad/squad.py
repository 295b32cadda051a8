"""SQuAD-style exact match and token F1 (fractions), best over each question's gold answers.

An ``evaluate`` module that delegates to :mod:`ftutils.metrics`, so it loads without the Hugging Face hub:

    from ftutils import metrics
    metric = metrics.load("squad")  # = evaluate.load(<this folder>)
    metric.compute(predictions=["Denver Broncos"], references=[["The Denver Broncos"]])  # {"exact_match": 1.0, "f1": 1.0}
"""

import datasets
import evaluate

from ftutils import metrics

_DESCRIPTION = "SQuAD-style exact match and token F1 (fractions), best over each question's gold answers."
_KWARGS_DESCRIPTION = "See ftutils.metrics.squad for arguments and scales."


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Squad(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}),
        )

    def _compute(self, predictions, references):
        return metrics.squad(predictions, references)
