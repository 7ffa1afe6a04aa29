"""The predict path stays lean: no TensorFlow/Keras import, models preloaded at init when asked,
payloads never logged, EMF metrics emitted. Checked in fresh subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import io, json, os, sys, time, contextlib
from tests.apigw import Client
from tests.handlers import load_handler

buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    t0 = time.perf_counter()
    app = load_handler("predict")
    from maas.serving.routes.common import STATE
    loaded_at_init = [str(r) for r in STATE.service.loader.loaded()] if STATE.service._loader else []
    r = Client(app.handler).post("/v1/models/ref:predict", json={"instances": [[0.25] * 100]})
    first = time.perf_counter() - t0
    bad = Client(app.handler).post("/v1/models/ref:predict", json={"instances": [[0.123456] * 99]})
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras", "pydantic"))
print(json.dumps({"status": r.status, "bad": bad.status, "heavy": heavy, "loaded_at_init": loaded_at_init,
                  "first_s": first, "stdout": buf.getvalue()}))
"""


def run(env_extra: dict[str, str]) -> dict:
    env = {**os.environ, **env_extra}  # cwd=ROOT: `tests` and the project import as in pytest
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_no_tensorflow_keras_or_pydantic_on_the_predict_path(published_ref, tmp_path):
    result = run({"MAAS_CACHE_DIR": str(tmp_path)})
    assert result["status"] == 200 and result["bad"] == 400
    assert result["heavy"] == []
    assert result["loaded_at_init"] == []  # no MAAS_PRELOAD: loaded on the first request


def test_preload_loads_during_init(published_ref, tmp_path):
    result = run({"MAAS_CACHE_DIR": str(tmp_path), "MAAS_PRELOAD": "ref"})
    assert result["loaded_at_init"] == ["ref:1"]
    assert result["status"] == 200


def test_logs_never_carry_payloads_and_metrics_are_emf(published_ref, tmp_path):
    result = run({"MAAS_CACHE_DIR": str(tmp_path), "POWERTOOLS_LOG_LEVEL": "DEBUG"})
    stdout = result["stdout"]
    assert "0.25" not in stdout and "0.123456" not in stdout  # request values never logged
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    emf = [r for r in records if "_aws" in r]
    served = [r for r in emf if "Latency" in r]
    assert served, stdout
    metric = served[0]
    names = {m["Name"] for m in metric["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert {"Latency", "Rows"} <= names
    assert metric["model"] == "ref" and metric["version"] == "1" and metric["Rows"] in (1, [1.0])
    assert any("ColdStart" in r for r in emf)
    assert any(r.get("message") == "client error" and r.get("status") == 400 for r in records)


LAZY_RESOLVERS = r"""
import contextlib, io, json
from tests.apigw import Client
from tests.handlers import load_handler

with contextlib.redirect_stdout(io.StringIO()):
    app = load_handler("predict")
    from maas.serving import http
    steps = {"import": http.resolver.cache_info()._asdict()}
    body = {"instances": [[0.25] * 100]}
    rest = Client(app.handler, "rest").post("/v1/models/ref:predict", json=body)
    steps["rest"] = http.resolver.cache_info()._asdict()
    http.resolver(http.REST)  # the one already built: a cache hit, not a build
    steps["rest_again"] = http.resolver.cache_info()._asdict()
    api = Client(app.handler, "http").post("/v1/models/ref:predict", json=body)
    steps["http"] = http.resolver.cache_info()._asdict()
print(json.dumps({"steps": steps, "answers": [[r.status, r.json] for r in (rest, api)]}))
"""


def test_resolvers_are_built_on_first_use_one_per_event_shape(published_ref, tmp_path):
    """Importing the handler builds no resolver; a REST event builds the REST one only, an HTTP API
    event then its own; both answer the same. Fails if the resolvers are built eagerly again."""
    out = subprocess.run(
        [sys.executable, "-c", LAZY_RESOLVERS],
        cwd=ROOT,
        env={**os.environ, "MAAS_CACHE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    steps = result["steps"]
    assert steps["import"]["currsize"] == 0
    assert (steps["rest"]["currsize"], steps["rest"]["misses"]) == (1, 1)
    assert (steps["rest_again"]["misses"], steps["rest_again"]["hits"]) == (1, steps["rest"]["hits"] + 1)
    assert (steps["http"]["currsize"], steps["http"]["misses"]) == (2, 2)
    (rest_status, rest_body), (http_status, http_body) = result["answers"]
    assert rest_status == http_status == 200
    assert rest_body == http_body and len(rest_body["predictions"][0]) == 10
