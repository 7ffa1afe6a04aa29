"""Parse and validate v2 `/infer` bodies; bind inputs to a model signature."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from maas.protocols.errors import PayloadTooLarge, ProtocolError
from maas.protocols.tensors import Signature, check_shape, has_bool, to_array
from maas.protocols.v2.binary import is_binary_input
from maas.protocols.v2.datatypes import DATATYPES
from maas.protocols.v2.models import InferenceRequest, RequestInput, RequestOutput

_REQUIRED = ("name", "shape", "datatype", "data")
EXAMPLE = '{"inputs": [{"name": "<input>", "shape": [1, 100], "datatype": "FP32", "data": [...]}]}'


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(f"{where}: 'parameters' must be an object of name/value pairs")
    return value


def parse_infer_request(body: Any) -> InferenceRequest:
    """Check the structure of an inference request (already JSON-decoded)."""
    if not isinstance(body, dict):
        raise ProtocolError(f"the request body must be a JSON object such as {EXAMPLE}")
    if "instances" in body:
        raise ProtocolError(
            "'instances' is the TF Serving format: send it to /v1/models/{model}:predict, or send v2 "
            f"'inputs' here: {EXAMPLE}"
        )
    raw_inputs = body.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError(f"'inputs' must be a non-empty list of tensors, e.g. {EXAMPLE}")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError("'id' must be a string")
    inputs = [_parse_input(item, i) for i, item in enumerate(raw_inputs)]
    outputs: list[RequestOutput] | None = None
    raw_outputs = body.get("outputs")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list):
            raise ProtocolError("'outputs' must be a list of {\"name\": ...} objects")
        outputs = []
        for i, item in enumerate(raw_outputs):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ProtocolError(f"outputs[{i}] must be an object with a string 'name'")
            outputs.append(RequestOutput(item["name"], _parameters(item.get("parameters"), f"outputs[{i}]")))
    return InferenceRequest(
        inputs=inputs,
        id=request_id,
        parameters=_parameters(body.get("parameters"), "request"),
        outputs=outputs,
    )


def _parse_input(item: Any, i: int) -> RequestInput:
    where = f"inputs[{i}]"
    if not isinstance(item, dict):
        raise ProtocolError(f"{where} must be an object with name, shape, datatype and data")
    parameters = _parameters(item.get("parameters"), where)
    # a binary input's data follows the JSON header (protocols/v2/binary.py attaches it)
    required = ("name", "shape", "datatype") if is_binary_input(parameters) else _REQUIRED
    missing = [k for k in required if k not in item]
    if missing:
        raise ProtocolError(f"{where} is missing {', '.join(repr(k) for k in missing)}")
    name, shape, datatype = item["name"], item["shape"], item["datatype"]
    if not isinstance(name, str):
        raise ProtocolError(f"{where}.name must be a string")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ProtocolError(f"{where}.shape must be a list of non-negative integers, e.g. [1, 100]")
    if datatype not in DATATYPES:
        raise ProtocolError(
            f"{where} ('{name}'): datatype {datatype!r} is not a v2 datatype; "
            f"use one of {', '.join(DATATYPES)}"
        )
    data = item.get("data")
    if isinstance(data, dict):
        raise ProtocolError(
            f"{where}.data must be a JSON array; for raw bytes use the binary tensor extension "
            "(parameters.binary_data_size and the Inference-Header-Content-Length header)"
        )
    return RequestInput(name, shape, datatype, data, parameters)


def bind_inputs(
    request: InferenceRequest, signature: Signature, max_rows: int, *, check_bools: bool = True
) -> dict[str, np.ndarray]:
    """One batched array per model input, in the model's dtype, checked against shape and signature.

    JSON booleans are refused in numeric data and numbers in BOOL data; `check_bools=False` (the body
    has no true/false token) skips the scan of numeric data for booleans."""
    by_name: dict[str, RequestInput] = {}
    for inp in request.inputs:
        if inp.name in by_name:
            raise ProtocolError(f"input '{inp.name}' is given twice")
        by_name[inp.name] = inp
    names = signature.input_names
    unknown = [n for n in by_name if n not in names]
    missing = [n for n in names if n not in by_name]
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"unknown input(s) {', '.join(repr(n) for n in unknown)}")
        if missing:
            parts.append(f"missing input(s) {', '.join(repr(n) for n in missing)}")
        raise ProtocolError(f"{' and '.join(parts)}; the model's inputs are: {', '.join(names)}")
    out: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        inp = by_name[spec.name]
        where = f"input '{spec.name}'"
        if inp.shape and inp.shape[0] > max_rows:
            raise PayloadTooLarge(
                f"the request has {inp.shape[0]} rows; the limit is {max_rows} (MAAS_MAX_ROWS): split it "
                "into smaller requests or use the batch scoring API"
            )
        if inp.datatype == "BYTES" and not spec.is_string:
            raise ProtocolError(
                f"{where}: datatype BYTES does not apply; this input takes {spec.dtype} numbers"
            )
        wire = DATATYPES[inp.datatype]
        try:
            if spec.is_string:
                arr = np.asarray(inp.data, dtype=object)
            elif inp.datatype == "BOOL":
                arr = np.asarray(inp.data)
                if arr.dtype != np.bool_ and arr.size:
                    raise ProtocolError(
                        f"{where}: datatype BOOL needs true/false values, got {arr.dtype.name}"
                    )
                arr = arr.astype(np.bool_)
            elif check_bools and has_bool(inp.data):
                raise ProtocolError(
                    f"{where}: datatype {inp.datatype} needs numbers, got JSON booleans; send numbers "
                    "or declare datatype BOOL"
                )
            elif wire.kind in "iu":
                arr = np.asarray(inp.data)
                if arr.dtype.kind not in "iub":
                    raise ProtocolError(
                        f"{where}: datatype {inp.datatype} needs integer data, got {arr.dtype.name} values; "
                        "send integers or declare a floating-point datatype such as FP32"
                    )
                arr = arr.astype(wire)
            else:
                with np.errstate(over="ignore", invalid="ignore"):  # out of range -> inf: refused below
                    arr = np.asarray(inp.data, dtype=wire)
        except (ValueError, TypeError, OverflowError):
            raise ProtocolError(
                f"{where}: data does not match datatype {inp.datatype} (or rows have different lengths); "
                f"send a flat or nested list of {inp.datatype} values"
            ) from None
        count = math.prod(inp.shape)
        if arr.size != count:
            raise ProtocolError(f"{where}: shape {inp.shape} needs {count} values, data has {arr.size}")
        if arr.ndim != 1 and list(arr.shape) != inp.shape:
            raise ProtocolError(
                f"{where}: nested data has shape {list(arr.shape)} but 'shape' says {inp.shape}; "
                "send data flat (row-major) or nested exactly as 'shape'"
            )
        arr = arr.reshape(inp.shape)
        if arr.dtype != spec.np_dtype:
            if wire.kind == "f" and spec.np_dtype.kind in "iub":
                raise ProtocolError(f"{where}: datatype {inp.datatype} cannot be cast to {spec.dtype} safely")
            arr = to_array(arr, spec, where)
        elif spec.is_floating and arr.size and not np.isfinite(arr).all():
            raise ProtocolError(f"{where}: NaN or Infinity are not allowed; send finite numbers")
        out[spec.name] = check_shape(arr, spec, where)
    return out
