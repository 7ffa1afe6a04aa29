"""The builder contract: ``module:function(hp, input_spec) -> compiled keras.Model``, trained in the
platform's loop: the dataset and its seeded split (maas.training.feeds: in memory, or streamed from S3
by maas.training.streaming when ``dataset.streaming`` says so or it would not fit), the distribution
strategy and mixed precision on GPU only (maas.training.strategy), ``keras.callbacks.BackupAndRestore``
in $MAAS_CHECKPOINT_DIR (synced to S3 by maas.training.dirsync) for resume, then evaluation on the
held-out rows (metrics, fairness per sensitive column, fingerprint) for the card and the gates.

``input_spec``: {"name", "shape" (None first), "dtype" ("float32" | "string"), "class_labels",
"num_classes", "sample" (up to 10,000 training inputs, e.g. for ``TextVectorization.adapt``)}.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from maas.training.checkpoint import StopFlag, TrainingInterrupted
from maas.training.results import RunResult
from maas.training.source import CodeError
from maas.training.spec import TrainingSpec

log = logging.getLogger("maas.training")

SAMPLE_ROWS = 10_000


def input_spec_for(x: np.ndarray, name: str, class_labels: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "shape": [None, *x.shape[1:]],
        "dtype": "string" if x.dtype.kind in "US" else "float32",
        "class_labels": class_labels,
        "num_classes": len(class_labels),
        "sample": x[:SAMPLE_ROWS],
    }


def build_checked(builder: Any, hp: dict[str, Any], input_spec: dict[str, Any]) -> Any:
    import keras

    where = f"{getattr(builder, '__module__', '?')}.{getattr(builder, '__name__', 'builder')}"
    model = builder(dict(hp), dict(input_spec))
    if not isinstance(model, keras.Model):
        raise CodeError(f"code.entry_point: {where} returned {type(model).__name__}, not a keras.Model")
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise CodeError(
            f"code.entry_point: {where} returned an uncompiled model: call model.compile(...) in it"
        )
    return model


def _stop_callback(stop: StopFlag, backup: Any) -> Any:
    import keras

    class StopOnSigterm(keras.callbacks.Callback):
        """On SIGTERM: BackupAndRestore's save at this batch boundary, then stop (no on_train_end,
        which would delete the backup)."""

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.epoch = epoch

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            if stop.requested:
                backup._save_model()  # Keras's own backup format, so the retry's restore reads it
                log.warning("SIGTERM: backup saved at epoch %d step %d", self.epoch, batch + 1)
                raise TrainingInterrupted(self.epoch)

    return StopOnSigterm()


def train_builder(
    spec: TrainingSpec, builder: Any, checkpoint_dir: Path, stop: StopFlag, result: RunResult, work: Path
) -> tuple[Any, Any, list[dict[str, Any]], Any] | None:
    """Train; (export model, Measured, history, StrategyInfo), or None when a SIGTERM stopped it."""
    from maas.training.byo_publish import measure, sample_fingerprint
    from maas.training.feeds import open_feed
    from maas.training.model import progress_callback
    from maas.training.strategy import select_strategy

    tr = spec.training
    info = select_strategy(tr.mixed_precision)
    import keras
    import tensorflow as tf

    feed = open_feed(spec.rows, tr.validation_split, tr.seed, SAMPLE_ROWS)
    keras.utils.set_random_seed(tr.seed)
    spec_in = input_spec_for(feed.sample_x, feed.input_name, feed.class_labels)
    with info.strategy.scope():
        model = build_checked(builder, spec.hyperparameters, spec_in)
    global_batch = tr.batch_size * info.replicas
    train_ds, val_ds = feed.train(global_batch), feed.validation(global_batch)
    backup = keras.callbacks.BackupAndRestore(
        str(checkpoint_dir / "backup"),
        save_freq=spec.code.save_freq if spec.code else "epoch",
        delete_checkpoint=False,
        double_checkpoint=True,
    )
    history: list[dict[str, Any]] = []

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            result.resumed_from_epoch = int(getattr(self.model, "_initial_epoch", 0) or 0)
            if result.resumed_from_epoch:
                log.info("resumed from BackupAndRestore at epoch %d/%d", result.resumed_from_epoch, tr.epochs)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            history.append({"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}})
            result.epochs_run.append(epoch + 1)

    steps = -(-feed.train_count // global_batch)
    result.epochs_total = tr.epochs
    try:
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=tr.epochs,
            callbacks=[
                backup,
                Record(),
                progress_callback(tr.epochs, steps),
                _stop_callback(stop, backup),
                *feed.callbacks(),
            ],
            verbose=1 if sys.stdout.isatty() else 0,
        )
    except TrainingInterrupted:
        return None
    except tf.errors.OpError as exc:  # a bad value met while streaming: the DataError, not tf.data's wrap
        if feed.failure is not None:
            raise feed.failure from exc
        raise
    export_model = _float32(builder, spec, spec_in, model) if info.mixed_precision else model
    y_val, proba, groups = feed.held_out(export_model, global_batch)
    measured = measure(spec, y_val, proba, feed.class_labels, groups)
    if feed.sample_x.dtype.kind not in "US":
        measured.fingerprint = sample_fingerprint(
            feed.sample_x[:SAMPLE_ROWS], feed.sample_y[:SAMPLE_ROWS], feed.class_labels
        )
    log.info("held-out accuracy=%.4f loss=%.4f", measured.metrics["accuracy"], measured.metrics["loss"])
    return export_model, measured, history, info


def _float32(builder: Any, spec: TrainingSpec, spec_in: dict[str, Any], model: Any) -> Any:
    """The exported copy: the user's builder again under the float32 policy, with the trained weights."""
    import keras

    keras.mixed_precision.set_global_policy("float32")
    twin = build_checked(builder, spec.hyperparameters, spec_in)
    twin.set_weights(model.get_weights())
    return twin
