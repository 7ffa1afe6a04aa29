"""Data models of the v2 inference request and response.

Plain dataclasses with slots rather than pydantic models: parsing a 1-row request must cost
microseconds (pydantic validation of a 100-float tensor costs far more than the model itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Parameters = dict[str, Any]


@dataclass(slots=True)
class RequestInput:
    name: str
    shape: list[int]
    datatype: str
    data: Any
    parameters: Parameters = field(default_factory=dict)


@dataclass(slots=True)
class RequestOutput:
    name: str
    parameters: Parameters = field(default_factory=dict)


@dataclass(slots=True)
class InferenceRequest:
    inputs: list[RequestInput]
    id: str | None = None
    parameters: Parameters = field(default_factory=dict)
    outputs: list[RequestOutput] | None = None


@dataclass(slots=True)
class ResponseOutput:
    name: str
    shape: list[int]
    datatype: str
    data: Any  # a flat numpy array (row-major), serialized by orjson
    parameters: Parameters | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "shape": self.shape,
            "datatype": self.datatype,
            "data": self.data,
        }
        if self.parameters:
            out["parameters"] = self.parameters
        return out


@dataclass(slots=True)
class InferenceResponse:
    model_name: str
    outputs: list[ResponseOutput]
    model_version: str | None = None
    id: str | None = None
    parameters: Parameters | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model_name": self.model_name}
        if self.model_version is not None:
            out["model_version"] = self.model_version
        if self.id is not None:
            out["id"] = self.id
        if self.parameters:
            out["parameters"] = self.parameters
        out["outputs"] = [o.to_dict() for o in self.outputs]
        return out
