"""The embedded local AWS stack: LocalStack in host mode (no Docker) running template.yaml, with Lambda
functions executed as local `awslambdaric` processes by the maas executor plugin, each in the
image-equivalent environment its Dockerfile describes (`maas.local.envs`).

    up()      build/refresh the function environments, create the LocalStack venv if needed, start
              LocalStack, deploy the stack; idempotent
    status()  what runs where (the dict `maas local status --json` prints)
    down()    stop what up() started (LocalStack and handler processes) and remove the state
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from maas.local import process, stack
from maas.local.config import LocalConfig, LocalError
from maas.local.envs import Environments, write_mapping
from maas.local.venv import ensure_venv, locked

__all__ = ["LocalConfig", "LocalError", "down", "status", "up"]


def _say_stderr(message: str) -> None:
    print(f"maas local: {message}", file=sys.stderr, flush=True)


def status(cfg: LocalConfig | None = None) -> dict[str, Any]:
    cfg = cfg or LocalConfig.from_env()
    record = process.PidRecord.read(cfg.pid_file)
    alive = process.is_alive(cfg)
    healthy = alive and process.health(cfg) is not None
    result: dict[str, Any] = {
        "running": healthy,
        "endpoint": cfg.endpoint,
        "region": cfg.region,
        "stack": cfg.stack_name,
        "port": cfg.port,
        "pid": record.pid if record and alive else None,
        "state_dir": str(cfg.state_dir),
        "log_file": str(cfg.log_file),
        "handler_logs": str(cfg.state_dir / "logs"),
        "api_url": None,
        "buckets": {},
        "queues": {},
        "functions": {},
        "stack_status": None,
        "problem": None,
    }
    if record is not None and not alive:
        result["problem"] = (
            f"LocalStack (pid {record.pid}) started by `maas local up` is not running any more "
            "(died or was killed); run `maas local up` to restart it"
        )
    elif alive and not healthy:
        result["problem"] = (
            f"LocalStack (pid {record.pid if record else '?'}) runs but {cfg.endpoint} is not healthy"
        )
    elif record is None:
        result["problem"] = "not started; run `maas local up`"
    if healthy:
        try:
            facts = stack.describe(cfg)
        except Exception as exc:
            result["problem"] = f"cannot read stack {cfg.stack_name}: {exc}"
            facts = None
        if facts is None:
            result["problem"] = (
                result["problem"] or f"stack {cfg.stack_name} is not deployed; run `maas local up`"
            )
        else:
            result.update(facts)
            if facts["stack_status"] not in stack.DONE:
                result["problem"] = f"stack {cfg.stack_name} is {facts['stack_status']}"
    return result


def up(
    cfg: LocalConfig | None = None,
    *,
    existing: bool = False,
    parameters: dict[str, str] | None = None,
    say: Callable[[str], None] = _say_stderr,
) -> dict[str, Any]:
    """Make sure LocalStack runs and the stack is deployed; returns status(). Idempotent.

    existing=True deploys into a LocalStack that already listens on the port (started some other way) and
    starts nothing."""
    cfg = cfg or LocalConfig.from_env()
    # One `up`/`down` at a time per port: parallel test sessions share a stack instead of fighting over it.
    with locked(cfg.base_dir / f".lock-{cfg.port}"):
        return _up(cfg, existing=existing, parameters=parameters, say=say)


def _up(
    cfg: LocalConfig,
    *,
    existing: bool,
    parameters: dict[str, str] | None,
    say: Callable[[str], None],
) -> dict[str, Any]:
    started = time.monotonic()
    running = existing or (process.is_alive(cfg) and process.health(cfg) is not None)
    if existing:
        if process.health(cfg) is None:
            raise LocalError(f"no LocalStack answers at {cfg.endpoint}{process.HEALTH_PATH}; start it first")
    elif running:
        say(f"LocalStack already running at {cfg.endpoint}")
    else:
        if process.PidRecord.read(cfg.pid_file) is not None:
            say("LocalStack from a previous `up` is gone; cleaning up and starting again")
        process.stop(cfg)  # leftovers of a dead run (handler processes, state) - ours only
        process.check_port(cfg)  # before anything is created
    venv_python = None if running else ensure_venv(cfg, say)
    # Every function's environment before anything starts or deploys: one that fails to build stops here
    # (the error names the function and carries pip's message); nothing is half-deployed.
    envs = Environments(cfg.project_root, cfg.envs_dir, say).ensure_all()
    write_mapping(cfg.envs_file, envs)
    if venv_python is not None:
        say(f"starting LocalStack on {cfg.endpoint} (state in {cfg.state_dir})")
        process.start(cfg, venv_python)
    # A failed deploy leaves LocalStack running so the stack events can be inspected; `down` cleans up.
    _, action = stack.deploy(cfg, parameters)
    say(f"stack {cfg.stack_name}: {action} ({time.monotonic() - started:.1f} s)")
    return status(cfg)


def down(cfg: LocalConfig | None = None) -> bool:
    """Stop what `up` started and remove the state. Returns True if something was stopped."""
    cfg = cfg or LocalConfig.from_env()
    with locked(cfg.base_dir / f".lock-{cfg.port}"):
        return process.stop(cfg)
