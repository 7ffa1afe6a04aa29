"""pydantic's validation errors as the training spec's field-first messages.

``training.epochs: must be between 1 and 100000, got 0``: the path first (``a.b[0].c``), then what to
fix. The spec's own validators raise ``problem(...)`` with the message (and, for a check of a whole
object, ``at`` naming the field it is about); pydantic's generic errors (missing, unknown field, wrong
type) are worded here the same way.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError


def problem(message: str, at: str | None = None) -> PydanticCustomError:
    """A validation error with our message; ``at``: the field (a dotted path) it is about, for a check
    that validates a whole object (relative to that object, or from the root when it contains a dot)."""
    return PydanticCustomError("spec", "{message}", {"message": message, "at": at})


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    origin = typing.get_origin(annotation)
    if isinstance(annotation, types.UnionType) or origin in (tuple, list, typing.Union):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model that holds a location's last part (for the list of its allowed fields)."""
    model = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        found = _models_in(field.annotation) if field is not None else []
        if not found:
            return None
        model = found[0]
    return model


def _message(error: Any, root: type[BaseModel]) -> str:
    loc: tuple[int | str, ...] = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
    kind, value = error["type"], error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "spec":
        at = ctx.get("at")
        path = at if at and "." in at else _path((*loc, at) if at else loc)
        return f"{path or 'spec'}: {ctx['message']}"
    path = _path(loc) or "spec"
    if kind == "missing" or (value is None and kind.endswith("_type")):
        return f"{path}: required"
    if kind == "extra_forbidden":
        model = _model_at(root, loc)
        allowed = sorted(model.model_fields) if model is not None else []
        return f"{path}: unknown field (allowed: {', '.join(allowed)})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{path}: must be an object, got {type(value).__name__}"
    if kind.startswith("int_"):
        return f"{path}: must be an integer, got {value!r}"
    if kind.startswith(("float_", "string_")):
        what = "a number" if kind.startswith("float_") else "a non-empty string"
        return f"{path}: must be {what}, got {value!r}"
    return f"{path}: {error['msg']}"


def field_messages(exc: ValidationError, root: type[BaseModel]) -> list[str]:
    """One field-first message per problem, in pydantic's order (the fields' order)."""
    return [_message(e, root) for e in exc.errors()]
