"""PSI drift against the training fingerprint (maas.rai.drift)."""

from __future__ import annotations

import io

import numpy as np
import orjson
import pytest
from maas.rai.drift import (
    PSI_WARNING_THRESHOLD,
    OnlineDriftMonitor,
    Reservoir,
    bin_counts,
    drift_report,
    emit_drift_metrics,
    fingerprint,
    psi,
)

NAMES = ["a", "b", "c"]


@pytest.fixture(scope="module")
def manifest():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(20_000, 3))
    return {"inputs": [{"feature_names": NAMES}], "fingerprint": fingerprint(train, NAMES)}


def test_fingerprint_shape(manifest):
    fp = manifest["fingerprint"]
    assert fp["rows"] == 20_000 and len(fp["sha256"]) == 64
    f = fp["features"]["a"]
    assert len(f["bins"]) == len(f["counts"]) + 1 == 11
    assert sum(f["counts"]) == 20_000
    assert abs(f["mean"]) < 0.05 and abs(f["std"] - 1) < 0.05


def test_psi_identical_is_zero_and_known_value():
    assert psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)
    # two bins 50/50 vs 90/10: (0.9-0.5)ln(1.8) + (0.1-0.5)ln(0.2)
    assert psi([50, 50], [90, 10]) == pytest.approx(0.4 * np.log(1.8) - 0.4 * np.log(0.2))
    assert np.isfinite(psi([10, 0], [0, 10]))


def test_bin_counts_outer_bins_are_open():
    counts = bin_counts(np.array([-100.0, 0.5, 1.5, 100.0, np.nan]), [0.0, 1.0, 2.0])
    assert counts.tolist() == [2, 2]


def test_same_distribution_no_warning(manifest):
    sample = np.random.default_rng(1).normal(size=(5000, 3))
    r = drift_report(manifest, sample)
    assert r["max_psi"] < 0.02 and r["warnings"] == [] and r["drifted"] == []
    assert set(r["psi"]) == set(NAMES)


def test_shifted_feature_warns(manifest):
    sample = np.random.default_rng(2).normal(size=(5000, 3))
    sample[:, 1] += 1.5
    r = drift_report(manifest, sample)
    assert r["max_feature"] == "b" and r["max_psi"] > PSI_WARNING_THRESHOLD
    assert r["drifted"] == ["b"] and "feature 'b' drifted" in r["warnings"][0]
    assert r["psi"]["a"] < 0.05


def test_missing_fingerprint_is_reported_not_raised():
    r = drift_report({"inputs": [{"feature_names": NAMES}]}, np.zeros((10, 3)))
    assert r["max_psi"] is None and r["skipped"] == NAMES and r["warnings"]
    assert drift_report({"inputs": [{"feature_names": NAMES}]}, np.zeros((0, 3)))["rows"] == 0


def test_emf_document(manifest):
    sample = np.random.default_rng(3).normal(size=(500, 3)) + 2
    r = drift_report(manifest, sample)
    buf = io.StringIO()
    doc = emit_drift_metrics(r, model="ref", version=3, source="batch", per_feature=True, stream=buf)
    line = orjson.loads(buf.getvalue())
    assert line == orjson.loads(orjson.dumps(doc))
    cw = line["_aws"]["CloudWatchMetrics"][0]
    names = {m["Name"] for m in cw["Metrics"]}
    assert {"DriftMaxPSI", "DriftedFeatures", "PSI_a"} <= names
    assert line["DriftMaxPSI"] == r["max_psi"] and line["model"] == "ref" and line["source"] == "batch"


def test_reservoir_is_uniform_and_bounded():
    res = Reservoir(100, 1, seed=0)
    res.add(np.arange(10_000, dtype=np.float32)[:, None])
    s = res.sample()
    assert s.shape == (100, 1) and res.seen == 10_000
    assert 3000 < s.mean() < 7000  # not just the first rows


def test_online_monitor_flushes_on_time_and_emits(manifest):
    now = [0.0]
    buf = io.StringIO()
    mon = OnlineDriftMonitor(capacity=200, flush_seconds=60, min_rows=50, clock=lambda: now[0], stream=buf)
    rng = np.random.default_rng(4)
    assert mon.observe("ref", 1, manifest, rng.normal(size=(100, 3)) + 3) is None  # not due yet
    now[0] = 61.0
    report = mon.observe("ref", 1, manifest, rng.normal(size=(10, 3)) + 3)
    assert report is not None and report["rows"] == 110 and report["max_psi"] > PSI_WARNING_THRESHOLD
    assert orjson.loads(buf.getvalue())["source"] == "online"
    # never raises, even on garbage
    assert mon.observe("ref", 1, manifest, np.zeros((2, 7))) is None


def test_reservoir_uniform_over_chunked_adds():
    counts = np.zeros(10)
    for seed in range(200):
        res = Reservoir(50, 1, seed=seed)
        for chunk in np.array_split(np.arange(5000, dtype=np.float32), 37):
            res.add(chunk[:, None])
        assert res.seen == 5000
        counts += np.bincount((res.sample()[:, 0] // 500).astype(int), minlength=10)
    share = counts / counts.sum()
    assert np.abs(share - 0.1).max() < 0.02, share


def test_batch_sampler_reports_drift_over_all_blocks(manifest):
    from maas.rai.drift import BatchDriftSampler

    sampler = BatchDriftSampler(manifest, capacity=2000)
    rng = np.random.default_rng(5)
    for _ in range(10):
        block = rng.normal(size=(1000, 3))
        block[:, 2] *= 3.0  # feature c is much wider than in training
        sampler.add(block)
    buf = io.StringIO()
    import contextlib

    with contextlib.redirect_stdout(buf):
        report = sampler.report(model="ref", version=2)
    assert report is not None and report["sampled_from"] == 10_000 and report["rows"] == 2000
    assert report["drifted"] == ["c"] and report["warnings"]
    assert orjson.loads(buf.getvalue())["source"] == "batch"
    assert BatchDriftSampler({"inputs": [{"feature_names": NAMES}]}).report() is None  # no fingerprint
