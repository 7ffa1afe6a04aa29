"""NumPy ``.npz``: one array per model input, named by the input (``np.savez(f, img=..., vec=...)``).

Every array has the rows first and the same number of rows; row i of every array is one instance.
A ``.npz`` is a zip archive whose members cannot be read by byte range row by row, so the file is read
whole (up to ``MAX_NPZ_BYTES``; beyond that the message says to split it or drop ``.npy`` files) and
scored in blocks of rows; it is never split into fan-out chunks. Rows are checked per input
(``maas.batch.tensors``): a bad row is rejected alone. The output is a ``.npz`` row-aligned with the
input: ``class``/``probability`` (and ``probabilities``) for a classifier, else one array per model
output, plus ``valid`` (bool: the row was scored); rejected rows hold NaN (floats) or 0/-1.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from maas.batch import tensors
from maas.batch.common import Batch, InputSpec, UnreadableInput
from maas.batch.formats.base import Format, Writer
from maas.batch.io import Sink, Source

MAX_NPZ_BYTES = 1024 * 1024 * 1024


def _load(source: Source) -> dict[str, np.ndarray]:
    if source.size > MAX_NPZ_BYTES:
        raise UnreadableInput(
            f".npz is {source.size} bytes; at most {MAX_NPZ_BYTES} are read whole: split it into several "
            ".npz files, or (one input) drop a .npy, which is streamed"
        )
    try:
        with np.load(io.BytesIO(source.read_range(0, source.size)), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UnreadableInput(
            f"not a readable .npz archive (object arrays are refused): {type(exc).__name__}"
        ) from exc


class NpzFormat(Format):
    name = "npz"

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] | None = None

    def prepare(self, source: Source, spec: InputSpec) -> dict[str, Any]:
        sig = tensors.signature_of(spec)
        arrays = _load(source)
        missing = [n for n in sig.input_names if n not in arrays]
        extra = sorted(set(arrays) - set(sig.input_names))
        if missing or extra:
            parts = [f"missing array(s) {missing}"] if missing else []
            parts += [f"unknown array(s) {extra}"] if extra else []
            raise UnreadableInput(
                f".npz {' and '.join(parts)}: save one array per model input, named "
                f"{', '.join(sig.input_names)}"
            )
        rows = {arr.shape[0] if arr.ndim else -1 for arr in arrays.values()}
        if len(rows) != 1 or -1 in rows:
            raise UnreadableInput(".npz arrays must all have the rows first and the same number of rows")
        for tspec in sig.inputs:
            tensors.check_array_shape(arrays[tspec.name].shape, tspec, ".npz")
        tensors.output_fields(spec)
        self._arrays = arrays
        return {"rows": rows.pop()}

    def full_range(self, source: Source, layout: dict[str, Any]) -> dict[str, Any]:
        return {"start": 0, "end": source.size, "first_row": 0}

    def split(self, source: Source, layout: dict[str, Any], chunk_bytes: int) -> list[dict[str, Any]]:
        return [self.full_range(source, layout)]  # read whole: one task

    def read(
        self, source: Source, layout: dict[str, Any], spec: InputSpec, rng: dict[str, Any], block_bytes: int
    ) -> Iterator[Batch]:
        arrays = self._arrays if self._arrays is not None else _load(source)
        sig = tensors.signature_of(spec)
        n = int(layout["rows"])
        row_bytes = max(1, sum(arr[:1].nbytes for arr in arrays.values()))
        block = max(1, block_bytes // row_bytes)
        for lo in range(0, n, block):
            part = {name: arrays[name][lo : lo + block] for name in sig.input_names}
            inputs, good, errors = tensors.check_inputs(part, sig, lo)
            yield Batch(inputs=inputs, rows_seen=len(good), errors=errors, valid=good)

    def open_writer(self, sink: Sink, layout: dict[str, Any], spec: InputSpec, *, part: bool) -> Writer:
        return NpzWriter(sink, spec)


class NpzWriter(Writer):
    """Collects the row-aligned output in memory (the input was read whole too); written at close."""

    def __init__(self, sink: Sink, spec: InputSpec) -> None:
        self.sink, self.spec = sink, spec
        self.dtype = np.dtype(tensors.output_fields(spec))
        self._blocks: list[np.ndarray] = []
        self._valid: list[np.ndarray] = []

    def write(self, batch: Batch, outputs: Mapping[str, np.ndarray]) -> None:
        valid = batch.valid if batch.valid is not None else np.ones(batch.rows_seen, dtype=bool)
        out = np.zeros(batch.rows_seen, dtype=self.dtype)
        tensors.fill_rows(out, valid, outputs, self.spec)
        self._blocks.append(out)
        self._valid.append(valid)

    def close(self) -> None:
        out = np.concatenate(self._blocks) if self._blocks else np.zeros(0, dtype=self.dtype)
        arrays = {name: out[name] for name in out.dtype.names or ()}
        arrays["valid"] = np.concatenate(self._valid) if self._valid else np.zeros(0, dtype=bool)
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        self.sink.write(buf.getvalue())

    def discard(self) -> None:
        self._blocks.clear()
        self._valid.clear()
