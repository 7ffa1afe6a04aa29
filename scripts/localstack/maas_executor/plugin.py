"""Plux entry point: LAMBDA_RUNTIME_EXECUTOR=maas-local selects this executor."""

from __future__ import annotations

from typing import Any

from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin

from maas_executor import NAME


class MaasLocalExecutorPlugin(RuntimeExecutorPlugin):
    name = NAME

    def load(self, *args: Any, **kwargs: Any) -> type:
        from maas_executor.executor import LocalProcessRuntimeExecutor

        return LocalProcessRuntimeExecutor
