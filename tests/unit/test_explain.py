"""Explanations: exact completeness, agreement with exact Shapley values, the real LiteRT model."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from maas.rai.explain import (
    baseline_from_manifest,
    explain,
    explain_model,
    explanation_response,
    kernel_coalitions,
    shapley_values,
)
from maas_models.errors import InvalidInput

METHODS = ["kernel_shap", "permutation", "auto"]


def small_mlp(d: int, c: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    w1, w2 = rng.normal(size=(d, 8)), rng.normal(size=(8, c))

    def f(x: np.ndarray) -> np.ndarray:
        h = np.maximum(x.astype(np.float64) @ w1, 0.0) @ w2
        e = np.exp(h - h.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    return f


def exact_shapley(f, x: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Brute-force Shapley values over all 2^d coalitions (interventional, single baseline)."""
    d = len(x)
    cache = {}

    def v(z: tuple[bool, ...]) -> np.ndarray:
        if z not in cache:
            cache[z] = f(np.where(np.array(z), x, b)[None].astype(np.float32))[0].astype(np.float64)
        return cache[z]

    phi = np.zeros((d, len(v((False,) * d))))
    for j in range(d):
        for z in itertools.product([False, True], repeat=d):
            if z[j]:
                continue
            s = sum(z)
            w = math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d)
            with_j = list(z)
            with_j[j] = True
            phi[j] += w * (v(tuple(with_j)) - v(z))
    return phi


@pytest.mark.parametrize("method", METHODS)
def test_completeness_is_exact_for_any_budget(method):
    d = 40
    f = small_mlp(d, c=4)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, d)).astype(np.float32)
    b = rng.normal(size=d).astype(np.float32) * 0.1
    for budget in (50, 400, 3000):
        phi, fx, fb, _ = shapley_values(f, x, b, method=method, n_samples=budget)
        assert phi.shape == (5, d, 4)
        np.testing.assert_allclose(phi.sum(axis=1), fx - fb[None, :], atol=1e-9)


def test_kernel_shap_enumerates_small_models_exactly():
    d = 7
    f = small_mlp(d)
    rng = np.random.default_rng(2)
    x, b = rng.normal(size=d).astype(np.float32), rng.normal(size=d).astype(np.float32)
    phi, _, _, n_eval = shapley_values(f, x, b)  # "auto": 2^7 - 2 coalitions fit the budget -> kernel SHAP
    assert n_eval == 2**d - 2 + 2
    np.testing.assert_allclose(phi[0], exact_shapley(f, x, b), atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_sampled_estimates_are_close_to_exact(method):
    d = 10
    f = small_mlp(d, seed=3)
    rng = np.random.default_rng(3)
    x, b = rng.normal(size=d).astype(np.float32), np.zeros(d, np.float32)
    exact = exact_shapley(f, x, b)
    budget = 600 if method == "kernel_shap" else 4000  # kernel: < 2^10 - 2 = 1022 coalitions
    phi, *_ = shapley_values(f, x, b, method=method, n_samples=budget)
    err = np.abs(phi[0] - exact).max()
    assert err < 0.1 * np.abs(exact).max(), err


@pytest.mark.parametrize("method", METHODS)
def test_linear_model_attributions_are_w_times_delta(method):
    d = 100
    rng = np.random.default_rng(4)
    w = rng.normal(size=(d, 2))

    def lin(x):
        return (x.astype(np.float64) @ w).astype(np.float32)

    x, b = rng.normal(size=(2, d)).astype(np.float32), rng.normal(size=d).astype(np.float32)
    phi, *_ = shapley_values(lin, x, b, method=method)
    np.testing.assert_allclose(phi, (x - b)[:, :, None] * w[None], atol=2e-5)


def test_coalition_weights_and_complements():
    z, w = kernel_coalitions(100, 2248, np.random.default_rng(0))
    assert z.shape == (2248, 100) and w.sum() == pytest.approx(1.0)
    assert (z.sum(axis=1) >= 1).all() and (z.sum(axis=1) <= 99).all()
    assert z[:100].sum(axis=1).tolist() == [1] * 100  # size-1 coalitions enumerated first


def test_explain_targets_top_k_and_determinism():
    d = 12
    f = small_mlp(d, c=3)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, d)).astype(np.float32)
    names = [f"feat{i}" for i in range(d)]
    kwargs = {"baseline": np.zeros(d, np.float32), "feature_names": names, "class_labels": ["a", "b", "c"]}
    ex = explain(f, x, **kwargs)
    assert [e.class_index for e in ex] == np.argmax(f(x), axis=1).tolist()
    ex_b = explain(f, x, target="b", **kwargs)
    assert {e.class_label for e in ex_b} == {"b"}
    ex_i = explain(f, x, target=[0, 2, 1], **kwargs)
    assert [e.class_index for e in ex_i] == [0, 2, 1]
    top = ex[0].top(4)
    assert len(top) == 4 and all(t.feature in names for t in top)
    assert abs(top[0].attribution) >= abs(top[-1].attribution)
    again = explain(f, x, **kwargs)
    np.testing.assert_array_equal(ex[0].attributions, again[0].attributions)
    (d0, *_) = explanation_response(ex, top_k=3)
    assert len(d0["top_features"]) == 3
    assert d0["sum_attributions"] == pytest.approx(d0["prediction"] - d0["baseline_prediction"], abs=1e-9)
    with pytest.raises(InvalidInput):
        explain(f, x, target="zzz", **kwargs)
    with pytest.raises(InvalidInput):
        explain(f, x, target=7, **kwargs)
    with pytest.raises(InvalidInput):
        explain(f, np.full((1, d), np.nan, np.float32), **kwargs)


