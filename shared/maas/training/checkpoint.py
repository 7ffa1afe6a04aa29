"""Checkpoints to S3 (or a local dir) every epoch and on SIGTERM, and resume from the latest one.

Layout under the checkpoint URI (one per run; see spec.py for the default):

    epoch-0003/model.keras      the model with its optimizer state (Keras format)
    epoch-0003/state.json       {"epoch": 3, "reason": "epoch_end" | "sigterm", "step": .., "history": [..]}
    latest.json                 the same state plus "path": "epoch-0003/": written LAST, after every file
                                of the checkpoint is uploaded, so a reader never sees half a checkpoint
    published.json              {"version": N, ...} once the run published its model (a retry then stops)

"epoch" always counts COMPLETED epochs: a run resumed from epoch-0003 continues with epoch 4 (Keras
`initial_epoch=3`). A SIGTERM checkpoint (AWS Batch sends SIGTERM on spot reclaim, then SIGKILL after the
stop timeout) is taken at the next batch boundary: it keeps the weights of the interrupted epoch but still
counts only the completed ones, so a reclaim loses at most the one epoch in progress. A SIGKILL (no warning)
loses at most the epoch in progress too, since the previous epoch's checkpoint is already uploaded.

The model is saved locally first, then uploaded; the two most recent checkpoints are kept.
With MultiWorkerMirroredStrategy every worker saves (saving may read sync-on-read variables, a collective
op) but only the chief uploads.
"""

from __future__ import annotations

import logging
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from maas.training import storage

log = logging.getLogger("maas.training")

LATEST = "latest.json"
PUBLISHED = "published.json"
KEEP = 2


class TrainingInterrupted(Exception):
    """Raised out of model.fit after the SIGTERM checkpoint is saved."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        super().__init__(f"interrupted by SIGTERM; checkpoint saved at epoch {epoch}")


@dataclass
class StopFlag:
    """Set by the SIGTERM handler; checked by the checkpoint callback at batch boundaries."""

    requested: bool = False
    at: float | None = None
    _previous: Any = None

    def install(self) -> StopFlag:
        """Handle SIGTERM (Batch stopping the job) and SIGINT (Ctrl-C in `maas train run`) alike."""
        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}
        return self

    def uninstall(self) -> None:
        for sig, previous in (self._previous or {}).items():
            signal.signal(sig, previous)
        self._previous = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.requested:
            log.warning(
                "%s received: checkpointing at the next batch boundary, then exiting",
                signal.Signals(signum).name,
            )
        self.requested = True
        self.at = time.time()


@dataclass
class CheckpointStore:
    uri: str
    is_chief: bool = True
    keep: int = KEEP
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="maas-ckpt-")))

    def _read_json(self, name: str) -> dict[str, Any] | None:
        target = storage.join(self.uri, name)
        if not storage.exists(target):
            return None
        data: dict[str, Any] = orjson.loads(storage.read_bytes(target))
        return data

    def latest(self) -> dict[str, Any] | None:
        return self._read_json(LATEST)

    def published(self) -> dict[str, Any] | None:
        return self._read_json(PUBLISHED)

    def mark_published(self, info: dict[str, Any]) -> None:
        if self.is_chief:
            storage.write_bytes(storage.join(self.uri, PUBLISHED), orjson.dumps(info), "application/json")

    def download_latest(self) -> tuple[Path, dict[str, Any]] | None:
        """Fetch the latest checkpoint's model.keras into the work dir: (local path, state) or None."""
        state = self.latest()
        if state is None:
            return None
        local = self.work_dir / "restore" / state["path"].strip("/") / "model.keras"
        storage.download(storage.join(self.uri, state["path"], "model.keras"), local)
        return local, state

    def save(self, model: Any, state: dict[str, Any]) -> str:
        """Save locally, upload the files, then write latest.json; prune old checkpoints. Returns the URI."""
        epoch = int(state["epoch"])
        name = (
            f"epoch-{epoch:04d}"
            if state.get("reason") == "epoch_end"
            else f"epoch-{epoch:04d}-{state['reason']}"
        )
        local = self.work_dir / ("save" if self.is_chief else "save-worker") / name
        if local.exists():
            shutil.rmtree(local)
        local.mkdir(parents=True)
        model.save(str(local / "model.keras"))
        if not self.is_chief:  # workers save (collectives) but never upload
            shutil.rmtree(local, ignore_errors=True)
            return ""
        state = {**state, "path": f"{name}/", "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (local / "state.json").write_bytes(orjson.dumps(state))
        target = storage.join(self.uri, name)
        storage.upload_dir(local, target)
        storage.write_bytes(storage.join(self.uri, LATEST), orjson.dumps(state), "application/json")
        shutil.rmtree(local, ignore_errors=True)
        self._prune(keep_path=name)
        return target + "/"

    def _prune(self, keep_path: str) -> None:
        try:
            prefix = self.uri.rstrip("/") + "/"
            dirs = sorted(
                {
                    u[len(prefix) :].split("/", 1)[0]
                    for u in storage.list_files(prefix)
                    if u[len(prefix) :].startswith("epoch-") and "/" in u[len(prefix) :]
                }
            )
            old = [d for d in dirs if d != keep_path][: max(0, len(dirs) - self.keep)]
            for d in old:
                storage.delete_prefix(storage.join(self.uri, d))
        except Exception:  # pruning is housekeeping: never fail a run for it
            log.exception("could not prune old checkpoints under %s", self.uri)


def make_callback(
    store: CheckpointStore,
    stop: StopFlag,
    *,
    total_epochs: int,
    history: list[dict[str, Any]],
    base_state: dict[str, Any],
    allow_mid_epoch: bool = True,
) -> Any:
    """A Keras callback that checkpoints every epoch and at the first batch boundary after SIGTERM."""
    import keras

    class CheckpointCallback(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epoch = 0

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.epoch = epoch  # 0-based index of the epoch in progress = number of completed epochs

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            if stop.requested and allow_mid_epoch:
                state = {
                    **base_state,
                    "epoch": self.epoch,
                    "epochs_total": total_epochs,
                    "reason": "sigterm",
                    "step": batch + 1,
                    "history": list(history),
                }
                uri = store.save(self.model, state)
                log.warning(
                    "checkpoint saved epoch=%d reason=sigterm step=%d uri=%s", self.epoch, batch + 1, uri
                )
                raise TrainingInterrupted(self.epoch)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            done = epoch + 1
            entry = {"epoch": done, **{k: float(v) for k, v in (logs or {}).items()}}
            history.append(entry)
            state = {
                **base_state,
                "epoch": done,
                "epochs_total": total_epochs,
                "reason": "epoch_end",
                "step": None,
                "history": list(history),
            }
            started = time.perf_counter()
            uri = store.save(self.model, state)
            if store.is_chief:
                log.info(
                    "checkpoint saved epoch=%d/%d uri=%s (%.2fs)",
                    done,
                    total_epochs,
                    uri,
                    time.perf_counter() - started,
                )
            if stop.requested:
                raise TrainingInterrupted(done)

    return CheckpointCallback()
