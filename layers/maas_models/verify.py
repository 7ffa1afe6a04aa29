"""Check that an export's LiteRT model reproduces its source model on probe inputs.

The known pitfall: a converter path that drops the weights gives a .tflite that returns NaN and
raises nothing. So every publish runs the .tflite on seeded probe rows and compares it with
  * the SavedModel in the same directory, when TensorFlow is importable (training job, CLI, tests);
  * the source model's outputs recorded by export_keras() on the same probes (metadata.json).
At least one source must be available; NaN/Inf anywhere is refused.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from maas_models.errors import ExportMismatch

PROBE_ROWS = 64
PROBE_SEED = 1234


def probe_inputs(n_features: int, rows: int = PROBE_ROWS, seed: int = PROBE_SEED) -> np.ndarray:
    """Deterministic probe rows: standard normal, plus an all-zero row and a large-magnitude row."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, n_features)).astype(np.float32)
    x[0] = 0.0
    if rows > 1:
        x[1] = 10.0 * np.sign(x[1])
    return x


def compare_outputs(reference: np.ndarray, candidate: np.ndarray, *, atol: float, what: str) -> float:
    """Max abs difference; ExportMismatch on NaN/Inf, a shape mismatch or a gap above atol."""
    if reference.shape != candidate.shape:
        raise ExportMismatch(f"{what}: output shape {candidate.shape} != source {reference.shape}")
    if not np.all(np.isfinite(candidate)):
        raise ExportMismatch(f"{what}: export returns NaN/Inf on probe inputs")
    if not np.all(np.isfinite(reference)):
        raise ExportMismatch(f"{what}: source model returns NaN/Inf on probe inputs")
    gap = (
        float(np.max(np.abs(reference.astype(np.float64) - candidate.astype(np.float64))))
        if reference.size
        else 0.0
    )
    if gap > atol:
        raise ExportMismatch(f"{what}: max abs difference {gap:.3g} on probe inputs exceeds {atol:g}")
    return gap


def tensorflow_available() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def saved_model_predict(saved_model_dir: Path, x: np.ndarray) -> np.ndarray:
    """Run the serving_default signature of a SavedModel (imports TensorFlow)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_model_dir))
    fn = loaded.signatures["serving_default"]
    (arg_name,) = list(fn.structured_input_signature[1].keys())
    outputs = fn(**{arg_name: tf.constant(x)})
    if len(outputs) != 1:
        raise ExportMismatch(f"SavedModel serving_default has {len(outputs)} outputs; expected 1")
    return np.asarray(next(iter(outputs.values())), dtype=np.float32)


def verify_export(
    src: Path, metadata: dict[str, Any], *, atol: float = 1e-5, source: str = "auto"
) -> dict[str, Any]:
    """Run the checks; returns what was checked. Raises ExportMismatch when the export is not faithful.

    For a LiteRT export, source is what model.tflite is compared with: "auto" (the recorded Keras
    outputs, plus the SavedModel when TensorFlow is importable), "recorded" (recorded outputs only: no
    TensorFlow import) or "savedmodel" (TensorFlow required). A SavedModel-only export (runtime
    "savedmodel") is run through TensorFlow and compared with the recorded outputs.
    """
    if source not in ("auto", "recorded", "savedmodel"):
        raise ValueError(f"source must be auto, recorded or savedmodel, got {source!r}")
    n_features = int(metadata["inputs"][0]["shape"][-1])
    check = dict(metadata.get("export_check") or {})
    rows = int(check.get("probe_rows") or PROBE_ROWS)
    seed = int(check.get("probe_seed") or PROBE_SEED)
    probes = probe_inputs(n_features, rows, seed)
    expected = check.get("expected")
    ref = np.asarray(expected, dtype=np.float32) if expected is not None else None
    saved = src / "saved_model"
    has_saved = (saved / "saved_model.pb").is_file()
    result: dict[str, Any] = {"probe_rows": rows, "probe_seed": seed, "atol": atol, "checked_against": []}

    if not (src / "model.tflite").is_file():
        if not has_saved:
            raise ExportMismatch("nothing to verify: neither model.tflite nor saved_model/saved_model.pb")
        if not tensorflow_available():
            raise ExportMismatch("a SavedModel export can only be verified where TensorFlow is installed")
        got = saved_model_predict(saved, probes)
        if not np.all(np.isfinite(got)):
            raise ExportMismatch("the SavedModel returns NaN/Inf on probe inputs")
        if ref is not None:
            result["max_abs_diff_keras"] = compare_outputs(ref, got, atol=atol, what="SavedModel vs Keras")
            result["checked_against"].append("keras")
        return result

    from maas_models.backends.litert import LiteRTBackend

    got = LiteRTBackend(src / "model.tflite").predict(probes)
    if not np.all(np.isfinite(got)):
        raise ExportMismatch("model.tflite returns NaN/Inf on probe inputs")
    if ref is not None:
        result["max_abs_diff_keras"] = compare_outputs(ref, got, atol=atol, what="model.tflite vs Keras")
        result["checked_against"].append("keras")
    use_tf = source == "savedmodel" or (source == "auto" and tensorflow_available())
    if source == "savedmodel" and not has_saved:
        raise ExportMismatch("cannot verify against the SavedModel: saved_model/saved_model.pb is missing")
    if use_tf and has_saved:
        result["max_abs_diff_savedmodel"] = compare_outputs(
            saved_model_predict(saved, probes), got, atol=atol, what="model.tflite vs SavedModel"
        )
        result["checked_against"].append("savedmodel")
    if not result["checked_against"]:
        raise ExportMismatch(
            "cannot verify model.tflite: no recorded source outputs in metadata.json and no "
            "SavedModel + TensorFlow to compare with (publish with verify=False to skip, at your risk)"
        )
    return result
