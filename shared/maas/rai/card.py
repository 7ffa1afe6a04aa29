"""Model cards (Mitchell et al. 2019) per model version: JSON, Markdown and self-contained HTML.

The training job builds the card (``build_card``) and writes ``card.json`` / ``card.md`` /
``card.html`` beside the exported model (``write_card_files``; ``export_keras(card_dir=...)`` copies
them into the version, the manifest lists them). The predict function serves them at
``GET /v1/models/{m}[/versions/{v}]/card`` with content negotiation (``negotiate``).

Rendering HTML imports matplotlib lazily (the ``train`` extra); building, Markdown and negotiation
are pure Python, so the serving path can use this module without plotting libraries.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

CARD_SCHEMA_VERSION = 1
CARD_FILES: dict[str, str] = {
    "application/json": "card.json",
    "text/markdown": "card.md",
    "text/html": "card.html",
}

DEFAULT_LIMITATIONS: tuple[str, ...] = (
    "Trained and evaluated on one data set; performance on data from another distribution is unknown. "
    "Watch the drift metrics (PSI per feature) and re-evaluate when they rise.",
    "Probabilities are not guaranteed to be calibrated.",
    "Per-group metrics cover only the attributes declared at training time; small groups give noisy rates.",
)
DEFAULT_ETHICS: tuple[str, ...] = (
    "Do not use the model as the sole basis of decisions with legal or similarly significant effects "
    "on people; "
    "keep a human in the loop and offer a way to contest a decision.",
    "Features declared sensitive are masked in logs and audit records; request payloads are never logged.",
    "Promotion to production is gated on the declared fairness gaps; "
    "any override is recorded in the audit trail.",
)


def _raw(manifest: Any) -> Mapping[str, Any]:
    raw = getattr(manifest, "raw", manifest)
    return raw if isinstance(raw, Mapping) else {}


def _jsonable(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY, default=str))


def build_card(
    name: str | None = None,
    version: int | None = None,
    *,
    manifest: Any = None,
    intended_use: str | Mapping[str, Any] | None = None,
    training_data: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    fairness: Mapping[str, Any] | None = None,
    limitations: Sequence[str] | None = None,
    ethical_considerations: Sequence[str] | None = None,
    contact: str | None = None,
    description: str | None = None,
    created_at: str | None = None,
) -> dict[str, Any]:
    """The card as a JSON-ready dict. Anything not given is taken from ``manifest`` when present."""
    raw = _raw(manifest)
    inputs = (raw.get("inputs") or [{}])[0]
    outputs = (raw.get("outputs") or [{}])[0]
    fp = raw.get("fingerprint") or {}
    use: dict[str, Any]
    if isinstance(intended_use, Mapping):
        use = dict(intended_use)
    else:
        use = {
            "primary_uses": intended_use
            or "Classification of tabular feature vectors into the classes listed below.",
            "primary_users": "Applications calling the maas prediction API.",
            "out_of_scope": "Inputs unlike the training data; decisions about people without human review.",
        }
    data_summary: dict[str, Any] = {
        "rows": fp.get("rows"),
        "features": len(inputs.get("feature_names") or []) or None,
        "fingerprint_sha256": fp.get("sha256"),
    }
    if training_data:
        data_summary.update(dict(training_data))
    fair = dict(fairness if fairness is not None else raw.get("fairness") or {})
    card: dict[str, Any] = {
        "schema_version": CARD_SCHEMA_VERSION,
        "model": {
            "name": name if name is not None else raw.get("name"),
            "version": version if version is not None else raw.get("version"),
            "created_at": created_at
            or raw.get("created_at")
            or datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "description": description or "",
            "framework": raw.get("framework") or {},
            "runtime": raw.get("runtime"),
            "input": {
                "name": inputs.get("name"),
                "shape": inputs.get("shape"),
                "feature_names": inputs.get("feature_names"),
            },
            "output": {
                "name": outputs.get("name"),
                "shape": outputs.get("shape"),
                "class_labels": outputs.get("class_labels"),
            },
            "sensitive_features": list(raw.get("sensitive_features") or []),
        },
        "intended_use": use,
        "training_data": data_summary,
        "metrics": dict(metrics if metrics is not None else raw.get("metrics") or {}),
        "fairness": fair,
        "limitations": list(limitations if limitations is not None else DEFAULT_LIMITATIONS),
        "ethical_considerations": list(
            ethical_considerations if ethical_considerations is not None else DEFAULT_ETHICS
        ),
        "contact": contact or "the model owner (set `contact` when training)",
    }
    return _jsonable(card)


# ------------------------------------------------------------------------------------------------
# Markdown


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _group_rows(fairness: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    groups = fairness.get("groups") or {}
    return [(str(g), m) for g, m in groups.items() if isinstance(m, Mapping)]


def _scalar_rate(m: Mapping[str, Any], key: str, positive: str | None) -> Any:
    value = m.get(key)
    if isinstance(value, Mapping):
        if positive is not None and positive in value:
            return value[positive]
        present = [v for v in value.values() if v is not None]
        return max(present) if present else None
    return value


def _title(model: Mapping[str, Any]) -> str:
    """``name vN``; just the name while the version is not known yet (cards are written before publish)."""
    version = model.get("version")
    return f"{model.get('name')}" + (f" v{version}" if version is not None else "")


def render_markdown(card: Mapping[str, Any]) -> str:
    model = card.get("model", {})
    lines = [f"# Model card: {_title(model)}", ""]
    if model.get("description"):
        lines += [str(model["description"]), ""]
    lines += [
        f"- Created: {model.get('created_at')}",
        f"- Runtime: {model.get('runtime')}; framework: {_fmt(model.get('framework'))}",
        f"- Input: `{model.get('input', {}).get('name')}` shape {model.get('input', {}).get('shape')}",
        f"- Output: `{model.get('output', {}).get('name')}` classes "
        f"{_fmt(model.get('output', {}).get('class_labels'))}",
        f"- Sensitive features (masked in logs and audit): {_fmt(model.get('sensitive_features')) or 'none'}",
        "",
        "## Intended use",
        "",
    ]
    for k, v in (card.get("intended_use") or {}).items():
        lines.append(f"- **{k.replace('_', ' ').capitalize()}**: {_fmt(v)}")
    lines += ["", "## Training data", ""]
    for k, v in (card.get("training_data") or {}).items():
        lines.append(f"- **{k.replace('_', ' ')}**: {_fmt(v)}")
    lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
    for k, v in (card.get("metrics") or {}).items():
        if isinstance(v, Mapping):
            continue
        lines.append(f"| {_md_escape(str(k))} | {_md_escape(_fmt(v))} |")
    per_class = (card.get("metrics") or {}).get("per_class")
    if isinstance(per_class, Mapping) and per_class:
        lines += [
            "",
            "Per class:",
            "",
            "| class | " + " | ".join(_first_keys(per_class)) + " |",
            "|---|" + "---|" * len(_first_keys(per_class)),
        ]
        for cls, m in per_class.items():
            values = m if isinstance(m, Mapping) else {"value": m}
            lines.append(
                f"| {cls} | " + " | ".join(_fmt(values.get(k)) for k in _first_keys(per_class)) + " |"
            )
    fair = card.get("fairness") or {}
    lines += ["", "## Fairness: per-group metrics and gaps", ""]
    rows = _group_rows(fair)
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
                f"| {_md_escape(g)} | {_fmt(m.get('n'))} | {_fmt(m.get('accuracy'))} | "
                f"{_fmt(_scalar_rate(m, 'selection_rate', positive))} | "
                f"{_fmt(_scalar_rate(m, 'tpr', positive))} | "
                f"{_fmt(_scalar_rate(m, 'fpr', positive))} |"
            )
        if not positive:
            lines += ["", "Multi-class rates above are the maximum over classes (one-vs-rest)."]
        lines.append("")
    else:
        lines += ["No per-group evaluation was recorded.", ""]
    gaps = fair.get("gaps") or {}
    for k in ("demographic_parity_difference", "equalized_odds_difference"):
        if k in gaps:
            lines.append(f"- **{k.replace('_', ' ')}**: {_fmt(gaps.get(k))}")
    if fair.get("gates"):
        lines.append(f"- **gates**: {_fmt(fair.get('gates'))}")
    if "violations" in fair:
        lines.append(f"- **gate violations**: {_fmt(fair.get('violations')) or 'none'}")
    lines += ["", "## Limitations", ""]
    lines += [f"- {x}" for x in card.get("limitations") or []]
    lines += ["", "## Ethical considerations", ""]
    lines += [f"- {x}" for x in card.get("ethical_considerations") or []]
    lines += ["", "## Contact", "", str(card.get("contact") or ""), ""]
    return "\n".join(lines)


def _first_keys(per_class: Mapping[str, Any]) -> list[str]:
    for m in per_class.values():
        if isinstance(m, Mapping):
            return [str(k) for k in m]
    return ["value"]


# ------------------------------------------------------------------------------------------------
# HTML with plots


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def plot_history(history: Mapping[str, Sequence[float]]) -> str | None:
    """Training curves (one panel for losses, one for everything else) as base64 PNG."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    losses = {k: v for k, v in history.items() if "loss" in k}
    others = {k: v for k, v in history.items() if "loss" not in k}
    panels = [p for p in (losses, others) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.2), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        for k, v in panel.items():
            ax.plot(range(1, len(v) + 1), list(v), marker="o", markersize=3, label=k)
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    return _png(fig)


