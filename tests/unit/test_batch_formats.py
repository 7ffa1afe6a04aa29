"""Batch scoring of each format end to end on moto S3 with the real published reference model:
predictions agree with a direct predict, pass-through columns survive, bad rows go to the errors file,
unreadable files give a failed report and no output."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from maas.batch.job import handle_object

from tests.unit.batch_support import (
    FEATURES,
    BatchEnv,
    csv_bytes,
    jsonl_bytes,
    make_env,
    npy_bytes,
    parquet_bytes,
    read_csv_output,
    rows,
)


@pytest.fixture
def env(s3_moto: str, published_ref: Any, tmp_path: Path) -> BatchEnv:
    return make_env(s3_moto, published_ref, tmp_path)


def expected(env: BatchEnv, x: np.ndarray) -> np.ndarray:
    return env.model.predict(np.ascontiguousarray(x, dtype=np.float32))


def errors_of(env: BatchEnv, rel: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in env.get(f"predictions/{rel}.errors.jsonl").splitlines()]


def test_csv_scored_with_passthrough_and_report(env: BatchEnv) -> None:
    x = rows(500)
    # columns in another order than the manifest, plus two pass-through columns
    head = ["id", *reversed(FEATURES), "note"]
    lines = [",".join(head)] + [
        ",".join([f"r{i}", *(f"{v:.7g}" for v in reversed(row)), "a,b" if i == 0 else "n"]).replace(
            "a,b", '"a,b"'
        )
        for i, row in enumerate(x)
    ]
    put = env.put("incoming/ref/day/in.csv", ("\n".join(lines) + "\n").encode())
    outcome = handle_object(env.ctx(block_bytes=16 * 1024), env.ingest, "incoming/ref/day/in.csv")
    assert outcome["status"] == "succeeded"
    out = read_csv_output(env.get("predictions/ref/day/in.csv"))
    assert out.column_names == ["id", "note", "class", "probability"]
    assert out.column("id").to_pylist() == [f"r{i}" for i in range(500)]
    assert out.column("note").to_pylist()[0] == "a,b"
    want = expected(env, np.array([[float(f"{v:.7g}") for v in r] for r in x], dtype=np.float32))
    assert out.column("class").to_pylist() == [str(i) for i in want.argmax(1)]
    np.testing.assert_allclose(out.column("probability").to_numpy(), want.max(1), rtol=1e-5)
    report = env.report("ref/day/in.csv")
    assert report["status"] == "succeeded"
    assert report["rows"] == {"total": 500, "scored": 500, "rejected": 0}
    assert report["model"] == {"name": "ref", "version": 1, "selector": None}
    assert report["input"]["etag"] == put["ETag"].strip('"')
    assert report["input"]["key"] == "incoming/ref/day/in.csv"
    assert report["output"]["errors_key"] is None
    assert set(report["timings"]) >= {
        "started_at",
        "finished_at",
        "elapsed_s",
        "read_s",
        "predict_s",
        "write_s",
    }
    assert not env.exists("predictions/ref/day/in.csv.errors.jsonl")


def test_csv_bad_rows_go_to_errors_file_and_rest_is_scored(env: BatchEnv) -> None:
    x = rows(300, seed=1)
    body = csv_bytes(x).decode().splitlines()
    # data row k is body[k] (body[0] is the header)
    body[5] = "r4,1,2,3"  # wrong column count
    cells = body[10].split(",")
    cells[3] = "abc"
    body[10] = ",".join(cells)  # non-numeric
    cells = body[200].split(",")
    cells[50] = ""
    body[200] = ",".join(cells)  # missing value
    body[250] = body[250] + ",extra"  # too many columns
    env.put("incoming/ref/bad.csv", ("\n".join(body) + "\n").encode())
    outcome = handle_object(env.ctx(block_bytes=8 * 1024), env.ingest, "incoming/ref/bad.csv")
    assert outcome["status"] == "succeeded"
    errors = errors_of(env, "ref/bad.csv")
    assert [e["row"] for e in errors] == [5, 10, 200, 250]
    assert "columns" in errors[0]["reason"]
    assert "'abc'" in errors[1]["reason"] and "f2" in errors[1]["reason"]
    assert "missing" in errors[2]["reason"] and "f49" in errors[2]["reason"]
    assert "columns" in errors[3]["reason"]
    out = read_csv_output(env.get("predictions/ref/bad.csv"))
    good = [i for i in range(300) if i + 1 not in (5, 10, 200, 250)]
    assert out.column("id").to_pylist() == [f"r{i}" for i in good]
    want = expected(env, np.array([[float(f"{v:.6f}") for v in x[i]] for i in good], dtype=np.float32))
    np.testing.assert_allclose(out.column("probability").to_numpy(), want.max(1), rtol=1e-5)
    report = env.report("ref/bad.csv")
    assert report["rows"] == {"total": 300, "scored": 296, "rejected": 4}
    assert report["output"]["errors_key"] == "predictions/ref/bad.csv.errors.jsonl"


@pytest.mark.parametrize("mode", ["flat", "list"])
def test_jsonl_scored(env: BatchEnv, mode: str) -> None:
    x = rows(200, seed=2)
    env.put(f"incoming/ref@1/{mode}.jsonl", jsonl_bytes(x, mode=mode))
    assert (
        handle_object(env.ctx(block_bytes=20_000), env.ingest, f"incoming/ref@1/{mode}.jsonl")["status"]
        == "succeeded"
    )
    out = [orjson.loads(line) for line in env.get(f"predictions/ref@1/{mode}.jsonl").splitlines()]
    want = expected(env, x)
    assert [o["id"] for o in out] == list(range(200))
    assert [o["class"] for o in out] == [str(i) for i in want.argmax(1)]
    np.testing.assert_allclose([o["probability"] for o in out], want.max(1), rtol=1e-5)
    assert ("features" in out[0]) == (mode == "list")


def test_jsonl_bad_rows(env: BatchEnv) -> None:
    lines = jsonl_bytes(rows(20, seed=3)).splitlines()
    lines[2] = b'{"id": 2, "f0": "x"}'
    lines[4] = b"not json"
    lines[6] = b"[1, 2]"
    obj = orjson.loads(lines[8])
    del obj["f7"]
    lines[8] = orjson.dumps(obj)
    env.put("incoming/ref/bad.jsonl", b"\n".join(lines) + b"\n\n")
    assert handle_object(env.ctx(), env.ingest, "incoming/ref/bad.jsonl")["status"] == "succeeded"
    errors = errors_of(env, "ref/bad.jsonl")
    assert [e["row"] for e in errors] == [3, 5, 7, 9]
    assert "not a number" in errors[0]["reason"]
    assert "not valid JSON" in errors[1]["reason"]
    assert "not a JSON object" in errors[2]["reason"]
    assert "missing" in errors[3]["reason"] and "f7" in errors[3]["reason"]
    assert env.report("ref/bad.jsonl")["rows"] == {"total": 20, "scored": 16, "rejected": 4}


def test_parquet_scored_with_all_probabilities(env: BatchEnv) -> None:
    x = rows(2500, seed=4)
    env.put(
        "incoming/ref/p.parquet", parquet_bytes(x, row_group_size=700), Metadata={"maas-probabilities": "all"}
    )
    assert handle_object(env.ctx(), env.ingest, "incoming/ref/p.parquet")["status"] == "succeeded"
    out = pq.read_table(io.BytesIO(env.get("predictions/ref/p.parquet")))
    assert out.column_names[:3] == ["id", "class", "probability"]
    assert out.column_names[3:] == [f"prob_{i}" for i in range(10)]
    assert out.schema.field("id").type == pa.int64()
    want = expected(env, x)
    np.testing.assert_allclose(
        np.stack([out.column(f"prob_{i}").to_numpy() for i in range(10)], 1), want, rtol=1e-5, atol=1e-7
    )
    assert out.column("class").to_pylist() == [str(i) for i in want.argmax(1)]


def test_parquet_text_and_null_features_are_rejected_per_row(env: BatchEnv) -> None:
    x = rows(50, seed=5)
    cols: dict[str, Any] = {f: x[:, j] for j, f in enumerate(FEATURES)}
    f3 = [str(v) for v in x[:, 3]]
    f3[7] = "seven"
    cols["f3"] = pa.array(f3)
    f9 = x[:, 9].tolist()
    f9[11] = None
    cols["f9"] = pa.array(f9, type=pa.float64())
    buf = io.BytesIO()
    pq.write_table(pa.table(cols), buf)
    env.put("incoming/ref/t.parquet", buf.getvalue())
    assert handle_object(env.ctx(), env.ingest, "incoming/ref/t.parquet")["status"] == "succeeded"
    assert [e["row"] for e in errors_of(env, "ref/t.parquet")] == [8, 12]
    assert pq.read_table(io.BytesIO(env.get("predictions/ref/t.parquet"))).num_rows == 48


def test_npy_row_aligned_output(env: BatchEnv) -> None:
    x = rows(300, seed=6).astype(np.float64)
    x[17, 4] = np.nan
    env.put("incoming/ref/a.npy", npy_bytes(x))
    assert (
        handle_object(env.ctx(block_bytes=64 * 1024), env.ingest, "incoming/ref/a.npy")["status"]
        == "succeeded"
    )
    out = np.load(io.BytesIO(env.get("predictions/ref/a.npy")))
    assert out.shape == (300,) and out.dtype.names == ("class", "probability")
    good = np.ones(300, dtype=bool)
    good[17] = False
    want = expected(env, x[good].astype(np.float32))
    np.testing.assert_array_equal(out["class"][good], want.argmax(1))
    np.testing.assert_allclose(out["probability"][good], want.max(1), rtol=1e-5)
    assert out["class"][17] == -1 and np.isnan(out["probability"][17])
    assert errors_of(env, "ref/a.npy") == [{"row": 18, "reason": "missing value in column 'f4'"}]


@pytest.mark.parametrize(
    ("key", "body", "needle"),
    [
        ("incoming/ref/x.parquet", b"PAR1 this is not parquet", "Parquet"),
        ("incoming/ref/x.csv", b"id,a,b\n1,2,3\n", "lacks feature columns"),
        ("incoming/ref/x.csv", b"", "empty"),
        ("incoming/ref/x.npy", b"\x93NUMPY garbage", ".npy"),
        ("incoming/ref/x.jsonl", b"hello\n", "not a JSON"),
    ],
)
def test_unreadable_file_gives_failed_report_and_no_output(
    env: BatchEnv, key: str, body: bytes, needle: str
) -> None:
    env.put(key, body)
    outcome = handle_object(env.ctx(), env.ingest, key)
    assert outcome["status"] == "failed"
    rel = key[len("incoming/") :]
    report = env.report(rel)
    assert report["status"] == "failed" and needle in report["reason"]
    assert not env.exists(f"predictions/{rel}")
    assert not env.exists(f"predictions/{rel}.errors.jsonl")


def test_truncated_npy_and_late_failure_leave_no_partial_output(env: BatchEnv) -> None:
    good = npy_bytes(rows(100))
    env.put("incoming/ref/t.npy", good[:-10])
    assert handle_object(env.ctx(), env.ingest, "incoming/ref/t.npy")["status"] == "failed"
    # a CSV whose last block has broken quoting: fails after earlier blocks were already scored
    body = csv_bytes(rows(2000)) + b'r9,"unterminated\n'
    env.put("incoming/ref/late.csv", body)
    outcome = handle_object(env.ctx(block_bytes=64 * 1024), env.ingest, "incoming/ref/late.csv")
    if outcome["status"] == "failed":
        assert not env.exists("predictions/ref/late.csv")
    else:  # pyarrow may treat it as a bad row instead; then it must be in the errors file
        assert env.report("ref/late.csv")["rows"]["rejected"] == 1
    uploads = env.s3.list_multipart_uploads(Bucket=env.results).get("Uploads", [])
    assert uploads == []


def test_failed_replacement_removes_stale_output(env: BatchEnv) -> None:
    env.put("incoming/ref/r.csv", csv_bytes(rows(10)))
    assert handle_object(env.ctx(), env.ingest, "incoming/ref/r.csv")["status"] == "succeeded"
    env.put("incoming/ref/r.csv", b"nonsense,header\n1,2\n")
    assert handle_object(env.ctx(), env.ingest, "incoming/ref/r.csv")["status"] == "failed"
    assert not env.exists("predictions/ref/r.csv")


def test_unknown_model_gives_failed_report(env: BatchEnv) -> None:
    env.put("incoming/nope@7/a.csv", csv_bytes(rows(3)))
    outcome = handle_object(env.ctx(), env.ingest, "incoming/nope@7/a.csv")
    assert outcome["status"] == "failed"
    assert "nope" in env.report("nope@7/a.csv")["reason"]


def test_key_outside_convention_is_ignored(env: BatchEnv) -> None:
    env.put("incoming/ref/a.txt", b"x")
    assert handle_object(env.ctx(), env.ingest, "incoming/ref/a.txt")["status"] == "ignored"
    assert env.keys() == []


def test_many_blocks_memory_is_bounded_by_block_size(env: BatchEnv) -> None:
    x = rows(3000, seed=7)
    env.put("incoming/ref/big.csv", csv_bytes(x))
    ctx = env.ctx(block_bytes=64 * 1024)  # ~50 blocks
    assert handle_object(ctx, env.ingest, "incoming/ref/big.csv")["status"] == "succeeded"
    out = read_csv_output(env.get("predictions/ref/big.csv"))
    assert out.num_rows == 3000
    assert out.column("id").to_pylist() == [f"r{i}" for i in range(3000)]


def test_parquet_big_row_groups_are_streamed(env: BatchEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    import maas.batch.formats.parquet as parquet_format

    monkeypatch.setattr(parquet_format, "MAX_BUFFERED_GROUP_BYTES", 1)  # every group counts as "too big"
    x = rows(3000, seed=8)
    env.put("incoming/ref/s.parquet", parquet_bytes(x, row_group_size=3000))
    assert handle_object(env.ctx(), env.ingest, "incoming/ref/s.parquet")["status"] == "succeeded"
    out = pq.read_table(io.BytesIO(env.get("predictions/ref/s.parquet")))
    assert out.column("id").to_pylist() == list(range(3000))
    np.testing.assert_allclose(out.column("probability").to_numpy(), expected(env, x).max(1), rtol=1e-5)
