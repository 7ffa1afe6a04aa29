"""Per-group metrics, fairness gaps and promotion gates. Pure numpy; no serving or TensorFlow imports.

Definitions (``g`` ranges over the groups of a sensitive attribute, ``k`` over classes):

- selection rate ``SR_g(k) = P(pred = k | group = g)``
- true positive rate ``TPR_g(k) = P(pred = k | y = k, group = g)``
- false positive rate ``FPR_g(k) = P(pred = k | y != k, group = g)``
- demographic parity difference ``DPD = max_k (max_g SR_g(k) - min_g SR_g(k))``
- equalized odds difference
  ``EOD = max_k max(max_g TPR_g(k) - min_g TPR_g(k), max_g FPR_g(k) - min_g FPR_g(k))``

For a binary task with a declared ``positive_class`` only that class is used (the usual definitions,
as in fairlearn). For multi-class tasks without one, each class is treated one-vs-rest and the
*largest* gap over classes is reported (``"multiclass": "one-vs-rest max"``), so a gate on the gap
bounds every class. Rates undefined for a group (no positives / negatives of a class in it) are
left out of that class's gap rather than counted as 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

GAP_NAMES: tuple[str, ...] = ("demographic_parity_difference", "equalized_odds_difference")

# Gate names understood by check_gates (all optional):
#   min_accuracy               overall accuracy must be >= this
#   min_group_accuracy         every group's accuracy must be >= this
#   max_fairness_gap           every gap in GAP_NAMES must be <= this
#   max_<gap name>             that gap must be <= this (e.g. max_demographic_parity_difference)
#   max_accuracy_difference    max - min group accuracy must be <= this
#   min_group_size             groups smaller than this are reported (their rates are noisy)


def _labels_of(values: np.ndarray) -> list[str]:
    return [str(v) for v in values]


def group_metrics(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    *,
    classes: Sequence[Any] | None = None,
    positive_class: Any = None,
) -> dict[str, Any]:
    """Overall and per-group accuracy, selection rate, TPR and FPR.

    ``y_pred`` holds predicted classes (use ``probabilities.argmax(1)``). ``classes`` defaults to the
    union of labels seen. With ``positive_class`` the rates are reported for that class only
    (scalars); otherwise per class (dicts keyed by ``str(class)``).
    """
    yt = np.asarray(y_true)
    yp = np.asarray(y_pred)
    gr = np.asarray(groups)
    if not (len(yt) == len(yp) == len(gr)):
        raise ValueError(f"y_true, y_pred and groups differ in length: {len(yt)}, {len(yp)}, {len(gr)}")
    cls = list(classes) if classes is not None else sorted(set(yt.tolist()) | set(yp.tolist()), key=str)
    targets = [positive_class] if positive_class is not None else cls

    def rates(mask: np.ndarray) -> dict[str, Any]:
        t, p = yt[mask], yp[mask]
        n = int(mask.sum())
        out: dict[str, Any] = {"n": n, "accuracy": float((t == p).mean()) if n else None}
        sel: dict[str, float | None] = {}
        tpr: dict[str, float | None] = {}
        fpr: dict[str, float | None] = {}
        for k in targets:
            pos, neg = t == k, t != k
            key = str(k)
            sel[key] = float((p == k).mean()) if n else None
            tpr[key] = float((p[pos] == k).mean()) if pos.any() else None
            fpr[key] = float((p[neg] == k).mean()) if neg.any() else None
        if positive_class is not None:
            key = str(positive_class)
            out.update(selection_rate=sel[key], tpr=tpr[key], fpr=fpr[key])
        else:
            out.update(selection_rate=sel, tpr=tpr, fpr=fpr)
        return out

    group_values = sorted(set(gr.tolist()), key=str)
    return {
        "classes": _labels_of(np.asarray(cls, dtype=object)),
        "positive_class": None if positive_class is None else str(positive_class),
        "overall": rates(np.ones(len(yt), dtype=bool)),
        "groups": {str(g): rates(gr == g) for g in group_values},
    }


def _spread(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    if len(present) < 2:
        return None
    return float(max(present) - min(present))


def fairness_gaps(metrics: Mapping[str, Any]) -> tuple[dict[str, float | None], dict[str, Any]]:
    """``(gaps, details)`` from group_metrics.

    ``gaps`` holds only the two gate-able numbers (GAP_NAMES; None when not computable) -- the shape
    the manifest's ``fairness.gaps`` and the registry's promotion gate expect. ``details`` holds the
    accuracy spread, the per-class gaps and the class that gives each maximum.
    """
    groups: Mapping[str, Mapping[str, Any]] = metrics.get("groups", {})
    per_group = list(groups.values())
    positive = metrics.get("positive_class")
    keys = [positive] if positive is not None else list(metrics.get("classes", []))

    def at(m: Mapping[str, Any], rate: str, k: str) -> float | None:
        value = m.get(rate)
        return value if positive is not None else (value or {}).get(k)

    dpd: dict[str, float | None] = {}
    eod: dict[str, float | None] = {}
    for k in keys:
        dpd[k] = _spread([at(m, "selection_rate", k) for m in per_group])
        tpr_gap = _spread([at(m, "tpr", k) for m in per_group])
        fpr_gap = _spread([at(m, "fpr", k) for m in per_group])
        both = [v for v in (tpr_gap, fpr_gap) if v is not None]
        eod[k] = max(both) if both else None

    def worst(d: dict[str, float | None]) -> tuple[float | None, str | None]:
        present = {k: v for k, v in d.items() if v is not None}
        if not present:
            return None, None
        k = max(present, key=lambda key: present[key])
        return present[k], k

    dpd_max, dpd_class = worst(dpd)
    eod_max, eod_class = worst(eod)
    return {
        "demographic_parity_difference": dpd_max,
        "equalized_odds_difference": eod_max,
    }, {
        "accuracy_difference": _spread([m.get("accuracy") for m in per_group]),
        "worst_class": {"demographic_parity_difference": dpd_class, "equalized_odds_difference": eod_class},
        "per_class": {"demographic_parity_difference": dpd, "equalized_odds_difference": eod},
        "multiclass": "binary" if positive is not None else "one-vs-rest max",
    }


def check_gates(
    metrics: Mapping[str, Any], gaps: Mapping[str, Any], gates: Mapping[str, Any] | None
) -> list[str]:
    """Human-readable violations of ``gates`` (empty list = pass). Unknown gate names are violations
    too, so a typo cannot silently disable a gate. A gap that could not be computed passes."""
    violations: list[str] = []
    if not gates:
        return violations
    overall = metrics.get("overall", metrics)
    groups: Mapping[str, Mapping[str, Any]] = metrics.get("groups", {})
    for name, threshold in gates.items():
        if threshold is None:
            continue
        limit = float(threshold)
        if name == "min_accuracy":
            acc = overall.get("accuracy")
            if acc is not None and acc < limit:
                violations.append(f"accuracy {acc:.4f} < min_accuracy {limit:.4f}")
        elif name == "min_group_accuracy":
            for g, m in groups.items():
                acc = m.get("accuracy")
                if acc is not None and acc < limit:
                    violations.append(f"group {g!r} accuracy {acc:.4f} < min_group_accuracy {limit:.4f}")
        elif name == "min_group_size":
            for g, m in groups.items():
                if int(m.get("n", 0)) < limit:
                    violations.append(f"group {g!r} has {m.get('n')} rows < min_group_size {int(limit)}")
        elif name == "max_fairness_gap":
            for gap in GAP_NAMES:
                value = gaps.get(gap)
                if value is not None and value > limit:
                    violations.append(f"{gap} {value:.4f} > max_fairness_gap {limit:.4f}")
        elif name.startswith("max_") and name[4:] in (*GAP_NAMES, "accuracy_difference"):
            value = gaps.get(name[4:], metrics.get(name[4:]))
            if value is not None and value > limit:
                violations.append(f"{name[4:]} {value:.4f} > {name} {limit:.4f}")
        else:
            violations.append(f"unknown gate {name!r}")
    return violations


def evaluate(
    y_true: Sequence[Any] | np.ndarray,
    y_pred: Sequence[Any] | np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    *,
    gates: Mapping[str, Any] | None = None,
    classes: Sequence[Any] | None = None,
    positive_class: Any = None,
    attribute: str | None = None,
) -> dict[str, Any]:
    """The manifest's ``"fairness"`` block:
    ``{"attribute", "positive_class", "overall", "groups", "gaps", "gap_details", "gates", "violations"}``.

    ``y_pred`` may be class predictions or a probability matrix (argmax is taken).
    """
    yp = np.asarray(y_pred)
    if yp.ndim == 2:
        yp = yp.argmax(axis=1)
        if classes is not None:
            yp = np.asarray(list(classes), dtype=object)[yp]
    metrics = group_metrics(y_true, yp, groups, classes=classes, positive_class=positive_class)
    gaps, details = fairness_gaps(metrics)
    gate_metrics = {**metrics, "accuracy_difference": details["accuracy_difference"]}
    return {
        "attribute": attribute,
        "positive_class": metrics["positive_class"],
        "overall": metrics["overall"],
        "groups": metrics["groups"],
        "gaps": gaps,
        "gap_details": details,
        "gates": dict(gates or {}),
        "violations": check_gates(gate_metrics, gaps, gates),
    }
