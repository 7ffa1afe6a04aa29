"""`maas models import` and `maas_models.importer`: a team's own .keras file or SavedModel directory,
converted to LiteRT, verified against the source on probe inputs, published; refusals publish nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from maas.cli import main
from maas_models import ModelLoader, Registry
from maas_models.errors import ExportMismatch, ModelNotFound, UnsupportedModel
from maas_models.importer import import_model, prepare

from tests.unit import keras_models

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["models", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _loader(registry: Registry, tmp_path: Path) -> ModelLoader:
    return ModelLoader(registry=registry, cache_dir=tmp_path / "cache")


def test_import_keras_file_from_the_cli_serves_like_keras(
    s3_moto: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = keras_models.cnn_8x8(seed=1)
    path = tmp_path / "cnn.keras"
    model.save(path)
    code, out, err = cli(
        capsys,
        "import",
        str(path),
        "--name",
        "cnn",
        "--promote",
        "staging",
        "--class-labels",
        "a,b,c",
        "--json",
    )
    assert code == 0, err
    doc = orjson.loads(out)
    assert doc["version"] == 1 and doc["alias"] == "staging"
    image = {"resize": "bilinear", "formats": ["JPEG", "PNG"], "max_pixels": 40_000_000}  # takes JPEG/PNG too
    assert doc["inputs"] == [{"name": "img", "dtype": "float32", "shape": [None, 8, 8, 1], "image": image}]
    assert doc["outputs"] == [
        {"name": "probabilities", "dtype": "float32", "shape": [None, 3], "class_labels": ["a", "b", "c"]}
    ]
    reg = Registry(bucket=s3_moto)
    manifest = reg.manifest("cnn", 1)
    assert manifest.raw["schema_version"] == 2 and manifest.raw["source"]["kind"] == "keras"
    assert (
        "expected" not in manifest.raw["export_check"]
        and manifest.raw["export_check"]["max_abs_diff_keras"] <= 1e-5
    )
    loaded = _loader(reg, tmp_path).get("cnn", "staging")
    x = np.random.default_rng(0).random((5, 8, 8, 1), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict(x), np.asarray(model(x)), atol=1e-5)
    code, out, _ = cli(capsys, "show", "cnn")
    assert "input:      img shape [N, 8, 8, 1] dtype float32" in out and "classes a, b, c" in out


def test_import_keras_export_dir_with_two_inputs(s3_moto: str, tmp_path: Path) -> None:
    model = keras_models.image_and_vector(seed=2)
    model.export(str(tmp_path / "exported"), format="tf_saved_model", verbose=False)
    result = import_model(tmp_path / "exported", "iv", registry=Registry(bucket=s3_moto))
    assert result.signature.input_names == ["img", "vec"] and result.signature.output_names == ["output_0"]
    loaded = _loader(Registry(bucket=s3_moto), tmp_path).get("iv")
    x = keras_models.sample_inputs(result.signature, 4, seed=5)
    np.testing.assert_allclose(
        loaded.predict_named(x)["output_0"], np.asarray(model([x["img"], x["vec"]])), atol=1e-5
    )


class _Scorer(tf.Module):
    """A tf.saved_model.save model (no Keras): an embedding lookup hidden in plain TF ops, two outputs."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        self.table = tf.Variable(rng.standard_normal((30, 4)).astype(np.float32))
        self.w = tf.Variable(rng.standard_normal((4, 2)).astype(np.float32))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 3], tf.int32, name="ids"),
            tf.TensorSpec([None, 2], tf.float32, name="extra"),
        ]
    )
    def serve(self, ids: Any, extra: Any) -> dict[str, Any]:
        h = tf.reduce_mean(tf.gather(self.table, ids), axis=1)
        logits = tf.matmul(h, self.w) + tf.reduce_sum(extra, axis=1, keepdims=True)
        return {"logits": logits, "best": tf.argmax(logits, axis=1, output_type=tf.int32)}


def test_import_tf_saved_model_finds_the_hidden_embedding_range(s3_moto: str, tmp_path: Path) -> None:
    module = _Scorer()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.serve})
    result = import_model(tmp_path / "sm", "scorer", registry=Registry(bucket=s3_moto))
    assert result.check["int_ranges"] == {"ids": [0, 30]}  # narrowed from the gather's error
    loaded = _loader(Registry(bucket=s3_moto), tmp_path).get("scorer")
    ids = np.random.default_rng(1).integers(0, 30, (6, 3)).astype(np.int32)
    extra = np.random.default_rng(2).standard_normal((6, 2)).astype(np.float32)
    got = loaded.predict_named({"ids": ids, "extra": extra})
    want = module.serve(ids, extra)
    np.testing.assert_allclose(got["logits"], want["logits"].numpy(), atol=1e-5)
    np.testing.assert_array_equal(got["best"], want["best"].numpy())
    assert {s.name: s.dtype for s in loaded.outputs} == {"logits": "float32", "best": "int32"}