def test_baseline_from_manifest_fingerprint_and_fallback(caplog):
    m = {
        "inputs": [{"feature_names": ["a", "b"]}],
        "fingerprint": {"features": {"a": {"mean": 1.5}, "b": {"mean": -2.0}}},
    }
    b, source, warns = baseline_from_manifest(m)
    assert b.tolist() == [1.5, -2.0] and source == "fingerprint" and warns == []
    b, source, warns = baseline_from_manifest({"inputs": [{"feature_names": ["a", "b"]}]})
    assert b.tolist() == [0.0, 0.0] and source == "zeros" and warns
    assert "baseline uses 0" in caplog.text


@pytest.fixture
def ref_model(published_ref):
    from maas_models import ModelLoader

    return ModelLoader(registry=published_ref).get("ref", 1)


@pytest.mark.parametrize("method", METHODS)
def test_reference_model_via_litert_is_complete(ref_model, method):
    """The real reference model (LiteRT, 100 features, 10 classes): sum(attr) == f(x) - f(baseline)."""
    assert ref_model.runtime == "litert"
    raw = dict(ref_model.manifest.raw)
    rng = np.random.default_rng(6)
    means = rng.normal(size=100) * 0.1
    raw["fingerprint"] = {"features": {f"f{i}": {"mean": float(means[i])} for i in range(100)}}
    x = rng.normal(size=(4, 100)).astype(np.float32)
    ex = explain_model(ref_model, x, manifest=raw, method=method, target=None)
    probs = ref_model.predict(x)
    base_probs = ref_model.predict(means.astype(np.float32)[None, :])[0]
    for i, e in enumerate(ex):
        assert e.baseline_source == "fingerprint"
        assert e.class_index == int(np.argmax(probs[i]))
        assert e.prediction == pytest.approx(float(probs[i, e.class_index]), abs=1e-6)
        assert e.baseline_prediction == pytest.approx(float(base_probs[e.class_index]), abs=1e-6)
        assert abs(e.attributions.sum() - (e.prediction - e.baseline_prediction)) < 1e-3
        assert e.completeness_error < 1e-6
    # a requested class, and the no-fingerprint fallback (zeros + warning)
    ex3 = explain_model(ref_model, x[:1], target="3")
    assert ex3[0].class_label == "3" and ex3[0].baseline_source == "zeros" and ex3[0].warnings
    assert ex3[0].completeness_error < 1e-6


def test_reference_model_kernel_shap_matches_permutation(ref_model):
    """Two independent estimators agree on the real model (sanity of the estimates, not only the sum)."""
    x = np.random.default_rng(7).normal(size=(1, 100)).astype(np.float32)
    b = np.zeros(100, np.float32)
    k, *_ = shapley_values(ref_model, x, b, method="kernel_shap", n_samples=8000)
    p, *_ = shapley_values(ref_model, x, b, method="permutation", n_samples=8000)
    c = int(np.argmax(ref_model.predict(x)[0]))
    corr = np.corrcoef(k[0, :, c], p[0, :, c])[0, 1]
    assert corr > 0.9, corr


def test_large_requests_are_split_into_bounded_model_calls():
    d = 20
    f = small_mlp(d)
    sizes = []

    def counting(x):
        sizes.append(len(x))
        return f(x)

    x = np.random.default_rng(8).normal(size=(7, d)).astype(np.float32)
    kwargs = {"baseline": np.zeros(d, np.float32), "n_samples": 100}
    whole = explain(f, x, target=[0, 1, 2, 0, 1, 2, 0], **kwargs)
    split = explain(counting, x, target=[0, 1, 2, 0, 1, 2, 0], max_batch_rows=250, **kwargs)
    assert max(sizes) <= 250 and len(sizes) == 4  # 2 rows (2 * 100 coalitions + 3) per call
    for a, b in zip(whole, split, strict=True):
        np.testing.assert_allclose(a.attributions, b.attributions, atol=1e-12)
        assert a.class_index == b.class_index


def test_queue_hook(ref_model):
    from maas.rai.explain_groups import explain_for_queue

    x = np.random.default_rng(9).normal(size=(2, 100)).astype(np.float32)
    out = explain_for_queue(ref_model, {ref_model.manifest.signature.input_names[0]: x})
    assert len(out) == 2 and len(out[0]["top_features"]) == 10
    assert abs(out[0]["sum_attributions"] - (out[0]["prediction"] - out[0]["baseline_prediction"])) < 1e-3
