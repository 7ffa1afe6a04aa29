"""Held-out evaluation (numpy only): metrics, per-group metrics, promotion gates."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maas.training.spec import Promotion


def classification_metrics(y: np.ndarray, proba: np.ndarray, class_labels: list[str]) -> dict[str, Any]:
    """accuracy, loss (sparse categorical cross-entropy), rows and per-class precision/recall/f1/support."""
    pred = proba.argmax(axis=1)
    eps = 1e-7
    picked = np.clip(proba[np.arange(len(y)), y], eps, 1.0)
    per_class: dict[str, dict[str, float | int]] = {}
    for i, label in enumerate(class_labels):
        tp = int(np.sum((pred == i) & (y == i)))
        fp = int(np.sum((pred == i) & (y != i)))
        fn = int(np.sum((pred != i) & (y == i)))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {
            "precision": round(precision, 6),
            "recall": round(recall, 6),
            "f1": round(f1, 6),
            "support": int(np.sum(y == i)),
        }
    n = len(class_labels)
    confusion = np.bincount(y.astype(np.int64) * n + pred, minlength=n * n).reshape(n, n)
    return {
        "accuracy": float(np.mean(pred == y)),
        "loss": float(-np.mean(np.log(picked))),
        "rows": len(y),
        "per_class": per_class,
        "confusion_matrix": confusion.tolist(),  # rows: true class, columns: predicted (class_labels order)
    }


def _rai_fairness() -> Any | None:
    try:
        return importlib.import_module("maas.rai.fairness")
    except ModuleNotFoundError as exc:
        if exc.name in ("maas.rai", "maas.rai.fairness"):
            return None
        raise


GAP_NAMES = ("demographic_parity_difference", "equalized_odds_difference")


def per_group_accuracy(y: np.ndarray, pred: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
    """Fallback when maas.rai.fairness is absent: rows and accuracy per group, and the accuracy gap."""
    out: dict[str, dict[str, float | int]] = {}
    for g in sorted(set(groups.tolist())):
        mask = groups == g
        out[g] = {"n": int(mask.sum()), "accuracy": float(np.mean(pred[mask] == y[mask]))}
    accs = [float(v["accuracy"]) for v in out.values()]
    return {"groups": out, "gaps": {"accuracy_difference": max(accs) - min(accs) if len(accs) > 1 else None}}


def fairness_report(
    y: np.ndarray,
    proba: np.ndarray,
    sensitive: dict[str, np.ndarray],
    class_labels: list[str],
    gates: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The manifest's "fairness" block, or None when the spec names no sensitive column.

    With maas.rai.fairness (the responsible-AI module) each sensitive column gets its `evaluate()` block
    (per-group accuracy / selection rate / TPR / FPR, demographic parity and equalized odds differences).
    The top level is the first column's block (the contract's {"groups", "gaps", "gates"} shape), `gaps`
    holds the worst value of each gap over all columns and `by_attribute` keeps every column's block.
    """
    if not sensitive:
        return None
    rai = _rai_fairness()
    labels = np.asarray(class_labels, dtype=object)
    by_attribute: dict[str, dict[str, Any]] = {}
    for column, groups in sensitive.items():
        if rai is not None:
            by_attribute[column] = dict(
                rai.evaluate(labels[y], proba, groups, gates=gates, classes=class_labels, attribute=column)
            )
        else:
            report = per_group_accuracy(y, proba.argmax(axis=1), groups)
            by_attribute[column] = {"attribute": column, **report, "gates": dict(gates or {})}
    first = next(iter(by_attribute.values()))
    # "gaps" holds numbers only (the registry's production gate compares every entry with
    # max_fairness_gap): the worst of each gap over all sensitive columns. Details stay in by_attribute.
    names = GAP_NAMES if rai is not None else ("accuracy_difference",)
    gaps: dict[str, float | None] = {}
    for name in names:
        values = [
            float(v)
            for r in by_attribute.values()
            if isinstance(v := (r.get("gaps") or {}).get(name), int | float)
        ]
        gaps[name] = max(values) if values else None
    violations = [f"{column}: {v}" for column, r in by_attribute.items() for v in r.get("violations") or []]
    return {
        "attribute": first.get("attribute"),
        "attributes": list(by_attribute),
        "groups": first.get("groups", {}),
        "overall": first.get("overall"),
        "gaps": gaps,
        "gates": dict(gates or {}),
        "violations": violations,
        "by_attribute": by_attribute,
        "source": "maas.rai.fairness" if rai is not None else "maas.training per-group accuracy (fallback)",
    }


@dataclass
class GateResult:
    passed: bool
    alias: str | None
    failures: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "alias": self.alias, "failures": self.failures, "checks": self.checks}


def check_gates(promotion: Promotion, metrics: dict[str, Any], fairness: dict[str, Any] | None) -> GateResult:
    """Gates pass when accuracy >= min_accuracy and the largest fairness gap <= max_fairness_gap.

    The fairness gap is the worst of demographic parity and equalized odds differences over all sensitive
    columns (the accuracy spread between groups when maas.rai.fairness is not installed).
    """
    failures: list[str] = []
    checks: dict[str, Any] = {}
    if promotion.min_accuracy is not None:
        acc = float(metrics["accuracy"])
        checks["accuracy"] = {"value": acc, "min": promotion.min_accuracy}
        if acc < promotion.min_accuracy:
            failures.append(f"accuracy {acc:.4f} < min_accuracy {promotion.min_accuracy}")
    if promotion.max_fairness_gap is not None:
        all_gaps = (fairness or {}).get("gaps") or {}
        names = [n for n in GAP_NAMES if isinstance(all_gaps.get(n), int | float)] or (
            ["accuracy_difference"] if isinstance(all_gaps.get("accuracy_difference"), int | float) else []
        )
        gaps = {n: float(all_gaps[n]) for n in names}
        # a gap that cannot be measured (one group only) passes, as in maas.rai.fairness.check_gates
        worst_name, worst = max(gaps.items(), key=lambda kv: kv[1]) if gaps else ("none", 0.0)
        checks["fairness_gap"] = {"value": worst, "metric": worst_name, "max": promotion.max_fairness_gap}
        if worst > promotion.max_fairness_gap:
            failures.append(
                f"fairness gap {worst_name} {worst:.4f} > max_fairness_gap {promotion.max_fairness_gap}"
            )
    return GateResult(
        passed=not failures and promotion.alias is not None,
        alias=promotion.alias,
        failures=failures,
        checks=checks,
    )
