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

import functools
import itertools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from maas_models.errors import InvalidInput

from maas.settings import RaiSettings

logger = logging.getLogger(__name__)

Method = Literal["auto", "kernel_shap", "permutation"]
METHODS: tuple[str, ...] = ("auto", "permutation", "kernel_shap")
DEFAULT_TOP_K = 10
DEFAULT_MAX_BATCH_ROWS = 262_144


@runtime_checkable
class Predictor(Protocol):
    """Anything with ``predict(x[N, F] float32) -> probabilities[N, C]`` (e.g. a LoadedModel)."""

    def predict(self, x: np.ndarray) -> np.ndarray: ...


PredictFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FeatureAttribution:
    feature: str
    index: int
    value: float
    baseline: float
    attribution: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "index": self.index,
            "value": self.value,
            "baseline": self.baseline,
            "attribution": self.attribution,
        }


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
            "method": self.method,
            "n_evaluations": self.n_evaluations,
            "baseline_source": self.baseline_source,
            "top_features": [a.to_dict() for a in self.top(top_k)],
        }
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


# --------------------------------------------------------------------------------------------------
# Manifest helpers


def _raw_manifest(manifest: Any) -> Mapping[str, Any]:
    raw = getattr(manifest, "raw", manifest)
    if not isinstance(raw, Mapping):
        raise TypeError("manifest must be a mapping or an object with a .raw mapping")
    return raw


def manifest_feature_names(manifest: Any) -> list[str]:
    raw = _raw_manifest(manifest)
    inputs = raw.get("inputs") or [{}]
    names = inputs[0].get("feature_names")
    if names:
        return [str(n) for n in names]
    shape = inputs[0].get("shape") or []
    width = int(shape[-1]) if shape and int(shape[-1]) > 0 else 0
    return [f"f{i}" for i in range(width)]


def manifest_class_labels(manifest: Any) -> list[str]:
    raw = _raw_manifest(manifest)
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
    raw = _raw_manifest(manifest)
    names = list(feature_names) if feature_names is not None else manifest_feature_names(raw)
    features = ((raw.get("fingerprint") or {}).get("features")) or {}
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


def default_n_samples(n_features: int) -> int:
    """Coalitions per row: every coalition when there are few features, else ``2 * F + 2048``."""
    if n_features <= 1:
        return 0
    full = 2**n_features - 2 if n_features < 62 else 2**62
    return int(min(full, 2 * n_features + 2048))


