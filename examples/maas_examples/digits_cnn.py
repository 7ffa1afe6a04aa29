"""Example 1: a small CNN image classifier on the digits images (input "image" [N, 8, 8, 1] float32,
output "digit" [N, 10] softmax over "0".."9"). Trains in seconds on a CPU.

    python -m maas_examples digits-cnn out/          # writes out/digits-cnn.keras
    maas models import out/digits-cnn.keras --name digits --class-labels 0,1,2,3,4,5,6,7,8,9
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maas_examples.common import Built, fit
from maas_examples.digits import CLASS_LABELS, load

NAME = "digits-cnn"
IMPORT_OPTIONS: dict[str, Any] = {"class_labels": CLASS_LABELS}
EPOCHS = 12


def model(seed: int = 0) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    image = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(image)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    digit = keras.layers.Dense(10, activation="softmax", name="digit")(x)
    net = keras.Model(image, digit, name="digits_cnn")
    net.compile(
        optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return net


def inputs(images: np.ndarray) -> dict[str, np.ndarray]:
    return {"image": images}


def build(*, epochs: int = EPOCHS, seed: int = 0) -> Built:
    data = load(seed)
    return fit(model(seed), inputs(data.images), data.labels, data, epochs=epochs)


def sample_inputs(rows: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    data = load(seed)
    return inputs(data.images[data.test[:rows]])
