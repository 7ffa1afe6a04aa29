"""Steps 6-7 of a training run (jobs/train/README.md): model card, export (checked against Keras on
held-out rows), publish through the registry, and promotion when the gates pass."""

from __future__ import annotations

import importlib
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from maas.training.results import Evaluation, Prepared, RunResult
from maas.training.spec import TrainingSpec

log = logging.getLogger("maas.training")


def _card_module() -> Any | None:
    try:
        return importlib.import_module("maas.rai.card")
    except ModuleNotFoundError as exc:
        if exc.name in ("maas.rai", "maas.rai.card"):
            return None
        raise


def write_model_card(
    card_dir: Path,
    spec: TrainingSpec,
    *,
    manifest_like: dict[str, Any],
    metrics: dict[str, Any],
    fairness: dict[str, Any] | None,
    history: list[dict[str, Any]],
    run_id: str,
) -> bool:
    """card.json / card.md / card.html via maas.rai.card (False, and a warning, when it is not installed)."""
    card_mod = _card_module()
    if card_mod is None:
        log.warning("maas.rai.card is not installed: publishing without a model card")
        return False
    c = spec.card
    card = card_mod.build_card(
        spec.model_name,
        None,
        manifest=manifest_like,
        intended_use=c.intended_use,
        training_data={
            "sources": list(spec.dataset.uris) if spec.dataset else [],
            "label_column": spec.dataset.label_column if spec.dataset else None,
            "held_out_rows": metrics.get("rows"),
            "validation_split": spec.training.validation_split,
            "balance": spec.training.balance,
            "training_run": run_id,
            **({"code": spec.code.entry_point} if spec.code else {}),
        },
        metrics={k: v for k, v in metrics.items() if k not in ("history", "confusion_matrix")},
        fairness=fairness,
        limitations=list(c.limitations) if c.limitations else None,
        ethical_considerations=list(c.ethical_considerations) if c.ethical_considerations else None,
        contact=c.contact,
        description=c.description,
    )
    curves: dict[str, list[float]] = {}
    for entry in history:
        for key, value in entry.items():
            if key != "epoch":
                curves.setdefault(key, []).append(float(value))
    try:
        card_mod.write_card_files(card, card_dir, history=curves, confusion=metrics.get("confusion_matrix"))
    except ImportError as exc:  # matplotlib missing: cards without plots are still cards
        log.warning("model card plots unavailable (%s): writing the card without them", exc)
        card_mod.write_card_files(card, card_dir, plots=False)
    return (card_dir / "card.json").is_file()


def _held_out_tflite_check(
    out_dir: Path, x: np.ndarray, expected: np.ndarray, atol: float = 1e-4
) -> dict[str, Any]:
    """Compare model.tflite with the Keras model on held-out rows (export_keras checks seeded probes)."""
    from maas_models.backends.litert import LiteRTBackend
    from maas_models.export import compare_outputs

    rows = min(len(x), 2048)
    got = LiteRTBackend(model_content=(out_dir / "model.tflite").read_bytes()).predict(x[:rows])
    gap = compare_outputs(expected[:rows], got, atol=atol, what="model.tflite vs Keras on held-out rows")
    agree = float(np.mean(got.argmax(axis=1) == expected[:rows].argmax(axis=1)))
    return {"rows": rows, "max_abs_diff": gap, "argmax_agreement": agree, "atol": atol}


