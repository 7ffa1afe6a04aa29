"""The Powertools logger of the asynchronous paths. It never receives row values or payloads."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "maas-batch")
