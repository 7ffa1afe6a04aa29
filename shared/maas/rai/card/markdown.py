"""The card as Markdown (``card.md``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maas.rai.card.format import first_keys, fmt, group_rows, md_escape, scalar_rate, title


def _signature_lines(model: Mapping[str, Any]) -> list[str]:
    """One line per input (name, dtype, shape); cards written before the full signature show `input`."""
    tensors = model.get("inputs") or [model.get("input", {})]
    return [
        f"- Input: `{t.get('name')}` {t.get('dtype') or ''} shape {t.get('shape')}".replace("  ", " ")
        for t in tensors
    ]


def render_markdown(card: Mapping[str, Any]) -> str:
    model = card.get("model", {})
    lines = [f"# Model card: {title(model)}", ""]
    if model.get("description"):
        lines += [str(model["description"]), ""]
    lines += [
        f"- Created: {model.get('created_at')}",
        f"- Runtime: {model.get('runtime')}; framework: {fmt(model.get('framework'))}",
        *_signature_lines(model),
        f"- Output: `{model.get('output', {}).get('name')}` classes "
        f"{fmt(model.get('output', {}).get('class_labels'))}",
        f"- Sensitive features (masked in logs and audit): {fmt(model.get('sensitive_features')) or 'none'}",
        "",
        "## Intended use",
        "",
    ]
    for k, v in (card.get("intended_use") or {}).items():
        lines.append(f"- **{k.replace('_', ' ').capitalize()}**: {fmt(v)}")
    lines += ["", "## Training data", ""]
    for k, v in (card.get("training_data") or {}).items():
        lines.append(f"- **{k.replace('_', ' ')}**: {fmt(v)}")
    lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
    for k, v in (card.get("metrics") or {}).items():
        if isinstance(v, Mapping):
            continue
        lines.append(f"| {md_escape(str(k))} | {md_escape(fmt(v))} |")
    per_class = (card.get("metrics") or {}).get("per_class")
    if isinstance(per_class, Mapping) and per_class:
        lines += [
            "",
            "Per class:",
            "",
            "| class | " + " | ".join(first_keys(per_class)) + " |",
            "|---|" + "---|" * len(first_keys(per_class)),
        ]
        for cls, m in per_class.items():
            values = m if isinstance(m, Mapping) else {"value": m}
            lines.append(f"| {cls} | " + " | ".join(fmt(values.get(k)) for k in first_keys(per_class)) + " |")
    fair = card.get("fairness") or {}
    lines += ["", "## Fairness: per-group metrics and gaps", ""]
    rows = group_rows(fair)
    if rows:
        positive = fair.get("positive_class")
        if fair.get("attribute"):
            lines.append(
                f"Attribute: `{fair['attribute']}`" + (f", positive class `{positive}`" if positive else "")
            )
            lines.append("")
        lines += ["| group | n | accuracy | selection rate | TPR | FPR |", "|---|---|---|---|---|---|"]
        for g, m in rows:
            lines.append(
                f"| {md_escape(g)} | {fmt(m.get('n'))} | {fmt(m.get('accuracy'))} | "
                f"{fmt(scalar_rate(m, 'selection_rate', positive))} | "
                f"{fmt(scalar_rate(m, 'tpr', positive))} | "
                f"{fmt(scalar_rate(m, 'fpr', positive))} |"
            )
        if not positive:
            lines += ["", "Multi-class rates above are the maximum over classes (one-vs-rest)."]
        lines.append("")
    else:
        lines += ["No per-group evaluation was recorded.", ""]
    gaps = fair.get("gaps") or {}
    for k in ("demographic_parity_difference", "equalized_odds_difference"):
        if k in gaps:
            lines.append(f"- **{k.replace('_', ' ')}**: {fmt(gaps.get(k))}")
    if fair.get("gates"):
        lines.append(f"- **gates**: {fmt(fair.get('gates'))}")
    if "violations" in fair:
        lines.append(f"- **gate violations**: {fmt(fair.get('violations')) or 'none'}")
    lines += ["", "## Limitations", ""]
    lines += [f"- {x}" for x in card.get("limitations") or []]
    lines += ["", "## Ethical considerations", ""]
    lines += [f"- {x}" for x in card.get("ethical_considerations") or []]
    lines += ["", "## Contact", "", str(card.get("contact") or ""), ""]
    return "\n".join(lines)
