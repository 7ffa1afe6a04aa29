"""Benchmark of batch scoring (`maas bench batch`): rows/s end to end and peak RSS vs a naive baseline.

Each measurement runs in a fresh process so RSS is honest:

- maas:  the batch path's own code (``maas.batch`` format reader -> LiteRT ``Scorer`` -> format writer,
         via ``runner.score_range``) over the reference model's ``model.tflite``, reading and writing
         local files through the same ``Source``/``Sink`` interfaces the S3 path uses (S3 transport
         itself is excluded: it depends on the network, not on this code), run by the batch image's
         environment (its Python, only its extra's packages: ``maas.local.envs``). pandas is not in it,
         as in the Lambda image; it is also hidden, so a dev run of the child measures the same path.
- naive: ``pandas.read_csv`` / ``read_parquet`` of the whole file, ``keras.models.load_model`` +
         ``model.predict(x)`` (defaults), a DataFrame of id/class/probability written with
         ``to_csv`` / ``to_parquet``. Model load and imports are outside the timed window for both.

Figures: Parquet and CSV rows/s (1M rows x 100; quick: 200k), CSV rows/s per vCPU (rows per
CPU-second of the process, all threads: what one fully used vCPU delivers, and not inflated when other
processes share the machine; also shown as wall-clock rows/s over the usable CPUs), and peak RSS at
two file sizes (4x apart; 2x in quick mode: CSV 250k and 1M rows, Parquet 1M and 4M, since a Parquet
run must last long enough for the allocator to reach its steady state) to show memory does not grow
with the file. The naive
baseline runs on the smaller file (rows/s is per row).
Each maas figure is the median of five runs (one in quick mode), each in a fresh process; the naive
baseline runs once (it is 20-40x slower, so its noise does not move the ratio's verdict).
Targets: Parquet >= 1M rows/s, CSV >= 100k rows/s per vCPU, RSS growth <= 15% from 1x to 4x the rows.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from maas.bench._proc import figure, peak_rss_mb, quiet_tf_env

GEN_BLOCK_ROWS = 16_384  # also the Parquet row group size, the same at both file sizes
TARGET_PARQUET = 1_000_000.0
TARGET_CSV_PER_VCPU = 100_000.0
REPEATS = 5  # maas runs per format and size (full mode); figures come from the median run
RSS_GROWTH_LIMIT = 1.15  # run-to-run noise of the pipeline's fill level is about +-10%


def vcpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# -- data ----------------------------------------------------------------------------------------------
def make_files(
    directory: Path, rows: int, seed: int = 0, formats: tuple[str, ...] = ("csv", "parquet")
) -> dict[str, Path]:
    """CSV (id + f0..f99, 5 decimals) and/or Parquet files of ``rows`` rows, built from one repeated block."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    n = min(rows, GEN_BLOCK_ROWS)
    x = np.round(rng.normal(size=(n, 100)), 5).astype(np.float32)
    table = pa.table({"id": pa.array(np.arange(n)), **{f"f{j}": x[:, j] for j in range(100)}})
    csv_path, pq_path = directory / f"in-{rows}.csv", directory / f"in-{rows}.parquet"
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, write_options=pacsv.WriteOptions(include_header=False))
    block = sink.getvalue().to_pybytes()
    header = ",".join(table.column_names).encode() + b"\n"
    full, rest = divmod(rows, n)
    if "csv" in formats:
        with csv_path.open("wb") as fh:
            fh.write(header)
            for _ in range(full):
                fh.write(block)
            if rest:
                fh.write(b"".join(block.splitlines(keepends=True)[:rest]))
    if "parquet" in formats:
        with pq.ParquetWriter(pq_path, table.schema) as writer:
            for _ in range(full):
                writer.write_table(table)
            if rest:
                writer.write_table(table.slice(0, rest))
    return {fmt: path for fmt, path in (("csv", csv_path), ("parquet", pq_path)) if fmt in formats}


