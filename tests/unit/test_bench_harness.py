"""The `maas bench` harness: running areas, the table, JSON, the README block and the HTTP load test."""

from __future__ import annotations

import os
import sys
import threading
import time
import types
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
from maas.bench import AreaResult, BenchSkipped, http_load, normalise_figure, report, run_area
from maas.cli import main as cli_main

FIG = {
    "benchmark": "predict",
    "figure": "1-row p50 latency",
    "unit": "us",
    "value": 42.0,
    "baseline": 130000.0,
    "ratio": 3095.2,
    "target": "<= 100 us",
    "ok": True,
}


@pytest.fixture
def area_module() -> Iterator[types.ModuleType]:
    """A real module `maas.bench._testarea` with a `run(quick)` (an area written by a test)."""
    module = types.ModuleType("maas.bench._testarea")
    calls: list[bool] = []

    def run(quick: bool = False) -> list[dict]:
        calls.append(quick)
        return [dict(FIG, benchmark="_testarea"), dict(FIG, benchmark="_testarea", figure="rss", ok=False)]

    module.run = run  # type: ignore[attr-defined]
    module.calls = calls  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def test_missing_area_is_skipped_with_a_clear_message() -> None:
    result = run_area("no_such_area_xyz")
    assert result.skipped and "maas.bench.no_such_area_xyz is not there yet" in result.skipped
    assert result.figures == [] and result.error is None


def test_area_runs_and_figures_are_normalised(area_module: types.ModuleType) -> None:
    result = run_area("_testarea", quick=True)
    assert area_module.calls == [True]
    assert result.error is None and len(result.figures) == 2
    assert result.figures[0]["ratio"] == pytest.approx(3095.2)
    assert result.figures[1]["ok"] is False


def test_area_error_and_skip_are_recorded(area_module: types.ModuleType) -> None:
    def boom(quick: bool = False) -> list[dict]:
        raise RuntimeError("disk on fire")

    area_module.run = boom  # type: ignore[attr-defined]
    result = run_area("_testarea")
    assert result.error and result.error.startswith("RuntimeError: disk on fire")

    def skip(quick: bool = False) -> list[dict]:
        raise BenchSkipped("stack down")

    area_module.run = skip  # type: ignore[attr-defined]
    assert run_area("_testarea").skipped == "stack down"


