"""Schemathesis against the OpenAPI document the predict API serves, through the local stack's REST URL.

For every operation of `GET <api>/openapi.json`, Schemathesis generates requests that follow the
schema (positive) and, where the schema leaves room, requests that break it (negative); every answer
must be below 500, and every 4xx a JSON object with an "error". The document's `servers` entry is
relative ("/"), so the REST API URL is passed as the base URL.

Examples per operation and mode: MAAS_SCHEMATHESIS_EXAMPLES (default 4; ~2 requests/s on the local
stack's Lambda executor, so keep CI small and raise it for a full run).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from tests.integration.test_load_local import ensure_reference_model

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("MAAS_SCHEMATHESIS_EXAMPLES", "4"))


@pytest.fixture(scope="module")
def api_url(local_stack: dict[str, Any]) -> str:
    return ensure_reference_model(local_stack)


def _runner(op: Any, mode: Any, api_url: str, problems: list[str], calls: dict[str, int]) -> Any:
    """A Hypothesis test of one operation in one generation mode."""

    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        calls["n"] += 1
        response = case.call(base_url=api_url, timeout=30)
        where = f"{mode.value} {case.method} {case.formatted_path} -> {response.status_code}"
        if response.status_code >= 500:
            problems.append(f"{where}: {response.content[:300]!r}")
        elif response.status_code >= 400:
            try:
                doc = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                doc = None
            if not (isinstance(doc, dict) and isinstance(doc.get("error"), str)):
                problems.append(f"{where}: 4xx without a JSON error: {response.content[:300]!r}")

    return run


def test_the_served_openapi_document_holds_under_schemathesis(api_url: str) -> None:
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json", timeout=60)
    problems: list[str] = []
    calls = {"n": 0}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, "the served document lists too few operations"
    for op in operations:
        modes = [GenerationMode.POSITIVE]
        if op.method.lower() == "post":
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            # Unsatisfiable: nothing in this operation's schema can be broken (a free-form path string)
            with contextlib.suppress(Unsatisfiable):
                _runner(op, mode, api_url, problems, calls)()
    print(f"schemathesis: {calls['n']} requests over {len(operations)} operations")
    assert calls["n"] >= len(operations)
    assert not problems, "\n".join(problems[:30])
