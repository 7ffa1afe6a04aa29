"""Model cards (Mitchell et al. 2019) per model version: JSON, Markdown and self-contained HTML.

The training job builds the card (``build_card``) and writes ``card.json`` / ``card.md`` /
``card.html`` beside the exported model (``write_card_files``; ``export_keras(card_dir=...)`` copies
them into the version, the manifest lists them). The predict function serves them at
``GET /v1/models/{m}[/versions/{v}]/card`` with content negotiation (``negotiate``).

One module per concern: ``build`` (the card dict), ``markdown``, ``html`` (a Jinja2 template with
autoescaping), ``plots`` (matplotlib, imported lazily: the ``train`` extra), ``negotiation``
(``Accept``), ``format`` (shared formatting). Building, Markdown and negotiation are pure Python, so
the serving path can use them without plotting libraries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from maas.rai.card.build import (
    CARD_FILES,
    CARD_SCHEMA_VERSION,
    DEFAULT_ETHICS,
    DEFAULT_LIMITATIONS,
    build_card,
)
from maas.rai.card.html import render_html
from maas.rai.card.markdown import render_markdown
from maas.rai.card.negotiation import negotiate

__all__ = [
    "CARD_FILES",
    "CARD_SCHEMA_VERSION",
    "DEFAULT_ETHICS",
    "DEFAULT_LIMITATIONS",
    "build_card",
    "negotiate",
    "render_html",
    "render_markdown",
    "write_card_files",
]


def write_card_files(
    card: Mapping[str, Any],
    out_dir: str | Path,
    *,
    history: Mapping[str, Sequence[float]] | None = None,
    confusion: Sequence[Sequence[float]] | None = None,
    plots: bool = True,
) -> dict[str, Path]:
    """Write card.json, card.md and card.html into ``out_dir``; returns {media type: path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {media: out / fname for media, fname in CARD_FILES.items()}
    paths["application/json"].write_bytes(
        orjson.dumps(card, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    )
    paths["text/markdown"].write_text(render_markdown(card), encoding="utf-8")
    paths["text/html"].write_text(
        render_html(card, history=history, confusion=confusion, plots=plots), encoding="utf-8"
    )
    return paths
