"""Benchmark of the predict function (`maas bench predict`): the real handler against a naive one.

Both handlers take the same API Gateway REST (payload 1.0) event and return the same response shape,
each in its own fresh process so cold start and peak RSS are honest:

- maas:  `app.py` as Lambda loads it from the task root of the predict image's environment (its
         Python, only its extra's packages: `maas.local.envs`), the reference model published to an S3
         bucket (a local moto server) and preloaded at init.
- naive: `json` + `keras.models.load_model("model.keras")` at init + `model.predict(x)` per request.

Figures: warm in-handler latency (event in, response out) for 1 and 100 rows, p50 and p99; cold start
(process spawn to first response, model download/load included); peak RSS. Ratios are naive / maas.
Targets: 1-row p50 <= 100 us, 100-row p50 <= 1.5 ms, cold start <= 0.3 s, RSS <= 100 MB. The v2 binary
tensor figures (binary against JSON, same process) come from `maas.bench.predict_binary`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from maas.bench import predict_binary
from maas.bench._proc import FUNCTION_ENV, figure, peak_rss_mb, restore_environ

TARGETS = {"p50_1": 100.0, "p50_100": 1500.0, "cold_ms": 300.0, "rss_mb": 100.0}

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


class _Context:
    function_name = "maas-predict"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:maas-predict"
    aws_request_id = "bench"
    log_group_name = "/aws/lambda/maas-predict"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _project_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "functions").is_dir():
            return parent
    return Path.cwd()


def _event(rows: int, seed: int) -> dict[str, Any]:
    import random

    rng = random.Random(seed)  # noqa: S311 - benchmark data, not security
    body = json.dumps({"instances": [[round(rng.gauss(0, 1), 6) for _ in range(100)] for _ in range(rows)]})
    return {**REST_EVENT, "body": body}


# -- child processes --------------------------------------------------------------------------------------
def _load_maas_handler() -> Any:
    import importlib.util

    task_root = os.environ.get("LAMBDA_TASK_ROOT")
    path = Path(task_root) / "app.py" if task_root else _project_root() / "functions" / "predict" / "app.py"
    spec = importlib.util.spec_from_file_location("app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["app"] = module
    spec.loader.exec_module(module)
    return module.handler


def _load_naive_handler(export_dir: str) -> Any:
    """The naive baseline: what a first port of a Keras model to Lambda looks like."""
    import numpy as np
    from tensorflow import keras

    model = keras.models.load_model(os.path.join(export_dir, "model.keras"), compile=False, safe_mode=True)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        body = json.loads(event["body"])
        x = np.asarray(body["instances"], dtype=np.float32)
        y = model.predict(x, verbose=0)
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"predictions": y.tolist()}),
            "isBase64Encoded": False,
        }

    return handler


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    idx = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[idx]


def child(mode: str, export_dir: str, out_path: str, n1: int, n100: int) -> None:
    """Runs in a fresh process: load the handler, answer once (cold), then time warm requests."""
    # Logs and EMF metrics go to stdout as in Lambda; keep writing them (their cost is real), to /dev/null.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    handler = _load_maas_handler() if mode == "maas" else _load_naive_handler(export_dir)
    ctx = _Context()
    one, hundred = _event(1, 1), _event(100, 2)
    first = handler(one, ctx)
    first_at = time.time()
    first_cpu = time.process_time()  # CPU seconds since the process started: insensitive to other load
    if first["statusCode"] != 200:
        raise SystemExit(f"{mode}: first response {first['statusCode']}: {first['body'][:300]}")
    rss_after_first = peak_rss_mb()
    if n1 == 0 and n100 == 0:  # cold start only
        Path(out_path).write_text(
            json.dumps(
                {"mode": mode, "first_at": first_at, "first_cpu": first_cpu, "rss_first_mb": rss_after_first}
            )
        )
        return
    timings: dict[str, list[float]] = {}
    for name, event, n in (("1", one, n1), ("100", hundred, n100)):
        for _ in range(max(3, n // 20)):  # warm-up
            handler(event, ctx)
        samples = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            response = handler(event, ctx)
            samples.append((time.perf_counter_ns() - t0) / 1000.0)
            if response["statusCode"] != 200:
                raise SystemExit(f"{mode}: response {response['statusCode']}")
        timings[name] = samples
    result = {
        "mode": mode,
        "first_at": first_at,
        "first_cpu": first_cpu,
        "p50_1": _percentile(timings["1"], 50),
        "p99_1": _percentile(timings["1"], 99),
        "p50_100": _percentile(timings["100"], 50),
        "p99_100": _percentile(timings["100"], 99),
        "rss_first_mb": rss_after_first,
        "rss_mb": peak_rss_mb(),
        "tensorflow_imported": any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules),
    }
    Path(out_path).write_text(json.dumps(result))


# -- parent -----------------------------------------------------------------------------------------------
def _spawn(
    mode: str, export_dir: Path, env: dict[str, str], n1: int, n100: int, timeout: float
) -> dict[str, Any]:
    python, cwd = sys.executable, _project_root()
    child_env = {**env, **FUNCTION_ENV}
    if mode == "maas":  # what ships: the predict image's environment and its copied handler
        from maas.local.envs import image_env

        predict_env = image_env("predict")
        python, cwd = str(predict_env.python), predict_env.task_root
        child_env["LAMBDA_TASK_ROOT"] = str(cwd)
    with tempfile.TemporaryDirectory(prefix="maas-bench-") as tmp:
        out = Path(tmp) / "result.json"
        child_env["MAAS_CACHE_DIR"] = str(Path(tmp) / "cache")
        started = time.time()
        proc = subprocess.run(
            [
                python,
                "-m",
                "maas.bench.predict",
                "--child",
                mode,
                str(export_dir),
                str(out),
                str(n1),
                str(n100),
            ],
            env=child_env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"{mode} benchmark process failed ({proc.returncode}): {proc.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(out.read_text())
    result["cold_ms"] = (result["first_at"] - started) * 1000.0
    result["cold_cpu_ms"] = result["first_cpu"] * 1000.0
    return result


def _publish(export_dir: Path) -> tuple[Any, dict[str, str]]:
    """A moto S3 server on 127.0.0.1 with the reference model published as ref v1."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    bucket = f"bench-models-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "MAAS_MODELS_BUCKET": bucket,
        "MAAS_PRELOAD": "ref",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "maas-predict",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(
        {
            k: env[k]
            for k in (
                "AWS_ENDPOINT_URL",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_DEFAULT_REGION",
                "AWS_REGION",
            )
        }
    )
    try:
        import boto3
        from maas_models import Registry

        boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"]).create_bucket(Bucket=bucket)
        Registry(bucket=bucket).publish(export_dir, "ref", source="recorded")
    finally:
        restore_environ(saved)
    return server, env


