"""What `maas local invoke` gives a function, from the real template.yaml: its name, Timeout, MemorySize and
environment variables resolved as CloudFormation resolves them for the local stack; SAM's --env-vars format;
--since for `maas local logs`."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from maas.local.config import LocalError
from maas.local.functions import Resolver, env_var_overrides, find, functions, load_template, parameters
from maas.local.invoke import read_event, since_ms
from maas.local.stack import LOCAL_PARAMETERS

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")


def _resolver(resources: dict[str, str] | None = None) -> Resolver:
    return Resolver(parameters(TEMPLATE, LOCAL_PARAMETERS), "maas-local", "us-east-1", (resources or {}).get)


def test_every_function_of_the_template_with_its_image_name_and_limits() -> None:
    defs = functions(TEMPLATE)
    assert {d.logical_id: d.name for d in defs.values()} == {
        "PredictFunction": "predict",
        "BatchScoreFunction": "batch_score",
        "QueueScoreFunction": "queue_score",
        "TrainLauncherFunction": "train_launcher",
        "RolloutGuardFunction": "rollout_guard",
        "AuthorizerFunction": "authorizer",
    }
    for d in defs.values():
        assert (ROOT / "functions" / d.name / "Dockerfile").is_file()
    assert defs["PredictFunction"].timeout_s == 30 and defs["PredictFunction"].memory_mb == 1024
    assert defs["BatchScoreFunction"].timeout_s == 900


def test_find_takes_logical_ids_and_short_names_and_lists_the_valid_ones() -> None:
    assert find(TEMPLATE, "PredictFunction").name == "predict"
    assert find(TEMPLATE, "batch-score").logical_id == "BatchScoreFunction"
    with pytest.raises(LocalError) as info:
        find(TEMPLATE, "Predict")
    assert "PredictFunction (predict)" in str(info.value) and "QueueScoreFunction" in str(info.value)


def test_environment_is_globals_plus_own_with_local_names() -> None:
    warnings: list[str] = []
    env = _resolver().environment(find(TEMPLATE, "predict"), warnings.append)
    assert env["MAAS_MODELS_BUCKET"] == "maas-local-models-000000000000-us-east-1"  # Globals, !Sub
    assert env["MAAS_AUDIT_BUCKET"] == "maas-local-audit-000000000000-us-east-1"  # its own
    assert env["MAAS_STAGE"] == "dev" and env["OPENBLAS_NUM_THREADS"] == "1"  # a local parameter, a literal
    assert env["MAAS_CACHE_DIR"] == "/tmp/maas-models" and env["MAAS_PRELOAD"] == ""
    assert warnings == []


def test_resource_refs_need_the_deployed_stack() -> None:
    batch = find(TEMPLATE, "BatchScoreFunction")
    warnings: list[str] = []
    env = _resolver().environment(batch, warnings.append)
    assert "MAAS_CHUNK_QUEUE_URL" not in env and any("MAAS_CHUNK_QUEUE_URL" in w for w in warnings)
    assert env["MAAS_FANOUT_THRESHOLD_MB"] == LOCAL_PARAMETERS["FanoutThresholdMB"]
    url = "http://sqs.us-east-1.127.0.0.1:4566/000000000000/maas-local-chunks"
    assert _resolver({"ChunksQueue": url}).environment(batch, warnings.append)["MAAS_CHUNK_QUEUE_URL"] == url


def test_env_vars_file_in_sams_format() -> None:
    fn = find(TEMPLATE, "PredictFunction")
    warnings: list[str] = []
    doc = {
        "Parameters": {"MAAS_STAGE": "x", "UNRELATED": "y"},
        "PredictFunction": {"MAAS_MAX_ROWS": 5, "NEW": 1},
    }
    assert env_var_overrides(doc, fn, warnings.append) == {"MAAS_STAGE": "x", "MAAS_MAX_ROWS": "5"}
    assert warnings and "NEW" in warnings[0]
    with pytest.raises(LocalError):
        env_var_overrides(["not", "an", "object"], fn, warnings.append)
    with pytest.raises(LocalError):
        env_var_overrides({"PredictFunction": "x"}, fn, warnings.append)


def test_read_event_from_file_or_stdin(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text('{"a": 1}')
    assert read_event(str(path), io.StringIO()) == {"a": 1}
    assert read_event("-", io.StringIO('{"b": 2}')) == {"b": 2} == read_event(None, io.StringIO('{"b": 2}'))
    with pytest.raises(LocalError, match="not JSON"):
        read_event(None, io.StringIO("{nope"))
    with pytest.raises(LocalError, match="cannot read"):
        read_event(str(tmp_path / "missing.json"), io.StringIO())


def test_since() -> None:
    assert since_ms("10m", now=1000.0) == (1000 - 600) * 1000
    assert since_ms("2h", now=10_000.0) == (10_000 - 7200) * 1000
    assert since_ms("2026-01-01T00:00:00") == 1767225600000
    with pytest.raises(LocalError, match="--since"):
        since_ms("yesterday")
