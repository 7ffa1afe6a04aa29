"""Export a Keras model into a publishable directory (needs TensorFlow: training, tests, demo only).

    out_dir/
      saved_model/      model.export(): the SavedModel (TF Serving layout, signature serving_default)
      model.tflite      tf.lite.TFLiteConverter.from_saved_model(saved_model/)
      model.keras       only with keep_keras=True (it carries optimizer state: ~3x the weights)
      card.json|md|html copied from card_dir when given
      metadata.json     the manifest fields publish cannot compute (specs, metrics, fingerprint, ...)

The .tflite is checked against the Keras model on seeded probe inputs before export_keras returns:
a converter path that silently drops weights returns NaN without raising (see performance notes).
"""

from __future__ import annotations

import importlib.metadata
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from maas_models.verify import PROBE_ROWS, PROBE_SEED, compare_outputs, probe_inputs

METADATA_FILE = "metadata.json"
CARD_FILES = ("card.json", "card.md", "card.html")
DEFAULT_ATOL = 1e-5


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def framework_versions() -> dict[str, str | None]:
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "litert": _version("ai-edge-litert")}


def build_reference_model(seed: int = 0, *, n_features: int = 100, n_classes: int = 10) -> Any:
    """The reference model: Dense(64, relu) on 100 inputs -> Dense(32, relu) -> Dense(10, softmax)."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(n_features,), name="features", dtype="float32")
    x = keras.layers.Dense(64, activation="relu", name="dense_64")(inputs)
    x = keras.layers.Dense(32, activation="relu", name="dense_32")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs=inputs, outputs=outputs, name="reference")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _tensor_dtype(dtype: Any) -> str:
    return str(np.dtype(getattr(dtype, "name", dtype) or "float32"))


def export_keras(
    model: Any,
    out_dir: str | Path,
    *,
    feature_names: Sequence[str],
    class_labels: Sequence[str],
    metrics: Mapping[str, Any] | None = None,
    fingerprint: Mapping[str, Any] | None = None,
    sensitive_features: Sequence[str] | None = None,
    fairness: Mapping[str, Any] | None = None,
    card_dir: str | Path | None = None,
    keep_keras: bool = False,
    atol: float = DEFAULT_ATOL,
    runtime: str = "auto",
) -> Path:
    """Write saved_model/, model.tflite, optional model.keras, card files and metadata.json to out_dir.

    runtime: "litert" (convert; a conversion error propagates), "savedmodel" (no .tflite: served by
    TensorFlow), or "auto" (LiteRT, falling back to the SavedModel when the converter cannot handle
    the model, e.g. an op without a LiteRT kernel; the reason is recorded in metadata.json).
    Raises ExportMismatch when an export does not reproduce the Keras model on probe inputs (NaN, or
    a gap above atol), and ValueError when feature names / class labels do not fit the model.
    """
    if runtime not in ("auto", "litert", "savedmodel"):
        raise ValueError(f"runtime must be auto, litert or savedmodel, got {runtime!r}")
    import tensorflow as tf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError("export_keras supports models with one input and one output tensor")
    in_shape = tuple(model.inputs[0].shape)
    out_shape = tuple(model.outputs[0].shape)
    if len(in_shape) != 2 or in_shape[1] is None:
        raise ValueError(f"model input must be [N, F] with a fixed F, got {in_shape}")
    n_features, n_classes = int(in_shape[1]), int(out_shape[-1])
    feature_names = [str(f) for f in feature_names]
    class_labels = [str(c) for c in class_labels]
    if len(feature_names) != n_features or len(set(feature_names)) != n_features:
        raise ValueError(f"need {n_features} distinct feature names, got {len(feature_names)}")
    if len(class_labels) != n_classes:
        raise ValueError(f"need {n_classes} class labels, got {len(class_labels)}")

    saved = out / "saved_model"
    if saved.exists():
        shutil.rmtree(saved)
    model.export(str(saved), format="tf_saved_model", verbose=False)

    probes = probe_inputs(n_features, PROBE_ROWS, PROBE_SEED)
    expected = np.asarray(model(probes, training=False), dtype=np.float32)
    tflite_path = out / "model.tflite"
    tflite_path.unlink(missing_ok=True)
    litert_unsupported = None
    tflite_bytes = None
    if runtime in ("auto", "litert"):
        try:
            tflite_bytes = tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert()
        except Exception as exc:  # the converter raises ConverterError and assorted others
            if runtime == "litert":
                raise
            litert_unsupported = f"{type(exc).__name__}: {str(exc)[:500]}"
    check: dict[str, Any] = {"probe_rows": int(probes.shape[0]), "probe_seed": PROBE_SEED, "atol": atol}
    if tflite_bytes is not None:
        from maas_models.backends.litert import LiteRTBackend

        got = LiteRTBackend(model_content=tflite_bytes).predict(probes)
        check["max_abs_diff_keras"] = compare_outputs(expected, got, atol=atol, what="model.tflite vs Keras")
        tflite_path.write_bytes(tflite_bytes)
        chosen = "litert"
    else:
        from maas_models.verify import saved_model_predict

        got = saved_model_predict(saved, probes)
        check["max_abs_diff_keras"] = compare_outputs(expected, got, atol=atol, what="SavedModel vs Keras")
        chosen = "savedmodel"
    # the source model's outputs on the probes, so publish can verify without TensorFlow
    check["expected"] = expected.tolist()

    keras_path = out / "model.keras"
    if keep_keras:
        model.save(str(keras_path))
    elif keras_path.exists():
        keras_path.unlink()

    model_card = None
    if card_dir is not None:
        for name in CARD_FILES:
            src = Path(card_dir) / name
            if src.is_file():
                shutil.copyfile(src, out / name)
                if name == "card.json" or model_card is None:
                    model_card = name

    metadata: dict[str, Any] = {
        "schema_version": 1,
        "framework": framework_versions(),
        "runtime": chosen,
        "inputs": [
            {
                "name": model.inputs[0].name.split(":")[0] or "features",
                "dtype": _tensor_dtype(model.inputs[0].dtype),
                "shape": [None, n_features],
                "feature_names": feature_names,
            }
        ],
        "outputs": [
            {
                "name": "probabilities",
                "dtype": "float32",
                "shape": [None, n_classes],
                "class_labels": class_labels,
            }
        ],
        "metrics": dict(metrics or {}),
        "fingerprint": dict(fingerprint) if fingerprint is not None else None,
        "sensitive_features": list(sensitive_features or []),
        "fairness": dict(fairness) if fairness is not None else None,
        "model_card": model_card,
        "export_check": check,
    }
    if litert_unsupported:
        metadata["litert_unsupported"] = litert_unsupported
    (out / METADATA_FILE).write_bytes(orjson.dumps(metadata, option=orjson.OPT_INDENT_2))
    return out


def synthetic_dataset(
    seed: int = 0, rows: int = 2000, *, n_features: int = 100, n_classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """A learnable synthetic classification set (Gaussian clusters), float32 features, int64 labels."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_classes, n_features)).astype(np.float32)
    y = rng.integers(0, n_classes, size=rows)
    x = centers[y] + rng.standard_normal((rows, n_features)).astype(np.float32)
    return x.astype(np.float32), y.astype(np.int64)


