"""Export (needs TensorFlow): files, metadata, verification, LiteRT vs SavedModel agreement."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from maas_models import ModelLoader, Registry
from maas_models.errors import ExportMismatch
from maas_models.verify import probe_inputs

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def nan_tflite(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A .tflite that returns NaN and raises nothing: the silent failure publish must refuse."""
    from maas_models.export import build_reference_model

    model = build_reference_model(1)
    model.layers[1].set_weights([np.full(w.shape, np.nan, np.float32) for w in model.layers[1].get_weights()])
    saved = tmp_path_factory.mktemp("nan") / "saved_model"
    model.export(str(saved), verbose=False)
    data: bytes = tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert()
    return data


def test_reference_export_layout(reference_export: Path) -> None:
    assert (reference_export / "saved_model" / "saved_model.pb").is_file()
    assert (reference_export / "model.tflite").stat().st_size > 30_000
    assert (reference_export / "model.keras").is_file()
    meta = orjson.loads((reference_export / "metadata.json").read_bytes())
    assert meta["runtime"] == "litert"
    assert meta["inputs"][0] == {
        "name": "features",
        "dtype": "float32",
        "shape": [None, 100],
        "feature_names": [f"f{i}" for i in range(100)],
    }
    assert meta["outputs"][0]["class_labels"] == [str(i) for i in range(10)]
    assert meta["framework"]["tensorflow"] == tf.__version__
    assert 0.0 <= meta["metrics"]["accuracy"] <= 1.0
    check = meta["export_check"]
    assert (
        check["max_abs_diff_keras"] <= 1e-5 and len(check["expected"]["probabilities"]) == check["probe_rows"]
    )


def test_litert_and_savedmodel_agree_within_1e5(reference_export: Path) -> None:
    from maas_models.backends.litert import LiteRTBackend
    from maas_models.backends.savedmodel import SavedModelBackend

    rng = np.random.default_rng(7)
    x = np.concatenate([probe_inputs(100), rng.standard_normal((500, 100)).astype(np.float32) * 3])
    lite = LiteRTBackend(reference_export / "model.tflite").predict(x)
    saved = SavedModelBackend(reference_export / "saved_model").predict(x)
    assert lite.shape == saved.shape == (x.shape[0], 10)
    assert float(np.max(np.abs(lite - saved))) <= 1e-5
    import keras

    keras_model = keras.models.load_model(reference_export / "model.keras", safe_mode=True)
    assert float(np.max(np.abs(np.asarray(keras_model(x, training=False)) - lite))) <= 1e-5


def test_export_keras_metadata_and_card(tmp_path: Path) -> None:
    from maas_models.export import build_reference_model, export_keras

    card = tmp_path / "card"
    card.mkdir()
    (card / "card.json").write_text('{"intended_use": "tests"}')
    (card / "card.md").write_text("# card")
    out = export_keras(
        build_reference_model(3),
        tmp_path / "out",
        feature_names=[f"x{i}" for i in range(100)],
        class_labels=list("abcdefghij"),
        metrics={"accuracy": 0.5},
        fingerprint={"rows": 10, "sha256": "00", "features": {}},
        sensitive_features=["group"],
        fairness={"gaps": {"demographic_parity_difference": 0.01}},
        card_dir=card,
    )
    meta = orjson.loads((out / "metadata.json").read_bytes())
    assert meta["model_card"] == "card.json"
    assert (out / "card.md").read_text() == "# card" and not (out / "card.html").exists()
    assert meta["sensitive_features"] == ["group"] and meta["fingerprint"]["rows"] == 10
    assert meta["fairness"]["gaps"]["demographic_parity_difference"] == 0.01
    assert not (out / "model.keras").exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"feature_names": ["a"] * 100, "class_labels": [str(i) for i in range(10)]}, "distinct"),
        ({"feature_names": [f"f{i}" for i in range(99)], "class_labels": [str(i) for i in range(10)]}, "100"),
        ({"feature_names": [f"f{i}" for i in range(100)], "class_labels": ["a"]}, "class labels"),
    ],
)
def test_export_keras_validates_names(tmp_path: Path, kwargs: dict[str, Any], match: str) -> None:
    from maas_models.export import build_reference_model, export_keras

    with pytest.raises(ValueError, match=match):
        export_keras(build_reference_model(0), tmp_path / "o", **kwargs)


def test_export_refuses_a_nan_model(tmp_path: Path) -> None:
    from maas_models.export import build_reference_model, export_keras

    model = build_reference_model(2)
    model.layers[2].set_weights([np.full(w.shape, np.nan, np.float32) for w in model.layers[2].get_weights()])
    with pytest.raises(ExportMismatch, match="NaN"):
        export_keras(
            model,
            tmp_path / "o",
            feature_names=[f"f{i}" for i in range(100)],
            class_labels=[str(i) for i in range(10)],
        )


