"""Encoded images (JPEG/PNG) for image-tensor inputs, on every protocol: a value is an image when
it is TF Serving's {"b64": "..."}, raw bytes (binary payloads), or a v2 BYTES string (base64).

`decode_if_encoded` is called where values are bound to an input (`maas.protocols.tensors.to_array`
and the v2 BYTES path), so a model whose input is [N, H, W, C] takes tensors and encoded images
alike. Decoding is Pillow's (`maas_models.preprocessing.image`); every failure is a 400 naming the
input.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
from maas_models.errors import InvalidInput
from maas_models.signature import TensorSpec

from maas.protocols.errors import ProtocolError


def _is_encoded(value: Any) -> bool:
    return isinstance(value, bytes | bytearray) or (isinstance(value, dict) and set(value) == {"b64"})


def looks_encoded(value: Any) -> bool:
    """True for one encoded image or a flat list of them (a tensor is nested lists of numbers)."""
    if isinstance(value, np.ndarray):
        return value.dtype == object and value.size > 0 and _is_encoded(value.reshape(-1)[0])
    if isinstance(value, list):
        return bool(value) and _is_encoded(value[0])
    return _is_encoded(value)


def _bytes(value: Any, where: str, *, base64_strings: bool) -> bytes:
    """The encoded bytes of one value (`where` names the input)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    text = value["b64"] if isinstance(value, dict) and set(value) == {"b64"} else value
    if isinstance(text, str) and (base64_strings or isinstance(value, dict)):
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError(f"{where}: an image value is not valid base64") from None
    raise ProtocolError(
        f'{where}: expected an encoded image ({{"b64": "..."}}) or numbers, got {type(value).__name__}'
    )


def decode_images(values: Any, spec: TensorSpec, where: str, *, base64_strings: bool = False) -> np.ndarray:
    """[N, H, W, C] of the spec's dtype for one encoded image or a list of them."""
    from maas_models.preprocessing.image import decoder_for

    assert spec.image is not None
    items = (
        list(values.reshape(-1))
        if isinstance(values, np.ndarray)
        else (values if isinstance(values, list) else [values])
    )
    decoder = decoder_for(spec.name, spec.dtype, spec.shape, dict(spec.image))
    named = f"{where}: input '{spec.name}'"
    blobs = np.empty(len(items), dtype=object)  # filled one by one: numpy would split bytes lists
    for i, v in enumerate(items):
        blobs[i] = _bytes(v, named, base64_strings=base64_strings)
    try:
        return decoder(blobs)
    except InvalidInput as exc:
        raise ProtocolError(f"{where}: {exc}") from None