def train_reference_model(seed: int = 0, *, rows: int = 2000, epochs: int = 3) -> tuple[Any, dict[str, Any]]:
    """Build and briefly fit the reference model on synthetic data; returns (model, metrics)."""
    x, y = synthetic_dataset(seed, rows)
    model = build_reference_model(seed)
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0, shuffle=False)
    loss, acc = model.evaluate(x, y, verbose=0)
    return model, {"accuracy": float(acc), "loss": float(loss)}


REFERENCE_FEATURES = [f"f{i}" for i in range(100)]
REFERENCE_CLASSES = [str(i) for i in range(10)]


def export_reference(out_dir: str | Path, *, seed: int = 0, epochs: int = 3, keep_keras: bool = True) -> Path:
    """Train the reference model briefly on synthetic data (seeded) and export it to out_dir."""
    model, metrics = train_reference_model(seed, epochs=epochs)
    return export_keras(
        model,
        out_dir,
        feature_names=REFERENCE_FEATURES,
        class_labels=REFERENCE_CLASSES,
        metrics=metrics,
        keep_keras=keep_keras,
    )


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m maas_models.export", description="Train and export the seeded reference model."
    )
    parser.add_argument("out_dir", help="directory to write (saved_model/, model.tflite, metadata.json)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--no-keras", action="store_true", help="do not write model.keras")
    args = parser.parse_args(argv)
    export_reference(args.out_dir, seed=args.seed, epochs=args.epochs, keep_keras=not args.no_keras)
    print(args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
