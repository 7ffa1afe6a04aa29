"""The LiteRT backend serves any signature: N-D inputs, several named inputs and outputs, every
servable dtype, variable dimensions; compared with the Keras model it was converted from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from maas_models.backends.litert import LiteRTBackend
from maas_models.errors import InvalidInput
from maas_models.signature import Signature

from tests.unit import keras_models

pytest.importorskip("tensorflow")

BUILDERS = {
    "cnn": keras_models.cnn_8x8,
    "image_vector": keras_models.image_and_vector,
    "multi_output": keras_models.multi_output,
    "dtypes": keras_models.mixed_dtypes,
    "sequence": keras_models.sequence,
}
ATOL = 1e-5


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, bytes, Signature, Path]]:
    out = {}
    for name, build in BUILDERS.items():
        model = build()
        where = tmp_path_factory.mktemp(name)
        tflite, signature = keras_models.convert(model, where)
        out[name] = (model, tflite, signature, where / "saved_model")
    return out


def _backend(converted: dict[str, Any], name: str, **kwargs: Any) -> tuple[Any, LiteRTBackend, Signature]:
    model, tflite, signature, _ = converted[name]
    return model, LiteRTBackend(model_content=tflite, signature=signature, **kwargs), signature


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("rows", [1, 7])
def test_outputs_match_keras(converted: dict[str, Any], name: str, rows: int) -> None:
    model, backend, signature = _backend(converted, name)
    x = keras_models.sample_inputs(signature, rows, seed=rows)
    got = backend.predict_named(x)
    want = keras_models.keras_outputs(model, x, signature)
    assert list(got) == signature.output_names
    for key, ref in want.items():
        assert got[key].shape == ref.shape and got[key].dtype == signature.output(key).np_dtype
        np.testing.assert_allclose(got[key], ref, atol=ATOL, err_msg=f"{name}:{key}")


def test_signature_read_from_the_model_has_keras_names_dtypes_and_shapes(converted: dict[str, Any]) -> None:
    _, tflite, wanted, _ = converted["dtypes"]
    own = LiteRTBackend(model_content=tflite).signature  # no manifest: the .tflite's SignatureDef
    assert {s.name: (s.dtype, s.shape) for s in own.inputs} == {
        s.name: (s.dtype, s.shape) for s in wanted.inputs
    }
    dtypes = {s.name: s.dtype for s in wanted.inputs}
    assert dtypes == {
        "tokens": "int32",
        "ids": "int64",
        "small": "int8",
        "mid": "int16",
        "pixels": "uint8",
        "flag": "bool",
        "half": "float16",
        "wide": "float64",
    }
    _, tflite, wanted, _ = converted["multi_output"]
    # the manifest keeps the Keras order; a SignatureDef lists its keys sorted
    assert [(s.name, s.shape) for s in wanted.outputs] == [
        ("label", (-1, 3)),
        ("score", (-1, 1)),
        ("embedding", (-1, 2, 2)),
    ]
    own_outputs = LiteRTBackend(model_content=tflite).signature.outputs
    assert sorted((s.name, s.shape) for s in own_outputs) == sorted((s.name, s.shape) for s in wanted.outputs)


def test_single_input_predict_keeps_working_for_nd(converted: dict[str, Any]) -> None:
    model, backend, signature = _backend(converted, "cnn")
    x = keras_models.sample_inputs(signature, 3)["img"]
    np.testing.assert_allclose(backend.predict(x), np.asarray(model(x)), atol=ATOL)


def test_predict_refuses_multi_tensor_models_and_points_at_predict_named(converted: dict[str, Any]) -> None:
    for name in ("image_vector", "multi_output"):
        _, backend, _ = _backend(converted, name)
        with pytest.raises(InvalidInput, match="predict_named"):
            backend.predict(np.zeros((1, 6), np.float32))


@pytest.mark.parametrize("rows", [9, 10, 3])
def test_chunking_along_the_batch_dimension_matches_one_call(converted: dict[str, Any], rows: int) -> None:
    _, whole, signature = _backend(converted, "image_vector")
    _, chunked, _ = _backend(converted, "image_vector", chunk_rows=4)
    x = keras_models.sample_inputs(signature, rows, seed=3)
    np.testing.assert_allclose(
        chunked.predict_named(x)["probabilities"], whole.predict_named(x)["probabilities"], atol=1e-6
    )


def test_variable_dimension_is_resized_per_call(converted: dict[str, Any]) -> None:
    model, backend, signature = _backend(converted, "sequence")
    for steps in (1, 5, 17, 5):
        x = keras_models.sample_inputs(signature, 2, seed=steps, steps=steps)
        np.testing.assert_allclose(backend.predict_named(x)["y"], np.asarray(model(x["steps"])), atol=ATOL)


def test_empty_batch_gives_empty_outputs_of_the_right_shape(converted: dict[str, Any]) -> None:
    _, backend, _ = _backend(converted, "multi_output")
    got = backend.predict_named({"features": np.zeros((0, 6), np.float32)})
    assert {k: v.shape for k, v in got.items()} == {"label": (0, 3), "score": (0, 1), "embedding": (0, 2, 2)}


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (lambda x: x.pop("vec"), ["missing ['vec']", "'vec' (shape [N, 5] dtype float32)"]),
        (lambda x: x.update(extra=np.zeros((2, 1), np.float32)), ["unknown ['extra']"]),
        (
            lambda x: x.update(img=np.zeros((2, 8, 8), np.float32)),
            ["input 'img'", "shape [N, 8, 8, 1]", "[2, 8, 8]"],
        ),
        (
            lambda x: x.update(img=np.zeros((2, 8, 8, 3), np.float32)),
            ["input 'img'", "received shape [2, 8, 8, 3]"],
        ),
        (
            lambda x: x.update(vec=np.zeros((2, 5), np.float64)),
            ["input 'vec'", "dtype float32", "dtype float64"],
        ),
        (lambda x: x.update(vec=[[0.0] * 5] * 2), ["input 'vec'", "received list"]),
        (lambda x: x.update(vec=np.zeros((3, 5), np.float32)), ["same number of rows", "'vec': 3"]),
    ],
)
def test_invalid_inputs_name_the_input_and_expected_shape_and_dtype(
    converted: dict[str, Any], change: Any, fragments: list[str]
) -> None:
    _, backend, signature = _backend(converted, "image_vector")
    x: dict[str, Any] = keras_models.sample_inputs(signature, 2)
    change(x)
    with pytest.raises(InvalidInput) as info:
        backend.predict_named(x)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert info.value.status_code == 400


def test_int_and_bool_dtypes_are_checked_exactly(converted: dict[str, Any]) -> None:
    _, backend, signature = _backend(converted, "dtypes")
    x = keras_models.sample_inputs(signature, 2)
    x["flag"] = x["flag"].astype(np.int32)
    with pytest.raises(InvalidInput, match=r"input 'flag': expected shape \[N, 1\] dtype bool"):
        backend.predict_named(x)


def test_interpreters_are_cached_by_input_shapes(converted: dict[str, Any]) -> None:
    _, backend, signature = _backend(converted, "sequence")
    made: list[tuple[tuple[int, ...], ...]] = []
    original = backend._new_interpreter

    def counting(shapes: Any) -> Any:
        made.append(shapes)
        return original(shapes)

    backend._new_interpreter = counting  # type: ignore[method-assign]
    for steps in (4, 4, 6, 4, 6):
        backend.predict_named(keras_models.sample_inputs(signature, 2, steps=steps))
    assert made == [((2, 4, 3),), ((2, 6, 3),)]


def test_loaded_model_passes_predict_named_through(converted: dict[str, Any], tmp_path: Path) -> None:
    from maas_models.loaded import LoadedModel
    from maas_models.manifest import Manifest, ModelRef

    model, backend, signature = _backend(converted, "image_vector")
    raw = {
        "schema_version": 2,
        "name": "iv",
        "version": 1,
        "runtime": "litert",
        "files": {},
        "inputs": [s.to_manifest() for s in signature.inputs],
        "outputs": [s.to_manifest() for s in signature.outputs],
    }
    loaded = LoadedModel(ModelRef("iv", 1), Manifest.from_dict(raw), backend, tmp_path)
    x = keras_models.sample_inputs(signature, 2)
    np.testing.assert_allclose(
        loaded.predict_named(x)["probabilities"], np.asarray(model([x["img"], x["vec"]])), atol=ATOL
    )
    assert [s.name for s in loaded.inputs] == ["img", "vec"]
    assert set(loaded.zero_inputs(3)) == {"img", "vec"} and loaded.zero_inputs(3)["img"].shape == (3, 8, 8, 1)
    with pytest.raises(InvalidInput, match="not an \\[N, F\\] model"):
        _ = loaded.n_features


@pytest.mark.parametrize("name", ["multi_output", "image_vector", "cnn"])
def test_savedmodel_backend_offers_the_same_api(converted: dict[str, Any], name: str) -> None:
    from maas_models.backends.savedmodel import SavedModelBackend

    model, _, signature, saved = converted[name]
    backend = SavedModelBackend(saved, signature=signature)
    x = keras_models.sample_inputs(signature, 3)
    got = backend.predict_named(x)
    for key, ref in keras_models.keras_outputs(model, x, signature).items():
        np.testing.assert_allclose(got[key], ref, atol=ATOL)
    if len(signature.inputs) == 1 and len(signature.outputs) == 1:
        np.testing.assert_allclose(backend.predict(x["img"]), got["probabilities"])
    with pytest.raises(InvalidInput, match="missing"):
        backend.predict_named({})
