"""The Keras pieces of a run (imports TensorFlow/Keras): the model a spec describes, its tf.data input
pipeline and its per-epoch progress log."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

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


log = logging.getLogger("maas.training")


def progress_callback(total_epochs: int, steps: int) -> Any:
    import keras

    class ProgressLog(keras.callbacks.Callback):
        """One log line per epoch (CloudWatch-friendly); Keras draws the bar itself on a TTY."""

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            shown = " ".join(f"{k}={float(v):.4f}" for k, v in sorted((logs or {}).items()))
            log.info(
                "epoch %d/%d %s steps=%d time=%.2fs",
                epoch + 1,
                total_epochs,
                shown,
                steps,
                time.perf_counter() - self.started,
            )

    return ProgressLog()


def make_datasets(
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    w_tr: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    global_batch: int,
    seed: int,
) -> tuple[Any, Any]:
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train = (
        tf.data.Dataset.from_tensor_slices((x_tr, y_tr, w_tr))
        .shuffle(min(len(x_tr), 1_000_000), seed=seed, reshuffle_each_iteration=True)
        .batch(global_batch)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
    )
    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(global_batch).with_options(options)
    return train, val
