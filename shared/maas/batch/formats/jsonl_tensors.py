"""JSON Lines rows of tensor models (``InputSpec.tabular`` is False): the JSONL format delegates here.

Two row shapes, chosen from the first line: *named* ``{"id": 7, "img": [[...]], "vec": [...]}`` (one
key per model input holding its nested list; other keys pass through) or *bare* ``[[...], ...]`` (the
one input's nested list; nothing to pass through). A block is converted with the protocols' own
converter (``maas.protocols.tensors``: dtype, range and shape checks that name the input); when the
block as a whole does not convert, each line is converted alone so that a bad line is rejected with
its reason and the others are scored. Each output line is the input object (bare rows: a new object)
with ``class``/``probability`` (``prob_<label>`` on request) for a classifier, else one key per
model output holding its nested list.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import orjson

from maas.batch import tensors
from maas.batch.common import Batch, InputSpec, RowError, UnreadableInput
from maas.batch.formats.base import Writer
from maas.batch.io import Sink, Source, iter_line_blocks
from maas.protocols.errors import ProtocolError
from maas.protocols.tensors import Signature, check_shape, to_array


def prepare(row: Any, spec: InputSpec) -> dict[str, Any]:
    sig = tensors.signature_of(spec)
    if isinstance(row, list):
        if len(sig.inputs) != 1:
            raise UnreadableInput(
                f"this model has {len(sig.inputs)} inputs: each line must be an object keyed by input name "
                f"({', '.join(sig.input_names)})"
            )
        return {"mode": "tensor-bare"}
    if not isinstance(row, dict):
        raise UnreadableInput("JSON Lines rows must be JSON objects (or nested lists for a one-input model)")
    missing = [n for n in sig.input_names if n not in row]
    if missing:
        raise UnreadableInput(
            f"rows must carry every model input by name; missing {', '.join(repr(m) for m in missing)}"
        )
    reserved = [k for k in _output_keys(spec) if k in row]
    if reserved:
        raise UnreadableInput(f"rows use keys reserved for predictions: {', '.join(reserved)}")
    return {"mode": "tensor-named"}


def _output_keys(spec: InputSpec) -> list[str]:
    if spec.classifier:
        return ["class", "probability"] + [f"prob_{label}" for label in spec.class_labels]
    return tensors.signature_of(spec).output_names


def read(
    source: Source, layout: dict[str, Any], spec: InputSpec, rng: dict[str, Any], block_bytes: int
) -> Iterator[Batch]:
    sig = tensors.signature_of(spec)
    named = layout["mode"] == "tensor-named"
    row_base = 0
    for block in iter_line_blocks(source.iter_range(rng["start"], rng["end"]), block_bytes):
        lines = [ln for ln in block.split(b"\n") if ln.strip()]
        if lines:
            batch = _convert(lines, sig, named, row_base)
            row_base += batch.rows_seen
            yield batch


def _convert(lines: list[bytes], sig: Signature, named: bool, row_base: int) -> Batch:
    rows: list[Any] = []
    kept: list[bytes] = []
    errors: list[RowError] = []
    for i, line in enumerate(lines):
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            errors.append(RowError(row_base + i + 1, "not a JSON value"))
            continue
        reason = _shape_of_row(row, sig, named)
        if reason:
            errors.append(RowError(row_base + i + 1, reason))
            continue
        rows.append((i, row))
        kept.append(line)
    try:
        inputs = _stack([r for _, r in rows], sig, named)
    except ProtocolError:  # isolate the bad lines: convert each alone
        inputs, rows, kept = _one_by_one(rows, kept, sig, named, row_base, errors)
    errors.sort(key=lambda e: e.row)
    return Batch(inputs=inputs, rows_seen=len(lines), errors=errors, passthrough=(named, kept))


def _shape_of_row(row: Any, sig: Signature, named: bool) -> str | None:
    if named:
        if not isinstance(row, dict):
            return "the line is not a JSON object"
        missing = [n for n in sig.input_names if n not in row]
        if missing:
            return f"missing input(s) {', '.join(repr(m) for m in missing)}"
        return None
    return None if isinstance(row, list) else "the line is not a nested list"


def _stack(rows: list[Any], sig: Signature, named: bool) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for spec in sig.inputs:
        values = [r[spec.name] for r in rows] if named else rows
        if not values:
            out[spec.name] = np.zeros((0, *(max(d, 0) for d in spec.row_shape)), dtype=spec.np_dtype)
            continue
        out[spec.name] = check_shape(to_array(values, spec, "row"), spec, "row")
    return out


def _one_by_one(
    rows: list[tuple[int, Any]],
    kept: list[bytes],
    sig: Signature,
    named: bool,
    row_base: int,
    errors: list[RowError],
) -> tuple[dict[str, np.ndarray], list[tuple[int, Any]], list[bytes]]:
    good_rows: list[tuple[int, Any]] = []
    good_lines: list[bytes] = []
    for (i, row), line in zip(rows, kept, strict=True):
        try:
            _stack([row], sig, named)
        except ProtocolError as exc:
            errors.append(RowError(row_base + i + 1, exc.message.removeprefix("row: ")))
            continue
        good_rows.append((i, row))
        good_lines.append(line)
    try:
        return _stack([r for _, r in good_rows], sig, named), good_rows, good_lines
    except ProtocolError as exc:  # rows fine alone but not together (variable dims of different sizes)
        raise UnreadableInput(f"rows cannot be stacked into one batch: {exc.message}") from None


class TensorJsonlWriter(Writer):
    def __init__(self, sink: Sink, spec: InputSpec) -> None:
        self.sink, self.spec = sink, spec

    def write(self, batch: Batch, outputs: Mapping[str, np.ndarray]) -> None:
        named, lines = batch.passthrough
        if not lines:
            return
        extra = self._predictions(outputs, len(lines))
        out = []
        for line, add in zip(lines, extra, strict=True):
            if named:
                body = line.rstrip()[:-1].rstrip()
                sep = b"" if body.endswith(b"{") else b","
                out.append(body + sep + add[1:])
            else:
                out.append(add)
        self.sink.write(b"\n".join(out) + b"\n")

    def _predictions(self, outputs: Mapping[str, np.ndarray], n: int) -> list[bytes]:
        option = orjson.OPT_SERIALIZE_NUMPY
        if self.spec.classifier:
            probs = self.spec.scores(outputs)
            idx = probs.argmax(axis=1)
            labels = list(self.spec.class_labels)
            docs: list[dict[str, Any]] = []
            for r in range(n):
                c = int(idx[r])
                doc: dict[str, Any] = {
                    "class": labels[c] if c < len(labels) else str(c),
                    "probability": round(float(probs[r, c]), 7),
                }
                if self.spec.all_probabilities:
                    doc.update(
                        {f"prob_{lab}": round(float(v), 7) for lab, v in zip(labels, probs[r], strict=False)}
                    )
                docs.append(doc)
            return [orjson.dumps(d) for d in docs]
        return [
            orjson.dumps({name: arr[r] for name, arr in outputs.items()}, option=option) for r in range(n)
        ]
