"""Print benchmark figures as a table, write them as JSON and render the README's performance table."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from maas.bench import AreaResult

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"
DEFAULT_JSON = Path("bench-results") / "bench.json"
SCHEMA_VERSION = 1

COLUMNS: tuple[str, ...] = ("benchmark", "figure", "maas", "naive baseline", "ratio", "target", "ok")


def fmt_number(value: float | None) -> str:
    """A short, human number: 3 significant digits, thousands separated, no exponent for usual sizes."""
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if magnitude >= 1e9 or magnitude < 1e-3:
        return f"{value:.3g}"
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if magnitude < 1 else f"{value:.2f}"


def fmt_quantity(value: float | None, unit: str) -> str:
    text = fmt_number(value)
    return text if value is None or not unit else f"{text} {unit}"


def fmt_ratio(ratio: float | None) -> str:
    return "-" if ratio is None else f"{fmt_number(ratio)}x"


def fmt_ok(ok: bool | None) -> str:
    return "-" if ok is None else ("ok" if ok else "MISS")


def figure_row(figure: dict[str, Any]) -> list[str]:
    unit = str(figure.get("unit") or "")
    return [
        str(figure.get("benchmark", "")),
        str(figure.get("figure", "")),
        fmt_quantity(figure.get("value"), unit),
        fmt_quantity(figure.get("baseline"), unit),
        fmt_ratio(figure.get("ratio")),
        str(figure.get("target") or "-"),
        fmt_ok(figure.get("ok")),
    ]


def all_figures(results: Iterable[AreaResult]) -> list[dict[str, Any]]:
    return [figure for result in results for figure in result.figures]


def format_table(results: Sequence[AreaResult]) -> str:
    """A plain-text table of every figure, then one line per skipped or failed area and a summary."""
    rows = [list(COLUMNS), *(figure_row(f) for f in all_figures(results))]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    numeric = {2, 3, 4}
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.rjust(widths[i]) if (i in numeric and index > 0) else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    if len(rows) == 1:
        lines.append("(no figures)")
    for result in results:
        if result.skipped:
            lines.append(f"skipped {result.area}: {result.skipped}")
        if result.error:
            first = result.error.splitlines()[0] if result.error else ""
            lines.append(f"FAILED  {result.area}: {first}")
    lines.append(summary_line(results))
    return "\n".join(lines)


def summary_line(results: Sequence[AreaResult]) -> str:
    figures = all_figures(results)
    met = sum(1 for f in figures if f.get("ok") is True)
    missed = sum(1 for f in figures if f.get("ok") is False)
    skipped = sum(1 for r in results if r.skipped)
    failed = sum(1 for r in results if r.error)
    seconds = sum(r.seconds for r in results)
    return (
        f"{len(figures)} figures: {met} targets met, {missed} missed; "
        f"{skipped} areas skipped, {failed} failed; {seconds:.1f} s"
    )


def machine_info() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def to_document(results: Sequence[AreaResult], *, quick: bool) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "created_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "quick": quick,
        "machine": machine_info(),
        "areas": [result.to_dict() for result in results],
        "figures": all_figures(results),
    }


def write_json(path: Path | str, results: Sequence[AreaResult], *, quick: bool) -> Path:
    """Write the run as JSON (atomically: a temporary file renamed into place)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(orjson.dumps(to_document(results, quick=quick), option=orjson.OPT_INDENT_2))
    os.replace(tmp, target)
    return target


def read_json(path: Path | str) -> tuple[list[AreaResult], dict[str, Any]]:
    """Read a document written by `write_json` back into results (for `--update-readme --from-json`)."""
    doc = orjson.loads(Path(path).read_bytes())
    results = [
        AreaResult(
            area=str(area["area"]),
            figures=list(area.get("figures") or []),
            skipped=area.get("skipped"),
            error=area.get("error"),
            seconds=float(area.get("seconds") or 0.0),
        )
        for area in doc.get("areas", [])
    ]
    return results, doc


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(_md_cell(c) for c in cells) + " |"


