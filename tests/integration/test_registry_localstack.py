"""The registry and loader against LocalStack S3 (real conditional writes, real HTTP), via `local_stack`.

Every test uses its own model name in the stack's models bucket and deletes what it published.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from maas_models import ModelLoader, Registry
from maas_models.errors import ModelCorrupt, ModelNotFound

from tests.integration.helpers import delete_prefix, point_at_stack

pytestmark = pytest.mark.integration

PUBLISH = """
import sys
from maas_models import Registry
reg = Registry()
versions = [reg.publish(sys.argv[1], sys.argv[2], source="recorded") for _ in range(int(sys.argv[3]))]
print(",".join(map(str, versions)))
"""


@pytest.fixture
def on_stack(local_stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Registry, str]]:
    """(registry on the stack's models bucket, a fresh model name); removes the model afterwards."""
    point_at_stack(local_stack, monkeypatch)
    bucket = local_stack["buckets"]["models"]
    monkeypatch.setenv("MAAS_MODELS_BUCKET", bucket)
    name = f"it-{uuid.uuid4().hex[:10]}"
    registry = Registry(bucket=bucket)
    yield registry, name
    delete_prefix(registry.s3, bucket, f"models/{name}/")


def test_publish_promote_load_predict(
    on_stack: tuple[Registry, str], reference_export: Path, tmp_path: Path
) -> None:
    registry, name = on_stack
    assert registry.publish(reference_export, name, source="recorded") == 1
    registry.promote(name, 1, "staging")
    assert {"name": name, "versions": [1], "aliases": {"staging": 1}} in registry.list_models()
    loader = ModelLoader(registry=Registry(bucket=registry.bucket), cache_dir=tmp_path / "cache")
    model = loader.get(name, "staging")
    assert loader.registry.reader.kind == "lite"  # the lean serving reader, over real HTTP
    x = np.random.default_rng(0).standard_normal((5, 100)).astype(np.float32)
    out = model.predict(x)
    assert out.shape == (5, 10)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_alias_flip_and_corruption_keep_serving(
    on_stack: tuple[Registry, str], reference_export: Path, tmp_path: Path
) -> None:
    registry, name = on_stack
    registry.publish(reference_export, name, source="recorded")
    registry.promote(name, 1, "production")
    loader = ModelLoader(
        registry=Registry(bucket=registry.bucket), cache_dir=tmp_path / "c", alias_ttl_seconds=0.05
    )
    first = loader.get(name, "production")
    v2 = registry.publish(reference_export, name, source="recorded")
    registry.promote(name, v2, "production")
    time.sleep(0.06)
    assert loader.get(name, "production").version == v2
    # a corrupt v3 promoted to production: ModelCorrupt when pinned, v2 keeps serving the alias
    v3 = registry.publish(reference_export, name, source="recorded")
    key = registry.key(name, v3, "model.tflite")
    body = bytearray(registry.s3.get_object(Bucket=registry.bucket, Key=key)["Body"].read())
    body[2000] ^= 0x55
    registry.s3.put_object(Bucket=registry.bucket, Key=key, Body=bytes(body))
    with pytest.raises(ModelCorrupt):
        loader.get(name, v3)
    registry.promote(name, v3, "production")
    time.sleep(0.06)
    assert loader.get(name, "production").version == v2
    assert first.version == 1
    with pytest.raises(ModelNotFound):
        loader.get(name, 99)


def test_concurrent_publishers_threads_and_processes(
    on_stack: tuple[Registry, str], reference_export: Path
) -> None:
    registry, name = on_stack
    got: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def publish() -> None:
        try:
            reg = Registry(bucket=registry.bucket)
            barrier.wait()
            got.append(reg.publish(reference_export, name, source="recorded"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(3)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PUBLISH, str(reference_export), name, "2"],
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0, err
        got.extend(int(v) for v in out.strip().split(","))
    assert not errors
    assert sorted(got) == list(range(1, 8))
    assert registry.versions(name) == list(range(1, 8))


def test_models_cli_on_the_local_stack(on_stack: tuple[Registry, str], reference_export: Path) -> None:
    import orjson

    _, name = on_stack
    maas = [sys.executable, "-m", "maas", "models"]

    def cli(*args: str) -> Any:
        proc = subprocess.run(
            [*maas, *args, "--local", "--json"],
            capture_output=True,
            text=True,
            timeout=180,
            env=dict(os.environ),
        )
        assert proc.returncode == 0, proc.stderr + proc.stdout
        return orjson.loads(proc.stdout)

    assert cli(
        "publish", str(reference_export), "--name", name, "--source", "recorded", "--promote", "production"
    ) == {"name": name, "version": 1, "alias": "production"}
    listed = [m for m in cli("list") if m["name"] == name]
    assert listed == [{"name": name, "versions": [1], "aliases": {"production": 1}}]
    assert cli("show", name, "production")["version"] == 1
