"""The card's plots as base64 PNG (training curves, confusion matrix, per-group rates).

Imports matplotlib lazily (the ``train`` extra): only the training job renders plots.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

from maas.rai.card.format import group_rows, scalar_rate


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
    rows = group_rows(fairness)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    positive = fairness.get("positive_class")
    series = {
        "accuracy": [r.get("accuracy") or 0.0 for _, r in rows],
        "selection rate": [scalar_rate(r, "selection_rate", positive) or 0.0 for _, r in rows],
        "TPR": [scalar_rate(r, "tpr", positive) or 0.0 for _, r in rows],
        "FPR": [scalar_rate(r, "fpr", positive) or 0.0 for _, r in rows],
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
