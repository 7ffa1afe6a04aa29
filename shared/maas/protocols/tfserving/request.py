"""Parse TF Serving `:predict` bodies and bind them to a model signature."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import numpy as np

from maas.protocols.errors import ProtocolError
from maas.protocols.tensors import (
    DEFAULT_MAX_ELEMENTS,
    Signature,
    TensorSpec,
    check_limits,
    check_shape,
    to_array,
)
from maas.protocols.tfserving.models import DEFAULT_SIGNATURE, PredictRequest, RequestFormat, _is_b64

_KNOWN_KEYS = frozenset({"instances", "inputs", "signature_name", "labels"})
EXAMPLE = '{"instances": [[0.1, 0.2, ...]]} or {"inputs": {"<input name>": [[0.1, 0.2, ...]]}}'


def parse_predict_request(body: Any) -> PredictRequest:
    """Check the top-level shape of a `:predict` body (already JSON-decoded)."""
    if not isinstance(body, dict):
        raise ProtocolError(f"the request body must be a JSON object such as {EXAMPLE}")
    has_instances = "instances" in body
    has_inputs = "inputs" in body
    if has_instances and has_inputs:
        raise ProtocolError("send either 'instances' (row format) or 'inputs' (columnar format), not both")
    if not has_instances and not has_inputs:
        unknown = sorted(set(body) - _KNOWN_KEYS)
        extra = f" (got keys: {', '.join(unknown)})" if unknown else ""
        raise ProtocolError(f"missing 'instances' or 'inputs' key{extra}; send e.g. {EXAMPLE}")
    signature = body.get("signature_name")
    if signature is None or signature == "":
        signature = DEFAULT_SIGNATURE
    elif not isinstance(signature, str):
        raise ProtocolError("'signature_name' must be a string")
    labels = body.get("labels", False)
    if not isinstance(labels, bool):
        raise ProtocolError(f"'labels' must be true or false, got {labels!r}")
    if has_instances:
        payload = body["instances"]
        if not isinstance(payload, list):
            raise ProtocolError("'instances' must be a list with one entry per row, e.g. [[0.1, 0.2, ...]]")
        if not payload:
            raise ProtocolError("'instances' is empty: send at least one row")
        return PredictRequest(RequestFormat.ROW, payload, signature, labels)
    payload = body["inputs"]
    if payload is None or payload == [] or payload == {}:
        raise ProtocolError("'inputs' is empty: send at least one row")
    return PredictRequest(RequestFormat.COLUMNAR, payload, signature, labels)


def bind_inputs(
    request: PredictRequest,
    signature: Signature,
    max_rows: int,
    *,
    check_bools: bool = True,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> dict[str, np.ndarray]:
    """Turn the request payload into one batched array per model input, checked against the signature.

    Rows may be nested lists of any rank; several inputs are named (one object per row, or one column
    per input). `check_bools=False` (the body has no true/false token) skips the scan for JSON booleans.
    """
    if request.signature_name != signature.name:
        raise ProtocolError(
            f"signature_name '{request.signature_name}' not found; this model serves '{signature.name}'"
        )
    if request.format is RequestFormat.ROW:
        bound = _bind_rows(request.payload, signature, max_rows, check_bools)
    else:
        bound = _bind_columns(request.payload, signature, max_rows, check_bools)
    for name, arr in bound.items():
        check_limits(arr.shape[0] if arr.ndim else 1, arr.size, max_rows, max_elements, f"input '{name}'")
    rows = {arr.shape[0] for arr in bound.values() if arr.ndim}
    if 0 in rows:  # e.g. {"inputs": {"review": []}}: a text input takes a flat list, so [] has the shape
        empty = next(n for n, a in bound.items() if a.ndim and not a.shape[0])
        raise ProtocolError(f"inputs: input '{empty}' has no rows: send at least one")
    if len(rows) > 1:
        counts = ", ".join(f"'{n}': {a.shape[0]}" for n, a in bound.items())
        raise ProtocolError(f"inputs: every input needs the same number of rows, got {counts}")
    return bound


def _check_rows(n: int, max_rows: int) -> None:
    check_limits(n, 0, max_rows, 1, "instances")


def _bind_rows(
    instances: list[Any], signature: Signature, max_rows: int, check_bools: bool
) -> dict[str, np.ndarray]:
    _check_rows(len(instances), max_rows)
    first = instances[0]
    if isinstance(first, dict) and not _is_b64(first):
        if not all(isinstance(i, dict) for i in instances):
            raise ProtocolError("'instances' mixes objects and values: use one style for every row")
        keys = set(first)
        names = set(signature.input_names)
        if keys <= names:
            for idx, inst in enumerate(instances):
                if set(inst) != names:
                    missing = sorted(names - set(inst))
                    extra = sorted(set(inst) - names)
                    raise ProtocolError(_named_mismatch(f"instances[{idx}]", missing, extra, signature))
            return {
                spec.name: _convert([inst[spec.name] for inst in instances], spec, "instances", check_bools)
                for spec in signature.inputs
            }
        spec = _feature_input(signature)
        if spec is not None and keys & set(spec.feature_names):
            rows = [_feature_row(inst, spec, f"instances[{i}]") for i, inst in enumerate(instances)]
            return {spec.name: _convert(rows, spec, "instances", check_bools)}
        raise ProtocolError(
            _named_mismatch("instances[0]", sorted(names - keys), sorted(keys - names), signature)
        )
    spec = _single_input(signature, "instances")
    return {spec.name: _convert(instances, spec, "instances", check_bools)}


def _bind_columns(
    inputs: Any, signature: Signature, max_rows: int, check_bools: bool
) -> dict[str, np.ndarray]:
    if isinstance(inputs, dict) and not _is_b64(inputs):
        keys = set(inputs)
        names = set(signature.input_names)
        if keys == names:
            out = {}
            for named in signature.inputs:
                value = inputs[named.name]
                if isinstance(value, list):
                    _check_rows(len(value), max_rows)
                out[named.name] = _convert(value, named, f"inputs['{named.name}']", check_bools)
            return out
        spec = _feature_input(signature)
        if spec is not None and keys & set(spec.feature_names):
            missing = [f for f in spec.feature_names if f not in inputs]
            extra = sorted(keys - set(spec.feature_names))
            if missing or extra:
                raise ProtocolError(_feature_mismatch("inputs", missing, extra))
            columns = [inputs[f] for f in spec.feature_names]
            lengths = {len(c) if isinstance(c, list) else -1 for c in columns}
            if len(lengths) != 1 or -1 in lengths:
                raise ProtocolError("inputs: every feature column must be a list with one value per row")
            _check_rows(lengths.pop(), max_rows)
            arr = _convert_raw(columns, spec, "inputs", check_bools).T
            return {spec.name: check_shape(np.ascontiguousarray(arr), spec, "inputs")}
        raise ProtocolError(_named_mismatch("inputs", sorted(names - keys), sorted(keys - names), signature))
    spec = _single_input(signature, "inputs")
    if isinstance(inputs, list):
        _check_rows(len(inputs), max_rows)
    return {spec.name: _convert(inputs, spec, "inputs", check_bools)}


def _single_input(signature: Signature, where: str) -> TensorSpec:
    if len(signature.inputs) != 1:
        names = ", ".join(signature.input_names)
        raise ProtocolError(
            f"{where}: this model has {len(signature.inputs)} inputs ({names}); name them, "
            f'e.g. {{"instances": [{{"{signature.input_names[0]}": ...}}]}}'
        )
    return signature.inputs[0]


def _feature_input(signature: Signature) -> TensorSpec | None:
    """The one 2-D input whose columns are named features (tabular models), if any."""
    if (
        len(signature.inputs) == 1
        and signature.inputs[0].feature_names
        and len(signature.inputs[0].shape) == 2
    ):
        return signature.inputs[0]
    return None


def _feature_row(inst: Mapping[str, Any], spec: TensorSpec, where: str) -> list[Any]:
    try:
        row = [inst[f] for f in spec.feature_names]
    except KeyError:
        missing = [f for f in spec.feature_names if f not in inst]
        raise ProtocolError(_feature_mismatch(where, missing, [])) from None
    if len(inst) != len(spec.feature_names):
        extra = sorted(set(inst) - set(spec.feature_names))
        raise ProtocolError(_feature_mismatch(where, [], extra))
    return row


def _feature_mismatch(where: str, missing: list[str], extra: list[str]) -> str:
    parts = []
    if missing:
        parts.append(f"missing features {_few(missing)}")
    if extra:
        parts.append(f"unknown features {_few(extra)}")
    return f"{where}: {' and '.join(parts)}; send every feature of the model's metadata by name"


def _named_mismatch(where: str, missing: list[str], extra: list[str], signature: Signature) -> str:
    parts = []
    if extra:
        parts.append(f"unknown input name(s) {_few(extra)}")
    if missing:
        parts.append(f"missing input(s) {_few(missing)}")
    hint = f"the model's inputs are: {', '.join(signature.input_names)}"
    spec = _feature_input(signature)
    if spec is not None:
        hint += f" (or name every feature: {_few(list(spec.feature_names))})"
    return f"{where}: {' and '.join(parts)}; {hint}"


def _few(names: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(x) for x in names[:n])
    return shown + (f" and {len(names) - n} more" if len(names) > n else "")


def _convert(value: Any, spec: TensorSpec, where: str, check_bools: bool) -> np.ndarray:
    arr = _convert_raw(value, spec, where, check_bools)
    return check_shape(arr, spec, where)


def _convert_raw(value: Any, spec: TensorSpec, where: str, check_bools: bool) -> np.ndarray:
    if spec.is_string:
        value = _decode_b64(value)
    return to_array(value, spec, where, check_bools=check_bools)


def _decode_b64(value: Any) -> Any:
    """Replace every {"b64": "..."} in a nested list with the decoded bytes (string inputs only)."""
    if isinstance(value, list):
        return [_decode_b64(v) for v in value]
    if _is_b64(value):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise ProtocolError('a {"b64": ...} value is not valid base64') from None
    return value