def test_python_api_every_dtype_and_embedding_ranges(s3_moto: str, tmp_path: Path) -> None:
    model = keras_models.mixed_dtypes(seed=3)
    result = import_model(model, "dtypes", registry=Registry(bucket=s3_moto), promote="production")
    assert result.promoted == "production"
    assert result.check["int_ranges"] == {"ids": [0, 20], "tokens": [0, 20]}
    loaded = _loader(Registry(bucket=s3_moto), tmp_path).get("dtypes", "production")
    x = keras_models.sample_inputs(loaded.signature, 9, seed=4)
    np.testing.assert_allclose(
        loaded.predict_named(x)["y"], keras_models.keras_outputs(model, x, loaded.signature)["y"], atol=1e-5
    )


def test_multi_output_labels_by_name(s3_moto: str, tmp_path: Path) -> None:
    out = prepare(keras_models.multi_output(), tmp_path / "out", class_labels={"label": ["x", "y", "z"]})
    meta = orjson.loads((out / "metadata.json").read_bytes())
    assert [o["name"] for o in meta["outputs"]] == ["label", "score", "embedding"]
    assert meta["outputs"][0]["class_labels"] == ["x", "y", "z"] and "class_labels" not in meta["outputs"][1]
    with pytest.raises(ValueError, match="several tensors"):
        prepare(keras_models.multi_output(), tmp_path / "o2", class_labels=["x", "y", "z"])
    version = Registry(bucket=s3_moto).publish(out, "multi")  # publish re-checks (TF: SavedModel too)
    check = Registry(bucket=s3_moto).manifest("multi", version).raw["export_check"]
    assert check["checked_against"] == ["keras", "savedmodel"]


def _string_model() -> Any:
    """A string input that reaches a layer no preprocessing step reproduces (a StringLookup alone
    is cut out of the graph and served by maas_models.preprocessing: tests/unit/test_raw_inputs.py)."""
    text = keras.Input((1,), dtype="string", name="text")
    ids = keras.layers.Lambda(lambda s: tf.strings.to_number(s), output_shape=(1,))(text)
    return keras.Model(text, keras.layers.Dense(2)(ids))


def _inverse_model() -> Any:
    class Inverse(keras.layers.Layer):
        def call(self, x: Any) -> Any:
            return tf.reshape(tf.linalg.inv(tf.reshape(x, (-1, 2, 2))), (-1, 4))

        def compute_output_shape(self, shape: Any) -> Any:
            return shape

    inp = keras.Input((4,), name="x")
    return keras.Model(inp, Inverse()(inp))


@pytest.mark.parametrize(
    ("build", "fragments", "saved_model_fragment"),
    [
        (_string_model, ["input 'text' is a string", "LiteRT cannot take strings"], "are strings"),
        (
            _inverse_model,
            ["ops ['MatrixInverse']", "builtin ops cannot run them", "standard Keras layers"],
            "ops ['MatrixInverse']",
        ),
    ],
)
def test_refused_imports_name_the_cause_and_publish_nothing(
    s3_moto: str,
    build: Any,
    fragments: list[str],
    saved_model_fragment: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(UnsupportedModel) as info:
        import_model(build(), "bad", registry=Registry(bucket=s3_moto))
    for fragment in fragments:
        assert fragment in str(info.value)
    assert Registry(bucket=s3_moto).list_models() == []
    build().export(str(tmp_path / "sm"), format="tf_saved_model", verbose=False)
    code, _, err = cli(capsys, "import", str(tmp_path / "sm"), "--name", "bad")
    assert code == 1 and "UnsupportedModel" in err and saved_model_fragment in err


def test_failed_verification_publishes_nothing_and_gives_the_gap(
    s3_moto: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The converter hands back a real .tflite of the same architecture with other weights (what a
    converter that mangles weights would do): the check against the source refuses it."""
    from maas_models import importer

    other, _ = keras_models.convert(keras_models.cnn_8x8(seed=7), tmp_path / "other")
    monkeypatch.setattr(importer, "convert_saved_model", lambda *_a, **_k: other)
    with pytest.raises(ExportMismatch) as info:
        import_model(keras_models.cnn_8x8(seed=1), "cnn", registry=Registry(bucket=s3_moto))
    message = str(info.value)
    assert "model.tflite vs keras.Model" in message and "output 'probabilities'" in message
    assert "max abs difference" in message and "worst at index" in message
    assert Registry(bucket=s3_moto).list_models() == []


def test_import_interrupted_halfway_publishes_nothing(s3_moto: str, tmp_path: Path) -> None:
    reg = Registry(bucket=s3_moto)
    real_upload = reg.s3.upload_file
    calls: list[str] = []

    def upload_then_stop(filename: str, bucket: str, key: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(key)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the uploads
        return real_upload(filename, bucket, key, *args, **kwargs)

    reg.s3.upload_file = upload_then_stop
    with pytest.raises(KeyboardInterrupt):
        import_model(keras_models.cnn_8x8(), "cnn", registry=reg, work_dir=tmp_path)
    fresh = Registry(bucket=s3_moto)
    assert fresh.versions("cnn") == []
    with pytest.raises(ModelNotFound):
        fresh.resolve("cnn")
    keys = [o["Key"] for o in reg.s3.list_objects_v2(Bucket=s3_moto).get("Contents", [])]
    assert keys == ["models/cnn/1/_claim.json"]  # the claim stays (numbers are never reused)
    assert list(tmp_path.iterdir()) == []  # the work directory is gone too
    reg.s3.upload_file = real_upload
    assert import_model(keras_models.cnn_8x8(), "cnn", registry=reg).version == 2
