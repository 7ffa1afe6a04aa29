"""Keras / SavedModel -> LiteRT with builtin ops only (needs TensorFlow: import, export and tests).

    save_keras(model, "out/saved_model")          # SavedModel whose serving_default uses Keras names
    tflite = convert_saved_model("out/saved_model")  # bytes; UnsupportedModel names the ops it lacks

`save_keras` writes the serving signature itself (a `keras.export.ExportArchive` endpoint) so that
its argument names are the Keras input names and its output keys are the Keras output names
(`model.export()` would call a list of outputs `output_0`, `output_1`, ...). Those keys become the
.tflite's SignatureDef keys and the manifest's tensor names: the one naming scheme end to end.

Conversion never falls back silently: no TF Select (Flex) ops, no custom ops. A model that needs
them, or that takes string inputs, is refused with UnsupportedModel naming the ops / inputs and
what to do instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from maas_models.errors import UnsupportedModel
from maas_models.signature import Signature, TensorSpec, dtype_name

SIGNATURE_KEY = "serving_default"
_OP_IN_MESSAGE = re.compile(r"'tf\.(\w+)' op is neither a custom op nor a flex op")
_OP_LIST = re.compile(r"(?:TF Select ops|Custom ops): ([^\n]+)")
ADVICE = (
    "LiteRT's builtin ops cannot run them. Replace those layers with standard Keras layers, or move "
    "that step out of the model (preprocess the inputs before calling it)"
)


def keras_signature(model: Any) -> Signature:
    """The serving signature of a Keras model: its Input names, dtypes and shapes, and its outputs."""
    inputs = tuple(
        TensorSpec(
            name=_input_name(t, i),
            dtype=dtype_name(t.dtype),
            shape=(-1, *(-1 if d is None else int(d) for d in t.shape[1:])),
        )
        for i, t in enumerate(model.inputs)
    )
    outputs = tuple(
        TensorSpec(
            name=name,
            dtype=dtype_name(t.dtype),
            shape=(-1, *(-1 if d is None else int(d) for d in t.shape[1:])),
        )
        for name, t in named_outputs(model)
    )
    return Signature(inputs=inputs, outputs=outputs)


def _input_name(tensor: Any, i: int) -> str:
    name = str(getattr(tensor, "name", "") or "").split(":")[0]
    return name or f"input_{i}"


def _flat_outputs(outputs: Any) -> list[Any]:
    if isinstance(outputs, dict):
        return [outputs[k] for k in outputs]
    if isinstance(outputs, list | tuple):
        return list(outputs)
    return [outputs]


def named_outputs(model: Any) -> list[tuple[str, Any]]:
    """(name, symbolic tensor) per output: a dict of outputs keeps its keys; otherwise the output
    layers' names (output_0, ... when they are missing or repeat)."""
    try:
        structure = model.output
    except (AttributeError, ValueError):  # a subclassed model that was never called symbolically
        structure = None
    if isinstance(structure, dict):
        return [(str(k), v) for k, v in structure.items()]
    tensors = _flat_outputs(model.outputs)
    names = [str(n) for n in getattr(model, "output_names", None) or []]
    if len(names) != len(tensors) or len(set(names)) != len(tensors):
        names = [f"output_{i}" for i in range(len(tensors))]
    return list(zip(names, tensors, strict=True))


def serving_function(model: Any) -> tuple[Any, Signature]:
    """A tf.function taking the Keras inputs by name and returning {output name: tensor}."""
    import tensorflow as tf

    signature = keras_signature(model)
    tf_specs = [
        tf.TensorSpec([None if d < 0 else d for d in s.shape], tf.as_dtype(s.np_dtype), name=s.name)
        for s in signature.inputs
    ]
    names = signature.input_names
    out_names = signature.output_names

    @tf.function(input_signature=tf_specs)
    def serve(*args: Any) -> dict[str, Any]:
        x = args[0] if len(args) == 1 else dict(zip(names, args, strict=True))
        y = model(x, training=False)
        if isinstance(y, dict):
            return {str(k): y[k] for k in out_names}
        return dict(zip(out_names, _flat_outputs(y), strict=True))

    return serve, signature


def save_keras(model: Any, saved_model_dir: str | Path) -> Signature:
    """Write a SavedModel whose serving_default takes the Keras inputs and returns the Keras outputs
    by name; returns that signature."""
    import keras

    refuse_string_inputs(keras_signature(model))
    serve, signature = serving_function(model)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE_KEY, serve)
    archive.write_out(str(saved_model_dir), verbose=False)
    return signature


def refuse_string_inputs(signature: Signature) -> None:
    strings = [s.name for s in signature.inputs if s.is_string]
    if strings:
        raise UnsupportedModel(
            f"inputs {strings} are strings: LiteRT's builtin ops cannot tokenize text. Import the Keras "
            "model (.keras file or keras.Model) instead: maas runs its TextVectorization / StringLookup / "
            "IntegerLookup / Hashing layers outside the graph (maas_models.preprocessing); a SavedModel's "
            "graph cannot be split. Or import it without its text preprocessing and send token ids"
        )


def saved_model_signature(saved_model_dir: str | Path, key: str = SIGNATURE_KEY) -> Signature:
    """The serving signature of a SavedModel (argument names and output keys)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved_model_dir))
    if key not in loaded.signatures:
        raise UnsupportedModel(
            f"{saved_model_dir} has no {key!r} signature (it has {sorted(loaded.signatures)}); save it "
            "with tf.saved_model.save(obj, dir, signatures={'serving_default': fn}) or model.export(dir)"
        )
    from maas_models.backends.savedmodel import signature_of

    return signature_of(loaded.signatures[key])


def convert_saved_model(saved_model_dir: str | Path, key: str = SIGNATURE_KEY) -> bytes:
    """The .tflite bytes for a SavedModel signature, builtin ops only; UnsupportedModel names the
    ops LiteRT lacks (no TF Select fallback)."""
    import tensorflow as tf

    refuse_string_inputs(saved_model_signature(saved_model_dir, key))
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), signature_keys=[key])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = False
    try:
        tflite: bytes = converter.convert()
    except Exception as exc:  # ConverterError, and assorted others from MLIR
        ops = unsupported_ops(exc)
        if ops:
            raise UnsupportedModel(f"the model uses ops {ops}: {ADVICE}", ops=ops) from exc
        raise UnsupportedModel(f"the LiteRT converter failed: {str(exc).strip()[:1000]}") from exc
    return tflite


def unsupported_ops(exc: BaseException) -> list[str]:
    """The TensorFlow op names a ConverterError reports as unsupported (sorted, unique)."""
    found: set[str] = set()
    for err in getattr(exc, "errors", None) or []:
        name = str(getattr(getattr(err, "operator", None), "name", "") or "")
        if name:
            found.add(name.removeprefix("tf."))
    text = str(exc)
    found.update(_OP_IN_MESSAGE.findall(text))
    for line in _OP_LIST.findall(text):
        found.update(op.strip() for op in line.split(",") if op.strip())
    return sorted(found)


def keras_outputs(model: Any, signature: Signature, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What the Keras model gives for named `inputs`, by the signature's output names."""
    import numpy as np

    x: Any = inputs[signature.inputs[0].name] if len(signature.inputs) == 1 else dict(inputs)
    y = model(x, training=False)
    if isinstance(y, dict):
        return {str(k): np.asarray(v) for k, v in y.items()}
    ys = y if isinstance(y, list | tuple) else [y]
    return {n: np.asarray(v) for n, v in zip(signature.output_names, ys, strict=True)}
