"""Score one range of one file: read blocks -> predict -> write predictions and rejected rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from maas.batch.common import RowError, Scorer, Stopwatch, Timings
from maas.batch.formats.base import Format
from maas.batch.io import Sink, Source


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


def error_line(err: RowError) -> bytes:
    return orjson.dumps({"row": err.row, "reason": err.reason})


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
) -> RangeStats:
    """Stream ``rng`` of ``source`` through the model into ``out`` (and rejected rows into ``errors``).

    Row numbers in ``errors`` are offset by ``rng["first_row"]`` when known (else range-local, fixed
    at assembly). Nothing is committed here: the caller commits or aborts the sinks.
    """
    stats = RangeStats()
    sw = Stopwatch(stats.timings)
    offset = int(rng.get("first_row") or 0)
    writer = fmt.open_writer(out, layout, scorer.spec, part=part)
    batches = fmt.read(source, layout, scorer.spec, rng, block_bytes)
    while True:
        with sw("read"):
            batch = next(batches, None)
        if batch is None:
            break
        with sw("predict"):
            probs = scorer.score(batch.x)
        with sw("write"):
            writer.write(batch, probs)
            if batch.errors:
                errors.write(b"".join(error_line(e.shifted(offset)) + b"\n" for e in batch.errors))
        stats.rows_seen += batch.rows_seen
        stats.scored += batch.x.shape[0]
        stats.rejected += len(batch.errors)
    with sw("write"):
        writer.close()
    return stats
