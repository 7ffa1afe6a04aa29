"""`maas local invoke` and `maas local logs`: the `sam local invoke` / `sam logs` loop without Docker.

invoke runs a function's handler once:

* by default in its image-equivalent environment (`maas.local.envs`: the image's Python and packages,
  the project's code refreshed in seconds after an edit), under the real Lambda runtime client through the
  same `Sandbox` the LocalStack executor uses, with the environment variables template.yaml gives it
  (`maas.local.functions`), pointed at the running local stack when there is one;
* with `--deployed`, in the local stack through the Lambda Invoke API (the deployed function, its logs
  tail from LogType=Tail).

As SAM prints them: the response on stdout; the function's logs, START/END and the REPORT line on stderr;
on a function error, its type and message on stderr (the traceback is in the logs) and exit status 1.
Bad input (unknown function, an event that is not JSON, --deployed without a stack) exits 2.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from maas.local.config import LocalConfig, LocalError

EXIT_FUNCTION_ERROR = 1
EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class Outcome:
    payload: bytes
    error: tuple[str, str] | None  # (errorType, errorMessage)
    duration_ms: float | None
    max_memory_mb: int | None
    mode: str


def read_event(source: str | None, stdin: TextIO) -> Any:
    """The event from a file, or from stdin for `-` / no -e; an error saying why when it is not JSON."""
    where = "stdin" if source in (None, "-") else source
    try:
        text = stdin.read() if source in (None, "-") else Path(str(source)).read_text(encoding="utf-8")
    except OSError as exc:
        raise LocalError(f"cannot read the event file {source}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise LocalError(f"the event from {where} is not JSON: {exc}") from None


def _error_of(payload: bytes) -> tuple[str, str]:
    try:
        doc = json.loads(payload)
        return str(doc.get("errorType") or "Error"), str(doc.get("errorMessage") or "")
    except (ValueError, AttributeError):
        return "Error", payload.decode("utf-8", "replace")[:500]


def _stack(cfg: LocalConfig) -> dict[str, Any] | None:
    from maas.local import status

    info = status(cfg)
    return info if info["running"] and not info.get("problem") else None


def _physical_ids(cfg: LocalConfig) -> dict[str, str]:
    from maas.local.stack import client

    cf = client(cfg, "cloudformation")
    resources = cf.describe_stack_resources(StackName=cfg.stack_name)["StackResources"]
    return {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources if r.get("PhysicalResourceId")}


def function_environment(
    cfg: LocalConfig, fn: Any, template: dict[str, Any], stack: dict[str, Any] | None, say: Any
) -> dict[str, str]:
    """What template.yaml gives the function, for the local stack (resource refs need a deployed one)."""
    from maas.local.functions import Resolver, parameters
    from maas.local.stack import LOCAL_PARAMETERS

    ids = _physical_ids(cfg) if stack else {}
    resolver = Resolver(parameters(template, LOCAL_PARAMETERS), cfg.stack_name, cfg.region, ids.get)
    env: dict[str, str] = resolver.environment(fn, say)
    return env


def _run_local(
    cfg: LocalConfig, fn: Any, event: Any, overrides: dict[str, str], template: dict[str, Any], stderr: TextIO
) -> Outcome:
    from maas_executor.sandbox import Sandbox, SandboxError, map_lambda_tmp

    from maas.local.envs import Environments

    def say(message: str) -> None:
        print(f"maas local invoke: {message}", file=stderr, flush=True)

    image = Environments(cfg.project_root, cfg.envs_dir, say).ensure(fn.name)
    stack = _stack(cfg)
    env = {**function_environment(cfg, fn, template, stack, say), **overrides}
    tmp = cfg.base_dir / "invoke-tmp" / fn.name  # the function's /tmp (kept: the model cache stays warm)
    tmp.mkdir(parents=True, exist_ok=True)
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    if os.environ.get("HOME"):
        base["HOME"] = os.environ["HOME"]
    if stack is not None:
        aws = {"AWS_ENDPOINT_URL": cfg.endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
    else:
        say(f"no local stack runs on {cfg.endpoint}: AWS calls go where your own AWS configuration points")
        aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    aws.update({"AWS_REGION": cfg.region, "AWS_DEFAULT_REGION": cfg.region})
    name = (stack or {}).get("functions", {}).get(fn.name) or f"{cfg.stack_name}-{fn.name}"
    sandbox = Sandbox(
        name,
        str(image.python),
        image.spec.handler,
        image.task_root,
        map_lambda_tmp({**base, **env, **aws, "AWS_LAMBDA_FUNCTION_NAME": name}, tmp),
        timeout_s=fn.timeout_s,
        memory_mb=fn.memory_mb,
        echo=stderr,
    )
    try:
        sandbox.start()
        result = sandbox.invoke(
            str(uuid.uuid4()),
            json.dumps(event).encode(),
            f"arn:aws:lambda:{cfg.region}:000000000000:function:{name}",
        )
    except SandboxError as exc:
        return Outcome(b"", ("Runtime.InitError", str(exc)), None, None, "env")
    finally:
        sandbox.stop()
    error = _error_of(result.payload) if result.is_error else None
    return Outcome(result.payload, error, result.duration_ms, result.max_memory_mb, "env")


def _run_deployed(cfg: LocalConfig, fn: Any, event: Any, stderr: TextIO) -> Outcome:
    from maas.local.stack import client

    stack = _stack(cfg)
    if stack is None:
        raise LocalError(
            f"--deployed needs the local stack, and none runs on {cfg.endpoint}; start it with "
            "`maas local up` (or invoke without --deployed to run the handler in its environment)"
        )
    name = stack["functions"][fn.name]
    response = client(cfg, "lambda").invoke(
        FunctionName=name, Payload=json.dumps(event).encode(), LogType="Tail"
    )
    payload: bytes = response["Payload"].read()
    logs = base64.b64decode(response.get("LogResult") or b"").decode("utf-8", "replace")
    stderr.write(logs if logs.endswith("\n") or not logs else logs + "\n")
    report = re.search(r"Duration: ([0-9.]+) ms.*?Max Memory Used: (\d+) MB", logs)
    error = _error_of(payload) if response.get("FunctionError") else None
    return Outcome(
        payload,
        error,
        float(report.group(1)) if report else None,
        int(report.group(2)) if report else None,
        "deployed",
    )


def invoke(
    function: str,
    event_source: str | None,
    *,
    env_vars: str | None = None,
    deployed: bool = False,
    as_json: bool = False,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
    stderr: TextIO = sys.stderr,
) -> int:
    from maas.local.functions import env_var_overrides, find, load_template

    try:
        cfg = LocalConfig.from_env()
        template = load_template(cfg.template)
        fn = find(template, function)
        event = read_event(event_source, stdin)
        if deployed and env_vars:
            raise LocalError("--env-vars sets the local run's variables; the deployed function keeps its own")
        overrides: dict[str, str] = {}
        if env_vars:
            try:
                document = json.loads(Path(env_vars).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise LocalError(f"--env-vars {env_vars}: {exc}") from None
            overrides = env_var_overrides(document, fn, lambda m: print(m, file=stderr))
        outcome = (
            _run_deployed(cfg, fn, event, stderr)
            if deployed
            else _run_local(cfg, fn, event, overrides, template, stderr)
        )
    except LocalError as exc:
        print(f"maas local invoke: {exc}", file=stderr)
        return EXIT_BAD_INPUT
    text = outcome.payload.decode("utf-8", "replace")
    if as_json:
        try:
            body: Any = json.loads(text) if text else None
        except ValueError:
            body = text
        record = {
            "function": fn.logical_id,
            "mode": outcome.mode,
            "ok": outcome.error is None,
            "response": body,
            "error": {"type": outcome.error[0], "message": outcome.error[1]} if outcome.error else None,
            "duration_ms": outcome.duration_ms,
            "max_memory_mb": outcome.max_memory_mb,
        }
        print(json.dumps(record), file=stdout)
    elif text:
        print(text, file=stdout)
    if outcome.error is not None:
        print(f"Error: {fn.logical_id} failed: {outcome.error[0]}: {outcome.error[1]}", file=stderr)
        return EXIT_FUNCTION_ERROR
    return 0


# -- logs --------------------------------------------------------------------------------------------------
_SINCE = re.compile(r"^(\d+)\s*([smhd])$")


def since_ms(text: str, now: float | None = None) -> int:
    """`10m`, `2h`, `30s`, `1d`, or an ISO 8601 time -> epoch milliseconds."""
    now = time.time() if now is None else now
    found = _SINCE.match(text.strip())
    if found:
        seconds = int(found.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[found.group(2)]
        return int((now - seconds) * 1000)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise LocalError(f"--since {text!r}: use e.g. 30s, 10m, 2h, 1d or an ISO time") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def logs(
    function: str,
    *,
    tail: bool = False,
    since: str | None = None,
    filter_text: str | None = None,
    stdout: TextIO = sys.stdout,
    stderr: TextIO = sys.stderr,
    poll_s: float = 1.0,
) -> int:
    """Print the function's CloudWatch Logs in the local stack (`<stream> <time> <message>`, as `sam logs`);
    --tail keeps printing new events until interrupted. --filter keeps messages containing the text."""
    from maas.local.functions import find, load_template
    from maas.local.stack import client

    try:
        cfg = LocalConfig.from_env()
        fn = find(load_template(cfg.template), function)
        start = since_ms(since) if since else 0
        stack = _stack(cfg)
        if stack is None:
            raise LocalError(f"no local stack runs on {cfg.endpoint}; start it with `maas local up`")
    except LocalError as exc:
        print(f"maas local logs: {exc}", file=stderr)
        return EXIT_BAD_INPUT
    cw = client(cfg, "logs")
    group = f"/aws/lambda/{stack['functions'][fn.name]}"
    seen: set[str] = set()
    try:
        while True:
            kwargs: dict[str, Any] = {"logGroupName": group, "startTime": start}
            try:
                while True:
                    page = cw.filter_log_events(**kwargs)
                    for event in page.get("events", []):
                        if event["eventId"] in seen:
                            continue
                        seen.add(event["eventId"])
                        start = max(start, int(event["timestamp"]))
                        message = event["message"].rstrip("\n")
                        if filter_text and filter_text not in message:
                            continue
                        stamp = datetime.fromtimestamp(event["timestamp"] / 1000, UTC).isoformat()
                        print(f"{event.get('logStreamName', '')} {stamp} {message}", file=stdout, flush=True)
                    if not page.get("nextToken"):
                        break
                    kwargs["nextToken"] = page["nextToken"]
            except cw.exceptions.ResourceNotFoundException:
                if not tail:
                    print(f"maas local logs: {fn.logical_id} has not logged anything yet", file=stderr)
            if not tail:
                return 0
            time.sleep(poll_s)
    except KeyboardInterrupt:
        return 0
