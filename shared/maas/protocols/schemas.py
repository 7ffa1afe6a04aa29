"""JSON Schemas of the request bodies and errors, for the generated OpenAPI document."""

from __future__ import annotations

from typing import Any

ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "What went wrong and how to fix it"}},
}

TFSERVING_PREDICT: dict[str, Any] = {
    "type": "object",
    "description": "Row format (`instances`) or columnar format (`inputs`), not both.",
    "properties": {
        "signature_name": {"type": "string", "default": "serving_default"},
        "instances": {
            "type": "array",
            "description": "One entry per row: a (nested) list of values of any rank, or an object of named "
            'inputs (e.g. {"img": [[...]], "vec": [...]}) or of named features',
            "minItems": 1,
        },
        "inputs": {
            "description": "One tensor (nested list, rows first) or an object of input name -> tensor"
        },
        "labels": {
            "type": "boolean",
            "default": False,
            "description": "Also answer `labels`: each row's top class label (models imported with labels)",
        },
    },
    "example": {"instances": [[0.1, 0.2, 0.3]]},
}

V2_TENSOR: dict[str, Any] = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {
            "type": "string",
            "enum": [
                "BOOL",
                "UINT8",
                "UINT16",
                "UINT32",
                "UINT64",
                "INT8",
                "INT16",
                "INT32",
                "INT64",
                "FP16",
                "FP32",
                "FP64",
                "BYTES",
            ],
        },
        "parameters": {"type": "object"},
        "data": {"type": "array", "description": "Flat (row-major) or nested values"},
    },
}

V2_INFER: dict[str, Any] = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object"},
        "inputs": {"type": "array", "items": V2_TENSOR, "minItems": 1},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string"},
                    "parameters": {
                        "type": "object",
                        "description": 'e.g. {"classification": 3}: the top 3 as "score:index:label" strings',
                    },
                },
            },
        },
    },
}
