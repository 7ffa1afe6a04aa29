"""The model registry: versions, aliases and manifests in the models bucket.

Layout (prefix defaults to "models/"):

    models/<name>/<version>/model.tflite, saved_model/..., model.keras?, card.*?
    models/<name>/<version>/_claim.json      the version-number claim (written first, kept forever)
    models/<name>/<version>/manifest.json    written last: its presence means "version complete"
    models/<name>/aliases/<alias>.json       {"version": N, "updated_at", "by", "reason"}

Version allocation is safe for concurrent publishers: a publisher takes number N by creating
`<N>/_claim.json` with `If-None-Match: *` (an S3 conditional write: exactly one writer wins; the
losers get 412 and try N+1) *before* uploading anything, so two publishers never write into the same
version directory. The manifest is then written with `If-None-Match: *` as well. Claims are kept
when a version is deleted, so a version number is never reused (caches keyed by name/version stay
valid). `latest` is the highest version that has a manifest.

Reading (versions, aliases, manifests, artifact downloads) is `maas_models.registry_reader`; `Registry`
extends it with publishing, promotion and deletion.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from maas_models.download import sha256_file
from maas_models.errors import (
    ExportMismatch,
    InvalidModelName,
    ModelError,
    ModelNotFound,
    PromotionRefused,
    VersionConflict,
)
from maas_models.manifest import MANIFEST_FILE, SCHEMA_VERSION, Manifest
from maas_models.naming import validate_alias, validate_name, validate_relpath, validate_version
from maas_models.registry_reader import ALIASES_DIR, RegistryReader
from maas_models.s3 import PRECONDITION_CODES, error_code, storage_errors
from maas_models.settings import LayerSettings

CLAIM_FILE = "_claim.json"
METADATA_FILE = "metadata.json"
PRODUCTION = "production"
AUDIT_PREFIX = "audit/promotions/"
MAX_CLAIM_ATTEMPTS = 1000
DEFAULT_ATOL = 1e-5

AuditHook = Callable[[dict[str, Any]], None]


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def default_actor() -> str:
    import getpass  # here: only writers need it, and the predict path's registry is read-only

    try:
        return os.environ.get("MAAS_ACTOR") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _local_files(local_dir: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(local_dir.rglob("*")):
        if path.is_symlink():
            raise InvalidModelName(f"refusing to publish symlink {path}")
        if not path.is_file():
            continue
        rel = path.relative_to(local_dir).as_posix()
        if rel in (METADATA_FILE, MANIFEST_FILE, CLAIM_FILE):
            continue
        yield validate_relpath(rel), path


def check_gates(manifest: Manifest) -> list[str]:
    """Reasons the version fails its promotion gates (empty when it passes or declares none)."""
    failures: list[str] = []
    fairness = manifest.fairness or {}
    gates = dict(fairness.get("gates") or {})
    min_acc = gates.get("min_accuracy")
    if min_acc is not None:
        acc = manifest.metrics.get("accuracy")
        if acc is None:
            failures.append(f"min_accuracy {min_acc} declared but no accuracy recorded")
        elif float(acc) < float(min_acc):
            failures.append(f"accuracy {float(acc):.4g} < min_accuracy {float(min_acc):.4g}")
    max_gap = gates.get("max_fairness_gap")
    if max_gap is not None:
        gaps = fairness.get("gaps")
        if not isinstance(gaps, dict) or not gaps:
            failures.append(f"max_fairness_gap {max_gap} declared but no fairness gaps recorded")
        else:
            for gap_name, value in sorted(_numeric_gaps(gaps)):
                if value > float(max_gap):
                    failures.append(f"{gap_name} {value:.4g} > max_fairness_gap {float(max_gap):.4g}")
    return failures


def _numeric_gaps(gaps: dict[str, Any], prefix: str = "") -> list[tuple[str, float]]:
    """Every number in the gaps block, nested blocks named `outer.inner`. Labels such as `worst_class`
    (strings) describe a gap rather than measure one, so they are not gated."""
    found: list[tuple[str, float]] = []
    for name, value in gaps.items():
        if isinstance(value, dict):
            found.extend(_numeric_gaps(value, f"{prefix}{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found.append((f"{prefix}{name}", float(value)))
    return found


class Registry(RegistryReader):
    """Publish, find, promote and delete model versions in the models bucket."""

    def __init__(
        self,
        bucket: str | None = None,
        prefix: str | None = None,
        s3: Any = None,
        *,
        audit: AuditHook | None = None,
        settings: LayerSettings | None = None,
    ) -> None:
        super().__init__(bucket, prefix, s3, settings=settings)
        self._audit = audit

    def _put_if_absent(self, key: str, body: bytes, what: str) -> bool:
        """Create key only if it does not exist (If-None-Match: *). False when someone else has it."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.s3.put_object(
                Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*", ContentType="application/json"
            )
            return True
        except ClientError as exc:
            if error_code(exc) in PRECONDITION_CODES:
                return False
            raise self._unavailable(exc, what) from exc
        except BotoCoreError as exc:
            raise self._unavailable(exc, what) from exc

    # ---- writing --------------------------------------------------------------------------------
    def publish(
        self,
        local_dir: str | Path,
        name: str,
        *,
        verify: bool = True,
        source: str = "auto",
        atol: float = DEFAULT_ATOL,
        actor: str | None = None,
    ) -> int:
        """Publish an export directory (export_keras / importer.prepare) as the next version of name.

        Verifies first (ExportMismatch on NaN or on outputs that differ from the source model), then
        claims a version number, uploads the artifacts and writes manifest.json last.
        source picks what the .tflite is compared with (see maas_models.verify.verify_export).
        """
        name = validate_name(name)
        src = Path(local_dir)
        meta_path = src / METADATA_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{src} has no {METADATA_FILE}: is it an export_keras() output?")
        metadata: dict[str, Any] = orjson.loads(meta_path.read_bytes())
        files = {rel: {"sha256": sha256_file(p), "size": p.stat().st_size} for rel, p in _local_files(src)}
        runtime = str(metadata.get("runtime") or ("litert" if "model.tflite" in files else "savedmodel"))
        if runtime == "litert" and "model.tflite" not in files:
            raise FileNotFoundError(f"{src}: runtime litert needs model.tflite")
        if runtime == "savedmodel" and "saved_model/saved_model.pb" not in files:
            raise FileNotFoundError(f"{src}: runtime savedmodel needs saved_model/saved_model.pb")
        check = dict(metadata.get("export_check") or {})
        if verify:
            from maas_models.verify import verify_export

            check.update(verify_export(src, metadata, atol=atol, source=source))
        check.pop("expected", None)
        card = metadata.get("model_card")
        if card is not None and card not in files:
            raise FileNotFoundError(f"{src}: model_card {card!r} is not among the files")

        manifest = {
            k: v
            for k, v in metadata.items()
            if k not in ("export_check", "schema_version", "name", "version", "files", "created_at")
        }
        manifest.update(
            {
                "schema_version": SCHEMA_VERSION,
                "name": name,
                "version": 0,  # set once a number is claimed
                "created_at": utc_now(),
                "runtime": runtime,
                "files": files,
                "model_card": card,
                "export_check": check,
                "published_by": actor or default_actor(),
            }
        )
        Manifest.from_dict(manifest)  # validate before a version number is spent
        claim = orjson.dumps({"by": actor or default_actor(), "at": utc_now(), "token": uuid.uuid4().hex})
        numbers = self._version_numbers(name)
        version = (numbers[-1] if numbers else 0) + 1
        for _ in range(MAX_CLAIM_ATTEMPTS):
            if self._put_if_absent(self.key(name, version, CLAIM_FILE), claim, f"claiming {name}:{version}"):
                break
            version += 1
        else:
            raise VersionConflict(f"could not claim a version of {name!r} after {MAX_CLAIM_ATTEMPTS} tries")

        manifest["version"] = version
        from botocore.exceptions import BotoCoreError, ClientError

        uploaded: list[str] = []
        try:
            for rel, path in _local_files(src):
                key = self.key(name, version, rel)
                uploaded.append(key)
                self.s3.upload_file(str(path), self.bucket, key)
        except BaseException as exc:
            # never visible (no manifest); removing the partial artifacts just saves the storage
            self._delete_quietly(uploaded)
            if isinstance(exc, ClientError | BotoCoreError | OSError):
                raise self._unavailable(exc, f"uploading {name}:{version}") from exc
            raise
        manifest["created_at"] = utc_now()  # the moment the version becomes complete
        body = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        if not self._put_if_absent(self.key(name, version, MANIFEST_FILE), body, f"writing {name}:{version}"):
            raise VersionConflict(f"{name}:{version} already has a manifest (claim was bypassed?)")
        return version

    def _delete_quietly(self, keys: list[str]) -> None:
        for key in keys:
            with contextlib.suppress(Exception):
                self.s3.delete_object(Bucket=self.bucket, Key=key)

    def promote(
        self,
        name: str,
        version: int | str,
        alias: str,
        *,
        override: bool = False,
        reason: str | None = None,
        actor: str | None = None,
        audit: AuditHook | None = None,
    ) -> dict[str, Any]:
        """Point alias at version. For "production" the manifest's gates apply (PromotionRefused),
        unless override=True with a non-empty reason; every production promotion and every override
        is recorded through the audit hook. Returns the alias record."""
        name, ver, alias = validate_name(name), validate_version(version), validate_alias(alias)
        manifest = self.manifest(name, ver)
        who = actor or default_actor()
        failures = check_gates(manifest) if alias == PRODUCTION else []
        if override and not (reason and reason.strip()):
            raise PromotionRefused("an override needs a non-empty reason")
        if failures and not override:
            raise PromotionRefused(
                f"{name}:{ver} may not become {alias}: "
                + "; ".join(failures)
                + " (override with a reason to promote anyway)"
            )
        previous = self.alias_record(name, alias)
        record = {"version": ver, "updated_at": utc_now(), "by": who, "reason": reason}
        if alias == PRODUCTION or override:
            # audited before the alias moves: a promotion that cannot be recorded does not happen
            event = {
                "time": record["updated_at"],
                "event": "promotion_override" if failures else "promotion",
                "model": name,
                "version": ver,
                "alias": alias,
                "previous_version": previous["version"] if previous else None,
                "actor": who,
                "override": bool(failures),
                "reason": reason,
                "gate_failures": failures,
            }
            try:
                (audit or self._audit or self._s3_audit)(event)
            except storage_errors() as exc:
                raise self._unavailable(exc, f"recording the audit of {name}:{ver} -> {alias}") from exc
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=self.key(name, ALIASES_DIR, f"{alias}.json"),
                Body=orjson.dumps(record),
                ContentType="application/json",
            )
        except storage_errors() as exc:
            raise self._unavailable(exc, f"promoting {name}:{ver} to {alias}") from exc
        return record

    def _s3_audit(self, event: dict[str, Any]) -> None:
        """Default audit sink: one JSON-lines object per record under audit/promotions/ (models bucket)."""
        now = datetime.now(UTC)
        key = (
            f"{AUDIT_PREFIX}{now:%Y/%m/%d}/{now:%H%M%S%f}-{event['model']}-{event['alias']}-"
            f"{uuid.uuid4().hex[:8]}.jsonl"
        )
        self.s3.put_object(
            Bucket=self.bucket, Key=key, Body=orjson.dumps(event) + b"\n", ContentType="application/x-ndjson"
        )

    def delete(self, name: str, version: int | str, *, force: bool = False) -> None:
        """Delete a version: manifest first (it stops being complete at once), then its artifacts.

        The version's claim is kept so the number is never reused. Refuses (VersionConflict) while
        an alias points at it, unless force=True, which deletes those aliases too.
        """
        name, ver = validate_name(name), validate_version(version)
        self.manifest(name, ver)  # ModelNotFound if absent
        pointing = [a for a, v in self.aliases(name).items() if v == ver]
        if pointing and not force:
            raise VersionConflict(f"{name}:{ver} is the target of alias(es) {pointing}; move them or force")
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            for alias in pointing:
                self.s3.delete_object(Bucket=self.bucket, Key=self.key(name, ALIASES_DIR, f"{alias}.json"))
            self.s3.delete_object(Bucket=self.bucket, Key=self.key(name, ver, MANIFEST_FILE))
            self._manifests.pop((name, ver), None)
            keys, _ = self._list(self.key(name, ver) + "/")
            doomed = [k for k in keys if not k.endswith("/" + CLAIM_FILE)]
            for i in range(0, len(doomed), 1000):
                self.s3.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in doomed[i : i + 1000]], "Quiet": True},
                )
        except (ClientError, BotoCoreError) as exc:
            raise self._unavailable(exc, f"deleting {name}:{ver}") from exc

    def delete_alias(self, name: str, alias: str) -> None:
        name, alias = validate_name(name), validate_alias(alias)
        if self.alias_record(name, alias) is None:
            raise ModelNotFound(f"model {name!r} has no alias {alias!r}")
        self.s3.delete_object(Bucket=self.bucket, Key=self.key(name, ALIASES_DIR, f"{alias}.json"))


__all__ = [
    "ExportMismatch",
    "ModelError",
    "Registry",
    "check_gates",
    "utc_now",
]
