"""Import a team's own model: a Keras model, a `.keras` file or a SavedModel directory -> a verified
LiteRT export -> a published registry version (needs TensorFlow; the CLI is `maas models import`).

    from maas_models.importer import import_model
    result = import_model(model_or_path, "digits", class_labels=[str(i) for i in range(10)],
                          promote="production")       # ImportResult(name, version, directory, check)

Steps, each refusing with a message that says what to do:
1. Load the source: a keras.Model, a `.keras` file (`keras.saving.load_model`), or a directory with
   saved_model.pb (Keras 3 `model.export()` or `tf.saved_model.save`; its serving_default signature).
2. Write saved_model/ with the serving names (Keras input and output names) and convert it to
   LiteRT with builtin ops only (`maas_models.convert`): string inputs or ops LiteRT lacks are
   UnsupportedModel naming them. No fallback to TensorFlow serving.
3. Verify: probe inputs generated from the signature (`maas_models.verify.probe_batch`; an
   Embedding's input_dim bounds the integer inputs that feed it) go through the source and the
   .tflite; any output apart by more than atol + rtol x |source| is ExportMismatch with the gap.
   The probe recipe and the source outputs are recorded so `publish` can re-check without TF.
4. Publish through `Registry.publish` (its checks, manifest, claim and atomic manifest-last
   write). Everything before that happens in a private work directory: an import stopped at any
   point publishes nothing.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from maas_models.convert import convert_saved_model, save_keras, saved_model_signature
from maas_models.errors import ExportMismatch, UnsupportedModel
from maas_models.signature import Signature, TensorSpec
from maas_models.verify import (
    PROBE_SEED,
    VARIABLE_SIZE,
    compare_named,
    probe_batch,
    probe_rows_for,
    record_outputs,
)

METADATA_FILE = "metadata.json"
_CARD_FILES = ("card.json", "card.md", "card.html")
DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-4
_GATHER_RANGE = re.compile(r"not in \[0, (\d+)\)")
MAX_RANGE_RETRIES = 8

Labels = Sequence[str] | Mapping[str, Sequence[str]] | None


@dataclass(frozen=True)
class ImportResult:
    name: str
    version: int
    signature: Signature
    check: dict[str, Any] = field(repr=False)
    promoted: str | None = None


@dataclass
class _Source:
    kind: str  # "keras" or "saved_model"
    keras_model: Any = None
    saved_model_dir: Path | None = None
    label: str = ""


def load_source(source: Any) -> _Source:
    """A keras.Model, a `.keras` file or a SavedModel directory; UnsupportedModel for anything else."""
    if not isinstance(source, str | Path):
        if not hasattr(source, "inputs") or not hasattr(source, "outputs"):
            raise UnsupportedModel(f"cannot import a {type(source).__name__}: give a keras.Model or a path")
        return _Source("keras", keras_model=source, label=f"keras.Model {getattr(source, 'name', '')}")
    path = Path(source)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise UnsupportedModel(
                f"{path} is a directory without saved_model.pb: give a SavedModel directory "
                "(model.export(dir) or tf.saved_model.save) or a .keras file"
            )
        return _Source("saved_model", saved_model_dir=path, label=f"SavedModel {path.name}")
    if path.suffix == ".keras" and path.is_file():
        import keras

        try:
            # safe_mode: a .keras file must not run code it carries (Lambda layers' pickled bytecode)
            model = keras.saving.load_model(str(path), compile=False, safe_mode=True)
        except Exception as exc:  # Keras raises ValueError, TypeError, ... for files it cannot read
            raise UnsupportedModel(
                f"Keras cannot load {path}: {exc} (custom layers must be registered with "
                "@keras.saving.register_keras_serializable and importable here; a Lambda layer cannot "
                "be loaded safely: pass the model object to maas_models.importer.import_model instead)"
            ) from exc
        return _Source("keras", keras_model=model, label=f".keras {path.name}")
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    raise UnsupportedModel(
        f"{path}: expected a .keras file or a SavedModel directory (.h5 files: load them in Keras and "
        "save as .keras, or model.export(dir))"
    )


def embedding_ranges(model: Any) -> dict[str, tuple[int, int]]:
    """{input name: (0, input_dim)} for inputs that feed a Keras Embedding layer directly."""
    import keras

    by_id = {id(t): t for t in model.inputs}
    ranges: dict[str, tuple[int, int]] = {}
    for layer in getattr(model, "layers", []):
        if not isinstance(layer, keras.layers.Embedding):
            continue
        try:
            tensors = keras.tree.flatten(layer.input)
        except (AttributeError, ValueError):  # a layer used on several inputs: skip
            continue
        for t in tensors:
            if id(t) in by_id:
                name = str(t.name)
                hi = int(layer.input_dim)
                ranges[name] = (0, min(hi, ranges.get(name, (0, hi))[1]))
    return ranges


def keras_outputs(model: Any, signature: Signature, inputs: Mapping[str, Any]) -> dict[str, Any]:
    import numpy as np

    x: Any = inputs[signature.inputs[0].name] if len(signature.inputs) == 1 else dict(inputs)
    y = model(x, training=False)
    if isinstance(y, dict):
        return {str(k): np.asarray(v) for k, v in y.items()}
    ys = y if isinstance(y, list | tuple) else [y]
    return {n: np.asarray(v) for n, v in zip(signature.output_names, ys, strict=True)}


def attach_labels(signature: Signature, feature_names: Labels, class_labels: Labels) -> Signature:
    """The signature with feature names on rank-2 inputs and class labels on outputs attached."""

    def assign(specs: Sequence[TensorSpec], given: Labels, what: str) -> dict[str, tuple[str, ...]]:
        if not given:
            return {}
        if isinstance(given, Mapping):
            unknown = sorted(set(given) - {s.name for s in specs})
            if unknown:
                raise ValueError(
                    f"{what} for unknown tensors {unknown}; the model has {[s.name for s in specs]}"
                )
            return {k: tuple(str(v) for v in vals) for k, vals in given.items()}
        if len(specs) != 1:
            raise ValueError(
                f"the model has several tensors {[s.name for s in specs]}: give {what} as {{name: [...]}}"
            )
        return {specs[0].name: tuple(str(v) for v in given)}

    names = assign(signature.inputs, feature_names, "feature_names")
    labels = assign(signature.outputs, class_labels, "class_labels")
    inputs = []
    for s in signature.inputs:
        f = names.get(s.name, ())
        if f and (s.rank != 2 or s.shape[1] != len(f) or len(set(f)) != len(f)):
            raise ValueError(
                f"input {s.name!r} {s.describe()}: need {s.shape[-1]} distinct feature names, got {len(f)}"
            )
        inputs.append(TensorSpec(s.name, s.dtype, s.shape, feature_names=f))
    outputs = []
    for s in signature.outputs:
        c = labels.get(s.name, ())
        if c and (s.rank < 2 or s.shape[-1] != len(c)):
            raise ValueError(
                f"output {s.name!r} {s.describe()}: need {s.shape[-1]} class labels, got {len(c)}"
            )
        outputs.append(TensorSpec(s.name, s.dtype, s.shape, class_labels=c))
    return Signature(tuple(inputs), tuple(outputs))


def _ordered_like(tflite_sig: Signature, source_sig: Signature) -> Signature:
    """The .tflite's specs (what the runtime takes) in the source model's order."""
    order = {n: i for i, n in enumerate(source_sig.input_names)}
    out_order = {n: i for i, n in enumerate(source_sig.output_names)}
    if set(order) != set(tflite_sig.input_names) or set(out_order) != set(tflite_sig.output_names):
        raise ExportMismatch(
            f"the converted model's signature {tflite_sig.input_names} -> {tflite_sig.output_names} does not "
            f"match the source {source_sig.input_names} -> {source_sig.output_names}"
        )
    return Signature(
        tuple(sorted(tflite_sig.inputs, key=lambda s: order[s.name])),
        tuple(sorted(tflite_sig.outputs, key=lambda s: out_order[s.name])),
    )


def prepare(
    source: Any,
    out_dir: str | Path,
    *,
    feature_names: Labels = None,
    class_labels: Labels = None,
    metrics: Mapping[str, Any] | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    int_ranges: Mapping[str, tuple[int, int]] | None = None,
    extra_metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Convert and verify `source` into a publishable directory (saved_model/, model.tflite,
    metadata.json); raises UnsupportedModel or ExportMismatch (with the gap) instead."""
    from maas_models.backends.litert import LiteRTBackend

    src = load_source(source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "saved_model"
    if saved.exists():
        shutil.rmtree(saved)
    ranges = dict(int_ranges or {})
    if src.kind == "keras":
        source_sig = save_keras(src.keras_model, saved)
        ranges = {**embedding_ranges(src.keras_model), **ranges}
    else:
        assert src.saved_model_dir is not None
        shutil.copytree(src.saved_model_dir, saved)
        source_sig = saved_model_signature(saved)
    tflite = convert_saved_model(saved)
    signature = _ordered_like(LiteRTBackend(model_content=tflite).signature, source_sig)
    signature = attach_labels(signature, feature_names, class_labels)
    backend = LiteRTBackend(model_content=tflite, signature=signature)

    rows = probe_rows_for(signature)
    probes, expected = _source_outputs(src, saved, signature, rows, ranges)
    got = backend.predict_named(probes)
    gaps = compare_named(expected, got, atol=atol, rtol=rtol, what=f"model.tflite vs {src.label}")
    (out / "model.tflite").write_bytes(tflite)
    check: dict[str, Any] = {
        "probe_rows": rows,
        "probe_seed": PROBE_SEED,
        "variable_size": VARIABLE_SIZE,
        "int_ranges": {k: list(v) for k, v in sorted(ranges.items())},
        "atol": atol,
        "rtol": rtol,
        "max_abs_diff_keras": max(gaps.values()),
        "max_abs_diff_per_output": gaps,
        "expected": record_outputs(expected),
    }
    metadata: dict[str, Any] = {
        "schema_version": 2,
        "framework": framework_versions(),
        "runtime": "litert",
        "source": {"kind": src.kind, "name": src.label},
        "inputs": [s.to_manifest() for s in signature.inputs],
        "outputs": [s.to_manifest() for s in signature.outputs],
        "metrics": dict(metrics or {}),
        "export_check": check,
        **dict(extra_metadata or {}),
    }
    (out / METADATA_FILE).write_bytes(orjson.dumps(metadata, option=orjson.OPT_INDENT_2))
    return out


def _source_outputs(
    src: _Source, saved: Path, signature: Signature, rows: int, ranges: dict[str, tuple[int, int]]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(probes, source outputs). A gather out of range in the source (an Embedding this module
    could not see, e.g. inside a SavedModel) names its bound: integer inputs are narrowed to it and
    the probes are drawn again; `ranges` records what was used."""
    import tensorflow as tf

    from maas_models.verify import saved_model_outputs

    for _ in range(MAX_RANGE_RETRIES):
        probes = probe_batch(signature, rows, PROBE_SEED, int_ranges=ranges)
        try:
            if src.kind == "keras":
                return probes, keras_outputs(src.keras_model, signature, probes)
            return probes, saved_model_outputs(saved, signature, probes)
        except tf.errors.InvalidArgumentError as exc:
            bound = _GATHER_RANGE.search(str(exc))
            ints = [s for s in signature.inputs if s.is_integer]
            if bound is None or not ints:
                raise
            hi = int(bound.group(1))
            narrowed = {s.name: (0, min(hi, ranges.get(s.name, (0, hi))[1])) for s in ints}
            if narrowed == ranges:
                raise
            ranges.update(narrowed)
    raise ExportMismatch("could not find integer probe values the source model accepts")


def copy_card(card_dir: str | Path | None, out: Path) -> str | None:
    """Copy the card files found in card_dir into out; the main one's name (card.json first) or None."""
    model_card = None
    if card_dir is not None:
        for name in _CARD_FILES:
            src = Path(card_dir) / name
            if src.is_file():
                shutil.copyfile(src, out / name)
                if name == "card.json" or model_card is None:
                    model_card = name
    return model_card


def import_model(
    source: Any,
    name: str,
    *,
    registry: Any = None,
    promote: str | None = None,
    feature_names: Labels = None,
    class_labels: Labels = None,
    metrics: Mapping[str, Any] | None = None,
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    actor: str | None = None,
    work_dir: str | Path | None = None,
    extra_metadata: Mapping[str, Any] | None = None,
    card_dir: str | Path | None = None,
) -> ImportResult:
    """prepare() in a private work directory, then Registry.publish (and promote when asked).
    extra_metadata: more manifest fields (fingerprint, fairness, training); card_dir: the model
    card files (card.json / .md / .html) to publish beside the model."""
    from maas_models.naming import validate_alias, validate_name
    from maas_models.registry import Registry

    name = validate_name(name)
    if promote is not None:
        promote = validate_alias(promote)
    reg = registry if registry is not None else Registry()
    with tempfile.TemporaryDirectory(prefix="maas-import-", dir=work_dir) as tmp:
        export = Path(tmp) / "export"
        export.mkdir()
        card = copy_card(card_dir, export)
        out = prepare(
            source,
            export,
            feature_names=feature_names,
            class_labels=class_labels,
            metrics=metrics,
            atol=atol,
            rtol=rtol,
            extra_metadata={**dict(extra_metadata or {}), **({"model_card": card} if card else {})},
        )
        # the source was compared above; the re-check reads the recorded outputs only
        version = int(reg.publish(out, name, source="recorded", atol=atol, actor=actor))
        check = dict(reg.manifest(name, version).raw.get("export_check") or {})
        signature = reg.manifest(name, version).signature
    if promote is not None:
        reg.promote(name, version, promote, actor=actor)
    return ImportResult(name, version, signature, check, promote)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def framework_versions() -> dict[str, str | None]:
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "litert": _version("ai-edge-litert")}
