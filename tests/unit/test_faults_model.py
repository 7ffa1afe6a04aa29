"""Faults while a model is found and downloaded: S3 throttling, 5xx, timeouts, connections dropped
mid-download, a full /tmp, a corrupted artifact and an alias pointing at a missing version.

The registry reads through a fault-injecting proxy in front of the S3 server (tests/unit/
test_faults_support.py), with each of the model layer's two S3 readers (its stdlib reader, used in
Lambda, and boto3); the loader, registry and clients are the real ones.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
from maas_models import ModelLoader, Registry
from maas_models.errors import ModelCorrupt, ModelError, ModelNotFound, ModelUnavailable
from maas_models.s3 import s3_client

from tests.unit.test_faults_support import FaultProxy

X = np.linspace(-1.0, 1.0, 300, dtype=np.float32).reshape(3, 100)
TFLITE = r"^GET \S*/model\.tflite"


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) if path.exists() else []


@pytest.fixture(params=["lite", "boto3"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MAAS_S3_READER", request.param)
    return str(request.param)


@pytest.fixture
def proxy(published_ref: Registry, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """The S3 endpoint, seen through the fault proxy (after the reference model was published)."""
    with FaultProxy(moto_server) as fp:
        monkeypatch.setenv("AWS_ENDPOINT_URL", fp.url)
        yield fp


@pytest.fixture
def registry(published_ref: Registry, proxy: FaultProxy, reader: str) -> Registry:
    """A fresh registry (as in a new Lambda environment) reading through the proxy."""
    reg = Registry(bucket=published_ref.bucket)
    assert reg.reader.kind == reader
    return reg


@pytest.fixture
def loader(registry: Registry, tmp_path: Path) -> ModelLoader:
    return ModelLoader(registry=registry, cache_dir=tmp_path / "cache", alias_ttl_seconds=0)


@pytest.fixture
def expected(published_ref: Registry, tmp_path: Path) -> np.ndarray:
    """Outputs of v1 loaded without any fault (straight from the S3 server)."""
    return ModelLoader(registry=published_ref, cache_dir=tmp_path / "clean").get("ref", 1).predict(X)


def test_the_boto3_client_has_retries_configured(s3_moto: str) -> None:
    retries = s3_client().meta.config.retries
    attempts = retries.get("total_max_attempts", retries.get("max_attempts", 0))
    assert retries["mode"] in ("standard", "adaptive") and attempts >= 3, retries


@pytest.mark.parametrize("kind", ["slowdown", "internal", "unavailable", "reset"])
def test_transient_faults_on_download_are_retried(
    loader: ModelLoader, proxy: FaultProxy, expected: np.ndarray, kind: str
) -> None:
    rule = proxy.add(TFLITE, kind, times=2)
    model = loader.get("ref", 1)
    assert rule.injected == 2 and rule.seen == 3, proxy.log  # two faults, then the retry that worked
    np.testing.assert_allclose(model.predict(X), expected, atol=1e-6)
    assert files_under(loader.cache_dir) == ["ref/1/model.tflite"]


def test_throttling_on_every_kind_of_registry_read_is_retried(
    loader: ModelLoader, registry: Registry, published_ref: Registry, proxy: FaultProxy, expected: np.ndarray
) -> None:
    """Alias, manifest, listing and artifact reads: the first of each kind is throttled."""
    published_ref.promote("ref", 1, "staging")
    rules = [
        proxy.add(r"/aliases/staging\.json", "slowdown"),
        proxy.add(r"/manifest\.json", "slowdown"),
        proxy.add(TFLITE, "slowdown"),
    ]
    model = loader.get("ref", "staging")
    published_ref.promote("ref", 1, "production", override=True, reason="fault test")
    listing = proxy.add(r"list-type=2", "slowdown")
    assert registry.latest("ref") == 1
    assert [r.injected for r in [*rules, listing]] == [1, 1, 1, 1], proxy.log
    np.testing.assert_allclose(model.predict(X), expected, atol=1e-6)


def test_read_timeouts_are_retried(published_ref: Registry, proxy: FaultProxy, tmp_path: Path) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3", config=Config(read_timeout=0.5, retries={"max_attempts": 4, "mode": "standard"})
    )
    loader = ModelLoader(registry=Registry(bucket=published_ref.bucket, s3=client), cache_dir=tmp_path / "c")
    rule = proxy.add(TFLITE, "stall", times=2, stall_s=1.5)
    assert loader.get("ref", 1).predict(X).shape == (3, 10)
    assert rule.injected == 2 and rule.seen == 3


def test_storage_down_gives_model_unavailable_and_leaves_nothing(
    published_ref: Registry, proxy: FaultProxy, reader: str, tmp_path: Path
) -> None:
    """Faults beyond the retry budget: ModelUnavailable (503, Retry-After upstream), no partial file."""
    client = None
    if reader == "boto3":  # fewer attempts than the default, to keep the test fast
        import boto3
        from botocore.config import Config

        client = boto3.client("s3", config=Config(retries={"max_attempts": 2, "mode": "standard"}))
    loader = ModelLoader(registry=Registry(bucket=published_ref.bucket, s3=client), cache_dir=tmp_path / "c")
    proxy.add(TFLITE, "slowdown", times=1000)
    with pytest.raises(ModelUnavailable) as exc:
        loader.get("ref", 1)
    assert exc.value.status_code == 503 and "SlowDown" in str(exc.value)
    assert files_under(loader.cache_dir) == []
    proxy.clear()
    assert loader.get("ref", 1).predict(X).shape == (3, 10)  # storage back: it serves


def test_a_download_cut_off_midway_leaves_no_partial_file(
    loader: ModelLoader, proxy: FaultProxy, expected: np.ndarray
) -> None:
    rule = proxy.add(TFLITE, "truncate", times=1, truncate_after=4096)
    try:
        model = loader.get("ref", 1)  # a reader may retry the whole GET itself ...
    except ModelError as exc:  # ... or fail with a retryable 503, leaving nothing behind
        # (the stdlib reader does not check Content-Length, so the loader's size check catches the
        # short body and calls it ModelCorrupt; boto3 raises a streaming error -> ModelUnavailable)
        assert exc.status_code == 503
        assert files_under(loader.cache_dir) == []
        model = loader.get("ref", 1)
    assert rule.injected == 1
    np.testing.assert_allclose(model.predict(X), expected, atol=1e-6)
    assert files_under(loader.cache_dir) == ["ref/1/model.tflite"]


# --- /tmp full --------------------------------------------------------------------------------------


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {proc.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_tmp_too_small_is_a_clear_error_before_any_download(
    registry: Registry, proxy: FaultProxy, tmp_path: Path
) -> None:
    with tiny_tmpfs(tmp_path / "tiny", "1m") as cache:
        loader = ModelLoader(registry=registry, cache_dir=cache)
        watch = proxy.add(TFLITE, "stall", times=0)
        with pytest.raises(ModelUnavailable, match="not enough space"):
            loader.get("ref", 1)
        assert watch.seen == 0  # refused before downloading anything
        assert files_under(cache) == []


def test_tmp_filling_up_during_download_is_a_clear_error_and_nothing_corrupt_is_left(
    registry: Registry, proxy: FaultProxy, tmp_path: Path, expected: np.ndarray
) -> None:
    """Another writer fills /tmp between the free-space check and the download (ENOSPC mid-write)."""
    with tiny_tmpfs(tmp_path / "tiny", "9m") as cache:
        loader = ModelLoader(registry=registry, cache_dir=cache, cache_max_mb=8)
        filler = cache / f"filler-{uuid.uuid4().hex}"

        def fill() -> None:
            with open(filler, "wb") as fh, contextlib.suppress(OSError):
                while True:
                    fh.write(b"\0" * 65536)

        proxy.add(TFLITE, "call", times=1, action=fill)
        with pytest.raises(ModelError) as exc:  # a ModelError, not a bare OSError: the API answers 503
            loader.get("ref", 1)
        assert exc.value.status_code == 503 and "space" in str(exc.value).lower(), exc.value
        assert files_under(cache) == [filler.name]  # nothing but the other writer's file
        filler.unlink()
        np.testing.assert_allclose(loader.get("ref", 1).predict(X), expected, atol=1e-6)


# --- a corrupted model, an alias to a missing version: the previous version keeps serving -------


def _flip_a_byte(registry: Registry, version: int, rel: str = "model.tflite") -> None:
    key = registry.key("ref", version, rel)
    data = bytearray(registry.s3.get_object(Bucket=registry.bucket, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0xFF
    registry.s3.put_object(Bucket=registry.bucket, Key=key, Body=bytes(data))


def test_a_corrupted_new_version_is_refused_and_the_previous_keeps_serving(
    loader: ModelLoader, published_ref: Registry, reference_export: Path, expected: np.ndarray
) -> None:
    published_ref.promote("ref", 1, "staging")
    assert loader.get("ref", "staging").version == 1
    v2 = published_ref.publish(reference_export, "ref", source="recorded")
    _flip_a_byte(published_ref, v2)
    published_ref.promote("ref", v2, "staging")
    for _ in range(3):  # every request after the flip (TTL 0: each one re-resolves)
        model = loader.get("ref", "staging")
        assert model.version == 1
        np.testing.assert_allclose(model.predict(X), expected, atol=1e-6)
    assert files_under(loader.cache_dir) == ["ref/1/model.tflite"]  # the bad file is deleted
    with pytest.raises(ModelCorrupt):  # asked for directly, the corrupt version is an error (503)
        loader.get("ref", v2)


def test_an_alias_to_a_missing_version_keeps_the_previous_one_serving(
    loader: ModelLoader, published_ref: Registry, expected: np.ndarray
) -> None:
    published_ref.promote("ref", 1, "staging")
    assert loader.get("ref", "staging").version == 1
    key = published_ref.key("ref", "aliases", "staging.json")
    record = {"version": 42, "updated_at": "2026-11-28T00:00:00Z", "by": "fault-test", "reason": "dangling"}
    published_ref.s3.put_object(Bucket=published_ref.bucket, Key=key, Body=orjson.dumps(record))
    model = loader.get("ref", "staging")
    assert model.version == 1
    np.testing.assert_allclose(model.predict(X), expected, atol=1e-6)
    fresh = ModelLoader(registry=loader.registry, cache_dir=loader.cache_dir)
    with pytest.raises(ModelNotFound, match="missing version 42"):  # nothing to fall back on: 404
        fresh.get("ref", "staging")


def test_a_garbled_alias_keeps_the_previous_one_serving(loader: ModelLoader, published_ref: Registry) -> None:
    published_ref.promote("ref", 1, "staging")
    assert loader.get("ref", "staging").version == 1
    key = published_ref.key("ref", "aliases", "staging.json")
    published_ref.s3.put_object(Bucket=published_ref.bucket, Key=key, Body=b'{"version": "../../x"')
    assert loader.get("ref", "staging").version == 1
    assert os.listdir(loader.cache_dir / "ref") == ["1"]
