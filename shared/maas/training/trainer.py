"""One training run end to end: data -> (resumable) training -> evaluation -> export -> publish -> promote.

Imports TensorFlow (lazily, inside `run`): only the training container and `maas train run` load this.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from maas.training import data as data_mod
from maas.training import storage
from maas.training.checkpoint import CheckpointStore, StopFlag, TrainingInterrupted, make_callback
from maas.training.evaluation import check_gates, classification_metrics, fairness_report
from maas.training.fingerprint import fingerprint
from maas.training.results import Evaluation, Prepared, RunResult
from maas.training.spec import TrainingSpec

log = logging.getLogger("maas.training")

EXIT_INTERRUPTED = 143  # 128 + SIGTERM: what a process killed by SIGTERM would report


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


class CheckpointMismatch(ValueError):
    """The checkpoint URI holds the checkpoint (or the published run) of a different spec."""


def _run(spec: TrainingSpec, stop: StopFlag, work_dir: Path | None, started: float) -> RunResult:
    """The steps of jobs/train/README.md ("What a run does"), in order."""
    from maas.training.strategy import select_strategy

    run_id = run_id_for(spec)
    ckpt_uri = checkpoint_uri_for(spec, run_id)
    result = RunResult(spec.model_name, run_id, ckpt_uri, status="running", epochs_total=spec.training.epochs)
    if _already_published(spec, CheckpointStore(ckpt_uri), result):  # a retry after step 7 (and no TF)
        return result

    info = select_strategy(spec.training.mixed_precision)  # 2: before any other TensorFlow op
    work = Path(work_dir or tempfile.mkdtemp(prefix="maas-train-"))
    store = CheckpointStore(ckpt_uri, is_chief=info.is_chief, work_dir=work / "checkpoints")
    log.info("run %s model=%s checkpoints=%s", run_id, spec.model_name, ckpt_uri)
    prepared = _load_data(spec)  # 1
    if stop.requested:
        return _finish(result, "interrupted", started, "SIGTERM before training started; nothing to save")
    model, history = _resume_or_build(spec, store, info, prepared, result)  # 3
    if not _train(spec, model, store, stop, info, prepared, history, result):  # 3, 4
        return _finish(result, "interrupted", started)
    if not info.is_chief:
        return _finish(result, "worker", started)
    evaluation = _evaluate(spec, model, prepared, history)  # 5
    from maas.training.publish import export, publish_and_promote

    out_dir = export(
        spec, evaluation, prepared, work, info=info, run_id=run_id, checkpoint_uri=ckpt_uri, history=history
    )  # 6
    publish_and_promote(spec, out_dir, evaluation, result)  # 6 (publish), 7
    store.mark_published(
        {
            "version": result.version,
            "promoted": result.promoted,
            "alias": result.alias,
            "spec_sha256": spec.digest(),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )
    return _finish(result, "published", started)


def _finish(result: RunResult, status: str, started: float, warning: str | None = None) -> RunResult:
    if warning:
        log.warning("%s", warning)
    result.status = status
    result.seconds = time.perf_counter() - started
    return result


def _refuse_other_spec(spec: TrainingSpec, state: dict[str, Any], what: str, uri: str) -> None:
    written_by = state.get("spec_sha256")
    if written_by not in (None, spec.digest()):
        raise CheckpointMismatch(
            f"{what} under {uri} was written by a different spec (sha256 {str(written_by)[:12]}..., this "
            f"spec {spec.digest()[:12]}...): refusing to continue it; set a new checkpoint_uri (or remove "
            "the old checkpoints) to start a new run"
        )


def _already_published(spec: TrainingSpec, store: CheckpointStore, result: RunResult) -> bool:
    """Never publish twice; and never take another spec's run (or checkpoint) for this one's."""
    done = store.published()
    if done is not None:
        _refuse_other_spec(spec, done, "the published run", store.uri)
        log.info("run already published %s version %s: nothing to do", spec.model_name, done.get("version"))
        result.status, result.version = "already_published", done.get("version")
        result.promoted, result.alias = bool(done.get("promoted")), done.get("alias")
        return True
    latest = store.latest()
    if latest is not None:
        _refuse_other_spec(spec, latest, "the checkpoint", store.uri)
    return False


def _load_data(spec: TrainingSpec) -> Prepared:
    """Step 1: load with pyarrow, split (seeded), balance, fingerprint."""
    tr = spec.training
    t0 = time.perf_counter()
    data = data_mod.load_dataset(spec.rows)
    parts = data_mod.split(len(data.y), tr.validation_split, tr.seed)
    train_rows = parts.train
    weights = np.ones(len(data.y), dtype=np.float32)
    if tr.balance == "oversample":
        train_rows = data_mod.oversample(train_rows, data.y, tr.seed)
    elif tr.balance == "class_weight":
        weights = data_mod.class_weights(data.y[parts.train], len(data.class_labels))[data.y]
    log.info(
        "data rows=%d features=%d classes=%d train=%d held_out=%d balance=%s (%.2fs)",
        len(data.y),
        data.x.shape[1],
        len(data.class_labels),
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
        label_column=spec.rows.label_column,
        sources=data.sources,
    )
    return Prepared(data, parts, train_rows, weights, fp)


def _resume_or_build(
    spec: TrainingSpec, store: CheckpointStore, info: Any, prepared: Prepared, result: RunResult
) -> tuple[Any, list[dict[str, Any]]]:
    """Step 3: the latest checkpoint's model (optimizer state included) or a new one; (model, history)."""
    import keras

    from maas.training.model import build_model

    tr = spec.training
    keras.utils.set_random_seed(tr.seed)
    restored = store.download_latest()
    history: list[dict[str, Any]] = []
    with info.strategy.scope():
        if restored is not None:
            path, state = restored
            _refuse_other_spec(spec, state, "the checkpoint", store.uri)  # latest.json may have moved on
            model = keras.models.load_model(str(path), safe_mode=True)
            result.resumed_from_epoch = int(state["epoch"])
            history = list(state.get("history") or [])
            log.info(
                "resumed from checkpoint epoch=%d/%d reason=%s optimizer_step=%d uri=%s",
                result.resumed_from_epoch,
                tr.epochs,
                state.get("reason"),
                int(model.optimizer.iterations.numpy()),
                storage.join(store.uri, state["path"]),
            )
        else:
            model = build_model(spec.architecture, tr, prepared.n_features, prepared.n_classes)
            log.info("no checkpoint under %s: starting at epoch 0", store.uri)
    if (
        int(model.inputs[0].shape[-1]) != prepared.n_features
        or int(model.outputs[0].shape[-1]) != prepared.n_classes
    ):
        raise ValueError(
            f"checkpoint model shape does not match the data ({prepared.n_features} features, "
            f"{prepared.n_classes} classes): use a new checkpoint_uri"
        )
    return model, history