def kernel_coalitions(d: int, n_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Coalition masks ``Z[S, d]`` (bool) and their Shapley-kernel weights ``w[S]``.

    Coalition sizes whose whole population fits in the budget share (smallest and largest first,
    since the kernel puts most of its mass there) are enumerated with their exact kernel weight;
    the remaining budget samples sizes from the remaining kernel mass, each sample paired with its
    complement, all with equal weight.
    """
    if d < 2:
        return np.zeros((0, d), dtype=bool), np.zeros(0)
    n_samples = int(min(max(n_samples, 2), 2**d - 2 if d < 62 else n_samples))
    n_sizes = math.ceil((d - 1) / 2)
    n_paired = (d - 1) // 2
    sizes = np.arange(1, n_sizes + 1)
    size_weight = (d - 1) / (sizes * (d - sizes)).astype(np.float64)
    size_weight[:n_paired] *= 2.0
    size_weight /= size_weight.sum()

    masks: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    left = n_samples
    remaining = size_weight.copy()
    n_full = 0
    for s in range(1, n_sizes + 1):
        paired = s <= n_paired
        count = math.comb(d, s) * (2 if paired else 1)
        if left * remaining[s - 1] / count < 1.0 - 1e-8:
            break
        n_full += 1
        left -= count
        if remaining[s - 1] < 1.0:
            remaining /= 1.0 - remaining[s - 1]
        per_mask = size_weight[s - 1] / math.comb(d, s) / (2.0 if paired else 1.0)
        combos = np.array(list(itertools.combinations(range(d), s)), dtype=np.intp)
        block = np.zeros((len(combos), d), dtype=bool)
        block[np.arange(len(combos))[:, None], combos] = True
        masks.append(block)
        if paired:
            masks.append(~block)
        weights.append(np.full(count, per_mask))

    if n_full < n_sizes and left > 0:
        leftover_mass = float(size_weight[n_full:].sum())
        probs = size_weight[n_full:] / leftover_mass
        # Draw sizes until the budget is used (a paired size costs 2 samples).
        chunk = rng.choice(sizes[n_full:], size=left, p=probs)
        cost = np.where(chunk <= n_paired, 2, 1)
        drawn = chunk[np.cumsum(cost) <= left].tolist()
        if drawn:
            k = np.array(drawn)
            ranks = np.argsort(rng.random((len(k), d)), axis=1).argsort(axis=1)
            block = ranks < k[:, None]
            paired_rows = block[k <= n_paired]
            sampled = np.concatenate([block, ~paired_rows], axis=0)
            masks.append(sampled)
            weights.append(np.full(len(sampled), leftover_mass / len(sampled)))

    if not masks:
        return np.zeros((0, d), dtype=bool), np.zeros(0)
    return np.concatenate(masks, axis=0), np.concatenate(weights)


def _permutations(d: int, n_perms: int, rng: np.random.Generator) -> np.ndarray:
    half = max(1, n_perms // 2)
    forward = np.argsort(rng.random((half, d)), axis=1)
    return np.concatenate([forward, forward[:, ::-1]], axis=0)  # antithetic pairs


# --------------------------------------------------------------------------------------------------
# The estimator


@dataclass(frozen=True)
class _Plan:
    """What depends only on (method, F, budget, seed): coalition masks and, for Kernel SHAP, the
    constrained weighted least-squares solution operator. Cached, so a warm request pays only for
    building its rows, one predict call and one small matrix product."""

    masks: np.ndarray  # (S, F) bool
    proj: np.ndarray | None = None  # (F-1, S): phi[:-1] = proj @ y_adj
    z_last: np.ndarray | None = None  # (S,)
    ranks: np.ndarray | None = None  # (P, F) rank of each feature in each permutation


@functools.lru_cache(maxsize=16)
def _plan(method: str, d: int, budget: int, seed: int) -> _Plan:
    rng = np.random.default_rng(seed)
    if d < 2:
        return _Plan(masks=np.zeros((0, d), dtype=bool))
    if method == "kernel_shap":
        masks, weights = kernel_coalitions(d, budget, rng)
        z = masks.astype(np.float64)
        a = z[:, :-1] - z[:, -1:]  # phi_last = delta - sum(others) eliminated
        aw = a * weights[:, None]
        gram = a.T @ aw
        try:
            proj = np.linalg.solve(gram, aw.T)
            if not np.isfinite(proj).all():
                raise np.linalg.LinAlgError("non-finite solution")
        except np.linalg.LinAlgError:
            proj = np.linalg.pinv(a * np.sqrt(weights)[:, None]) * np.sqrt(weights)[None, :]
        for arr in (masks, proj):
            arr.setflags(write=False)
        return _Plan(masks=masks, proj=proj, z_last=z[:, -1].copy())
    n_perms = max(2, budget // (d - 1))
    n_perms += n_perms % 2
    perms = _permutations(d, n_perms, rng)
    ranks = np.argsort(perms, axis=1)  # position of each feature in its permutation
    # Row k of permutation p switches the features of rank < k to x (k = 1..F-1; 0 and F are b and x).
    ks = np.arange(1, d)
    masks = (ranks[:, None, :] < ks[None, :, None]).reshape(-1, d)
    masks.setflags(write=False)
    return _Plan(masks=masks, ranks=ranks)


def resolve_method(method: str, n_features: int, budget: int) -> str:
    """``auto``: ``kernel_shap`` when all 2**F - 2 coalitions fit the budget (exact), else ``permutation``."""
    if method not in METHODS:
        raise ValueError(f"unknown explanation method {method!r}; expected one of {METHODS}")
    if method != "auto":
        return method
    return "kernel_shap" if n_features < 62 and 2**n_features - 2 <= budget else "permutation"


def prepare(n_features: int, *, method: Method = "auto", n_samples: int | None = None, seed: int = 0) -> int:
    """Build (and cache) the coalition plan for ``n_features`` ahead of the first request, e.g. when a
    model is loaded, so the first ``:explain`` does not pay for it. Returns the coalitions per row."""
    budget = default_n_samples(n_features) if n_samples is None else int(n_samples)
    return len(_plan(resolve_method(method, n_features, budget), n_features, budget, seed).masks)


def _as_predict_fn(model: Predictor | PredictFn) -> PredictFn:
    if isinstance(model, Predictor):
        return model.predict
    if callable(model):
        return model
    raise TypeError("model must have a predict(x) method or be callable")


def _predict_batched(fn: PredictFn, rows: np.ndarray, max_rows: int) -> tuple[np.ndarray, int]:
    if len(rows) <= max_rows:
        out = np.asarray(fn(rows))
        return out.astype(np.float64, copy=False), 1
    parts = [np.asarray(fn(rows[i : i + max_rows])) for i in range(0, len(rows), max_rows)]
    return np.concatenate(parts, axis=0).astype(np.float64, copy=False), len(parts)


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


def shapley_values(
    model: Predictor | PredictFn,
    x: np.ndarray,
    baseline: np.ndarray,
    *,
    method: Method = "auto",
    n_samples: int | None = None,
    seed: int = 0,
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Attributions of every row for every class.

    Returns ``(phi[N, F, C], fx[N, C], fb[C], n_evaluations)`` with ``phi.sum(axis=1) == fx - fb``.
    """
    phi, fx, fb, n_eval, _ = _shapley(model, x, baseline, method, n_samples, seed, max_batch_rows, None)
    return phi, fx, fb, n_eval


ClassSelector = Callable[[np.ndarray], list[int]]


def _shapley(
    model: Predictor | PredictFn,
    x: np.ndarray,
    baseline: np.ndarray,
    method: str,
    n_samples: int | None,
    seed: int,
    max_batch_rows: int,
    select: ClassSelector | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, list[int] | None]:
    """Core estimator. With ``select`` (fx -> one class index per row) only those classes are
    attributed: ``phi`` is ``[N, F, 1]`` and the chosen classes are returned; else ``[N, F, C]``."""
    if method not in METHODS:
        raise ValueError(f"unknown explanation method {method!r}; expected one of {METHODS}")
    fn = _as_predict_fn(model)
    xs = np.asarray(x, dtype=np.float32)
    if xs.ndim == 1:
        xs = xs[None, :]
    if xs.ndim != 2:
        raise InvalidInput(f"explain: expected rows of shape [N, F], got {list(xs.shape)}")
    n, d = xs.shape
    b = np.asarray(baseline, dtype=np.float32).reshape(-1)
    if b.shape[0] != d:
        raise InvalidInput(f"explain: baseline has {b.shape[0]} features, input has {d}")
    if not np.isfinite(xs).all():
        raise InvalidInput("explain: input contains NaN or Inf")
    budget = default_n_samples(d) if n_samples is None else int(n_samples)
    method = resolve_method(method, d, budget)
    plan = _plan(method, d, budget, seed)
    masks = plan.masks
    s = len(masks)

    # One batch: [baseline, x_0 .. x_{n-1}, coalitions of row 0, coalitions of row 1, ...]
    batch = np.empty((1 + n + n * s, d), dtype=np.float32)
    batch[0] = b
    batch[1 : 1 + n] = xs
    if s:
        coalitions = batch[1 + n :].reshape(n, s, d)  # a view: filled in place, no temporaries
        coalitions[...] = b
        np.copyto(coalitions, xs[:, None, :], where=masks[None, :, :])
    out, _ = _predict_batched(fn, batch, max_batch_rows)
    if out.ndim != 2 or out.shape[0] != len(batch):
        raise ValueError(f"model returned shape {list(out.shape)} for {len(batch)} rows")
    fb_all = out[0]
    fx_all = out[1 : 1 + n]
    chosen: list[int] | None = None
    if select is None:
        fb = np.broadcast_to(fb_all, (n, fb_all.shape[0]))
        fx = fx_all
        fz = out[1 + n :].reshape(n, s, -1)
    else:
        # Only the explained class of each row: [n, s, 1]. Keeps the solve a matrix-vector product.
        chosen = select(fx_all)
        idx = np.asarray(chosen, dtype=np.intp)
        fb = fb_all[idx][:, None]
        fx = fx_all[np.arange(n), idx][:, None]
        fz = out[1 + n :].reshape(n, s, -1)[np.arange(n), :, idx][:, :, None]
    c = fx.shape[1]
    delta = fx - fb  # (n, c)
    phi = np.zeros((n, d, c))
    if d == 1:
        phi[:, 0, :] = delta
        return phi, fx_all, fb_all, len(batch), chosen

    if method == "kernel_shap":
        assert plan.proj is not None and plan.z_last is not None
        y = (fz - fb[:, None, :]).transpose(1, 0, 2).reshape(s, n * c)
        y_adj = y - plan.z_last[:, None] * delta.reshape(1, n * c)
        head = (plan.proj @ y_adj).reshape(d - 1, n, c).transpose(1, 0, 2)
        phi[:, :-1, :] = head
        phi[:, -1, :] = delta - head.sum(axis=1)  # efficiency constraint: exact completeness
    else:
        assert plan.ranks is not None
        n_perms = len(plan.ranks)
        chain = np.empty((n, n_perms, d + 1, c))
        chain[:, :, 0, :] = fb[:, None, :]
        chain[:, :, -1, :] = fx[:, None, :]
        chain[:, :, 1:-1, :] = fz.reshape(n, n_perms, d - 1, c)
        steps = np.diff(chain, axis=2)  # (n, P, d, c): step k is the contribution of perms[p, k]
        # Feature j's contribution in permutation p is the step at its rank ranks[p, j].
        by_feature = np.take_along_axis(steps, plan.ranks[None, :, :, None], axis=2)
        phi = by_feature.mean(axis=1)
    return phi, fx_all, fb_all, len(batch), chosen


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
    step = max(1, max_batch_rows // (len(_plan(method, d, budget, seed).masks) + 2))
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]] = []
    n_eval = 0
    for lo in range(0, n, step):
        chunk_target = per_row_targets[lo : lo + step] if per_row_targets is not None else target

        def select(fx_all: np.ndarray, t: Any = chunk_target) -> list[int]:
            return _resolve_targets(t, fx_all, labels)

        phi_c, fx_c, fb, evals, chosen = _shapley(
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


_QUEUE_SETTINGS: list[RaiSettings] = []  # read once, on the first explained message


def explain_for_queue(
    model: Any, x: np.ndarray, *, settings: RaiSettings | None = None
) -> list[dict[str, Any]]:
    """The ``"explain": true`` hook of queue messages (``maas.queue.processor.explain_rows``): every
    row explained for its predicted class, top features as in ``:explain``. ``settings`` default:
    the environment's, read on the first call."""
    if settings is None:
        if not _QUEUE_SETTINGS:
            _QUEUE_SETTINGS.append(RaiSettings())
        settings = _QUEUE_SETTINGS[0]
    return explanation_response(explain_model(model, x, n_samples=settings.explain_samples))


def explanation_response(
    explanations: Sequence[Explanation], *, top_k: int | None = DEFAULT_TOP_K
) -> list[dict[str, Any]]:
    """JSON-ready list (one entry per row) for the ``:explain`` route and ``"explain": true`` messages."""
    return [e.to_dict(top_k) for e in explanations]
