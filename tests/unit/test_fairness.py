"""Fairness metrics, gaps and gate checks (maas.rai.fairness)."""

from __future__ import annotations

import numpy as np
import pytest
from maas.rai.fairness import GAP_NAMES, check_gates, evaluate, fairness_gaps, group_metrics


def test_binary_gaps_match_hand_computed_values():
    # group a: 4 rows, group b: 4 rows; positive class 1
    y_true = [1, 1, 0, 0, 1, 1, 0, 0]
    y_pred = [1, 1, 1, 0, 1, 0, 0, 0]
    groups = ["a"] * 4 + ["b"] * 4
    m = group_metrics(y_true, y_pred, groups, positive_class=1)
    a, b = m["groups"]["a"], m["groups"]["b"]
    assert a["selection_rate"] == 0.75 and b["selection_rate"] == 0.25
    assert a["tpr"] == 1.0 and b["tpr"] == 0.5
    assert a["fpr"] == 0.5 and b["fpr"] == 0.0
    assert a["accuracy"] == 0.75 and b["accuracy"] == 0.75
    gaps, details = fairness_gaps(m)
    assert set(gaps) == set(GAP_NAMES)
    assert gaps["demographic_parity_difference"] == pytest.approx(0.5)
    assert gaps["equalized_odds_difference"] == pytest.approx(0.5)  # max(TPR gap .5, FPR gap .5)
    assert details["multiclass"] == "binary"
    assert details["accuracy_difference"] == 0.0


def test_multiclass_is_one_vs_rest_max():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    g = np.array(["x", "y"])[rng.integers(0, 2, 600)]
    pred = y.copy()
    # group y: class 2 is always predicted as 0 -> large gaps for class 2 and 0
    pred[(g == "y") & (y == 2)] = 0
    m = group_metrics(y, pred, g)
    gaps, details = fairness_gaps(m)
    per = details["per_class"]["equalized_odds_difference"]
    assert gaps["equalized_odds_difference"] == pytest.approx(max(per.values()))
    assert per["2"] == pytest.approx(1.0)  # TPR of class 2: 1.0 in x, 0.0 in y
    assert details["worst_class"]["equalized_odds_difference"] == "2"
    assert details["multiclass"] == "one-vs-rest max"
    assert 0 < gaps["demographic_parity_difference"] <= 1


def test_perfectly_fair_classifier_has_zero_gaps_and_passes_gates():
    y = np.array([0, 1] * 50)
    g = np.array(["a"] * 50 + ["b"] * 50)
    block = evaluate(y, y, g, gates={"min_accuracy": 0.9, "max_fairness_gap": 0.05}, attribute="g")
    assert block["gaps"] == {"demographic_parity_difference": 0.0, "equalized_odds_difference": 0.0}
    assert block["violations"] == []
    assert block["attribute"] == "g"


def test_probability_matrix_and_gate_violations():
    y = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    probs = np.array([[0.9, 0.1]] * 4 + [[0.2, 0.8]] * 4)  # group b always gets class 1
    g = np.array(["a"] * 4 + ["b"] * 4)
    block = evaluate(
        y, probs, g, gates={"max_fairness_gap": 0.2, "min_accuracy": 0.9, "min_group_accuracy": 0.6}
    )
    v = " ".join(block["violations"])
    assert "demographic_parity_difference" in v and "equalized_odds_difference" in v
    assert "min_accuracy" in v and "min_group_accuracy" in v


def test_check_gates_flat_metrics_specific_gaps_and_unknown_gate():
    gaps = {"demographic_parity_difference": 0.3, "equalized_odds_difference": 0.1}
    assert check_gates({"accuracy": 0.95}, gaps, {"max_equalized_odds_difference": 0.2}) == []
    out = check_gates({"accuracy": 0.95}, gaps, {"max_demographic_parity_difference": 0.2, "max_gap_typo": 1})
    assert len(out) == 2 and "unknown gate 'max_gap_typo'" in out[1]
    assert check_gates({"accuracy": 0.5}, gaps, None) == []
    # a gap that could not be computed does not fail the gate
    assert check_gates({}, {"demographic_parity_difference": None}, {"max_fairness_gap": 0.1}) == []


def test_undefined_rates_are_skipped_not_zero():
    # group b has no positives of class 1: its TPR is undefined and left out of the gap
    m = group_metrics([1, 0, 0, 0], [1, 0, 0, 0], ["a", "a", "b", "b"], positive_class=1)
    assert m["groups"]["b"]["tpr"] is None
    gaps, _ = fairness_gaps(m)
    assert gaps["equalized_odds_difference"] == 0.0


def test_length_mismatch_rejected():
    with pytest.raises(ValueError, match="differ in length"):
        group_metrics([1, 0], [1], ["a", "b"])


def test_block_is_accepted_by_the_registry_gate():
    from maas_models.manifest import Manifest  # the registry's own gate must read our block
    from maas_models.registry import check_gates as registry_check_gates

    y = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    pred = np.array([0, 0, 1, 1, 1, 1, 1, 1])
    g = np.array(["a"] * 4 + ["b"] * 4)
    block = evaluate(y, pred, g, gates={"max_fairness_gap": 0.2})
    raw = {
        "schema_version": 1,
        "name": "m",
        "version": 1,
        "runtime": "litert",
        "files": {},
        "inputs": [{"name": "features", "shape": [-1, 1]}],
        "outputs": [{"name": "p", "shape": [-1, 2]}],
        "metrics": {"accuracy": 0.75},
        "fairness": block,
    }
    manifest = Manifest.from_dict(raw)
    failures = registry_check_gates(manifest)
    assert any("demographic_parity_difference" in f for f in failures)


def test_string_labels_with_probabilities_and_classes():
    """The training job's call: labels as strings, a probability matrix, the class list."""
    classes = ["cat", "dog", "eel"]
    y = np.array(["cat", "dog", "eel", "dog"] * 24, dtype=object)
    proba = np.eye(3)[[0, 1, 2, 1] * 24]
    groups = np.tile(np.repeat(["g1", "g2"], 4), 12)  # both groups see the same label mix
    block = evaluate(y, proba, groups, classes=classes, gates={"max_fairness_gap": 0.1}, attribute="site")
    assert block["overall"]["accuracy"] == 1.0
    assert set(block["overall"]["selection_rate"]) == set(classes)
    assert block["violations"] == [] and block["gap_details"]["multiclass"] == "one-vs-rest max"
