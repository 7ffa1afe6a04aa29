"""`maas local`: the failure paths that must leave nothing half-started, and status without a stack.

(Starting LocalStack itself is covered by tests/integration.)"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from maas.local import LocalConfig, LocalError, status, up
from maas.local.process import PidRecord
from maas.local.venv import find_python


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private state folder, venv path and port, so nothing here touches a real stack."""
    monkeypatch.setenv("MAAS_LOCAL_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MAAS_LOCAL_VENV", str(tmp_path / "venv"))
    monkeypatch.setenv("MAAS_LOCAL_PORT", str(_free_port()))
    yield tmp_path


def test_port_taken_by_something_else_is_a_clear_error_and_nothing_starts(isolated: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        os.environ["MAAS_LOCAL_PORT"] = str(port)
        with pytest.raises(LocalError) as info:
            up(say=lambda _: None)
    message = str(info.value)
    assert f"port {port}" in message and "already in use" in message and "MAAS_LOCAL_PORT=" in message
    assert not (isolated / "venv").exists()
    assert not (isolated / "state" / f"run-{port}").exists()


def test_missing_python_names_the_fix_and_creates_nothing(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAAS_LOCALSTACK_PYTHON", str(isolated / "no-such-python3.12"))
    with pytest.raises(LocalError) as info:
        find_python()
    assert "Python 3.12 or newer" in str(info.value) and "MAAS_LOCALSTACK_PYTHON" in str(info.value)
    with pytest.raises(LocalError):
        up(say=lambda _: None)
    assert not (isolated / "venv").exists()
    cfg = LocalConfig.from_env()
    assert not cfg.state_dir.exists()


def test_status_without_a_stack(isolated: Path) -> None:
    info = status()
    assert info["running"] is False
    assert "not started" in info["problem"]
    for key in ("endpoint", "region", "stack", "api_url", "buckets", "queues", "functions"):
        assert key in info


def test_status_reports_a_dead_localstack(isolated: Path) -> None:
    cfg = LocalConfig.from_env()
    cfg.state_dir.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    PidRecord(dead.pid, 0.0, cfg.port, 0.0).write(cfg.pid_file)
    info = status(cfg)
    assert info["running"] is False
    assert "not running any more" in info["problem"] and "maas local up" in info["problem"]


@pytest.mark.parametrize(
    "argv",
    [
        ["local", "--help"],
        ["local", "up", "--help"],
        ["local", "down", "--help"],
        ["local", "status", "--help"],
    ],
)
def test_help(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "maas", *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_status_json_cli_without_a_stack(isolated: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "maas", "local", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=os.environ.copy(),
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["running"] is False
