"""ModelLoader on moto: download, verify, cache, predict, aliases, corruption, budgets, threads."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from maas_models import LoadedModel, ModelLoader, Registry
from maas_models import metrics as mm
from maas_models.errors import InvalidInput, ModelCorrupt, ModelNotFound, ModelUnavailable


@pytest.fixture
def loader(published_ref: Registry, tmp_path: Path) -> ModelLoader:
    return ModelLoader(registry=published_ref, cache_dir=tmp_path / "cache", alias_ttl_seconds=0.05)


@pytest.fixture
def emitted() -> Any:
    records: list[dict] = []
    previous = mm.set_sink(records.append)
    yield records
    mm.set_sink(previous)


def expected_outputs(reference_export: Path) -> tuple[np.ndarray, np.ndarray]:
    from maas_models.verify import probe_inputs

    meta = orjson.loads((reference_export / "metadata.json").read_bytes())
    return probe_inputs(100, 64, 1234), np.asarray(
        meta["export_check"]["expected"]["probabilities"], dtype=np.float32
    )


def test_get_predict_matches_source(loader: ModelLoader, reference_export: Path) -> None:
    model = loader.get("ref", "latest")
    assert isinstance(model, LoadedModel)
    assert model.ref.name == "ref" and model.version == 1 and model.runtime == "litert"
    x, expected = expected_outputs(reference_export)
    np.testing.assert_allclose(model.predict(x), expected, atol=1e-5)
    np.testing.assert_allclose(model.predict(x[:1]), expected[:1], atol=1e-5)
    assert (loader.cache_dir / "ref" / "1" / "model.tflite").is_file()
    assert loader.get("ref", 1) is model
    assert loader.load(model.ref) is model


def flip_byte(registry: Registry, name: str, version: int, rel: str, offset: int = 1000) -> None:
    key = registry.key(name, version, rel)
    body = bytearray(registry.s3.get_object(Bucket=registry.bucket, Key=key)["Body"].read())
    body[offset] ^= 0xFF
    registry.s3.put_object(Bucket=registry.bucket, Key=key, Body=bytes(body))


def test_corrupt_artifact_raises_deletes_and_previous_keeps_serving(
    loader: ModelLoader, published_ref: Registry, reference_export: Path, emitted: list[dict]
) -> None:
    published_ref.promote("ref", 1, "production")
    serving = loader.get("ref", "production")
    assert serving.version == 1
    v2 = published_ref.publish(reference_export, "ref", source="recorded")
    flip_byte(published_ref, "ref", v2, "model.tflite")
    # pinned version: the error itself, and no bad file left behind
    with pytest.raises(ModelCorrupt, match="sha256"):
        loader.get("ref", v2)
    vdir = loader.cache_dir / "ref" / str(v2)
    assert not any(p.is_file() for p in vdir.rglob("*")) if vdir.exists() else True
    assert any("ModelCorrupt" in r for r in emitted)
    corrupt = next(r for r in emitted if "ModelCorrupt" in r)
    assert corrupt["model"] == "ref" and corrupt["version"] == str(v2)
    assert corrupt["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "ModelCorrupt", "Unit": "Count"}]
    # promotion to the corrupt version: the alias keeps serving v1 after the TTL
    published_ref.promote("ref", v2, "production")
    time.sleep(0.06)
    model = loader.get("ref", "production")
    assert model is serving and model.version == 1
    assert any("ModelFallback" in r for r in emitted)
    x = np.zeros((2, 100), np.float32)
    assert model.predict(x).shape == (2, 10)


def test_truncated_artifact_is_corrupt(
    loader: ModelLoader, published_ref: Registry, emitted: list[dict]
) -> None:
    key = published_ref.key("ref", 1, "model.tflite")
    body = published_ref.s3.get_object(Bucket=published_ref.bucket, Key=key)["Body"].read()
    published_ref.s3.put_object(Bucket=published_ref.bucket, Key=key, Body=body[:-100])
    with pytest.raises(ModelCorrupt, match="truncated"):
        loader.get("ref", 1)
    with pytest.raises(ModelCorrupt, match="cached"):  # no second download within the backoff
        loader.get("ref", 1)
    longer = body + b"0" * 10
    published_ref.s3.put_object(Bucket=published_ref.bucket, Key=key, Body=longer)
    time.sleep(loader.failure_backoff + 0.01)
    with pytest.raises(ModelCorrupt, match="larger"):
        loader.get("ref", 1)
    assert not list((loader.cache_dir / "ref" / "1").glob("*tflite*"))


def test_missing_artifact_is_corrupt(loader: ModelLoader, published_ref: Registry) -> None:
    published_ref.s3.delete_object(
        Bucket=published_ref.bucket, Key=published_ref.key("ref", 1, "model.tflite")
    )
    with pytest.raises(ModelCorrupt, match="missing"):
        loader.get("ref", 1)


def test_local_cache_corruption_redownloads(
    loader: ModelLoader, published_ref: Registry, tmp_path: Path
) -> None:
    loader.get("ref", 1)
    path = loader.cache_dir / "ref" / "1" / "model.tflite"
    data = bytearray(path.read_bytes())
    data[500] ^= 0x01
    path.write_bytes(bytes(data))
    fresh = ModelLoader(registry=published_ref, cache_dir=loader.cache_dir)
    model = fresh.get("ref", 1)
    assert model.predict(np.zeros((1, 100), np.float32)).shape == (1, 10)
    from maas_models.download import sha256_file

    assert sha256_file(path) == model.manifest.files["model.tflite"]["sha256"]


def test_alias_flip_picked_up_after_ttl(
    published_ref: Registry, reference_export: Path, tmp_path: Path
) -> None:
    clock = [0.0]
    loader = ModelLoader(
        registry=published_ref, cache_dir=tmp_path / "c", alias_ttl_seconds=60, clock=lambda: clock[0]
    )
    published_ref.promote("ref", 1, "production")
    assert loader.get("ref", "production").version == 1
    v2 = published_ref.publish(reference_export, "ref", source="recorded")
    published_ref.promote("ref", v2, "production")
    clock[0] = 59.0
    assert loader.get("ref", "production").version == 1  # within the TTL: no S3 call, old version
    clock[0] = 60.5
    assert loader.get("ref", "production").version == v2
    assert loader.get("ref", "latest").version == v2
    assert loader.get("ref", 1).version == 1  # pinned versions never move


def test_alias_flip_real_clock(published_ref: Registry, reference_export: Path, tmp_path: Path) -> None:
    loader = ModelLoader(registry=published_ref, cache_dir=tmp_path / "c", alias_ttl_seconds=0.05)
    published_ref.promote("ref", 1, "staging")
    assert loader.get("ref", "staging").version == 1
    v2 = published_ref.publish(reference_export, "ref", source="recorded")
    published_ref.promote("ref", v2, "staging")
    time.sleep(0.06)
    assert loader.get("ref", "staging").version == v2


def test_alias_to_missing_version_keeps_serving(
    published_ref: Registry, tmp_path: Path, emitted: list[dict]
) -> None:
    loader = ModelLoader(registry=published_ref, cache_dir=tmp_path / "c", alias_ttl_seconds=0.01)
    published_ref.promote("ref", 1, "production")
    assert loader.get("ref", "production").version == 1
    published_ref.s3.put_object(
        Bucket=published_ref.bucket,
        Key=published_ref.key("ref", "aliases", "production.json"),
        Body=orjson.dumps({"version": 42}),
    )
    time.sleep(0.02)
    assert loader.get("ref", "production").version == 1
    fresh = ModelLoader(registry=published_ref, cache_dir=tmp_path / "c")
    with pytest.raises(ModelNotFound, match="missing version 42"):
        fresh.get("ref", "production")


def test_unknown_model_version_alias(loader: ModelLoader) -> None:
    for spec in (("nope", None), ("ref", 7), ("ref", "canary")):
        with pytest.raises(ModelNotFound):
            loader.get(*spec)


@pytest.mark.parametrize(
    ("x", "fragment"),
    [
        (np.zeros((2, 99), np.float32), "received shape [2, 99]"),
        (np.zeros((100,), np.float32), "received shape [100]"),
        (np.zeros((2, 100), np.float64), "received dtype float64"),
        (np.zeros((2, 100), np.int32), "received dtype int32"),
        ([[0.0] * 100], "received list"),
    ],
)
def test_invalid_input_names_expected_and_received(loader: ModelLoader, x: Any, fragment: str) -> None:
    model = loader.get("ref")
    with pytest.raises(InvalidInput) as info:
        model.predict(x)
    message = str(info.value)
    assert fragment in message and "expected shape [N, 100] dtype float32" in message
    assert info.value.status_code == 400


def test_batch_sizes_and_chunking(published_ref: Registry, tmp_path: Path) -> None:
    loader = ModelLoader(registry=published_ref, cache_dir=tmp_path / "c")
    model = loader.get("ref")
    model.backend.chunk_rows = 64  # type: ignore[attr-defined]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 100)).astype(np.float32)
    whole = model.predict(x)
    assert whole.shape == (1000, 10)
    rows = np.concatenate([model.predict(x[i : i + 1]) for i in range(0, 1000, 97)])
    np.testing.assert_allclose(rows, whole[::97], atol=1e-6)
    for n in (0, 1, 3, 64, 65, 200, 1):
        assert model.predict(x[:n]).shape == (n, 10)
    np.testing.assert_allclose(whole.sum(axis=1), 1.0, atol=1e-5)


def test_concurrent_gets_download_once_and_predict_safely(published_ref: Registry, tmp_path: Path) -> None:
    loader = ModelLoader(registry=published_ref, cache_dir=tmp_path / "c")
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((n, 100)).astype(np.float32) for n in (1, 7, 50, 300)]
    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        try:
            barrier.wait()
            model = loader.get("ref", "latest")
            for _ in range(20):
                for x in xs:
                    results.append((x.shape[0], model.predict(x)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(loader.loaded()) == 1
    reference = {x.shape[0]: loader.get("ref", 1).predict(x) for x in xs}
    for n, out in results:
        np.testing.assert_allclose(out, reference[n], atol=1e-6)
    assert len(list((tmp_path / "c" / "ref" / "1").iterdir())) == 1  # one file, no temp leftovers


def test_memory_budget_evicts_lru(published_ref: Registry, reference_export: Path, tmp_path: Path) -> None:
    for _ in range(2):
        published_ref.publish(reference_export, "ref", source="recorded")
    loader = ModelLoader(registry=published_ref, cache_dir=tmp_path / "c")
    one = loader.get("ref", 1)
    loader.memory_budget_bytes = int(one.memory_bytes() * 2.5)
    loader.get("ref", 2)
    loader.get("ref", 1)  # touch 1: 2 is now least recently used
    loader.get("ref", 3)
    assert sorted(r.version for r in loader.loaded()) == [1, 3]
    weights = (reference_export / "model.tflite").stat().st_size
    loader.memory_budget_bytes = weights + 1  # the weights fit, not its whole footprint: it alone stays
    loader.get("ref", 2)
    assert [r.version for r in loader.loaded()] == [2]
    loader.memory_budget_bytes = weights - 1  # a model that cannot fit is refused before any download
    loader.evict("ref")
    with pytest.raises(ModelUnavailable, match=r"weights are 0.0 MB, above the memory budget .*MemorySize"):
        loader.get("ref", 3)


def test_disk_lru_eviction_and_limits(
    published_ref: Registry, reference_export: Path, tmp_path: Path
) -> None:
    for _ in range(2):
        published_ref.publish(reference_export, "ref", source="recorded")
    size = published_ref.manifest("ref", 1).files["model.tflite"]["size"]
    loader = ModelLoader(registry=published_ref, cache_dir=tmp_path / "c")
    loader.cache_max_bytes = int(size * 2.5)
    for v in (1, 2):
        loader.get("ref", v)
        time.sleep(0.01)
    os.utime(tmp_path / "c" / "ref" / "1")  # v1 used most recently on disk
    loader.get("ref", 3)
    cached = sorted(p.name for p in (tmp_path / "c" / "ref").iterdir())
    assert cached == ["1", "3"]
    loader.cache_max_bytes = size // 2
    loader.clear()
    with pytest.raises(ModelUnavailable, match="MAAS_CACHE_MAX_MB"):
        loader.get("ref", 2)
    small = ModelLoader(registry=published_ref, cache_dir=tmp_path / "d", max_artifact_mb=0)
    with pytest.raises(ModelUnavailable, match="MAAS_MAX_ARTIFACT_MB"):
        small.get("ref", 1)


def test_free_space_checked_before_download(
    published_ref: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/tmp full: a clear 503 before any byte is written (the disk is simulated as full)."""
    import shutil as sh

    real = sh.disk_usage

    def full(path: Any) -> Any:
        usage = real(path)
        return type(usage)(usage.total, usage.total, 1024)

    loader = ModelLoader(registry=published_ref, cache_dir=tmp_path / "c")
    monkeypatch.setattr("maas_models.disk_cache.shutil.disk_usage", full)
    with pytest.raises(ModelUnavailable, match="not enough space"):
        loader.get("ref", 1)
    assert not (tmp_path / "c" / "ref" / "1" / "model.tflite").exists()