def export(
    spec: TrainingSpec,
    evaluation: Evaluation,
    prepared: Prepared,
    work: Path,
    *,
    info: Any,
    run_id: str,
    checkpoint_uri: str,
    history: list[dict[str, Any]],
) -> Path:
    """Step 6: card files, then ``export_keras`` (with the card), checked again on held-out rows; the
    run's training block goes into metadata.json. Returns the export directory."""
    from maas_models.export import export_keras
    from maas_models.importer import framework_versions

    data, metrics = prepared.data, evaluation.metrics
    out_dir = work / "export"
    card_dir = work / "card"
    shutil.rmtree(out_dir, ignore_errors=True)
    card_dir.mkdir(parents=True, exist_ok=True)
    manifest_like = {
        "name": spec.model_name,
        "runtime": "litert",
        "framework": framework_versions(),
        "inputs": [
            {
                "name": "features",
                "dtype": "float32",
                "shape": [-1, prepared.n_features],
                "feature_names": data.feature_names,
            }
        ],
        "outputs": [
            {
                "name": "probabilities",
                "dtype": "float32",
                "shape": [-1, prepared.n_classes],
                "class_labels": data.class_labels,
            }
        ],
        "fingerprint": prepared.fingerprint,
        "sensitive_features": list(spec.sensitive_columns),
    }
    has_card = write_model_card(
        card_dir,
        spec,
        manifest_like=manifest_like,
        metrics=metrics,
        fairness=evaluation.fairness,
        history=history,
        run_id=run_id,
    )
    export_keras(
        evaluation.export_model,
        out_dir,
        feature_names=data.feature_names,
        class_labels=data.class_labels,
        metrics=metrics,
        fingerprint=prepared.fingerprint,
        sensitive_features=list(spec.sensitive_columns),
        fairness=evaluation.fairness,
        card_dir=card_dir if has_card else None,
    )
    check = _held_out_tflite_check(out_dir, evaluation.x_val, evaluation.proba)
    meta_path = out_dir / "metadata.json"
    meta = orjson.loads(meta_path.read_bytes())
    meta.setdefault("metrics", {})["tflite_held_out"] = check
    meta["training"] = {
        "run_id": run_id,
        "spec_sha256": spec.digest(),
        "epochs": spec.training.epochs,
        "strategy": info.kind,
        "replicas": info.replicas,
        "gpus": info.gpus,
        "mixed_precision": info.mixed_precision,
        "checkpoint_uri": checkpoint_uri,
    }
    meta_path.write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    log.info(
        "tflite matches keras on %d held-out rows (max abs diff %.2g, argmax agreement %.4f)",
        check["rows"],
        check["max_abs_diff"],
        check["argmax_agreement"],
    )
    return out_dir


def publish_and_promote(spec: TrainingSpec, out_dir: Path, evaluation: Evaluation, result: RunResult) -> None:
    """Steps 6-7: ``Registry.publish`` (manifest.json last), then the alias when the gates pass."""
    from maas_models import Registry

    metrics, run_id = evaluation.metrics, result.run_id
    actor = f"maas-train:{run_id}"
    registry = Registry(bucket=spec.models_bucket)
    version = registry.publish(out_dir, spec.model_name, actor=actor)
    log.info(
        "published %s version %d to s3://%s/%s",
        spec.model_name,
        version,
        registry.bucket,
        registry.key(spec.model_name, version),
    )
    result.version = version
    result.metrics = {"accuracy": metrics["accuracy"], "loss": metrics["loss"], "rows": metrics["rows"]}
    promote_if_passed(spec, registry, version, evaluation.gate, result, actor=actor, metrics=metrics)


def promote_if_passed(
    spec: TrainingSpec,
    registry: Any,
    version: int,
    gate: Any,
    result: RunResult,
    *,
    actor: str,
    metrics: dict[str, Any],
) -> None:
    """Step 7: move ``promotion.alias`` to the version when the gates passed (the registry re-checks
    production's gates from the manifest); a refusal leaves the version published, not promoted."""
    run_id = result.run_id
    result.gates = gate.as_dict()
    result.alias = spec.promotion.alias
    if gate.passed and spec.promotion.alias:
        from maas_models.errors import PromotionRefused

        try:
            registry.promote(
                spec.model_name,
                version,
                spec.promotion.alias,
                actor=actor,
                reason=f"training run {run_id}: gates passed ({_accuracy(metrics)} accuracy)",
            )
            result.promoted = True
            log.info("promoted %s version %d to %s", spec.model_name, version, spec.promotion.alias)
        except PromotionRefused as exc:
            log.warning("registry refused the promotion: %s", exc)
            gate.failures.append(str(exc))
            result.gates = gate.as_dict()
    elif spec.promotion.alias:
        log.warning(
            "not promoting %s version %d to %s: %s",
            spec.model_name,
            version,
            spec.promotion.alias,
            "; ".join(gate.failures),
        )


def _accuracy(metrics: dict[str, Any]) -> str:
    value = metrics.get("accuracy")
    return f"{float(value):.4f}" if isinstance(value, int | float) else "unmeasured"
