"""The generated large model of `maas bench load` is a real, correct LiteRT model, and the figures'
harness runs end to end (tiny dimensions here; the bench itself uses 300 MB)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
from maas.bench import large_model
from maas.bench.load import PEAK_RSS
from maas_models import Registry
from maas_models.backends.litert import LiteRTBackend


def _numpy_forward(path: Path, dims: tuple[int, ...], x: np.ndarray) -> np.ndarray:
    """The same weights drawn again from the generator's seed, run with numpy."""
    rng = np.random.default_rng(0)
    h = x.astype(np.float64)
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(dims)):
        w = rng.random((fan_out, fan_in), dtype=np.float32)
        w -= 0.5
        w *= np.float32(2.0 / np.sqrt(fan_in))
        h = h @ w.T.astype(np.float64)
        if i < len(dims) - 2:
            h = np.maximum(h, 0.0)
    return h


def test_generated_dense_tflite_computes_the_dense_stack(tmp_path: Path) -> None:
    dims = (12, 32, 16, 3)
    size = large_model.write_dense_tflite(tmp_path / "m.tflite", dims)
    weights = sum(a * b + b for a, b in itertools.pairwise(dims)) * 4
    assert weights <= size < weights + 64 * 1024
    backend = LiteRTBackend(tmp_path / "m.tflite")
    assert backend.signature.input_names == ["features"] and backend.signature.output_names == ["scores"]
    x = np.random.default_rng(1).standard_normal((5, 12)).astype(np.float32)
    np.testing.assert_allclose(
        backend.predict(x), _numpy_forward(tmp_path / "m.tflite", dims, x), rtol=1e-4, atol=1e-5
    )
    assert large_model.DIMS[0] * large_model.DIMS[1] + large_model.DIMS[1] * large_model.DIMS[2] > 78_000_000


def test_large_model_figures_run_end_to_end(s3_moto: str, tmp_path: Path) -> None:
    env = {**os.environ, "MAAS_MODELS_BUCKET": s3_moto}
    figures = large_model.run(Registry(bucket=s3_moto), env, tmp_path, PEAK_RSS, quick=True, dims=(16, 64, 4))
    names = [f["figure"] for f in figures]
    assert any("vs plain parallel GET" in n for n in names) and any("peak RSS" in n for n in names)
    assert all(f["value"] > 0 for f in figures) and all(f["benchmark"] == "load" for f in figures)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # generated model, caches and copies removed