def run_label(*, quick: bool, when: str | None = None, cpus: int | None = None) -> str:
    """The README's Run cell: when, how (full or quick) and on how many CPUs a row was measured
    (default: now, on this machine)."""
    when = when or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{when}, {'quick' if quick else 'full'}, {cpus or machine_info()['cpus']} CPUs"


def run_label_of(doc: Mapping[str, Any]) -> str:
    """The Run cell of a run read back from its JSON (`read_json`): its own time and machine, not now
    ("time unknown" for a document without a readable `created_at`, rather than today's date)."""
    try:
        created = dt.datetime.strptime(str(doc.get("created_at")), "%Y-%m-%dT%H:%M:%SZ")
        when = created.strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        when = "time unknown"
    machine = doc.get("machine") or {}
    return run_label(quick=bool(doc.get("quick")), when=when, cpus=machine.get("cpus"))


def render_markdown(
    results: Sequence[AreaResult], *, quick: bool, kept_rows: Sequence[str] = (), run: str | None = None
) -> str:
    """The README block: a header line, then one table row per figure, each saying the run it is from
    (`run`, default `run_label` of now; rows kept from earlier runs keep theirs: rerunning one area does
    not relabel the others)."""
    run = run or run_label(quick=quick)
    header = [
        "_Generated by `maas bench --update-readme`; Run says when each row was measured (rerunning one "
        "area keeps the other areas' rows). Ratio = how many times better than the naive baseline "
        "measured in the same run._",
        "",
        "| Benchmark | Figure | maas | Naive baseline | Ratio | Target | Met | Run |",
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    rows = [*kept_rows, *(markdown_row([*figure_row(f), run]) for f in all_figures(results))]
    if not rows:
        rows = [markdown_row(["-", "no figures yet", "-", "-", "-", "-", "-", "-"])]
    return "\n".join([*header, *rows])


_BLOCK = re.compile(re.escape(README_START) + r"(.*?)" + re.escape(README_END), re.DOTALL)


#: the header of blocks written before rows had a Run cell: "(full run, 2026-12-01 19:11 UTC, 2 CPUs, ..."
_OLD_HEADER = re.compile(r"\((full|quick) run, ([^,]+), (\d+) CPUs")


def existing_rows(block: str) -> dict[str, list[str]]:
    """Table rows of a previously generated block, by benchmark (the first cell). A row of an older
    block without a Run cell gets one from that block's header line, which described all its rows."""
    old = _OLD_HEADER.search(block)
    legacy_run = f"{old.group(2)}, {old.group(1)}, {old.group(3)} CPUs" if old else "an earlier run"
    rows: dict[str, list[str]] = {}
    for line in block.splitlines():
        line = line.strip()
        if not line.startswith("|") or line.startswith("|---") or line.startswith("| Benchmark"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))]
        if cells and cells[0] not in ("", "-"):
            if len(cells) == len(COLUMNS):  # no Run cell yet
                line = line.rstrip("|").rstrip() + f" | {legacy_run} |"
            rows.setdefault(cells[0], []).append(line)
    return rows


def update_readme(
    readme: Path | str, results: Sequence[AreaResult], *, quick: bool, run: str | None = None
) -> bool:
    """Rewrite the block between the bench markers in ``readme``; returns whether the file changed.

    Rows of benchmarks that produced no figures in this run (skipped, failed or not run) are kept from
    the previous block, so that running one area refreshes its rows without dropping the others.
    Raises ``ValueError`` when the markers are missing.
    """
    path = Path(readme)
    text = path.read_text(encoding="utf-8")
    match = _BLOCK.search(text)
    if match is None:
        raise ValueError(
            f"{path} has no {README_START} ... {README_END} block; add both markers where the table goes"
        )
    fresh = {f["benchmark"] for f in all_figures(results)}
    kept = [
        row
        for bench, bench_rows in existing_rows(match.group(1)).items()
        if bench not in fresh
        for row in bench_rows
    ]
    block = f"{README_START}\n{render_markdown(results, quick=quick, kept_rows=kept, run=run)}\n{README_END}"
    new_text = text[: match.start()] + block + text[match.end() :]
    if new_text == text:
        return False
    path.write_text(new_text, encoding="utf-8")
    return True
