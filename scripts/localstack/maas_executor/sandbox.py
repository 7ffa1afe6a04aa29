"""One Lambda execution environment as a local process: a Runtime API server plus `awslambdaric`.

Standard library only, and independent of LocalStack, so that it is unit-tested on its own
(`tests/unit/test_executor_sandbox.py`) and reused by `maas local invoke` (one invocation, no stack):

* `Sandbox` runs `<python> -m awslambdaric <handler>` against its own `RuntimeApi` (runtime_api.py)
  and does what Lambda does around each invocation: the deadline (Timeout; a timed-out or crashed
  sandbox is replaced by a fresh one before the next request), the START/END/REPORT records (duration,
  billed duration, memory size, max memory used, init duration on the first invocation) and the
  collection of the process's output per invocation.
* `OutputBuffer` keeps that output bounded: what the current invocation wrote (handed over once, with its
  logs) and a short tail for error messages, never the whole history of a long-lived environment.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import select
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from maas_executor.runtime_api import Invocation, RuntimeApi

# Real Lambda SIGKILLs the runtime at shutdown; a short SIGTERM grace lets Python handlers flush logs.
STOP_GRACE_SECONDS = 0.5
#: Output kept for one invocation's logs (Lambda truncates big log output too); older text is dropped.
MAX_PENDING_CHARS = 1 << 20
#: Output kept for error messages (init failures) and get_logs().
TAIL_CHARS = 16 << 10


LAMBDA_TMP = "/tmp"  # noqa: S108 - the Lambda path we rewrite, never used as a folder here  # nosec B108


def map_lambda_tmp(env: dict[str, str], tmp: Path) -> dict[str, str]:
    """Lambda's /tmp belongs to the execution environment: values that name /tmp (MAAS_CACHE_DIR=/tmp/...)
    point into `tmp` instead, a folder of this environment's own, and TMPDIR is set to it."""
    out = {}
    for key, value in env.items():
        if value == LAMBDA_TMP or value.startswith(LAMBDA_TMP + "/"):
            value = str(tmp) + value[len(LAMBDA_TMP) :]
        out[key] = value
    out["TMPDIR"] = str(tmp)
    return out


class SandboxError(RuntimeError):
    """The environment could not start or was stopped; the message says why (with the output's tail)."""


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------


class OutputBuffer:
    """Process output in two bounded views: `take()` hands over what was written since the last take
    (at most MAX_PENDING_CHARS, the newest kept), `tail()` the last TAIL_CHARS written overall."""

    def __init__(self, max_pending: int = MAX_PENDING_CHARS, tail_chars: int = TAIL_CHARS) -> None:
        self._max_pending = max_pending
        self._tail_chars = tail_chars
        self._pending: deque[str] = deque()
        self._pending_len = 0
        self._dropped = 0
        self._tail: deque[str] = deque()
        self._tail_len = 0
        self._lock = threading.Lock()

    @staticmethod
    def _trim(chunks: deque[str], length: int, limit: int) -> tuple[int, int]:
        """Drop the oldest text until at most `limit` chars remain; returns (new length, chars dropped)."""
        dropped = 0
        while length > limit and chunks:
            first = chunks[0]
            excess = length - limit
            if len(first) <= excess:
                chunks.popleft()
                length -= len(first)
                dropped += len(first)
            else:
                chunks[0] = first[excess:]
                length -= excess
                dropped += excess
        return length, dropped

    def append(self, text: str) -> None:
        if not text:
            return
        with self._lock:
            self._pending.append(text)
            self._pending_len, dropped = self._trim(
                self._pending, self._pending_len + len(text), self._max_pending
            )
            self._dropped += dropped
            self._tail.append(text)
            self._tail_len, _ = self._trim(self._tail, self._tail_len + len(text), self._tail_chars)

    def take(self) -> str:
        with self._lock:
            text = "".join(self._pending)
            if self._dropped:
                text = f"[maas-local: {self._dropped} earlier characters of output dropped]\n" + text
            self._pending.clear()
            self._pending_len = self._dropped = 0
        return text

    def tail(self) -> str:
        with self._lock:
            return "".join(self._tail)

    @property
    def pending_chars(self) -> int:
        return self._pending_len


