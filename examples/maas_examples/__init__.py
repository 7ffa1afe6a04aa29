"""Example models for `maas models import`, built from code (weights are never committed).

    from maas_examples import EXAMPLES, cached_keras, import_example
    path = cached_keras("digits-cnn")           # trained once, cached under .cache/examples/
    import_example("digits-cnn", "digits", promote="production")   # the Python import API

* digits-cnn     a CNN image classifier on scikit-learn's bundled digits ("image" [N, 8, 8, 1])
* image-tabular  two named inputs: the picture and a row of 3 named table columns ("stats" [N, 3])
* multi-output   three named outputs: "digit" [N, 10], "is_even" [N, 1], "ink" [N, 1]
* image-classifier   takes JPEG/PNG: "img" [N, 32, 32, 3] uint8 with Rescaling inside, 3 colours
* sentiment      takes sentences: TextVectorization + Embedding trained on a small corpus
* customer-segments  takes rows with string categories: StringLookup, Hashing, Normalization

Each module has NAME, IMPORT_OPTIONS (the class labels / feature names to import it with),
model(seed), build(epochs=, seed=) -> Built(model, metrics), inputs(images) and sample_inputs(rows).
`python -m maas_examples NAME OUT_DIR` writes OUT_DIR/NAME.keras and NAME.json (metrics and import
options). Needs TensorFlow and scikit-learn (the dev extra).
"""

from __future__ import annotations

import hashlib
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

EXAMPLES: dict[str, str] = {
    "digits-cnn": "maas_examples.digits_cnn",
    "image-tabular": "maas_examples.image_tabular",
    "multi-output": "maas_examples.multi_output",
    "image-classifier": "maas_examples.image_classifier",
    "sentiment": "maas_examples.sentiment",
    "customer-segments": "maas_examples.customer_segments",
}
PACKAGE = Path(__file__).resolve().parent


def example(name: str) -> ModuleType:
    try:
        return importlib.import_module(EXAMPLES[name])
    except KeyError:
        raise KeyError(f"unknown example {name!r}; there are {sorted(EXAMPLES)}") from None


def save(name: str, out_dir: str | Path, *, epochs: int | None = None, seed: int = 0) -> Path:
    """Train the example and write OUT_DIR/NAME.keras and NAME.json; returns the .keras path."""
    mod = example(name)
    built = mod.build(seed=seed, **({"epochs": epochs} if epochs is not None else {}))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.keras"
    built.model.save(path)
    sidecar = {"name": name, "metrics": built.metrics, "import_options": mod.IMPORT_OPTIONS, "seed": seed}
    (out / f"{name}.json").write_bytes(orjson.dumps(sidecar, option=orjson.OPT_INDENT_2))
    return path


def _source_hash(name: str, seed: int) -> str:
    digest = hashlib.sha256(f"{name}:{seed}".encode())
    for file in sorted(PACKAGE.glob("*.py")):
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def cached_keras(name: str, *, seed: int = 0, cache_root: Path | None = None, timeout: float = 900) -> Path:
    """The trained example's .keras file, built once (in a subprocess: the caller need not import
    TensorFlow) under .cache/examples/<name>-<hash of the example code>/."""
    example(name)  # KeyError for an unknown name
    from maas_models.reference import build_once, project_root

    root = cache_root or project_root() / ".cache" / "examples"
    target = root / f"{name}-{_source_hash(name, seed)}"
    if (target / f"{name}.keras").is_file():
        return target / f"{name}.keras"
    build_once(target, ["-m", "maas_examples", name], seed, f"example {name}", timeout)
    return target / f"{name}.keras"


def metrics_of(keras_path: Path) -> dict[str, Any]:
    sidecar = keras_path.with_suffix(".json")
    return dict(orjson.loads(sidecar.read_bytes()).get("metrics") or {}) if sidecar.is_file() else {}


def import_example(
    name: str, model_name: str | None = None, *, registry: Any = None, promote: str | None = None
) -> Any:
    """`maas_models.importer.import_model` of the cached example with its labels and metrics."""
    from maas_models.importer import import_model

    path = cached_keras(name)
    return import_model(
        path,
        model_name or name,
        registry=registry,
        promote=promote,
        metrics=metrics_of(path),
        **example(name).IMPORT_OPTIONS,
    )


__all__ = ["EXAMPLES", "cached_keras", "example", "import_example", "metrics_of", "save"]
