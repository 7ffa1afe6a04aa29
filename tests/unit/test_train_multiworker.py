"""MultiWorkerMirroredStrategy smoke test: 2 local CPU worker processes, TF_CONFIG, one shared checkpoint
dir; both workers train in lock-step, only the chief (worker 0) uploads checkpoints and publishes.
About 30 s on 2 cores; skipped when MAAS_SKIP_MULTIWORKER=1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from maas.training.synthetic import make_table, write

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("MAAS_SKIP_MULTIWORKER") == "1", reason="MAAS_SKIP_MULTIWORKER=1"),
]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_cpu_workers_train_and_the_chief_publishes(s3_moto: str, tmp_path: Path) -> None:
    data = write(make_table(rows=1200, features=20, classes=4, seed=3), tmp_path / "train.parquet")
    spec = {
        "model_name": "mw",
        "dataset": {"uri": str(data), "label_column": "label", "sensitive_columns": ["group"]},
        "training": {"epochs": 2, "batch_size": 32},
        "checkpoint_uri": str(tmp_path / "ckpt"),
    }
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(tf_config),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "CUDA_VISIBLE_DEVICES": "",
        }
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "maas.training",
                    "--spec",
                    str(spec_path),
                    "--work-dir",
                    str(tmp_path / f"w{index}"),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
        )
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out[-3000:]
    chief, worker = (json.loads(out.strip().splitlines()[-1]) for out in outputs)
    assert "strategy=multi_worker_mirrored replicas=2" in outputs[0]
    assert chief["status"] == "published" and chief["version"] == 1 and chief["epochs_run"] == [1, 2]
    assert worker["status"] == "worker" and worker["version"] is None
    assert "checkpoint saved epoch=2/2" in outputs[0] and "checkpoint saved" not in outputs[1]
    assert json.loads((tmp_path / "ckpt" / "latest.json").read_text())["epoch"] == 2

    from maas_models import Registry

    assert Registry(bucket=s3_moto).versions("mw") == [1]
