"""Drive the real, unmodified clients against a maas API; runs in .venv-clients (scripts/clients.sh).

    .venv-clients/bin/python tests/integration/clients_driver.py BASE_URL MODEL X.npy OUT.json \
        [--accept-binary]

tritonclient.http and the KServe SDK (`kserve.InferenceRESTClient`) are called as their documentation
shows, with their default arguments unless a scenario's name says otherwise; each scenario's outputs
(as lists) or its error go to OUT.json for the test (in .venv) to compare. `--accept-binary` adds
`Accept: application/octet-stream` to the requests whose answers are binary: LocalStack's REST API
decodes a function's base64 body only for an Accept that names a binary media type exactly (real API
Gateway does for any Accept once BinaryMediaTypes holds */*), see tests/integration/test_real_clients.py.
This file imports neither maas nor the test helpers: that venv has only the clients.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import numpy as np

OUTPUT = "probabilities"
INPUT = "features"


def triton_scenarios(base: str, model: str, x: np.ndarray, accept: dict[str, str]) -> dict[str, Callable]:
    import tritonclient.http as httpclient

    parts = urlsplit(base)
    url = parts.netloc + parts.path  # tritonclient takes host:port[/base path], no scheme

    def client() -> Any:
        return httpclient.InferenceServerClient(url=url, network_timeout=120.0)

    def defaults() -> Any:  # binary input, no outputs named: binary_data_output=true
        with client() as c:
            inp = httpclient.InferInput(INPUT, list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            result = c.infer(
                model, [inp], headers=dict(accept) or None
            )  # a copy: tritonclient adds its own headers to it
            return {"outputs": result.as_numpy(OUTPUT).tolist(), "response": result.get_response()}

    def named_output_defaults() -> Any:  # InferRequestedOutput(name): binary_data=True by default
        with client() as c:
            inp = httpclient.InferInput(INPUT, list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            out = httpclient.InferRequestedOutput(OUTPUT)
            result = c.infer(
                model, [inp], outputs=[out], headers=dict(accept) or None
            )  # a copy: tritonclient adds its own headers to it
            return {"outputs": result.as_numpy(OUTPUT).tolist(), "response": result.get_response()}

    def json_mode() -> Any:
        with client() as c:
            inp = httpclient.InferInput(INPUT, list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=False)
            out = httpclient.InferRequestedOutput(OUTPUT, binary_data=False)
            result = c.infer(model, [inp], outputs=[out])
            return {"outputs": result.as_numpy(OUTPUT).tolist(), "response": result.get_response()}

    def binary_in_json_out() -> Any:
        with client() as c:
            inp = httpclient.InferInput(INPUT, list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            out = httpclient.InferRequestedOutput(OUTPUT, binary_data=False)
            result = c.infer(model, [inp], outputs=[out])
            return {"outputs": result.as_numpy(OUTPUT).tolist(), "response": result.get_response()}

    def health() -> Any:
        with client() as c:
            return {
                "live": c.is_server_live(),
                "ready": c.is_server_ready(),
                "model_ready": c.is_model_ready(model),
                "extensions": c.get_server_metadata()["extensions"],
                "inputs": c.get_model_metadata(model)["inputs"],
            }

    return {
        "triton_defaults": defaults,
        "triton_named_output_defaults": named_output_defaults,
        "triton_json": json_mode,
        "triton_binary_in_json_out": binary_in_json_out,
        "triton_health": health,
    }


def kserve_scenarios(base: str, model: str, x: np.ndarray, accept: dict[str, str]) -> dict[str, Callable]:
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
    from kserve.protocol.infer_type import RequestedOutput

    def run(protocol: str, call: Callable[[Any], Any]) -> Any:
        async def go() -> Any:
            c = InferenceRESTClient(RESTConfig(protocol=protocol, timeout=120))
            try:
                return await call(c)
            finally:
                await c.close()

        return asyncio.run(go())

    def request(binary: bool, binary_out: bool) -> Any:
        inp = InferInput(INPUT, list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        outputs = [RequestedOutput(OUTPUT, parameters={"binary_data": True})] if binary_out else None
        return InferRequest(model_name=model, infer_inputs=[inp], request_outputs=outputs)

    def v2_infer(binary: bool, binary_out: bool) -> Callable[[], Any]:
        def scenario() -> Any:
            headers = accept if binary_out else None
            res = run(
                "v2",
                lambda c: c.infer(
                    base,
                    request(binary, binary_out),
                    model_name=model,
                    headers=dict(headers) if headers else None,
                ),
            )
            out = next(o for o in res.outputs if o.name == OUTPUT)
            return {"outputs": out.as_numpy().tolist(), "datatype": out.datatype, "shape": out.shape}

        return scenario

    def v1_predict() -> Any:
        res = run("v1", lambda c: c.infer(base, {"instances": x.tolist()}, model_name=model))
        return {"outputs": res["predictions"]}

    def v2_readiness() -> Any:
        async def both(c: Any) -> Any:
            return {
                "server_ready": await c.is_server_ready(base),
                "server_live": await c.is_server_live(base),
                "model_ready": await c.is_model_ready(base, model),
            }

        return run("v2", both)

    return {
        "kserve_v1_predict": v1_predict,
        "kserve_v2_readiness": v2_readiness,
        "kserve_v2_json": v2_infer(binary=False, binary_out=False),
        "kserve_v2_binary_in": v2_infer(binary=True, binary_out=False),
        "kserve_v2_binary_in_out": v2_infer(binary=True, binary_out=True),
    }


def main(argv: list[str]) -> int:
    base, model, x_path, out_path = argv[:4]
    accept = {"Accept": "application/octet-stream"} if "--accept-binary" in argv else {}
    x = np.load(x_path).astype(np.float32)
    results: dict[str, Any] = {}
    scenarios = {**triton_scenarios(base, model, x, accept), **kserve_scenarios(base, model, x, accept)}
    for name, scenario in scenarios.items():
        try:
            results[name] = {"ok": True, **scenario()}
        except Exception as exc:  # the test reports which client failed and how
            results[name] = {
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}"[:2000],
                "trace": traceback.format_exc()[-3000:],
            }
    with open(out_path, "w") as f:
        json.dump(results, f, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
