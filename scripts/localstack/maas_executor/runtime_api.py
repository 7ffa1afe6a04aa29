"""The Lambda Runtime API (the 2018-06-01 protocol `awslambdaric` speaks: GET .../invocation/next,
POST .../invocation/<id>/response|error, POST .../init/error) on a loopback port, served by threads in this
process. Standard library only (see sandbox.py)."""

from __future__ import annotations

import queue
import sys
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_PREFIX = "/2018-06-01/runtime"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the runtime process went away (the environment is stopping): nothing to report
        super().handle_error(request, client_address)


@dataclass
class Invocation:
    request_id: str
    payload: bytes
    function_arn: str
    trace_id: str
    deadline_ms: int
    done: threading.Event = field(default_factory=threading.Event)
    result: bytes = b""
    is_error: bool = False


class RuntimeApi:
    """One Runtime API endpoint per execution environment, bound to loopback on a free port."""

    def __init__(self) -> None:
        self.pending: queue.Queue[Invocation | None] = queue.Queue()
        self.current: Invocation | None = None
        self.ready = threading.Event()
        self.init_failed = threading.Event()
        self.init_error: bytes = b""
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep the host's log quiet
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

        self.server = _Server(("127.0.0.1", 0), Handler)
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
