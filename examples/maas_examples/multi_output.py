"""Example 3: one input, three named outputs of different kinds: "image" [N, 8, 8, 1] float32 ->
"digit" [N, 10] softmax over "0".."9", "is_even" [N, 1] probability, "ink" [N, 1] (regression:
the share of the picture holding ink).

    python -m maas_examples multi-output out/
    maas models import out/multi-output.keras --name digits-multi --class-labels digit=0,1,2,3,4,5,6,7,8,9
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maas_examples.common import Built, fit
from maas_examples.digits import CLASS_LABELS, load

NAME = "multi-output"
IMPORT_OPTIONS: dict[str, Any] = {"class_labels": {"digit": CLASS_LABELS}}
EPOCHS = 12


def model(seed: int = 0) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    image = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(image)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    h = keras.layers.Dense(32, activation="relu")(x)
    outputs = {
        "digit": keras.layers.Dense(10, activation="softmax", name="digit")(h),
        "is_even": keras.layers.Dense(1, activation="sigmoid", name="is_even")(h),
        "ink": keras.layers.Dense(1, name="ink")(h),
    }
    net = keras.Model(image, outputs, name="multi_output")
    net.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss={"digit": "sparse_categorical_crossentropy", "is_even": "binary_crossentropy", "ink": "mse"},
    )
    return net


def inputs(images: np.ndarray) -> dict[str, np.ndarray]:
    return {"image": images}


def build(*, epochs: int = EPOCHS, seed: int = 0) -> Built:
    data = load(seed)
    ink = data.images.reshape(len(data.images), -1).mean(axis=1, keepdims=True).astype(np.float32)

    def targets(rows: np.ndarray) -> dict[str, np.ndarray]:
        labels = data.labels[rows]
        return {"digit": labels, "is_even": (labels % 2 == 0).astype(np.float32)[:, None], "ink": ink[rows]}

    return fit(
        model(seed),
        inputs(data.images),
        data.labels,
        data,
        epochs=epochs,
        targets=targets,
        classifier="digit",
    )


def sample_inputs(rows: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    data = load(seed)
    return inputs(data.images[data.test[:rows]])
