"""$MAAS_CHECKPOINT_DIR <-> S3: restored before the user's code starts, then mirrored in a thread
that uploads each new or changed file, and a last sync on SIGTERM or at the end.

Polling, not inotify: a scan of a checkpoint folder (a handful of files) costs microseconds, works on
every filesystem the job may get, and needs no extra package. A file is uploaded once its size and
mtime held still over one poll (the writer finished it); the final sync uploads everything that
changed. Deletions are not mirrored: a checkpoint the code removed may still be the last good one.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path

from maas.training import storage

log = logging.getLogger("maas.training")

Snapshot = dict[str, tuple[int, int]]  # relative path -> (size, mtime_ns)


class DirSync:
    def __init__(self, local: Path, remote: str, *, interval_s: float = 10.0, poll_s: float = 1.0) -> None:
        self.local, self.remote = local, remote.rstrip("/") + "/"
        self.interval_s, self.poll_s = interval_s, min(poll_s, interval_s)
        self._uploaded: Snapshot = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.uploads = 0
        self._staging = Path(tempfile.mkdtemp(prefix="maas-ckpt-sync-"))

    def restore(self) -> int:
        """Download every file under the remote prefix into the (new) local folder; the file count."""
        self.local.mkdir(parents=True, exist_ok=True)
        files = storage.list_files(self.remote)
        for uri in files:
            rel = uri[len(self.remote) :]
            for attempt in range(3):
                try:
                    storage.download(uri, self.local / rel)
                    break
                except Exception as exc:  # a checksum mismatch on a file the killed attempt was writing
                    if attempt == 2:  # skipped: BackupAndRestore(double_checkpoint) falls back to .bkp
                        log.warning("checkpoint file %s not restored: %s", rel, exc)
                        (self.local / rel).unlink(missing_ok=True)
        self._uploaded = self._scan()
        if files:
            log.info("restored %d checkpoint files from %s into %s", len(files), self.remote, self.local)
        return len(files)

    def _scan(self) -> Snapshot:
        out: Snapshot = {}
        for path in self.local.rglob("*"):
            if path.is_file() and not path.name.endswith((".tmp", ".partial")):
                st = path.stat()
                out[path.relative_to(self.local).as_posix()] = (st.st_size, st.st_mtime_ns)
        return out

    def sync(self, *, settled: Snapshot | None = None) -> int:
        """Upload what changed since the last upload (only files unchanged since ``settled`` when
        given); the number uploaded."""
        with self._lock:
            now = self._scan()
            changed = [
                rel
                for rel, sig in sorted(now.items())
                if self._uploaded.get(rel) != sig and (settled is None or settled.get(rel) == sig)
            ]
            uploaded = 0
            for rel in changed:
                try:
                    # upload a copy: a file rewritten mid-upload would otherwise go up with a checksum of
                    # other bytes (S3 refuses it; moto stores it)
                    staged = self._staging / "upload"
                    shutil.copyfile(self.local / rel, staged)
                    storage.upload_file(staged, storage.join(self.remote, rel))
                except FileNotFoundError:  # removed between the scan and the upload
                    continue
                except Exception as exc:  # rewritten mid-upload (a checksum mismatch), throttled, ...
                    log.warning("checkpoint sync: %s not uploaded (%s); retried on the next poll", rel, exc)
                    continue
                self._uploaded[rel] = now[rel]
                uploaded += 1
            self.uploads += uploaded
            return uploaded

    def _loop(self) -> None:
        last_sync = time.monotonic()
        previous = self._scan()
        while not self._stop.wait(self.poll_s):
            current = self._scan()
            due = time.monotonic() - last_sync >= self.interval_s
            try:
                if due:  # everything that changed, even a file rewritten on every poll
                    self.sync()
                    last_sync = time.monotonic()
                elif self._settled_pending(previous, current):  # written, then still for a poll
                    self.sync(settled=previous)
            except Exception:  # a failed upload is retried on the next poll; never kill the run
                log.exception("checkpoint sync to %s failed; retrying", self.remote)
            previous = current

    def _settled_pending(self, previous: Snapshot, current: Snapshot) -> bool:
        """A file not yet uploaded as it is now, and unchanged since the last poll (finished)."""
        return any(previous.get(rel) == sig != self._uploaded.get(rel) for rel, sig in current.items())

    def start(self) -> DirSync:
        self._thread = threading.Thread(target=self._loop, name="maas-checkpoint-sync", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> int:
        """Stop the thread and upload whatever changed (the last sync); the files uploaded."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        count = self.sync()
        for _ in range(3):  # a file that failed to upload (rewritten mid-upload) gets more tries
            if all(self._uploaded.get(rel) == sig for rel, sig in self._scan().items()):
                break
            count += self.sync()
        log.info("checkpoint dir synced to %s (%d files in the last sync)", self.remote, count)
        return count
