"""Bring-your-own-code training jobs as real processes (the container's entrypoint, `python -m
maas.training`) on S3 served by moto: the digits script example end to end (code verified, checkpoint
dir synced, model imported, card, gates, published, served by the registry's LiteRT loader), resume
after SIGKILL and SIGTERM with the same Batch job id, a hanging script stopped with its checkpoint
kept, and every bad input exiting 2 with nothing published."""

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
    spec["code"]["source_dir"] = str(DIGITS)
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


@pytest.mark.slow
def test_script_runs_publishes_and_serves(s3_moto: str, tmp_path: Path) -> None:
    spec = spec_file(tmp_path, hyperparameters={"epochs": 4, "seed": 0})
    code, lines, summary = finish(start(spec, tmp_path, f"job-{uuid.uuid4().hex[:8]}"))
    assert code == 0, "".join(lines[-40:])
    assert summary["status"] == "published" and summary["version"] == 1 and summary["promoted"] is True
    assert [int(m.group(1)) for line in lines if (m := EPOCH_BEGIN.search(line))] == [1, 2, 3, 4]
    assert user_checkpoints(s3_moto), "MAAS_CHECKPOINT_DIR was never synced to S3"

    from maas_examples import digits
    from maas_models import ModelLoader, Registry

    registry = Registry(bucket=s3_moto)
    manifest = registry.manifest(registry.resolve("digits-cnn", "production")).raw
    assert manifest["outputs"][0]["class_labels"] == digits.CLASS_LABELS
    assert manifest["metrics"]["accuracy"] > 0.8  # from the example's evaluation hook
    assert set(manifest["fairness"]["groups"]) == {"heavy", "light"}
    assert manifest["fingerprint"]["rows"] > 0 and manifest["model_card"] == "card.json"
    assert (
        manifest["training"]["entry_point"] == "train.py" and len(manifest["training"]["code_sha256"]) == 64
    )
    model = ModelLoader(registry=registry).get("digits-cnn", "production")
    data = digits.load(0)
    out = model.predict_named({"image": data.images[data.test[:16]]})
    assert np.mean(np.argmax(next(iter(out.values())), axis=1) == data.labels[data.test[:16]]) > 0.6


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_script_resumes_after_kill_with_the_same_job_id(s3_moto: str, tmp_path: Path, how: int) -> None:
    epochs = 12
    spec = spec_file(tmp_path, hyperparameters={"epochs": epochs, "batch_size": 8, "seed": 0}, promotion=None)
    job = f"job-{uuid.uuid4().hex[:8]}"
    first = start(spec, tmp_path, job)
    read_until(first, rf"digits_cnn epoch 4/{epochs} begin")
    time.sleep(
        1.0
    )  # mid-epoch 4; the epoch-3 backup is older than the 5 s sync interval... or synced on SIGTERM
    deadline = time.monotonic() + 30
    while how == signal.SIGKILL and not user_checkpoints(s3_moto) and time.monotonic() < deadline:
        time.sleep(0.5)
    os.killpg(first.pid, how)
    first.wait(timeout=60)
    assert first.returncode == (-signal.SIGKILL if how == signal.SIGKILL else 143)
    assert user_checkpoints(s3_moto) and not versions(s3_moto)

    code, lines, summary = finish(start(spec, tmp_path, job))
    assert code == 0, "".join(lines[-40:])
    begun = [int(m.group(1)) for line in lines if (m := EPOCH_BEGIN.search(line))]
    assert begun[0] >= 3 and begun[-1] == epochs, begun  # at most the epoch in progress is redone
    assert any("restored" in line and "checkpoint files" in line for line in lines)
    assert summary["status"] == "published"


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
