"""Small real Keras models with the signatures the model layer must serve (tests only; needs TF).

Each builder is seeded and untrained (weights from the initializers): the tests compare LiteRT with
Keras on the same weights, which is what an import checks. `convert(model, dir)` is the import
path's conversion (SavedModel with Keras names -> builtin-ops .tflite).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from maas_models.signature import Signature


def _keras() -> Any:
    import keras

    return keras


def cnn_8x8(seed: int = 0) -> Any:
    """Input img [N, 8, 8, 1] float32 -> Conv2D -> MaxPool -> Dense softmax "probabilities" [N, 3]."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    img = keras.Input((8, 8, 1), name="img")
    x = keras.layers.Conv2D(4, 3, activation="relu", padding="same")(img)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(3, activation="softmax", name="probabilities")(x)
    return keras.Model(img, out, name="cnn_8x8")


def image_and_vector(seed: int = 0) -> Any:
    """Inputs img [N, 8, 8, 1] and vec [N, 5] (float32) -> "probabilities" [N, 4]."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    img = keras.Input((8, 8, 1), name="img")
    vec = keras.Input((5,), name="vec")
    x = keras.layers.Conv2D(4, 3, activation="relu")(img)
    x = keras.layers.GlobalAveragePooling2D()(x)
    v = keras.layers.Dense(4, activation="relu")(vec)
    x = keras.layers.Concatenate()([x, v])
    out = keras.layers.Dense(4, activation="softmax", name="probabilities")(x)
    return keras.Model([img, vec], out, name="image_and_vector")


def multi_output(seed: int = 0) -> Any:
    """Input features [N, 6] -> "label" [N, 3] softmax, "score" [N, 1], "embedding" [N, 2, 2]."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    x_in = keras.Input((6,), name="features")
    h = keras.layers.Dense(8, activation="relu")(x_in)
    label = keras.layers.Dense(3, activation="softmax", name="label")(h)
    score = keras.layers.Dense(1, name="score")(h)
    emb = keras.layers.Reshape((2, 2), name="embedding")(keras.layers.Dense(4)(h))
    return keras.Model(x_in, [label, score, emb], name="multi_output")


def mixed_dtypes(seed: int = 0) -> Any:
    """One input per dtype: int32/int64 token ids (Embedding(20)), int8, int16, uint8, bool,
    float16, float64 -> "y" [N, 2]."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    ops = keras.ops
    tokens = keras.Input((4,), name="tokens", dtype="int32")
    ids = keras.Input((2,), name="ids", dtype="int64")
    small = keras.Input((2,), name="small", dtype="int8")
    mid = keras.Input((2,), name="mid", dtype="int16")
    pixels = keras.Input((6,), name="pixels", dtype="uint8")
    flag = keras.Input((1,), name="flag", dtype="bool")
    half = keras.Input((3,), name="half", dtype="float16")
    wide = keras.Input((2,), name="wide", dtype="float64")
    embed = keras.layers.Embedding(20, 3)
    t = keras.layers.Flatten()(embed(tokens))
    i = keras.layers.Flatten()(keras.layers.Embedding(20, 2)(ids))

    def as_float(v: Any) -> Any:
        return keras.layers.Lambda(lambda z: ops.cast(z, "float32"))(v)

    parts = [t, i, as_float(small), as_float(mid), as_float(pixels) / 255.0, as_float(flag)]
    parts += [as_float(half), as_float(wide)]
    h = keras.layers.Dense(6, activation="tanh")(keras.layers.Concatenate()(parts))
    out = keras.layers.Dense(2, name="y")(h)
    return keras.Model([tokens, ids, small, mid, pixels, flag, half, wide], out, name="mixed_dtypes")


def sequence(seed: int = 0) -> Any:
    """Input steps [N, None, 3] (a variable length) -> mean over time -> "y" [N, 2]."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    steps = keras.Input((None, 3), name="steps")
    h = keras.layers.Dense(4, activation="relu")(steps)
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(steps, keras.layers.Dense(2, name="y")(h), name="sequence")


def sample_inputs(signature: Signature, rows: int, seed: int = 0, *, steps: int = 5) -> dict[str, np.ndarray]:
    """Random inputs in each dtype's sensible range (ids below 20 for the Embedding(20) inputs)."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        shape = (rows, *(d if d >= 0 else steps for d in spec.row_shape))
        if spec.dtype == "bool":
            out[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        elif spec.dtype == "uint8":
            out[spec.name] = rng.integers(0, 256, size=shape).astype(np.uint8)
        elif spec.is_integer:
            out[spec.name] = rng.integers(0, 20, size=shape).astype(spec.np_dtype)
        else:
            out[spec.name] = rng.standard_normal(shape).astype(spec.np_dtype)
    return out


def keras_outputs(model: Any, inputs: dict[str, np.ndarray], signature: Signature) -> dict[str, np.ndarray]:
    """The Keras model's outputs keyed by the signature's output names."""
    x: Any = next(iter(inputs.values())) if len(inputs) == 1 else inputs
    y = model(x, training=False)
    if isinstance(y, dict):
        return {k: np.asarray(v) for k, v in y.items()}
    ys = y if isinstance(y, list | tuple) else [y]
    return {name: np.asarray(v) for name, v in zip(signature.output_names, ys, strict=True)}


def convert(model: Any, out_dir: Path) -> tuple[bytes, Signature]:
    """SavedModel (Keras names) + builtin-ops .tflite: what `maas models import` produces."""
    from maas_models.convert import convert_saved_model, save_keras

    saved = out_dir / "saved_model"
    signature = save_keras(model, saved)
    return convert_saved_model(saved), signature
