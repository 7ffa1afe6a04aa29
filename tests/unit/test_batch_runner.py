"""The batch pipeline's own machinery: the ordered writer stage, the finite-value fast path and the
Parquet output encoding, run through the real ``score_range`` on local files."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from maas.batch.common import InputSpec, Scorer, all_finite, check_rows
from maas.batch.formats import get_format
from maas.batch.io import LocalFileSink, LocalSource
from maas.batch.runner import OrderedBackground, aborting, score_range

FEATURES = tuple(f"f{i}" for i in range(4))
SPEC = InputSpec(FEATURES, ("a", "b"))


def fake_predict(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Deterministic two-class 'model': p(b) grows with the first feature."""
    x = inputs["features"]
    p = 1.0 / (1.0 + np.exp(-x[:, 0]))
    return {"probabilities": np.stack([1.0 - p, p], axis=1).astype(np.float32)}


def test_ordered_background_keeps_order_and_bounds_the_backlog() -> None:
    done: list[int] = []
    backlog: list[int] = []
    submitted = 0

    def slow(i: int) -> None:
        time.sleep(0.002)
        done.append(i)

    with OrderedBackground("t", ahead=2) as bg:
        for i in range(30):
            bg.submit(slow, i)
            submitted += 1
            backlog.append(submitted - len(done))
        bg.drain()
    assert done == list(range(30))
    assert max(backlog) <= 3  # the one running plus ``ahead`` waiting


def test_ordered_background_reraises_the_first_failure_in_the_caller() -> None:
    ran: list[int] = []

    def step(i: int) -> None:
        if i == 3:
            raise OSError("disk full")
        ran.append(i)

    with pytest.raises(OSError, match="disk full"), OrderedBackground("t", ahead=1) as bg:
        for i in range(50):
            bg.submit(step, i)
        bg.drain()
    assert 3 not in ran and len(ran) < 50  # the caller stopped feeding soon after the failure


def test_ordered_background_waits_for_submitted_calls_when_the_caller_fails() -> None:
    finished = threading.Event()

    def slow() -> None:
        time.sleep(0.05)
        finished.set()

    with pytest.raises(RuntimeError), OrderedBackground("t", ahead=4) as bg:
        bg.submit(slow)
        raise RuntimeError("reader failed")
    assert finished.is_set()  # nothing keeps writing to a sink the caller is about to abort


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_all_finite_and_check_rows_find_a_bad_value_in_any_slice(bad: float) -> None:
    x = np.zeros((5000, 3), dtype=np.float32)
    assert all_finite(x)
    assert check_rows(x, ["a", "b", "c"], np.arange(1, 5001))[1] == []
    x[4321, 2] = bad
    assert not all_finite(x)
    good, errors = check_rows(x, ["a", "b", "c"], np.arange(1, 5001))
    assert int((~good).sum()) == 1 and not good[4321]
    assert [e.row for e in errors] == [4322] and "'c'" in errors[0].reason


def _parquet(path: Path, rows: int, group: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(rows, len(FEATURES))).astype(np.float32)
    x[7, 1] = np.nan  # one bad row: rejected, the rest scored
    table = pa.table({"id": np.arange(rows), **{f: x[:, j] for j, f in enumerate(FEATURES)}})
    pq.write_table(table, path, row_group_size=group)
    return x


def _score(src: Path | LocalSource, out_dir: Path) -> tuple[pa.Table, bytes]:
    fmt = get_format("parquet")
    source = src if isinstance(src, LocalSource) else LocalSource(src)
    layout = fmt.prepare(source, SPEC)
    out, errors = LocalFileSink(out_dir / "out.parquet"), LocalFileSink(out_dir / "errors.jsonl")
    scorer = Scorer(fake_predict, SPEC, model="m", version=1, batch_rows=64)
    with aborting(out, errors):
        stats = score_range(
            fmt,
            source,
            layout,
            scorer,
            fmt.full_range(source, layout),
            out,
            errors,
            part=False,
            block_bytes=1 << 20,
        )
    out.commit()
    errors.commit()
    assert (stats.scored, stats.rejected) == (999, 1)
    return pq.read_table(out_dir / "out.parquet"), (out_dir / "errors.jsonl").read_bytes()


