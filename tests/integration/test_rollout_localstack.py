"""Safe rollouts end to end on LocalStack with the real handlers (issue 17, "Done when"):

* v1 and v2 published, a 20 % canary started with the CLI, 500 requests (100 callers x 5, TF Serving
  and v2 protocols), each caller served by the version the split's rule gives it, always the same one;
* errors injected into v2 (it is a model that fails on some inputs: tests/rollout_models.py) and the
  deployed guard function, invoked through the Lambda Invoke API as its schedule would, rolls back in
  that one evaluation; the time until the warm predict function serves only v1 is measured;
* a clean canary (v3) stepped by the guard to completion;
* the guard's schedule (an EventBridge rule, which LocalStack fires) is paused during the test;
* a shadow of v2 on the alias, its agreement read with `maas models rollout status`.

* a 10 % data capture with the sensitive feature masked, labels uploaded with `maas models labels`,
  live accuracy per version and group read with `maas models live-accuracy`.

The tests set the predict function's MAAS_ALIAS_TTL_SECONDS to 2, MAAS_ROLLOUT_STATS_FLUSH_SECONDS and
MAAS_CAPTURE_FLUSH_SECONDS to 0 and MAAS_DEFAULT_LABEL to production for their run (Lambda
UpdateFunctionConfiguration; restored after).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.helpers import api_request, delete_prefix, point_at_stack
from tests.rollout_models import faulty_export

pytestmark = pytest.mark.integration
TTL_S = 2


def _wait_active(lam: Any, name: str) -> None:
    for _ in range(120):
        cfg = lam.get_function_configuration(FunctionName=name)
        if (
            cfg.get("LastUpdateStatus", "Successful") == "Successful"
            and cfg.get("State", "Active") == "Active"
        ):
            return
        time.sleep(0.5)
    raise AssertionError(f"{name} did not become active")


@pytest.fixture
def env(
    local_stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch, reference_export: Path
) -> Iterator[Any]:
    import boto3
    from maas_models import Registry

    point_at_stack(local_stack, monkeypatch)
    models = local_stack["buckets"]["models"]
    audit = local_stack["buckets"]["audit"]
    monkeypatch.setenv("MAAS_MODELS_BUCKET", models)
    monkeypatch.setenv("MAAS_AUDIT_BUCKET", audit)
    name = f"ro-{uuid.uuid4().hex[:8]}"
    registry = Registry(bucket=models)
    assert registry.publish(reference_export, name, source="recorded") == 1
    assert registry.publish(faulty_export(), name, source="recorded") == 2
    assert registry.publish(reference_export, name, source="recorded") == 3
    registry.promote(name, 1, "production")
    lam = boto3.client("lambda")
    # the guard's EventBridge schedule fires on LocalStack too: pause it, so only this test's explicit
    # invocations (the Lambda Invoke API, as the schedule would call it) decide while it runs
    events = boto3.client("events")
    guard_arn = lam.get_function_configuration(FunctionName=local_stack["functions"]["rollout_guard"])
    rules = events.list_rule_names_by_target(TargetArn=guard_arn["FunctionArn"])["RuleNames"]
    assert rules, "the rollout guard has no schedule"
    targets = {rule: events.list_targets_by_rule(Rule=rule)["Targets"] for rule in rules}
    for rule, listed in targets.items():  # LocalStack keeps firing a disabled rule: detach its target
        events.remove_targets(Rule=rule, Ids=[t["Id"] for t in listed])
    fn = local_stack["functions"]["predict"]
    before = lam.get_function_configuration(FunctionName=fn)["Environment"]["Variables"]
    lam.update_function_configuration(
        FunctionName=fn,
        Environment={
            "Variables": {
                **before,
                "MAAS_ALIAS_TTL_SECONDS": str(TTL_S),
                "MAAS_ROLLOUT_STATS_FLUSH_SECONDS": "0",
                "MAAS_CAPTURE_FLUSH_SECONDS": "0",
                "MAAS_DEFAULT_LABEL": "production",
            }
        },
    )
    _wait_active(lam, fn)

    class Env:
        pass

    e = Env()
    e.registry, e.name, e.lam, e.audit, e.stack = registry, name, lam, audit, local_stack  # type: ignore[attr-defined]
    e.s3 = registry.s3  # type: ignore[attr-defined]
    yield e
    lam.update_function_configuration(FunctionName=fn, Environment={"Variables": before})
    _wait_active(lam, fn)
    for rule, listed in targets.items():
        events.put_targets(Rule=rule, Targets=listed)
    delete_prefix(registry.s3, models, f"models/{name}/")
    delete_prefix(registry.s3, audit, f"rollout/stats/{name}/")
    for prefix in ("models/", "capture/", "labels/"):
        delete_prefix(registry.s3, models if prefix == "models/" else audit, f"{prefix}{name}-cap/")


def _cli(e: Any, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "maas", "models", *args, "--bucket", e.registry.bucket, "--json"],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def _request(
    e: Any, caller: str, *, poison: bool = False, v2: bool = False, model: str | None = None
) -> tuple[int, int | None]:
    """(status, version that served it) of one request naming the alias (v1) or no version (v2)."""
    model = model or e.name
    x = np.random.default_rng(abs(hash(caller)) % 2**32).normal(size=(1, 100)).astype(np.float32)
    if poison:
        x[0, 0] = 100.0
    api = e.stack["api_url"]
    if v2:
        url = f"{api}/v2/models/{model}/infer"
        body = {
            "inputs": [
                {"name": "features", "shape": [1, 100], "datatype": "FP32", "data": x.ravel().tolist()}
            ]
        }
    else:
        url = f"{api}/v1/models/{model}/labels/production:predict"
        body = {"instances": x.tolist()}
    status, headers, raw = api_request(
        url,
        json.dumps(body).encode(),
        "POST",
        {"Content-Type": "application/json", "X-Maas-Sticky-Key": caller},
    )
    version = headers.get("x-maas-model-version")
    if v2 and status == 200:
        assert json.loads(raw)["model_version"] == version  # the v2 body says it too
    return status, int(version) if version else None


def _many(e: Any, calls: list[tuple[str, bool, bool]]) -> list[tuple[str, int, int | None]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: (c[0], *_request(e, c[0], poison=c[1], v2=c[2])), calls))
    return results


def _guard(e: Any) -> list[dict[str, Any]]:
    response = e.lam.invoke(FunctionName=e.stack["functions"]["rollout_guard"], Payload=b"{}")
    payload = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, payload
    return [d for d in payload["decisions"] if d["model"] == e.name]


def _on_candidate(rollout_id: str, caller: str, weight: int) -> bool:
    """The split's documented rule, written out here rather than imported: a caller is on the candidate
    when blake2b-64 of "<rollout id>\\0<sticky key>" mod 10000 is under weight x 100."""
    digest = hashlib.blake2b(f"{rollout_id}\0{caller}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 < weight * 100


def _callers_of_each(rollout_id: str, weight: int, each: int) -> list[tuple[str, bool, bool]]:
    """`each` callers the split sends to the candidate and `each` it sends to the baseline."""
    on: list[tuple[str, bool, bool]] = []
    off: list[tuple[str, bool, bool]] = []
    for c in range(10_000):
        caller = f"user-{c}"
        side = on if _on_candidate(rollout_id, caller, weight) else off
        if len(side) < each:
            side.append((caller, False, False))
        if len(on) == len(off) == each:
            return on + off
    raise AssertionError("no split")


def _served(results: list[tuple[str, int, int | None]]) -> dict[int | None, int]:
    assert {s for _, s, _ in results} == {200}, results
    return dict(Counter(v for _, _, v in results))


def test_canary_split_guard_rollback_completion_and_shadow(env: Any) -> None:
    e = env
    started = _cli(
        e, "promote", e.name, "2", "production", "--canary", "20", "--bake", "0", "--min-requests", "10"
    )
    assert started["rollout"]["weight"] == 20
    time.sleep(TTL_S + 0.5)  # one alias TTL: warm functions pick the split up

    # 500 requests: 100 callers x 5, alternating TF Serving (alias) and v2 (default label) requests
    calls = [(f"user-{c}", False, r % 2 == 1) for r in range(5) for c in range(100)]
    results = _many(e, calls)
    assert all(status == 200 for _, status, _ in results), [r for r in results if r[1] != 200][:3]
    by_caller: dict[str, set[int | None]] = {}
    for caller, _, version in results:
        by_caller.setdefault(caller, set()).add(version)
    flipped = {c: sorted(v, key=str) for c, v in by_caller.items() if len(v) != 1}
    assert not flipped, f"callers flipped between versions: {flipped}"
    # which callers the split sends to v2 is a hash of the rollout id and the caller: the share of these
    # 100 callers is Binomial(100, 0.2), outside 20 +- 5 % about one run in six; each caller's version is
    # exact
    rid = started["rollout"]["id"]
    expected = {caller: 2 if _on_candidate(rid, caller, 20) else 1 for caller in by_caller}
    wrong = {c: (v, expected[c]) for c, v in by_caller.items() if v != {expected[c]}}
    assert not wrong, f"callers served against the split (served, expected): {wrong}"
    share = sum(1 for _, _, v in results if v == 2) / len(results)
    assert 0.05 <= share <= 0.4, share  # and the split is the 20 % asked for, not another weight
    print(f"canary share served by v2: {share:.3f} of {len(results)} requests")

    # inject errors into v2: the callers it serves now send rows it cannot score
    on_v2 = [c for c, v in by_caller.items() if v == {2}]
    bad = _many(e, [(c, True, False) for c in on_v2] + [(c, True, False) for c in list(by_caller)[:40]])
    assert {s for _, s, v in bad if v == 2} == {500} and {s for _, s, v in bad if v == 1} == {200}
    (decision,) = _guard(e)
    assert decision["action"] == "rollback" and decision["applied"], decision
    assert decision["numbers"]["candidate"]["errors"] > 0
    rolled_back = time.monotonic()
    while True:  # how long until the warm function stops sending anyone to v2
        served = {v for _, _, v in _many(e, [(c, False, False) for c in on_v2[:8]])}
        if served == {1}:
            break
        assert time.monotonic() - rolled_back < 10 * TTL_S, "rollback did not reach the warm function"
    print(f"rollback reached the warm function after {time.monotonic() - rolled_back:.2f} s (TTL {TTL_S} s)")
    assert _cli(e, "rollout", "status", e.name, "production")["version"] == 1

    # a clean canary of v3, stepped by the guard to completion
    # p99 on this shared 2-vCPU machine swings several-fold between runs (and v3's first request per
    # environment includes its download): the clean canary is judged on errors, not a tight p99 ratio
    # each step is fed 15 callers of each version (the guard holds below --min-requests 10 of either):
    # a fixed set of callers would leave one version short now and then (at 70 %, 60 callers leave the
    # baseline under 10 about one run in 150)
    rid = _cli(e, "promote", e.name, "3", "production", "--canary", "20", "--step", "50", "--bake", "0",
               "--min-requests", "10", "--max-p99-ratio", "100")["rollout"]["id"]  # fmt: skip
    time.sleep(TTL_S + 0.5)
    assert _served(_many(e, _callers_of_each(rid, 20, 15))) == {1: 15, 3: 15}
    status = _cli(e, "rollout", "status", e.name, "production")
    assert status["versions"]["3"]["requests"] == 15 and status["versions"]["1"]["requests"] == 15
    decisions = _guard(e)
    assert [d["action"] for d in decisions] == ["step"], decisions
    time.sleep(TTL_S + 0.5)
    assert _served(_many(e, _callers_of_each(rid, 70, 15))) == {1: 15, 3: 15}
    decisions = _guard(e)
    assert [d["action"] for d in decisions] == ["complete"], decisions
    time.sleep(TTL_S + 0.5)
    assert {v for _, _, v in _many(e, [(f"user-{c}", False, False) for c in range(20)])} == {3}

    # a shadow of v2 (the faulty model) on production: responses stay v3's, agreement is recorded
    _cli(e, "shadow", e.name, "2", "--alias", "production", "--sample", "99")
    time.sleep(TTL_S + 0.5)
    _many(e, [(f"s-{c}", False, False) for c in range(10)])  # the candidate loads in the background
    time.sleep(1.0)
    shadowed = _many(e, [(f"s-{c}", c % 5 == 0, False) for c in range(60)])
    assert {(s, v) for _, s, v in shadowed if s == 200} == {(200, 3)}
    assert {s for c, s, _ in shadowed} == {200}  # poisoned rows fail the shadow, never the request
    res = _cli(e, "rollout", "status", e.name, "production")["shadow"]["results"]
    assert res["rows_compared"] > 0 and res["failed"] > 0 and 0.0 <= res["argmax_agreement"] <= 1.0
    print(f"shadow: {res}")


def test_capture_masked_sample_labels_and_live_accuracy(
    env: Any, reference_export: Path, tmp_path: Path
) -> None:
    import shutil

    import orjson

    e = env
    name = f"{e.name}-cap"
    sensitive = tmp_path / "sensitive"
    shutil.copytree(reference_export, sensitive)
    meta = orjson.loads((sensitive / "metadata.json").read_bytes())
    meta["sensitive_features"] = ["f0"]
    (sensitive / "metadata.json").write_bytes(orjson.dumps(meta))
    assert e.registry.publish(sensitive, name, source="recorded") == 1
    e.registry.promote(name, 1, "production")
    _cli(e, "capture", name, "--alias", "production", "--sample", "10")
    time.sleep(TTL_S + 0.5)
    api = e.stack["api_url"]
    rng = np.random.default_rng(11)

    def one(i: int) -> tuple[str, int, float]:
        x = rng.normal(size=(1, 100)).astype(np.float32)
        status, headers, raw = api_request(
            f"{api}/v1/models/{name}/labels/production:predict",
            json.dumps({"instances": x.tolist()}).encode(),
            "POST",
            {"Content-Type": "application/json"},
        )
        assert status == 200, raw
        return headers["x-maas-request-id"], int(np.argmax(json.loads(raw)["predictions"][0])), float(x[0, 0])

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(one, range(300)))
    records = []
    keys = [
        o["Key"]
        for page in e.s3.get_paginator("list_objects_v2").paginate(
            Bucket=e.audit, Prefix=f"capture/{name}/1/"
        )
        for o in page.get("Contents", ())
    ]
    for key in keys:
        body = e.s3.get_object(Bucket=e.audit, Key=key)["Body"].read()
        records += [orjson.loads(line) for line in body.splitlines() if line.strip()]
    assert 10 <= len(records) <= 55, len(records)  # 10 % of 300 (30, sd 5.2)
    assert all(r["inputs"][0]["f0"] == "*****" and isinstance(r["inputs"][0]["f1"], float) for r in records)
    enc = e.s3.head_object(Bucket=e.audit, Key=keys[0]).get("ServerSideEncryption")
    print(f"captured {len(records)} of 300 requests in {len(keys)} objects, SSE {enc}")
    labels = tmp_path / "labels.jsonl"
    with labels.open("w") as fh:
        for rid, predicted, x0 in answers:
            group = "a" if x0 >= 0 else "b"
            label = predicted if group == "a" else (predicted + 1) % 10
            fh.write(json.dumps({"request_id": rid, "label": str(label), "group": group}) + "\n")
    assert _cli(e, "labels", name, "--from", str(labels))["labels"] == 300
    report = _cli(e, "live-accuracy", name)
    entry = report["versions"]["1"]
    assert entry["labelled"] == len(records)
    assert entry["groups"]["a"]["accuracy"] == 1.0 and entry["groups"]["b"]["accuracy"] == 0.0
    print(f"live accuracy: {entry}")
