"""Example 6: a tabular model with string categories. Four named inputs, one value per row:
"country" (StringLookup, one-hot; an unknown country goes to the OOV bucket), "city" (Hashing into 8
bins), "income" and "age" (Normalization) -> "segment" [N, 3] softmax over "budget", "standard",
"premium", trained on synthetic customers. Every preprocessing layer runs in numpy in the serving
functions (checked against Keras at import), so clients send rows like
`{"country": "DE", "city": "Berlin", "income": 52000, "age": 41}` and batch files with string columns.

    python -m maas_examples customer-segments out/
    maas models import out/customer-segments.keras --name segments --class-labels budget,standard,premium
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maas_examples.common import Built

NAME = "customer-segments"
LABELS = ["budget", "standard", "premium"]
IMPORT_OPTIONS: dict[str, Any] = {"class_labels": LABELS}
COUNTRIES = ["DE", "FR", "US", "JP", "BR"]
CITIES = ["Berlin", "Paris", "Austin", "Osaka", "Recife", "Lyon", "Hamburg", "Boston"]
FEATURES = ("country", "city", "income", "age")
EPOCHS = 4
TRAIN_ROWS = 1200
TEST_ROWS = 300


def model(seed: int = 0) -> Any:
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
    net = keras.Model([country, city, income, age], out, name="customer_segments")
    net.compile(
        optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return net


def customers(rows: int, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Synthetic customers (each input as a column [rows, 1]) and their segment: spending power is
    income, a little more in older age and in two of the countries."""
    rng = np.random.default_rng(seed)
    country = rng.choice(COUNTRIES, rows)
    income = rng.gamma(4.0, 12_500.0, rows).astype(np.float32)
    age = rng.uniform(18, 80, rows).astype(np.float32)
    power = income / 1000 + 0.3 * (age - 40) + np.isin(country, ["US", "DE"]) * 10
    labels = np.digitize(power, [35.0, 65.0]).astype(np.int32)
    columns = {
        "country": country.astype(object),
        "city": rng.choice(CITIES, rows).astype(object),
        "income": income,
        "age": age,
    }
    return {k: v.reshape(-1, 1) for k, v in columns.items()}, labels


def _keras_inputs(columns: dict[str, np.ndarray]) -> list[Any]:
    import tensorflow as tf

    text = {k for k, v in columns.items() if v.dtype == object}
    return [tf.constant(columns[k].astype(str) if k in text else columns[k]) for k in FEATURES]


def build(*, epochs: int = EPOCHS, seed: int = 0) -> Built:
    net = model(seed)
    x, y = customers(TRAIN_ROWS, seed)
    net.fit(_keras_inputs(x), y, epochs=epochs, batch_size=64, verbose=0, shuffle=True)
    tx, ty = customers(TEST_ROWS, seed + 1)
    accuracy = float(np.mean(np.argmax(net(_keras_inputs(tx), training=False), axis=1) == ty))
    return Built(model=net, metrics={"accuracy": accuracy, "test_rows": float(TEST_ROWS)})


def sample_inputs(rows: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """Rows as the serving functions take them: one value per row and input ([rows])."""
    return {k: v.reshape(-1) for k, v in customers(rows, seed + 2)[0].items()}
