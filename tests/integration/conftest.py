"""Integration fixtures: the embedded local AWS stack (`maas local up`).

`local_stack` (session): reuses a stack that already runs on MAAS_LOCAL_PORT (default 4566), or runs
`maas local up` once; in the latter case it runs `maas local down` at the end of the session (set
MAAS_LOCAL_KEEP=1 to leave it running). Returns the `maas local status --json` dict: endpoint, region,
api_url,
buckets, queues, functions. Tests point their own clients at it (AWS_ENDPOINT_URL = local_stack["endpoint"],
credentials test/test, region us-east-1).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def local_stack() -> Iterator[dict[str, Any]]:
    from maas.local import LocalConfig, LocalError, down, status, up

    cfg = LocalConfig.from_env()
    before = status(cfg)
    if before["running"] and not before["problem"]:
        yield before
        return
    try:
        info = up(cfg)
    except LocalError as exc:
        pytest.fail(f"`maas local up` failed: {exc}", pytrace=False)
    started_here = not before["running"]
    try:
        yield info
    finally:
        if started_here and os.environ.get("MAAS_LOCAL_KEEP") != "1":
            down(cfg)
