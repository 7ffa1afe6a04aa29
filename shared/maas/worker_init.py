"""Cold-start pieces shared by the event-driven functions (batch and queue scoring)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.config import Config

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from maas_models import ModelLoader

#: Throttling (SlowDown), 5xx and dropped connections are retried with backoff ("standard" mode) before
#: an error reaches the handler; what still fails raises, and Lambda/SQS redeliver the whole unit of work.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 6}, connect_timeout=10, read_timeout=60)


def preloaded_loader(logger: Logger) -> ModelLoader:
    """A ``maas_models.ModelLoader`` with ``MAAS_PRELOAD`` models loaded. Preloading is an optimization:
    a failure is logged and the first event loads its model on demand."""
    from maas_models import ModelLoader

    loader = ModelLoader()
    try:
        loader.preload_from_env()
    except Exception:
        logger.exception("model preload failed")
    return loader
