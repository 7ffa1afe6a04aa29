"""Run Lambda execution environments as local processes under the AWS Lambda runtime interface client.

LocalStack calls `start(env_vars)` once per execution environment, then `invoke(payload)` for each request,
then `stop()`. For each environment we start:

* a Lambda Runtime API server (the 2018-06-01 protocol that `awslambdaric` speaks) on 127.0.0.1:<free port>,
  running as threads inside the LocalStack process, and
* the process `<project python> -m awslambdaric <handler>` with cwd = the function's source folder
  (`functions/<name>`, mapped from the repository name of the function's ImageUri), the function's
  environment variables, and AWS_ENDPOINT_URL pointing back at LocalStack.

Handler output (stdout and stderr, merged) is collected per invocation and returned to LocalStack, which
writes it to CloudWatch Logs exactly as for real Lambda (with START/END/REPORT records); everything is also
appended to `<state dir>/logs/<function name>.log` for debugging.

Configuration comes from the LocalStack process environment, set by `maas local up`:
MAAS_LOCAL_PYTHON (interpreter that runs handlers), MAAS_LOCAL_PROJECT_ROOT (folder holding functions/),
MAAS_LOCAL_STATE_DIR (where log files go).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import queue
import select
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from localstack import config
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.runtime_executor import LambdaRuntimeException, RuntimeExecutor

LOG = logging.getLogger(__name__)

ENV_PYTHON = "MAAS_LOCAL_PYTHON"
ENV_PROJECT_ROOT = "MAAS_LOCAL_PROJECT_ROOT"
ENV_STATE_DIR = "MAAS_LOCAL_STATE_DIR"
# A function may name its source folder explicitly (relative to the project root) instead of via its ImageUri.
ENV_FUNCTION_DIR = "MAAS_LOCAL_FUNCTION_DIR"

API_PREFIX = "/2018-06-01/runtime"
LAMBDA_TMP = "/tmp"  # noqa: S108 - the Lambda path we rewrite, never used as a folder here  # nosec B108
# Real Lambda SIGKILLs the runtime at shutdown; a short SIGTERM grace lets Python handlers flush logs.
STOP_GRACE_SECONDS = 0.5


# --------------------------------------------------------------------------------------------------
# Mapping a function version to local source
# --------------------------------------------------------------------------------------------------


def project_root() -> Path:
    root = os.environ.get(ENV_PROJECT_ROOT)
    if not root:
        raise LambdaRuntimeException(f"{ENV_PROJECT_ROOT} is not set; start LocalStack with `maas local up`")
    return Path(root)


def image_repository_name(image_uri: str) -> str:
    """`123.dkr.ecr.us-east-1.amazonaws.com/maas/batch_score:1.2` -> `batch_score`."""
    without_digest = image_uri.split("@", 1)[0]
    last = without_digest.rstrip("/").rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def function_dir(function_version: FunctionVersion) -> Path:
    cfg = function_version.config
    root = project_root()
    explicit = (cfg.environment or {}).get(ENV_FUNCTION_DIR)
    if explicit:
        candidates = [root / explicit]
    else:
        if cfg.image is None:
            raise LambdaRuntimeException(
                f"function {function_version.id.function_name}: only PackageType Image is supported by the "
                "maas-local executor"
            )
        name = image_repository_name(cfg.image.image_uri)
        candidates = [root / "functions" / name, root / "functions" / name.replace("-", "_")]
    for candidate in candidates:
        if (candidate / "app.py").is_file() or candidate.is_dir():
            return candidate
    raise LambdaRuntimeException(
        f"function {function_version.id.function_name}: no source folder for it (looked in "
        f"{', '.join(str(c) for c in candidates)})"
    )


def lambda_tmp(function_name: str) -> Path:
    state = os.environ.get(ENV_STATE_DIR)
    base = Path(state) / "lambda-tmp" if state else Path(tempfile.gettempdir()) / "maas-lambda-tmp"
    folder = base / function_name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def function_handler(function_version: FunctionVersion, env_vars: dict[str, str]) -> str:
    cfg = function_version.config
    if cfg.image_config and cfg.image_config.command:
        return str(cfg.image_config.command[0])
    return cfg.handler or env_vars.get("_HANDLER") or "app.handler"


# --------------------------------------------------------------------------------------------------
# Lambda Runtime API server
# --------------------------------------------------------------------------------------------------


@dataclass
class _Invocation:
    request_id: str
    payload: bytes
    function_arn: str
    trace_id: str
    deadline_ms: int
    done: threading.Event = field(default_factory=threading.Event)
    result: bytes = b""
    is_error: bool = False


class _RuntimeApi:
    """One Runtime API endpoint per execution environment, bound to loopback on a free port."""

    def __init__(self) -> None:
        self.pending: queue.Queue[_Invocation | None] = queue.Queue()
        self.current: _Invocation | None = None
        self.ready = threading.Event()
        self.init_failed = threading.Event()
        self.init_error: bytes = b""
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep LocalStack's log quiet
                pass

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if body:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the runtime process is gone (environment stopping)

            def do_GET(self) -> None:
                if self.path != f"{API_PREFIX}/invocation/next":
                    self._reply(HTTPStatus.NOT_FOUND, b'{"errorMessage":"not found"}')
                    return
                api.ready.set()
                invocation = api.pending.get()
                if invocation is None:  # environment stopping
                    self._reply(HTTPStatus.GONE, b'{"errorMessage":"execution environment stopped"}')
                    self.close_connection = True
                    return
                api.current = invocation
                self._reply(
                    HTTPStatus.OK,
                    invocation.payload,
                    {
                        "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                        "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": invocation.function_arn,
                        "Lambda-Runtime-Trace-Id": invocation.trace_id,
                    },
                )

            def do_POST(self) -> None:
                body = self._body()
                parts = self.path[len(API_PREFIX) :].strip("/").split("/")
                if parts == ["init", "error"]:
                    api.init_error = body
                    api.init_failed.set()
                    self._reply(HTTPStatus.ACCEPTED, b'{"status":"OK"}')
                    return
                if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    invocation = api.current
                    if invocation is None or invocation.request_id != parts[1]:
                        self._reply(HTTPStatus.BAD_REQUEST, b'{"errorMessage":"unknown request id"}')
                        return
                    invocation.result = body
                    invocation.is_error = parts[2] == "error"
                    api.current = None
                    invocation.done.set()
                    self._reply(HTTPStatus.ACCEPTED, b'{"status":"OK"}')
                    return
                self._reply(HTTPStatus.NOT_FOUND, b'{"errorMessage":"not found"}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever, name=f"maas-rapi-{self.port}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.pending.put(None)
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------------------------------
# The executor
# --------------------------------------------------------------------------------------------------


class LocalProcessRuntimeExecutor(RuntimeExecutor):
    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id, function_version)
        self._api: _RuntimeApi | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._env: dict[str, str] = {}
        self._cwd: Path | None = None
        self._argv: list[str] = []
        self._output: list[str] = []  # everything the process wrote, in chunks
        self._output_len = 0
        self._log_mark = 0  # index in _output where the next invocation's logs start
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._stopped = threading.Event()
        self._spawned_at = 0.0
        self._init_ms: float | None = None
        self._log_file: Any = None

    # -- helpers -----------------------------------------------------------------------------------

    @property
    def _function_name(self) -> str:
        return str(self.function_version.id.function_name)

    def _open_log_file(self) -> None:
        state = os.environ.get(ENV_STATE_DIR)
        if not state:
            return
        path = Path(state) / "logs" / f"{self._function_name}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = path.open("a", encoding="utf-8", buffering=1)

    def _record(self, text: str) -> None:
        """Append text to the environment's output (and the debug log file)."""
        if not text:
            return
        with self._lock:
            self._output.append(text)
            self._output_len += 1
        if self._log_file is not None:
            with contextlib.suppress(ValueError, OSError):
                self._log_file.write(text)

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
                self._record(data.decode("utf-8", errors="replace"))

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

    def _drain(self) -> None:
        """Collect output already written: handlers write unbuffered before posting their response."""
        proc = self._proc
        if proc is None or proc.stdout is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._read_available(proc.stdout.fileno())

    def _take_logs(self) -> str:
        self._drain()
        with self._lock:
            logs = "".join(self._output[self._log_mark :])
            self._log_mark = len(self._output)
        return logs

    def _spawn(self) -> None:
        api = _RuntimeApi()
        api.start()
        self._api = api
        env = dict(self._env)
        env["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{api.port}"
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
        LOG.debug("maas-local: started %s (pid %s) for %s", self._argv, proc.pid, self._function_name)

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
        self._drain()
        if proc is not None and proc.stdout is not None:
            with contextlib.suppress(OSError):
                proc.stdout.close()
        if api is not None:
            api.stop()
        self._api = None

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

    # -- RuntimeExecutor ---------------------------------------------------------------------------

    def start(self, env_vars: dict[str, str]) -> None:
        self._open_log_file()
        folder = function_dir(self.function_version)
        handler = function_handler(self.function_version, env_vars)
        region = str(self.function_version.id.region)
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "C.UTF-8",
        }
        if os.environ.get("HOME"):
            env["HOME"] = os.environ["HOME"]
        # Lambda's /tmp belongs to the execution environment: give each function its own folder in the
        # stack's state dir (so parallel stacks never share caches), and map /tmp paths in its env there.
        tmp = lambda_tmp(self._function_name)
        env["TMPDIR"] = str(tmp)
        for key, value in env_vars.items():
            if value is None:
                continue
            text = str(value)
            if text == LAMBDA_TMP or text.startswith(LAMBDA_TMP + "/"):
                text = str(tmp) + text[len(LAMBDA_TMP) :]
            env[key] = text
        for reserved in ("AWS_SESSION_TOKEN", "LAMBDA_RUNTIME_DIR", "_HANDLER"):
            env.pop(reserved, None)
        env.update(
            {
                "_HANDLER": handler,
                "LAMBDA_TASK_ROOT": str(folder),
                "AWS_ENDPOINT_URL": f"http://127.0.0.1:{config.GATEWAY_LISTEN[0].port}",
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_DEFAULT_REGION": region,
                "AWS_REGION": region,
                "PYTHONUNBUFFERED": "1",
            }
        )
        self._env = env
        self._cwd = folder
        self._argv = [os.environ.get(ENV_PYTHON) or "python3", "-m", "awslambdaric", handler]
        self._record(
            f"INIT_START Runtime Version: maas-local:awslambdaric\tFunction: {self._function_name}\t"
            f"Handler: {handler}\tSource: {folder}\n"
        )
        self._spawn()
        self._wait_ready()

    def _wait_ready(self) -> None:
        api, proc = self._api, self._proc
        assert api is not None and proc is not None
        while True:
            if api.ready.wait(0.02):
                self._init_ms = (time.perf_counter() - self._spawned_at) * 1000
                return
            if api.init_failed.is_set():
                self._drain()
                raise LambdaRuntimeException(
                    f"{self._function_name}: init error: {api.init_error.decode('utf-8', 'replace')}"
                )
            if proc.poll() is not None:
                self._drain()
                tail = "".join(self._output[-20:])[-2000:]
                raise LambdaRuntimeException(
                    f"{self._function_name}: runtime exited ({proc.returncode}) during init:\n{tail}"
                )
            if self._stopped.is_set():
                raise LambdaRuntimeException(f"{self._function_name}: stopped during init")

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        request_id = payload["invoke-id"]
        timeout_s = float(self.function_version.config.timeout or 3)
        memory_mb = int(self.function_version.config.memory_size or 128)
        started = time.perf_counter()
        deadline = time.time() + timeout_s
        invocation = _Invocation(
            request_id=request_id,
            payload=str(payload.get("payload") or "").encode("utf-8"),
            function_arn=payload.get("invoked-function-arn", ""),
            trace_id=payload.get("trace-id", ""),
            deadline_ms=int(deadline * 1000),
        )
        init_ms = self._init_ms
        self._init_ms = None  # report Init Duration on the first invocation only
        self._record(f"START RequestId: {request_id} Version: {self.function_version.id.qualifier}\n")
        api, proc = self._api, self._proc
        if api is None or proc is None:
            raise LambdaRuntimeException(f"{self._function_name}: execution environment not started")
        api.pending.put(invocation)

        failure: tuple[str, str] | None = None
        while not invocation.done.wait(0.02):
            if self._stopped.is_set():
                failure = ("Runtime.Stopped", "Execution environment stopped")
                break
            if time.time() >= deadline:
                stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                failure = (
                    "Sandbox.Timedout",
                    f"{stamp} {request_id} Task timed out after {timeout_s:.2f} seconds",
                )
                break
            if proc.poll() is not None:
                failure = (
                    "Runtime.ExitError",
                    f"RequestId: {request_id} Error: Runtime exited with error: "
                    f"exit status {proc.returncode}",
                )
                break

        duration_ms = (time.perf_counter() - started) * 1000
        max_mem = self._max_memory_mb()
        if failure is not None:
            error_type, message = failure
            self._record(message + "\n")
            result_payload = json.dumps({"errorMessage": message, "errorType": error_type}).encode()
            is_error = True
        else:
            result_payload, is_error = invocation.result, invocation.is_error
        self._drain()
        self._record(f"END RequestId: {request_id}\n")
        init_part = f"\tInit Duration: {init_ms:.2f} ms" if init_ms is not None else ""
        self._record(
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {math.ceil(duration_ms)} ms\tMemory Size: {memory_mb} MB\t"
            f"Max Memory Used: {max_mem} MB{init_part}\t\n"
        )
        logs = self._take_logs()
        if failure is not None and not self._stopped.is_set():
            # Like Lambda: the sandbox is reset after a timeout or crash; the next request gets a fresh one.
            self._kill()
            self._spawn()
        return InvocationResult(request_id, result_payload, is_error=is_error, logs=logs)

    def stop(self) -> None:
        self._stopped.set()
        self._kill()
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.close()
            self._log_file = None

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        return f"http://127.0.0.1:{config.GATEWAY_LISTEN[0].port}/_localstack_lambda/{self.id}"

    def get_logs(self) -> str:
        self._drain()
        with self._lock:
            return "".join(self._output)

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        function_dir(function_version)  # fail early (function state Failed) when there is no source folder

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        pass

    @classmethod
    def validate_environment(cls) -> bool:
        python = os.environ.get(ENV_PYTHON)
        if not python or not Path(python).exists():
            LOG.warning("maas-local executor: %s is not set to an existing interpreter", ENV_PYTHON)
            return False
        return True
