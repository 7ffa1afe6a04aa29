"""Validation of model names, versions and aliases; S3 keys are only ever built from validated parts."""

from __future__ import annotations

import re

from maas_models.errors import InvalidModelName

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Aliases follow the name rule but must start with a letter, so "3" is always a version.
ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
VERSION_RE = re.compile(r"^[1-9][0-9]{0,17}$")
LATEST = "latest"
RESERVED_ALIASES = frozenset({LATEST, "aliases", "versions"})


def validate_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidModelName(
            f"invalid model name {name!r}: use 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def validate_version(version: object) -> int:
    if isinstance(version, bool):
        raise InvalidModelName(f"invalid model version {version!r}: must be a positive integer")
    if isinstance(version, int):
        if version < 1:
            raise InvalidModelName(f"invalid model version {version!r}: must be a positive integer")
        return version
    if isinstance(version, str) and VERSION_RE.fullmatch(version):
        return int(version)
    raise InvalidModelName(f"invalid model version {version!r}: must be a positive integer")


def validate_alias(alias: object, *, allow_latest: bool = False) -> str:
    if not isinstance(alias, str) or not ALIAS_RE.fullmatch(alias):
        raise InvalidModelName(
            f"invalid alias {alias!r}: use 1-63 lowercase letters, digits, '-' or '_', starting with a letter"
        )
    if alias in RESERVED_ALIASES and not (allow_latest and alias == LATEST):
        raise InvalidModelName(f"alias {alias!r} is reserved")
    return alias


def parse_spec(spec: int | str | None) -> int | str:
    """A version (int) or an alias name ("latest" included) from what a caller passed."""
    if spec is None or spec == "":
        return LATEST
    if isinstance(spec, int) and not isinstance(spec, bool):
        return validate_version(spec)
    if isinstance(spec, str) and spec[:1].isdigit():
        return validate_version(spec)
    return validate_alias(spec, allow_latest=True)


def validate_relpath(path: str) -> str:
    """A file path inside a version directory: relative, posix, no '..', no odd characters."""
    parts = path.split("/")
    if (
        not path
        or path.startswith("/")
        or "\\" in path
        or any(p in ("", ".", "..") for p in parts)
        or not re.fullmatch(r"[A-Za-z0-9._/-]+", path)
    ):
        raise InvalidModelName(f"invalid artifact path {path!r}")
    return path
