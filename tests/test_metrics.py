"""ftutils.metrics against hand-computed cases, and its evaluate modules offline."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ftutils import metrics


def test_accuracy_counts_matches_and_argmaxes_logits() -> None:
    assert metrics.accuracy([0, 1, 1, 0], [0, 1, 0, 0]) == 0.75
    assert metrics.accuracy(np.array([[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]]), [1, 1, 1]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="3 predictions but 2 references"):
        metrics.accuracy([0, 1, 1], [0, 1])


def test_confusion_matrix_rows_are_references_columns_predictions() -> None:
    got = metrics.confusion_matrix([0, 2, 1, 1, 2], [0, 1, 1, 2, 2])
    assert got.tolist() == [[1, 0, 0], [0, 1, 1], [0, 1, 1]]
    assert metrics.confusion_matrix([1, 1], [1, 1], labels=range(3)).tolist() == [[0, 0, 0], [0, 2, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match=r"Labels \[5\]"):
        metrics.confusion_matrix([5], [0], labels=[0, 1])


def test_macro_f1_by_hand_and_against_scikit_learn() -> None:
    preds, refs = [0, 0, 1, 1, 2], [0, 1, 1, 2, 2]
    # class 0: P 1/2 R 1 -> 2/3; class 1: P 1/2 R 1/2 -> 1/2; class 2: P 1 R 1/2 -> 2/3
    assert metrics.macro_f1(preds, refs) == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    p, r = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    assert metrics.macro_f1(p, r) == pytest.approx(sklearn_metrics.f1_score(r, p, average="macro"))
    # a class in `labels` that never occurs scores 0 and pulls the mean down
    assert metrics.macro_f1([0, 1], [0, 1], labels=[0, 1, 2]) == pytest.approx(2 / 3)


def test_bio_spans_read_like_conlleval() -> None:
    assert metrics.bio_spans(["O", "B-PER", "I-PER", "B-PER", "O"]) == [("PER", 1, 3), ("PER", 3, 4)]
    assert metrics.bio_spans(["I-LOC", "I-LOC", "I-ORG"]) == [("LOC", 0, 2), ("ORG", 2, 3)]
    assert metrics.bio_spans(["B-geo-loc", "I-geo-loc"]) == [("geo-loc", 0, 2)]  # WNUT type names
    assert metrics.bio_spans([]) == []
    with pytest.raises(ValueError, match="'PER'"):
        metrics.bio_spans(["PER"])
    with pytest.raises(TypeError, match="label ids to names"):
        metrics.bio_spans([1, 0])


def test_span_f1_hand_computed() -> None:
    refs = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG", "O", "B-PER"]]
    preds = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "I-ORG", "O", "O", "I-PER"]]
    # gold: PER x2, LOC, ORG(0,3). found: PER x2 (the stray I-PER is PER(4,5)), ORG(3,4), ORG(0,2).
    # correct: both PERs; the ORGs have a wrong type / wrong boundary.
    out = metrics.span_f1(preds, refs)
    assert (out["precision"], out["recall"], out["f1"]) == (0.5, 0.5, 0.5)
    assert out["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert out["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert out["per_type"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert out["accuracy"] == pytest.approx(6 / 9)
    names = ["O", "B-PER", "I-PER"]
    by_id = metrics.span_f1([[1, 2, 0]], [[1, 0, 0]], label_names=names)
    assert (by_id["precision"], by_id["recall"]) == (0.0, 0.0)
    with pytest.raises(ValueError, match="Sentence 0: 2 predicted tags but 1"):
        metrics.span_f1([["O", "O"]], [["O"]])


def test_squad_normalisation_exact_match_and_f1() -> None:
    assert metrics.normalize_answer("  The Eiffel Tower!! ") == "eiffel tower"
    assert metrics.normalize_answer("an apple, a pear") == "apple pear"
    out = metrics.squad(
        ["The Eiffel Tower!", "Eiffel Tower in Paris", "Lyon"],
        [["eiffel tower"], ["the Eiffel Tower", "Paris"], "Paris"],
    )
    # EM: 1, 0, 0. F1: 1; max(P 2/4 R 2/2 -> 2/3, P 1/4 R 1 -> 2/5) = 2/3; 0
    assert out["exact_match"] == pytest.approx(1 / 3)
    assert out["f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert metrics.squad([""], [[""]]) == {"exact_match": 1.0, "f1": 1.0}  # "no answer" agreed


def test_bleu_hand_computed_and_chrf_bounds() -> None:
    out = metrics.bleu(["the cat sat on the mat"], [["the cat sat on a mat"]])
    # n-gram precisions 5/6, 3/5, 2/4, 1/3, equal lengths so brevity penalty 1
    assert out["bleu"] == pytest.approx(100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25, rel=1e-6)
    assert out["brevity_penalty"] == 1.0
    # a second reference that matches exactly wins
    two_refs = [["the cat sat on a mat", "the cat sat on the mat"]]
    assert metrics.bleu(["the cat sat on the mat"], two_refs)["bleu"] == pytest.approx(100.0)
    assert metrics.chrf(["bonjour le monde"], ["bonjour le monde"])["chrf"] == pytest.approx(100.0)
    assert metrics.chrf(["xyz"], ["abc"])["chrf"] == 0.0
    with pytest.raises(ValueError, match="different numbers of references"):
        metrics.bleu(["a", "b"], [["a"], ["b", "c"]])


def test_load_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="'rouge'"):
        metrics.load("rouge")


CASES = {
    "accuracy": ({"predictions": [0, 1, 1, 0], "references": [0, 1, 0, 0]}, {}),
    "macro_f1": ({"predictions": [0, 0, 1, 1, 2], "references": [0, 1, 1, 2, 2]}, {}),
    "confusion_matrix": ({"predictions": [0, 2, 1], "references": [0, 1, 1]}, {"labels": [0, 1, 2]}),
    "span_f1": ({"predictions": [["B-PER", "O", "B-LOC"]], "references": [["B-PER", "O", "B-ORG"]]}, {}),
    "squad": ({"predictions": ["Eiffel Tower in Paris"], "references": [["the Eiffel Tower"]]}, {}),
    "bleu": ({"predictions": ["the cat sat on the mat"], "references": [["the cat sat on a mat"]]}, {}),
    "chrf": ({"predictions": ["bonjour le monde"], "references": [["bonjour tout le monde"]]}, {}),
}


def plain_results() -> dict[str, dict]:
    return {
        "accuracy": {"accuracy": metrics.accuracy(**CASES["accuracy"][0])},
        "macro_f1": {"macro_f1": metrics.macro_f1(**CASES["macro_f1"][0])},
        "confusion_matrix": {
            "confusion_matrix": metrics.confusion_matrix(**CASES["confusion_matrix"][0], labels=[0, 1, 2]).tolist()
        },
        "span_f1": metrics.span_f1(**CASES["span_f1"][0]),
        "squad": metrics.squad(**CASES["squad"][0]),
        "bleu": metrics.bleu(**CASES["bleu"][0]),
        "chrf": metrics.chrf(**CASES["chrf"][0]),
    }


@pytest.mark.parametrize("name", metrics.MODULE_NAMES)
def test_evaluate_module_gives_the_plain_functions_numbers(name: str) -> None:
    inputs, options = CASES[name]
    metric = metrics.load(name)
    assert metric.compute(**inputs, **options) == plain_results()[name]
    # the incremental API of evaluate works too
    for p, r in zip(inputs["predictions"], inputs["references"]):
        metric.add(prediction=p, reference=r)
    assert metric.compute(**options) == plain_results()[name]


@pytest.mark.slow
def test_evaluate_modules_load_offline_in_a_fresh_process(tmp_path) -> None:
    # A fresh process with the hub switched off and an empty cache: what a reader without the hub gets.
    script = textwrap.dedent(
        f"""
        import json
        from ftutils import metrics
        cases = json.loads({json.dumps(json.dumps(CASES))})
        out = {{name: metrics.load(name).compute(**inputs, **options) for name, (inputs, options) in cases.items()}}
        print("RESULT" + json.dumps(out))
        """
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    env.pop("HF_EVALUATE_CACHE", None)
    env.pop("HF_MODULES_CACHE", None)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert got == plain_results()
    assert math.isclose(got["squad"]["f1"], 2 / 3)
