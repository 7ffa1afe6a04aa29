"""The digits CNN as a script-mode training job: an ordinary Keras training script, plus the three
lines the platform contract asks for (read MAAS_HYPERPARAMETERS, back up to MAAS_CHECKPOINT_DIR, save
to MAAS_MODEL_DIR). The data and the model are maas_examples' (scikit-learn's bundled digits): the
spec's source_dir is examples/ so that package travels in the code tarball (the job puts source_dir on
PYTHONPATH), and digits_cnn/requirements.txt brings scikit-learn into the training image.

    maas train run --spec examples/digits_cnn/spec.json --local
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import keras
import numpy as np
from maas_examples import digits, digits_cnn


def hyperparameters() -> dict[str, Any]:
    return dict(json.loads(os.environ.get("MAAS_HYPERPARAMETERS") or "{}"))


class EpochLog(keras.callbacks.Callback):
    """One line per epoch start (the job log shows where a resumed run picked up)."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        print(f"digits_cnn epoch {epoch + 1}/{self.epochs} begin", flush=True)


def main() -> None:
    hp = hyperparameters()
    epochs, seed = int(hp.get("epochs", digits_cnn.EPOCHS)), int(hp.get("seed", 0))
    data = digits.load(seed)
    model = digits_cnn.model(seed)
    backup = keras.callbacks.BackupAndRestore(
        os.environ["MAAS_CHECKPOINT_DIR"], save_freq=hp.get("save_freq", "epoch"), delete_checkpoint=False
    )
    model.fit(
        digits_cnn.inputs(data.images[data.train])["image"],
        data.labels[data.train],
        epochs=epochs,
        batch_size=int(hp.get("batch_size", 32)),
        callbacks=[backup, EpochLog(epochs)],
        verbose=0,
    )
    model.save(Path(os.environ["MAAS_MODEL_DIR"]) / "model.keras")


def evaluation(model: Any, hp: dict[str, Any]) -> dict[str, Any]:
    """The optional hook: held-out predictions for the metrics, the gates and the model card;
    groups for the fairness gate (light vs heavy handwriting); an input sample for drift."""
    data = digits.load(int(hp.get("seed", 0)))
    images = data.images[data.test]
    ink = digits.tabular_features(images)[:, 0]
    return {
        "y_true": data.labels[data.test],
        "probabilities": model.predict(images, verbose=0),
        "class_labels": digits.CLASS_LABELS,
        "groups": {"stroke": np.where(ink > np.median(ink), "heavy", "light")},
        "sample": images,
    }


if __name__ == "__main__":
    main()
