"""Errors raised while parsing or validating a request. Each carries the HTTP status to answer with."""

from __future__ import annotations


class ProtocolError(Exception):
    """A client error: the message says what is wrong and how to fix it."""

    status_code = 400

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code


class PayloadTooLarge(ProtocolError):
    """The body or the number of rows is over the configured limit."""

    status_code = 413


class RowLimit(int):
    """A row limit that says where it comes from, for the 413's message (``MAAS_MAX_ROWS`` for a plain
    int). An int, so every parser and comparison takes it as is."""

    source: str

    def __new__(cls, value: int, source: str) -> RowLimit:
        limit = super().__new__(cls, value)
        limit.source = source
        return limit


class MethodNotAllowed(ProtocolError):
    status_code = 405


class RouteNotFound(ProtocolError):
    status_code = 404
