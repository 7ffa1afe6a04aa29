"""The serving import path stays lean: no TensorFlow, no Keras, and (with env credentials) no boto3."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from maas_models import Registry

SERVE = r"""
import sys
import numpy as np
import maas_models
from maas_models import ModelLoader, Registry, ModelRef, LoadedModel, Manifest
import maas_models.loader, maas_models.registry, maas_models.backends, maas_models.backends.litert
import maas_models.s3, maas_models.s3lite, maas_models.verify, maas_models.metrics, maas_models.naming
loader = ModelLoader(cache_dir=sys.argv[1])
model = loader.get("ref", "production")
out = model.predict(np.zeros((3, 100), np.float32))
assert out.shape == (3, 10), out.shape
HEAVY = ("tensorflow", "keras", "tf_keras", "boto3", "botocore")
heavy = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
print("HEAVY=" + ",".join(heavy))
print("READER=" + loader.registry.reader.kind)
# host names reach socket as bytes: a str host makes socket import the "idna" codec (~3 ms cold)
print("IDNA=" + str("encodings.idna" in sys.modules))
"""

MISSING_TF = r"""
import sys
sys.modules["tensorflow"] = None  # as if TensorFlow were not installed
from maas_models import ModelLoader
from maas_models.errors import RuntimeMissing
try:
    ModelLoader(cache_dir=sys.argv[1]).get("ref", 1)
except RuntimeMissing as exc:
    print("MISSING:" + str(exc))
"""


def _run(code: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], env=dict(os.environ), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_serving_path_imports_no_tensorflow_keras_or_boto3(published_ref: Registry, tmp_path: Path) -> None:
    published_ref.promote("ref", 1, "production")
    out = _run(SERVE, str(tmp_path / "cache"))
    assert "HEAVY=\n" in out, out
    assert "READER=lite" in out
    assert "IDNA=False" in out, out


def test_serving_path_with_boto3_reader_still_no_tensorflow(
    published_ref: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published_ref.promote("ref", 1, "production")
    monkeypatch.setenv("MAAS_S3_READER", "boto3")
    out = _run(SERVE, str(tmp_path / "cache"))
    heavy = out.split("HEAVY=")[1].splitlines()[0].split(",")
    assert not [m for m in heavy if m.split(".")[0] in ("tensorflow", "keras", "tf_keras")], heavy
    assert "READER=boto3" in out


MISSING_LITERT = r"""
import sys
sys.modules["ai_edge_litert"] = None  # as if the serving extra were not installed
from maas_models import ModelLoader
from maas_models.errors import RuntimeMissing
try:
    ModelLoader(cache_dir=sys.argv[1]).get("ref", 1)
except RuntimeMissing as exc:
    print("MISSING:" + str(exc))
"""


def test_litert_missing_names_the_runtime(published_ref: Registry, tmp_path: Path) -> None:
    out = _run(MISSING_LITERT, str(tmp_path / "cache"))
    assert out.startswith("MISSING:") and "ai-edge-litert" in out, out


def test_savedmodel_without_tensorflow_names_the_runtime(
    s3_moto: str, reference_export: Path, tmp_path: Path
) -> None:
    import shutil

    import orjson

    sm = tmp_path / "sm"
    shutil.copytree(reference_export, sm)
    meta = orjson.loads((sm / "metadata.json").read_bytes())
    meta["runtime"] = "savedmodel"
    (sm / "metadata.json").write_bytes(orjson.dumps(meta))
    Registry(bucket=s3_moto).publish(sm, "ref", source="recorded")
    out = _run(MISSING_TF, str(tmp_path / "cache"))
    assert out.startswith("MISSING:") and "tensorflow" in out and "savedmodel" in out, out