# --------------------------------------------------------------------------------------------------
# The sandbox: one awslambdaric process and its lifecycle
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    request_id: str
    payload: bytes
    is_error: bool
    logs: str  # START ... END, REPORT: the invocation's records as Lambda writes them
    duration_ms: float
    max_memory_mb: int
    error_type: str | None = None  # Sandbox.Timedout, Runtime.ExitError, ... (None: the handler answered)


def _now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Sandbox:
    """`<python> -m awslambdaric <handler>` with cwd `task_root`, talking to its own RuntimeApi."""

    def __init__(
        self,
        name: str,
        python: str,
        handler: str,
        task_root: Path,
        env: dict[str, str],
        *,
        timeout_s: float,
        memory_mb: int,
        version: str = "$LATEST",
        log_file: Path | None = None,
        echo: TextIO | None = None,
    ) -> None:
        self.name = name
        self.handler = handler
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.version = version
        self._argv = [python, "-m", "awslambdaric", handler]
        self._cwd = task_root
        self._env = {**env, "_HANDLER": handler, "LAMBDA_TASK_ROOT": str(task_root), "PYTHONUNBUFFERED": "1"}
        self.output = OutputBuffer()
        self._api: RuntimeApi | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._read_lock = threading.Lock()
        self._stopped = threading.Event()
        self._spawned_at = 0.0
        self._init_ms: float | None = None
        self._log: TextIO | None = None
        self._echo = echo  # also write every record there as it comes (maas local invoke: stderr)
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = log_file.open("a", encoding="utf-8", buffering=1)

    # -- output ------------------------------------------------------------------------------------
    def record(self, text: str) -> None:
        """Append text to the environment's output (and the debug log file)."""
        if not text:
            return
        self.output.append(text)
        for stream, shown in ((self._log, text), (self._echo, text.replace("\r", "\n"))):
            # awslambdaric separates the lines of one log record (a traceback) with \r, which CloudWatch
            # keeps as one event; a terminal would print them over each other
            if stream is not None:
                with contextlib.suppress(ValueError, OSError):
                    stream.write(shown)
                    stream.flush()

    def _read_available(self, fd: int) -> bool:
        """Read what the pipe holds now (fd is non-blocking). Returns False at EOF."""
        with self._read_lock:
            while True:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    return True
                except OSError:
                    return False
                if not data:
                    return False
                self.record(data.decode("utf-8", errors="replace"))

    def _reader(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        while True:
            try:
                ready, _, _ = select.select([fd], [], [], 0.5)
            except (OSError, ValueError):
                return
            if ready and not self._read_available(fd):
                return

    def drain(self) -> None:
        """Collect output already written: handlers write unbuffered before posting their response."""
        proc = self._proc
        if proc is None or proc.stdout is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._read_available(proc.stdout.fileno())

    # -- lifecycle ---------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _spawn(self) -> None:
        api = RuntimeApi()
        api.start()
        self._api = api
        env = {**self._env, "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.port}"}
        self._spawned_at = time.perf_counter()
        self._init_ms = None
        proc = subprocess.Popen(
            self._argv,
            cwd=str(self._cwd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        self._proc = proc
        threading.Thread(target=self._reader, args=(proc,), name=f"maas-out-{proc.pid}", daemon=True).start()

    def _wait_ready(self) -> None:
        api, proc = self._api, self._proc
        assert api is not None and proc is not None
        while True:
            if api.ready.wait(0.02):
                self._init_ms = (time.perf_counter() - self._spawned_at) * 1000
                return
            if api.init_failed.is_set():
                self.drain()
                raise SandboxError(f"{self.name}: init error: {api.init_error.decode('utf-8', 'replace')}")
            if proc.poll() is not None:
                self.drain()
                raise SandboxError(
                    f"{self.name}: runtime exited ({proc.returncode}) during init:\n"
                    + self.output.tail()[-2000:]
                )
            if self._stopped.is_set():
                raise SandboxError(f"{self.name}: stopped during init")

    def start(self) -> None:
        """Spawn the runtime and wait until it asks for its first invocation (its init ran)."""
        self.record(
            f"INIT_START Runtime Version: maas-local:awslambdaric\tFunction: {self.name}\t"
            f"Handler: {self.handler}\tSource: {self._cwd}\n"
        )
        self._spawn()
        self._wait_ready()

    def _kill(self) -> None:
        proc, api = self._proc, self._api
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
        self.drain()
        if proc is not None and proc.stdout is not None:
            with contextlib.suppress(OSError):
                proc.stdout.close()
        if api is not None:
            api.stop()
        self._api = None

    def restart(self) -> None:
        """A fresh process (new code, or after a timeout or crash); its init runs before the next request."""
        self._kill()
        self._spawn()

    def stop(self) -> None:
        self._stopped.set()
        self._kill()
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    def _max_memory_mb(self) -> int:
        proc = self._proc
        if proc is None:
            return 0
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
        except OSError:
            pass
        return 0

    # -- invocation --------------------------------------------------------------------------------
    def invoke(self, request_id: str, payload: bytes, function_arn: str = "", trace_id: str = "") -> Result:
        api, proc = self._api, self._proc
        if api is None or proc is None:
            raise SandboxError(f"{self.name}: execution environment not started")
        started = time.perf_counter()
        deadline = time.time() + self.timeout_s
        invocation = Invocation(request_id, payload, function_arn, trace_id, int(deadline * 1000))
        # Output written since the last invocation (init logs above all) goes out with this one's logs,
        # before START, as it appears in a Lambda log stream.
        init_ms = self._init_ms
        self._init_ms = None  # report Init Duration on the first invocation only
        self.record(f"START RequestId: {request_id} Version: {self.version}\n")
        api.pending.put(invocation)

        failure: tuple[str, str] | None = None
        while not invocation.done.wait(0.02):
            if self._stopped.is_set():
                failure = ("Runtime.Stopped", "Execution environment stopped")
            elif time.time() >= deadline:
                failure = (
                    "Sandbox.Timedout",
                    f"{_now_stamp()} {request_id} Task timed out after {self.timeout_s:.2f} seconds",
                )
            elif proc.poll() is not None:
                failure = (
                    "Runtime.ExitError",
                    f"RequestId: {request_id} Error: Runtime exited with error: "
                    f"exit status {proc.returncode}",
                )
            if failure is not None:
                break

        duration_ms = (time.perf_counter() - started) * 1000
        max_mem = self._max_memory_mb()
        error_type: str | None = None
        if failure is not None:
            error_type, message = failure
            self.record(message + "\n")
            result_payload = json.dumps({"errorMessage": message, "errorType": error_type}).encode()
            is_error = True
        else:
            result_payload, is_error = invocation.result, invocation.is_error
        self.drain()
        self.record(f"END RequestId: {request_id}\n")
        init_part = f"\tInit Duration: {init_ms:.2f} ms" if init_ms is not None else ""
        self.record(
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {math.ceil(duration_ms)} ms\tMemory Size: {self.memory_mb} MB\t"
            f"Max Memory Used: {max_mem} MB{init_part}\t\n"
        )
        logs = self.output.take()
        if failure is not None and not self._stopped.is_set():
            # Like Lambda: the sandbox is reset after a timeout or crash; the next request gets a fresh one.
            self.restart()
        return Result(request_id, result_payload, is_error, logs, duration_ms, max_mem, error_type)
