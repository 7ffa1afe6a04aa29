"""Driving the real predict handler in a benchmark: the event API Gateway sends, a Lambda context, the
handler loaded as the runtime loads it, the timing loop, and moto S3 holding the published model.

`maas.bench.predict`, `predict_binary` and `cnn` all use these, so their figures are measured the same
way. Children import this module in the predict image's environment: standard library only at import.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from maas.bench._proc import QUIET_TF_ENV, restore_environ

#: An API Gateway REST (payload 1.0) proxy event for POST /v1/models/ref:predict; `rest_event` varies it.
REST_EVENT: dict[str, Any] = {
    "resource": "/{proxy+}",
    "path": "/v1/models/ref:predict",
    "httpMethod": "POST",
    "headers": {
        "Accept": "*/*",
        "Content-Type": "application/json",
        "Host": "1234567890.execute-api.us-east-1.amazonaws.com",
        "User-Agent": "maas-bench",
        "X-Forwarded-For": "127.0.0.1",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Proto": "https",
    },
    "multiValueHeaders": {"Content-Type": ["application/json"]},
    "queryStringParameters": None,
    "multiValueQueryStringParameters": None,
    "pathParameters": {"proxy": "v1/models/ref:predict"},
    "stageVariables": None,
    "requestContext": {
        "accountId": "123456789012",
        "resourceId": "123456",
        "stage": "prod",
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "requestTime": "09/Apr/2015:12:34:56 +0000",
        "requestTimeEpoch": 1428582896000,
        "identity": {"sourceIp": "127.0.0.1", "userAgent": "maas-bench"},
        "path": "/prod/v1/models/ref:predict",
        "resourcePath": "/{proxy+}",
        "httpMethod": "POST",
        "apiId": "1234567890",
        "protocol": "HTTP/1.1",
    },
    "body": None,
    "isBase64Encoded": False,
}


def rest_event(
    path: str, body: str | None, *, headers: dict[str, str] | None = None, base64: bool = False
) -> dict[str, Any]:
    """`REST_EVENT` for another path and body (headers replace the default ones when given)."""
    event = {
        **REST_EVENT,
        "path": path,
        "pathParameters": {"proxy": path.lstrip("/")},
        "requestContext": {**REST_EVENT["requestContext"], "path": f"/prod{path}"},
        "body": body,
        "isBase64Encoded": base64,
    }
    if headers is not None:
        event["headers"] = headers
        event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    return event


class LambdaContext:
    """The Lambda context object the runtime passes (what Powertools' Logger reads of it)."""

    function_name = "maas-predict"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:maas-predict"
    aws_request_id = "bench"
    log_group_name = "/aws/lambda/maas-predict"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def load_predict_handler() -> Any:
    """`app.handler` as the Lambda runtime loads it: from LAMBDA_TASK_ROOT (the predict image
    environment's copied handler), else from functions/predict in the checkout."""
    task_root = os.environ.get("LAMBDA_TASK_ROOT")
    if task_root:
        path = Path(task_root) / "app.py"
    else:
        from maas.local.config import find_project_root

        path = find_project_root() / "functions" / "predict" / "app.py"
    spec = importlib.util.spec_from_file_location("app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["app"] = module
    spec.loader.exec_module(module)
    return module.handler


def time_calls(fn: Callable[[], Any], n: int, *, warmup: int | None = None) -> list[float]:
    """Microseconds of each of `n` calls of `fn`, after `warmup` untimed calls (default n / 20, >= 3)."""
    for _ in range(max(3, n // 20) if warmup is None else warmup):
        fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1000.0)
    return samples


def framework_floor(event: dict[str, Any]) -> Callable[[], Any]:
    """One call of the bare framework every predict handler runs in, on `event`: a Powertools REST
    resolver with one route that returns a constant, behind the Powertools logger's
    `inject_lambda_context` (orjson as the serializer, as the real handler). What no handler built on
    Powertools can go below: the floor a per-request figure is read against."""
    import orjson
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

    app = APIGatewayRestResolver(serializer=lambda doc: orjson.dumps(doc).decode())
    logger = Logger(service="maas-bench-floor")

    @app.post("/v1/models/<model>:predict")
    def predict(model: str) -> Response[dict[str, Any]]:
        return Response(200, "application/json", {"predictions": [[0.0, 1.0]]})

    @logger.inject_lambda_context(log_event=False)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        response: dict[str, Any] = app.resolve(event, context)
        return response

    context = LambdaContext()
    if handler(event, context)["statusCode"] != 200:
        raise RuntimeError("the framework floor's route did not answer 200")
    return lambda: handler(event, context)


def bare_litert(model_path: Path) -> tuple[Callable[[Any], None], dict[str, Any]]:
    """(run, the input's details) of a bare LiteRT interpreter on a one-input model: `run(x)` is
    `set_tensor` + `invoke` + `get_tensor`, nothing else. The baselines the handler is read against."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model_path), num_threads=1)
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()

    def run(x: Any) -> None:
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        interp.get_tensor(out["index"])

    return run, inp


def time_interleaved(
    calls: Mapping[str, Callable[[], Any]], n: int, rounds: int = 10
) -> dict[str, list[float]]:
    """`time_calls` of each call, `n` in all, in `rounds` alternating rounds: figures read as ratios of
    one another see the same machine load (a shared 2-vCPU machine drifts by 2x within minutes)."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    per_round = max(1, n // rounds)
    for index in range(rounds):
        for name, call in calls.items():
            samples[name] += time_calls(call, per_round, warmup=None if index == 0 else 0)
    return samples


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of samples."""
    ordered = sorted(samples)
    idx = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[idx]


def publish_to_moto(
    export_dir: Path, name: str, *, source: str = "recorded", verify: bool = True
) -> tuple[Any, dict[str, str]]:
    """A moto S3 server on 127.0.0.1 with `export_dir` published as `name` v1. Returns the server (stop
    it) and the environment a predict child needs to preload that model at init."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    aws = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    bucket = f"bench-models-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **aws, **QUIET_TF_ENV, "MAAS_MODELS_BUCKET": bucket, "MAAS_PRELOAD": name}
    env |= {"POWERTOOLS_TRACE_DISABLED": "true", "POWERTOOLS_SERVICE_NAME": "maas-predict"}
    saved = {k: os.environ.get(k) for k in aws}
    os.environ.update(aws)
    try:
        import boto3
        from maas_models import Registry

        boto3.client("s3").create_bucket(Bucket=bucket)
        Registry(bucket=bucket).publish(export_dir, name, source=source, verify=verify)
    except BaseException:
        server.stop()
        raise
    finally:
        restore_environ(saved)
    return server, env


def run_child(
    module: str, args: list[str], env: dict[str, str], *, in_predict_image: bool, timeout: float = 600
) -> dict[str, Any]:
    """`python -m module --child ARGS` in a fresh process; an `"{out}"` in args becomes the path the child
    writes its JSON result to. With `in_predict_image` the child runs as the handler ships: the predict
    image's environment (its Python, its extra's packages) with app.py from its task root; otherwise in
    this environment (baselines). Returns the result; when the child reports `first_at` (the wall-clock
    time of its first response), `cold_ms` is added: process start to first response."""
    import json
    import subprocess
    import tempfile

    from maas.bench._proc import FUNCTION_ENV
    from maas.local.config import find_project_root

    python, cwd, child_env = sys.executable, find_project_root(), {**env, **FUNCTION_ENV}
    if in_predict_image:
        from maas.local.envs import image_env

        predict_env = image_env("predict")
        python, cwd = str(predict_env.python), predict_env.task_root
        child_env["LAMBDA_TASK_ROOT"] = str(cwd)
    with tempfile.TemporaryDirectory(prefix="maas-bench-") as tmp:
        out = Path(tmp) / "result.json"
        child_env["MAAS_CACHE_DIR"] = str(Path(tmp) / "cache")
        command = [python, "-m", module, "--child", *(str(out) if a == "{out}" else a for a in args)]
        started = time.time()
        proc = subprocess.run(
            command,
            env=child_env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"{module} {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(out.read_text())
    if "first_at" in result:
        result["cold_ms"] = (result["first_at"] - started) * 1000.0
    return result


#: What any predict cold start imports before maas code runs (the array library, JSON, the LiteRT
#: runtime and the mandated Powertools logger and event handler): the floor a cold start is measured
#: against, so a figure shows what maas itself adds.
FLOOR_IMPORTS = (
    "numpy",
    "orjson",
    "ai_edge_litert.interpreter",
    "aws_lambda_powertools.logging",
    "aws_lambda_powertools.event_handler",
)


def import_floor_ms(env: dict[str, str]) -> float:
    """Process start to the end of importing ``FLOOR_IMPORTS`` in the predict image's environment (ms),
    measured exactly as a handler's cold start is (``run_child``)."""
    cold: float = run_child("maas.bench.handler", ["floor", "{out}"], env, in_predict_image=True)["cold_ms"]
    return cold


def cold_starts_and_floors(
    cold_ms: Callable[[], float], env: dict[str, str], runs: int, first: float | None = None
) -> tuple[list[float], list[float]]:
    """`runs` cold starts (`cold_ms` spawns one; `first`, when given, is one already measured) and as many
    import floors, alternating, so both see the same machine load."""
    colds: list[float] = [] if first is None else [first]
    floors: list[float] = []
    for index in range(runs):
        if index >= len(colds):
            colds.append(cold_ms())
        floors.append(import_floor_ms(env))
    return colds, floors


def excess_over_floor(colds: list[float], floors: list[float]) -> float:
    """What maas adds to a cold start: the median of each cold start minus the import floor measured
    right after it (``cold_starts_and_floors`` pairs them). On a shared machine the floor itself moves
    by tens of ms between runs; a paired difference cancels most of that, a difference of medians
    would not."""
    import statistics  # here, not at the top: a handler child imports this module in its cold start

    if len(colds) != len(floors) or not colds:
        raise ValueError(f"need as many cold starts as floors, got {len(colds)} and {len(floors)}")
    return float(statistics.median(cold - floor for cold, floor in zip(colds, floors, strict=True)))


def _floor_child(out_path: str) -> None:
    import importlib
    import json

    for module in FLOOR_IMPORTS:
        importlib.import_module(module)
    Path(out_path).write_text(json.dumps({"first_at": time.time()}))


if __name__ == "__main__":
    if sys.argv[1:3] != ["--child", "floor"] or len(sys.argv) != 4:
        raise SystemExit("usage: python -m maas.bench.handler --child floor OUT")
    _floor_child(sys.argv[3])
