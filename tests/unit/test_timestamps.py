"""Records' timestamps: ISO 8601 UTC to the millisecond, the same instant datetime reports."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from maas.timestamps import utc_now_ms


def test_format_and_instant() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    stamp = utc_now_ms()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert before <= parsed <= after
    assert utc_now_ms() >= stamp  # the cached seconds part never runs backwards