def test_score_range_writes_every_block_in_order(tmp_path: Path) -> None:
    x = _parquet(tmp_path / "in.parquet", 1000, group=37)  # many small row groups -> many blocks
    table, errors = _score(tmp_path / "in.parquet", tmp_path)
    keep = np.ones(1000, dtype=bool)
    keep[7] = False
    assert table.column("id").to_pylist() == list(np.flatnonzero(keep))
    expected = fake_predict({"features": x[keep]})["probabilities"]
    np.testing.assert_allclose(table.column("probability").to_numpy(), expected.max(axis=1), rtol=1e-6)
    assert table.column("class").to_pylist() == [SPEC.class_labels[i] for i in expected.argmax(axis=1)]
    assert errors == b'{"row":8,"reason":"missing value in column \'f1\'"}\n'
    # 28 input row groups of 37 rows come out as one row group
    assert pq.ParquetFile(tmp_path / "out.parquet").metadata.num_row_groups == 1


def test_parquet_output_row_groups_are_capped_by_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from maas.batch.formats import parquet as parquet_format

    monkeypatch.setattr(parquet_format, "OUTPUT_GROUP_BYTES", 4096)
    _parquet(tmp_path / "in.parquet", 1000, group=100)
    table, _ = _score(tmp_path / "in.parquet", tmp_path)
    groups = pq.ParquetFile(tmp_path / "out.parquet").metadata.num_row_groups
    assert 2 <= groups <= 10 and table.num_rows == 999


def test_parquet_output_dictionary_encodes_labels_not_probabilities(tmp_path: Path) -> None:
    _parquet(tmp_path / "in.parquet", 1000, group=500)
    _score(tmp_path / "in.parquet", tmp_path)
    group = pq.ParquetFile(tmp_path / "out.parquet").metadata.row_group(0)
    encodings = {group.column(j).path_in_schema: group.column(j).encodings for j in range(group.num_columns)}
    assert "RLE_DICTIONARY" in encodings["class"]
    assert "RLE_DICTIONARY" not in encodings["probability"]


def test_writer_failure_aborts_and_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _parquet(tmp_path / "in.parquet", 1000, group=37)
    from maas.batch.formats import parquet as parquet_format

    calls = 0
    real_write = parquet_format.ParquetWriter.write

    def failing_write(self: parquet_format.ParquetWriter, batch: object, probs: np.ndarray) -> None:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise OSError("upload failed")
        real_write(self, batch, probs)  # type: ignore[arg-type]

    monkeypatch.setattr(parquet_format.ParquetWriter, "write", failing_write)
    with pytest.raises(OSError, match="upload failed"):
        _score(tmp_path / "in.parquet", tmp_path)
    assert not (tmp_path / "out.parquet").exists()
    assert not list(tmp_path.glob("*.part"))


class FooterCountingSource(LocalSource):
    """A local file that counts the reads reaching its last byte (where Parquet keeps its footer)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.footer_reads = 0

    def open(self) -> io.RawIOBase:
        source = self

        class Counting(io.FileIO):
            def read(self, size: int | None = -1) -> bytes:
                start = self.tell()
                data = super().read(size)
                if data and start + len(data) >= source.size:
                    source.footer_reads += 1
                return data

        return Counting(self.path, "r")


def test_parquet_footer_is_parsed_once_per_file(tmp_path: Path) -> None:
    # the parsed footer grows with row groups x columns (~22 MB for 245 x 101): readers share one copy
    _parquet(tmp_path / "in.parquet", 1000, group=37)
    source = FooterCountingSource(tmp_path / "in.parquet")
    _score(source, tmp_path)
    assert source.footer_reads == 1
