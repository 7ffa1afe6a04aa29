"""Check that an export's LiteRT model reproduces its source model on probe inputs.

The known pitfall: a converter path that drops the weights gives a .tflite that returns NaN and
raises nothing. So every import and every publish runs the .tflite on seeded probe inputs and
compares each output with
  * the SavedModel in the same directory, when TensorFlow is importable (training job, CLI, tests);
  * the source model's outputs recorded at export/import on the same probes (metadata.json).
At least one source must be available; NaN/Inf anywhere is refused.

Probes are generated from the signature, per input, deterministically (seed + the recorded
`int_ranges` and `variable_size`), so `publish` can rebuild exactly the inputs the source model saw:
floats standard normal with an all-zero row and a large-magnitude row; uint8 over 0..255; other
integers in [lo, hi) (an Embedding's [0, input_dim) when known); bools at random.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from maas_models.errors import ExportMismatch
from maas_models.signature import Signature, TensorSpec

PROBE_ROWS = 64
PROBE_SEED = 1234
VARIABLE_SIZE = 5  # the size probes give a variable non-batch dimension
DEFAULT_INT_RANGE = (0, 100)
MAX_RECORDED_VALUES = 100_000  # recorded source outputs stay a small part of metadata.json


def probe_inputs(n_features: int, rows: int = PROBE_ROWS, seed: int = PROBE_SEED) -> np.ndarray:
    """Probe rows for an [N, F] float32 model (the values `probe_batch` gives such a model)."""
    spec = TensorSpec("features", "float32", (-1, n_features))
    return probe_batch(Signature((spec,), ()), rows, seed)["features"]


def _int_bounds(spec: TensorSpec, wanted: tuple[int, int] | None) -> tuple[int, int]:
    info = np.iinfo(spec.np_dtype)
    if wanted is None:
        wanted = (0, 256) if spec.dtype == "uint8" else DEFAULT_INT_RANGE
    lo, hi = max(int(wanted[0]), int(info.min)), min(int(wanted[1]), int(info.max) + 1)
    return lo, max(hi, lo + 1)


def probe_batch(
    signature: Signature,
    rows: int = PROBE_ROWS,
    seed: int = PROBE_SEED,
    *,
    int_ranges: Mapping[str, tuple[int, int] | list[int]] | None = None,
    variable_size: int = VARIABLE_SIZE,
) -> dict[str, np.ndarray]:
    """Deterministic probe inputs for every input of the signature (see the module docstring)."""
    rng = np.random.default_rng(seed)
    ranges = {k: (int(v[0]), int(v[1])) for k, v in (int_ranges or {}).items()}
    out: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        shape = (rows, *(d if d >= 0 else variable_size for d in spec.row_shape))
        if spec.dtype == "bool":
            arr = rng.integers(0, 2, size=shape).astype(np.bool_)
        elif spec.is_integer:
            lo, hi = _int_bounds(spec, ranges.get(spec.name))
            arr = rng.integers(lo, hi, size=shape).astype(spec.np_dtype)
        elif spec.is_floating:
            arr = rng.standard_normal(shape).astype(np.float32)
            arr[0] = 0.0
            if rows > 1:
                arr[1] = 10.0 * np.sign(arr[1])
            arr = arr.astype(spec.np_dtype)
        else:
            raise ExportMismatch(f"input {spec.name!r}: no probes for dtype {spec.dtype}")
        out[spec.name] = arr
    return out


def probe_rows_for(signature: Signature, *, variable_size: int = VARIABLE_SIZE) -> int:
    """PROBE_ROWS, or fewer for models with large outputs (recorded outputs stay small)."""
    per_row = sum(
        int(np.prod([d if d >= 0 else variable_size for d in s.row_shape], dtype=np.int64))
        for s in signature.outputs
    )
    return int(max(4, min(PROBE_ROWS, MAX_RECORDED_VALUES // max(per_row, 1))))


def compare_outputs(
    reference: np.ndarray, candidate: np.ndarray, *, atol: float, what: str, rtol: float = 0.0
) -> float:
    """Max abs difference; ExportMismatch on NaN/Inf, a shape mismatch or a gap above atol + rtol*|ref|."""
    if reference.shape != candidate.shape:
        raise ExportMismatch(f"{what}: output shape {candidate.shape} != source {reference.shape}")
    ref = reference.astype(np.float64)
    got = candidate.astype(np.float64)
    if not np.all(np.isfinite(got)):
        raise ExportMismatch(f"{what}: export returns NaN/Inf on probe inputs")
    if not np.all(np.isfinite(ref)):
        raise ExportMismatch(f"{what}: source model returns NaN/Inf on probe inputs")
    if not ref.size:
        return 0.0
    diff = np.abs(ref - got)
    gap = float(np.max(diff))
    allowed = atol + rtol * np.abs(ref)
    if np.any(diff > allowed):
        worst = np.unravel_index(int(np.argmax(diff - allowed)), diff.shape)
        raise ExportMismatch(
            f"{what}: max abs difference {gap:.3g} on probe inputs exceeds {atol:g}"
            + (f" + {rtol:g} x |source|" if rtol else "")
            + f" (worst at index {list(map(int, worst))}: source {ref[worst]:.6g}, export {got[worst]:.6g})"
        )
    return gap


def compare_named(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    *,
    atol: float,
    what: str,
    rtol: float = 0.0,
) -> dict[str, float]:
    """compare_outputs per output name; {name: max abs difference}."""
    if set(reference) != set(candidate):
        raise ExportMismatch(f"{what}: outputs {sorted(candidate)} != source outputs {sorted(reference)}")
    return {
        name: compare_outputs(
            np.asarray(reference[name]),
            candidate[name],
            atol=atol,
            rtol=rtol,
            what=f"{what}, output {name!r}",
        )
        for name in reference
    }


def tensorflow_available() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def saved_model_outputs(
    saved_model_dir: Path, signature: Signature, inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Run the serving_default signature of a SavedModel (imports TensorFlow)."""
    from maas_models.backends.savedmodel import SavedModelBackend

    return SavedModelBackend(saved_model_dir, signature=signature).predict_named(inputs)


