"""`maas bench`: run the benchmarks, print each figure beside its naive baseline, write JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from maas.bench import AREAS, EXTRA_AREAS, AreaResult, run_area

HTTP_HELP = """\
`maas bench http` is the bounded load test: a steady rate for a fixed time against the predict
endpoint (the local stack's REST API from `maas local status --json`, or --url). It stops by
itself, reports p50/p99 and the error count, and fails unless every request succeeded."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run the benchmarks (figure, naive baseline, ratio, target) and write JSON",
        description=(
            "Run the benchmarks of each area (load, predict, batch, explain, cnn, raw) and print a table of "
            "each figure, the naive baseline measured in the same run, their ratio and the target. "
            "Writes JSON (default bench-results/bench.json).\n\n" + HTTP_HELP
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "area",
        nargs="?",
        default="all",
        choices=[*AREAS, *EXTRA_AREAS, "all"],
        help="which benchmark to run (default: all = " + ", ".join(AREAS) + ")",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes (CI smoke run, well under a minute)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="write results here (bench-results/bench.json)",
    )
    parser.add_argument(
        "--update-readme",
        action="store_true",
        help="rewrite the table between <!-- bench:start --> and <!-- bench:end --> in README.md",
    )
    parser.add_argument("--readme", type=Path, default=Path("README.md"), help="README to update")
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        metavar="PATH",
        help="run nothing: take the figures from a JSON file written earlier (with --update-readme)",
    )
    parser.add_argument("--fail-on-miss", action="store_true", help="exit 1 when a figure misses its target")
    http = parser.add_argument_group("http load test options (`maas bench http`)")
    http.add_argument("--url", default=None, help="REST API base URL (default: the local stack's)")
    http.add_argument("--model", default="ref", help="model to call (default: ref)")
    http.add_argument("--rate", type=float, default=None, help="requests per second (default 10, quick 5)")
    http.add_argument("--duration", type=float, default=None, help="seconds (default 30, quick 4)")
    http.add_argument("--rows", type=int, default=1, help="rows per request (default 1)")
    http.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    http.add_argument("--max-requests", type=int, default=10_000, help="hard cap on requests (10000)")
    http.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, s (default 10)")
    http.add_argument("--p99-target-ms", type=float, default=None, help="fail when p99 exceeds this")
    http.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback URL (only an endpoint you own)"
    )
    parser.set_defaults(func=main)


def _run_http(args: argparse.Namespace) -> AreaResult:
    """The load test with the command line's options (the plain `run(quick)` uses the defaults)."""
    import time

    from maas.bench import BenchSkipped, http_load

    result = AreaResult(area="http")
    started = time.perf_counter()
    try:
        api_url = args.url or str(http_load.local_status()["api_url"])
        config = http_load.predict_config(
            api_url,
            model=args.model,
            rows=args.rows,
            rate=args.rate
            if args.rate is not None
            else (http_load.QUICK_RATE if args.quick else http_load.FULL_RATE),
            duration_s=args.duration
            if args.duration is not None
            else (http_load.QUICK_DURATION_S if args.quick else http_load.FULL_DURATION_S),
            concurrency=args.concurrency,
            max_requests=args.max_requests,
            timeout_s=args.timeout,
            allow_remote=args.allow_remote,
        )
        print(
            f"load: {config.planned_requests()} requests at {config.rate:g}/s -> {config.url}",
            file=sys.stderr,
        )
        load = http_load.run_load(config)
        result.figures = http_load.figures(load, target_p99_ms=args.p99_target_ms)
        summary = load.summary()
        print(
            f"load: sent {summary['sent']}, ok {summary['ok']}, errors {summary['errors']}, "
            f"p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms, "
            f"achieved {summary['achieved_rate']}/s",
            file=sys.stderr,
        )
        for sample in load.error_samples:
            print(f"load: error: {sample}", file=sys.stderr)
    except BenchSkipped as exc:
        result.skipped = str(exc)
    except ValueError as exc:
        result.error = f"ValueError: {exc}"
    finally:
        result.seconds = time.perf_counter() - started
    return result


def main(args: argparse.Namespace) -> int:
    from maas.bench import report

    if args.from_json is not None:
        results, doc = report.read_json(args.from_json)
        quick, run = bool(doc.get("quick")), report.run_label_of(doc)
    else:
        quick, run = bool(args.quick), None
        areas = list(AREAS) if args.area == "all" else [args.area]
        results = []
        for area in areas:
            print(f"== {area}{' (quick)' if quick else ''}", file=sys.stderr, flush=True)
            result = _run_http(args) if area == "http" else run_area(area, quick=quick)
            if result.skipped:
                print(f"   skipped: {result.skipped}", file=sys.stderr)
            elif result.error:
                print(f"   FAILED: {result.error}", file=sys.stderr)
            else:
                print(f"   {len(result.figures)} figures in {result.seconds:.1f} s", file=sys.stderr)
            results.append(result)
        path = report.write_json(args.json or report.DEFAULT_JSON, results, quick=quick)
        print(f"wrote {path}", file=sys.stderr)
    print(report.format_table(results))
    if args.update_readme:
        try:
            changed = report.update_readme(args.readme, results, quick=quick, run=run)
        except (OSError, ValueError) as exc:
            print(f"maas bench: cannot update {args.readme}: {exc}", file=sys.stderr)
            return 2
        print(f"{args.readme}: {'updated' if changed else 'unchanged'}", file=sys.stderr)
    failed = any(r.error for r in results)
    missed = any(f.get("ok") is False for r in results for f in r.figures)
    if failed or (missed and (args.fail_on_miss or args.area == "http")):
        return 1
    return 0
