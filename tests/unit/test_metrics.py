"""One metrics emitter (maas_models.metrics): every metric's namespace and dimension names.

CloudWatch treats `Model` and `model` as different dimensions, so a metric emitted under the wrong
case silently lands in a different series. Every writer is run here and its documents checked; every
`metrics.emit(...)` call site is checked by reading the source; no other module writes EMF by hand.
"""

from __future__ import annotations

import ast
import io
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from maas_models import metrics

from tests.apigw import Client, predict_app
from tests.source import tracked

__all__ = ["predict_app"]  # the fixture

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared/maas", "layers/maas_models", "functions", "jobs")


def check(doc: dict[str, Any]) -> None:
    """Namespace "maas", lower snake-case dimension and property names, every dimension present."""
    (directive,) = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "maas", directive
    names = {m["Name"] for m in directive["Metrics"]}
    for dims in directive["Dimensions"]:
        for dim in dims:
            assert metrics.DIMENSION_NAME.fullmatch(dim), f"dimension {dim!r} breaks the naming scheme"
            assert isinstance(doc[dim], str), (dim, doc)
    for key in doc:
        if key != "_aws" and key not in names:
            assert metrics.DIMENSION_NAME.fullmatch(key), f"property {key!r} breaks the naming scheme"
    for name in names:
        value = doc[name]  # Powertools writes a list of values, the lean writer one value
        assert name[0].isupper() and all(
            isinstance(v, int | float) for v in (value if isinstance(value, list) else [value])
        ), (name, doc)


def lines(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def test_emit_and_fixed_metrics_follow_the_scheme(capsys: pytest.CaptureFixture[str]) -> None:
    records: list[dict[str, Any]] = []
    previous = metrics.set_sink(records.append)
    try:
        metrics.emit("ModelFallback", model="ref", alias="production", error="ModelCorrupt")
        metrics.emit("ModelLoadTime", 12.5, metrics.MILLISECONDS, model="ref", runtime="litert")
    finally:
        metrics.set_sink(previous)
    for doc in records:
        check(doc)
    assert records[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["model", "runtime"]]
    fixed = metrics.FixedMetrics({"Latency": metrics.MILLISECONDS, "Rows": metrics.COUNT}, {"model": "m"})
    doc = orjson.loads(fixed.line(1.5, 3))
    check(doc)
    assert (doc["Latency"], doc["Rows"], doc["model"]) == (1.5, 3, "m")
    slow = metrics.document({"Latency": 1.5, "Rows": 3}, {"Latency": "Milliseconds"}, {"model": "m"})
    assert doc == {**slow, "_aws": {**slow["_aws"], "Timestamp": doc["_aws"]["Timestamp"]}}


def test_prediction_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    from maas.serving.emf import emit_prediction

    capsys.readouterr()
    emit_prediction("ref", 3, 2, 0.75)
    (doc,) = lines(capsys.readouterr().out)
    check(doc)
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["model", "service", "version"]]
    assert (doc["model"], doc["version"], doc["Rows"], doc["Latency"]) == ("ref", "3", 2, 0.75)


def test_audit_write_failed_metric() -> None:
    from maas.rai.audit import AuditTrail

    class Refusing:
        def put_object(self, **_: Any) -> None:
            raise OSError("no")

    log = io.StringIO()
    trail = AuditTrail(bucket="b", s3=Refusing(), log_stream=log)
    trail.record("predict", event={}, rows=1, status=200)
    assert trail.flush() is None
    (doc,) = lines(log.getvalue())
    check(doc)
    assert doc["stage"] == "flush" and doc["AuditWriteFailed"] == 1


def test_drift_metrics() -> None:
    from maas.rai.drift import emit_drift_metrics, fingerprint

    names = ["a", "b"]
    rng = np.random.default_rng(0)
    manifest = {
        "inputs": [{"feature_names": names}],
        "fingerprint": fingerprint(rng.normal(size=(500, 2)), names),
    }
    from maas.rai.drift import drift_report

    buf = io.StringIO()
    emit_drift_metrics(drift_report(manifest, rng.normal(size=(300, 2)) + 1), model="ref", version=2,
                       source="online", per_feature=True, stream=buf)  # fmt: skip
    (doc,) = lines(buf.getvalue())
    check(doc)
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["model", "source"]]
    assert {"DriftMaxPSI", "PSI_a", "PSI_b"} <= {
        m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    }


def test_predict_counts_its_cold_start_and_errors_through_the_one_emitter(predict_app: Any) -> None:
    from maas.serving import observability

    records: list[dict[str, Any]] = []
    previous = metrics.set_sink(records.append)
    observability._ColdStart.pending = True  # as in a fresh execution environment
    try:
        client = Client(predict_app.handler)
        assert client.post("/v1/models/ref:predict", json={"instances": [[0.0]]}).status == 400
        assert client.get("/v1/models/ref").status == 200
    finally:
        metrics.set_sink(previous)
    for doc in records:
        check(doc)
    counted = [name for doc in records for name in doc if name[0].isupper()]
    assert counted.count("ColdStart") == 1 and counted.count("ClientErrors") == 1, counted
    cold = next(doc for doc in records if "ColdStart" in doc)
    assert sorted(cold["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) == ["function_name", "service"]


def test_every_emit_call_site_names_its_dimensions_by_the_scheme() -> None:
    calls = 0
    for path in tracked(*PACKAGES):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "emit"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "metrics"
            ):
                calls += 1
                for kw in node.keywords:
                    assert kw.arg and metrics.DIMENSION_NAME.fullmatch(kw.arg), (
                        f"{path}:{node.lineno} {kw.arg}"
                    )
    assert calls >= 4  # the loader's ModelFallback, ModelCorrupt (x2) and ModelLoadTime


def test_no_other_module_writes_emf_by_hand() -> None:
    writers = [
        p.relative_to(ROOT).as_posix() for p in tracked(*PACKAGES) if "CloudWatchMetrics" in p.read_text()
    ]
    assert writers == ["layers/maas_models/metrics.py"], writers


def test_settings_are_read_once_and_honour_powertools_variables(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from maas_models.settings import MetricsSettings

    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "other")
    assert metrics.namespace() == "maas"  # read at import, not per metric
    previous = metrics.configure(MetricsSettings(namespace="maas", disabled=True))
    try:
        capsys.readouterr()
        metrics.emit("ModelFallback", model="ref")
        metrics.FixedMetrics({"Rows": metrics.COUNT}, {"model": "ref"}).write(1)
        assert capsys.readouterr().out == ""  # POWERTOOLS_METRICS_DISABLED: nothing written
        metrics.configure()  # from the environment again
        assert metrics.namespace() == "other"
    finally:
        metrics.configure(previous)