def recorded_outputs(check: Mapping[str, Any], signature: Signature) -> dict[str, np.ndarray] | None:
    """The source outputs recorded in export_check["expected"] ({output: nested list}; a bare list
    is the single output of an older export)."""
    expected = check.get("expected")
    if expected is None:
        return None
    if not isinstance(expected, dict):
        expected = {signature.outputs[0].name: expected}
    return {
        name: np.asarray(value, dtype=spec.np_dtype if (spec := signature.output(name)) else np.float32)
        for name, value in expected.items()
    }


def record_outputs(outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    return {name: np.asarray(v).tolist() for name, v in outputs.items()}


def probes_for_check(signature: Signature, check: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The probe inputs an export_check block describes (rows, seed, int ranges, variable size)."""
    return probe_batch(
        signature,
        int(check.get("probe_rows") or PROBE_ROWS),
        int(check.get("probe_seed") or PROBE_SEED),
        int_ranges=check.get("int_ranges") or None,
        variable_size=int(check.get("variable_size") or VARIABLE_SIZE),
    )


def verify_export(
    src: Path, metadata: dict[str, Any], *, atol: float = 1e-5, source: str = "auto"
) -> dict[str, Any]:
    """Run the checks; returns what was checked. Raises ExportMismatch when the export is not faithful.

    For a LiteRT export, source is what model.tflite is compared with: "auto" (the recorded source
    outputs, plus the SavedModel when TensorFlow is importable), "recorded" (recorded outputs only: no
    TensorFlow import) or "savedmodel" (TensorFlow required). A SavedModel-only export (runtime
    "savedmodel") is run through TensorFlow and compared with the recorded outputs.
    """
    if source not in ("auto", "recorded", "savedmodel"):
        raise ValueError(f"source must be auto, recorded or savedmodel, got {source!r}")
    from maas_models.preprocessing.pipeline import backend_manifest

    # probes go to the runtime's inputs (after any preprocessing, which import verified against Keras)
    signature = Signature.from_manifest(backend_manifest(metadata))
    check = dict(metadata.get("export_check") or {})
    rtol = float(check.get("rtol") or 0.0)
    probes = probes_for_check(signature, check)
    ref = recorded_outputs(check, signature)
    saved = src / "saved_model"
    has_saved = (saved / "saved_model.pb").is_file()
    result: dict[str, Any] = {
        "probe_rows": int(next(iter(probes.values())).shape[0]),
        "probe_seed": int(check.get("probe_seed") or PROBE_SEED),
        "atol": atol,
        "checked_against": [],
    }

    if not (src / "model.tflite").is_file():
        if not has_saved:
            raise ExportMismatch("nothing to verify: neither model.tflite nor saved_model/saved_model.pb")
        if not tensorflow_available():
            raise ExportMismatch("a SavedModel export can only be verified where TensorFlow is installed")
        got = saved_model_outputs(saved, signature, probes)
        if not all(np.all(np.isfinite(np.asarray(v, dtype=np.float64))) for v in got.values()):
            raise ExportMismatch("the SavedModel returns NaN/Inf on probe inputs")
        if ref is not None:
            gaps = compare_named(ref, got, atol=atol, rtol=rtol, what="SavedModel vs source")
            result["max_abs_diff_keras"] = max(gaps.values())
            result["checked_against"].append("keras")
        return result

    from maas_models.backends.litert import LiteRTBackend

    got = LiteRTBackend(src / "model.tflite", signature=signature).predict_named(probes)
    for name, value in got.items():
        if not np.all(np.isfinite(np.asarray(value, dtype=np.float64))):
            raise ExportMismatch(f"model.tflite returns NaN/Inf on probe inputs (output {name!r})")
    if ref is not None:
        gaps = compare_named(ref, got, atol=atol, rtol=rtol, what="model.tflite vs source")
        result["max_abs_diff_keras"] = max(gaps.values())
        result["checked_against"].append("keras")
    use_tf = source == "savedmodel" or (source == "auto" and tensorflow_available())
    if source == "savedmodel" and not has_saved:
        raise ExportMismatch("cannot verify against the SavedModel: saved_model/saved_model.pb is missing")
    if use_tf and has_saved:
        gaps = compare_named(
            saved_model_outputs(saved, signature, probes),
            got,
            atol=atol,
            rtol=rtol,
            what="model.tflite vs SavedModel",
        )
        result["max_abs_diff_savedmodel"] = max(gaps.values())
        result["checked_against"].append("savedmodel")
    if not result["checked_against"]:
        raise ExportMismatch(
            "cannot verify model.tflite: no recorded source outputs in metadata.json and no "
            "SavedModel + TensorFlow to compare with (publish with verify=False to skip, at your risk)"
        )
    return result
