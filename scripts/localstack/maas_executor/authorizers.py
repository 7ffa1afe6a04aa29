"""Lambda authorizers (REQUEST and TOKEN) on LocalStack community's REST APIs.

LocalStack 2026.3.0 stores the authorizers of an imported OpenAPI body (services/apigateway/helpers.py,
``create_authorizers``) and marks the methods ``authorizationType: CUSTOM``, but its invocation chain
(services/apigateway/next_gen/execute_api/gateway.py, ``RestApiGateway.__init__``) has no authorizer
step: every request reaches the integration unauthenticated. Its handlers/api_key_validation.py checks
that an API key belongs to a usage plan of the stage but, by its own TODO, enforces neither throttle nor
quota. This module adds the missing step as AWS documents it, in ``preprocess_request`` (after routing,
before API key validation), so the project's real authorizer function runs in front of the real handler:

- identity sources (``method.request.header.X`` / ``querystring.X``) missing: 401, the Lambda not called;
- the authorizer Lambda invoked with the REST ``REQUEST`` (or ``TOKEN``) event; it raising "Unauthorized"
  gives 401, any other failure 500 (fails closed); a policy without an Allow for the method ARN, or with a
  Deny, gives 403;
- the result cached per (authorizer, identity source values) for ``authorizerResultTtlInSeconds``
  (AWS's default 300 s when unset; 0 disables the cache), so a revocation shows after at most the TTL;
- ``context`` and ``principalId`` become ``requestContext.authorizer``; ``usageIdentifierKey`` becomes
  ``$context.identity.apiKey`` (API key source AUTHORIZER) for LocalStack's own usage-plan key check.

Installed by the ``localstack.hooks.on_infra_start`` entry point of this package.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import threading
import time
from typing import Any

from localstack.runtime import hooks

LOG = logging.getLogger(__name__)
DEFAULT_TTL_S = 300


@hooks.on_infra_start()
def install_lambda_authorizers() -> None:
    from localstack.services.apigateway.next_gen.execute_api import handlers

    handlers.preprocess_request.append(LambdaAuthorizerHandler())


def _allows(policy: Any, method_arn: str) -> bool:
    """IAM-style evaluation of the returned policy for execute-api:Invoke on the method ARN."""
    statements = (policy or {}).get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for statement in statements:
        actions = statement.get("Action") or []
        resources = statement.get("Resource") or []
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if isinstance(resources, str) else resources
        if not any(fnmatch.fnmatchcase("execute-api:Invoke", a) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(method_arn, r) for r in resources):
            continue
        if statement.get("Effect") == "Deny":
            return False
        if statement.get("Effect") == "Allow":
            allowed = True
    return allowed


class LambdaAuthorizerHandler:
    def __init__(self) -> None:
        self._cache: dict[tuple[str, ...], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def __call__(self, chain: Any, context: Any, response: Any) -> None:
        method = context.resource_method or {}
        if method.get("authorizationType") != "CUSTOM":
            return
        from localstack.services.apigateway.next_gen.execute_api.gateway_response import (
            AccessDeniedError,
            AuthorizerConfigurationError,
            UnauthorizedError,
        )

        authorizer = context.deployment.rest_api.authorizers.get(method.get("authorizerId"))
        if not authorizer or authorizer.get("type") not in ("REQUEST", "TOKEN"):
            raise AuthorizerConfigurationError("Internal server error")
        identity = self._identity(authorizer, context)
        if identity is None:
            raise UnauthorizedError("Unauthorized")
        request = context.invocation_request
        method_arn = (
            f"arn:aws:execute-api:{context.region}:{context.account_id}:{context.api_id}/"
            f"{context.stage}/{request['http_method']}{request['path']}"
        )
        ttl = authorizer.get("authorizerResultTtlInSeconds")
        ttl = DEFAULT_TTL_S if ttl is None else int(ttl)
        key = (context.api_id, context.stage, authorizer["id"], *identity)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            result = cached[1]
        else:
            result = self._invoke(authorizer, context, method_arn, identity)
            if ttl > 0:
                with self._lock:
                    self._cache[key] = (now + ttl, result)
        if not _allows(result.get("policyDocument"), method_arn):
            raise AccessDeniedError("User is not authorized to access this resource with an explicit deny")
        values: dict[str, Any] = {
            k: v for k, v in (result.get("context") or {}).items() if isinstance(v, str | int | float | bool)
        }
        values["principalId"] = result.get("principalId")
        context.context_variables["authorizer"] = values
        if usage_key := result.get("usageIdentifierKey"):
            context.context_variables["identity"]["apiKey"] = usage_key

    @staticmethod
    def _identity(authorizer: dict[str, Any], context: Any) -> list[str] | None:
        request = context.invocation_request
        sources = [s.strip() for s in (authorizer.get("identitySource") or "").split(",") if s.strip()]
        values = []
        for source in sources:
            if source.startswith("method.request.header."):
                value = request["headers"].get(source[len("method.request.header.") :])
            elif source.startswith("method.request.querystring."):
                value = (request.get("query_string_parameters") or {}).get(
                    source[len("method.request.querystring.") :]
                )
            else:  # stage variables, context: not used by this project
                value = None
            if not value:
                return None
            values.append(value)
        return values

    @staticmethod
    def _invoke(
        authorizer: dict[str, Any], context: Any, method_arn: str, identity: list[str]
    ) -> dict[str, Any]:
        from localstack.aws.connect import connect_to
        from localstack.services.apigateway.next_gen.execute_api.gateway_response import (
            AuthorizerFailureError,
            UnauthorizedError,
        )
        from localstack.utils.aws.client_types import ServicePrincipal

        uri = authorizer.get("authorizerUri") or ""
        function_arn = uri.split("/functions/", 1)[-1].removesuffix("/invocations")
        request = context.invocation_request
        if authorizer["type"] == "TOKEN":
            event: dict[str, Any] = {
                "type": "TOKEN",
                "authorizationToken": identity[0],
                "methodArn": method_arn,
            }
        else:
            headers = {k: v for k, v in request["headers"].items()}
            event = {
                "type": "REQUEST",
                "methodArn": method_arn,
                "resource": (context.resource or {}).get("path"),
                "path": request["path"],
                "httpMethod": request["http_method"],
                "headers": headers,
                "multiValueHeaders": {k: request["headers"].getlist(k) for k in headers},
                "queryStringParameters": request.get("query_string_parameters") or None,
                "multiValueQueryStringParameters": request.get("multi_value_query_string_parameters") or None,
                "pathParameters": request.get("path_parameters") or None,
                "stageVariables": context.stage_variables or None,
                "requestContext": context.context_variables,
            }
        try:
            result = (
                connect_to(region_name=context.region)
                .lambda_.request_metadata(
                    service_principal=ServicePrincipal.apigateway, source_arn=method_arn
                )
                .invoke(
                    FunctionName=function_arn, Payload=json.dumps(event), InvocationType="RequestResponse"
                )
            )
            payload = json.loads(result["Payload"].read() or b"null")
        except Exception as exc:
            LOG.warning("authorizer %s could not be invoked: %s", authorizer.get("id"), type(exc).__name__)
            raise AuthorizerFailureError("Internal server error") from None
        if result.get("FunctionError"):
            if isinstance(payload, dict) and payload.get("errorMessage") == "Unauthorized":
                raise UnauthorizedError("Unauthorized")
            raise AuthorizerFailureError("Internal server error")
        if not isinstance(payload, dict) or not payload.get("policyDocument"):
            raise AuthorizerFailureError("Internal server error")
        return payload
