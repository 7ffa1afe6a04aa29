"""Placeholder queue_score handler (foundation): logs how many records it received.

The area owning this function replaces this file with the real handler.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = event.get("Records") or []
    logger.info("queue_score placeholder received %d record(s)", len(records))
    return {"function": "queue_score", "records": len(records), "batchItemFailures": []}