@pytest.mark.parametrize(
    "raw, problem",
    [({"figure": "x", "unit": "s", "value": 1}, "benchmark"), ("not a dict", "must be a dict")],
)
def test_bad_figures_are_refused(raw: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        normalise_figure("a", raw)  # type: ignore[arg-type]


def test_non_finite_numbers_become_null() -> None:
    figure = normalise_figure("a", dict(FIG, value=float("nan"), baseline="inf", ratio=None))
    assert figure["value"] is None and figure["baseline"] is None and figure["ratio"] is None
    orjson.dumps(figure)  # JSON-safe


def test_table_shows_value_baseline_ratio_target_and_status() -> None:
    results = [
        AreaResult("predict", figures=[normalise_figure("predict", FIG)]),
        AreaResult("batch", skipped="not written"),
        AreaResult("explain", error="ValueError: bad\ntrace"),
    ]
    table = report.format_table(results)
    assert "42.0 us" in table and "130,000 us" in table and "3,095x" in table
    assert "<= 100 us" in table and " ok" in table
    assert "skipped batch: not written" in table and "FAILED  explain: ValueError: bad" in table
    assert "1 figures: 1 targets met, 0 missed; 1 areas skipped, 1 failed" in table


def test_json_round_trip(tmp_path: Path) -> None:
    results = [AreaResult("predict", figures=[normalise_figure("predict", FIG)], seconds=1.5)]
    path = report.write_json(tmp_path / "out" / "bench.json", results, quick=True)
    doc = orjson.loads(path.read_bytes())
    assert doc["schema_version"] == 1 and doc["quick"] is True and doc["figures"][0]["value"] == 42.0
    back, _ = report.read_json(path)
    assert back[0].figures == results[0].figures


def test_readme_block_is_rewritten_and_other_rows_kept(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nbefore\n<!-- bench:start -->\nSTALE-TABLE\n<!-- bench:end -->\nafter\n")
    load_fig = dict(FIG, benchmark="load", figure="cold start", unit="s", value=0.2)
    assert report.update_readme(readme, [AreaResult("load", figures=[load_fig])], quick=False)
    assert report.update_readme(readme, [AreaResult("predict", figures=[FIG])], quick=True)
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n<!-- bench:start -->\n") and text.endswith(
        "<!-- bench:end -->\nafter\n"
    )
    assert "STALE-TABLE" not in text
    assert "| load | cold start | 0.2 s |" in text  # kept from the first run
    assert "| predict | 1-row p50 latency | 42.0 us | 130,000 us | 3,095x | <= 100 us | ok |" in text
    assert text.count("| Benchmark |") == 1


def test_readme_rows_say_the_run_they_come_from(tmp_path: Path) -> None:
    """Rerunning one area relabels only its rows; rows of a block from before the Run column get the
    run its header named (the escaped | inside a figure's name does not count as a cell)."""
    readme = tmp_path / "README.md"
    legacy_row = "| explain | completeness max \\|sum\\| | 0 abs | - | - | <= 0.001 | ok |"
    readme.write_text(
        "<!-- bench:start -->\n"
        "_Generated by `maas bench --update-readme` (full run, 2026-12-01 19:11 UTC, 2 CPUs, "
        "Python 3.11.7)._\n\n| Benchmark | Figure | maas | Naive baseline | Ratio | Target | Met |\n"
        "|---|---|---:|---:|---:|---|---|\n"
        f"{legacy_row}\n| predict | old | 1 us | - | - | - | - |\n<!-- bench:end -->\n"
    )
    assert report.update_readme(readme, [AreaResult("predict", figures=[FIG])], quick=True)
    rows = [line for line in readme.read_text().splitlines() if line.startswith("| ")]
    assert rows[0] == "| Benchmark | Figure | maas | Naive baseline | Ratio | Target | Met | Run |"
    assert rows[1] == f"{legacy_row} 2026-12-01 19:11 UTC, full, 2 CPUs |"
    assert rows[2].startswith("| predict | 1-row p50 latency |")
    assert rows[2].endswith(f", quick, {os.cpu_count()} CPUs |")
    assert "| old |" not in readme.read_text()
    stamp = rows[2].split(" | ")[-1]
    assert report.update_readme(
        readme, [AreaResult("load", figures=[dict(FIG, benchmark="load")])], quick=False
    )
    again = readme.read_text()
    assert (
        f"{legacy_row} 2026-12-01 19:11 UTC, full, 2 CPUs |" in again and stamp in again
    )  # kept as they were
    assert "full run" not in again


def test_readme_from_json_labels_rows_with_the_runs_own_time(tmp_path: Path) -> None:
    """`maas bench --from-json X --update-readme`: the rows say when X was measured, not when it was read."""
    import argparse

    from maas.cli.bench import main

    results = [AreaResult("predict", figures=[normalise_figure("predict", FIG)], seconds=1.5)]
    path = report.write_json(tmp_path / "bench.json", results, quick=False)
    doc = orjson.loads(path.read_bytes())
    doc["created_at"], doc["machine"]["cpus"] = "2026-01-02T03:04:05Z", 64
    path.write_bytes(orjson.dumps(doc))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- bench:start -->\n<!-- bench:end -->\n")
    args = argparse.Namespace(
        from_json=path, update_readme=True, readme=readme, fail_on_miss=False, area="all"
    )
    assert main(args) == 0
    (row,) = [line for line in readme.read_text().splitlines() if line.startswith("| predict")]
    assert row.endswith("| 2026-01-02 03:04 UTC, full, 64 CPUs |")
    del doc["created_at"]  # a hand-made or damaged document: labelled as such, never as today's run
    assert report.run_label_of(doc) == "time unknown, full, 64 CPUs"


def test_readme_block_without_figures_has_a_full_placeholder_row(tmp_path: Path) -> None:
    block = report.render_markdown([], quick=True)
    header, placeholder = block.splitlines()[2], block.splitlines()[-1]
    assert placeholder.startswith("| - | no figures yet |") and placeholder.count("|") == header.count("|")


def test_readme_without_markers_is_an_error(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="bench:start"):
        report.update_readme(readme, [], quick=True)


# --- the HTTP load test, against a real HTTP server on loopback ---------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fail_every = 0
    delay_s = 0.0
    count = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        body = orjson.loads(self.rfile.read(length))
        with self.lock:
            type(self).count += 1
            n = type(self).count
        time.sleep(self.delay_s)
        fail = self.fail_every and n % self.fail_every == 0
        payload = orjson.dumps(
            {"error": "boom"} if fail else {"predictions": [[1.0]] * len(body["instances"])}
        )
        self.send_response(500 if fail else 200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("H", (_Handler,), {"count": 0, "lock": threading.Lock()})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def test_load_steady_rate_zero_errors(server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    config = http_load.LoadConfig(
        url=f"{url}/v1/models/ref:predict", rate=100, duration_s=1.0, body=b'{"instances":[[1]]}'
    )
    started = time.perf_counter()
    result = http_load.run_load(config)
    elapsed = time.perf_counter() - started
    assert result.planned == 100 and result.sent == 100 and result.ok == 100 and result.errors == 0
    assert handler.count == 100
    assert 0.9 <= elapsed < 3.0  # a steady rate: neither a burst nor a stall
    summary = result.summary()
    assert summary["p50_ms"] is not None and summary["p99_ms"] >= summary["p50_ms"]


def test_load_counts_errors(server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    handler.fail_every = 4
    config = http_load.LoadConfig(url=url + "/p", rate=200, duration_s=0.2, body=b'{"instances":[[1]]}')
    result = http_load.run_load(config)
    assert result.planned == 40 and result.errors == 10 and result.ok == 30
    assert result.error_kinds == {"HTTP 500": 10} and "boom" in result.error_samples[0]
    assert http_load.figures(result)[2]["ok"] is False


def test_load_is_bounded_when_the_server_hangs(server: tuple[str, type[_Handler]]) -> None:
    url, handler = server
    handler.delay_s = 5.0
    config = http_load.LoadConfig(
        url=url + "/p", rate=20, duration_s=0.5, timeout_s=0.3, concurrency=2, body=b'{"instances":[[1]]}'
    )
    started = time.perf_counter()
    result = http_load.run_load(config)
    assert time.perf_counter() - started < config.duration_s + config.timeout_s + 7.0
    assert result.ok == 0 and result.errors == result.planned == 10


def test_load_caps_requests_and_refuses_remote_targets() -> None:
    assert (
        http_load.LoadConfig(
            url="http://127.0.0.1/", rate=1000, duration_s=600, max_requests=50
        ).planned_requests()
        == 50
    )
    with pytest.raises(ValueError, match="only loopback"):
        http_load.validate(http_load.LoadConfig(url="http://192.0.2.10/x"))
    with pytest.raises(ValueError, match="duration"):
        http_load.validate(http_load.LoadConfig(url="http://127.0.0.1/x", duration_s=3600))
    assert http_load.is_loopback_host("localhost") and http_load.is_loopback_host("127.0.0.2")
    assert http_load.percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0 and http_load.percentile([], 99) is None


def test_cli_http_against_a_url(
    server: tuple[str, type[_Handler]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = server
    out = tmp_path / "b.json"
    rc = cli_main(["bench", "http", "--url", url, "--rate", "50", "--duration", "0.4", "--json", str(out)])
    assert rc == 0
    doc = orjson.loads(out.read_bytes())
    assert [f["figure"] for f in doc["figures"]][2] == "errors of 20 requests"
    assert "predict p99 over HTTP" in capsys.readouterr().out


def test_cli_bench_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli_main(["bench", "--help"])
    assert exc.value.code == 0
    assert "--update-readme" in capsys.readouterr().out


def test_cli_runs_areas_and_updates_readme(
    area_module: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import maas.cli.bench as cli_bench

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli_bench, "AREAS", ("_testarea", "no_such_area_xyz"))  # `all` = these two
    (tmp_path / "README.md").write_text("<!-- bench:start -->\n<!-- bench:end -->\n")
    assert cli_main(["bench", "--quick", "--json", "r.json"]) == 0  # one area runs, one is skipped
    assert area_module.calls == [True]
    assert cli_main(["bench", "--quick", "--json", "r.json", "--fail-on-miss"]) == 1  # a figure missed
    assert cli_main(["bench", "--from-json", "r.json", "--update-readme"]) == 0
    text = (tmp_path / "README.md").read_text()
    assert "| _testarea | 1-row p50 latency | 42.0 us |" in text and "| _testarea | rss |" in text


def test_framework_floor_answers_the_event_and_calls_are_timed_in_rounds() -> None:
    from maas.bench.handler import framework_floor, rest_event, time_interleaved

    floor = framework_floor(rest_event("/v1/models/m:predict", '{"instances": [[1.0]]}'))
    order: list[str] = []
    samples = time_interleaved({"a": lambda: order.append("a"), "floor": floor}, 6, rounds=3)
    assert {k: len(v) for k, v in samples.items()} == {"a": 6, "floor": 6}
    assert all(s > 0 for s in samples["floor"])
    assert order[-2:] == ["a", "a"] and order.count("a") == 3 + 6  # warm-up once, then 2 a round
    with pytest.raises(RuntimeError, match="did not answer 200"):  # another path gets Powertools' 404
        framework_floor(rest_event("/v2/models/m/infer", "{}"))


def test_cold_starts_alternate_with_import_floors(monkeypatch: pytest.MonkeyPatch) -> None:
    from maas.bench import handler

    order: list[str] = []
    monkeypatch.setattr(handler, "import_floor_ms", lambda env: order.append("floor") or 1.0)

    def cold() -> float:
        order.append("cold")
        return 2.0

    colds, floors = handler.cold_starts_and_floors(cold, {}, 3, first=5.0)
    assert (colds, floors) == ([5.0, 2.0, 2.0], [1.0, 1.0, 1.0])
    assert order == ["floor", "cold", "floor", "cold", "floor"]


def test_excess_over_floor_is_the_median_of_paired_differences() -> None:
    from maas.bench.handler import excess_over_floor

    # each cold start is read against the floor measured beside it: here the differences are 100, 20
    # and 250, so 100; the difference of the medians (300 - 240) would say 60
    colds, floors = [300.0, 260.0, 500.0], [200.0, 240.0, 250.0]
    assert excess_over_floor(colds, floors) == 100.0
    assert excess_over_floor([310.0, 250.0, 260.0], [200.0, 200.0, 200.0]) == 60.0
    with pytest.raises(ValueError, match="as many cold starts as floors"):
        excess_over_floor([300.0], [200.0, 210.0])
    with pytest.raises(ValueError):
        excess_over_floor([], [])
