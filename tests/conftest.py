"""Shared fixtures (model layer): a cached reference export, an S3 (moto) server, a published model.

* `reference_export`: path of the seeded reference model exported by `maas_models.export`
  (saved_model/, model.tflite, model.keras, metadata.json). Built once in a subprocess (so the test
  process does not import TensorFlow for it) and cached under .cache/test-models/<hash of the export
  code>, so reruns are instant and any change to the export code rebuilds it.
* `s3_moto`: a moto S3 server on 127.0.0.1 (random free port, one per session), with
  AWS_ENDPOINT_URL, test credentials and region set, and a fresh models bucket per test whose name
  is in MAAS_MODELS_BUCKET. Yields the bucket name.
* `published_ref`: a Registry on that bucket with the reference model published as "ref" v1.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def build_reference_export() -> Path:
    """The cached reference export (see maas_models.reference); kept for scripts that import it."""
    from maas_models.reference import cached_reference_export

    return cached_reference_export()


@pytest.fixture(scope="session")
def reference_export() -> Path:
    from maas_models.reference import cached_reference_export

    return cached_reference_export()


def _faithful_conditional_puts() -> Any:
    """Make moto's If-None-Match check-then-write atomic, as it is on S3 and LocalStack.

    moto checks for the existing key and then stores the new one without a lock, so two threads can
    both pass the check. Serializing its put handler makes the fake behave like the real service;
    it does not touch any maas code.
    """
    from moto.s3.responses import S3Response

    original = S3Response.put_object
    lock = threading.Lock()

    def put_object(self: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, *args, **kwargs)

    S3Response.put_object = put_object  # type: ignore[method-assign]
    return original


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1 (random free port) for the session; yields its endpoint URL."""
    import logging

    from moto.s3.responses import S3Response
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log per request
    original = _faithful_conditional_puts()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        S3Response.put_object = original  # type: ignore[method-assign]


AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_SESSION_TOKEN": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture
def s3_moto(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Points boto3 at the moto server and creates a fresh models bucket; yields the bucket name."""
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    for key, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MAAS_MODELS_BUCKET", bucket)
    import boto3

    boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    yield bucket


@pytest.fixture
def published_ref(s3_moto: str, reference_export: Path) -> Any:
    """A Registry on the s3_moto bucket with the reference model published as ref v1."""
    from maas_models import Registry

    registry = Registry(bucket=s3_moto)
    version = registry.publish(reference_export, "ref", source="recorded")
    assert version == 1
    return registry
