"""Tenant ids and tenant-namespaced model names: the one place the convention is checked.

A tenant's models are named ``<tenant>--<model>`` in the registry (``acme--churn``). Tenant ids may not
contain ``--`` or ``_``, so the first ``--`` always splits owner from model and no tenant id is a
prefix trick for another (``acme`` cannot own ``acme-x--m``: its namespace is ``acme--``). Everything is
validated by full-match regexes of lowercase ASCII: ``../``, ``%2F``, upper case, dots, slashes and
control characters never pass, and nothing is normalised (normalising would let two spellings meet).
"""

from __future__ import annotations

import re

SEPARATOR = "--"
TENANT_RE = re.compile(r"^[a-z][a-z0-9]{1,30}(?:-[a-z0-9]+)*$")
_MAX_TENANT = 32
# the registry's own rule (maas_models.naming.NAME_RE) applies to the whole name as well
_MODEL_PART_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_]|-(?!-))*$")


class InvalidTenantName(ValueError):
    """A tenant id or tenant model name that breaks the naming rules."""


def validate_tenant(tenant: object) -> str:
    if (
        not isinstance(tenant, str)
        or len(tenant) > _MAX_TENANT
        or SEPARATOR in tenant
        or not TENANT_RE.fullmatch(tenant)
    ):
        raise InvalidTenantName(
            f"invalid tenant id {tenant!r}: use 2-32 lowercase letters, digits and single '-', "
            "starting with a letter"
        )
    return tenant


def model_name(tenant: str, model: str) -> str:
    """The registry name of a tenant's model: ``<tenant>--<model>``."""
    from maas_models.naming import validate_name

    validate_tenant(tenant)
    if not isinstance(model, str) or not _MODEL_PART_RE.fullmatch(model) or model.endswith("-"):
        raise InvalidTenantName(
            f"invalid model name {model!r}: lowercase letters, digits, '_' and single '-', "
            "starting with a letter or digit"
        )
    return validate_name(f"{tenant}{SEPARATOR}{model}")


def owner_of(name: object) -> str | None:
    """The tenant that owns a registry model name, or None for a name outside every namespace."""
    if not isinstance(name, str) or SEPARATOR not in name:
        return None
    tenant, _, model = name.partition(SEPARATOR)
    try:
        model_name(tenant, model)
    except (InvalidTenantName, ValueError):
        return None
    return tenant


def may_read(name: str, tenant: str, grants: frozenset[str] | set[str]) -> bool:
    """Whether ``tenant`` may use model ``name``: it is in the tenant's namespace or was granted."""
    return owner_of(name) == tenant or name in grants
