"""Powertools Logger, Metrics (CloudWatch EMF) and Tracer used by the predict function.

The logger never receives payloads: routes log model, version, rows, status and latency only.
"""

from __future__ import annotations

import os
import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or "maas-predict"
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "maas"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)

# Health and metadata requests publish no application metrics; that is expected, not worth a warning.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
