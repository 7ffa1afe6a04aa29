"""A text classifier as a builder: `model:build(hp, input_spec) -> compiled keras.Model`. The platform
loads the CSV (its `text_column`), splits it, trains with BackupAndRestore and evaluates; the builder
only describes the network. TextVectorization learns its vocabulary from input_spec["sample"].

    python examples/text_classifier/make_data.py /tmp/maas-reviews.csv
    maas train run --spec examples/text_classifier/spec.json --local

LiteRT has no string ops: until the preprocessing issue (14) the run trains, evaluates and writes
the card, keeps the model at <checkpoint_uri>/trained/model.keras and ends "trained_not_published".
"""

from __future__ import annotations

from typing import Any


def build(hp: dict[str, Any], input_spec: dict[str, Any]) -> Any:
    import keras

    vectorize = keras.layers.TextVectorization(
        max_tokens=int(hp.get("max_tokens", 2000)), output_sequence_length=int(hp.get("sequence_length", 32))
    )
    vectorize.adapt(input_spec["sample"])
    text = keras.Input(shape=(), dtype="string", name=input_spec["name"])
    x = vectorize(text)
    x = keras.layers.Embedding(int(hp.get("max_tokens", 2000)), int(hp.get("embedding_dim", 16)))(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    out = keras.layers.Dense(input_spec["num_classes"], activation="softmax", name="label")(x)
    model = keras.Model(text, out, name="text_classifier")
    model.compile(
        optimizer=keras.optimizers.Adam(float(hp.get("learning_rate", 0.01))),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
