"""Example 2: a functional model with two named inputs, a picture and a row of a table:
"image" [N, 8, 8, 1] float32 and "stats" [N, 3] float32 (ink, ink spread, top-half share; named
columns) -> "digit" [N, 10] softmax over "0".."9".

    python -m maas_examples image-tabular out/
    maas models import out/image-tabular.keras --name digits-mixed \\
        --class-labels 0,1,2,3,4,5,6,7,8,9 --feature-names ink,spread,top_share
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maas_examples.common import Built, fit
from maas_examples.digits import CLASS_LABELS, load, tabular_features

NAME = "image-tabular"
FEATURES = ["ink", "spread", "top_share"]
IMPORT_OPTIONS: dict[str, Any] = {"class_labels": CLASS_LABELS, "feature_names": {"stats": FEATURES}}
EPOCHS = 12


def model(seed: int = 0) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    image = keras.Input((8, 8, 1), name="image")
    stats = keras.Input((3,), name="stats")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(image)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    t = keras.layers.Dense(8, activation="relu")(stats)
    h = keras.layers.Dense(32, activation="relu")(keras.layers.Concatenate()([x, t]))
    digit = keras.layers.Dense(10, activation="softmax", name="digit")(h)
    net = keras.Model([image, stats], digit, name="image_tabular")
    net.compile(
        optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return net


def inputs(images: np.ndarray) -> dict[str, np.ndarray]:
    return {"image": images, "stats": tabular_features(images)}


def build(*, epochs: int = EPOCHS, seed: int = 0) -> Built:
    data = load(seed)
    return fit(model(seed), inputs(data.images), data.labels, data, epochs=epochs)


def sample_inputs(rows: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    data = load(seed)
    return inputs(data.images[data.test[:rows]])
