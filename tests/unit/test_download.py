"""Large artifacts: parallel ranged GETs hashed while they stream (no copy in memory), the loader's
limits (artifact above /tmp, weights above the memory budget) and its per-key lock table."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from maas_models import ModelLoader, Registry
from maas_models.download import ranged_download, split
from maas_models.errors import ModelCorrupt, ModelUnavailable
from maas_models.s3 import Boto3Reader, LiteReader

MB = 1024 * 1024


@pytest.fixture
def big_object(s3_moto: str, moto_server: str) -> tuple[str, str, bytes]:
    body = np.random.default_rng(0).bytes(6 * MB + 12345)  # not a multiple of the part size
    boto3.client("s3", endpoint_url=moto_server).put_object(Bucket=s3_moto, Key="blob", Body=body)
    return s3_moto, "blob", body


@pytest.mark.parametrize("reader_kind", ["lite", "boto3"])
def test_ranged_download_matches_the_object_and_its_sha256(
    big_object: tuple[str, str, bytes], tmp_path: Path, moto_server: str, reader_kind: str
) -> None:
    bucket, key, body = big_object
    reader = (
        LiteReader() if reader_kind == "lite" else Boto3Reader(boto3.client("s3", endpoint_url=moto_server))
    )
    digest, written = ranged_download(
        reader.iter_range, bucket, key, len(body), tmp_path / "out", part_bytes=512 * 1024, workers=4
    )
    assert written == len(body) and digest == hashlib.sha256(body).hexdigest()
    assert (tmp_path / "out").read_bytes() == body


PEAK_SCRIPT = """
import sys
from pathlib import Path
from maas_models.download import ranged_download
from maas_models.s3 import LiteReader

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
reader = LiteReader()
before = status("VmRSS:")
ranged_download(reader.iter_range, sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
print(status("VmHWM:") - before)
"""


def test_no_second_copy_in_memory(s3_moto: str, moto_server: str, tmp_path: Path) -> None:
    """A 48 MB download in a fresh process raises its peak RSS by far less than the object: the
    bytes go to the file block by block (the moto server, in this process, is not measured)."""
    size = 48 * MB
    boto3.client("s3", endpoint_url=moto_server).put_object(Bucket=s3_moto, Key="big", Body=bytes(size))
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, s3_moto, "big", str(size), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    growth = int(proc.stdout.strip())
    assert (tmp_path / "out").stat().st_size == size
    assert growth < 20 * MB, f"peak RSS grew by {growth / MB:.1f} MB during a {size / MB:.0f} MB download"


def test_truncated_object_is_corrupt(big_object: tuple[str, str, bytes], tmp_path: Path) -> None:
    bucket, key, body = big_object
    with pytest.raises(ModelCorrupt, match="ended after"):
        ranged_download(
            _short_last_part(LiteReader().iter_range, len(body)),
            bucket,
            key,
            len(body),
            tmp_path / "o",
            part_bytes=MB,
        )


def _short_last_part(open_range: Any, size: int) -> Any:
    """A server that cuts the last range short (what a truncated object looks like from here)."""

    def opener(bucket: str, key: str, start: int, end: int) -> Iterator[bytes]:
        if end == size - 1:
            return iter([b"x" * ((end - start + 1) // 2)])
        chunks: Iterator[bytes] = open_range(bucket, key, start, end)
        return chunks

    return opener


def test_a_failing_part_stops_the_download_without_hanging(tmp_path: Path) -> None:
    started = threading.Event()

    def opener(bucket: str, key: str, start: int, end: int) -> Iterator[bytes]:
        if start == 3 * 1024:
            raise OSError("connection reset")
        started.set()
        return iter([b"\0" * (end - start + 1)])

    with pytest.raises(OSError, match="connection reset"):
        ranged_download(opener, "b", "k", 10 * 1024, tmp_path / "o", part_bytes=1024, workers=3)
    assert split(10, 4) == [(0, 4), (4, 8), (8, 10)] and split(0, 4) == []


def test_registry_download_uses_parallel_ranges_for_large_artifacts(
    big_object: tuple[str, str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maas_models import registry_reader as registry_mod
    from maas_models.manifest import ModelRef

    bucket, _, body = big_object
    boto3.client("s3").put_object(Bucket=bucket, Key="models/big/1/model.tflite", Body=body)
    ranges: list[tuple[int, int]] = []
    reg = Registry(bucket=bucket)
    real = reg.reader.iter_range

    def recording(b: str, k: str, start: int, end: int) -> Iterator[bytes]:
        ranges.append((start, end))
        chunks: Iterator[bytes] = real(b, k, start, end)
        return chunks

    monkeypatch.setattr(reg.reader, "iter_range", recording)
    monkeypatch.setattr(registry_mod, "PARALLEL_MIN_BYTES", MB)
    digest, got = reg.download(ModelRef("big", 1), "model.tflite", tmp_path / "m", max_bytes=len(body))
    assert digest == hashlib.sha256(body).hexdigest() and got == len(body)
    assert ranges == [(0, len(body) - 1)]  # one 8 MB part: the ranged path, not the single stream
    # a manifest bigger than the object: whichever part fails first (short part, or a range past the end)
    with pytest.raises(ModelCorrupt, match=r"truncated object|missing or shorter"):
        reg.download(ModelRef("big", 1), "model.tflite", tmp_path / "m2", max_bytes=len(body) + 10 * MB)


def test_artifact_larger_than_tmp_is_a_clear_error(published_ref: Registry, tmp_path: Path) -> None:
    loader = ModelLoader(registry=published_ref, cache_dir=tmp_path / "c")
    loader.storage_bytes = 1000
    with pytest.raises(ModelUnavailable, match=r"larger than this function's /tmp .*EphemeralStorageMB"):
        loader.get("ref")
    assert not (tmp_path / "c").exists()  # refused before any download


def test_storage_limits_follow_the_ephemeral_storage_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from maas_models.settings import LayerSettings

    monkeypatch.setenv("MAAS_EPHEMERAL_STORAGE_MB", "2048")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
    for var in ("MAAS_CACHE_MAX_MB", "MAAS_MAX_ARTIFACT_MB", "MAAS_MEMORY_BUDGET_MB"):
        monkeypatch.delenv(var, raising=False)
    s = LayerSettings()
    assert (s.ephemeral_storage_mb, s.cache_max_mb, s.max_artifact_mb, s.memory_budget_mb) == (
        2048,
        1638,
        1638,
        768,
    )
    monkeypatch.setenv("MAAS_MAX_ARTIFACT_MB", "100")
    assert LayerSettings().max_artifact_mb == 100


def test_per_key_locks_are_pruned(published_ref: Registry, tmp_path: Path) -> None:
    published_ref.promote("ref", 1, "staging")
    loader = ModelLoader(registry=published_ref, cache_dir=tmp_path / "c", alias_ttl_seconds=0)
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for spec in (1, "staging", "latest", 1, "staging"):
                loader.get("ref", spec)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert loader._key_locks == {}  # every lock left the table with its last user
    assert loader.loaded() == [loader.get("ref", 1).ref]
