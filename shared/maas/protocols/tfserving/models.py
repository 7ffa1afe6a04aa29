"""Data models of the TF Serving predict API."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"


class RequestFormat(StrEnum):
    ROW = "instances"  # row format -> response key "predictions"
    COLUMNAR = "inputs"  # columnar format -> response key "outputs"

    @property
    def response_key(self) -> str:
        return "predictions" if self is RequestFormat.ROW else "outputs"


@dataclass(slots=True)
class PredictRequest:
    """A parsed `:predict` body. `payload` is the raw JSON value under `instances` or `inputs`."""

    format: RequestFormat
    payload: Any
    signature_name: str = DEFAULT_SIGNATURE
    labels: bool = False  # maas extension: also answer each row's top class label ("labels": true)

    @property
    def named(self) -> bool:
        """True when inputs are given by name (a list of objects, or an object of columns)."""
        if self.format is RequestFormat.ROW:
            first = self.payload[0] if isinstance(self.payload, list) and self.payload else None
            return isinstance(first, dict) and not _is_b64(first)
        return isinstance(self.payload, dict) and not _is_b64(self.payload)


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value
