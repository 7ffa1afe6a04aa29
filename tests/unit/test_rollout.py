"""Weighted aliases (maas_models.rollout) on moto S3: start / status / abort / complete, bad input,
conditional writes, the sticky split, and the router's TTL (how long a rollback takes to reach a warm
function)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def two_versions(published_ref: Any, reference_export: Path) -> Any:
    """ref v1 (production) and v2 on the moto bucket; returns the Registry."""
    assert published_ref.publish(reference_export, "ref", source="recorded") == 2
    published_ref.promote("ref", 1, "production")
    return published_ref


@pytest.fixture
def rollouts(two_versions: Any) -> Any:
    from maas_models.rollout import Rollouts

    events: list[dict[str, Any]] = []
    r = Rollouts(two_versions, audit=events.append)
    r.events = events  # type: ignore[attr-defined]
    return r


def _alias_bytes(registry: Any, alias: str = "production") -> bytes:
    key = registry.key("ref", "aliases", f"{alias}.json")
    return bytes(registry.s3.get_object(Bucket=registry.bucket, Key=key)["Body"].read())


def test_start_status_complete(rollouts: Any) -> None:
    record = rollouts.start("ref", 2, "production", canary=20, bake_minutes=5, step=30)
    assert record["version"] == 1
    assert record["rollout"]["candidate"] == 2 and record["rollout"]["weight"] == 20
    assert record["rollout"]["steps"] == [20, 50, 80]
    status = rollouts.status("ref", "production")
    assert status["rollout"]["weights"] == {"1": 80, "2": 20}
    assert 0 < status["rollout"]["bake_left_seconds"] <= 300
    # readers that know nothing of rollouts still resolve the baseline
    assert rollouts.registry.resolve("ref", "production").version == 1
    done = rollouts.complete("ref", "production", reason="looks good")
    assert done["version"] == 2 and "rollout" not in done
    assert rollouts.registry.resolve("ref", "production").version == 2
    assert [e["event"] for e in rollouts.events] == ["canary_start", "canary_complete"]


def test_abort_returns_to_baseline(rollouts: Any) -> None:
    rollouts.start("ref", 2, "production", canary=10)
    record = rollouts.abort("ref", "production", reason="manual")
    assert record["version"] == 1 and "rollout" not in record
    assert rollouts.events[-1]["event"] == "canary_rollback"


def test_advance_steps_then_completes(rollouts: Any) -> None:
    rollouts.start("ref", 2, "production", canary=10, step=40)  # 10 -> 50 -> 90 -> 100
    assert rollouts.advance("ref", "production")["rollout"]["weight"] == 50
    assert rollouts.advance("ref", "production")["rollout"]["weight"] == 90
    final = rollouts.advance("ref", "production")
    assert final["version"] == 2 and "rollout" not in final


@pytest.mark.parametrize("percent", [0, 100, -5, 150])
def test_percentage_outside_1_99_changes_nothing(rollouts: Any, percent: int) -> None:
    from maas_models.rollout import RolloutError

    before = _alias_bytes(rollouts.registry)
    with pytest.raises(RolloutError, match="1 to 99"):
        rollouts.start("ref", 2, "production", canary=percent)
    assert _alias_bytes(rollouts.registry) == before and rollouts.events == []


def test_second_rollout_on_one_alias_is_refused(rollouts: Any, reference_export: Path) -> None:
    from maas_models.rollout import RolloutConflict

    rollouts.registry.publish(reference_export, "ref", source="recorded")  # v3
    rollouts.start("ref", 2, "production", canary=20)
    before = _alias_bytes(rollouts.registry)
    with pytest.raises(RolloutConflict, match="already has a rollout"):
        rollouts.start("ref", 3, "production", canary=20)
    assert _alias_bytes(rollouts.registry) == before


def test_missing_alias_and_missing_candidate(rollouts: Any) -> None:
    from maas_models.errors import ModelNotFound

    with pytest.raises(ModelNotFound, match="no alias 'staging'"):
        rollouts.start("ref", 2, "staging", canary=20)
    with pytest.raises(ModelNotFound):
        rollouts.start("ref", 9, "production", canary=20)
    assert rollouts.events == []


def test_failing_gates_refuse_the_canary(two_versions: Any, tmp_path: Path, reference_export: Path) -> None:
    import shutil

    import orjson
    from maas_models.errors import PromotionRefused
    from maas_models.rollout import Rollouts

    unfair = tmp_path / "unfair"
    shutil.copytree(reference_export, unfair)
    meta = orjson.loads((unfair / "metadata.json").read_bytes())
    meta["fairness"] = {"gates": {"max_fairness_gap": 0.05}, "gaps": {"demographic_parity_difference": 0.3}}
    (unfair / "metadata.json").write_bytes(orjson.dumps(meta))
    v3 = two_versions.publish(unfair, "ref", source="recorded")
    events: list[dict[str, Any]] = []
    r = Rollouts(two_versions, audit=events.append)
    before = _alias_bytes(two_versions)
    with pytest.raises(PromotionRefused, match="max_fairness_gap"):
        r.start("ref", v3, "production", canary=20)
    assert _alias_bytes(two_versions) == before and events == []
    r.start("ref", v3, "production", canary=20, override=True, reason="accepted by the review board")
    assert events[-1]["override"] is True and events[-1]["gate_failures"]


def test_conditional_write_loses_to_a_concurrent_change(rollouts: Any) -> None:
    from maas_models.rollout import RolloutConflict

    rollouts.start("ref", 2, "production", canary=20)
    record, etag = rollouts.read("ref", "production")
    rollouts.abort("ref", "production")  # someone else moves the alias after our read
    with pytest.raises(RolloutConflict, match="changed while"):
        rollouts.write("ref", "production", {**record, "version": 2}, etag)
    assert rollouts.registry.resolve("ref", "production").version == 1


def test_concurrent_abort_and_complete_leave_one_consistent_state(rollouts: Any) -> None:
    from maas_models.rollout import RolloutConflict, RolloutError

    rollouts.start("ref", 2, "production", canary=50)
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def run(op: Any, name: str) -> None:
        barrier.wait()
        try:
            op("ref", "production")
            outcomes.append(name)
        except (RolloutConflict, RolloutError):
            outcomes.append("lost")

    threads = [
        threading.Thread(target=run, args=(rollouts.abort, "abort")),
        threading.Thread(target=run, args=(rollouts.complete, "complete")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) in (["abort", "lost"], ["complete", "lost"])
    record, _ = rollouts.read("ref", "production")
    assert "rollout" not in record
    assert record["version"] == (1 if "abort" in outcomes else 2)


def test_split_is_sticky_and_close_to_the_weight() -> None:
    from maas_models.rollout import pick

    record = {"version": 1, "rollout": {"id": "r1", "candidate": 2, "weight": 20}}
    picks = [pick(record, f"caller-{i}") for i in range(10_000)]
    share = picks.count(2) / len(picks)
    assert 0.18 < share < 0.22
    assert all(pick(record, f"caller-{i}") == picks[i] for i in range(0, 10_000, 97))
    # stepping up keeps every caller already on the candidate there
    wider = {"version": 1, "rollout": {"id": "r1", "candidate": 2, "weight": 50}}
    assert all(pick(wider, f"caller-{i}") == 2 for i in range(10_000) if picks[i] == 2)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_router_follows_the_split_and_a_rollback_within_the_ttl(rollouts: Any, tmp_path: Path) -> None:
    from maas.rollout.router import Router, current
    from maas_models import ModelLoader

    clock = _Clock()
    loader = ModelLoader(registry=rollouts.registry, cache_dir=tmp_path / "cache", alias_ttl_seconds=5)
    router = Router(ttl=5, clock=clock)
    assert router.route(loader, "ref", "production", sticky="a").version == 1
    assert current() is None  # no rollout: the loader's alias path, nothing recorded
    rollouts.start("ref", 2, "production", canary=50)
    clock.now = 5.0
    served = {k: router.route(loader, "ref", "production", sticky=k).version for k in map(str, range(200))}
    assert set(served.values()) == {1, 2}
    on_candidate = [k for k, v in served.items() if v == 2]
    routed = current()
    assert routed is not None and routed.rollout_id and routed.baseline == 1
    rollouts.abort("ref", "production")
    clock.now = 9.9  # inside the TTL the warm process still splits
    assert router.route(loader, "ref", "production", sticky=on_candidate[0]).version == 2
    clock.now = 10.0  # one TTL after the last read: the rollback has reached this process
    assert all(router.route(loader, "ref", "production", sticky=k).version == 1 for k in on_candidate)


def test_router_serves_the_completed_candidate_at_once(rollouts: Any, tmp_path: Path) -> None:
    from maas.rollout.router import Router
    from maas_models import ModelLoader

    clock = _Clock()
    loader = ModelLoader(registry=rollouts.registry, cache_dir=tmp_path / "cache", alias_ttl_seconds=60)
    loader.get("ref", "production")  # the loader's own alias cache now says 1 for 60 s
    router = Router(ttl=5, clock=clock)
    rollouts.start("ref", 2, "production", canary=50)
    router.route(loader, "ref", "production", sticky="x")
    rollouts.complete("ref", "production")
    clock.now = 5.0
    assert router.route(loader, "ref", "production", sticky="anyone").version == 2


def test_router_falls_back_to_the_baseline_when_the_candidate_cannot_load(
    rollouts: Any, tmp_path: Path
) -> None:
    from maas.rollout.router import Router
    from maas_models import ModelLoader

    registry = rollouts.registry
    registry.s3.delete_object(Bucket=registry.bucket, Key=registry.key("ref", 2, "model.tflite"))
    rollouts.start("ref", 2, "production", canary=99)
    loader = ModelLoader(registry=registry, cache_dir=tmp_path / "cache")
    router = Router(ttl=5, clock=_Clock())
    assert {router.route(loader, "ref", "production", sticky=str(k)).version for k in range(20)} == {1}


def _stats(requests: int, errors: int = 0, ms: float = 1.0, shadow: tuple[int, int] | None = None) -> Any:
    from maas.rollout.stats import VersionStats

    s = VersionStats()
    for i in range(requests):
        s.add_request(ms, i < errors)
    if shadow:
        s.add_shadow(shadow[0], shadow[1], 0.5, ms, False)
    return s


@pytest.mark.parametrize(
    ("base", "cand", "live", "bake", "action", "reason"),
    [
        (_stats(50), _stats(50, errors=5), None, 5, "rollback", "error rate delta"),
        (_stats(50, ms=1.0), _stats(50, ms=5.0), None, 5, "rollback", "p99 ratio"),
        (_stats(50), _stats(50, shadow=(70, 100)), None, 5, "rollback", "disagreement"),
        (
            _stats(50),
            _stats(50),
            {"versions": {"2": {"labelled": 40, "accuracy": 0.5}}},
            5,
            "rollback",
            "live",
        ),
        (_stats(50), _stats(5), None, 0, "hold", "min_requests"),
        (_stats(50), _stats(50), None, 5, "hold", "still baking"),
        (
            _stats(50),
            _stats(50),
            {"versions": {"2": {"labelled": 40, "accuracy": 0.95}}},
            0,
            "step",
            "healthy",
        ),
    ],
)
def test_guard_rules(base: Any, cand: Any, live: Any, bake: float, action: str, reason: str) -> None:
    from maas.rollout.guard import decide
    from maas_models.registry import utc_now
    from maas_models.rollout import Rollout, Thresholds

    rollout = Rollout(
        candidate=2, weight=20, steps=(20, 60), bake_minutes=bake, started_at=utc_now(),
        step_started_at=utc_now(), id="r", thresholds=Thresholds(min_live_accuracy=0.9),
    )  # fmt: skip
    got, reasons, numbers = decide(rollout, 1, {1: base, 2: cand}, live=live)
    assert got == action and reason in "; ".join(reasons), (got, reasons)
    assert numbers["candidate"]["requests"] == cand.requests


def test_cli_canary_errors_and_require_shadow(two_versions: Any, capsys: Any) -> None:
    from maas.cli import main

    bucket = two_versions.bucket
    assert main(["models", "promote", "ref", "2", "production", "--canary", "0", "--bucket", bucket]) == 1
    assert "1 to 99" in capsys.readouterr().err
    args = [
        "models",
        "promote",
        "ref",
        "2",
        "production",
        "--canary",
        "20",
        "--require-shadow",
        "--bucket",
        bucket,
    ]
    assert main(args) == 1
    assert "--require-shadow needs a shadow of version 2" in capsys.readouterr().err
    assert main(["models", "promote", "ref", "2", "production", "--canary", "20", "--bucket", bucket]) == 0
    assert main(["models", "promote", "ref", "2", "production", "--bucket", bucket]) == 1
    assert "rollout in progress" in capsys.readouterr().err
    assert main(["models", "rollout", "status", "ref", "production", "--bucket", bucket, "--json"]) == 0
    assert '"weights"' in capsys.readouterr().out
    assert main(["models", "rollout", "abort", "ref", "production", "--bucket", bucket]) == 0
    assert two_versions.resolve("ref", "production").version == 1
