"""String values as clients send them (str, or bytes from base64 / binary payloads) -> text."""

from __future__ import annotations

from typing import Any

from maas_models.errors import InvalidInput


def as_text(value: Any) -> str:
    """A str for a str or UTF-8 bytes; InvalidInput for anything else (a number where text is expected)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("a text value is not valid UTF-8") from None
    raise InvalidInput(f"expected text, got {type(value).__name__}: send strings")
