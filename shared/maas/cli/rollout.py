"""`maas models promote --canary`, `maas models rollout status|abort|complete|evaluate`, `maas models shadow`.

Canary rollouts and shadows on an alias (``maas_models.rollout``); registered by ``maas.cli.models``.
Every change is a conditional write of the alias object and an audit record.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_canary_options(p: argparse.ArgumentParser) -> None:
    """Options `promote` gains: --canary starts a rollout instead of moving the alias."""
    p.add_argument(
        "--canary",
        type=int,
        metavar="PERCENT",
        help="split the alias: PERCENT %% of callers to VERSION (1-99)",
    )
    p.add_argument("--bake", type=float, default=10.0, metavar="MINUTES", help="bake time per step (10)")
    p.add_argument("--step", type=int, metavar="PERCENT", help="linear shifting: add PERCENT after each bake")
    p.add_argument("--max-error-rate-delta", type=float, help="guard threshold (default 0.02)")
    p.add_argument("--max-p99-ratio", type=float, help="guard threshold (default 2.0)")
    p.add_argument("--max-disagreement", type=float, help="guard threshold on shadow disagreement (0.1)")
    p.add_argument("--min-requests", type=int, help="requests per version before the guard decides (20)")
    p.add_argument("--min-live-accuracy", type=float, help="guard threshold on joined ground truth (off)")
    p.add_argument(
        "--require-shadow",
        action="store_true",
        help="refuse unless a shadow of VERSION on the alias compared >= min-requests rows within "
        "max-disagreement",
    )


def register(actions: Any, common: Any, run: Any, registry: Any, emit: Any) -> None:
    """Add `rollout` and `shadow` to `maas models` (helpers passed in to avoid an import cycle)."""
    p = actions.add_parser(
        "rollout",
        help="status, abort or complete a canary rollout on an alias",
        description="status shows weights, bake time left and per-version request count, error rate, "
        "p50/p99 latency and shadow agreement; abort sends all traffic back to the baseline; complete "
        "makes the candidate the alias's only version; evaluate runs the guard once, here.",
    )
    p.add_argument("op", choices=("status", "abort", "complete", "evaluate"))
    p.add_argument("name", help="model name")
    p.add_argument("alias", help="alias name")
    p.add_argument("--reason", help="why (recorded in the audit trail)")
    p.add_argument("--actor", help="who (default: MAAS_ACTOR or the user name)")
    common(p)
    p.set_defaults(func=lambda args: run(args, lambda: _rollout(args, registry(args), emit)))

    p = actions.add_parser(
        "shadow",
        help="score a sample of an alias's requests with a candidate too (responses unchanged)",
    )
    p.add_argument("name", help="model name")
    p.add_argument("candidate", help="candidate version")
    p.add_argument("--alias", required=True, help="the alias whose requests are mirrored")
    p.add_argument("--sample", type=int, default=10, metavar="PERCENT", help="share of requests (10)")
    p.add_argument("--stop", action="store_true", help="end the shadow instead")
    p.add_argument("--actor", help="who (default: MAAS_ACTOR or the user name)")
    common(p)
    p.set_defaults(func=lambda args: run(args, lambda: _shadow(args, registry(args), emit)))


def register_capture(actions: Any, common: Any, run: Any, registry: Any, emit: Any) -> None:
    p = actions.add_parser(
        "capture",
        help="opt an alias in to (or out of) data capture of a sample of its requests",
        description="Captured records (request id, inputs with the manifest's sensitive features masked, "
        "outputs, latency) go to capture/<model>/<version>/yyyy/mm/dd/hh/ in the audit bucket; default off.",
    )
    p.add_argument("name", help="model name")
    p.add_argument("--alias", required=True, help="alias whose requests are captured")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--sample", type=int, metavar="PERCENT", help="share of requests to capture (1-99)")
    group.add_argument("--off", action="store_true", help="stop capturing")
    p.add_argument("--actor", help="who (default: MAAS_ACTOR or the user name)")
    common(p)
    p.set_defaults(func=lambda args: run(args, lambda: _capture(args, registry(args), emit)))

    p = actions.add_parser("labels", help="upload ground-truth labels keyed by request id")
    p.add_argument("name", help="model name")
    p.add_argument("--from", dest="source", required=True, help="JSONL or CSV: request_id, label[, group]")
    common(p)
    p.set_defaults(func=lambda args: run(args, lambda: _labels(args, registry(args), emit)))

    p = actions.add_parser(
        "live-accuracy", help="join captured predictions with uploaded labels: accuracy per version and group"
    )
    p.add_argument("name", help="model name")
    common(p)
    p.set_defaults(func=lambda args: run(args, lambda: _live(args, registry(args), emit)))


def _audit_bucket() -> str:
    from maas_models.errors import ModelUnavailable

    from maas import settings

    bucket = settings.env_str(settings.AUDIT_BUCKET)
    if not bucket:
        raise ModelUnavailable("no audit bucket: set MAAS_AUDIT_BUCKET or use --local")
    return bucket


def _capture(args: argparse.Namespace, reg: Any, emit: Any) -> int:
    sample = None if args.off else args.sample
    record = _rollouts(reg).set_capture(args.name, args.alias, sample=sample, actor=args.actor)
    text = f"{args.name}@{args.alias}: " + (f"capturing {sample} % of requests" if sample else "capture off")
    emit(args, {"name": args.name, "alias": args.alias, **record}, text)
    return 0


def _labels(args: argparse.Namespace, reg: Any, emit: Any) -> int:
    from maas_models.naming import validate_name

    from maas.capture.join import read_labels, upload_labels

    rows = read_labels(args.source)
    key = upload_labels(reg.s3, _audit_bucket(), validate_name(args.name), rows)
    emit(args, {"name": args.name, "labels": len(rows), "key": key}, f"uploaded {len(rows)} labels to {key}")
    return 0


def _live(args: argparse.Namespace, reg: Any, emit: Any) -> int:
    from maas_models.naming import validate_name

    from maas.capture.join import live_accuracy

    name = validate_name(args.name)
    labels = {v: list(reg.manifest(name, v).class_labels) for v in reg.versions(name)}
    out = live_accuracy(reg.s3, _audit_bucket(), name, labels)
    lines = [f"{name}: live accuracy ({out['unmatched_labels']} labels without a captured request)"]
    for version, entry in sorted(out["versions"].items()):
        acc = "-" if entry["accuracy"] is None else f"{entry['accuracy']:.2%}"
        lines.append(f"  v{version}: {acc} of {entry['labelled']} labelled rows")
        for group, g in sorted((entry.get("groups") or {}).items()):
            lines.append(f"    {group}: {g['accuracy']:.2%} of {g['labelled']}")
    emit(args, out, "\n".join(lines))
    return 0


def _rollouts(reg: Any) -> Any:
    from maas_models.rollout import Rollouts

    from maas.rollout.entry import rollout_audit_hook

    return Rollouts(reg, audit=_hook(rollout_audit_hook))


def _hook(factory: Any) -> Any:
    """Audit-trail hook when MAAS_AUDIT_BUCKET is set; else the registry's own audit sink."""
    from maas import settings

    if not settings.env_str(settings.AUDIT_BUCKET):
        return None
    from maas.rai.audit import AuditTrail

    return factory(AuditTrail(emit_log=False))