@pytest.mark.parametrize("source", ["recorded", "savedmodel", "auto"])
def test_publish_refuses_silent_nan_tflite(
    s3_moto: str, reference_export: Path, tmp_path: Path, nan_tflite: bytes, source: str
) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(reference_export, bad)
    (bad / "model.tflite").write_bytes(nan_tflite)
    reg = Registry(bucket=s3_moto)
    with pytest.raises(ExportMismatch, match="NaN"):
        reg.publish(bad, "ref", source=source)
    assert reg.list_models() == []


def test_publish_checks_against_savedmodel(s3_moto: str, reference_export: Path, tmp_path: Path) -> None:
    """A tflite of *another* model: the recorded outputs are gone, the SavedModel still catches it."""
    from maas_models.export import build_reference_model, export_keras

    other = export_keras(
        build_reference_model(9),
        tmp_path / "other",
        feature_names=[f"f{i}" for i in range(100)],
        class_labels=[str(i) for i in range(10)],
    )
    bad = tmp_path / "bad"
    shutil.copytree(reference_export, bad)
    shutil.copyfile(other / "model.tflite", bad / "model.tflite")
    meta = orjson.loads((bad / "metadata.json").read_bytes())
    del meta["export_check"]["expected"]
    (bad / "metadata.json").write_bytes(orjson.dumps(meta))
    reg = Registry(bucket=s3_moto)
    with pytest.raises(ExportMismatch, match="SavedModel"):
        reg.publish(bad, "ref")
    version = reg.publish(reference_export, "ref", source="savedmodel")
    check = reg.manifest("ref", version).raw["export_check"]
    assert check["checked_against"] == ["keras", "savedmodel"] and check["max_abs_diff_savedmodel"] <= 1e-5


def test_savedmodel_runtime_served_by_loader(s3_moto: str, reference_export: Path, tmp_path: Path) -> None:
    """The manifest chooses the backend: runtime "savedmodel" loads through TensorFlow."""
    sm = tmp_path / "sm"
    shutil.copytree(reference_export, sm)
    meta = orjson.loads((sm / "metadata.json").read_bytes())
    meta["runtime"] = "savedmodel"
    (sm / "metadata.json").write_bytes(orjson.dumps(meta))
    reg = Registry(bucket=s3_moto)
    v_sm = reg.publish(sm, "ref", source="recorded")
    v_lite = reg.publish(reference_export, "ref", source="recorded")
    loader = ModelLoader(registry=reg, cache_dir=tmp_path / "cache")
    a, b = loader.get("ref", v_sm), loader.get("ref", v_lite)
    assert a.runtime == "savedmodel" and b.runtime == "litert"
    assert not (tmp_path / "cache" / "ref" / str(v_sm) / "model.tflite").exists()  # only what it needs
    x = np.random.default_rng(3).standard_normal((64, 100)).astype(np.float32)
    assert float(np.max(np.abs(a.predict(x) - b.predict(x)))) <= 1e-5


def _digamma_model() -> Any:
    """A model LiteRT cannot convert (no kernel for Digamma); TensorFlow runs it."""
    import keras

    class Digamma(keras.layers.Layer):
        def call(self, x: Any) -> Any:
            return tf.math.digamma(x)

    keras.utils.set_random_seed(5)
    inp = keras.Input(shape=(4,), name="features")
    hidden = keras.layers.Dense(4, activation="relu")(inp)
    out = keras.layers.Dense(3, activation="softmax")(Digamma()(hidden + 1.0))
    return keras.Model(inp, out)


def test_unconvertible_model_falls_back_to_savedmodel(s3_moto: str, tmp_path: Path) -> None:
    from maas_models.export import export_keras

    model = _digamma_model()
    names, labels = ["a", "b", "c", "d"], ["x", "y", "z"]
    with pytest.raises(Exception, match=r"(?i)convert|digamma|flatbuffer"):
        export_keras(model, tmp_path / "strict", feature_names=names, class_labels=labels, runtime="litert")
    out = export_keras(model, tmp_path / "auto", feature_names=names, class_labels=labels)
    meta = orjson.loads((out / "metadata.json").read_bytes())
    assert meta["runtime"] == "savedmodel" and "litert_unsupported" in meta
    assert not (out / "model.tflite").exists()
    reg = Registry(bucket=s3_moto)
    version = reg.publish(out, "dg")
    assert reg.manifest("dg", version).runtime == "savedmodel"
    loaded = ModelLoader(registry=reg, cache_dir=tmp_path / "cache").get("dg")
    assert loaded.runtime == "savedmodel"
    x = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    np.testing.assert_allclose(loaded.predict(x), np.asarray(model(x)), atol=1e-5)
