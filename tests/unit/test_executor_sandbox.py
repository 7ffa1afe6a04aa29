"""The LocalStack executor's pieces without LocalStack: the Lambda Runtime API server, the sandbox process
lifecycle (init, invoke, handler errors, timeout, crash, restart, stop) and the bounded output buffer.

The runtime process is the real `awslambdaric` from the project venv, running small handlers written to
a temporary task root, so the protocol is exercised end to end exactly as the LocalStack executor uses it.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from maas_executor.runtime_api import API_PREFIX, Invocation, RuntimeApi
from maas_executor.sandbox import OutputBuffer, Sandbox, SandboxError

HANDLERS = """
import json, os, sys, time
print("init log line", flush=True)
if os.environ.get("FAIL_INIT"):
    raise RuntimeError("init went wrong")

def echo(event, context):
    print("handling", event.get("n"), flush=True)
    return {"echo": event, "remaining_ms_positive": context.get_remaining_time_in_millis() > 0}

def boom(event, context):
    raise ValueError("bad things: " + str(event.get("n")))

def slow(event, context):
    time.sleep(float(event.get("sleep", 5)))
    return {"slept": True}

def die(event, context):
    os._exit(3)

def chatty(event, context):
    sys.stdout.write("x" * int(event["chars"]) + "\\n")
    sys.stdout.flush()
    return {"ok": True}
