"""Score one range of one file: read blocks -> predict -> write predictions and rejected rows."""

from __future__ import annotations

import ctypes
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import orjson

from maas.batch.common import Batch, RowError, Scorer, Stopwatch, Timings
from maas.batch.formats.base import Format
from maas.batch.io import Sink, Source
from maas.batch.monitor import DriftCounter


@dataclass
class RangeStats:
    rows_seen: int = 0
    scored: int = 0
    rejected: int = 0
    timings: Timings = field(default_factory=Timings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows_seen": self.rows_seen,
            "scored": self.scored,
            "rejected": self.rejected,
            "timings": self.timings.as_dict(),
        }


T = TypeVar("T")
M_MMAP_THRESHOLD = -3


def _fix_mmap_threshold(threshold: int = 128 * 1024) -> bool:
    """Keep glibc from retaining freed block buffers: pin its mmap threshold (Linux/glibc only).

    glibc raises its mmap threshold each time a large block is freed, so later multi-MB buffers (parsed
    blocks, feature matrices) come from heap arenas that fragment and never shrink: RSS then creeps up
    with the number of blocks, i.e. with file size. A fixed threshold returns every large buffer to the
    OS on free, which is what keeps peak RSS flat whatever the file size.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


MMAP_THRESHOLD_FIXED = _fix_mmap_threshold()
PREFETCH_BLOCKS = 2
WRITE_AHEAD_BLOCKS = 2  # scored blocks waiting for the writer (memory: these blocks)


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_DONE = object()


def prefetch(items: Iterator[T], depth: int = PREFETCH_BLOCKS) -> Iterator[T]:
    """Run ``items`` (download + parse) in a thread, ``depth`` blocks ahead of the consumer.

    pyarrow parsing and S3 reads release the GIL, so reading block i+1 overlaps predicting and
    writing block i. Memory stays bounded: at most ``depth`` parsed blocks wait in the queue.
    Exceptions of the reader are re-raised in the consumer.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:
            put(_Failed(exc))

    thread = threading.Thread(target=work, name="maas-batch-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)


def error_line(err: RowError) -> bytes:
    return orjson.dumps({"row": err.row, "reason": err.reason})


class OrderedBackground:
    """Run calls in one background thread, in submission order, at most ``ahead`` of the caller.

    The first failure is re-raised in the caller at its next ``submit`` or at ``drain``; leaving the
    ``with`` block (normally or by an exception) waits for the calls already submitted, so no call
    runs after the block.
    """

    def __init__(self, name: str, ahead: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: deque[Future[None]] = deque()
        self._ahead = ahead

    def __enter__(self) -> OrderedBackground:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        self._pending.append(self._pool.submit(fn, *args))
        while self._pending and (len(self._pending) > self._ahead or self._pending[0].done()):
            self._pending.popleft().result()

    def drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()


def score_range(
    fmt: Format,
    source: Source,
    layout: dict[str, Any],
    scorer: Scorer,
    rng: dict[str, Any],
    out: Sink,
    errors: Sink,
    *,
    part: bool,
    block_bytes: int,
    drift: DriftCounter | None = None,
) -> RangeStats:
    """Stream ``rng`` of ``source`` through the model into ``out`` (and rejected rows into ``errors``).

    Three stages overlap: the format's reader (``prefetch``), the model (this thread) and the writer
    (one background thread, so blocks are written in order). Phase timings are each stage's own wall
    time, so they overlap and may add up to more than the elapsed time. Row numbers in ``errors`` are
    offset by ``rng["first_row"]`` when known (else range-local, fixed at assembly). Nothing is
    committed here: the caller commits or aborts the sinks.
    """
    stats = RangeStats()
    sw = Stopwatch(stats.timings)
    offset = int(rng.get("first_row") or 0)
    writer = fmt.open_writer(out, layout, scorer.spec, part=part)

    def write(batch: Batch, outputs: dict[str, np.ndarray]) -> None:
        with sw("write"):
            writer.write(batch, outputs)
            if batch.errors:
                errors.write(b"".join(error_line(e.shifted(offset)) + b"\n" for e in batch.errors))

    batches = prefetch(fmt.read(source, layout, scorer.spec, rng, block_bytes))
    try:
        with OrderedBackground("maas-batch-writer", WRITE_AHEAD_BLOCKS) as background:
            while True:
                with sw("read"):
                    batch = next(batches, None)
                if batch is None:
                    break
                with sw("predict"):
                    outputs = scorer.score(batch.inputs) if batch.rows else {}
                    if drift is not None:
                        drift.add(batch.inputs)
                stats.rows_seen += batch.rows_seen
                stats.scored += batch.rows
                stats.rejected += len(batch.errors)
                # writers never read the inputs: let them go now, not when the block is written
                background.submit(write, batch.without_inputs(), outputs)
            background.drain()
        with sw("write"):
            writer.close()
    except BaseException:
        writer.discard()
        raise
    return stats


@contextmanager
def aborting(out: Sink, errors: Sink) -> Iterator[None]:
    """On any exception in the block, abort both sinks (``out`` first) and re-raise it. Nothing is
    committed on success: the caller commits the sinks."""
    try:
        yield
    except BaseException:
        out.abort()
        errors.abort()
        raise
