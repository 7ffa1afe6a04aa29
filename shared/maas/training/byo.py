"""Bring your own code: a run whose spec has a ``code`` section (jobs/train/README.md, "Bring your own
code"). The same steps locally (`maas train run`) and on Batch:

1. a retry after the publish does nothing (published.json under the checkpoint URI);
2. fetch the code and verify its sha256, install its requirements;
3. restore $MAAS_CHECKPOINT_DIR from ``<checkpoint_uri>/code-checkpoints/`` and keep it synced;
4. a script runs as a child process with the contract's environment (SIGTERM is forwarded; the
   checkpoint dir is synced once it exits); a builder trains in the platform loop (maas.training.builder);
5. import, card, gates, publish, promote (maas.training.byo_publish); published.json last.

Exit codes (maas.training.entrypoint): 2 bad input (CodeError, DataError), 3 the user's code failed
(not retried: the job definition retries only "Host EC2*" spot reclaims), 143 stopped by SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from maas.settings import TrainingSettings
from maas.training import storage
from maas.training.checkpoint import CheckpointStore, StopFlag
from maas.training.dirsync import DirSync
from maas.training.results import RunResult
from maas.training.source import (
    CodeError,
    fetch,
    import_paths,
    install_requirements,
    load_callable,
    user_import_path,
)
from maas.training.spec import TrainingSpec

log = logging.getLogger("maas.training")

USER_CHECKPOINTS = "code-checkpoints"


class UserCodeFailed(RuntimeError):
    """The team's script exited non-zero (its traceback is in the job's log, above this line)."""

    def __init__(self, returncode: int) -> None:
        self.returncode = returncode
        super().__init__(f"the training script exited with status {returncode}: see its output above")


def gpu_count() -> int:
    """GPUs the job may use, without importing TensorFlow (the script owns the GPU while it runs)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    return len(list(Path("/dev").glob("nvidia[0-9]*")))


def download_channels(spec: TrainingSpec, data_dir: Path) -> dict[str, Path]:
    """dataset.uris -> <data_dir>/train/, code.channels -> <data_dir>/<name>/ (relative paths kept)."""
    from maas.training.data import DataError, expand_uris

    channels: dict[str, list[str]] = {}
    if spec.dataset is not None:
        channels["train"] = list(spec.dataset.uris)
    for name, uri in (spec.code.channels if spec.code else {}).items():
        channels[name] = [uri]
    out: dict[str, Path] = {}
    for name, uris in channels.items():
        target = data_dir / name
        target.mkdir(parents=True, exist_ok=True)
        field = "dataset.uris" if name == "train" else f"code.channels.{name}"
        for uri in uris:
            try:
                files = expand_uris([uri])
            except DataError as exc:
                raise DataError(f"{field}: {str(exc).split(': ', 1)[-1]}") from exc
            base = uri if uri.endswith("/") else uri.rsplit("/", 1)[0] + "/"
            for f in files:
                rel = f[len(base) :] if f.startswith(base) else Path(f).name
                if not storage.exists(f):
                    raise DataError(f"{field}: no such file {f!r}")
                storage.download(f, target / rel)
        out[name] = target
    return out


def script_env(spec: TrainingSpec, dirs: dict[str, Path], paths: list[str], run_id: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "MAAS_MODEL_DIR": str(dirs["model"]),
            "MAAS_CHECKPOINT_DIR": str(dirs["checkpoints"]),
            "MAAS_DATA_DIR": str(dirs["data"]),
            "MAAS_HYPERPARAMETERS": orjson.dumps(spec.hyperparameters).decode(),
            "MAAS_NUM_GPUS": str(gpu_count()),
            "MAAS_RUN_ID": run_id,
            "PYTHONPATH": os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])]),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env  # TF_CONFIG (multi-node, set by maas.training.rendezvous) passes through as it is


def run_script(entry: Path, env: dict[str, str], stop: StopFlag) -> int | None:
    """Run the script; None when a SIGTERM stopped it (forwarded, then SIGKILL after the grace)."""
    grace = TrainingSettings().stop_grace_seconds  # under ECS's 30 s stop timeout: the last sync fits
    proc = subprocess.Popen([sys.executable, str(entry)], cwd=entry.parent, env=env)  # nosec B603 - the spec's script
    forwarded_at: float | None = None
    while True:
        try:
            rc = proc.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            pass
        if stop.requested and forwarded_at is None:
            log.warning("forwarding SIGTERM to the training script (pid %d)", proc.pid)
            proc.send_signal(signal.SIGTERM)
            forwarded_at = time.monotonic()
        elif forwarded_at is not None and time.monotonic() - forwarded_at > grace:
            log.warning("training script still running %.0f s after SIGTERM: killing it", grace)
            proc.kill()
    return None if stop.requested else rc


def find_model(model_dir: Path) -> Path:
    """model.keras (or one *.keras) or a SavedModel folder under MAAS_MODEL_DIR."""
    kerases = sorted(model_dir.rglob("*.keras"))
    preferred = [p for p in kerases if p.name == "model.keras"] or kerases
    if preferred:
        return preferred[0]
    saved = sorted(p.parent for p in model_dir.rglob("saved_model.pb"))
    if saved:
        return saved[0]
    raise CodeError(
        f"MAAS_MODEL_DIR: the script wrote no model to {model_dir} (save model.keras or a SavedModel there)"
    )


