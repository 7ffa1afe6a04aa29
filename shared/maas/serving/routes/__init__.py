"""Route modules of the predict API. Each module exposes `router`, a Powertools `Router`.

`maas.serving.http` includes every router listed in ROUTERS into the REST API (payload 1.0), HTTP API
(payload 2.0) and Function URL resolvers, so a route is written once for all three event shapes.

To add routes (e.g. responsible-AI `:explain` and `/card`): put them in `maas/serving/routes/rai.py`
(already included below) or add a module here exposing `router` and list its name in ROUTERS. Use the
helpers in `maas.serving.routes.common` (`service()`, `json_response()`, `read_body()`) so errors,
limits and serialization behave like every other route.
"""

from __future__ import annotations

# Order matters only for overlapping rules: Powertools tries static rules first, then dynamic ones
# in the order they were added.
ROUTERS: tuple[str, ...] = ("tfserving", "v2", "catalog", "rai")
