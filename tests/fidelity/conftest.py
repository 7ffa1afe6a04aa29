"""Fixtures of the fidelity tests: the image-equivalent environments, and an AWS (moto) holding what the
sample events in events/ name (the `maas-local-*-000000000000-us-east-1` buckets, the reference model
published as `ref` v1 with the `production` label, a results queue, the training job queue).

Handlers run in their own environment's interpreter under the real Lambda runtime client, through the
same `maas_executor.sandbox.Sandbox` the LocalStack executor uses: nothing of the test process (its
.venv, TensorFlow, moto) is importable there.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from maas.local import LocalConfig
from maas.local.envs import Environments, ImageEnv
from maas_executor.sandbox import Result, Sandbox

from tests.training_queue import create_training_queue

ACCOUNT = "000000000000"  # the account the sample events' bucket names carry (LocalStack's)
REGION = "us-east-1"


def bucket(kind: str) -> str:
    return f"maas-local-{kind}-{ACCOUNT}-{REGION}"


@pytest.fixture(scope="session")
def image_envs() -> dict[str, ImageEnv]:
    """Every image's environment, built (or reused from .localstack/envs) exactly as `maas local up` does."""
    cfg = LocalConfig.from_env()
    return Environments(
        cfg.project_root, cfg.envs_dir, lambda m: print(f"fidelity: {m}", file=sys.stderr)
    ).ensure_all()


@pytest.fixture(scope="session")
def aws(moto_server: str, reference_export: Path) -> Iterator[dict[str, str]]:
    """moto with the resources the sample events use; yields the environment handlers get."""
    handler_env = {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }
    saved = {k: os.environ.get(k) for k in handler_env}
    os.environ.update(handler_env)
    try:
        s3 = boto3.client("s3")
        for kind in ("models", "ingest", "results", "audit"):
            s3.create_bucket(Bucket=bucket(kind))
        from maas_models import Registry

        registry = Registry(bucket=bucket("models"))
        registry.publish(reference_export, "ref", source="recorded")
        registry.promote("ref", 1, "production", override=True, reason="fidelity test")
        sqs = boto3.client("sqs")
        results_queue = sqs.create_queue(QueueName=f"maas-local-results-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        _training_queue(moto_server)
        yield {
            **handler_env,
            "MAAS_MODELS_BUCKET": bucket("models"),
            "MAAS_MODELS_PREFIX": "models/",
            "MAAS_INGEST_BUCKET": bucket("ingest"),
            "MAAS_RESULTS_BUCKET": bucket("results"),
            "MAAS_AUDIT_BUCKET": bucket("audit"),
            "MAAS_RESULTS_QUEUE_URL": results_queue,
            "MAAS_TRAINING_JOB_QUEUE": "maas-training",
            "MAAS_TRAINING_JOB_DEFINITION": "maas-training",
            "POWERTOOLS_SERVICE_NAME": "maas",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "OPENBLAS_NUM_THREADS": "1",
        }
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _training_queue(endpoint: str) -> None:
    """moto Batch without Docker: a compute environment, the training job queue and job definition."""
    request = urllib.request.Request(
        f"{endpoint}/moto-api/config",
        data=json.dumps({"batch": {"use_docker": False}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).close()
    create_training_queue(compute_environment="maas-training-fidelity")


class EnvHandler:
    """A handler running in its image-equivalent environment, callable like `handler(event, context)`."""

    def __init__(self, env: ImageEnv, handler_env: dict[str, str], tmp: Path) -> None:
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "TMPDIR": str(tmp)}
        self.sandbox = Sandbox(
            env.name,
            str(env.python),
            env.spec.handler,
            env.task_root,
            {**base, **handler_env, "MAAS_CACHE_DIR": str(tmp / "maas-models")},
            timeout_s=120,
            memory_mb=1024,
        )
        self.last: Result | None = None

    def __enter__(self) -> EnvHandler:
        self.sandbox.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sandbox.stop()

    def invoke(self, event: dict[str, Any]) -> Result:
        self.last = self.sandbox.invoke(str(uuid.uuid4()), orjson.dumps(event))
        return self.last

    def __call__(self, event: dict[str, Any], context: Any = None) -> Any:
        result = self.invoke(event)
        assert not result.is_error, f"{self.sandbox.name} raised:\n{result.payload.decode()}\n{result.logs}"
        return orjson.loads(result.payload)


@pytest.fixture
def run_in_env(image_envs: dict[str, ImageEnv], aws: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    """`run_in_env("predict")` -> an EnvHandler started in that function's environment (stopped after)."""
    started: list[EnvHandler] = []

    def make(name: str, **overrides: str) -> EnvHandler:
        tmp = tmp_path / f"{name}-{len(started)}"
        tmp.mkdir()
        handler = EnvHandler(image_envs[name], {**aws, **overrides}, tmp)
        started.append(handler.__enter__())
        return handler

    yield make
    for handler in started:
        handler.__exit__()
