"""Integration fixtures: the embedded local AWS stack (`maas local up`).

`local_stack` (session): reuses a stack that already runs on MAAS_LOCAL_PORT (default 4566), or runs
`maas local up` once. A stack a test session started is stopped (`maas local down`) when the last session
using it ends (sessions hold leases in the state folder), unless MAAS_LOCAL_KEEP=1. A stack that was already
running (e.g. from `maas local up` by hand) is left running. Returns the `maas local status --json` dict:
endpoint, region, api_url, buckets, queues, functions. Tests point their own clients at it
(AWS_ENDPOINT_URL = local_stack["endpoint"], credentials test/test, region us-east-1).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

STARTED_BY_TESTS = "started-by-tests"


def _live_leases(folder: Path) -> list[Path]:
    live = []
    for lease in folder.glob("*"):
        try:
            os.kill(int(lease.name), 0)
            live.append(lease)
        except (ValueError, ProcessLookupError):
            lease.unlink(missing_ok=True)
        except PermissionError:
            live.append(lease)
    return live


@pytest.fixture(scope="session")
def local_stack() -> Iterator[dict[str, Any]]:
    from maas.local import LocalConfig, LocalError, down, status, up
    from maas.local.venv import locked

    cfg = LocalConfig.from_env()
    lock = cfg.base_dir / f".lock-tests-{cfg.port}"
    with locked(lock):
        info = status(cfg)
        if not info["running"] or info["problem"]:
            was_running = info["running"]
            try:
                info = up(cfg)
            except LocalError as exc:
                pytest.fail(f"`maas local up` failed: {exc}", pytrace=False)
            if not info["running"]:
                pytest.fail(f"`maas local up` left no running stack: {info.get('problem')}", pytrace=False)
            if not was_running:
                (cfg.state_dir / STARTED_BY_TESTS).touch()
        leases = cfg.state_dir / "test-leases"
        leases.mkdir(parents=True, exist_ok=True)
        (leases / str(os.getpid())).touch()
    try:
        yield info
    finally:
        with locked(lock):
            (leases / str(os.getpid())).unlink(missing_ok=True)
            last = not _live_leases(leases) if leases.exists() else True
            if (
                last
                and (cfg.state_dir / STARTED_BY_TESTS).exists()
                and os.environ.get("MAAS_LOCAL_KEEP") != "1"
            ):
                down(cfg)


@pytest.fixture(scope="module")
def module_monkeypatch() -> Iterator[pytest.MonkeyPatch]:
    """A MonkeyPatch undone when the module's tests end (for module-scoped stack fixtures)."""
    with pytest.MonkeyPatch.context() as mp:
        yield mp
