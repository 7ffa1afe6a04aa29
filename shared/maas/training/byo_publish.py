"""After a team's code trained a model: evaluate (their `evaluation` hook, or the builder loop's held-out
rows), write the model card, run the gates, then publish with `maas_models.importer.import_model` (the
code path of `maas models import`) and promote when the gates pass.

Without an evaluation the gates that need data are "not evaluated": the card says so, the manifest
declares the gates with nothing measured, and the registry refuses a production promotion.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maas.training.evaluation import GateResult, check_gates, classification_metrics, fairness_report
from maas.training.results import RunResult
from maas.training.source import CodeError
from maas.training.spec import TrainingSpec

log = logging.getLogger("maas.training")

NOT_EVALUATED = "not evaluated"
MAX_FINGERPRINT_FEATURES = 4096


@dataclass
class Measured:
    """What an evaluation measured: metrics, fairness block, gate result, fingerprint, labels."""

    metrics: dict[str, Any] = field(default_factory=dict)
    fairness: dict[str, Any] | None = None
    gate: GateResult | None = None
    fingerprint: dict[str, Any] | None = None
    class_labels: list[str] | None = None


def declared_gates(spec: TrainingSpec) -> dict[str, float]:
    p = spec.promotion
    pairs = (("min_accuracy", p.min_accuracy), ("max_fairness_gap", p.max_fairness_gap))
    return {k: float(v) for k, v in pairs if v is not None}


def measure(
    spec: TrainingSpec,
    y_true: Any,
    probabilities: Any,
    class_labels: list[str],
    groups: dict[str, Any] | None = None,
    extra_metrics: dict[str, Any] | None = None,
) -> Measured:
    """Classification metrics, fairness per group and the gates on held-out predictions."""
    proba = np.asarray(probabilities, dtype=np.float32)
    y = np.asarray(y_true)
    if y.dtype.kind not in "iu":
        index = {label: i for i, label in enumerate(class_labels)}
        y = np.array([index[str(v)] for v in y.tolist()])
    y = y.astype(np.int32)
    if proba.ndim != 2 or proba.shape[0] != len(y) or proba.shape[1] != len(class_labels):
        raise CodeError(
            f"evaluation: probabilities must be [rows, {len(class_labels)}] for {len(y)} labels, got "
            f"{list(proba.shape)}"
        )
    metrics = classification_metrics(y, proba, class_labels)
    metrics.update(dict(extra_metrics or {}))
    metrics["class_labels"] = class_labels
    sensitive = {k: np.asarray(v).astype(str) for k, v in (groups or {}).items()}
    gates = declared_gates(spec)
    fairness = fairness_report(y, proba, sensitive, class_labels, gates or None)
    if fairness is None and gates:
        fairness = {"groups": {}, "gaps": {}, "gates": gates, "violations": []}
    return Measured(metrics, fairness, check_gates(spec.promotion, metrics, fairness), None, class_labels)


def not_evaluated(spec: TrainingSpec, why: str) -> Measured:
    """No evaluation: declared gates fail as "not evaluated" (and the registry refuses production)."""
    gates = declared_gates(spec)
    failures = [f"{name}: {NOT_EVALUATED} ({why})" for name in gates]
    fairness = (
        {"groups": {}, "gaps": {}, "gates": gates, "violations": [], "status": NOT_EVALUATED}
        if gates
        else None
    )
    gate = GateResult(passed=not failures and spec.promotion.alias is not None, alias=spec.promotion.alias)
    gate.failures.extend(failures)
    log.warning("no evaluation (%s): gates needing data are %s", why, NOT_EVALUATED)
    return Measured({"evaluation": NOT_EVALUATED}, fairness, gate)


def from_hook(
    spec: TrainingSpec, hook: Any, model: Any, hp: dict[str, Any], labels: list[str] | None
) -> Measured:
    """Call the user's ``evaluation(model, hp)``; its dict: y_true, probabilities, optional
    class_labels, groups {name: [rows]}, metrics {name: number}, sample (rows for the fingerprint)."""
    out = hook(model, hp)
    if not isinstance(out, dict) or "y_true" not in out or "probabilities" not in out:
        raise CodeError(
            "evaluation: must return a dict with 'y_true' and 'probabilities' (see jobs/train/README.md)"
        )
    class_labels = [str(c) for c in (out.get("class_labels") or labels or [])]
    if not class_labels:
        n = int(np.asarray(out["probabilities"]).shape[-1])
        class_labels = [str(i) for i in range(n)]
    measured = measure(
        spec, out["y_true"], out["probabilities"], class_labels, out.get("groups"), out.get("metrics")
    )
    if out.get("sample") is not None:
        measured.fingerprint = sample_fingerprint(
            np.asarray(out["sample"]), np.asarray(out["y_true"]), class_labels
        )
    return measured


def sample_fingerprint(sample: np.ndarray, y: np.ndarray, class_labels: list[str]) -> dict[str, Any] | None:
    """The drift fingerprint of an input sample: rows flattened to features (pixels of small images),
    skipped for non-numeric or very wide inputs (the PSI check is per feature)."""
    from maas.training.fingerprint import fingerprint

    flat = sample.reshape(len(sample), -1) if sample.ndim > 1 else sample.reshape(-1, 1)
    if flat.dtype.kind not in "fiub" or flat.shape[1] > MAX_FINGERPRINT_FEATURES:
        log.info("input sample is %s %s: no drift fingerprint", flat.dtype, list(sample.shape))
        return None
    if y.dtype.kind not in "iu" or len(y) != len(flat):
        y = np.zeros(len(flat), dtype=np.int32)
    names = [f"x{i}" for i in range(flat.shape[1])]
    return fingerprint(flat.astype(np.float32), y.astype(np.int32), names, class_labels)


def publish_model(
    spec: TrainingSpec,
    source: Any,
    measured: Measured,
    result: RunResult,
    work: Path,
    *,
    training: dict[str, Any],
) -> None:
    """Card, then import_model (convert, verify against the source, Registry.publish manifest-last),
    then the promotion. A model that fails verification is a CodeError (nothing is published)."""
    from maas_models import Registry
    from maas_models.errors import ExportMismatch, UnsupportedModel
    from maas_models.importer import import_model

    from maas.training.publish import promote_if_passed, write_model_card

    card_dir = work / "card"
    card_dir.mkdir(parents=True, exist_ok=True)
    has_card = write_model_card(
        card_dir,
        spec,
        manifest_like={"name": spec.model_name, "runtime": "litert", "fingerprint": measured.fingerprint},
        metrics=measured.metrics,
        fairness=measured.fairness,
        history=list(training.get("history") or []),
        run_id=result.run_id,
    )
    actor = f"maas-train:{result.run_id}"
    registry = Registry(bucket=spec.models_bucket)
    extra = {
        "fingerprint": measured.fingerprint,
        "fairness": measured.fairness,
        "sensitive_features": list(spec.sensitive_columns),
        "training": {k: v for k, v in training.items() if k != "history"},
    }
    try:
        imported = import_model(
            source,
            spec.model_name,
            registry=registry,
            class_labels=measured.class_labels,
            metrics={k: v for k, v in measured.metrics.items() if k != "confusion_matrix"},
            actor=actor,
            work_dir=work,
            extra_metadata=extra,
            card_dir=card_dir if has_card else None,
        )
        version = imported.version
    except UnsupportedModel as exc:
        if isinstance(source, str | Path):
            raise CodeError(
                f"MAAS_MODEL_DIR: LiteRT cannot serve this model, nothing published: {exc}"
            ) from exc
        _keep_unpublished(source, card_dir, result, str(exc))
        return
    except (ExportMismatch, ValueError) as exc:
        raise CodeError(f"MAAS_MODEL_DIR: the model failed verification, nothing published: {exc}") from exc
    result.version = version
    imported_version = version
    result.metrics = {k: measured.metrics[k] for k in ("accuracy", "loss", "rows") if k in measured.metrics}
    log.info("published %s version %d", spec.model_name, imported_version)
    gate = measured.gate or not_evaluated(spec, "no gate result").gate
    assert gate is not None
    promote_if_passed(spec, registry, imported_version, gate, result, actor=actor, metrics=measured.metrics)


def _keep_unpublished(model: Any, card_dir: Path, result: RunResult, reason: str) -> None:
    """A trained Keras model the registry cannot serve yet (string inputs: TextVectorization needs the
    preprocessing issue): kept as ``<checkpoint_uri>/trained/model.keras`` with its card, for a later
    ``maas models import``; the run ends "trained_not_published" (exit 0: the training itself worked)."""
    from maas.training import storage

    target = storage.join(result.checkpoint_uri, "trained")
    local = card_dir.parent / "trained"
    local.mkdir(parents=True, exist_ok=True)
    model.save(str(local / "model.keras"))
    for card in card_dir.glob("card.*"):
        (local / card.name).write_bytes(card.read_bytes())
    storage.upload_dir(local, target)
    result.status = "trained_not_published"
    result.gates = {"passed": False, "failures": [f"not publishable yet: {reason}"]}
    log.warning("not published (%s); the trained model is kept at %s/model.keras", reason[:200], target)
