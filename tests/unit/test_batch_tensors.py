"""Batch scoring of tensor models end to end on moto S3 (real LiteRT models, compared with Keras):
.npy of any rank, .npz with one array per input, JSON Lines with nested lists or objects keyed by
input name; outputs in the same format, row-aligned, with bad rows isolated in the errors file."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from maas.batch.job import handle_object

from tests.tensor_models import MODELS, cached_tensor_models, load_probe
from tests.unit.batch_support import BatchEnv, make_env

pytest.importorskip("tensorflow")
ATOL = 1e-5


@pytest.fixture(scope="module")
def tensor_models() -> Path:
    return cached_tensor_models()


@pytest.fixture
def env(s3_moto: str, published_ref: Any, tensor_models: Path, tmp_path: Path) -> BatchEnv:
    for name in MODELS:
        published_ref.publish(tensor_models / name, name.replace("_", "-"), verify=False)
    return make_env(s3_moto, published_ref, tmp_path)


def many(x: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """The probe rows repeated to `rows` rows (outputs repeat the same way)."""
    return {k: np.resize(v, (rows, *v.shape[1:])) for k, v in x.items()}


def errors_of(env: BatchEnv, rel: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in env.get(f"predictions/{rel}.errors.jsonl").splitlines()]


def test_npy_images_of_rank_4_with_a_bad_row(env: BatchEnv, tensor_models: Path) -> None:
    x, want = load_probe(tensor_models / "cnn")
    img = many(x, 300)["img"]
    img[5, 0, 0, 0] = np.nan
    buf = io.BytesIO()
    np.save(buf, img)
    env.put("incoming/cnn/imgs.npy", buf.getvalue())
    outcome = handle_object(env.ctx(block_bytes=8 * 1024), env.ingest, "incoming/cnn/imgs.npy")
    assert outcome["status"] == "succeeded", outcome
    out = np.load(io.BytesIO(env.get("predictions/cnn/imgs.npy")))
    assert out.shape == (300,) and set(out.dtype.names or ()) == {"class", "probability"}
    probs = np.resize(want["probabilities"], (300, 3))
    keep = np.arange(300) != 5
    np.testing.assert_array_equal(out["class"][keep], probs[keep].argmax(axis=1))
    np.testing.assert_allclose(out["probability"][keep], probs[keep].max(axis=1), atol=ATOL)
    assert out["class"][5] == -1 and np.isnan(out["probability"][5])
    (err,) = errors_of(env, "cnn/imgs.npy")
    assert err["row"] == 6 and "input 'img'" in err["reason"]
    assert env.report("cnn/imgs.npy")["rows"] == {"total": 300, "scored": 299, "rejected": 1}


def test_npy_of_the_wrong_shape_fails_with_the_expected_shape(env: BatchEnv) -> None:
    buf = io.BytesIO()
    np.save(buf, np.zeros((4, 8, 8), np.float32))
    env.put("incoming/cnn/bad.npy", buf.getvalue())
    assert handle_object(env.ctx(), env.ingest, "incoming/cnn/bad.npy")["status"] == "failed"
    report = env.report("cnn/bad.npy")
    assert "[None, 8, 8, 1]" in report["reason"] and not env.exists("predictions/cnn/bad.npy")


def test_npz_one_array_per_input(env: BatchEnv, tensor_models: Path) -> None:
    x, want = load_probe(tensor_models / "image_vector")
    data = many(x, 50)
    data["vec"][10, 2] = np.inf
    buf = io.BytesIO()
    np.savez(buf, **data)  # type: ignore[arg-type]
    env.put("incoming/image-vector/two.npz", buf.getvalue())
    outcome = handle_object(env.ctx(block_bytes=4 * 1024), env.ingest, "incoming/image-vector/two.npz")
    assert outcome["status"] == "succeeded", outcome
    with np.load(io.BytesIO(env.get("predictions/image-vector/two.npz"))) as out:
        probs = np.resize(want["probabilities"], (50, 4))
        keep = np.arange(50) != 10
        np.testing.assert_array_equal(out["valid"], keep)
        np.testing.assert_allclose(out["probability"][keep], probs[keep].max(axis=1), atol=ATOL)
    assert [e["row"] for e in errors_of(env, "image-vector/two.npz")] == [11]
    buf = io.BytesIO()
    np.savez(buf, img=data["img"])
    env.put("incoming/image-vector/half.npz", buf.getvalue())
    assert handle_object(env.ctx(), env.ingest, "incoming/image-vector/half.npz")["status"] == "failed"
    assert "missing array(s) ['vec']" in env.report("image-vector/half.npz")["reason"]


def test_jsonl_named_inputs_and_several_outputs(env: BatchEnv, tensor_models: Path) -> None:
    x, want = load_probe(tensor_models / "image_vector")
    lines = [
        orjson.dumps({"id": i, "img": x["img"][i % 3].tolist(), "vec": x["vec"][i % 3].tolist()})
        for i in range(9)
    ]
    lines[4] = orjson.dumps({"id": 4, "img": x["img"][0].tolist()[:7], "vec": x["vec"][0].tolist()})  # ragged
    env.put("incoming/image-vector/rows.jsonl", b"\n".join(lines) + b"\n")
    outcome = handle_object(env.ctx(), env.ingest, "incoming/image-vector/rows.jsonl")
    assert outcome["status"] == "succeeded", outcome
    out = [orjson.loads(ln) for ln in env.get("predictions/image-vector/rows.jsonl").splitlines()]
    assert [o["id"] for o in out] == [0, 1, 2, 3, 5, 6, 7, 8]
    for o in out:
        assert o["probability"] == pytest.approx(float(want["probabilities"][o["id"] % 3].max()), abs=ATOL)
    (err,) = errors_of(env, "image-vector/rows.jsonl")
    assert err["row"] == 5 and "input 'img'" in err["reason"]

    xm, wm = load_probe(tensor_models / "multi_output")
    bare = b"\n".join(orjson.dumps(r.tolist()) for r in xm["features"]) + b"\n"
    env.put("incoming/multi-output/bare.jsonl", bare)
    assert handle_object(env.ctx(), env.ingest, "incoming/multi-output/bare.jsonl")["status"] == "succeeded"
    got = [orjson.loads(ln) for ln in env.get("predictions/multi-output/bare.jsonl").splitlines()]
    assert set(got[0]) == {"label", "score", "embedding"}
    for name, ref in wm.items():
        np.testing.assert_allclose(np.asarray([g[name] for g in got]), ref, atol=ATOL)


def test_parquet_list_and_fixed_size_list_columns(env: BatchEnv, tensor_models: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    x, want = load_probe(tensor_models / "image_vector")
    data = many(x, 40)
    imgs: list[Any] = data["img"].tolist()
    imgs[3] = None  # a null row
    imgs[9] = imgs[9][:7]  # a misshapen row
    vec = pa.FixedSizeListArray.from_arrays(pa.array(data["vec"].reshape(-1)), 5)
    table = pa.table({"id": list(range(40)), "img": pa.array(imgs), "vec": vec})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=16)
    env.put("incoming/image-vector/t.parquet", buf.getvalue())
    outcome = handle_object(env.ctx(), env.ingest, "incoming/image-vector/t.parquet")
    assert outcome["status"] == "succeeded", outcome
    out = pq.read_table(io.BytesIO(env.get("predictions/image-vector/t.parquet")))
    keep = [i for i in range(40) if i not in (3, 9)]
    assert out.column("id").to_pylist() == keep
    probs = np.resize(want["probabilities"], (40, 4))[keep]
    np.testing.assert_allclose(out.column("probability").to_numpy(), probs.max(axis=1), atol=ATOL)
    assert [e["row"] for e in errors_of(env, "image-vector/t.parquet")] == [4, 10]

    xm, wm = load_probe(tensor_models / "multi_output")
    feats = pa.FixedSizeListArray.from_arrays(pa.array(xm["features"].reshape(-1)), 6)
    buf = io.BytesIO()
    pq.write_table(pa.table({"features": feats}), buf)
    env.put("incoming/multi-output/m.parquet", buf.getvalue())
    assert handle_object(env.ctx(), env.ingest, "incoming/multi-output/m.parquet")["status"] == "succeeded"
    got = pq.read_table(io.BytesIO(env.get("predictions/multi-output/m.parquet")))
    assert got.column_names == ["label", "score", "embedding"]
    for name, ref in wm.items():
        np.testing.assert_allclose(np.asarray(got.column(name).to_pylist(), dtype=np.float64), ref, atol=ATOL)


@pytest.mark.parametrize("fmt", ["npy", "jsonl"])
def test_fanned_out_tensor_file_matches_the_whole_file(env: BatchEnv, tensor_models: Path, fmt: str) -> None:
    """Chunk tasks carry the model's signature: a fanned-out image file gives the same bytes as one job."""
    from maas.batch.entry import handle_event

    x, _ = load_probe(tensor_models / "cnn")
    img = many(x, 600)["img"]
    if fmt == "npy":
        buf = io.BytesIO()
        np.save(buf, img)
        body = buf.getvalue()
    else:
        body = b"\n".join(orjson.dumps({"id": i, "img": img[i].tolist()}) for i in range(len(img))) + b"\n"
    env.put(f"incoming/cnn/whole.{fmt}", body)
    assert handle_object(env.ctx(), env.ingest, f"incoming/cnn/whole.{fmt}")["status"] == "succeeded"
    env.put(f"incoming/cnn/big.{fmt}", body)
    ctx = env.ctx(fanout_threshold_bytes=32 * 1024, chunk_bytes=len(body) // 5 + 1, block_bytes=16 * 1024)
    outcome = handle_object(ctx, env.ingest, f"incoming/cnn/big.{fmt}")
    assert outcome["status"] == "fanned_out" and outcome["chunks"] >= 4, outcome
    env.drain_chunks(lambda ev: handle_event(ctx, ev))
    assert env.report(f"cnn/big.{fmt}")["rows"] == {"total": 600, "scored": 600, "rejected": 0}
    assert env.get(f"predictions/cnn/big.{fmt}") == env.get(f"predictions/cnn/whole.{fmt}")
