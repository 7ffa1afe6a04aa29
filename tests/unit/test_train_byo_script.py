"""Bring-your-own-code training jobs as real processes (the container's entrypoint, `python -m
maas.training`) on S3 served by moto: the digits script example end to end (code verified, checkpoint
dir synced, model imported, card, gates, published, served by the registry's LiteRT loader), resume
after SIGKILL with the same Batch job id, a hanging script stopped with its checkpoint
kept (bad inputs: tests/unit/test_train_byo_builder.py)."""

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

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "examples" / "digits_cnn"
EPOCH_BEGIN = re.compile(r"digits_cnn epoch (\d+)/(\d+) begin")


def spec_file(tmp_path: Path, **overrides: Any) -> Path:
    spec: dict[str, Any] = json.loads((DIGITS / "spec.json").read_text())
    spec["code"]["source_dir"] = str(DIGITS.parent)
    # the dev venv has scikit-learn: no pip install here (the LocalStack test installs it in the image env)
    spec["code"].pop("requirements")
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        elif value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    path = tmp_path / f"spec-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(spec))
    return path


def start(spec: Path, tmp_path: Path, job_id: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONUNBUFFERED": "1",
        "AWS_BATCH_JOB_ID": job_id,  # what Batch sets; the same on every retry of the job
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "maas.training",
            "--spec",
            str(spec),
            "--work-dir",
            str(tmp_path / f"w-{uuid.uuid4().hex[:6]}"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # the job and its script child: one process group, killed together
    )


def read_until(proc: subprocess.Popen[str], pattern: str, timeout: float = 240) -> list[str]:
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


def user_checkpoints(bucket: str, model: str = "digits-cnn") -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"checkpoints/{model}/")
    return [o["Key"] for o in listed.get("Contents", []) if "/code-checkpoints/" in o["Key"]]


def versions(bucket: str, model: str = "digits-cnn") -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"models/{model}/")
    return [o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith("manifest.json")]


def synced_epochs(bucket: str, job: str, model: str = "digits-cnn") -> int:
    """Epochs completed in the BackupAndRestore backup on S3 (its training_metadata.json), 0 if none."""
    key = f"checkpoints/{model}/{job}/code-checkpoints/training_metadata.json"
    try:
        return int(json.loads(boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())["epoch"])
    except Exception:  # not there yet, or being rewritten
        return 0


@pytest.mark.slow
def test_script_killed_resumes_with_the_same_job_id_publishes_and_serves(
    s3_moto: str, tmp_path: Path
) -> None:
    """SIGKILL (no last sync: what survives is what the periodic sync uploaded) mid-run, then the Batch
    retry with the same job id restores MAAS_CHECKPOINT_DIR, resumes after the last synced epoch, and
    publishes (verified, card, gates) a model the registry's LiteRT loader serves. (SIGTERM's last
    sync: the hanging-script test here and the builder's kill test.)"""
    epochs = 10
    spec = spec_file(
        tmp_path,
        hyperparameters={"epochs": epochs, "batch_size": 8, "seed": 0},
        # epochs shorter than a poll rewrite the backup on every poll: then the interval bounds the lag
        code={"checkpoint_sync_seconds": 1},
    )
    job = f"job-{uuid.uuid4().hex[:8]}"
    first = start(spec, tmp_path, job)
    read_until(first, rf"digits_cnn epoch 3/{epochs} begin")
    deadline = time.monotonic() + 60
    while synced_epochs(s3_moto, job) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    restored = synced_epochs(s3_moto, job)  # after a SIGKILL nothing more is uploaded
    assert first.returncode == -signal.SIGKILL and not versions(s3_moto)
    assert 2 <= restored < epochs, f"killed after training ended ({restored} epochs synced)"

    code, lines, summary = finish(start(spec, tmp_path, job))
    assert code == 0, "".join(lines[-40:])
    begun = [int(m.group(1)) for line in lines if (m := EPOCH_BEGIN.search(line))]
    # the retry starts right after the backup that was on S3
    assert begun == list(range(restored + 1, epochs + 1)), (restored, begun)
    assert any("restored" in line and "checkpoint files" in line for line in lines)
    assert summary["status"] == "published" and summary["version"] == 1 and summary["promoted"] is True

    from maas_examples import digits
    from maas_models import ModelLoader, Registry

    registry = Registry(bucket=s3_moto)
    manifest = registry.manifest(registry.resolve("digits-cnn", "production")).raw
    assert manifest["outputs"][0]["class_labels"] == digits.CLASS_LABELS
    assert manifest["metrics"]["accuracy"] > 0.8  # from the example's evaluation hook
    assert set(manifest["fairness"]["groups"]) == {"heavy", "light"}
    assert manifest["fingerprint"]["rows"] > 0 and manifest["model_card"] == "card.json"
    assert manifest["training"]["entry_point"] == "digits_cnn/train.py"
    assert len(manifest["training"]["code_sha256"]) == 64
    model = ModelLoader(registry=registry).get("digits-cnn", "production")
    data = digits.load(0)
    out = model.predict_named({"image": data.images[data.test[:16]]})
    assert np.mean(np.argmax(next(iter(out.values())), axis=1) == data.labels[data.test[:16]]) > 0.6


HANGING_SCRIPT = """
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a script that ignores the stop and hangs
with open(os.path.join(os.environ["MAAS_CHECKPOINT_DIR"], "step.txt"), "w") as fh:
    fh.write("step 7")
print("checkpoint written; now hanging", flush=True)
while True:
    time.sleep(1)
"""


@pytest.mark.slow
def test_a_hanging_script_is_stopped_by_the_timeout_with_its_checkpoint_kept(
    s3_moto: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch's attempt timeout stops the container as a reclaim does (SIGTERM to the entrypoint, then
    SIGKILL): the script is killed after the grace, the checkpoint dir is synced, nothing is published."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(HANGING_SCRIPT)
    spec = tmp_path / "hang.json"
    spec.write_text(
        json.dumps(
            {
                "model_name": "hang",
                "code": {"source_dir": str(src), "entry_point": "train.py", "checkpoint_sync_seconds": 60},
            }
        )
    )
    monkeypatch.setenv("MAAS_TRAINING_STOP_GRACE_SECONDS", "2")
    proc = start(spec, tmp_path, f"job-{uuid.uuid4().hex[:8]}")
    read_until(proc, r"checkpoint written; now hanging")
    os.kill(proc.pid, signal.SIGTERM)  # to the entrypoint only, as `docker stop` does to PID 1
    code, lines, _ = finish(proc, timeout=60)
    assert code == 143, "".join(lines[-30:])
    assert any("still running 2 s after SIGTERM: killing it" in line for line in lines)
    assert [k.rsplit("/", 1)[-1] for k in user_checkpoints(s3_moto, "hang")] == ["step.txt"]
    assert not versions(s3_moto, "hang")