def plot_confusion(confusion: Sequence[Sequence[float]], labels: Sequence[str] | None = None) -> str | None:
    import numpy as np

    cm = np.asarray(confusion, dtype=float)
    if cm.ndim != 2 or cm.size == 0:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = cm.shape[0]
    fig, ax = plt.subplots(figsize=(0.45 * n + 2.5, 0.45 * n + 2))
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ticks = list(labels) if labels is not None and len(labels) == n else [str(i) for i in range(n)]
    ax.set_xticks(range(n), ticks, rotation=90 if n > 12 else 0)
    ax.set_yticks(range(n), ticks)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 12:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    f"{int(cm[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if cm[i, j] > cm.max() / 2 else "black",
                )
    return _png(fig)


def plot_groups(fairness: Mapping[str, Any]) -> str | None:
    rows = _group_rows(fairness)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    positive = fairness.get("positive_class")
    series = {
        "accuracy": [r.get("accuracy") or 0.0 for _, r in rows],
        "selection rate": [_scalar_rate(r, "selection_rate", positive) or 0.0 for _, r in rows],
        "TPR": [_scalar_rate(r, "tpr", positive) or 0.0 for _, r in rows],
        "FPR": [_scalar_rate(r, "fpr", positive) or 0.0 for _, r in rows],
    }
    x = np.arange(len(rows))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.2 * len(rows) + 2), 3.2))
    for i, (label, values) in enumerate(series.items()):
        ax.bar(x + i * width, values, width, label=label)
    ax.set_xticks(x + width * (len(series) - 1) / 2, [g for g, _ in rows])
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7, ncols=4, loc="upper center", bbox_to_anchor=(0.5, 1.18))
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


