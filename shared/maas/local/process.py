"""Start and stop LocalStack in host mode, tracked by a PID file; stop only what we started."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maas.local.config import EXECUTOR_NAME, LocalConfig, LocalError

HEALTH_PATH = "/_localstack/health"
STARTUP_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class PidRecord:
    pid: int
    create_time: float
    port: int
    started_at: float

    @classmethod
    def read(cls, path: Path) -> PidRecord | None:
        try:
            raw = json.loads(path.read_text())
            return cls(int(raw["pid"]), float(raw["create_time"]), int(raw["port"]), float(raw["started_at"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__) + "\n")


def _process(pid: int, create_time: float) -> Any:
    """The psutil.Process for pid if it is still the process we started (same create time), else None."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


def _group_members(pgid: int) -> list[Any]:
    """Processes still in the session/process group we created (LocalStack and its handler processes)."""
    import psutil

    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def is_alive(cfg: LocalConfig) -> bool:
    record = PidRecord.read(cfg.pid_file)
    return record is not None and _process(record.pid, record.create_time) is not None


def health(cfg: LocalConfig, timeout: float = 2.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{cfg.endpoint}{HEALTH_PATH}", timeout=timeout) as response:  # noqa: S310 - our own http endpoint  # nosec B310
            data: dict[str, Any] = json.loads(response.read())
            return data
    except (OSError, ValueError, urllib.error.URLError):
        return None


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as servers use it: sockets of a just-stopped stack in TIME_WAIT do not count
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def _port_owner(port: int) -> str:
    try:
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                proc = psutil.Process(conn.pid)
                return f" by pid {conn.pid} ({' '.join(proc.cmdline())[:120]})"
    except Exception:  # noqa: S110 - best effort only
        pass
    return ""


def localstack_env(cfg: LocalConfig) -> dict[str, str]:
    state = cfg.state_dir
    listen = f"127.0.0.1:{cfg.port}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        # host mode, loopback only (hypercorn honours the host part; the default server binds 0.0.0.0)
        "GATEWAY_SERVER": "hypercorn",
        "GATEWAY_LISTEN": listen,
        "LOCALSTACK_HOST": listen,
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DISABLE_EVENTS": "1",
        "DNS_ADDRESS": "0",  # no DNS server (it would want port 53 and clash between stacks)
        # the sandbox has /.dockerenv; without this LocalStack writes into system folders
        "OVERRIDE_IN_DOCKER": "0",
        "FILESYSTEM_ROOT": str(state / "filesystem"),
        "HOME": str(state / "home"),
        "TMPDIR": str(state / "tmp"),  # S3 data goes to <tempdir>/localstack: keep stacks apart
        # Lambda: our executor runs each handler as a local process in its image-equivalent environment
        # (no Docker); `maas local up` writes the function -> environment file before deploying
        "LAMBDA_RUNTIME_EXECUTOR": EXECUTOR_NAME,
        "LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT": "180",
        "MAAS_LOCAL_ENVS": str(cfg.envs_file),
        "MAAS_LOCAL_STATE_DIR": str(state),
    }
    return env


def check_port(cfg: LocalConfig) -> None:
    if port_in_use(cfg.port):
        raise LocalError(
            f"port {cfg.port} on 127.0.0.1 is already in use{_port_owner(cfg.port)}, and it is not a "
            "LocalStack "
            "started by `maas local up` from this folder. Fix: stop that process, or use another port, e.g. "
            f"`MAAS_LOCAL_PORT={cfg.port + 1} maas local up`."
        )


def start(cfg: LocalConfig, venv_python: Path) -> PidRecord:
    """Start LocalStack and wait until healthy. On any failure, stop what was started and remove state."""
    check_port(cfg)
    state = cfg.state_dir
    for sub in ("filesystem", "home", "tmp", "logs"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    import psutil

    log = cfg.log_file.open("ab")
    try:
        proc = subprocess.Popen(
            [str(venv_python), "-m", "localstack.runtime.main"],
            cwd=str(state),
            env=localstack_env(cfg),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: `down` stops it and its handler processes together
        )
    finally:
        log.close()
    record = PidRecord(proc.pid, psutil.Process(proc.pid).create_time(), cfg.port, time.time())
    record.write(cfg.pid_file)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while True:
            if proc.poll() is not None:
                raise LocalError(
                    f"LocalStack exited with status {proc.returncode} while starting; log {cfg.log_file}:\n"
                    + tail(cfg.log_file)
                )
            if health(cfg, timeout=1.0) is not None:
                return record
            if time.monotonic() > deadline:
                raise LocalError(
                    f"LocalStack did not become healthy within {STARTUP_TIMEOUT_S:.0f} s; log:\n"
                    + tail(cfg.log_file)
                )
            time.sleep(0.2)
    except BaseException as exc:
        keep = cfg.base_dir / f"failed-{cfg.port}.log"
        with contextlib.suppress(OSError):
            shutil.copyfile(cfg.log_file, keep)
        stop(cfg)
        if isinstance(exc, LocalError):
            raise LocalError(f"{exc}\n(the LocalStack log was kept in {keep})") from None
        raise


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _terminate(members: list[Any], grace: float, port: int | None = None) -> None:
    """SIGTERM all, wait up to `grace` s, SIGKILL the rest. LocalStack closes its port at the end of its
    shutdown and then may linger for seconds joining worker threads; once the port is closed, give it 1 s."""
    import psutil

    for proc in members:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = list(members)
    done_at: float | None = None
    while alive and time.monotonic() < deadline:
        _, alive = psutil.wait_procs(alive, timeout=0.2)
        if done_at is None and port is not None and not _listening(port):
            done_at = time.monotonic()
        if done_at is not None and time.monotonic() - done_at > 1.0:
            break
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)


def stop(cfg: LocalConfig) -> bool:
    """Stop the LocalStack started from this state folder (and the handler processes it spawned), then remove
    the state. Returns True if a process was stopped. Never touches processes it did not start."""
    record = PidRecord.read(cfg.pid_file)
    stopped = False
    if record is not None:
        main = _process(record.pid, record.create_time)
        # Handler processes share the group (pgid = LocalStack's pid) and may outlive a crashed LocalStack;
        # only trust the group when the leader is ours or the group still holds processes from our state dir.
        members = _group_members(record.pid)
        ours = [p for p in members if main is not None or _belongs_to(p, cfg)]
        if main is not None and all(p.pid != main.pid for p in ours):
            ours.append(main)
        if ours:  # LocalStack and its handler processes together: SIGTERM, ~10 s grace, then SIGKILL
            _terminate(ours, STOP_GRACE_S, cfg.port)
            stopped = True
    shutil.rmtree(cfg.state_dir, ignore_errors=True)
    return stopped


def _belongs_to(proc: Any, cfg: LocalConfig) -> bool:
    import psutil

    try:
        env = proc.environ()
        cmd = " ".join(proc.cmdline())
    except psutil.Error:
        return False
    if "awslambdaric" in cmd or "localstack" in cmd:
        # LocalStack has MAAS_LOCAL_STATE_DIR; a handler's TMPDIR is <state dir>/lambda-tmp/<function>
        state = str(cfg.state_dir)
        return env.get("MAAS_LOCAL_STATE_DIR") == state or env.get("TMPDIR", "").startswith(state + "/")
    return False
