"""Data capture records: sampled requests and responses of an alias that opted in.

Off by default: nothing is captured unless the alias record carries ``"capture": {"sample": P}``
(``maas models capture NAME --alias A --sample P``). A captured record is one JSON line::

    {"request_id", "ts", "model", "version", "alias", "status", "latency_ms",
     "inputs": [{feature: value, ...}, ...],   # the manifest's sensitive_features erased ("*****")
     "outputs": [[...], ...]}

Lines are buffered per process and written every ``MAAS_CAPTURE_FLUSH_SECONDS`` (default 10; 0 = every
invocation) as one object per (model, version, hour) in the audit bucket:

    capture/<model>/<version>/<yyyy>/<mm>/<dd>/<hh>/<epoch ms>-<uuid8>.jsonl

The bucket is SSE-encrypted (KMS when the stack has a key) and a lifecycle rule expires ``capture/``
(template.yaml). A failed write drops the batch with a warning and the ``CaptureWriteFailed`` metric;
it never fails or delays the request beyond the masking and one serialisation (measured in the README).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from maas.rollout.puts import BufferedPuts

log = logging.getLogger("maas.capture")
PREFIX = "capture/"
FLUSH_SECONDS = "MAAS_CAPTURE_FLUSH_SECONDS"


def build_record(
    *,
    request_id: str | None,
    model: str,
    version: int,
    alias: str,
    feature_names: list[str],
    sensitive: list[str],
    x: np.ndarray,
    y: np.ndarray,
) -> dict[str, Any]:
    """The record of one request, inputs keyed by feature name with the sensitive ones erased.

    Masking is a column replacement here, not ``maas.rai.mask.mask_fields`` (Powertools data masking):
    the record's shape is ours (flat rows keyed by feature name), and the Powertools erase of a
    100-feature row measured 3.7 ms p50 a request against ~0.1 ms for this; the same MASK is written."""
    from maas.rai.mask import MASK

    names = feature_names if len(feature_names) == x.shape[-1] else [f"f{i}" for i in range(x.shape[-1])]
    hidden = set(sensitive) & set(names)
    values = x.reshape(len(x), -1).tolist()
    if hidden:
        columns = [i for i, n in enumerate(names) if n in hidden]
        for row in values:
            for i in columns:
                row[i] = MASK
    return {
        "request_id": request_id,
        "ts": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "model": model,
        "version": version,
        "alias": alias,
        "inputs": [dict(zip(names, row, strict=True)) for row in values],
        "outputs": y.tolist(),
    }


class CaptureWriter(BufferedPuts[dict[tuple[str, int, str], list[bytes]]]):
    """Captured records, buffered per (model, version, hour) and written as JSONL objects."""

    FAILURE_METRIC = "CaptureWriteFailed"

    def __init__(
        self, *, bucket: str | None = None, s3: Any = None, flush_seconds: float | None = None
    ) -> None:
        super().__init__(bucket=bucket, s3=s3, flush_seconds=flush_seconds, flush_env=FLUSH_SECONDS)

    def _empty(self) -> dict[tuple[str, int, str], list[bytes]]:
        return {}

    def add(self, record: dict[str, Any]) -> None:
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY)
        hour = record["ts"][:13].replace("-", "/").replace("T", "/")  # yyyy/mm/dd/hh
        with self._lock:
            self._buffer.setdefault((record["model"], int(record["version"]), hour), []).append(line)
            self._touched()

    def _objects(
        self, drained: dict[tuple[str, int, str], list[bytes]]
    ) -> Iterable[tuple[str, str, bytes, str, int]]:
        for (model, version, hour), lines in drained.items():
            key = f"{PREFIX}{model}/{version}/{hour}/{int(time.time() * 1000)}-{uuid.uuid4().hex[:8]}.jsonl"
            yield model, key, b"".join(lines), "application/x-ndjson", len(lines)

    def _lost(self, model: str, records: int, exc: Exception) -> None:
        log.warning("capture: %d records of %s dropped (%s)", records, model, exc)
        super()._lost(model, records, exc)


_default: CaptureWriter | None = None


def default_writer() -> CaptureWriter:
    global _default
    if _default is None:
        _default = CaptureWriter()
    return _default


def reset_default_writer() -> None:
    global _default
    _default = None