_CSS = (
    "body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:960px;margin:2em auto;"
    "padding:0 1em;color:#222}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
    "padding:.25em .6em;text-align:left}th{background:#f4f4f4}img{max-width:100%}code{background:#f4f4f4}"
)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(
    card: Mapping[str, Any],
    *,
    history: Mapping[str, Sequence[float]] | None = None,
    confusion: Sequence[Sequence[float]] | None = None,
    plots: bool = True,
) -> str:
    """A single self-contained HTML page (inline CSS, plots as base64 PNG ``data:`` URIs, no scripts)."""
    e = html.escape
    model = card.get("model", {})
    fair = card.get("fairness") or {}
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Model card: {e(_title(model))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Model card: {e(_title(model))}</h1>",
    ]
    if model.get("description"):
        parts.append(f"<p>{e(str(model['description']))}</p>")
    parts.append(
        _html_table(
            ["property", "value"],
            [
                ("created", model.get("created_at")),
                ("runtime", model.get("runtime")),
                ("framework", model.get("framework")),
                ("input shape", model.get("input", {}).get("shape")),
                ("classes", model.get("output", {}).get("class_labels")),
                ("sensitive features", model.get("sensitive_features") or "none"),
            ],
        )
    )
    parts.append("<h2>Intended use</h2>")
    parts.append(
        _html_table(["", ""], [(k.replace("_", " "), v) for k, v in (card.get("intended_use") or {}).items()])
    )
    parts.append("<h2>Training data</h2>")
    parts.append(
        _html_table(
            ["", ""], [(k.replace("_", " "), v) for k, v in (card.get("training_data") or {}).items()]
        )
    )
    parts.append("<h2>Metrics</h2>")
    metrics = card.get("metrics") or {}
    parts.append(
        _html_table(["metric", "value"], [(k, v) for k, v in metrics.items() if not isinstance(v, Mapping)])
    )
    per_class = metrics.get("per_class")
    if isinstance(per_class, Mapping) and per_class:
        keys = _first_keys(per_class)
        parts.append(
            _html_table(
                ["class", *keys],
                [
                    (c, *((m.get(k) for k in keys) if isinstance(m, Mapping) else (m,)))
                    for c, m in per_class.items()
                ],
            )
        )
    if plots and history:
        img = plot_history(history)
        if img:
            parts.append(
                f"<h3>Training curves</h3><img alt='training curves' src='data:image/png;base64,{img}'>"
            )
    if plots and confusion is not None:
        img = plot_confusion(confusion, model.get("output", {}).get("class_labels"))
        if img:
            parts.append(
                f"<h3>Confusion matrix</h3><img alt='confusion matrix' src='data:image/png;base64,{img}'>"
            )
    parts.append("<h2>Fairness: per-group metrics and gaps</h2>")
    rows = _group_rows(fair)
    if rows:
        positive = fair.get("positive_class")
        if fair.get("attribute"):
            parts.append(
                f"<p>Attribute <code>{e(str(fair['attribute']))}</code>"
                + (f", positive class <code>{e(str(positive))}</code>" if positive else "")
                + "</p>"
            )
        parts.append(
            _html_table(
                ["group", "n", "accuracy", "selection rate", "TPR", "FPR"],
                [
                    (
                        g,
                        m.get("n"),
                        m.get("accuracy"),
                        _scalar_rate(m, "selection_rate", positive),
                        _scalar_rate(m, "tpr", positive),
                        _scalar_rate(m, "fpr", positive),
                    )
                    for g, m in rows
                ],
            )
        )
        if not positive:
            parts.append("<p>Multi-class rates are the maximum over classes (one-vs-rest).</p>")
        if plots:
            img = plot_groups(fair)
            if img:
                parts.append(f"<img alt='per-group metrics' src='data:image/png;base64,{img}'>")
    else:
        parts.append("<p>No per-group evaluation was recorded.</p>")
    gaps = fair.get("gaps") or {}
    gap_rows: list[tuple[str, Any]] = [
        (k.replace("_", " "), v) for k, v in gaps.items() if not isinstance(v, Mapping)
    ]
    if fair.get("gates"):
        gap_rows.append(("gates", fair.get("gates")))
    if "violations" in fair:
        gap_rows.append(("gate violations", fair.get("violations") or "none"))
    if gap_rows:
        parts.append(_html_table(["gap", "value"], gap_rows))
    parts.append(
        "<h2>Limitations</h2><ul>"
        + "".join(f"<li>{e(str(x))}</li>" for x in card.get("limitations") or [])
        + "</ul>"
    )
    parts.append(
        "<h2>Ethical considerations</h2><ul>"
        + "".join(f"<li>{e(str(x))}</li>" for x in card.get("ethical_considerations") or [])
        + "</ul>"
    )
    parts.append(f"<h2>Contact</h2><p>{e(str(card.get('contact') or ''))}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


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


# ------------------------------------------------------------------------------------------------
# Serving: content negotiation


def negotiate(accept: str | None, available: Sequence[str] = tuple(CARD_FILES)) -> str | None:
    """The media type to serve for an ``Accept`` header (RFC 9110 q-values, ``*/*``, ``text/*``);
    None means 406. A missing or empty header gets JSON."""
    if accept is None or not accept.strip():
        return (
            "application/json" if "application/json" in available else (available[0] if available else None)
        )
    offers: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        if not media:
            continue
        q = 1.0
        for param in fields[1:]:
            if param.lower().startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        offers.append((q, position, media))
    best: tuple[float, int, int, str] | None = None  # (q, specificity, -position, media)
    for q, position, media in offers:
        if q <= 0:
            continue
        for candidate in available:
            if media == candidate:
                spec = 2
            elif media == "*/*":
                spec = 0
            elif media.endswith("/*") and candidate.startswith(media[:-1]):
                spec = 1
            else:
                continue
            # Explicitly refused types (q=0) are never chosen through a wildcard.
            if any(m == candidate and qq <= 0 for qq, _, m in offers):
                continue
            key = (q, spec, -position - (available.index(candidate) if spec == 0 else 0), candidate)
            if best is None or key[:3] > best[:3]:
                best = key
    return best[3] if best else None