def start_canary(args: argparse.Namespace, reg: Any, emit: Any) -> int:
    thresholds = {
        k: v
        for k, v in {
            "max_error_rate_delta": args.max_error_rate_delta,
            "max_p99_ratio": args.max_p99_ratio,
            "max_disagreement": args.max_disagreement,
            "min_requests": args.min_requests,
            "min_live_accuracy": args.min_live_accuracy,
        }.items()
        if v is not None
    }
    if args.require_shadow:
        _check_shadow(reg, args.name, args.alias, int(args.version), thresholds)
    record = _rollouts(reg).start(
        args.name,
        args.version,
        args.alias,
        canary=args.canary,
        bake_minutes=args.bake,
        step=args.step,
        thresholds=thresholds,
        override=args.override,
        reason=args.reason,
        actor=args.actor,
    )
    r = record["rollout"]
    emit(
        args,
        {"name": args.name, "alias": args.alias, **record},
        f"{args.name}@{args.alias}: version {record['version']} {100 - r['weight']} %, "
        f"candidate {r['candidate']} {r['weight']} % (steps {r['steps']}, bake {r['bake_minutes']:g} min)",
    )
    return 0


def _check_shadow(reg: Any, name: str, alias: str, version: int, thresholds: dict[str, Any]) -> None:
    """--require-shadow: the candidate must have shadowed the alias cleanly before any traffic moves."""
    from maas_models.rollout import RolloutError, Thresholds

    t = Thresholds.from_dict(thresholds)
    shadow = status_with_stats(reg, name, alias).get("shadow") or {}
    res = shadow.get("results") or {}
    if int(shadow.get("candidate", 0)) != version or res.get("rows_compared", 0) < t.min_requests:
        raise RolloutError(
            f"{name}@{alias}: --require-shadow needs a shadow of version {version} with at least "
            f"{t.min_requests} compared rows (`maas models shadow {name} {version} --alias {alias}`)"
        )
    if res.get("failed") or float(res.get("disagreement") or 0.0) > t.max_disagreement:
        raise RolloutError(
            f"{name}@{alias}: the shadow of version {version} disagreed on {res.get('disagreement'):.2%} "
            f"of rows (max {t.max_disagreement:.2%}) and failed {res.get('failed', 0)} times"
        )


