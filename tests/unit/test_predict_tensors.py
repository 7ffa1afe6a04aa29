"""The real predict handler serving tensor models (moto S3): a CNN on [N, 8, 8, 1] images, an image +
vector model with two named inputs, a model with three outputs, and one input per integer/bool/float
dtype. Outputs are compared with the Keras model's (recorded when the models were built); bad input is
a 400 naming the input, its shape and dtype, never a 5xx."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.apigw import Client
from tests.tensor_models import MODELS, cached_tensor_models, load_probe

pytest.importorskip("tensorflow")  # the models are built (once, cached) with Keras in a subprocess
ATOL = 1e-5


@pytest.fixture(scope="session")
def tensor_models() -> Path:
    return cached_tensor_models()


@pytest.fixture
def app(s3_moto: str, tensor_models: Path, tmp_path: Path) -> Any:
    from maas.serving.routes.common import configure
    from maas.serving.service import ModelService
    from maas_models import ModelLoader, Registry

    from tests.handlers import load_handler

    registry = Registry(bucket=s3_moto)
    for name in MODELS:
        registry.publish(tensor_models / name, name.replace("_", "-"), verify=False)
    module = load_handler("predict")
    configure(
        ModelService(loader=ModelLoader(registry=registry, cache_dir=tmp_path / "cache"), registry=registry)
    )
    yield module
    configure(ModelService())


@pytest.fixture
def rest(app: Any) -> Client:
    return Client(app.handler, kind="rest")


def probe(tensor_models: Path, name: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    return load_probe(tensor_models / name)


def close(got: Any, want: np.ndarray) -> None:
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, atol=ATOL)


def test_cnn_row_format_nested_images(rest: Client, tensor_models: Path) -> None:
    x, want = probe(tensor_models, "cnn")
    r = rest.post("/v1/models/cnn:predict", json={"instances": x["img"].tolist()})
    assert r.status == 200, r.body
    close(r.json["predictions"], want["probabilities"])
    named = rest.post(
        "/v1/models/cnn:predict", json={"instances": [{"img": row} for row in x["img"].tolist()]}
    )
    close(named.json["predictions"], want["probabilities"])


def test_two_named_inputs_row_and_columnar(rest: Client, tensor_models: Path) -> None:
    x, want = probe(tensor_models, "image_vector")
    rows = [{"img": i, "vec": v} for i, v in zip(x["img"].tolist(), x["vec"].tolist(), strict=True)]
    r = rest.post("/v1/models/image-vector:predict", json={"instances": rows})
    assert r.status == 200, r.body
    close(r.json["predictions"], want["probabilities"])
    cols = rest.post(
        "/v1/models/image-vector:predict", json={"inputs": {k: v.tolist() for k, v in x.items()}}
    )
    close(cols.json["outputs"], want["probabilities"])


def test_v2_several_inputs_flat_or_nested(rest: Client, tensor_models: Path) -> None:
    x, want = probe(tensor_models, "image_vector")
    for nested in (False, True):
        inputs = [
            {
                "name": k,
                "shape": list(v.shape),
                "datatype": "FP32",
                "data": v.tolist() if nested else v.reshape(-1).tolist(),
            }
            for k, v in x.items()
        ]
        r = rest.post("/v2/models/image-vector/infer", json={"inputs": inputs})
        assert r.status == 200, r.body
        (out,) = r.json["outputs"]
        assert out["name"] == "probabilities" and out["shape"] == list(want["probabilities"].shape)
        close(np.asarray(out["data"]).reshape(out["shape"]), want["probabilities"])


def test_multiple_named_outputs_on_both_protocols(rest: Client, tensor_models: Path) -> None:
    x, want = probe(tensor_models, "multi_output")
    r = rest.post("/v1/models/multi-output:predict", json={"instances": x["features"].tolist()})
    assert r.status == 200, r.body
    preds = r.json["predictions"]
    assert len(preds) == len(x["features"]) and set(preds[0]) == set(want)
    for name, ref in want.items():
        close([p[name] for p in preds], ref)
    cols = rest.post("/v1/models/multi-output:predict", json={"inputs": x["features"].tolist()})
    for name, ref in want.items():
        close(cols.json["outputs"][name], ref)
    v2 = rest.post(
        "/v2/models/multi-output/infer",
        json={
            "inputs": [{"name": "features", "shape": list(x["features"].shape), "datatype": "FP32",
                        "data": x["features"].reshape(-1).tolist()}],
            "outputs": [{"name": "embedding"}, {"name": "score"}],
        },
    )  # fmt: skip
    assert [o["name"] for o in v2.json["outputs"]] == ["embedding", "score"]
    emb = v2.json["outputs"][0]
    assert emb["shape"] == list(want["embedding"].shape)
    close(np.asarray(emb["data"]).reshape(emb["shape"]), want["embedding"])


def test_every_dtype_is_served_in_its_own_dtype(rest: Client, tensor_models: Path) -> None:
    x, want = probe(tensor_models, "dtypes")
    rows = [{k: v[i].tolist() for k, v in x.items()} for i in range(len(x["tokens"]))]
    r = rest.post("/v1/models/dtypes:predict", json={"instances": rows})
    assert r.status == 200, r.body
    close(r.json["predictions"], want["y"])


def test_metadata_shows_the_full_signature(rest: Client) -> None:
    tfs = rest.get("/v1/models/image-vector/metadata").json
    sig = tfs["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["inputs"]["img"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in sig["inputs"]["img"]["tensor_shape"]["dim"]] == ["-1", "8", "8", "1"]
    assert [d["size"] for d in sig["inputs"]["vec"]["tensor_shape"]["dim"]] == ["-1", "5"]
    v2 = rest.get("/v2/models/dtypes").json
    types = {t["name"]: (t["datatype"], t["shape"]) for t in v2["inputs"]}
    assert types["pixels"] == ("UINT8", [-1, 6]) and types["flag"] == ("BOOL", [-1, 1])
    assert types["half"][0] == "FP16" and types["ids"][0] == "INT64"
    outs = {t["name"]: t["shape"] for t in rest.get("/v2/models/multi-output").json["outputs"]}
    assert outs == {"label": [-1, 3], "score": [-1, 1], "embedding": [-1, 2, 2]}


IMG_ROW = np.zeros((8, 8, 1)).tolist()
VEC_ROW = [0.0] * 5


@pytest.mark.parametrize(
    ("model", "body", "needle"),
    [
        (
            "cnn",
            {"instances": [np.zeros((8, 8)).tolist()]},
            r"input 'img' must have shape \[None, 8, 8, 1\] .* dtype float32",
        ),
        ("cnn", {"instances": [np.zeros((8, 7, 1)).tolist()]}, r"must have shape \[None, 8, 8, 1\]"),
        ("cnn", {"instances": [IMG_ROW, IMG_ROW[:7]]}, "ragged"),
        ("image-vector", {"instances": [{"img": IMG_ROW}]}, "missing input"),
        ("image-vector", {"instances": [{"img": IMG_ROW, "vec": VEC_ROW, "x": 1}]}, "unknown input name"),
        (
            "image-vector",
            {"instances": [{"img": IMG_ROW, "vec": VEC_ROW}, [1, 2]]},
            "mixes objects and values",
        ),
        ("image-vector", {"instances": [IMG_ROW]}, "this model has 2 inputs"),
        ("image-vector", {"inputs": {"img": [IMG_ROW, IMG_ROW], "vec": [VEC_ROW]}}, "same number of rows"),
        ("dtypes", {"instances": [{"pixels": [300] * 6}]}, "missing input"),
    ],
)
def test_bad_tensor_input_is_a_400_naming_the_input(rest: Client, model: str, body: Any, needle: str) -> None:
    import re

    r = rest.post(f"/v1/models/{model}:predict", json=body)
    assert r.status == 400, r.body
    assert re.search(needle, r.json["error"]), r.json["error"]


def _dtype_row(**override: Any) -> dict[str, Any]:
    row = {"tokens": [1, 2, 3, 4], "ids": [1, 2], "small": [1, -1], "mid": [5, 6]}
    row.update({"pixels": [0, 255, 3, 4, 5, 6], "flag": [True], "half": [0.5, 1.0, 2.0], "wide": [1.0, 2.0]})
    return {**row, **override}


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        (
            {"pixels": [300, 0, 0, 0, 0, 0]},
            r"input 'pixels' \(uint8, shape \[None, 6\]\): a value is out of range",
        ),
        ({"small": [200, 0]}, r"int8 takes -128 to 127"),
        ({"tokens": [1.5, 2, 3, 4]}, r"input 'tokens' \(int32, shape \[None, 4\]\) takes integers"),
        ({"flag": [1]}, r"input 'flag' \(bool, shape \[None, 1\]\) is boolean"),
        ({"half": [1e6, 0, 0]}, r"out of float16 range"),
        ({"ids": ["a", "b"]}, r"input 'ids' \(int64, shape \[None, 2\]\) takes int64 numbers, got str"),
    ],
)
def test_dtype_errors_name_the_input_shape_and_dtype(
    rest: Client, override: dict[str, Any], needle: str
) -> None:
    import re

    r = rest.post("/v1/models/dtypes:predict", json={"instances": [_dtype_row(**override)]})
    assert r.status == 400, r.body
    assert re.search(needle, r.json["error"]), r.json["error"]
    v2 = rest.post(
        "/v2/models/dtypes/infer",
        json={
            "inputs": [
                {"name": "pixels", "shape": [1, 6], "datatype": "UINT16", "data": [300, 0, 0, 0, 0, 0]}
            ]
        },
    )
    assert v2.status == 400 and "pixels" in v2.json["error"]


def test_limits_say_what_to_do_instead(rest: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    from maas.serving.routes.common import STATE

    monkeypatch.setattr(STATE, "settings", dataclasses.replace(STATE.settings, max_elements=100))
    r = rest.post("/v1/models/cnn:predict", json={"instances": [IMG_ROW, IMG_ROW]})
    assert r.status == 413 and "MAAS_MAX_ELEMENTS" in r.json["error"] and "ingest bucket" in r.json["error"]
    v2 = rest.post(
        "/v2/models/cnn/infer",
        json={"inputs": [{"name": "img", "shape": [2, 8, 8, 1], "datatype": "FP32", "data": [0.0] * 128}]},
    )
    assert v2.status == 413 and "ingest bucket" in v2.json["error"]


# -- :explain -------------------------------------------------------------------------------------------
def test_explain_image_on_a_grid_is_complete(rest: Client, tensor_models: Path) -> None:
    x, _ = probe(tensor_models, "cnn")
    r = rest.post(
        "/v1/models/cnn:explain", json={"instances": x["img"][:2].tolist(), "grid": [2, 4], "top_k": None}
    )
    assert r.status == 200, r.body
    for e in r.json["explanations"]:
        cells = e["top_features"]
        assert len(cells) == 8 and {c["feature"] for c in cells} >= {"img[0:4, 0:2]", "img[4:8, 6:8]"}
        assert e["class_label"] in ("circle", "square", "line")
        assert abs(e["sum_attributions"] - (e["prediction"] - e["baseline_prediction"])) < 1e-3
        assert sum(c["attribution"] for c in cells) == pytest.approx(e["sum_attributions"], abs=1e-6)
    exact = rest.post("/v1/models/cnn:explain", json={"instances": x["img"][:1].tolist(), "grid": 3})
    assert exact.json["explanations"][0]["method"] == "kernel_shap"  # 9 cells: every coalition fits


def test_explain_multi_input_per_input_group(rest: Client, tensor_models: Path) -> None:
    x, _ = probe(tensor_models, "image_vector")
    rows = [{"img": x["img"][0].tolist(), "vec": x["vec"][0].tolist()}]
    r = rest.post("/v1/models/image-vector:explain", json={"instances": rows, "grid": 1, "target": 2})
    assert r.status == 200, r.body
    (e,) = r.json["explanations"]
    assert {f["feature"] for f in e["top_features"]} == {"img[0:8, 0:8]", "vec"} and e["class_index"] == 2
    assert abs(e["sum_attributions"] - (e["prediction"] - e["baseline_prediction"])) < 1e-3
    assert e["baseline_source"] == "zeros" and e["warnings"]


@pytest.mark.parametrize(
    ("model", "body", "needle"),
    [
        ("dtypes", {"instances": [_dtype_row()]}, "input 'tokens' is int32"),
        ("multi-output", {"instances": [[0.0] * 6], "output": "embedding"}, "not one score per class"),
        ("multi-output", {"instances": [[0.0] * 6], "output": "nope"}, "unknown output 'nope'"),
        ("cnn", {"instances": [IMG_ROW], "grid": 0}, "'grid' must give 1 to"),
        ("cnn", {"instances": [IMG_ROW], "grid": "big"}, "'grid' must be a positive integer"),
    ],
)
def test_explain_refuses_what_it_cannot_apply_to(rest: Client, model: str, body: Any, needle: str) -> None:
    r = rest.post(f"/v1/models/{model}:explain", json=body)
    assert r.status == 400, r.body
    assert needle in r.json["error"], r.json["error"]


def test_multi_output_explains_its_class_output(rest: Client, tensor_models: Path) -> None:
    x, _ = probe(tensor_models, "multi_output")
    r = rest.post("/v1/models/multi-output:explain", json={"instances": x["features"][:1].tolist()})
    assert r.status == 200, r.body
    (e,) = r.json["explanations"]
    assert sorted(f["feature"] for f in e["top_features"]) == [f"features[{j}]" for j in range(6)]
    assert abs(e["sum_attributions"] - (e["prediction"] - e["baseline_prediction"])) < 1e-3


def test_model_cards_render_every_input(rest: Client) -> None:
    card = rest.get("/v1/models/image-vector/card", headers={"Accept": "application/json"})
    assert card.status == 200 and card.headers.get("x-maas-card") == "generated"
    assert [t["name"] for t in card.json["model"]["inputs"]] == ["img", "vec"]
    md = rest.get("/v1/models/image-vector/card", headers={"Accept": "text/markdown"}).body
    assert "`img` float32 shape [None, 8, 8, 1]" in md and "`vec` float32 shape [None, 5]" in md
    html = rest.get("/v1/models/multi-output/card", headers={"Accept": "text/html"})
    assert html.status == 200 and "input features" in html.body


def test_drift_of_tensor_inputs_uses_per_input_summaries() -> None:
    from maas.protocols.tensors import Signature, TensorSpec
    from maas.rai import drift, summary
    from maas.rai.drift import drift_report

    sig = Signature(
        inputs=(
            TensorSpec("img", "float32", (-1, 8, 8, 1)),
            TensorSpec("vec", "float32", (-1, 2), ("a", "b")),
        ),
        outputs=(TensorSpec("p", "float32", (-1, 3)),),
    )
    rng = np.random.default_rng(0)
    train = {"img": rng.normal(size=(500, 8, 8, 1)), "vec": rng.normal(size=(500, 2))}
    fingerprint = drift.fingerprint_inputs(train, sig)
    assert set(fingerprint["features"]) == {f"img.{s}" for s in summary.STATS} | {"a", "b"}
    manifest = {"inputs": [t.to_manifest() for t in sig.inputs], "fingerprint": fingerprint}
    same = {"img": rng.normal(size=(300, 8, 8, 1)), "vec": rng.normal(size=(300, 2))}
    shifted = {"img": rng.normal(size=(300, 8, 8, 1)) * 3 + 1, "vec": same["vec"]}
    names = summary.feature_names(sig)
    calm = drift_report(manifest, summary.features(same, sig), feature_names=names)
    moved = drift_report(manifest, summary.features(shifted, sig), feature_names=names)
    assert calm["drifted"] == [] and {"img.mean", "img.std", "img.l2"} <= set(moved["drifted"])
    assert "a" not in moved["drifted"] and "b" not in moved["drifted"]