def test_preload_from_env(published_ref: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    published_ref.promote("ref", 1, "production")
    monkeypatch.setenv("MAAS_PRELOAD", "ref:production, ref:1,ref,missing:2,Bad/Name")
    loader = ModelLoader(registry=published_ref, cache_dir=tmp_path / "c")
    out = loader.preload_from_env()
    assert isinstance(out["ref:production"], LoadedModel)
    assert out["ref:1"] is out["ref"] is out["ref:production"]
    assert isinstance(out["missing:2"], ModelNotFound)
    assert out["Bad/Name"].status_code == 400  # type: ignore[union-attr]
    assert loader.loaded() == [published_ref.resolve("ref", 1)]


def test_storage_down_is_unavailable(published_ref: Registry, tmp_path: Path) -> None:
    from maas_models.registry import Registry as Reg

    gone = Reg(bucket="bucket-that-does-not-exist")
    loader = ModelLoader(registry=gone, cache_dir=tmp_path / "c")
    with pytest.raises(ModelUnavailable):
        loader.get("ref", "production")


def test_loader_defaults_from_settings(s3_moto: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MAAS_CACHE_DIR", str(tmp_path / "env-cache"))
    monkeypatch.setenv("MAAS_ALIAS_TTL_SECONDS", "7")
    monkeypatch.setenv("MAAS_MEMORY_BUDGET_MB", "64")
    monkeypatch.setenv("MAAS_LITERT_THREADS", "2")
    loader = ModelLoader()
    assert loader.cache_dir == tmp_path / "env-cache"
    assert loader.alias_ttl == 7.0 and loader.memory_budget_bytes == 64 * 1024 * 1024
    assert loader.litert_threads == 2
    assert loader.registry.bucket == s3_moto


def test_alias_refresh_does_not_block_other_threads(
    published_ref: Registry, reference_export: Path, tmp_path: Path
) -> None:
    """While one thread re-resolves an expired alias (slow storage), others keep serving the loaded one."""
    in_resolve, release = threading.Event(), threading.Event()

    class SlowRegistry(Registry):
        slow = False

        def resolve(self, name: str, spec: Any = None) -> Any:
            if self.slow:
                in_resolve.set()
                assert release.wait(10)
            return super().resolve(name, spec)

    reg = SlowRegistry(bucket=published_ref.bucket)
    clock = [0.0]
    loader = ModelLoader(registry=reg, cache_dir=tmp_path / "c", alias_ttl_seconds=60, clock=lambda: clock[0])
    reg.promote("ref", 1, "production")
    first = loader.get("ref", "production")
    v2 = reg.publish(reference_export, "ref", source="recorded")
    reg.promote("ref", v2, "production")
    clock[0] = 61.0
    reg.slow = True
    refreshed: list[Any] = []
    refresher = threading.Thread(target=lambda: refreshed.append(loader.get("ref", "production")))
    refresher.start()
    assert in_resolve.wait(10)
    served: list[Any] = []
    reader = threading.Thread(target=lambda: served.append(loader.get("ref", "production")))
    reader.start()
    reader.join(30)  # a liveness check (it would wait forever behind the refresh), not a speed check
    alive = reader.is_alive()
    release.set()
    assert not alive and served == [first]
    refresher.join(10)
    assert refreshed[0].version == v2
    assert loader.get("ref", "production").version == v2
