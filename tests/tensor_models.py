"""Tensor models for the serving tests (N-D inputs, several named inputs and outputs, integer dtypes),
built once in a subprocess (the test process imports no TensorFlow) and cached under
.cache/test-models/tensors-<hash of the builders and the conversion code>.

Each model directory holds what `Registry.publish` takes (model.tflite + metadata.json with the full
signature), plus `probe.npz` (sample inputs) and `keras.npz` (the Keras model's outputs on them), so
tests compare served outputs with Keras without importing it.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("cnn", "image_vector", "multi_output", "dtypes")
PROBE_ROWS = 3
_SOURCES = (
    ROOT / "tests" / "unit" / "keras_models.py",
    ROOT / "layers" / "maas_models" / "convert.py",
    Path(__file__),
)


def _hash() -> str:
    digest = hashlib.sha256()
    for path in _SOURCES:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cached_tensor_models(timeout: float = 900) -> Path:
    """The cache folder with one sub-folder per name in MODELS (built on first use)."""
    root = ROOT / ".cache" / "test-models" / f"tensors-{_hash()}"
    if all((root / name / "keras.npz").is_file() for name in MODELS):
        return root
    subprocess.run(
        [sys.executable, "-m", "tests.tensor_models", str(root)], check=True, timeout=timeout, cwd=ROOT
    )
    return root


def load_probe(model_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    with np.load(model_dir / "probe.npz") as probe, np.load(model_dir / "keras.npz") as keras:
        return {k: probe[k] for k in probe.files}, {k: keras[k] for k in keras.files}


def _build(root: Path) -> None:
    import shutil

    import orjson

    from tests.unit import keras_models

    builders = {
        "cnn": keras_models.cnn_8x8,
        "image_vector": keras_models.image_and_vector,
        "multi_output": keras_models.multi_output,
        "dtypes": keras_models.mixed_dtypes,
    }
    for name, build in builders.items():
        out = root / name
        out.mkdir(parents=True, exist_ok=True)
        model = build()
        tflite, signature = keras_models.convert(model, out / "_convert")
        (out / "model.tflite").write_bytes(tflite)
        probe = keras_models.sample_inputs(signature, PROBE_ROWS, seed=1)
        want = keras_models.keras_outputs(model, probe, signature)
        inputs = [s.to_manifest() for s in signature.inputs]
        outputs = [s.to_manifest() for s in signature.outputs]
        if name == "cnn":
            outputs[0]["class_labels"] = ["circle", "square", "line"]
        meta = {"runtime": "litert", "framework": "keras", "inputs": inputs, "outputs": outputs}
        (out / "metadata.json").write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
        np.savez(out / "probe.npz", **probe)  # type: ignore[arg-type]
        np.savez(out / "keras.npz", **want)  # type: ignore[arg-type]
        shutil.rmtree(out / "_convert", ignore_errors=True)


if __name__ == "__main__":  # python -m tests.tensor_models <folder> (from the project root)
    _build(Path(sys.argv[1]))
