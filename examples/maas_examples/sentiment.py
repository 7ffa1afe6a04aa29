"""Example 5: a text sentiment model. Input "review" (one string per row) -> TextVectorization ->
Embedding -> average -> "sentiment" [N, 2] softmax over "negative", "positive", trained on the small
corpus below. The import splits the TextVectorization off: it runs in numpy in the serving functions
(checked against Keras at import), the rest in LiteRT, so clients send sentences.

    python -m maas_examples sentiment out/
    maas models import out/sentiment.keras --name sentiment --class-labels negative,positive
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maas_examples.common import Built

NAME = "sentiment"
LABELS = ["negative", "positive"]
IMPORT_OPTIONS: dict[str, Any] = {"class_labels": LABELS}
EPOCHS = 3
# the corpus 30 times an epoch: 90 small steps in 3 epochs (an epoch costs far more than a step here)
REPEATS = 30
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
# sentences not trained on, made of the corpus's words: the held-out accuracy
HELD_OUT = [
    ("great music and a lovely story", 1),
    ("good acting, really moving", 1),
    ("awful music and a boring ending", 0),
    ("a dull, pointless film", 0),
]


def model(seed: int = 0) -> Any:
    import keras

    keras.utils.set_random_seed(seed)
    tokens = keras.layers.TextVectorization(max_tokens=200, output_sequence_length=16, name="tokens")
    tokens.adapt(POSITIVE + NEGATIVE)
    text = keras.Input(shape=(1,), dtype="string", name="review")
    x = keras.layers.Embedding(200, 16, name="embedding")(tokens(text))
    x = keras.layers.GlobalAveragePooling1D()(x)
    out = keras.layers.Dense(2, activation="softmax", name="sentiment")(x)
    net = keras.Model(text, out, name="sentiment")
    net.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return net


def _column(sentences: list[str]) -> Any:
    import tensorflow as tf

    return tf.constant(np.asarray(sentences).reshape(-1, 1))


def build(*, epochs: int = EPOCHS, seed: int = 0) -> Built:
    net = model(seed)
    ys = np.asarray(([1] * len(POSITIVE) + [0] * len(NEGATIVE)) * REPEATS)
    net.fit(_column((POSITIVE + NEGATIVE) * REPEATS), ys, batch_size=12, epochs=epochs, verbose=0)
    probs = np.asarray(net(_column([s for s, _ in HELD_OUT]), training=False))
    accuracy = float(np.mean(probs.argmax(axis=1) == np.asarray([y for _, y in HELD_OUT])))
    return Built(model=net, metrics={"accuracy": accuracy, "test_rows": float(len(HELD_OUT))})


def sample_inputs(rows: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    return {"review": np.asarray([s for s, _ in HELD_OUT][:rows], dtype=object)}
