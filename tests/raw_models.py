"""Example models with their own Keras preprocessing (built by tests; no committed weights):
a text sentiment model (TextVectorization + Embedding) trained on a small corpus written here,
and a tabular model with string categories (StringLookup, Hashing, Normalization)."""

from __future__ import annotations

from typing import Any

import numpy as np

POSITIVE = [
    "a wonderful film, truly great acting",
    "I loved it! great story and great music",
    "Brilliant. Best movie of the year",
    "good plot, good cast, really enjoyable",
    "what a delight: funny and moving",
    "superb direction and a lovely ending",
]
NEGATIVE = [
    "a terrible film, truly awful acting",
    "I hated it... boring story and bad music",
    "Dreadful. Worst movie of the year",
    "bad plot, bad cast, really dull",
    "what a mess: slow and pointless",
    "poor direction and a stupid ending",
]
COUNTRIES = ["DE", "FR", "US", "JP", "BR"]


def sentiment_model(seed: int = 0, epochs: int = 30) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    tokens = keras.layers.TextVectorization(max_tokens=200, output_sequence_length=16, name="tokens")
    tokens.adapt(POSITIVE + NEGATIVE)
    text = keras.Input(shape=(1,), dtype="string", name="review")
    x = keras.layers.Embedding(200, 16, name="embedding")(tokens(text))
    x = keras.layers.GlobalAveragePooling1D()(x)
    out = keras.layers.Dense(2, activation="softmax", name="sentiment")(x)
    model = keras.Model(text, out)
    model.compile("adam", "sparse_categorical_crossentropy")
    import tensorflow as tf

    xs = tf.constant(np.asarray(POSITIVE + NEGATIVE).reshape(-1, 1))
    ys = np.asarray([1] * len(POSITIVE) + [0] * len(NEGATIVE))
    model.fit(xs, ys, epochs=epochs, verbose=0)
    return model


def tabular_model(seed: int = 0) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    country = keras.Input(shape=(1,), dtype="string", name="country")
    city = keras.Input(shape=(1,), dtype="string", name="city")
    income = keras.Input(shape=(1,), dtype="float32", name="income")
    age = keras.Input(shape=(1,), dtype="float32", name="age")
    c = keras.layers.StringLookup(vocabulary=COUNTRIES, output_mode="one_hot", name="country_onehot")(country)
    h = keras.layers.Hashing(num_bins=8, salt=7, output_mode="one_hot", name="city_hash")(city)
    n = keras.layers.Normalization(mean=50000.0, variance=4e8, name="income_norm")(income)
    a = keras.layers.Normalization(mean=40.0, variance=144.0, name="age_norm")(age)
    x = keras.layers.Concatenate()([c, h, n, a])
    x = keras.layers.Dense(8, activation="relu")(x)
    out = keras.layers.Dense(3, activation="softmax", name="segment")(x)
    return keras.Model([country, city, income, age], out)


def image_classifier(seed: int = 0, size: int = 32) -> Any:
    """Input img [N, size, size, 3] uint8 (what a decoded JPEG is) -> Rescaling -> CNN -> 3 classes."""
    import keras

    keras.utils.set_random_seed(seed)
    img = keras.Input(shape=(size, size, 3), dtype="uint8", name="img")
    x = keras.layers.Rescaling(1.0 / 255, name="scale")(img)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax", name="probabilities")(x)
    return keras.Model(img, out)


def photo(seed: int, height: int, width: int) -> np.ndarray:
    """A smooth synthetic photo (gradients + a disc), [H, W, 3] uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    cy, cx, r = rng.uniform(0.2, 0.8, size=3) * [1, 1, 0.4]
    disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < r**2).astype(float)
    channels = [yy * rng.uniform(80, 255), xx * rng.uniform(80, 255), disc * rng.uniform(100, 255)]
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


def encoded(arr: np.ndarray, fmt: str) -> bytes:
    """``arr`` [H, W, C] uint8 encoded as an image file (``fmt``: Pillow's name, "PNG", "JPEG", "GIF")."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()
