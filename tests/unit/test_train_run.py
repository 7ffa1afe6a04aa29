"""Training end to end as a real process (the container's entrypoint) against S3 on a moto server:
train the reference model, publish, load it back through the registry and predict; kill the process
(SIGKILL, and SIGTERM as AWS Batch does on spot reclaim) and check that a rerun resumes from the checkpoint
with the epoch counter continuing and at most one epoch lost."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from maas.training.synthetic import make_table, write

TRAIN_ROWS, TEST_ROWS = 2000, 400
EPOCH_LINE = re.compile(r"INFO maas\.training epoch (\d+)/(\d+) ")
RESUMED = re.compile(r"resumed from checkpoint epoch=(\d+)/(\d+) reason=\w+ optimizer_step=(\d+)")
STEPS_PER_EPOCH = 50  # 1600 training rows / batch 32


@pytest.fixture
def dataset(s3_moto: str, tmp_path: Path) -> dict[str, Any]:
    """2000 training rows (100 features, 10 classes, learnable) on S3 and 400 test rows kept aside."""
    table = make_table(rows=TRAIN_ROWS + TEST_ROWS, features=100, classes=10, seed=0)
    path = write(table.slice(0, TRAIN_ROWS), tmp_path / "train.parquet")
    bucket = f"data-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(path), bucket, "datasets/ref/train.parquet")
    test = table.slice(TRAIN_ROWS)
    x = np.column_stack([test.column(f"f{j}").to_numpy() for j in range(100)]).astype(np.float32)
    return {
        "uri": f"s3://{bucket}/datasets/ref/train.parquet",
        "x_test": x,
        "y_test": test.column("label").to_numpy(),
        "models_bucket": s3_moto,
    }


def write_spec(tmp_path: Path, dataset: dict[str, Any], **training: Any) -> tuple[Path, dict[str, Any]]:
    min_accuracy = training.pop("min_accuracy", 0.5)
    spec = {
        "model_name": "ref",
        "dataset": {"uri": dataset["uri"], "label_column": "label", "sensitive_columns": ["group"]},
        "training": {"epochs": 8, "batch_size": 32, "seed": 7, **training},
        "promotion": {"alias": "production", "min_accuracy": min_accuracy, "max_fairness_gap": 0.9},
    }
    path = tmp_path / f"spec-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(spec))
    return path, spec


def start(spec: Path, tmp_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "maas.training", "--spec", str(spec), "--work-dir", str(tmp_path / "work")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def read_until(proc: subprocess.Popen[str], pattern: str, timeout: float = 240) -> list[str]:
    """Lines of output up to and including the first one matching pattern."""
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        if re.search(pattern, line):
            return lines
        assert time.monotonic() < deadline, "".join(lines[-30:])
    raise AssertionError(f"process ended before {pattern!r}:\n" + "".join(lines[-40:]))


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, list[str], dict[str, Any]]:
    out, _ = proc.communicate(timeout=timeout)
    lines = out.splitlines(keepends=True)
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return proc.returncode, lines, summary


def epochs_logged(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := EPOCH_LINE.search(line))]


def latest_checkpoint(models_bucket: str) -> dict[str, Any]:
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=models_bucket, Prefix="checkpoints/ref/")["Contents"]]
    latest = next(k for k in keys if k.endswith("/latest.json"))
    state: dict[str, Any] = json.loads(s3.get_object(Bucket=models_bucket, Key=latest)["Body"].read())
    return state


@pytest.mark.slow
def test_sigkill_resume_then_publish_load_and_predict(dataset: dict[str, Any], tmp_path: Path) -> None:
    spec_path, _ = write_spec(tmp_path, dataset)
    first = start(spec_path, tmp_path)
    before = read_until(first, r"checkpoint saved epoch=2/8 ")
    first.kill()  # SIGKILL: no warning, no chance to save anything
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    assert epochs_logged(before) == [1, 2]
    saved = latest_checkpoint(dataset["models_bucket"])
    assert saved["reason"] == "epoch_end" and saved["epoch"] in (2, 3)

    code, lines, summary = finish(start(spec_path, tmp_path))
    assert code == 0, "".join(lines[-40:])
    resumed = [(int(m.group(1)), int(m.group(3))) for line in lines if (m := RESUMED.search(line))]
    # the weights AND the optimizer state (Adam moments, step count) come back from the checkpoint
    assert resumed == [(saved["epoch"], saved["epoch"] * STEPS_PER_EPOCH)]
    assert epochs_logged(lines) == list(range(saved["epoch"] + 1, 9))  # the epoch counter continues
    assert saved["epoch"] >= 2  # the kill came during epoch 3 at the latest: at most that one epoch is redone
    assert summary["status"] == "published" and summary["resumed_from_epoch"] == saved["epoch"]
    assert summary["version"] == 1 and summary["promoted"] is True

    from maas_models import ModelLoader, Registry

    registry = Registry(bucket=dataset["models_bucket"])
    ref = registry.resolve("ref", "production")
    assert ref.version == 1
    manifest = registry.manifest(ref).raw
    assert manifest["fingerprint"]["rows"] == TRAIN_ROWS and len(manifest["fingerprint"]["features"]) == 100
    assert manifest["inputs"][0]["feature_names"][:2] == ["f0", "f1"]
    assert manifest["outputs"][0]["class_labels"] == [str(i) for i in range(10)]
    assert manifest["metrics"]["accuracy"] > 0.5 and set(manifest["metrics"]["per_class"]) == {
        str(i) for i in range(10)
    }
    assert manifest["metrics"]["tflite_held_out"]["argmax_agreement"] > 0.99
    assert set(manifest["fairness"]["groups"]) == {"a", "b"} and manifest["sensitive_features"] == ["group"]
    assert manifest["model_card"] == "card.json" and "saved_model/saved_model.pb" in manifest["files"]
    assert [h["epoch"] for h in manifest["metrics"]["history"]] == list(range(1, 9))

    model = ModelLoader(registry=registry, cache_dir=tmp_path / "cache").get("ref", "production")
    proba = model.predict(dataset["x_test"])
    accuracy = float(np.mean(proba.argmax(axis=1) == dataset["y_test"]))
    assert accuracy > 0.6, accuracy  # chance is 0.1

    # a retry of a run that already published does nothing (and never publishes twice)
    code, lines, summary = finish(start(spec_path, tmp_path))
    assert code == 0 and summary["status"] == "already_published" and summary["version"] == 1


@pytest.mark.slow
def test_sigterm_checkpoints_and_resumes_and_gates_block_promotion(
    dataset: dict[str, Any], tmp_path: Path
) -> None:
    spec_path, _ = write_spec(tmp_path, dataset, epochs=6, min_accuracy=0.999)
    first = start(spec_path, tmp_path)
    before = read_until(first, r"epoch 2/6 ")
    first.send_signal(signal.SIGTERM)  # what AWS Batch sends on a spot reclaim
    code, lines, summary = finish(first, timeout=60)
    lines = before + lines
    assert code == 143, "".join(lines[-30:])
    assert summary["status"] == "interrupted"
    saved = latest_checkpoint(dataset["models_bucket"])
    assert saved["epoch"] in (2, 3)
    assert any(f"checkpoint saved epoch={saved['epoch']}" in line for line in lines)

    code, lines, summary = finish(start(spec_path, tmp_path))
    assert code == 0, "".join(lines[-40:])
    assert epochs_logged(lines) == list(range(saved["epoch"] + 1, 7))
    assert summary["resumed_from_epoch"] == saved["epoch"] and summary["version"] == 1
    assert summary["promoted"] is False and "min_accuracy" in summary["gates"]["failures"][0]

    from maas_models import Registry

    registry = Registry(bucket=dataset["models_bucket"])
    assert registry.aliases("ref") == {} and registry.versions("ref") == [1]
