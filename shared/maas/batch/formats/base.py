"""The interface every batch format implements, and helpers shared by the text formats."""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from maas.batch.common import Batch, InputSpec
from maas.batch.io import Sink, Source

LINE_SCAN_BYTES = 64 * 1024
MAX_LINE_BYTES = 4 * 1024 * 1024


class Writer(ABC):
    @abstractmethod
    def write(self, batch: Batch, outputs: Mapping[str, np.ndarray]) -> None:
        """Write one block's predictions (every model output by name; empty when no row was valid)."""

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Flush whatever the format buffers (Parquet footer)."""

    def discard(self) -> None:  # noqa: B027  (optional hook)
        """After a failure: drop what the format buffers, so nothing is flushed into the aborted sink."""


class Format(ABC):
    """A file format. ``layout`` and ranges are plain JSON-able dicts so fan-out tasks can carry them.

    A range is ``{"start": a, "end": b, "first_row": r | None}``: bytes for text and ``.npy``, row
    groups for Parquet; ``first_row`` is the number of data rows before the range when it is known
    without reading the data (Parquet, ``.npy``), else None and row numbers are fixed at assembly.
    """

    name: str
    content_type: str = "application/octet-stream"

    @abstractmethod
    def prepare(self, source: Source, spec: InputSpec) -> dict[str, Any]:
        """Read the header/metadata and check it against the model; raise UnreadableInput."""

    @abstractmethod
    def full_range(self, source: Source, layout: dict[str, Any]) -> dict[str, Any]: ...

    @abstractmethod
    def split(self, source: Source, layout: dict[str, Any], chunk_bytes: int) -> list[dict[str, Any]]: ...

    @abstractmethod
    def read(
        self, source: Source, layout: dict[str, Any], spec: InputSpec, rng: dict[str, Any], block_bytes: int
    ) -> Iterator[Batch]: ...

    @abstractmethod
    def open_writer(self, sink: Sink, layout: dict[str, Any], spec: InputSpec, *, part: bool) -> Writer:
        """A writer of the whole output (``part=False``) or of one fan-out part (``part=True``)."""

    def begin_assembly(  # noqa: B027  (optional hook)
        self, sink: Sink, layout: dict[str, Any], spec: InputSpec, rows_total: int
    ) -> None:
        """Write what precedes the parts (a header) when assembling fan-out output."""

    def append_part(self, sink: Sink, part: Source, spec: InputSpec) -> None:
        """Append one part to the assembled output; the default concatenates bytes."""
        for chunk in part.iter_range(0, part.size):
            sink.write(chunk)

    def end_assembly(self, sink: Sink) -> None:  # noqa: B027  (optional hook)
        """Finish the assembled output (a footer)."""


def split_on_lines(source: Source, data_start: int, chunk_bytes: int) -> list[dict[str, Any]]:
    """Byte ranges of about ``chunk_bytes`` from ``data_start`` to the end, each starting on a line."""
    bounds = [data_start]
    target = data_start + chunk_bytes
    while target < source.size:
        probe = LINE_SCAN_BYTES
        cut = -1
        while cut < 0 and probe <= MAX_LINE_BYTES:
            window = source.read_range(target - 1, min(source.size, target - 1 + probe))
            cut = window.find(b"\n")
            if cut < 0 and target - 1 + probe >= source.size:
                break
            probe *= 4
        if cut < 0:
            break  # no line end before EOF (or an enormous line): the rest is one range
        boundary = target + cut  # position just after the newline
        if boundary >= source.size:
            break
        if boundary > bounds[-1]:
            bounds.append(boundary)
        target = max(boundary, target) + chunk_bytes
    bounds.append(source.size)
    return [
        {"start": a, "end": b, "first_row": 0 if i == 0 else None}
        for i, (a, b) in enumerate(itertools.pairwise(bounds))
        if b > a
    ]


def first_line(source: Source) -> tuple[bytes, int]:
    """The first line (without its newline, BOM removed) and the offset just after it."""
    probe = LINE_SCAN_BYTES
    while True:
        head = source.read_range(0, min(source.size, probe))
        cut = head.find(b"\n")
        if cut >= 0:
            line, end = head[:cut], cut + 1
            break
        if probe >= source.size or probe >= MAX_LINE_BYTES:
            line, end = head, len(head)
            break
        probe *= 4
    if line.startswith(b"\xef\xbb\xbf"):
        line = line[3:]
    return line.rstrip(b"\r"), end
