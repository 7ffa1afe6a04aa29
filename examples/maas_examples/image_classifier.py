"""Example 4: an image classifier that takes JPEG. Input "img" [N, 32, 32, 3] uint8 (what a decoded
photo is) -> Rescaling -> CNN -> "colour" [N, 3] softmax over "red", "green", "blue", trained on
synthetic photos (`maas_examples.photos`). The Rescaling runs inside LiteRT; the import records the
image input, so clients send encoded JPEG/PNG (TF Serving `{"b64": ...}`, v2 BYTES, batch files).

    python -m maas_examples image-classifier out/
    maas models import out/image-classifier.keras --name colours --class-labels red,green,blue
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maas_examples.common import Built
from maas_examples.photos import COLOURS, coloured, encoded

NAME = "image-classifier"
IMPORT_OPTIONS: dict[str, Any] = {"class_labels": COLOURS}
SIZE = 32
EPOCHS = 6
TRAIN_ROWS = 240
TEST_ROWS = 60


def model(seed: int = 0, size: int = SIZE) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    img = keras.Input(shape=(size, size, 3), dtype="uint8", name="img")
    x = keras.layers.Rescaling(1.0 / 255, name="scale")(img)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax", name="colour")(x)
    net = keras.Model(img, out, name="image_classifier")
    net.compile(
        optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return net


def photos(rows: int, seed: int = 0, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` photos [rows, size, size, 3] uint8 and their colour class (cycling through COLOURS)."""
    labels = np.arange(rows, dtype=np.int32) % len(COLOURS)
    images = np.stack([coloured(seed * 100_003 + i, size, int(c)) for i, c in enumerate(labels)])
    return images, labels


def build(*, epochs: int = EPOCHS, seed: int = 0) -> Built:
    net = model(seed)
    x, y = photos(TRAIN_ROWS, seed)
    net.fit(x, y, epochs=epochs, batch_size=16, verbose=0, shuffle=True)
    tx, ty = photos(TEST_ROWS, seed + 1)
    accuracy = float(np.mean(np.argmax(net(tx, training=False), axis=1) == ty))
    return Built(model=net, metrics={"accuracy": accuracy, "test_rows": float(TEST_ROWS)})


def sample_inputs(rows: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    return {"img": photos(rows, seed + 2)[0]}


def sample_jpegs(rows: int = 3, seed: int = 0, size: int = 48) -> tuple[list[bytes], list[str]]:
    """JPEG files of photos larger than the model's input (the import's resize brings them to 32 x 32)
    and the colour each one shows."""
    images, labels = photos(rows, seed + 3, size)
    return [encoded(i, "JPEG") for i in images], [COLOURS[int(c)] for c in labels]
