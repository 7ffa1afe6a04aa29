"""The predict API over real HTTP: LocalStack REST API -> Lambda (awslambdaric) -> functions/predict.

Requests are the `curl` recipes of the TF Serving REST docs (api_rest.md) and the v2 protocol doc
(required_api.md), sent with urllib to the stack's API URL, on the reference model published into the
stack's models bucket under a fresh name.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.integration.helpers import api_request, delete_prefix, point_at_stack

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(local_stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    from maas_models import Registry

    point_at_stack(local_stack, monkeypatch)
    return Registry(bucket=local_stack["buckets"]["models"])


def _remove(registry: Any, name: str) -> None:
    delete_prefix(registry.s3, registry.bucket, f"models/{name}/")


@pytest.fixture
def model(registry: Any, reference_export: Path) -> Iterator[str]:
    """The reference model published as <fresh name> v1 (removed afterwards)."""
    name = f"it-predict-{uuid.uuid4().hex[:8]}"
    registry.publish(reference_export, name, source="recorded")
    yield name
    _remove(registry, name)


def http(
    api: str,
    path: str,
    data: bytes | None = None,
    method: str | None = None,
    content_type: str = "application/json",
) -> tuple[int, dict, Any]:
    """curl -d DATA -X METHOD $API$PATH -> (status, headers, JSON body)."""
    status, hdrs, body = api_request(
        api + path, data, method or ("POST" if data is not None else "GET"), {"Content-Type": content_type}
    )
    return status, hdrs, orjson.loads(body) if body else None


def test_tf_serving_curl_recipes(local_stack: dict[str, Any], model: str) -> None:
    api = local_stack["api_url"]
    x = np.random.default_rng(11).normal(size=(3, 100)).astype(np.float32)

    # $ curl http://localhost:8501/v1/models/half_plus_three
    status, _, doc = http(api, f"/v1/models/{model}")
    assert status == 200, doc
    assert doc == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }

    # $ curl -d '{"instances": [1.0,2.0,5.0]}' -X POST http://localhost:8501/v1/models/half_plus_three:predict
    # (curl -d sends Content-Type: application/x-www-form-urlencoded; the body is still JSON)
    status, headers, doc = http(
        api,
        f"/v1/models/{model}:predict",
        orjson.dumps({"instances": x.tolist()}),
        content_type="application/x-www-form-urlencoded",
    )
    assert status == 200, doc
    predictions = np.asarray(doc["predictions"], np.float32)
    assert predictions.shape == (3, 10)
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, atol=1e-5)
    assert headers.get("x-maas-model-version") == "1"

    # versions and labels, columnar format
    status, _, doc = http(api, f"/v1/models/{model}/versions/1:predict", orjson.dumps({"inputs": x.tolist()}))
    assert status == 200 and np.allclose(np.asarray(doc["outputs"], np.float32), predictions, atol=1e-6)
    status, _, doc = http(
        api,
        f"/v1/models/{model}/labels/latest:predict",
        orjson.dumps({"instances": [{"features": r} for r in x.tolist()]}),
    )
    assert status == 200 and np.allclose(np.asarray(doc["predictions"], np.float32), predictions, atol=1e-6)

    status, _, doc = http(api, f"/v1/models/{model}/metadata")
    assert status == 200
    assert doc["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["features"][
        "dtype"
    ] == ("DT_FLOAT")

    status, _, doc = http(api, "/v1/models")
    assert status == 200 and any(m["name"] == model for m in doc["models"])

    # $ curl -i -d '{"instances": [1.0,5.0]}' -X POST http://localhost:8501/v1/models/half:predict  -> 404
    status, headers, doc = http(api, f"/v1/models/{model}-missing:predict", b'{"instances": [[1.0, 5.0]]}')
    assert status == 404 and set(doc) == {"error"}
    assert headers["content-type"].startswith("application/json")


def test_v2_curl_recipes(local_stack: dict[str, Any], model: str) -> None:
    api = local_stack["api_url"]
    assert http(api, "/v2/health/live")[0] == 200
    assert http(api, "/v2/health/ready")[0] == 200

    status, _, doc = http(api, f"/v2/models/{model}")
    assert status == 200
    assert doc["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 100]}]
    assert doc["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    assert http(api, f"/v2/models/{model}/ready")[2]["ready"] is True
    assert http(api, f"/v2/models/{model}/versions/1/ready")[0] == 200

    # POST /v2/models/mymodel/infer  {"id": "42", "inputs": [...], "outputs": [{"name": "output0"}]}
    body = {
        "id": "42",
        "inputs": [{"name": "features", "shape": [2, 100], "datatype": "FP32", "data": [0.5] * 200}],
        "outputs": [{"name": "probabilities"}],
    }
    status, _, doc = http(api, f"/v2/models/{model}/infer", orjson.dumps(body))
    assert status == 200, doc
    assert doc["id"] == "42" and doc["model_name"] == model and doc["model_version"] == "1"
    assert doc["outputs"][0]["shape"] == [2, 10] and len(doc["outputs"][0]["data"]) == 20

    status, _, doc = http(api, f"/v2/models/{model}/versions/9/infer", orjson.dumps(body))
    assert status == 404 and set(doc) == {"error"}


@pytest.mark.parametrize(
    ("path", "data", "status", "fragment"),
    [
        (":predict", b"", 400, "empty"),
        (":predict", b'{"instances": [[1.0,]]}', 400, "not valid JSON"),
        (":predict", b'{"instances": [[NaN]]}', 400, "NaN"),
        (":predict", b'{"instances": [[1.0]], "inputs": [[1.0]]}', 400, "not both"),
        (":predict", b'{"instances": [[1.0, 2.0]]}', 400, "[None, 100]"),
        (
            "/infer",
            b'{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}',
            400,
            "unknown input",
        ),
    ],
)
def test_errors_over_http(
    local_stack: dict[str, Any], model: str, path: str, data: bytes, status: int, fragment: str
) -> None:
    prefix = f"/v1/models/{model}" if path.startswith(":") else f"/v2/models/{model}"
    got, _, doc = http(local_stack["api_url"], prefix + path, data, method="POST")
    assert got == status, doc
    assert set(doc) == {"error"} and fragment in doc["error"]


def test_corrupt_model_is_503_with_retry_after(
    local_stack: dict[str, Any], registry: Any, reference_export: Path
) -> None:
    name = f"it-corrupt-{uuid.uuid4().hex[:8]}"
    registry.publish(reference_export, name, source="recorded")
    try:
        registry.s3.put_object(Bucket=registry.bucket, Key=f"models/{name}/1/model.tflite", Body=b"garbage")
        status, headers, doc = http(
            local_stack["api_url"], f"/v1/models/{name}/versions/1:predict", b'{"instances": [[0.0]]}'
        )
        assert status == 503, doc
        assert int(headers["retry-after"]) > 0 and set(doc) == {"error"}
    finally:
        _remove(registry, name)