# -- child processes -----------------------------------------------------------------------------------
class _NoPandas:
    """Hide pandas like the Lambda image does (pyarrow imports it lazily when it is installed)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(name)


def child_maas(fmt: str, path: str, out_dir: str) -> dict[str, Any]:
    sys.meta_path.insert(0, _NoPandas())
    from maas_models.backends.litert import LiteRTBackend
    from maas_models.reference import cached_reference_export

    from maas.batch.common import InputSpec, Scorer
    from maas.batch.formats import get_format
    from maas.batch.io import LocalFileSink, LocalSource
    from maas.batch.runner import score_range

    export = cached_reference_export()
    meta = json.loads((export / "metadata.json").read_text())
    backend = LiteRTBackend(export / "model.tflite", num_threads=1)
    spec = InputSpec(tuple(meta["inputs"][0]["feature_names"]), tuple(meta["outputs"][0]["class_labels"]))
    scorer = Scorer(backend.predict_named, spec, model="ref", version=1)
    fmt_obj = get_format(fmt)
    source = LocalSource(path)
    c0 = time.process_time()
    t0 = time.perf_counter()
    layout = fmt_obj.prepare(source, spec)
    out = LocalFileSink(Path(out_dir) / f"out.{fmt}")
    errors = LocalFileSink(Path(out_dir) / "errors.jsonl")
    stats = score_range(
        fmt_obj,
        source,
        layout,
        scorer,
        fmt_obj.full_range(source, layout),
        out,
        errors,
        part=False,
        block_bytes=8 * 1024 * 1024,
    )
    out.commit()
    errors.commit()
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return {
        "rows": stats.scored,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "rss_mb": peak_rss_mb(),
        "timings": stats.timings.as_dict(),
        "pandas_imported": "pandas" in sys.modules,
        "tensorflow_imported": "tensorflow" in sys.modules,
    }


def child_naive(path_csv: str, path_parquet: str, out_dir: str) -> dict[str, Any]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import pandas as pd
    from maas_models.reference import cached_reference_export

    model = keras.models.load_model(cached_reference_export() / "model.keras", compile=False, safe_mode=True)
    features = [f"f{j}" for j in range(100)]
    result: dict[str, Any] = {}
    for fmt, path in (("parquet", path_parquet), ("csv", path_csv)):
        t0, c0 = time.perf_counter(), time.process_time()
        df = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
        probs = model.predict(df[features].to_numpy(dtype=np.float32), verbose=0)
        out = pd.DataFrame(
            {"id": df["id"], "class": probs.argmax(axis=1).astype(str), "probability": probs.max(axis=1)}
        )
        target = Path(out_dir) / f"naive.{fmt}"
        out.to_csv(target, index=False) if fmt == "csv" else out.to_parquet(target)
        result[fmt] = {"rows": len(df), "seconds": time.perf_counter() - t0}
        result[fmt]["cpu_seconds"] = time.process_time() - c0
    result["rss_mb"] = peak_rss_mb()
    return result


def _spawn(args: list[str], timeout: float) -> dict[str, Any]:
    from maas.local.config import find_project_root

    env = quiet_tf_env()
    python = sys.executable
    if args[0] == "maas":  # what ships: the batch image's environment
        from maas.local.envs import image_env

        python = str(image_env("batch_score").python)
    proc = subprocess.run(
        [python, "-m", "maas.bench.batch", "--child", *args],
        cwd=str(find_project_root()),  # where the cached reference export lives (.cache/test-models)
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench child {args[0]} failed: {proc.stderr[-2000:]}")
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]
    value: dict[str, Any] = json.loads(last)
    return value


def _median_run(args: list[str], repeats: int) -> dict[str, Any]:
    """The run with the median wall time of ``repeats`` fresh processes. ``rss_mb`` is the highest peak
    RSS seen in any of them (memory is a limit, so the worst run counts); ``rss_mb_median`` is the
    median peak, the robust figure to compare sizes with (peaks vary +-10% from run to run)."""
    runs = sorted((_spawn(args, timeout=600) for _ in range(repeats)), key=lambda r: float(r["seconds"]))
    median = dict(runs[len(runs) // 2])
    median["rss_mb"] = max(float(r["rss_mb"]) for r in runs)
    median["rss_mb_median"] = statistics.median(float(r["rss_mb"]) for r in runs)
    median["runs_seconds"] = [round(float(r["seconds"]), 3) for r in runs]
    return median


def _figure(
    name: str,
    unit: str,
    value: float,
    baseline: float | None,
    ratio: float | None,
    target: str | None,
    ok: bool | None,
) -> dict[str, Any]:
    return figure("batch", name, unit, value, baseline, ratio, target, ok, digits=1)


def run(quick: bool = False) -> list[dict[str, Any]]:
    from maas_models.reference import cached_reference_export

    cached_reference_export()  # build (or find) the model before any timing
    big, small = (200_000, 100_000) if quick else (1_000_000, 250_000)
    # RSS growth compares runs long enough to reach the allocator's steady state: a Parquet run of
    # `small` rows lasts ~0.2 s, less than its RSS takes to plateau, so Parquet compares big -> 4x big
    huge = 2 * big if quick else 4 * big
    rss_sizes = {"csv": (small, big), "parquet": (big, huge)}
    repeats = 1 if quick else REPEATS
    cpus = vcpus()
    with tempfile.TemporaryDirectory(prefix="maas-bench-batch-") as tmp:
        d = Path(tmp)
        files = {n: make_files(d, n) for n in (big, small)}
        files[huge] = make_files(d, huge, formats=("parquet",))
        os.sync()  # the files' write-back would otherwise run (on these CPUs) during the first timing
        maas = {
            (fmt, n): _median_run(["maas", fmt, str(files[n][fmt]), tmp], repeats)
            for fmt, sizes in rss_sizes.items()
            for n in sizes
        }
        naive = _spawn(["naive", str(files[small]["csv"]), str(files[small]["parquet"]), tmp], timeout=900)
    for m in maas.values():
        if m["tensorflow_imported"] or m["pandas_imported"]:
            raise RuntimeError("the batch path imported TensorFlow or pandas")

    def rate(m: dict[str, Any]) -> float:
        return float(m["rows"]) / float(m["seconds"])

    pq_rate, csv_rate = rate(maas[("parquet", big)]), rate(maas[("csv", big)])
    naive_pq = naive["parquet"]["rows"] / naive["parquet"]["seconds"]
    naive_csv = naive["csv"]["rows"] / naive["csv"]["seconds"]
    # CPU time (all threads) is what "per vCPU" means, and unlike wall time it is not inflated when
    # other processes share the machine
    csv_cpu = maas[("csv", big)]["rows"] / maas[("csv", big)]["cpu_seconds"]
    pq_cpu = maas[("parquet", big)]["rows"] / maas[("parquet", big)]["cpu_seconds"]
    naive_csv_cpu = naive["csv"]["rows"] / naive["csv"]["cpu_seconds"]
    naive_pq_cpu = naive["parquet"]["rows"] / naive["parquet"]["cpu_seconds"]
    label = f"{big // 1000}k rows x 100" if big < 1_000_000 else f"{big // 1_000_000}M rows x 100"
    rss_big = max(maas[("csv", big)]["rss_mb"], maas[("parquet", big)]["rss_mb"])
    # per format: the same code on 4x the rows; a path that held the file would grow ~4x
    growth = max(
        maas[(fmt, b)]["rss_mb_median"] / maas[(fmt, a)]["rss_mb_median"] for fmt, (a, b) in rss_sizes.items()
    )
    return [
        _figure(
            f"Parquet rows/s end to end ({label})",
            "rows/s",
            pq_rate,
            naive_pq,
            pq_rate / naive_pq,
            f">= {TARGET_PARQUET:,.0f} rows/s",
            pq_rate >= TARGET_PARQUET,
        ),
        _figure(
            f"CSV rows/s end to end ({label})",
            "rows/s",
            csv_rate,
            naive_csv,
            csv_rate / naive_csv,
            None,
            None,
        ),
        _figure(
            "CSV rows/s per vCPU (rows per CPU-second)",
            "rows/s",
            csv_cpu,
            naive_csv_cpu,
            csv_cpu / naive_csv_cpu,
            f">= {TARGET_CSV_PER_VCPU:,.0f} rows/s per vCPU",
            csv_cpu >= TARGET_CSV_PER_VCPU,
        ),
        _figure(
            f"CSV rows/s per vCPU (wall clock / {cpus} vCPU)",
            "rows/s",
            csv_rate / cpus,
            naive_csv / cpus,
            csv_rate / naive_csv,
            None,
            None,
        ),
        _figure(
            "Parquet rows per CPU-second",
            "rows/s",
            pq_cpu,
            naive_pq_cpu,
            pq_cpu / naive_pq_cpu,
            None,
            None,
        ),
        _figure(
            f"peak RSS, {big:,} rows (CSV/Parquet)",
            "MB",
            rss_big,
            naive["rss_mb"],
            naive["rss_mb"] / rss_big,
            None,
            None,
        ),
        _figure(
            f"peak RSS growth, {huge // big}x the rows (CSV {small:,} -> {big:,}; Parquet -> {huge:,})",
            "x",
            growth,
            None,
            None,
            f"<= {RSS_GROWTH_LIMIT:.2f}x",
            growth <= RSS_GROWTH_LIMIT,
        ),
    ]


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--child":
        if argv[1] == "maas":
            print(json.dumps(child_maas(argv[2], argv[3], argv[4])))
        else:
            print(json.dumps(child_naive(argv[2], argv[3], argv[4])))
        return 0
    for fig in run(quick="--quick" in argv):
        print(json.dumps(fig))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
