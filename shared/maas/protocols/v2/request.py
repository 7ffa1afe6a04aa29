"""Parse and validate v2 `/infer` bodies; bind inputs to a model signature."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from maas.protocols.errors import ProtocolError
from maas.protocols.images import decode_images
from maas.protocols.tensors import (
    DEFAULT_MAX_ELEMENTS,
    Signature,
    TensorSpec,
    check_limits,
    check_shape,
    expects,
    to_array,
)
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
    request: InferenceRequest,
    signature: Signature,
    max_rows: int,
    *,
    check_bools: bool = True,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> dict[str, np.ndarray]:
    """One batched array per model input, in the model's dtype, checked against shape and signature.

    JSON booleans are refused in numeric data and numbers in BOOL data; `check_bools=False` (the body
    has no true/false token) skips the scan of numeric data for booleans. Integer data must be whole
    numbers within both the declared datatype's and the model's range."""
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
        where = f"inputs['{spec.name}']"
        count = math.prod(inp.shape)
        check_limits(inp.shape[0] if inp.shape else 1, count, max_rows, max_elements, where)
        if spec.image is not None and inp.datatype == "BYTES":
            # one encoded image per row, base64 in JSON (parameters.content_type "base64") or raw
            # bytes from the binary extension: decoded to [N, H, W, C]
            if len(inp.shape) != 1:
                raise ProtocolError(f"{where}: encoded images take shape [N] (one per row), got {inp.shape}")
            images = decode_images(inp.data, spec, where, base64_strings=True)
            out[spec.name] = check_shape(images, spec, where)
            continue
        arr = _wire_array(inp, spec, where, check_bools)
        if arr.size != count:
            raise ProtocolError(
                f"{where}: shape {inp.shape} needs {count} values, data has {arr.size}; {expects(spec)}"
            )
        if arr.ndim != 1 and list(arr.shape) != inp.shape:
            raise ProtocolError(
                f"{where}: nested data has shape {list(arr.shape)} but 'shape' says {inp.shape}; "
                "send data flat (row-major) or nested exactly as 'shape'"
            )
        arr = check_shape(arr.reshape(inp.shape), spec, where)
        if arr.dtype != spec.np_dtype:
            arr = to_array(arr, spec, where, check_bools=False)
        out[spec.name] = arr
    return out


def _wire_array(inp: RequestInput, spec: TensorSpec, where: str, check_bools: bool) -> np.ndarray:
    """The data as the declared datatype (range- and integer-checked), before casting to the model's."""
    if inp.datatype == "BYTES" or spec.is_string:
        if not spec.is_string:
            raise ProtocolError(f"{where}: datatype BYTES does not apply; {expects(spec)} takes numbers")
        return np.asarray(inp.data, dtype=object)
    wire = DATATYPES[inp.datatype]
    if wire.kind == "f" and spec.np_dtype.kind in "iub":
        raise ProtocolError(
            f"{where}: datatype {inp.datatype} cannot be cast to {spec.dtype} safely; {expects(spec)}: "
            f"declare an integer datatype and send whole numbers"
        )
    declared = TensorSpec(spec.name, wire.name if wire.kind != "b" else "bool", spec.shape)
    label = f"data of datatype {inp.datatype} for {expects(spec)}"
    return to_array(inp.data, declared, where, check_bools=check_bools, label=label)
