"""examples/: each example is trained from code, imported with `maas models import` (CLI and Python
API) and served by the model layer exactly like Keras serves it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from maas.cli import main
from maas_examples import EXAMPLES, cached_keras, example, import_example, metrics_of, save
from maas_models import ModelLoader, Registry

keras = pytest.importorskip("keras")
pytest.importorskip("sklearn")


def _keras_outputs(model: object, inputs: dict[str, np.ndarray], names: list[str]) -> dict[str, np.ndarray]:
    x = inputs if len(inputs) > 1 else next(iter(inputs.values()))
    y = model(x, training=False)  # type: ignore[operator]
    if isinstance(y, dict):
        return {k: np.asarray(v) for k, v in y.items()}
    return {names[0]: np.asarray(y)}


def test_digits_cnn_trains_well_and_imports_from_the_cli(
    s3_moto: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = cached_keras("digits-cnn")
    assert metrics_of(path)["accuracy"] >= 0.9  # a real classifier, not just a shape
    code = main(
        ["models", "import", str(path), "--name", "digits", "--promote", "production", "--json",
         "--class-labels", ",".join(str(d) for d in range(10))]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = orjson.loads(out)
    image = {"resize": "bilinear", "formats": ["JPEG", "PNG"], "max_pixels": 40_000_000}  # takes JPEG/PNG too
    assert doc["inputs"] == [{"name": "image", "dtype": "float32", "shape": [None, 8, 8, 1], "image": image}]
    assert doc["outputs"][0]["name"] == "digit" and doc["outputs"][0]["class_labels"][9] == "9"
    served = ModelLoader(registry=Registry(bucket=s3_moto), cache_dir=tmp_path / "c").get(
        "digits", "production"
    )
    x = example("digits-cnn").sample_inputs(16)
    want = np.asarray(keras.saving.load_model(path, safe_mode=True)(x["image"], training=False))
    got = served.predict(x["image"])
    np.testing.assert_allclose(got, want, atol=1e-5)
    labels = np.asarray(served.class_labels)[got.argmax(axis=1)]
    assert (labels == np.asarray([str(d) for d in want.argmax(axis=1)])).all()


@pytest.mark.parametrize("name", ["image-tabular", "multi-output"])
def test_multi_tensor_examples_import_and_match_keras(s3_moto: str, tmp_path: Path, name: str) -> None:
    mod = example(name)
    result = import_example(name, registry=Registry(bucket=s3_moto))
    manifest = Registry(bucket=s3_moto).manifest(name, result.version)
    assert manifest.metrics["accuracy"] >= 0.8
    served = ModelLoader(registry=Registry(bucket=s3_moto), cache_dir=tmp_path / "c").get(name)
    x = mod.sample_inputs(8)
    got = served.predict_named(x)
    source = keras.saving.load_model(cached_keras(name), safe_mode=True)
    want = _keras_outputs(source, x, served.signature.output_names)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-5, err_msg=f"{name}:{key}")
    if name == "image-tabular":
        assert served.signature.input_names == ["image", "stats"]
        assert served.signature.input("stats").feature_names == ("ink", "spread", "top_share")
    else:
        assert served.signature.output_names == ["digit", "is_even", "ink"]
        assert served.signature.output("digit").class_labels[0] == "0"


def test_every_example_is_listed_and_documented() -> None:
    readme = (Path(__file__).resolve().parents[2] / "examples" / "README.md").read_text()
    for name in EXAMPLES:
        assert f"`{name}`" in readme and name == example(name).NAME


RAW_EXAMPLES = ["image-classifier", "sentiment", "customer-segments"]


def _keras_raw(model: Any, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The Keras model on raw rows: text columns as [N, 1] string tensors, as Keras takes them."""
    import tensorflow as tf

    columns = {name: tf.constant(v.astype(str) if v.dtype == object else v) for name, v in inputs.items()}
    columns = {name: tf.reshape(t, (-1, 1)) if t.shape.rank == 1 else t for name, t in columns.items()}
    return np.asarray(model(columns, training=False))


@pytest.mark.parametrize("name", RAW_EXAMPLES)
def test_raw_input_examples_train_import_from_the_cli_and_serve_like_keras(
    s3_moto: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """What `python -m maas_examples NAME OUT` writes (trained in this process: no second TensorFlow
    start), imported by `maas models import`: the preprocessing split off, served equal to Keras."""
    mod = example(name)
    path = save(name, tmp_path / "built")
    assert metrics_of(path)["accuracy"] >= 0.75  # a real classifier, not just a shape
    labels = mod.IMPORT_OPTIONS["class_labels"]
    code = main(
        ["models", "import", str(path), "--name", name, "--promote", "production", "--json",
         "--class-labels", ",".join(labels)]
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = orjson.loads(out)
    served = ModelLoader(registry=Registry(bucket=s3_moto), cache_dir=tmp_path / "c").get(name, "production")
    x = mod.sample_inputs(4)
    assert [i["name"] for i in doc["inputs"]] == list(x)
    want = _keras_raw(keras.saving.load_model(path, safe_mode=True), x)
    got = served.predict_named(x)[served.signature.output_names[0]]
    np.testing.assert_allclose(got, want, atol=1e-5)
    if name == "image-classifier":  # JPEG files of another size: decoded, resized, the right colours
        from maas.protocols.images import decode_images

        jpegs, colours = mod.sample_jpegs(3)
        probs = served.predict_named({"img": decode_images(jpegs, served.signature.input("img"), "test")})
        assert [labels[i] for i in probs["colour"].argmax(axis=1)] == colours
    else:
        assert doc["export_check"]["preprocessing"]["max_abs_diff_keras"] <= 1e-5  # numpy, checked at import
