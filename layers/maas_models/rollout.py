"""Weighted aliases: a canary rollout stored in the alias pointer object (the record and the split
itself: maas_models.rollout_record).

An alias record may carry a ``rollout`` block next to its ``version`` (the baseline)::

    {"version": 1, "updated_at", "by", "reason",
     "rollout": {"id", "candidate": 2, "weight": 20, "steps": [20, 50], "step": 0,
                 "bake_minutes": 10, "thresholds": {...}, "started_at", "step_started_at", "by",
                 "shadow": {"candidate": 3, "sample": 10}?}}

Readers that know nothing of rollouts still see ``version`` (the baseline), so old functions keep
serving the baseline during a rollout. Every change is a read-modify-write of that one object guarded
by an S3 conditional write (``If-Match`` on the ETag read, ``If-None-Match: *`` when the alias is new):
of two concurrent promote/abort/complete calls exactly one wins and the loser gets RolloutConflict,
so the last state is always one of the intended ones. LocalStack and moto honour both headers.

Traffic split: ``bucket(key, rollout_id)`` hashes the sticky key (caller id, API key or
``X-Maas-Sticky-Key``) into 0..9999; keys below ``weight * 100`` go to the candidate. The hash does not
depend on the weight, so stepping 10 -> 50 keeps the first 10 % of callers on the candidate.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from maas_models.errors import ModelNotFound, PromotionRefused
from maas_models.naming import validate_alias, validate_name, validate_version
from maas_models.registry import PRODUCTION, Registry, check_gates, default_actor, utc_now
from maas_models.registry_reader import ALIASES_DIR
from maas_models.rollout_record import (
    BUCKETS,
    CAPTURE,
    ROLLOUT,
    Rollout,
    RolloutConflict,
    RolloutError,
    Thresholds,
    bucket,
    linear_steps,
    parse_time,
    pick,
    validate_percent,
)
from maas_models.s3 import PRECONDITION_CODES, error_code, storage_errors


class Rollouts:
    """Start, inspect, step, complete and abort rollouts on a registry's aliases (boto3; CLI and guard)."""

    def __init__(self, registry: Registry, *, audit: Any = None) -> None:
        self.registry = registry
        self._audit = audit

    # ---- conditional read / write of the alias object ---------------------------------------------
    def _key(self, name: str, alias: str) -> str:
        return self.registry.key(name, ALIASES_DIR, f"{alias}.json")

    def read(self, name: str, alias: str) -> tuple[dict[str, Any] | None, str | None]:
        """(alias record, its ETag), or (None, None) when the alias does not exist."""
        name, alias = validate_name(name), validate_alias(alias)
        try:
            obj = self.registry.s3.get_object(Bucket=self.registry.bucket, Key=self._key(name, alias))
        except storage_errors() as exc:
            if error_code(exc) in ("NoSuchKey", "404"):
                return None, None
            raise self.registry._unavailable(exc, f"reading alias {name}@{alias}") from exc
        record = orjson.loads(obj["Body"].read())
        return record, str(obj["ETag"])

    def write(self, name: str, alias: str, record: dict[str, Any], etag: str | None) -> None:
        """Replace the alias only if it still has ETag etag (create only if absent when etag is None)."""
        cond = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self.registry.s3.put_object(
                Bucket=self.registry.bucket,
                Key=self._key(name, alias),
                Body=orjson.dumps(record),
                ContentType="application/json",
                **cond,
            )
        except storage_errors() as exc:
            if error_code(exc) in PRECONDITION_CODES:
                raise RolloutConflict(
                    f"{name}@{alias} changed while this request was being applied; nothing was written "
                    "(read `maas models rollout status` and retry)"
                ) from exc
            raise self.registry._unavailable(exc, f"writing alias {name}@{alias}") from exc

    def _record_event(self, event: dict[str, Any]) -> None:
        hook = self._audit or self.registry._audit or self.registry._s3_audit
        try:
            hook(event)
        except storage_errors() as exc:
            raise self.registry._unavailable(exc, "recording the rollout audit event") from exc

    def _event(self, kind: str, name: str, alias: str, version: int, actor: str, **extra: Any) -> None:
        self._record_event(
            {
                "time": utc_now(),
                "event": kind,
                "model": name,
                "version": version,
                "alias": alias,
                "actor": actor,
                "override": bool(extra.pop("override", False)),
                "reason": extra.pop("reason", None),
                "gate_failures": extra.pop("gate_failures", []),
                **extra,
            }
        )

    # ---- operations ---------------------------------------------------------------------------------
    def start(
        self,
        name: str,
        version: int | str,
        alias: str,
        *,
        canary: int,
        bake_minutes: float = 10.0,
        step: int | None = None,
        thresholds: dict[str, Any] | None = None,
        override: bool = False,
        reason: str | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Split alias between its current version and `version` (canary % of sticky keys)."""
        name, ver, alias = validate_name(name), validate_version(version), validate_alias(alias)
        validate_percent(canary)
        if step is not None:
            validate_percent(step, "step percentage")
        if bake_minutes < 0:
            raise RolloutError(f"bake minutes must be >= 0, got {bake_minutes}")
        manifest = self.registry.manifest(name, ver)  # ModelNotFound when the candidate is missing
        record, etag = self.read(name, alias)
        if record is None:
            raise ModelNotFound(
                f"model {name!r} has no alias {alias!r}: a canary splits an existing alias; "
                f"promote a first version with `maas models promote {name} VERSION {alias}`"
            )
        if record.get(ROLLOUT):
            current = record[ROLLOUT]
            raise RolloutConflict(
                f"{name}@{alias} already has a rollout in progress (candidate {current.get('candidate')} "
                f"at {current.get('weight')} %); complete or abort it first"
            )
        if int(record["version"]) == ver:
            raise RolloutError(f"{name}@{alias} already serves version {ver}")
        failures = check_gates(manifest) if alias == PRODUCTION else []
        if override and not (reason and reason.strip()):
            raise PromotionRefused("an override needs a non-empty reason")
        if failures and not override:
            raise PromotionRefused(
                f"{name}:{ver} may not become a canary of {alias}: "
                + "; ".join(failures)
                + " (override with a reason to start anyway)"
            )
        who = actor or default_actor()
        now = utc_now()
        rollout = Rollout(
            candidate=ver,
            weight=canary,
            steps=linear_steps(canary, step),
            bake_minutes=float(bake_minutes),
            thresholds=Thresholds.from_dict(thresholds),
            started_at=now,
            step_started_at=now,
            by=who,
            id=uuid.uuid4().hex[:12],
        )
        self._event(
            "canary_start",
            name,
            alias,
            ver,
            who,
            override=bool(failures),
            reason=reason,
            gate_failures=failures,
            previous_version=int(record["version"]),
            weight=canary,
        )
        new = {**record, ROLLOUT: rollout.to_dict(), "updated_at": now, "by": who}
        self.write(name, alias, new, etag)
        return new

    def status(self, name: str, alias: str) -> dict[str, Any]:
        record, _ = self.read(name, alias)
        if record is None:
            raise ModelNotFound(f"model {name!r} has no alias {alias!r}")
        out: dict[str, Any] = {"name": name, "alias": alias, "version": int(record["version"])}
        block = record.get(ROLLOUT)
        if block:
            rollout = Rollout.from_dict(block)
            out["rollout"] = {
                **rollout.to_dict(),
                "weights": {
                    str(record["version"]): 100 - rollout.weight,
                    str(rollout.candidate): rollout.weight,
                },
                "bake_left_seconds": round(rollout.bake_left_seconds(), 1),
            }
        return out

    def _require(self, name: str, alias: str, rollout_id: str | None) -> tuple[dict[str, Any], str, Rollout]:
        record, etag = self.read(name, alias)
        if record is None:
            raise ModelNotFound(f"model {name!r} has no alias {alias!r}")
        block = record.get(ROLLOUT)
        if not block:
            raise RolloutError(f"{name}@{alias} has no rollout in progress")
        rollout = Rollout.from_dict(block)
        if rollout_id is not None and rollout.id != rollout_id:
            raise RolloutConflict(f"{name}@{alias}: rollout {rollout_id} is over (now {rollout.id})")
        assert etag is not None
        return record, etag, rollout

    def abort(
        self,
        name: str,
        alias: str,
        *,
        reason: str | None = None,
        actor: str | None = None,
        rollout_id: str | None = None,
        numbers: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """All traffic back to the baseline; the candidate keeps its version, the rollout block goes."""
        return self._finish(name, alias, "canary_rollback", False, reason, actor, rollout_id, numbers)

    def complete(
        self,
        name: str,
        alias: str,
        *,
        reason: str | None = None,
        actor: str | None = None,
        rollout_id: str | None = None,
        numbers: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The candidate becomes the alias's only version (a full promotion; gates were checked at start)."""
        return self._finish(name, alias, "canary_complete", True, reason, actor, rollout_id, numbers)

    def _finish(
        self,
        name: str,
        alias: str,
        event: str,
        promote: bool,
        reason: str | None,
        actor: str | None,
        rollout_id: str | None,
        numbers: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """End the rollout: the rollout block goes, and the alias moves to the candidate if `promote`."""
        record, etag, rollout = self._require(name, alias, rollout_id)
        who = actor or default_actor()
        before = int(record["version"])
        new = {k: v for k, v in record.items() if k != ROLLOUT}
        new.update(
            version=rollout.candidate if promote else before, updated_at=utc_now(), by=who, reason=reason
        )
        self.write(name, alias, new, etag)
        versions = {"previous_version": before} if promote else {"baseline": before, "weight": rollout.weight}
        self._event(event, name, alias, rollout.candidate, who, reason=reason, numbers=numbers, **versions)
        return new

    def advance(
        self,
        name: str,
        alias: str,
        *,
        actor: str | None = None,
        rollout_id: str | None = None,
        numbers: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Next step of a linear rollout, or completion after the last one."""
        record, etag, rollout = self._require(name, alias, rollout_id)
        if rollout.step + 1 >= len(rollout.steps):
            return self.complete(
                name, alias, reason="bake ended healthy", actor=actor, rollout_id=rollout.id, numbers=numbers
            )
        who = actor or default_actor()
        nxt = Rollout.from_dict(
            {
                **rollout.to_dict(),
                "step": rollout.step + 1,
                "weight": rollout.steps[rollout.step + 1],
                "step_started_at": utc_now(),
            }
        )
        new = {**record, ROLLOUT: nxt.to_dict(), "updated_at": utc_now(), "by": who}
        self.write(name, alias, new, etag)
        self._event(
            "canary_step",
            name,
            alias,
            rollout.candidate,
            who,
            reason="bake ended healthy",
            weight=nxt.weight,
            previous_weight=rollout.weight,
            numbers=numbers,
        )
        return new

    def active(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(model, alias, record) of every alias with a rollout or a shadow in progress."""
        out = []
        for model in self.registry.list_models():
            for alias in model["aliases"]:
                record, _ = self.read(model["name"], alias)
                if record and (record.get(ROLLOUT) or record.get("shadow")):
                    out.append((model["name"], alias, record))
        return out

    def set_shadow(
        self, name: str, candidate: int | str, alias: str, *, sample: int, actor: str | None = None
    ) -> dict[str, Any]:
        """Score `sample` % of the alias's requests with candidate too (results never returned)."""
        name, ver, alias = validate_name(name), validate_version(candidate), validate_alias(alias)
        validate_percent(sample, "shadow sample percentage")
        self.registry.manifest(name, ver)
        record, etag = self.read(name, alias)
        if record is None:
            raise ModelNotFound(f"model {name!r} has no alias {alias!r}")
        if int(record["version"]) == ver:
            raise RolloutError(f"{name}@{alias} already serves version {ver}: shadow another version")
        who = actor or default_actor()
        shadow = {"candidate": ver, "sample": sample, "started_at": utc_now(), "by": who}
        new = {**record, "shadow": shadow, "updated_at": utc_now()}
        self.write(name, alias, new, etag)
        self._event("shadow_start", name, alias, ver, who, sample=sample)
        return new

    def set_capture(
        self, name: str, alias: str, *, sample: int | None, actor: str | None = None
    ) -> dict[str, Any]:
        """Opt the alias in to data capture of `sample` % of its requests (None: off, the default)."""
        name, alias = validate_name(name), validate_alias(alias)
        if sample is not None:
            validate_percent(sample, "capture sample percentage")
        record, etag = self.read(name, alias)
        if record is None:
            raise ModelNotFound(f"model {name!r} has no alias {alias!r}")
        new = {k: v for k, v in record.items() if k != CAPTURE}
        if sample is not None:
            new[CAPTURE] = {"sample": sample, "since": utc_now()}
        self.write(name, alias, new, etag)
        who = actor or default_actor()
        self._event("capture_on" if sample else "capture_off", name, alias, int(record["version"]), who)
        return new

    def clear_shadow(self, name: str, alias: str, *, actor: str | None = None) -> dict[str, Any]:
        record, etag = self.read(name, alias)
        if record is None or not record.get("shadow"):
            raise RolloutError(f"{name}@{alias} has no shadow")
        new = {k: v for k, v in record.items() if k != "shadow"}
        self.write(name, alias, new, etag)
        self._event("shadow_stop", name, alias, int(record["shadow"]["candidate"]), actor or default_actor())
        return new


__all__ = [
    "BUCKETS",
    "CAPTURE",
    "ROLLOUT",
    "Rollout",
    "RolloutConflict",
    "RolloutError",
    "Rollouts",
    "Thresholds",
    "bucket",
    "linear_steps",
    "parse_time",
    "pick",
    "validate_percent",
]
