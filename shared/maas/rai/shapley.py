"""Shapley-value estimators over batched forward passes (see ``maas.rai.explain`` for the method notes):
Kernel SHAP with the efficiency constraint eliminated, antithetic permutation sampling, and the
coalition plans both share (built once per feature count and budget, cached)."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from maas_models.errors import InvalidInput

Method = Literal["auto", "kernel_shap", "permutation"]
METHODS: tuple[str, ...] = ("auto", "permutation", "kernel_shap")
DEFAULT_MAX_BATCH_ROWS = 262_144


@runtime_checkable
class Predictor(Protocol):
    """Anything with ``predict(x[N, F] float32) -> probabilities[N, C]`` (e.g. a LoadedModel)."""

    def predict(self, x: np.ndarray) -> np.ndarray: ...


PredictFn = Callable[[np.ndarray], np.ndarray]


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
    phi, fx, fb, n_eval, _ = estimate(model, x, baseline, method, n_samples, seed, max_batch_rows, None)
    return phi, fx, fb, n_eval


ClassSelector = Callable[[np.ndarray], list[int]]


def estimate(
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
        fz = out[1 + n :].reshape(n, s, out.shape[1])
    else:
        # Only the explained class of each row: [n, s, 1]. Keeps the solve a matrix-vector product.
        chosen = select(fx_all)
        idx = np.asarray(chosen, dtype=np.intp)
        fb = fb_all[idx][:, None]
        fx = fx_all[np.arange(n), idx][:, None]
        fz = out[1 + n :].reshape(n, s, out.shape[1])[np.arange(n), :, idx][:, :, None]
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
