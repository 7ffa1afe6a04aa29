"""Manifest signatures: typed specs for any number of inputs/outputs, schema 1 still readable."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from maas_models.errors import InvalidInput, ModelCorrupt
from maas_models.manifest import Manifest, document, fingerprint_features, sensitive_features
from maas_models.signature import Signature, TensorSpec


def _raw(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "schema_version": 2,
        "name": "m",
        "version": 1,
        "runtime": "litert",
        "files": {},
        "inputs": [
            {"name": "img", "dtype": "uint8", "shape": [None, 28, 28, 1]},
            {"name": "vec", "dtype": "float32", "shape": [None, 3], "feature_names": ["a", "b", "c"]},
        ],
        "outputs": [
            {"name": "probabilities", "dtype": "float32", "shape": [None, 2], "class_labels": ["no", "yes"]},
            {"name": "box", "dtype": "float32", "shape": [None, 4]},
        ],
    }
    raw.update(overrides)
    return raw


def test_typed_specs_for_every_input_and_output() -> None:
    m = Manifest.from_dict(_raw())
    assert m.inputs == (
        TensorSpec("img", "uint8", (-1, 28, 28, 1)),
        TensorSpec("vec", "float32", (-1, 3), feature_names=("a", "b", "c")),
    )
    assert [o.name for o in m.outputs] == ["probabilities", "box"]
    assert m.outputs[0].class_labels == ("no", "yes") and m.class_labels == ["no", "yes"]
    assert m.signature.input("vec") is m.inputs[1] and m.signature.output("nope") is None
    assert not m.is_tabular
    with pytest.raises(InvalidInput, match="not an \\[N, F\\] model"):
        _ = m.n_features


def test_schema_1_manifest_with_minus_one_reads_the_same() -> None:
    raw = _raw(
        schema_version=1,
        inputs=[{"name": "features", "dtype": "float32", "shape": [-1, 100], "feature_names": None}],
        outputs=[{"name": "probabilities", "dtype": "float32", "shape": [-1, 10]}],
    )
    m = Manifest.from_dict(raw)
    assert m.inputs[0].shape == (-1, 100) and m.is_tabular and m.n_features == 100 and m.n_outputs == 10
    assert m.input_spec["name"] == "features" and m.input_dtype == "float32" and m.feature_names == []


def test_to_manifest_round_trips_and_writes_null_for_variable_dimensions() -> None:
    spec = TensorSpec("steps", "float16", (-1, -1, 3))
    assert spec.to_manifest() == {"name": "steps", "dtype": "float16", "shape": [None, None, 3]}
    assert TensorSpec.from_manifest(spec.to_manifest()) == spec
    assert spec.describe() == "shape [N, None, 3] dtype float16" and spec.row_size is None
    assert spec.zeros(2).shape == (2, 1, 3) and spec.zeros(2).dtype == np.float16


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"schema_version": 3}, "unsupported schema_version 3"),
        ({"inputs": []}, "inputs must be a non-empty list"),
        ({"inputs": [{"name": "a", "dtype": "float32", "shape": [None]}] * 2}, "duplicate name 'a'"),
        ({"inputs": [{"name": "a", "dtype": "complex64", "shape": [None]}]}, "unknown dtype 'complex64'"),
        ({"inputs": [{"name": "a", "dtype": "float32", "shape": "N,3"}]}, "shape must be a list"),
        ({"inputs": [{"name": "a", "dtype": "float32", "shape": [None, 2.5]}]}, "integers or null"),
        ({"outputs": [{"dtype": "float32", "shape": [None]}]}, "needs a non-empty name"),
        (
            {
                "inputs": [
                    {"name": "a", "dtype": "float32", "shape": [None, 2, 2], "feature_names": ["x", "y"]}
                ]
            },
            "feature_names need a rank-2 shape",
        ),
    ],
)
def test_malformed_signatures_are_corrupt_manifests(change: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ModelCorrupt, match=None) as info:
        Manifest.from_dict(_raw(**change))
    assert fragment in str(info.value)


def test_check_inputs_orders_by_signature_and_checks_batch_sizes() -> None:
    sig = Signature.from_manifest(_raw())
    x = {"vec": np.zeros((2, 3), np.float32), "img": np.zeros((2, 28, 28, 1), np.uint8)}
    assert list(sig.check_inputs(x)) == ["img", "vec"]
    with pytest.raises(InvalidInput, match="input 'img': expected shape \\[N, 28, 28, 1\\] dtype uint8"):
        sig.check_inputs({**x, "img": np.zeros((2, 28, 28, 1), np.float32)})


def test_manifest_accessors_read_a_manifest_and_an_unpublished_document_alike() -> None:
    doc = {
        **_raw(),
        "fingerprint": {"features": {"x": {"mean": 1.0}}},
        "sensitive_features": ["group"],
    }
    manifest = Manifest.from_dict(doc)
    for source in (manifest, doc):
        assert document(source) is doc
        assert fingerprint_features(source) == {"x": {"mean": 1.0}}
        assert sensitive_features(source) == ["group"]
    bare = _raw()
    assert fingerprint_features(bare) == {} and sensitive_features(bare) == []
    with pytest.raises(TypeError, match="expected a Manifest or a manifest mapping"):
        document(["not", "a", "manifest"])
