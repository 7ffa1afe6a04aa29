"""Masking of the fields a manifest declares sensitive, with Powertools data masking.

Rule of the project: request and response payloads are never logged at all (handlers log sizes,
shapes, hashes and timings only). Masking is the second line of defence for the structured records
that do get written (log extras, error bodies, audit records) and might carry a field named like a
sensitive feature: every occurrence of such a key, at any depth, is erased to ``*****`` with
``aws_lambda_powertools.utilities.data_masking.DataMasking().erase``.

The pre-check is a cheap walk over the record, so records without sensitive keys (the common case)
cost microseconds and never touch jsonpath.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

MASK = "*****"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@lru_cache(maxsize=1)
def _masker() -> Any:
    from aws_lambda_powertools.utilities.data_masking import DataMasking

    return DataMasking(raise_on_missing_field=False)


def _present_keys(data: Any, names: frozenset[str], found: set[str], depth: int = 0) -> None:
    if depth > 32:
        return
    if isinstance(data, Mapping):
        for key, value in data.items():
            if key in names:
                found.add(str(key))
            _present_keys(value, names, found, depth + 1)
    elif isinstance(data, list | tuple):
        for item in data:
            _present_keys(item, names, found, depth + 1)


def _jsonpath(name: str) -> str:
    if _IDENT.match(name):
        return f"$..{name}"
    return "$..'" + name.replace("'", "\\'") + "'"


def mask_fields(data: Any, sensitive: Iterable[str] | None) -> Any:
    """A copy of ``data`` with every key in ``sensitive`` (at any depth) erased; ``data`` itself when
    nothing sensitive is present. Never raises: a record that cannot be masked is replaced by a
    placeholder rather than written unmasked."""
    names = frozenset(sensitive or ())
    if not names or not isinstance(data, Mapping | list | tuple):
        return data
    found: set[str] = set()
    _present_keys(data, names, found)
    if not found:
        return data
    try:
        return _masker().erase(data, fields=[_jsonpath(n) for n in sorted(found)])
    except Exception:
        return {"masking_failed": True, "masked_keys": sorted(found)}


class SensitiveFieldsFilter(logging.Filter):
    """Logging filter that masks sensitive keys in a record's ``extra`` fields and dict messages.

    Attach it to a Powertools ``Logger`` (``logger.addFilter(SensitiveFieldsFilter(names))``) or any
    standard logger; ``names`` can be updated when a model with other sensitive fields is loaded.
    """

    _STANDARD = frozenset(logging.LogRecord("x", 0, "x", 0, "x", None, None).__dict__) | {
        "message",
        "asctime",
    }

    def __init__(self, names: Iterable[str] = ()) -> None:
        super().__init__()
        self.names: set[str] = set(names)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.names:
            return True
        for key in list(record.__dict__):
            if key in self._STANDARD:
                continue
            if key in self.names:
                record.__dict__[key] = MASK
            else:
                record.__dict__[key] = mask_fields(record.__dict__[key], self.names)
        if isinstance(record.msg, Mapping):
            record.msg = mask_fields(record.msg, self.names)
        return True
