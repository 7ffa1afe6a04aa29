"""`maas bench predict`, v2 binary tensor data against JSON (run by `maas.bench.predict.run`).

In one fresh process (the maas child's environment: the reference model preloaded from moto S3):

- through the handler, p50 of v2 `/infer` for 1 and 100 rows, JSON in and out against binary in and out
  (`binary_data_output`), each body base64-encoded as the REST API (BinaryMediaTypes `*/*`) delivers it;
- a `[32, 224, 224, 3]` uint8 image batch: request bytes, and the time from the API Gateway event to the
  bound numpy input (base64 decode, framing or JSON parse, `bind_inputs`), binary against JSON. No model
  takes that input here, so this stops where the model would start.
Ratios are JSON / binary: how many times the binary framing beats JSON.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from maas.bench._proc import figure
from maas.bench.handler import (
    REST_EVENT,
    LambdaContext,
    load_predict_handler,
    percentile,
    rest_event,
    run_child,
)

IMAGE_SHAPE = (32, 224, 224, 3)
HEADER = "Inference-Header-Content-Length"


def _infer_event(rows: int, seed: int, binary: bool) -> dict[str, Any]:
    x = np.random.default_rng(seed).normal(size=(rows, 100)).astype("<f4")
    tensor: dict[str, Any] = {"name": "features", "shape": [rows, 100], "datatype": "FP32"}
    headers = dict(REST_EVENT["headers"])
    if binary:
        tensor["parameters"] = {"binary_data_size": x.nbytes}
        header = orjson.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}})
        body = header + x.tobytes()
        headers.update({HEADER: str(len(header)), "Content-Type": "application/octet-stream"})
    else:
        body = orjson.dumps({"inputs": [{**tensor, "data": x.ravel()}]}, option=orjson.OPT_SERIALIZE_NUMPY)
    return rest_event("/v2/models/ref/infer", base64.b64encode(body).decode(), headers=headers, base64=True)


def _image_events() -> tuple[dict[str, Any], dict[str, Any], int, int]:
    """(binary event, JSON event, binary bytes, JSON bytes) for one [32, 224, 224, 3] uint8 tensor."""
    x = np.random.default_rng(3).integers(0, 256, size=IMAGE_SHAPE, dtype=np.uint8)
    tensor = {"name": "images", "shape": list(IMAGE_SHAPE), "datatype": "UINT8"}
    header = orjson.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": x.nbytes}}]})
    framed = header + x.tobytes()
    as_json = orjson.dumps({"inputs": [{**tensor, "data": x.ravel()}]}, option=orjson.OPT_SERIALIZE_NUMPY)
    binary_event = {
        "headers": {HEADER: str(len(header))},
        "body": base64.b64encode(framed).decode(),
        "isBase64Encoded": True,
    }
    json_event = {"headers": {}, "body": base64.b64encode(as_json).decode(), "isBase64Encoded": True}
    return binary_event, json_event, len(framed), len(as_json)


def _parse_seconds(event: dict[str, Any], repeats: int) -> float:
    """Median time from the event to the bound uint8 array (what the v2 route does before the model)."""
    from maas.protocols.tensors import Signature, TensorSpec
    from maas.protocols.v2 import bind_inputs, parse_infer_request
    from maas.protocols.v2.binary import attach_inputs
    from maas.serving.body import read_framed_json

    signature = Signature(inputs=(TensorSpec("images", "uint8", (-1, 224, 224, 3)),), outputs=())
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        doc, may_hold_bools, tensors = read_framed_json(event, 1 << 31)
        request = parse_infer_request(doc)
        attach_inputs(request, tensors)
        # the element limit (MAAS_MAX_ELEMENTS, 4M by default) would refuse this 4.8M-value batch: this
        # measures the parse, so it lifts the limit the handler applies before parsing
        bound = bind_inputs(request, signature, 1 << 20, check_bools=may_hold_bools, max_elements=1 << 30)
        arr = bound["images"]
        samples.append(time.perf_counter() - t0)
        assert arr.shape == IMAGE_SHAPE
    return statistics.median(samples)


def child(out_path: str, n1: int, n100: int, repeats: int) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the handler's logs and EMF lines: written, as in Lambda, to nowhere
    handler = load_predict_handler()
    ctx = LambdaContext()
    result: dict[str, float] = {}
    for rows, n in ((1, n1), (100, n100)):
        events = {binary: _infer_event(rows, rows, binary) for binary in (False, True)}
        for binary, event in events.items():
            for _ in range(max(3, n // 20)):
                response = handler(event, ctx)
            if response["statusCode"] != 200 or bool(response.get("isBase64Encoded")) != binary:
                raise SystemExit(f"v2 {'binary' if binary else 'JSON'} {rows}-row: {str(response)[:300]}")
        samples: dict[bool, list[float]] = {False: [], True: []}
        for i in range(2 * n):  # alternating, so that load on a shared machine hits both alike
            binary = bool(i % 2)
            t0 = time.perf_counter_ns()
            handler(events[binary], ctx)
            samples[binary].append((time.perf_counter_ns() - t0) / 1000.0)
        result[f"json_{rows}"], result[f"bin_{rows}"] = (percentile(samples[b], 50) for b in (False, True))
    binary_event, json_event, binary_bytes, json_bytes = _image_events()
    result["image_bin_s"] = _parse_seconds(binary_event, repeats * 4)
    result["image_json_s"] = _parse_seconds(json_event, repeats)
    result["image_bin_bytes"], result["image_json_bytes"] = binary_bytes, json_bytes
    Path(out_path).write_text(json.dumps(result))


def measure(env: dict[str, str], quick: bool) -> dict[str, float]:
    n1, n100, repeats = (1000, 200, 3) if quick else (10000, 2000, 7)
    args = ["{out}", str(n1), str(n100), str(repeats)]
    result: dict[str, float] = run_child("maas.bench.predict_binary", args, env, in_predict_image=True)
    return result


def figures(result: dict[str, float]) -> list[dict[str, Any]]:
    def fig(name: str, unit: str, value: float, baseline: float, target: str | None, ok: bool | None) -> Any:
        return figure(
            "predict",
            name,
            unit,
            value,
            baseline,
            baseline / value if value else None,
            target,
            ok,
            digits=3,
            ratio_digits=2,
        )

    image_mb = result["image_bin_bytes"] / 1e6, result["image_json_bytes"] / 1e6
    return [
        fig(
            "v2 infer 1-row p50, binary in+out (JSON baseline)",
            "us",
            result["bin_1"],
            result["json_1"],
            None,
            None,
        ),
        fig(
            "v2 infer 100-row p50, binary in+out (JSON baseline)",
            "us",
            result["bin_100"],
            result["json_100"],
            "<= JSON",
            result["bin_100"] <= result["json_100"],
        ),
        fig(
            "[32,224,224,3] uint8 request: event to bound array, binary (JSON baseline)",
            "ms",
            result["image_bin_s"] * 1000,
            result["image_json_s"] * 1000,
            "<= 1/10 of JSON",
            result["image_bin_s"] * 10 <= result["image_json_s"],
        ),
        fig(
            "[32,224,224,3] uint8 request bytes, binary (JSON baseline)",
            "MB",
            image_mb[0],
            image_mb[1],
            "<= 1/2 of JSON",
            image_mb[0] * 2 <= image_mb[1],
        ),
    ]


if __name__ == "__main__":
    if len(sys.argv) >= 6 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
