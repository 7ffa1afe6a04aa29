"""Building a model card (Mitchell et al. 2019): the JSON-ready dict every rendering starts from."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from maas_models.manifest import document

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
    raw = document(manifest)
    all_inputs = [dict(t) for t in raw.get("inputs") or [{}]]
    all_outputs = [dict(t) for t in raw.get("outputs") or [{}]]
    inputs, outputs = all_inputs[0], all_outputs[0]
    tabular = len(all_inputs) == 1 and len(inputs.get("shape") or []) == 2
    fp = raw.get("fingerprint") or {}
    use: dict[str, Any]
    if isinstance(intended_use, Mapping):
        use = dict(intended_use)
    else:
        use = {
            "primary_uses": intended_use
            or (
                "Classification of tabular feature vectors into the classes listed below."
                if tabular
                else "Predictions from the tensor inputs listed below (as the model's owner documents them)."
            ),
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
            # the full signature: every named input and output with dtype and shape (null = variable)
            "inputs": [{k: t.get(k) for k in ("name", "dtype", "shape")} for t in all_inputs],
            "outputs": [{k: t.get(k) for k in ("name", "dtype", "shape")} for t in all_outputs],
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
