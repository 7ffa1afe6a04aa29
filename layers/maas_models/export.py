"""Export a Keras model into a publishable directory (needs TensorFlow: training, tests, demo only).

    out_dir/
      saved_model/      the SavedModel (TF Serving layout; serving_default with the Keras names)
      model.tflite      tf.lite.TFLiteConverter.from_saved_model(saved_model/), builtin ops only
      model.keras       only with keep_keras=True (it carries optimizer state: ~3x the weights)
      card.json|md|html copied from card_dir when given
      metadata.json     the manifest fields publish cannot compute (specs, metrics, fingerprint, ...)

Any signature (N-D, several named inputs and outputs, every servable dtype): the conversion and the
check are `maas_models.importer.prepare`'s. The .tflite is checked against the Keras model on
seeded probe inputs before export_keras returns: a converter path that silently drops weights
returns NaN without raising (see performance notes).
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from maas_models.errors import UnsupportedModel
from maas_models.verify import PROBE_SEED, compare_outputs, probe_batch, probe_inputs

__all__ = ["compare_outputs", "export_keras", "export_reference", "probe_inputs"]

METADATA_FILE = "metadata.json"
CARD_FILES = ("card.json", "card.md", "card.html")
DEFAULT_ATOL = 1e-5


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


def export_keras(
    model: Any,
    out_dir: str | Path,
    *,
    feature_names: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    class_labels: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
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

    Any signature (`maas_models.importer.prepare` does the conversion and the check): feature names
    apply to a rank-2 input, class labels to an output; with several, give {tensor name: [...]}.
    runtime: "litert" (convert; UnsupportedModel names the ops LiteRT lacks), "savedmodel" (no
    .tflite: served by TensorFlow), or "auto" (LiteRT, falling back to the SavedModel when the
    converter cannot handle the model; the reason is recorded in metadata.json as
    litert_unsupported). Raises ExportMismatch when an export does not reproduce the Keras model on
    probe inputs (NaN, or a gap above atol), and ValueError when names / labels do not fit the model.
    """
    if runtime not in ("auto", "litert", "savedmodel"):
        raise ValueError(f"runtime must be auto, litert or savedmodel, got {runtime!r}")
    from maas_models.importer import prepare

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.tflite").unlink(missing_ok=True)
    from maas_models.importer import copy_card

    model_card = copy_card(card_dir, out)
    extra = {
        "fingerprint": dict(fingerprint) if fingerprint is not None else None,
        "sensitive_features": list(sensitive_features or []),
        "fairness": dict(fairness) if fairness is not None else None,
        "model_card": model_card,
    }
    litert_unsupported = None
    if runtime in ("auto", "litert"):
        try:
            prepare(
                model,
                out,
                feature_names=feature_names,
                class_labels=class_labels,
                metrics=metrics,
                atol=atol,
                rtol=0.0,
                extra_metadata=extra,
            )
        except UnsupportedModel as exc:
            if runtime == "litert":
                raise
            litert_unsupported = str(exc)[:500]
    if runtime == "savedmodel" or litert_unsupported is not None:
        _export_saved_model_only(model, out, feature_names, class_labels, metrics, atol, extra)
        if litert_unsupported is not None:
            meta = orjson.loads((out / METADATA_FILE).read_bytes())
            meta["litert_unsupported"] = litert_unsupported
            (out / METADATA_FILE).write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    keras_path = out / "model.keras"
    if keep_keras:
        model.save(str(keras_path))
    elif keras_path.exists():
        keras_path.unlink()
    return out


def _export_saved_model_only(
    model: Any,
    out: Path,
    feature_names: Any,
    class_labels: Any,
    metrics: Mapping[str, Any] | None,
    atol: float,
    extra: Mapping[str, Any],
) -> None:
    """A SavedModel-only export (served by TensorFlow), checked against the Keras model."""
    from maas_models.convert import save_keras
    from maas_models.importer import attach_labels, embedding_ranges, framework_versions, keras_outputs
    from maas_models.verify import compare_named, probe_rows_for, record_outputs, saved_model_outputs

    saved = out / "saved_model"
    if saved.exists():
        shutil.rmtree(saved)
    signature = attach_labels(save_keras(model, saved), feature_names, class_labels)
    ranges = embedding_ranges(model)
    rows = probe_rows_for(signature)
    probes = probe_batch(signature, rows, PROBE_SEED, int_ranges=ranges)
    expected = keras_outputs(model, signature, probes)
    got = saved_model_outputs(saved, signature, probes)
    gaps = compare_named(expected, got, atol=atol, what="SavedModel vs Keras")
    metadata: dict[str, Any] = {
        "schema_version": 2,
        "framework": framework_versions(),
        "runtime": "savedmodel",
        "source": {"kind": "keras", "name": f"keras.Model {getattr(model, 'name', '')}"},
        "inputs": [s.to_manifest() for s in signature.inputs],
        "outputs": [s.to_manifest() for s in signature.outputs],
        "metrics": dict(metrics or {}),
        "export_check": {
            "probe_rows": rows,
            "probe_seed": PROBE_SEED,
            "int_ranges": {k: list(v) for k, v in sorted(ranges.items())},
            "atol": atol,
            "max_abs_diff_keras": max(gaps.values()),
            "expected": record_outputs(expected),
        },
        **dict(extra),
    }
    (out / METADATA_FILE).write_bytes(orjson.dumps(metadata, option=orjson.OPT_INDENT_2))


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
