"""MAAS_CHECKPOINT_DIR sync (maas.training.dirsync) against moto S3: restore, a file rewritten on every
poll still reaches S3 within the interval, settled files go up at once, deletions are not mirrored,
and the last sync uploads whatever is left."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import boto3
from maas.training.dirsync import DirSync


def keys(bucket: str, prefix: str) -> dict[str, bytes]:
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {
        o["Key"][len(prefix) :]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed
    }


def test_restore_then_sync_changes(s3_moto: str, tmp_path: Path) -> None:
    remote = f"s3://{s3_moto}/ck/"
    boto3.client("s3").put_object(Bucket=s3_moto, Key="ck/sub/old.txt", Body=b"from the last attempt")
    sync = DirSync(tmp_path / "ck", remote, interval_s=1.0, poll_s=0.2)
    assert sync.restore() == 1 and (tmp_path / "ck/sub/old.txt").read_bytes() == b"from the last attempt"
    sync.start()
    (tmp_path / "ck/weights.h5").write_bytes(b"v1")
    stop = threading.Event()

    def rewrite() -> None:  # BackupAndRestore(save_freq=1) on a fast model: a new file every poll
        i = 0
        while not stop.is_set():
            (tmp_path / "ck/hot.json").write_text(f'{{"step": {i}}}')
            i += 1
            time.sleep(0.05)

    writer = threading.Thread(target=rewrite)
    writer.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not {"weights.h5", "hot.json"} <= set(keys(s3_moto, "ck/")):
        time.sleep(0.2)
    stop.set()
    writer.join()
    assert {"weights.h5", "hot.json"} <= set(keys(s3_moto, "ck/")), "a rewritten file never reached S3"
    (tmp_path / "ck/sub/old.txt").unlink()
    (tmp_path / "ck/weights.h5").write_bytes(b"v2")
    sync.stop()
    final = keys(s3_moto, "ck/")
    assert final["weights.h5"] == b"v2" and final["hot.json"] == (tmp_path / "ck/hot.json").read_bytes()
    assert final["sub/old.txt"] == b"from the last attempt"  # deletions are not mirrored


def test_a_finished_file_goes_up_after_one_quiet_poll_not_the_interval(s3_moto: str, tmp_path: Path) -> None:
    """A backup written once (BackupAndRestore at an epoch end) reaches S3 about two polls later, long
    before the interval: what a SIGKILL right after it may lose is bounded by the poll, not the interval."""
    sync = DirSync(tmp_path / "ck", f"s3://{s3_moto}/ck2/", interval_s=60.0, poll_s=0.1)
    sync.restore()
    sync.start()
    try:
        (tmp_path / "ck/latest.weights.h5").write_bytes(b"epoch 3")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "latest.weights.h5" not in keys(s3_moto, "ck2/"):
            time.sleep(0.1)
        assert keys(s3_moto, "ck2/").get("latest.weights.h5") == b"epoch 3", "waited for the interval"
    finally:
        sync.stop()
