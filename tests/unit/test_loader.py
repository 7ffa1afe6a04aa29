"""ModelLoader on moto: download, verify, cache, predict, aliases, corruption, budgets, threads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from maas_models import LoadedModel, ModelLoader, Registry
from maas_models import metrics as mm


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
    return probe_inputs(100, 64, 1234), np.asarray(meta["export_check"]["expected"], dtype=np.float32)


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
