"""Real clients, unmodified: tritonclient.http, the KServe SDK and the README's curl recipe.

The clients live in their own venv (.venv-clients, built by scripts/clients.sh: their pins clash with
TensorFlow's), so `clients_driver.py` runs them in a subprocess and writes what they got; the tests here
compare that with each other and with the model. Two fronts:

- the local stack's REST API (LocalStack -> Lambda -> functions/predict) over real HTTP. LocalStack
  2026.3.0 passes binary request bodies (base64-encoding those that are not UTF-8) but decodes a
  function's base64 response only when the request's Accept names a binary media type exactly:
  `mime_type_matches_binary_media_types` (localstack/services/apigateway/next_gen/execute_api/helpers.py)
  skips every `*/...` entry and a missing Accept, so `*/*` in BinaryMediaTypes never matches there (on
  AWS it makes any Accept match). Scenarios with binary answers therefore send
  `Accept: application/octet-stream` there (`--accept-binary`); `test_localstack_wildcard_accept_gap`
  pins that gap down so it is noticed when LocalStack fixes it.
- a loopback front end (`tests.apigw.serve_http`) that turns each HTTP request into the exact REST API
  event API Gateway sends with template.yaml's BinaryMediaTypes (base64 bodies) and answers as API
  Gateway does: here the clients run with pure defaults (no Accept), into the real handler.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests import apigw
from tests.integration.helpers import api_request, delete_prefix, point_at_stack

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("clients_driver.py")
predict_app = apigw.predict_app  # the handler serving the reference model "ref" from moto S3

SCENARIOS = {
    "triton_defaults",
    "triton_named_output_defaults",
    "triton_json",
    "triton_binary_in_json_out",
    "triton_health",
    "kserve_v1_predict",
    "kserve_v2_readiness",
    "kserve_v2_json",
    "kserve_v2_binary_in",
    "kserve_v2_binary_in_out",
}
INFER = SCENARIOS - {"triton_health", "kserve_v2_readiness"}


@pytest.fixture(scope="session")
def clients_python() -> Path:
    """.venv-clients' python, built (or checked, if up to date) by the project's script."""
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "clients.sh")], cwd=ROOT, capture_output=True, text=True, timeout=1200
    )
    if proc.returncode != 0:
        pytest.fail(f"scripts/clients.sh failed: {proc.stderr[-3000:]}", pytrace=False)
    return ROOT / ".venv-clients" / "bin" / "python"


def drive(python: Path, base: str, model: str, x: np.ndarray, tmp: Path, *, accept_binary: bool) -> dict:
    np.save(tmp / "x.npy", x)
    out = tmp / "results.json"
    args = [str(python), str(DRIVER), base, model, str(tmp / "x.npy"), str(out)]
    proc = subprocess.run(
        [*args, *(["--accept-binary"] if accept_binary else [])], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-3000:]
    results: dict[str, Any] = json.loads(out.read_text())
    failed = {k: v["error"] + "\n" + v.get("trace", "") for k, v in results.items() if not v["ok"]}
    assert not failed, failed
    assert set(results) == SCENARIOS
    return results


def check_agreement(results: dict, expected: np.ndarray) -> None:
    """Every client and mode got the same probabilities as the JSON request (float32 exact: the binary
    path carries the same bits the JSON path prints with orjson's shortest round-trip repr)."""
    for name in sorted(INFER):
        got = np.asarray(results[name]["outputs"], np.float32)
        np.testing.assert_array_equal(got, expected, err_msg=name)
    # the default tritonclient request really went binary both ways
    for name in ("triton_defaults", "triton_named_output_defaults"):
        (out,) = results[name]["response"]["outputs"]
        assert out["parameters"] == {"binary_data_size": expected.size * 4} and "data" not in out
    (json_out,) = results["triton_json"]["response"]["outputs"]
    assert "data" in json_out and "parameters" not in json_out
    health = results["triton_health"]
    assert health["live"] and health["ready"] and health["model_ready"]
    assert "binary_tensor_data" in health["extensions"]
    assert results["kserve_v2_readiness"] == {
        "ok": True,
        "server_ready": True,
        "server_live": True,
        "model_ready": True,
    }


# --- through the local stack ------------------------------------------------------------------------------
@pytest.fixture
def model(
    local_stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch, reference_export: Path
) -> Iterator[str]:
    from maas_models import Registry

    point_at_stack(local_stack, monkeypatch)
    registry = Registry(bucket=local_stack["buckets"]["models"])
    name = f"it-clients-{uuid.uuid4().hex[:8]}"
    registry.publish(reference_export, name, source="recorded")
    yield name
    delete_prefix(registry.s3, registry.bucket, f"models/{name}/")


def json_infer(api: str, model: str, x: np.ndarray) -> np.ndarray:
    """The README's plain JSON /infer recipe (what the clients' answers must equal)."""
    body = {
        "inputs": [
            {"name": "features", "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}
        ]
    }
    status, _, raw = api_request(
        f"{api}/v2/models/{model}/infer", orjson.dumps(body), "POST", {"Content-Type": "application/json"}
    )
    assert status == 200, raw[:500]
    (out,) = orjson.loads(raw)["outputs"]
    return np.asarray(out["data"], np.float32).reshape(out["shape"])


def test_clients_through_the_local_stack(
    local_stack: dict[str, Any], model: str, clients_python: Path, tmp_path: Path
) -> None:
    api = local_stack["api_url"]
    x = np.random.default_rng(16).normal(size=(3, 100)).astype(np.float32)
    expected = json_infer(api, model, x)
    check_agreement(drive(clients_python, api, model, x, tmp_path, accept_binary=True), expected)


def test_localstack_wildcard_accept_gap(local_stack: dict[str, Any], model: str) -> None:
    """With Accept */* (httpx's default; tritonclient sends none) LocalStack hands back the function's
    base64 text instead of the bytes. When this fails, LocalStack matches `*/*`: drop --accept-binary."""
    x = np.full((1, 100), 0.5, "<f4")
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": [1, 100],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 400},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    api = local_stack["api_url"]
    hdrs = {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}
    answers = {}
    for accept in ("*/*", "application/octet-stream"):
        status, headers, raw = api_request(
            f"{api}/v2/models/{model}/infer", header + x.tobytes(), "POST", {**hdrs, "Accept": accept}
        )
        assert status == 200, raw[:300]
        answers[accept] = (int(headers["inference-header-content-length"]), raw)
    length, exact = answers["application/octet-stream"]
    assert orjson.loads(exact[:length])["outputs"][0]["parameters"] == {"binary_data_size": 40}
    import base64

    assert answers["*/*"][1] == base64.b64encode(exact), "LocalStack now decodes for Accept */*"


def test_readme_binary_curl_recipe(local_stack: dict[str, Any], model: str, tmp_path: Path) -> None:
    """The README's `binary-recipe` block, run as written (bash + curl) with the model name swapped in."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(# binary-recipe.*?)```", readme, re.S)
    assert block, "README.md lost its binary-recipe block"
    script = block.group(1).replace("/models/ref/", f"/models/{model}/")
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"API": local_stack["api_url"], "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    header_line, values_line = proc.stdout.strip().splitlines()[-2:]
    assert orjson.loads(header_line)["outputs"][0]["parameters"] == {"binary_data_size": 40}
    got = np.asarray(ast.literal_eval(values_line), np.float32)
    np.testing.assert_allclose(
        got, json_infer(local_stack["api_url"], model, np.full((1, 100), 0.5, "f4"))[0], rtol=1e-6
    )


# --- exact API Gateway events, pure client defaults -----------------------------------------------------
def test_clients_with_defaults_through_api_gateway_events(
    predict_app: Any, clients_python: Path, tmp_path: Path
) -> None:
    x = np.random.default_rng(61).normal(size=(4, 100)).astype(np.float32)
    types = apigw.template_binary_media_types()
    assert "*/*" in types
    rest = apigw.Client(predict_app.handler, kind="rest", binary_media_types=types)
    r = rest.post(
        "/v2/models/ref/infer",
        json={
            "inputs": [
                {"name": "features", "shape": [4, 100], "datatype": "FP32", "data": x.ravel().tolist()}
            ]
        },
    )
    assert r.status == 200 and r.raw["isBase64Encoded"] is False, r.body
    expected = np.asarray(r.json["outputs"][0]["data"], np.float32).reshape(4, 10)
    with apigw.serve_http(predict_app.handler, "rest", types) as base:
        check_agreement(drive(clients_python, base, "ref", x, tmp_path, accept_binary=False), expected)
