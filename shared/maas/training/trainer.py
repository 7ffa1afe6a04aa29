"""One training run end to end: data -> (resumable) training -> evaluation -> export -> publish -> promote.

Imports TensorFlow (lazily, inside `run`): only the training container and `maas train run` load this.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from maas.training import data as data_mod
from maas.training import storage
from maas.training.checkpoint import CheckpointStore, StopFlag, TrainingInterrupted, make_callback
from maas.training.evaluation import check_gates, classification_metrics, fairness_report
from maas.training.fingerprint import fingerprint
from maas.training.spec import TrainingSpec

log = logging.getLogger("maas.training")

EXIT_INTERRUPTED = 143  # 128 + SIGTERM: what a process killed by SIGTERM would report


@dataclass
class RunResult:
    model_name: str
    run_id: str
    checkpoint_uri: str
    status: str  # "published" | "already_published" | "interrupted" | "worker"
    epochs_total: int
    resumed_from_epoch: int = 0
    epochs_run: list[int] = field(default_factory=list)
    version: int | None = None
    promoted: bool = False
    alias: str | None = None
    gates: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_id_for(spec: TrainingSpec) -> str:
    """Stable across retries: the Batch job id (attempts share it; '#<node>' stripped), else the spec hash."""
    job = os.environ.get("AWS_BATCH_JOB_ID", "")
    if job:
        return job.split("#", 1)[0].split(":", 1)[0]
    return "spec-" + spec.digest()[:16]


def checkpoint_uri_for(spec: TrainingSpec, run_id: str) -> str:
    if spec.checkpoint_uri:
        return spec.checkpoint_uri.rstrip("/") + "/"
    bucket = spec.models_bucket or os.environ.get("MAAS_MODELS_BUCKET")
    if not bucket:
        raise ValueError(
            "checkpoint_uri: not set and no models bucket (models_bucket / MAAS_MODELS_BUCKET) to default to"
        )
    return f"s3://{bucket}/checkpoints/{spec.model_name}/{run_id}/"


def _progress_callback(total_epochs: int, steps: int) -> Any:
    import keras

    class ProgressLog(keras.callbacks.Callback):
        """One log line per epoch (CloudWatch-friendly); Keras draws the bar itself on a TTY."""

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            shown = " ".join(f"{k}={float(v):.4f}" for k, v in sorted((logs or {}).items()))
            log.info(
                "epoch %d/%d %s steps=%d time=%.2fs",
                epoch + 1,
                total_epochs,
                shown,
                steps,
                time.perf_counter() - self.started,
            )

    return ProgressLog()


def _make_datasets(
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    w_tr: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    global_batch: int,
    seed: int,
) -> tuple[Any, Any]:
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    train = (
        tf.data.Dataset.from_tensor_slices((x_tr, y_tr, w_tr))
        .shuffle(min(len(x_tr), 1_000_000), seed=seed, reshuffle_each_iteration=True)
        .batch(global_batch)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
    )
    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(global_batch).with_options(options)
    return train, val


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
            "sources": list(spec.dataset.uris),
            "label_column": spec.dataset.label_column,
            "held_out_rows": metrics["rows"],
            "validation_split": spec.training.validation_split,
            "balance": spec.training.balance,
            "training_run": run_id,
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


def run(spec: TrainingSpec, *, work_dir: Path | None = None, install_sigterm: bool = True) -> RunResult:
    """Train (resuming from the latest checkpoint), publish through the registry, promote if gates pass."""
    started = time.perf_counter()
    stop = StopFlag()
    if install_sigterm:
        stop.install()  # first: a reclaim during the slow imports below must not kill us silently
    try:
        return _run(spec, stop, work_dir, started)
    finally:
        if install_sigterm:
            stop.uninstall()


def _run(spec: TrainingSpec, stop: StopFlag, work_dir: Path | None, started: float) -> RunResult:
    from maas.training.strategy import select_strategy

    tr = spec.training
    run_id = run_id_for(spec)
    ckpt_uri = checkpoint_uri_for(spec, run_id)
    result = RunResult(
        model_name=spec.model_name,
        run_id=run_id,
        checkpoint_uri=ckpt_uri,
        status="running",
        epochs_total=tr.epochs,
    )
    done = CheckpointStore(ckpt_uri).published()
    if done is not None:  # a retry after the publish step: never publish twice (and skip importing TF)
        log.info("run already published %s version %s: nothing to do", spec.model_name, done.get("version"))
        result.status, result.version = "already_published", done.get("version")
        result.promoted, result.alias = bool(done.get("promoted")), done.get("alias")
        return result

    info = select_strategy(
        tr.mixed_precision
    )  # before any other TensorFlow op (MultiWorkerMirrored needs it)
    import keras

    from maas.training.model import build_model, float32_copy

    work = Path(work_dir or tempfile.mkdtemp(prefix="maas-train-"))
    store = CheckpointStore(ckpt_uri, is_chief=info.is_chief, work_dir=work / "checkpoints")
    log.info("run %s model=%s checkpoints=%s", run_id, spec.model_name, ckpt_uri)

    # ---- data
    t0 = time.perf_counter()
    data = data_mod.load_dataset(spec.dataset)
    parts = data_mod.split(len(data.y), tr.validation_split, tr.seed)
    train_rows = parts.train
    weights = np.ones(len(data.y), dtype=np.float32)
    if tr.balance == "oversample":
        train_rows = data_mod.oversample(train_rows, data.y, tr.seed)
    elif tr.balance == "class_weight":
        weights = data_mod.class_weights(data.y[parts.train], len(data.class_labels))[data.y]
    n_features, n_classes = data.x.shape[1], len(data.class_labels)
    log.info(
        "data rows=%d features=%d classes=%d train=%d held_out=%d balance=%s (%.2fs)",
        len(data.y),
        n_features,
        n_classes,
        len(train_rows),
        len(parts.held_out),
        tr.balance,
        time.perf_counter() - t0,
    )
    fp = fingerprint(
        data.x,
        data.y,
        data.feature_names,
        data.class_labels,
        label_column=spec.dataset.label_column,
        sources=data.sources,
    )
    if stop.requested:
        result.status = "interrupted"
        result.seconds = time.perf_counter() - started
        log.warning("SIGTERM before training started; nothing to checkpoint")
        return result

    # ---- model: resume or build
    keras.utils.set_random_seed(tr.seed)
    restored = store.download_latest()
    history: list[dict[str, Any]] = []
    start_epoch = 0
    with info.strategy.scope():
        if restored is not None:
            path, state = restored
            model = keras.models.load_model(str(path), safe_mode=True)
            start_epoch = int(state["epoch"])
            history = list(state.get("history") or [])
            if state.get("spec_sha256") not in (None, spec.digest()):
                log.warning(
                    "checkpoint was written by a different spec (sha256 %s); resuming anyway",
                    state.get("spec_sha256"),
                )
            log.info(
                "resumed from checkpoint epoch=%d/%d reason=%s optimizer_step=%d uri=%s",
                start_epoch,
                tr.epochs,
                state.get("reason"),
                int(model.optimizer.iterations.numpy()),
                storage.join(ckpt_uri, state["path"]),
            )
        else:
            model = build_model(spec.architecture, tr, n_features, n_classes)
            log.info("no checkpoint under %s: starting at epoch 0", ckpt_uri)
    result.resumed_from_epoch = start_epoch
    if int(model.inputs[0].shape[-1]) != n_features or int(model.outputs[0].shape[-1]) != n_classes:
        raise ValueError(
            f"checkpoint model shape does not match the data ({n_features} features, "
            f"{n_classes} classes): use a new checkpoint_uri"
        )

    # ---- train
    global_batch = tr.batch_size * info.replicas
    train_ds, val_ds = _make_datasets(
        data.x[train_rows],
        data.y[train_rows],
        weights[train_rows],
        data.x[parts.held_out],
        data.y[parts.held_out],
        global_batch,
        tr.seed + start_epoch,
    )
    steps = -(-len(train_rows) // global_batch)
    base_state = {
        "run_id": run_id,
        "spec_sha256": spec.digest(),
        "model_name": spec.model_name,
        "attempt": os.environ.get("AWS_BATCH_JOB_ATTEMPT"),
    }
    callbacks = [
        _progress_callback(tr.epochs, steps),
        make_callback(
            store,
            stop,
            total_epochs=tr.epochs,
            history=history,
            base_state=base_state,
            allow_mid_epoch=info.kind == "mirrored",
        ),
    ]
    if start_epoch < tr.epochs:
        try:
            model.fit(
                train_ds,
                validation_data=val_ds,
                epochs=tr.epochs,
                initial_epoch=start_epoch,
                callbacks=callbacks,
                shuffle=False,  # the tf.data pipeline shuffles (seeded)
                verbose=1 if sys.stdout.isatty() else 0,
            )
        except TrainingInterrupted as exc:
            result.status = "interrupted"
            result.epochs_run = list(range(start_epoch + 1, exc.epoch + 1))
            result.seconds = time.perf_counter() - started
            log.warning(
                "stopped after SIGTERM at epoch %d/%d; a retry resumes from there", exc.epoch, tr.epochs
            )
            return result
    else:
        log.info("all %d epochs already trained: going straight to evaluation", tr.epochs)
    result.epochs_run = list(range(start_epoch + 1, tr.epochs + 1))

    if not info.is_chief:
        result.status = "worker"
        result.seconds = time.perf_counter() - started
        return result

    # ---- evaluate on the held-out rows with a plain float32 copy (also what gets exported)
    export_model = float32_copy(model, spec.architecture, tr)
    x_val, y_val = data.x[parts.held_out], data.y[parts.held_out]
    proba = np.asarray(export_model.predict(x_val, batch_size=8192, verbose=0), dtype=np.float32)
    metrics = classification_metrics(y_val, proba, data.class_labels)
    metrics["class_labels"] = data.class_labels
    metrics["history"] = history
    sensitive_val = {c: v[parts.held_out] for c, v in data.sensitive.items()}
    gates_declared = {
        k: v
        for k, v in (
            ("min_accuracy", spec.promotion.min_accuracy),
            ("max_fairness_gap", spec.promotion.max_fairness_gap),
        )
        if v is not None
    }
    fairness = fairness_report(y_val, proba, sensitive_val, data.class_labels, gates_declared or None)
    if fairness is None and gates_declared:
        fairness = {"groups": {}, "gaps": {}, "gates": gates_declared, "violations": []}
    gate = check_gates(spec.promotion, metrics, fairness)
    log.info(
        "held-out accuracy=%.4f loss=%.4f gates=%s%s",
        metrics["accuracy"],
        metrics["loss"],
        "pass" if not gate.failures else "FAIL",
        "" if not gate.failures else f" ({'; '.join(gate.failures)})",
    )

    # ---- export + card + publish (the registry writes manifest.json last)
    from maas_models import Registry
    from maas_models.export import export_keras

    out_dir = work / "export"
    card_dir = work / "card"
    shutil.rmtree(out_dir, ignore_errors=True)
    card_dir.mkdir(parents=True, exist_ok=True)
    from maas_models.export import framework_versions

    manifest_like = {
        "name": spec.model_name,
        "runtime": "litert",
        "framework": framework_versions(),
        "inputs": [
            {
                "name": "features",
                "dtype": "float32",
                "shape": [-1, n_features],
                "feature_names": data.feature_names,
            }
        ],
        "outputs": [
            {
                "name": "probabilities",
                "dtype": "float32",
                "shape": [-1, n_classes],
                "class_labels": data.class_labels,
            }
        ],
        "fingerprint": fp,
        "sensitive_features": list(spec.dataset.sensitive_columns),
    }
    has_card = write_model_card(
        card_dir,
        spec,
        manifest_like=manifest_like,
        metrics=metrics,
        fairness=fairness,
        history=history,
        run_id=run_id,
    )
    export_keras(
        export_model,
        out_dir,
        feature_names=data.feature_names,
        class_labels=data.class_labels,
        metrics=metrics,
        fingerprint=fp,
        sensitive_features=list(spec.dataset.sensitive_columns),
        fairness=fairness,
        card_dir=card_dir if has_card else None,
    )
    check = _held_out_tflite_check(out_dir, x_val, proba)
    meta_path = out_dir / "metadata.json"
    meta = orjson.loads(meta_path.read_bytes())
    meta.setdefault("metrics", {})["tflite_held_out"] = check
    meta["training"] = {
        "run_id": run_id,
        "spec_sha256": spec.digest(),
        "epochs": tr.epochs,
        "strategy": info.kind,
        "replicas": info.replicas,
        "gpus": info.gpus,
        "mixed_precision": info.mixed_precision,
        "checkpoint_uri": ckpt_uri,
    }
    meta_path.write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
    log.info(
        "tflite matches keras on %d held-out rows (max abs diff %.2g, argmax agreement %.4f)",
        check["rows"],
        check["max_abs_diff"],
        check["argmax_agreement"],
    )

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
                reason=f"training run {run_id}: gates passed ({metrics['accuracy']:.4f} accuracy)",
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
    store.mark_published(
        {
            "version": version,
            "promoted": result.promoted,
            "alias": result.alias,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    result.status = "published"
    result.seconds = time.perf_counter() - started
    return result
