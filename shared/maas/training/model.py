"""Build the Keras model a spec describes (imports TensorFlow/Keras)."""

from __future__ import annotations

from typing import Any

from maas.training.spec import Architecture, Training


def build_model(
    arch: Architecture,
    training: Training,
    n_features: int,
    n_classes: int,
    *,
    compile_model: bool = True,
    dtype_policy: str | None = None,
) -> Any:
    """A Sequential-style functional model: Input "features" -> hidden Dense(+Dropout) layers -> softmax.

    The default architecture is the reference model (Dense 64 relu -> Dense 32 relu -> Dense n_classes
    softmax). The output layer is float32 even under mixed precision, and is named "probabilities" as the
    manifest's output is. `dtype_policy="float32"` builds a float32 twin (used for export after GPU training
    with mixed precision: the variables are float32 either way, so weights copy over as they are).
    """
    import keras

    policy = dtype_policy  # None: the global policy
    inputs = keras.Input(shape=(n_features,), name="features", dtype="float32")
    x = inputs
    for i, layer in enumerate(arch.hidden_layers):
        x = keras.layers.Dense(layer.units, activation=layer.activation, name=f"dense_{i}", dtype=policy)(x)
        if layer.dropout > 0:
            x = keras.layers.Dropout(layer.dropout, name=f"dropout_{i}", dtype=policy)(x)
    outputs = keras.layers.Dense(
        n_classes, activation=arch.output_activation, name="probabilities", dtype="float32"
    )(x)
    model = keras.Model(inputs=inputs, outputs=outputs, name="maas_model")
    if compile_model:
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=training.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            weighted_metrics=[],
        )
    return model


def float32_copy(model: Any, arch: Architecture, training: Training) -> Any:
    """A plain float32 copy of a trained model, built outside any distribution strategy, for export."""
    n_features = int(model.inputs[0].shape[-1])
    n_classes = int(model.outputs[0].shape[-1])
    twin = build_model(arch, training, n_features, n_classes, compile_model=False, dtype_policy="float32")
    twin.set_weights(model.get_weights())
    return twin
