"""Model building from the spec, and the float32 export copy of a mixed-precision (GPU) model, on CPU."""

from __future__ import annotations

import numpy as np
import pytest
from maas.training.spec import parse_spec

keras = pytest.importorskip("keras")


@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_reference_architecture_by_default() -> None:
    from maas.training.model import build_model

    spec = parse_spec({"model_name": "ref", "dataset": {"uri": "a.csv", "label_column": "y"}})
    model = build_model(spec.architecture, spec.training, 100, 10)
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [(d.units, d.activation.__name__) for d in dense] == [(64, "relu"), (32, "relu"), (10, "softmax")]
    assert model.inputs[0].name.startswith("features") and model.outputs[0].shape[-1] == 10
    assert model.count_params() == 100 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10
    assert isinstance(model.optimizer, keras.optimizers.Adam)


def test_mixed_precision_model_exports_as_float32(restore_policy: None) -> None:
    from maas.training.model import build_model, float32_copy

    spec = parse_spec(
        {
            "model_name": "mp",
            "dataset": {"uri": "a.csv", "label_column": "y"},
            "architecture": {
                "hidden_layers": [{"units": 16, "dropout": 0.5}, {"units": 8, "activation": "tanh"}]
            },
        }
    )
    keras.mixed_precision.set_global_policy("mixed_float16")  # what select_strategy does on a GPU
    model = build_model(spec.architecture, spec.training, 12, 3)
    assert model.get_layer("dense_0").compute_dtype == "float16"
    assert model.get_layer("probabilities").compute_dtype == "float32"  # softmax stays float32
    assert any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
    x = np.random.default_rng(0).normal(size=(32, 12)).astype(np.float32)
    twin = float32_copy(model, spec.architecture, spec.training)
    assert all(layer.compute_dtype == "float32" for layer in twin.layers if layer.weights)
    np.testing.assert_allclose(np.asarray(twin(x)), np.asarray(model(x)), atol=5e-3)
