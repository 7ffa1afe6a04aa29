"""The builder contract as real job processes on moto S3: the text example (TextVectorization over a
CSV text column) trained in the platform loop and published; resume after SIGTERM
mid-epoch from BackupAndRestore's synced backup; and every bad input exiting 2, naming the field or
file, with nothing published."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from tests.unit.test_train_byo_script import finish, read_until, start, versions

REPO = Path(__file__).resolve().parents[2]
EPOCH = re.compile(r"INFO maas\.training epoch (\d+)/(\d+) ")
RESUMED = re.compile(r"resumed from BackupAndRestore at epoch (\d+)/")

SLOW_BUILDER = """
import keras


def build(hp, input_spec):
    inputs = keras.Input(input_spec["shape"][1:], name="features")
    x = keras.layers.Dense(int(hp.get("units", 32)), activation="relu")(inputs)
    out = keras.layers.Dense(input_spec["num_classes"], activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, out)
    if not hp.get("forget_compile"):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
"""


def write_module(tmp_path: Path, text: str, name: str = "mymodel") -> Path:
    src = tmp_path / f"src-{uuid.uuid4().hex[:6]}"
    src.mkdir()
    (src / f"{name}.py").write_text(text)
    return src


def npz_dataset(tmp_path: Path, rows: int = 4000, features: int = 20) -> str:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, features)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    path = tmp_path / "data" / "train.npz"
    path.parent.mkdir(exist_ok=True)
    np.savez(path, x=x, y=y)
    return str(path)


def write_spec(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / f"spec-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(doc))
    return path


def no_versions(bucket: str, model: str) -> bool:
    return not versions(bucket, model)


@pytest.mark.slow
def test_text_builder_trains_evaluates_and_publishes(s3_moto: str, tmp_path: Path) -> None:
    csv = tmp_path / "reviews.csv"
    subprocess.run(
        [sys.executable, str(REPO / "examples/text_classifier/make_data.py"), str(csv), "400"], check=True
    )
    doc = json.loads((REPO / "examples/text_classifier/spec.json").read_text())
    doc["code"]["source_dir"] = str(REPO / "examples/text_classifier")
    doc["dataset"]["uri"] = str(csv)
    doc["training"]["epochs"] = 3
    code, lines, summary = finish(start(write_spec(tmp_path, doc), tmp_path, f"job-{uuid.uuid4().hex[:8]}"))
    assert code == 0, "".join(lines[-40:])
    assert [int(m.group(1)) for line in lines if (m := EPOCH.search(line))] == [1, 2, 3]
    # trained and evaluated, but string inputs cannot be served before the preprocessing issue (14):
    # nothing in the registry, the trained model and its card kept beside the checkpoints
    assert summary["status"] == "trained_not_published" and summary["version"] is None, summary
    assert no_versions(s3_moto, "reviews")
    kept = boto3.client("s3").list_objects_v2(Bucket=s3_moto, Prefix="checkpoints/reviews/")["Contents"]
    names = {"/".join(o["Key"].split("/")[-2:]) for o in kept}
    assert {"trained/model.keras", "trained/card.json"} <= names
    accuracy = [float(m.group(1)) for line in lines if (m := re.search(r"held-out accuracy=([0-9.]+)", line))]
    assert accuracy and accuracy[0] >= 0.6


@pytest.mark.slow
def test_builder_resumes_mid_epoch_after_sigterm(s3_moto: str, tmp_path: Path) -> None:
    """A spot reclaim (SIGTERM) mid-epoch: BackupAndRestore's backup is saved at that batch and synced
    before exit 143; the retry with the same job id resumes there. (SIGKILL, with only the periodic
    sync to rely on: the script contract's kill test; both use maas.training.dirsync.)"""
    doc = {
        "model_name": "slow",
        "code": {
            "source_dir": str(write_module(tmp_path, SLOW_BUILDER)),
            "entry_point": "mymodel:build",
            "save_freq": 50,
            "checkpoint_sync_seconds": 60,  # the backup must reach S3 through the SIGTERM's last sync
        },
        "dataset": {"uri": npz_dataset(tmp_path, rows=12000), "format": "npz"},
        "training": {"epochs": 5, "batch_size": 16, "validation_split": 0.1},
    }
    spec, job = write_spec(tmp_path, doc), f"job-{uuid.uuid4().hex[:8]}"
    first = start(spec, tmp_path, job)
    read_until(first, r"INFO maas\.training epoch 2/5 ")  # logged at the end of epoch 2
    os.killpg(first.pid, signal.SIGTERM)
    rest, _ = first.communicate(timeout=60)
    assert first.returncode == 143, rest[-3000:]
    saved = re.search(r"SIGTERM: backup saved at epoch (\d+) step (\d+)", rest)
    assert saved and int(saved.group(1)) >= 2, rest[-3000:]  # 0-based: in epoch 3 or later
    assert no_versions(s3_moto, "slow")

    code, lines, summary = finish(start(spec, tmp_path, job))
    assert code == 0, "".join(lines[-40:])
    resumed = [int(m.group(1)) for line in lines if (m := RESUMED.search(line))]
    assert resumed and resumed[0] == int(saved.group(1)), "".join(lines[-40:])
    epochs = [int(m.group(1)) for line in lines if (m := EPOCH.search(line))]
    assert epochs == list(range(resumed[0] + 1, 6))
    assert summary["status"] == "published" and summary["resumed_from_epoch"] == resumed[0]


NO_MODEL_SCRIPT = "print('trained, but saved nothing')\n"
NAN_SCRIPT = """
import os, keras
inputs = keras.Input((4,), name="x")
out = keras.layers.Dense(2, bias_initializer=keras.initializers.Constant(float("nan")))(inputs)
keras.Model(inputs, out).save(os.path.join(os.environ["MAAS_MODEL_DIR"], "model.keras"))
"""
CRASH_SCRIPT = "def helper():\n    raise RuntimeError('boom in user code')\n\nhelper()\n"


def _script(tmp_path: Path, text: str) -> dict[str, Any]:
    return {"source_dir": str(write_module(tmp_path, text, "train")), "entry_point": "train.py"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "expect_code", "message"),
    [
        ("missing_entry_point", 2, "code.entry_point: no file 'main.py'"),
        ("sha_mismatch", 2, "code.sha256: "),
        ("empty_prefix", 2, "dataset.uris: nothing under"),
        ("not_compiled", 2, "code.entry_point: mymodel.build returned an uncompiled model"),
        ("no_model", 2, "MAAS_MODEL_DIR: the script wrote no model"),
        ("fails_verification", 2, "MAAS_MODEL_DIR: the model failed verification"),
        ("user_crash", 3, "the training script exited with status 1"),
    ],
)
def test_bad_input_exits_2_naming_the_field_and_publishes_nothing(
    s3_moto: str, tmp_path: Path, case: str, expect_code: int, message: str
) -> None:
    doc: dict[str, Any] = {"model_name": "bad"}
    if case == "missing_entry_point":
        doc["code"] = {**_script(tmp_path, NO_MODEL_SCRIPT), "entry_point": "main.py"}
    elif case == "sha_mismatch":
        from maas.training import source

        data = source.pack(write_module(tmp_path, NO_MODEL_SCRIPT, "train"))
        boto3.client("s3").put_object(Bucket=s3_moto, Key="code/src.tar.gz", Body=data)
        doc["code"] = {
            "source_dir": f"s3://{s3_moto}/code/src.tar.gz",
            "entry_point": "train.py",
            "sha256": "0" * 64,
        }
    elif case == "empty_prefix":
        doc["code"] = {
            "source_dir": str(write_module(tmp_path, SLOW_BUILDER)),
            "entry_point": "mymodel:build",
        }
        doc["dataset"] = {"uri": f"s3://{s3_moto}/datasets/nothing-here/", "format": "images"}
    elif case == "not_compiled":
        doc["code"] = {
            "source_dir": str(write_module(tmp_path, SLOW_BUILDER)),
            "entry_point": "mymodel:build",
        }
        doc["dataset"] = {"uri": npz_dataset(tmp_path, rows=200), "format": "npz"}
        doc["hyperparameters"] = {"forget_compile": True}
    else:
        doc["code"] = _script(
            tmp_path,
            {"no_model": NO_MODEL_SCRIPT, "fails_verification": NAN_SCRIPT, "user_crash": CRASH_SCRIPT}[case],
        )
    code, lines, summary = finish(start(write_spec(tmp_path, doc), tmp_path, f"job-{uuid.uuid4().hex[:8]}"))
    text = "".join(lines)
    assert code == expect_code, text[-3000:]
    assert any(e.startswith(message) for e in summary["errors"]), summary
    assert no_versions(s3_moto, "bad")
    if case == "user_crash":  # the user's own traceback is in the job's log
        assert "Traceback (most recent call last)" in text and "RuntimeError: boom in user code" in text