def refuse_plain_promote_during_rollout(reg: Any, name: str, alias: str) -> None:
    """A plain promote would silently drop a rollout in progress: refuse it (complete or abort first)."""
    from maas_models.rollout import ROLLOUT, RolloutConflict, Rollouts

    record, _ = Rollouts(reg).read(name, alias)
    if record and record.get(ROLLOUT):
        raise RolloutConflict(
            f"{name}@{alias} has a rollout in progress (candidate {record[ROLLOUT]['candidate']}); "
            "`maas models rollout complete|abort` it first"
        )


def status_with_stats(reg: Any, name: str, alias: str) -> dict[str, Any]:
    from maas import settings
    from maas.rollout.stats import read_stats

    rollouts = _rollouts(reg)
    out: dict[str, Any] = rollouts.status(name, alias)
    bucket = settings.env_str(settings.AUDIT_BUCKET)
    record, _ = rollouts.read(name, alias)
    if bucket and out.get("rollout"):
        stats = read_stats(reg.s3, bucket, name, alias, out["rollout"]["id"])
        out["versions"] = {str(v): s.summary() for v, s in sorted(stats.items())}
    shadow = (record or {}).get("shadow")
    if shadow:
        out["shadow"] = dict(shadow)
        if bucket:
            sid = f"shadow-{shadow.get('started_at', '')}"
            stats = read_stats(reg.s3, bucket, name, alias, sid)
            got = stats.get(int(shadow["candidate"]))
            out["shadow"]["results"] = got.summary().get("shadow") if got else None
    return out


def _text(out: dict[str, Any]) -> str:
    lines = [f"{out['name']}@{out['alias']}: version {out['version']}"]
    r = out.get("rollout")
    if r:
        lines.append(
            f"rollout {r['id']}: candidate {r['candidate']} at {r['weight']} % (step {r['step'] + 1} of "
            f"{len(r['steps'])}), bake left {r['bake_left_seconds']:.0f} s, started {r['started_at']}"
        )
    else:
        lines.append("no rollout in progress")
    for version, s in (out.get("versions") or {}).items():
        rate = "-" if s["error_rate"] is None else f"{s['error_rate']:.2%}"
        p50 = "-" if s["p50_ms"] is None else f"{s['p50_ms']:.2f} ms"
        p99 = "-" if s["p99_ms"] is None else f"{s['p99_ms']:.2f} ms"
        lines.append(f"  v{version}: {s['requests']} requests, errors {rate}, p50 {p50}, p99 {p99}")
    sh = out.get("shadow")
    if sh:
        res = sh.get("results") or {}
        agreement = res.get("argmax_agreement")
        lines.append(
            f"shadow: candidate {sh['candidate']} on {sh['sample']} % of requests; "
            f"rows compared {res.get('rows_compared', 0)}, argmax agreement "
            f"{'-' if agreement is None else f'{agreement:.2%}'}, max |diff| {res.get('max_abs_diff', '-')}"
        )
    return "\n".join(lines)


def _rollout(args: argparse.Namespace, reg: Any, emit: Any) -> int:
    rollouts = _rollouts(reg)
    if args.op == "status":
        out = status_with_stats(reg, args.name, args.alias)
        emit(args, out, _text(out))
        return 0
    if args.op == "evaluate":
        from maas import settings
        from maas.rollout.entry import rollout_audit_hook
        from maas.rollout.guard import Guard

        hook = _hook(rollout_audit_hook) or (lambda event: None)
        guard = Guard(
            rollouts,
            reg.s3,
            settings.env_str(settings.AUDIT_BUCKET) or "",
            lambda d: hook({"event": "rollout_decision", "actor": "rollout-guard", **d}),
        )
        record, _ = rollouts.read(args.name, args.alias)
        if not record or not record.get("rollout"):
            from maas_models.rollout import RolloutError

            raise RolloutError(f"{args.name}@{args.alias} has no rollout in progress")
        decision = guard.evaluate_one(args.name, args.alias, record).to_dict()
        emit(args, decision, f"{decision['action']}: {'; '.join(decision['reasons'])}")
        return 0
    op = rollouts.abort if args.op == "abort" else rollouts.complete
    record = op(args.name, args.alias, reason=args.reason, actor=args.actor)
    emit(
        args,
        {"name": args.name, "alias": args.alias, **record},
        f"{args.name}@{args.alias} -> version {record['version']} ({args.op})",
    )
    return 0


def _shadow(args: argparse.Namespace, reg: Any, emit: Any) -> int:
    rollouts = _rollouts(reg)
    if args.stop:
        record = rollouts.clear_shadow(args.name, args.alias, actor=args.actor)
        text = f"{args.name}@{args.alias}: shadow stopped"
    else:
        record = rollouts.set_shadow(
            args.name, args.candidate, args.alias, sample=args.sample, actor=args.actor
        )
        text = f"{args.name}@{args.alias}: version {args.candidate} shadows {args.sample} % of requests"
    emit(args, {"name": args.name, "alias": args.alias, **record}, text)
    return 0
