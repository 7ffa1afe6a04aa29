"""Formatting shared by the card's renderings (Markdown, HTML): values, titles, per-group rows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def group_rows(fairness: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    groups = fairness.get("groups") or {}
    return [(str(g), m) for g, m in groups.items() if isinstance(m, Mapping)]


def scalar_rate(m: Mapping[str, Any], key: str, positive: str | None) -> Any:
    value = m.get(key)
    if isinstance(value, Mapping):
        if positive is not None and positive in value:
            return value[positive]
        present = [v for v in value.values() if v is not None]
        return max(present) if present else None
    return value


def title(model: Mapping[str, Any]) -> str:
    """``name vN``; just the name while the version is not known yet (cards are written before publish)."""
    version = model.get("version")
    return f"{model.get('name')}" + (f" v{version}" if version is not None else "")


def first_keys(per_class: Mapping[str, Any]) -> list[str]:
    for m in per_class.values():
        if isinstance(m, Mapping):
            return [str(k) for k in m]
    return ["value"]
