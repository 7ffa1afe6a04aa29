"""Per-feature attributions from batched forward passes only: no TensorFlow, no gradients.

Two estimators of Shapley values with a single (interventional) baseline, both *exactly complete*:
the attributions of a row always sum to ``f(x) - f(baseline)`` for the explained class, up to float64
rounding, whatever the sampling budget.

``kernel_shap``
    Kernel SHAP (Lundberg & Lee 2017). Coalitions ``z`` of features are drawn from the Shapley kernel
    (the smallest and largest coalition sizes are enumerated exhaustively while the budget allows, the
    rest sampled in complementary pairs); every coalition becomes one input row ``where(z, x, baseline)``.
    The attributions solve the kernel-weighted least-squares problem ``f(h(z)) - f(b) ~ z . phi``
    *subject to* ``sum(phi) = f(x) - f(b)`` (the efficiency constraint is eliminated, not penalised,
    so completeness is exact). With ``2**d - 2 <= n_samples`` every coalition is enumerated and the
    result is the exact Shapley value.

``permutation``
    Antithetic permutation sampling (Strumbelj & Kononenko 2014): features are switched from the
    baseline to ``x`` one at a time in a random order; each feature gets its marginal contribution.
    The contributions of one permutation telescope to ``f(x) - f(b)``, so their average is complete.

``auto`` (default)
    ``kernel_shap`` when every coalition fits the budget (then the values are the exact Shapley values),
    else ``permutation``: on the reference model (100 features) it is about twice as accurate as Kernel
    SHAP for the same number of model evaluations (median relative L2 error 0.14 vs 0.27 at 2,180
    evaluations against a 250k-evaluation reference) and needs no least-squares solve.

Every coalition of every row, ``x`` and the baseline go to the model in one batched ``predict`` call
(split only above ``max_batch_rows``). The same coalitions serve every row and every class, so the
least-squares system is factorised once for the whole request.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from maas_models.errors import InvalidInput
from maas_models.manifest import document, fingerprint_features

from maas.rai.shapley import (  # the estimators; re-exported: this module is the explanation API
    DEFAULT_MAX_BATCH_ROWS,
    METHODS,
    Method,
    PredictFn,
    Predictor,
    default_n_samples,
    estimate,
    kernel_coalitions,
    prepare,
    resolve_method,
    shapley_values,
)

__all__ = [
    "DEFAULT_TOP_K",
    "METHODS",
    "Explanation",
    "FeatureAttribution",
    "Method",
    "Predictor",
    "baseline_from_manifest",
    "explain",
    "explain_model",
    "explanation_response",
    "kernel_coalitions",
    "prepare",
    "shapley_values",
]

logger = logging.getLogger(__name__)

DEFAULT_TOP_K = 10


@dataclass(frozen=True)
class FeatureAttribution:
    feature: str
    index: int
    value: float
    baseline: float
    attribution: float
    details: Mapping[str, Any] | None = None  # more keys of a group (a token, a segment), or raw values

    def to_dict(self) -> dict[str, Any]:
        out = {
            "feature": self.feature,
            "index": self.index,
            "value": self.value,
            "baseline": self.baseline,
            "attribution": self.attribution,
        }
        if self.details:
            out.update(self.details)
        return out


@dataclass
class Explanation:
    """The attribution of one input row for one class."""

    method: str
    class_index: int
    class_label: str
    prediction: float  # f(x) for the explained class
    baseline_prediction: float  # f(baseline) for the explained class
    attributions: np.ndarray  # (F,) float64, sums to prediction - baseline_prediction
    feature_names: list[str]
    x: np.ndarray
    baseline: np.ndarray
    n_evaluations: int  # model rows evaluated for the whole request
    baseline_source: str = "fingerprint"
    warnings: list[str] = field(default_factory=list)
    # per feature: keys added to (or replacing "value"/"baseline" in) its entry, e.g. a token's text
    details: Sequence[Mapping[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # keys added to the explanation's response

    @property
    def completeness_error(self) -> float:
        return float(abs(self.attributions.sum() - (self.prediction - self.baseline_prediction)))

    def top(self, k: int | None = DEFAULT_TOP_K) -> list[FeatureAttribution]:
        """The ``k`` features with the largest absolute attribution (all when ``k`` is None)."""
        order = np.argsort(-np.abs(self.attributions), kind="stable")
        if k is not None:
            order = order[: max(0, int(k))]
        return [
            FeatureAttribution(
                feature=self.feature_names[i],
                index=int(i),
                value=float(self.x[i]),
                baseline=float(self.baseline[i]),
                attribution=float(self.attributions[i]),
                details=self.details[i] if self.details is not None else None,
            )
            for i in order
        ]

    def to_dict(self, top_k: int | None = DEFAULT_TOP_K) -> dict[str, Any]:
        out: dict[str, Any] = {
            "class_index": self.class_index,
            "class_label": self.class_label,
            "prediction": self.prediction,
            "baseline_prediction": self.baseline_prediction,
            "sum_attributions": float(self.attributions.sum()),
            "completeness_error": self.completeness_error,  # |sum - (prediction - baseline)|
            "method": self.method,
            "n_evaluations": self.n_evaluations,
            "baseline_source": self.baseline_source,
            "top_features": [a.to_dict() for a in self.top(top_k)],
        }
        out.update(self.extra)
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


# --------------------------------------------------------------------------------------------------
# Manifest helpers


def manifest_feature_names(manifest: Any) -> list[str]:
    raw = document(manifest)
    inputs = raw.get("inputs") or [{}]
    names = inputs[0].get("feature_names")
    if names:
        return [str(n) for n in names]
    shape = inputs[0].get("shape") or []
    width = int(shape[-1]) if shape and int(shape[-1]) > 0 else 0
    return [f"f{i}" for i in range(width)]


def manifest_class_labels(manifest: Any) -> list[str]:
    raw = document(manifest)
    outputs = raw.get("outputs") or [{}]
    labels = outputs[0].get("class_labels")
    if labels:
        return [str(label) for label in labels]
    shape = outputs[0].get("shape") or []
    width = int(shape[-1]) if shape and int(shape[-1]) > 0 else 0
    return [str(i) for i in range(width)]


def baseline_from_manifest(
    manifest: Any, feature_names: Sequence[str] | None = None
) -> tuple[np.ndarray, str, list[str]]:
    """The training feature means from ``manifest["fingerprint"]``; zeros (with a warning) where missing.

    Returns ``(baseline[F] float32, source, warnings)`` where source is ``"fingerprint"``,
    ``"partial-fingerprint"`` or ``"zeros"``.
    """
    raw = document(manifest)
    names = list(feature_names) if feature_names is not None else manifest_feature_names(raw)
    features = fingerprint_features(raw)
    baseline = np.zeros(len(names), dtype=np.float32)
    missing: list[str] = []
    for i, name in enumerate(names):
        stats = features.get(name)
        mean = stats.get("mean") if isinstance(stats, Mapping) else None
        if mean is None or not math.isfinite(float(mean)):
            missing.append(name)
        else:
            baseline[i] = float(mean)
    warnings: list[str] = []
    if not missing:
        return baseline, "fingerprint", warnings
    source = "zeros" if len(missing) == len(names) else "partial-fingerprint"
    shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
    message = (
        f"no training mean in the manifest fingerprint for {len(missing)} of {len(names)} features "
        f"({shown}); the baseline uses 0 for them"
    )
    warnings.append(message)
    logger.warning(message)
    return baseline, source, warnings


# --------------------------------------------------------------------------------------------------
# Coalition sampling


def _resolve_targets(
    target: int | str | Sequence[int | str] | None, fx: np.ndarray, labels: list[str]
) -> list[int]:
    n, c = fx.shape
    if target is None:
        return [int(i) for i in np.argmax(fx, axis=1)]
    targets = list(target) if isinstance(target, Sequence) and not isinstance(target, str) else [target] * n
    if len(targets) != n:
        raise InvalidInput(f"explain: got {len(targets)} target classes for {n} rows")
    resolved: list[int] = []
    for t in targets:
        if isinstance(t, bool):
            raise InvalidInput(f"explain: invalid target class {t!r}")
        if isinstance(t, int | np.integer):
            idx = int(t)
        elif isinstance(t, str) and t in labels:
            idx = labels.index(t)
        elif isinstance(t, str) and t.lstrip("-").isdigit() and not labels:
            idx = int(t)
        else:
            raise InvalidInput(
                f"explain: unknown target class {t!r}; expected an index < {c} or one of the labels"
            )
        if not 0 <= idx < c:
            raise InvalidInput(f"explain: target class index {idx} out of range [0, {c})")
        resolved.append(idx)
    return resolved


def explain(
    model: Predictor | PredictFn,
    x: np.ndarray,
    *,
    baseline: np.ndarray,
    feature_names: Sequence[str] | None = None,
    class_labels: Sequence[str] | None = None,
    target: int | str | Sequence[int | str] | None = None,
    method: Method = "auto",
    n_samples: int | None = None,
    seed: int = 0,
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
    baseline_source: str = "given",
    warnings: Sequence[str] = (),
) -> list[Explanation]:
    """Explain each row of ``x`` for its predicted class (``target=None``) or a requested class.

    ``target`` is a class index, a class label, or one of those per row. Deterministic for a given
    ``seed``.
    """
    labels = list(class_labels) if class_labels is not None else []
    xs = np.asarray(x, dtype=np.float32)
    xs = xs[None, :] if xs.ndim == 1 else xs
    d = xs.shape[-1]
    names = list(feature_names) if feature_names is not None else [f"f{i}" for i in range(d)]
    if len(names) != d:
        raise InvalidInput(f"explain: {len(names)} feature names for {d} features")

    n = len(xs)
    per_row_targets: list[Any] | None = None
    if isinstance(target, Sequence) and not isinstance(target, str):
        per_row_targets = list(target)
        if len(per_row_targets) != n:
            raise InvalidInput(f"explain: got {len(per_row_targets)} target classes for {n} rows")
    # Rows per model call: every row brings its own coalitions; keep one call under max_batch_rows.
    budget = default_n_samples(d) if n_samples is None else int(n_samples)
    method = resolve_method(method, d, budget)  # type: ignore[assignment]
    step = max(1, max_batch_rows // (prepare(d, method=method, n_samples=budget, seed=seed) + 2))
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]] = []
    n_eval = 0
    for lo in range(0, n, step):
        chunk_target = per_row_targets[lo : lo + step] if per_row_targets is not None else target

        def select(fx_all: np.ndarray, t: Any = chunk_target) -> list[int]:
            return _resolve_targets(t, fx_all, labels)

        phi_c, fx_c, fb, evals, chosen = estimate(
            model, xs[lo : lo + step], baseline, method, n_samples, seed, max_batch_rows, select
        )
        assert chosen is not None
        parts.append((phi_c, fx_c, fb, chosen))
        n_eval += evals
    phi = np.concatenate([p[0] for p in parts], axis=0)
    fx = np.concatenate([p[1] for p in parts], axis=0)
    fb = parts[0][2]
    targets = [t for p in parts for t in p[3]]
    b = np.asarray(baseline, dtype=np.float32).reshape(-1)
    return [
        Explanation(
            method=method,
            class_index=t,
            class_label=labels[t] if t < len(labels) else str(t),
            prediction=float(fx[i, t]),
            baseline_prediction=float(fb[t]),
            attributions=phi[i, :, 0].copy(),
            feature_names=names,
            x=xs[i],
            baseline=b,
            n_evaluations=n_eval,
            baseline_source=baseline_source,
            warnings=list(warnings),
        )
        for i, t in enumerate(targets)
    ]


def explain_model(
    model: Any,
    x: np.ndarray,
    *,
    manifest: Any = None,
    target: int | str | Sequence[int | str] | None = None,
    method: Method = "auto",
    n_samples: int | None = None,
    seed: int = 0,
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
) -> list[Explanation]:
    """``explain`` for a served model: baseline, feature names and labels come from its manifest.

    ``model`` is a ``maas_models.LoadedModel`` (or any Predictor); ``manifest`` defaults to
    ``model.manifest``.
    """
    manifest = manifest if manifest is not None else model.manifest
    names = manifest_feature_names(manifest)
    labels = manifest_class_labels(manifest)
    baseline, source, warns = baseline_from_manifest(manifest, names)
    return explain(
        model,
        x,
        baseline=baseline,
        feature_names=names,
        class_labels=labels,
        target=target,
        method=method,
        n_samples=n_samples,
        seed=seed,
        max_batch_rows=max_batch_rows,
        baseline_source=source,
        warnings=warns,
    )


def explanation_response(
    explanations: Sequence[Explanation], *, top_k: int | None = DEFAULT_TOP_K
) -> list[dict[str, Any]]:
    """JSON-ready list (one entry per row) for the ``:explain`` route and ``"explain": true`` messages."""
    return [e.to_dict(top_k) for e in explanations]
