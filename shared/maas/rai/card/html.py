"""The card as one self-contained HTML page (``card.html``), rendered from the Jinja2 template
``card.html.j2`` with autoescaping: every value from the card (group names, descriptions, labels) is
escaped, so nothing in a card becomes markup. Plots come from ``maas.rai.card.plots`` (matplotlib).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from maas.rai.card.format import first_keys, fmt, group_rows, scalar_rate, title

TEMPLATE = "card.html.j2"


@cache
def _template() -> Any:
    """Built once, on the first page: jinja2 is imported only when a card is rendered as HTML."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        autoescape=True,
        trim_blocks=True,
        keep_trailing_newline=False,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["fmt"] = fmt
    return env.get_template(TEMPLATE)


def _pairs(section: Mapping[str, Any] | None) -> list[tuple[str, Any]]:
    return [(k.replace("_", " "), v) for k, v in (section or {}).items()]


def render_html(
    card: Mapping[str, Any],
    *,
    history: Mapping[str, Sequence[float]] | None = None,
    confusion: Sequence[Sequence[float]] | None = None,
    plots: bool = True,
) -> str:
    """A single self-contained HTML page (inline CSS, plots as base64 PNG ``data:`` URIs, no scripts)."""
    model = card.get("model", {})
    fair = card.get("fairness") or {}
    metrics = card.get("metrics") or {}
    per_class = metrics.get("per_class")
    per_class = per_class if isinstance(per_class, Mapping) and per_class else {}
    keys = first_keys(per_class) if per_class else []
    positive = fair.get("positive_class")
    rows = group_rows(fair)
    gaps: list[tuple[str, Any]] = [
        (k.replace("_", " "), v) for k, v in (fair.get("gaps") or {}).items() if not isinstance(v, Mapping)
    ]
    if fair.get("gates"):
        gaps.append(("gates", fair.get("gates")))
    if "violations" in fair:
        gaps.append(("gate violations", fair.get("violations") or "none"))
    curves = confusion_png = groups_png = None
    if plots:
        from maas.rai.card import plots as plotting

        curves = plotting.plot_history(history) if history else None
        if confusion is not None:
            confusion_png = plotting.plot_confusion(confusion, model.get("output", {}).get("class_labels"))
        groups_png = plotting.plot_groups(fair) if rows else None
    return str(
        _template().render(
            title=title(model),
            description=str(model.get("description") or ""),
            properties=[
                ("created", model.get("created_at")),
                ("runtime", model.get("runtime")),
                ("framework", model.get("framework")),
                *(
                    (f"input {t.get('name')}", f"{t.get('dtype')} {t.get('shape')}")
                    for t in model.get("inputs") or [model.get("input", {})]
                ),
                ("classes", model.get("output", {}).get("class_labels")),
                ("sensitive features", model.get("sensitive_features") or "none"),
            ],
            intended_use=_pairs(card.get("intended_use")),
            training_data=_pairs(card.get("training_data")),
            metrics=[(k, v) for k, v in metrics.items() if not isinstance(v, Mapping)],
            per_class_keys=keys,
            per_class=[
                (c, *((m.get(k) for k in keys) if isinstance(m, Mapping) else (m,)))
                for c, m in per_class.items()
            ],
            curves_png=curves,
            confusion_png=confusion_png,
            groups=[
                (
                    g,
                    m.get("n"),
                    m.get("accuracy"),
                    scalar_rate(m, "selection_rate", positive),
                    scalar_rate(m, "tpr", positive),
                    scalar_rate(m, "fpr", positive),
                )
                for g, m in rows
            ],
            attribute=fair.get("attribute"),
            positive=positive,
            groups_png=groups_png,
            gaps=gaps,
            limitations=[str(x) for x in card.get("limitations") or []],
            ethical_considerations=[str(x) for x in card.get("ethical_considerations") or []],
            contact=str(card.get("contact") or ""),
        )
    )
