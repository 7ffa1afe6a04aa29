"""Models for the rollout tests: a candidate that fails on some inputs (for the guard to catch).

    python -m tests.rollout_models DIR      # (TensorFlow) writes an export_keras() directory

The model is the reference architecture plus a Gather whose index is 0 for rows with feature 0
up to FAIL_ABOVE and 1000 (out of range) above it: LiteRT's Gather checks its indices, so invoke()
raises for those rows and the predict function answers 5xx, a real server-side failure. Outputs of
the other rows are the plain network's. `faulty_export()` builds it once in a subprocess (the test
process never imports TensorFlow) and caches it under .cache/test-models/.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

FAIL_ABOVE = 50.0  # far above the export check's probe rows (standard normal, one row of +-10)
ROOT = Path(__file__).resolve().parent.parent


def build(out_dir: str) -> None:
    import keras
    import numpy as np
    from keras import layers, ops
    from maas_models.export import export_keras

    keras.utils.set_random_seed(1)
    inp = keras.Input(shape=(100,), name="features")
    h = layers.Dense(64, activation="relu")(inp)
    h = layers.Dense(32, activation="relu")(h)
    probs = layers.Dense(10, activation="softmax")(h)
    table = np.zeros((4,), np.float32)

    def poison(x):  # 0 for ordinary rows, an out-of-range index for rows with x0 > FAIL_ABOVE
        index = ops.cast(ops.greater(x[:, 0], FAIL_ABOVE), "int32") * 1000
        return ops.expand_dims(ops.take(ops.convert_to_tensor(table), index), -1)

    out = layers.Add(name="probabilities")([probs, layers.Lambda(poison)(inp)])
    model = keras.Model(inp, out)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    export_keras(
        model,
        out_dir,
        feature_names=[f"f{i}" for i in range(100)],
        class_labels=[str(i) for i in range(10)],
        metrics={"accuracy": 0.1},
    )


def faulty_export() -> Path:
    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    root = ROOT / ".cache" / "test-models"
    target = root / f"faulty-{digest}"
    if (target / "metadata.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{uuid.uuid4().hex}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.rollout_models", str(tmp)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"building the faulty model failed:\n{proc.stderr[-4000:]}")
    try:
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


if __name__ == "__main__":
    build(sys.argv[1])