def _figure(
    name: str, unit: str, value: float, baseline: float | None, target: float | None
) -> dict[str, Any]:
    ratio = (baseline / value) if baseline and value else None
    return figure(
        "predict",
        name,
        unit,
        value,
        baseline,
        ratio,
        f"<= {target:g} {unit}" if target is not None else None,
        (value <= target) if target is not None else None,
        digits=3,
        ratio_digits=1,
    )


def run(quick: bool = False) -> list[dict[str, Any]]:
    from maas_models.reference import cached_reference_export

    export_dir = cached_reference_export()
    server, env = _publish(export_dir)
    cold_runs = (3, 1) if quick else (7, 3)
    try:
        maas = _spawn(
            "maas", export_dir, env, n1=2000 if quick else 20000, n100=300 if quick else 3000, timeout=120
        )
        maas_runs = [maas]
        maas_runs += [_spawn("maas", export_dir, env, 0, 0, timeout=60) for _ in range(cold_runs[0] - 1)]
        maas_cold = [r["cold_ms"] for r in maas_runs]
        naive = _spawn(
            "naive", export_dir, env, n1=20 if quick else 200, n100=10 if quick else 100, timeout=300
        )
        naive_runs = [naive]
        naive_runs += [_spawn("naive", export_dir, env, 0, 0, timeout=300) for _ in range(cold_runs[1] - 1)]
        naive_cold = [r["cold_ms"] for r in naive_runs]
        v2_binary = predict_binary.run_child(env, quick, _project_root())
    finally:
        server.stop()
    if maas["tensorflow_imported"]:
        raise RuntimeError("the predict handler imported TensorFlow")
    cold, naive_cold_p50 = statistics.median(maas_cold), statistics.median(naive_cold)
    figures = [
        _figure("1-row p50 latency", "us", maas["p50_1"], naive["p50_1"], TARGETS["p50_1"]),
        _figure("1-row p99 latency", "us", maas["p99_1"], naive["p99_1"], None),
        _figure("100-row p50 latency", "us", maas["p50_100"], naive["p50_100"], TARGETS["p50_100"]),
        _figure("100-row p99 latency", "us", maas["p99_100"], naive["p99_100"], None),
        _figure(
            f"cold start p50 of {len(maas_cold)} (spawn to first response)",
            "ms",
            cold,
            naive_cold_p50,
            TARGETS["cold_ms"],
        ),
        _figure(f"cold start best of {len(maas_cold)}", "ms", min(maas_cold), min(naive_cold), None),
        _figure(
            "cold start CPU time p50 (process CPU to first response)",
            "ms",
            statistics.median(r["cold_cpu_ms"] for r in maas_runs),
            statistics.median(r["cold_cpu_ms"] for r in naive_runs),
            None,
        ),
        _figure("peak RSS", "MB", maas["rss_mb"], naive["rss_mb"], TARGETS["rss_mb"]),
        *predict_binary.figures(v2_binary),
    ]
    return figures


def main(argv: list[str]) -> int:
    if len(argv) >= 6 and argv[0] == "--child":
        child(argv[1], argv[2], argv[3], int(argv[4]), int(argv[5]))
        return 0
    quick = "--quick" in argv
    for fig in run(quick=quick):
        print(json.dumps(fig))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
