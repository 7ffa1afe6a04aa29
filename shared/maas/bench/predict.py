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
import sys
import time
from pathlib import Path
from typing import Any

from maas.bench import predict_binary
from maas.bench._proc import figure, peak_rss_mb
from maas.bench.handler import (
    REST_EVENT,
    LambdaContext,
    load_predict_handler,
    percentile,
    publish_to_moto,
    run_child,
    time_calls,
)

TARGETS = {"p50_1": 100.0, "p50_100": 1500.0, "cold_ms": 300.0, "rss_mb": 100.0}


def _event(rows: int, seed: int) -> dict[str, Any]:
    import random

    rng = random.Random(seed)  # noqa: S311 - benchmark data, not security
    body = json.dumps({"instances": [[round(rng.gauss(0, 1), 6) for _ in range(100)] for _ in range(rows)]})
    return {**REST_EVENT, "body": body}


# -- child processes --------------------------------------------------------------------------------------
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


def child(mode: str, export_dir: str, out_path: str, n1: int, n100: int) -> None:
    """Runs in a fresh process: load the handler, answer once (cold), then time warm requests."""
    # Logs and EMF metrics go to stdout as in Lambda; keep writing them (their cost is real), to /dev/null.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    handler = load_predict_handler() if mode == "maas" else _load_naive_handler(export_dir)
    ctx = LambdaContext()
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

        def call(event: dict[str, Any] = event) -> None:
            response = handler(event, ctx)
            if response["statusCode"] != 200:
                raise SystemExit(f"{mode}: response {response['statusCode']}")

        timings[name] = time_calls(call, n)
    result = {
        "mode": mode,
        "first_at": first_at,
        "first_cpu": first_cpu,
        "p50_1": percentile(timings["1"], 50),
        "p99_1": percentile(timings["1"], 99),
        "p50_100": percentile(timings["100"], 50),
        "p99_100": percentile(timings["100"], 99),
        "rss_first_mb": rss_after_first,
        "rss_mb": peak_rss_mb(),
        "tensorflow_imported": any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules),
    }
    Path(out_path).write_text(json.dumps(result))


# -- parent -----------------------------------------------------------------------------------------------
def _spawn(
    mode: str, export_dir: Path, env: dict[str, str], n1: int, n100: int, timeout: float
) -> dict[str, Any]:
    """One child: maas in the predict image's environment (what ships), naive in this one (Keras)."""
    args = [mode, str(export_dir), "{out}", str(n1), str(n100)]
    result = run_child("maas.bench.predict", args, env, in_predict_image=mode == "maas", timeout=timeout)
    result["cold_cpu_ms"] = result["first_cpu"] * 1000.0
    return result


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
    server, env = publish_to_moto(export_dir, "ref")
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
        v2_binary = predict_binary.measure(env, quick)
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
