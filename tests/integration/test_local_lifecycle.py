"""`maas local` lifecycle on a private port and state folder: up, up again (no change), LocalStack killed ->
status says so -> up recovers, down leaves no process behind. Independent of the session's `local_stack`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _maas(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "maas", "local", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def _ours(state: Path) -> list[psutil.Process]:
    """LocalStack / handler processes started for this state folder."""
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            env = proc.info["environ"] or {}
            cmd = " ".join(proc.info["cmdline"] or [])
        except psutil.Error:
            continue
        if "localstack.runtime.main" in cmd and env.get("MAAS_LOCAL_STATE_DIR", "").startswith(str(state)):
            found.append(proc)
            with contextlib.suppress(psutil.Error):
                found += proc.children(recursive=True)
    return found


def test_up_twice_kill_recover_down(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "MAAS_LOCAL_PORT": str(port),
        "MAAS_LOCAL_DIR": str(tmp_path / "local"),
        "MAAS_LOCAL_STACK": "maas-lifecycle",
    }
    state = tmp_path / "local" / f"run-{port}"
    try:
        first = _maas(env, "up", "--json")
        assert first.returncode == 0, first.stderr
        info = json.loads(first.stdout)
        assert info["running"] and info["endpoint"] == f"http://127.0.0.1:{port}"

        second = _maas(env, "up", "--json")
        assert second.returncode == 0, second.stderr
        assert "unchanged" in second.stderr or "updated" in second.stderr, second.stderr
        assert json.loads(second.stdout)["api_url"] == info["api_url"]

        pid = json.loads((state / "localstack.pid.json").read_text())["pid"]
        os.kill(pid, signal.SIGKILL)
        psutil.wait_procs([psutil.Process(pid)], timeout=10)
        dead = _maas(env, "status", "--json")
        assert dead.returncode == 1, dead.stdout + dead.stderr
        report = json.loads(dead.stdout)
        assert report["running"] is False and "not running any more" in report["problem"]

        again = _maas(env, "up", "--json")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["running"] is True, again.stdout
    finally:
        down = _maas(env, "down")
        assert down.returncode == 0, down.stderr
    left = _ours(state)
    assert not left, [(p.pid, p.cmdline()) for p in left]
    assert not state.exists()
