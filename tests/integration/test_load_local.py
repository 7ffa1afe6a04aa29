"""The bounded load test against the local stack: a steady request rate for a fixed time through the
REST API URL of `maas local up` into the real predict function. It must finish with zero errors; the
p50/p99 it measured are printed (and `maas bench http` reports the same run as benchmark figures).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import orjson
import pytest
from maas.bench import http_load

pytestmark = pytest.mark.integration

RATE = float(os.environ.get("MAAS_LOAD_RATE", "5"))
DURATION_S = float(os.environ.get("MAAS_LOAD_DURATION_S", "4"))


def ensure_reference_model(stack: dict[str, Any]) -> str:
    """Publish the reference model as "ref" into the local stack's registry unless it has a version."""
    import boto3
    from maas_models import Registry
    from maas_models.reference import cached_reference_export

    s3 = boto3.client(
        "s3",
        endpoint_url=stack["endpoint"],
        region_name=stack.get("region", "us-east-1"),
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    registry = Registry(bucket=stack["buckets"]["models"], s3=s3)
    if not any(m["name"] == "ref" and m["versions"] for m in registry.list_models()):
        registry.publish(cached_reference_export(), "ref", source="recorded")
    return str(stack["api_url"])


@pytest.fixture(scope="module")
def api_url(local_stack: dict[str, Any]) -> str:
    url = ensure_reference_model(local_stack)
    warm = http_load.run_load(http_load.predict_config(url, rate=2, duration_s=1.0, timeout_s=60))
    assert warm.errors == 0, warm.summary()  # first requests start the function (cold start)
    return url


def test_steady_load_completes_with_zero_errors(api_url: str) -> None:
    config = http_load.predict_config(api_url, rate=RATE, duration_s=DURATION_S, concurrency=4, timeout_s=15)
    result = http_load.run_load(config)
    summary = result.summary()
    print(f"load on the local stack: {orjson.dumps(summary).decode()}")
    assert result.errors == 0, summary
    assert result.ok == result.planned == int(RATE * DURATION_S)
    assert summary["p50_ms"] is not None and summary["p99_ms"] >= summary["p50_ms"]
    assert result.wall_s < DURATION_S + 15  # bounded: it stopped by itself


def test_maas_bench_http_reports_p50_p99_and_errors(api_url: str, tmp_path: Any) -> None:
    out = tmp_path / "http.json"
    proc = subprocess.run(
        [sys.executable, "-m", "maas", "bench", "http", "--url", api_url, "--rate", "4", "--duration", "1",
         "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout
    figures = {f["figure"].split(" (")[0]: f for f in orjson.loads(out.read_bytes())["figures"]}
    assert figures["errors of 4 requests"]["value"] == 0
    assert figures["predict p50 over HTTP"]["value"] > 0 and figures["predict p99 over HTTP"]["value"] > 0