def run_with_code(spec: TrainingSpec, *, work_dir: Path | None = None) -> RunResult:
    """The run of a spec with a ``code`` section (SIGTERM handled from the start, as trainer.run)."""
    import tempfile

    started = time.perf_counter()
    stop = StopFlag().install()
    try:
        work = Path(work_dir or tempfile.mkdtemp(prefix="maas-train-"))
        return run_code(spec, work=work, stop=stop, started=started)
    finally:
        stop.uninstall()


def run_code(spec: TrainingSpec, *, work: Path, stop: StopFlag, started: float) -> RunResult:
    from maas.training.trainer import _already_published, _finish, checkpoint_uri_for, run_id_for

    assert spec.code is not None
    run_id = run_id_for(spec)
    ckpt_uri = checkpoint_uri_for(spec, run_id)
    result = RunResult(spec.model_name, run_id, ckpt_uri, status="running", epochs_total=0)
    store = CheckpointStore(ckpt_uri, work_dir=work / "store")
    if _already_published(spec, store, result):
        return result
    root, digest = fetch(spec.code, work / "code")
    log.info("code %s sha256 %s entry_point %s", spec.code.source_dir, digest, spec.code.entry_point)
    paths = import_paths(root, install_requirements(spec.code, root, work / "site-packages"))
    dirs = {name: work / name for name in ("model", "checkpoints", "data")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    sync = DirSync(
        dirs["checkpoints"],
        storage.join(ckpt_uri, USER_CHECKPOINTS),
        interval_s=spec.code.checkpoint_sync_seconds,
    )
    restored = sync.restore()
    result.resumed_from_epoch = 1 if restored else 0  # scripts own their epochs: 1 = "resumed"
    training: dict[str, Any] = {"run_id": run_id, "code_sha256": digest, "entry_point": spec.code.entry_point}
    if spec.code.is_builder:
        from maas.training.builder import train_builder
        from maas.training.data import expand_uris

        assert spec.dataset is not None  # the spec requires one for a builder
        expand_uris(spec.dataset.uris)  # a prefix with no files: exit 2 before the module imports TF
        builder = load_callable(spec.code, root, paths)
        sync.start()
        try:  # the builder may import its requirements lazily, when called
            with user_import_path(paths):
                outcome = train_builder(spec, builder, dirs["checkpoints"], stop, result, work)
        finally:
            sync.stop()
        if outcome is None:
            return _finish(result, "interrupted", started)
        source, measured, training["history"], info = outcome
        training.update({"strategy": info.kind, "gpus": info.gpus, "mixed_precision": info.mixed_precision})
        if not info.is_chief:
            return _finish(result, "worker", started)
    else:
        dirs_env = script_env(spec, dirs | {"data": dirs["data"]}, paths, run_id)
        download_channels(spec, dirs["data"])
        sync.start()
        try:
            rc = run_script(root / spec.code.entry_point, dirs_env, stop)
        finally:
            sync.stop()
        if rc is None:
            return _finish(
                result, "interrupted", started, "SIGTERM: the script stopped; its checkpoints are synced"
            )
        if rc != 0:
            raise UserCodeFailed(rc)
        from maas.training.strategy import tf_config_worker

        worker = tf_config_worker()
        if worker is not None and not worker[2]:
            return _finish(result, "worker", started)
        source, measured = _evaluate_script(spec, find_model(dirs["model"]), root, paths)
    from maas.training.byo_publish import publish_model

    publish_model(spec, source, measured, result, work, training=training)
    if result.status == "trained_not_published":
        return _finish(result, result.status, started)
    store.mark_published(
        {
            "version": result.version,
            "promoted": result.promoted,
            "alias": result.alias,
            "spec_sha256": spec.digest(),
        }
    )
    return _finish(result, "published", started)


def _evaluate_script(spec: TrainingSpec, model_path: Path, root: Path, paths: list[str]) -> tuple[Any, Any]:
    """(the model to import, what its `evaluation` hook measured, or "not evaluated")."""
    from maas.training.byo_publish import from_hook, not_evaluated

    assert spec.code is not None
    source: Any = model_path
    if model_path.suffix == ".keras":
        import keras

        try:
            source = keras.saving.load_model(str(model_path), safe_mode=True)
        except Exception as exc:
            raise CodeError(f"MAAS_MODEL_DIR: cannot load {model_path.name}: {exc}") from exc
    hook = load_callable(spec.code, root, paths, name="evaluation")
    labels = list(spec.dataset.class_labels) if spec.dataset and spec.dataset.class_labels else None
    if hook is None:
        return source, not_evaluated(spec, f"{spec.code.entry_point} has no evaluation hook")
    try:  # the hook may import the code's requirements lazily (as the example's digits.load does)
        with user_import_path(paths):
            return source, from_hook(spec, hook, source, dict(spec.hyperparameters), labels)
    except CodeError:
        raise
    except Exception as exc:  # the user's hook: their traceback in the log, then not retried
        log.exception("the evaluation hook of %s raised", spec.code.entry_point)
        raise UserCodeFailed(1) from exc