"""


@pytest.fixture
def task_root(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(HANDLERS)
    return tmp_path


@pytest.fixture
def make(task_root: Path) -> Iterator[object]:
    made: list[Sandbox] = []

    def build(handler: str, timeout_s: float = 10.0, **env: str) -> Sandbox:
        sandbox = Sandbox(
            "fn",
            sys.executable,
            f"app.{handler}",
            task_root,
            {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
            timeout_s=timeout_s,
            memory_mb=256,
        )
        made.append(sandbox)
        return sandbox

    yield build
    for sandbox in made:
        sandbox.stop()


# -- Runtime API server --------------------------------------------------------------------------------
def _call(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{API_PREFIX}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_runtime_api_hands_out_an_invocation_and_takes_its_response() -> None:
    api = RuntimeApi()
    api.start()
    try:
        invocation = Invocation("req-1", b'{"a": 1}', "arn:aws:lambda:us-east-1:0:function:fn", "trace", 123)
        api.pending.put(invocation)
        status, headers, body = _call(api.port, "GET", "/invocation/next")
        assert status == 200 and body == b'{"a": 1}' and api.ready.is_set()
        assert headers["Lambda-Runtime-Aws-Request-Id"] == "req-1"
        assert headers["Lambda-Runtime-Deadline-Ms"] == "123"
        assert headers["Lambda-Runtime-Invoked-Function-Arn"].endswith(":function:fn")
        assert _call(api.port, "POST", "/invocation/other-id/response", b"{}")[0] == 400
        assert _call(api.port, "POST", "/invocation/req-1/response", b'{"ok": true}')[0] == 202
        assert invocation.done.is_set() and invocation.result == b'{"ok": true}' and not invocation.is_error
        assert _call(api.port, "GET", "/nope")[0] == 404
    finally:
        api.stop()


def test_runtime_api_records_errors_and_init_errors() -> None:
    api = RuntimeApi()
    api.start()
    try:
        invocation = Invocation("req-2", b"{}", "", "", 0)
        api.pending.put(invocation)
        _call(api.port, "GET", "/invocation/next")
        assert _call(api.port, "POST", "/invocation/req-2/error", b'{"errorType": "X"}')[0] == 202
        assert invocation.is_error and invocation.result == b'{"errorType": "X"}'
        assert _call(api.port, "POST", "/init/error", b'{"errorMessage": "m"}')[0] == 202
        assert api.init_failed.is_set() and api.init_error == b'{"errorMessage": "m"}'
    finally:
        api.stop()


def test_runtime_api_stop_releases_a_waiting_runtime() -> None:
    api = RuntimeApi()
    api.start()
    api.stop()  # puts the None sentinel: a pending GET .../next would get 410 and the server is closed
    assert api.pending.get_nowait() is None


# -- Sandbox lifecycle ---------------------------------------------------------------------------------
def test_invocations_run_in_one_process_with_reports(make) -> None:
    sandbox = make("echo")
    sandbox.start()
    pid = sandbox.pid
    first = sandbox.invoke("r1", b'{"n": 1}')
    assert not first.is_error and first.error_type is None
    assert json.loads(first.payload) == {"echo": {"n": 1}, "remaining_ms_positive": True}
    assert "init log line" in first.logs and "INIT_START" in first.logs  # init output goes with the first
    assert first.logs.index("init log line") < first.logs.index("START RequestId: r1")
    assert "handling 1" in first.logs and "END RequestId: r1" in first.logs
    report = next(line for line in first.logs.splitlines() if line.startswith("REPORT"))
    assert "Duration:" in report and "Memory Size: 256 MB" in report and "Init Duration:" in report
    second = sandbox.invoke("r2", b'{"n": 2}')
    assert sandbox.pid == pid  # warm: the same process
    assert (
        "handling 2" in second.logs and "handling 1" not in second.logs and "init log line" not in second.logs
    )
    assert "Init Duration" not in second.logs


def test_a_handler_error_is_an_error_result_with_its_type(make) -> None:
    sandbox = make("boom")
    sandbox.start()
    result = sandbox.invoke("r1", b'{"n": 7}')
    assert result.is_error and result.error_type is None
    error = json.loads(result.payload)
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "bad things: 7"
    assert "REPORT RequestId: r1" in result.logs


def test_timeout_stops_the_invocation_and_the_next_gets_a_fresh_process(make) -> None:
    sandbox = make("slow", timeout_s=0.5)
    sandbox.start()
    pid = sandbox.pid
    result = sandbox.invoke("r1", b'{"sleep": 30}')
    assert result.is_error and result.error_type == "Sandbox.Timedout"
    assert "Task timed out after 0.50 seconds" in json.loads(result.payload)["errorMessage"]
    assert result.duration_ms < 5000
    assert sandbox.pid != pid  # replaced, as Lambda resets a timed-out sandbox
    quick = sandbox.invoke("r2", b'{"sleep": 0}')
    assert not quick.is_error and json.loads(quick.payload) == {"slept": True}


def test_a_crashing_runtime_is_reported_and_replaced(make) -> None:
    sandbox = make("die")
    sandbox.start()
    pid = sandbox.pid
    result = sandbox.invoke("r1", b"{}")
    assert result.is_error and result.error_type == "Runtime.ExitError"
    assert "exit status 3" in json.loads(result.payload)["errorMessage"]
    assert sandbox.pid != pid


def test_init_failure_raises_with_the_error(make) -> None:
    sandbox = make("echo", FAIL_INIT="1")
    with pytest.raises(SandboxError, match=r"init went wrong|init error|during init"):
        sandbox.start()


def test_restart_runs_init_again_and_stop_ends_the_process(make) -> None:
    sandbox = make("echo")
    sandbox.start()
    pid = sandbox.pid
    sandbox.invoke("r1", b"{}")
    sandbox.restart()
    assert sandbox.pid != pid
    result = sandbox.invoke("r2", b"{}")
    assert "init log line" in result.logs and not result.is_error
    new_pid = sandbox.pid
    sandbox.stop()
    assert new_pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(new_pid, 0)


def test_output_of_a_long_lived_environment_stays_bounded(make) -> None:
    sandbox = make("chatty")
    sandbox.start()
    for i in range(20):
        result = sandbox.invoke(f"r{i}", json.dumps({"chars": 50_000}).encode())
        assert result.logs.count("x" * 50_000) == 1  # each invocation's logs: its own output, complete
    assert sandbox.output.pending_chars == 0
    assert len(sandbox.output.tail()) <= 16 << 10  # 1 MB written, a 16 KB tail kept


# -- OutputBuffer ----------------------------------------------------------------------------------------
def test_output_buffer_take_hands_over_once_and_tail_is_bounded() -> None:
    buffer = OutputBuffer(max_pending=10, tail_chars=4)
    buffer.append("abc")
    buffer.append("def")
    assert buffer.take() == "abcdef" and buffer.take() == ""
    assert buffer.tail() == "cdef"
    buffer.append("0123456789ABCDEF")  # more than max_pending: the newest text is kept, the drop is said
    taken = buffer.take()
    assert taken.endswith("6789ABCDEF") and "6 earlier characters of output dropped" in taken
    assert buffer.tail() == "CDEF"