def _train(
    spec: TrainingSpec,
    model: Any,
    store: CheckpointStore,
    stop: StopFlag,
    info: Any,
    prepared: Prepared,
    history: list[dict[str, Any]],
    result: RunResult,
) -> bool:
    """Steps 3-4: fit from the resumed epoch, checkpointing every epoch and on SIGTERM. False when a
    SIGTERM stopped it (after its checkpoint)."""
    from maas.training.model import make_datasets, progress_callback

    tr, data, parts = spec.training, prepared.data, prepared.parts
    start_epoch = result.resumed_from_epoch
    global_batch = tr.batch_size * info.replicas
    rows = prepared.train_rows
    train_ds, val_ds = make_datasets(
        data.x[rows],
        data.y[rows],
        prepared.weights[rows],
        data.x[parts.held_out],
        data.y[parts.held_out],
        global_batch,
        tr.seed + start_epoch,
    )
    steps = -(-len(rows) // global_batch)
    base_state = {
        "run_id": result.run_id,
        "spec_sha256": spec.digest(),
        "model_name": spec.model_name,
        "attempt": os.environ.get("AWS_BATCH_JOB_ATTEMPT"),
    }
    callbacks = [
        progress_callback(tr.epochs, steps),
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
            result.epochs_run = list(range(start_epoch + 1, exc.epoch + 1))
            log.warning(
                "stopped after SIGTERM at epoch %d/%d; a retry resumes from there", exc.epoch, tr.epochs
            )
            return False
    else:
        log.info("all %d epochs already trained: going straight to evaluation", tr.epochs)
    result.epochs_run = list(range(start_epoch + 1, tr.epochs + 1))
    return True


def _evaluate(
    spec: TrainingSpec, model: Any, prepared: Prepared, history: list[dict[str, Any]]
) -> Evaluation:
    """Step 5: evaluate a plain float32 copy of the model (also what gets exported) on the held-out rows."""
    from maas.training.model import float32_copy

    data, held_out = prepared.data, prepared.parts.held_out
    export_model = float32_copy(model, spec.architecture, spec.training)
    x_val, y_val = data.x[held_out], data.y[held_out]
    proba = np.asarray(export_model.predict(x_val, batch_size=8192, verbose=0), dtype=np.float32)
    metrics = classification_metrics(y_val, proba, data.class_labels)
    metrics["class_labels"] = data.class_labels
    metrics["history"] = history
    sensitive_val = {c: v[held_out] for c, v in data.sensitive.items()}
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
    return Evaluation(export_model, x_val, proba, metrics, fairness, gate)
