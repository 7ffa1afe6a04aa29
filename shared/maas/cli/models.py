"""`maas models list | show | import | publish | promote | delete | rollout | shadow`: the registry, CLI.

The bucket comes from --bucket or MAAS_MODELS_BUCKET; the endpoint from AWS_ENDPOINT_URL. With --local
both are taken from the running local stack (`maas local status`). Every command takes --json.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import orjson

from maas.cli import rollout as rollout_cli


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bucket", help="models bucket (default: MAAS_MODELS_BUCKET)")
    p.add_argument("--prefix", help="key prefix in the bucket (default: MAAS_MODELS_PREFIX or models/)")
    p.add_argument(
        "--local",
        action="store_true",
        help="use the local stack's endpoint and models bucket (maas local up)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list, show, publish, promote and delete model versions in the registry",
        description="The model registry in the models bucket: models/<name>/<version>/ with manifest.json "
        "written last, and aliases in models/<name>/aliases/<alias>.json.",
    )
    actions = parser.add_subparsers(dest="models_command", metavar="ACTION")
    actions.required = True

    p = actions.add_parser("list", help="every model with its complete versions and aliases")
    _common(p)
    p.set_defaults(func=_list)

    p = actions.add_parser(
        "show",
        help="the manifest of one version (default: latest)",
        description="Prints a summary, or the whole manifest.json with --json.",
    )
    p.add_argument("name", help="model name")
    p.add_argument("which", nargs="?", default=None, help="version number or alias (default: latest)")
    _common(p)
    p.set_defaults(func=_show)

    p = actions.add_parser(
        "publish",
        help="publish an export directory as the next version",
        description="Publishes a directory written by maas_models.export.export_keras (saved_model/, "
        "model.tflite, metadata.json). The LiteRT model is checked against the source model on probe inputs "
        "first; a NaN or a mismatch refuses the publish (exit status 1).",
    )
    p.add_argument("directory", help="export directory")
    p.add_argument("--name", required=True, help="model name (lowercase letters, digits, - and _)")
    p.add_argument(
        "--source",
        choices=("auto", "recorded", "savedmodel"),
        default="auto",
        help="what the .tflite is compared with: auto = recorded Keras outputs plus the SavedModel when "
        "TensorFlow is installed (default)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the LiteRT-vs-source check (not advised)")
    p.add_argument("--promote", metavar="ALIAS", help="also point this alias at the new version")
    p.add_argument("--actor", help="who publishes (default: MAAS_ACTOR or the user name)")
    _common(p)
    p.set_defaults(func=_publish)

    p = actions.add_parser(
        "import",
        help="import your own Keras model (.keras file or SavedModel directory) as the next version",
        description="Converts a .keras file, a Keras 3 model.export() directory or a tf.saved_model.save "
        "directory to LiteRT (builtin ops only), checks it against the source model on probe inputs built "
        "from its signature, and publishes it. String inputs, ops LiteRT lacks, or a gap above the "
        "tolerance refuse the import (exit status 1) and nothing is published. Needs TensorFlow.",
    )
    p.add_argument("path", help=".keras file or SavedModel directory")
    p.add_argument("--name", required=True, help="model name (lowercase letters, digits, - and _)")
    p.add_argument("--promote", metavar="ALIAS", help="also point this alias at the new version")
    p.add_argument(
        "--class-labels",
        action="append",
        metavar="[OUTPUT=]A,B,...",
        help="class labels of an output, in order (OUTPUT= needed when the model has several outputs)",
    )
    p.add_argument(
        "--feature-names",
        action="append",
        metavar="[INPUT=]A,B,...",
        help="column names of a rank-2 input (INPUT= needed when the model has several inputs)",
    )
    p.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance of the check (default 1e-5)")
    p.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance of the check (default 1e-4)")
    p.add_argument("--actor", help="who publishes (default: MAAS_ACTOR or the user name)")
    _common(p)
    p.set_defaults(func=_import)

    p = actions.add_parser(
        "promote",
        help="point an alias (production, staging, ...) at a version",
        description="Promotion to production applies the manifest's gates (min_accuracy, max_fairness_gap). "
        "A refused promotion can be forced with --override --reason; the override is audited.",
    )
    p.add_argument("name", help="model name")
    p.add_argument("version", help="version number")
    p.add_argument("alias", help="alias name, e.g. production")
    p.add_argument("--override", action="store_true", help="promote even when a gate fails (needs --reason)")
    p.add_argument("--reason", help="why (required with --override; recorded in the audit trail)")
    p.add_argument("--actor", help="who promotes (default: MAAS_ACTOR or the user name)")
    rollout_cli.add_canary_options(p)
    _common(p)
    p.set_defaults(func=_promote)

    rollout_cli.register(actions, _common, _run, _registry, _emit)
    rollout_cli.register_capture(actions, _common, _run, _registry, _emit)

    p = actions.add_parser(
        "delete",
        help="delete a version (its number is never reused)",
        description="Refused while an alias points at the version, unless --force (which removes the alias).",
    )
    p.add_argument("name", help="model name")
    p.add_argument("version", help="version number")
    p.add_argument("--force", action="store_true", help="also delete aliases that point at this version")
    _common(p)
    p.set_defaults(func=_delete)

    p = actions.add_parser(
        "export-reference",
        help="train the seeded reference model on synthetic data and export it (needs TensorFlow)",
    )
    p.add_argument("directory", help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_export_reference)


# ---- helpers -----------------------------------------------------------------------------------------
def _emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    if args.json:
        sys.stdout.write(
            orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
        )
    else:
        print(text)


def _registry(args: argparse.Namespace) -> Any:
    from maas_models import Registry

    bucket = args.bucket
    if args.local:
        from maas.local import status

        info = status()
        if not info.get("running"):
            raise SystemExit("maas models: the local stack is not running (run `maas local up`)")
        os.environ["AWS_ENDPOINT_URL"] = info["endpoint"]
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
        os.environ.setdefault("AWS_DEFAULT_REGION", info.get("region") or "us-east-1")
        bucket = bucket or (info.get("buckets") or {}).get("models")
        os.environ.setdefault("MAAS_AUDIT_BUCKET", (info.get("buckets") or {}).get("audit") or "")
    return Registry(bucket=bucket, prefix=args.prefix, audit=_audit_hook())


def _audit_hook() -> Any:
    """Promotions (and gate overrides) go to the audit trail in MAAS_AUDIT_BUCKET when it is set
    (`maas.rai.audit`); otherwise the registry's own record under audit/promotions/ in the models bucket."""
    from maas import settings

    bucket = settings.env_str(settings.AUDIT_BUCKET)
    if not bucket:
        return None
    from maas.rai.audit import AuditTrail, registry_audit_hook

    return registry_audit_hook(AuditTrail(bucket=bucket, emit_log=False), strict=True)


def _run(args: argparse.Namespace, action: Any) -> int:
    from maas_models.errors import ModelError

    try:
        return int(action() or 0)
    except (ModelError, FileNotFoundError, ValueError) as exc:
        status = getattr(exc, "status_code", 400)
        if getattr(args, "json", False):
            _emit(args, {"error": str(exc), "type": type(exc).__name__, "status": status}, "")
        else:
            print(f"maas models: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


# ---- commands ----------------------------------------------------------------------------------------
def _list(args: argparse.Namespace) -> int:
    def action() -> int:
        models = _registry(args).list_models()
        lines = [f"{'MODEL':<24} {'VERSIONS':<24} ALIASES"]
        for m in models:
            versions = ",".join(str(v) for v in m["versions"]) or "-"
            aliases = " ".join(f"{a}={v}" for a, v in m["aliases"].items()) or "-"
            lines.append(f"{m['name']:<24} {versions:<24} {aliases}")
        if not models:
            lines.append("(no models)")
        _emit(args, models, "\n".join(lines))
        return 0

    return _run(args, action)


def _show(args: argparse.Namespace) -> int:
    def action() -> int:
        reg = _registry(args)
        ref = reg.resolve(args.name, args.which)
        m = reg.manifest(ref)
        aliases = [a for a, v in reg.aliases(ref.name).items() if v == ref.version]
        text = "\n".join(
            [
                f"model:      {m.name}  version {m.version}"
                + (f"  ({', '.join(aliases)})" if aliases else ""),
                f"created:    {m.created_at}  by {m.raw.get('published_by', '?')}",
                f"runtime:    {m.runtime}   framework {m.raw.get('framework')}",
                *(f"input:      {_spec_line(s, s.feature_names, 'features', 5)}" for s in m.inputs),
                *(f"output:     {_spec_line(s, s.class_labels, 'classes', 10)}" for s in m.outputs),
                f"metrics:    { {k: v for k, v in m.metrics.items() if not isinstance(v, dict)} }",
                "files:      " + ", ".join(f"{k} ({v['size']} B)" for k, v in sorted(m.files.items())),
                f"model card: {m.model_card or '-'}",
            ]
        )
        _emit(args, {**m.raw, "aliases": aliases}, text)
        return 0

    return _run(args, action)


def _spec_line(spec: Any, names: tuple[str, ...], what: str, most: int) -> str:
    line = f"{spec.name} {spec.describe()}"
    if names:
        line += f"  {what} {', '.join(names[:most])}{', ...' if len(names) > most else ''}"
    return line


def _named_lists(values: list[str] | None, what: str) -> Any:
    """--class-labels/--feature-names: "A,B" (the only tensor) or "NAME=A,B" per tensor."""
    if not values:
        return None
    named = [v for v in values if "=" in v.split(",", 1)[0]]
    if not named and len(values) == 1:
        return [x.strip() for x in values[0].split(",")]
    if len(named) != len(values):
        raise ValueError(f"{what}: give every value as NAME=A,B,... when there is more than one")
    out: dict[str, list[str]] = {}
    for v in values:
        key, _, rest = v.partition("=")
        out[key.strip()] = [x.strip() for x in rest.split(",")]
    return out


def _import(args: argparse.Namespace) -> int:
    def action() -> int:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's C++ log lines are noise here
        from maas_models.importer import import_model

        result = import_model(
            args.path,
            args.name,
            registry=_registry(args),
            promote=args.promote,
            class_labels=_named_lists(args.class_labels, "--class-labels"),
            feature_names=_named_lists(args.feature_names, "--feature-names"),
            atol=args.atol,
            rtol=args.rtol,
            actor=args.actor,
        )
        sig = result.signature
        out: dict[str, Any] = {
            "name": result.name,
            "version": result.version,
            "alias": result.promoted,
            "inputs": [s.to_manifest() for s in sig.inputs],
            "outputs": [s.to_manifest() for s in sig.outputs],
            "export_check": result.check,
        }
        text = "\n".join(
            [
                f"imported {result.name} version {result.version}"
                + (f" as {result.promoted}" if result.promoted else ""),
                *(f"  input  {s.name} {s.describe()}" for s in sig.inputs),
                *(f"  output {s.name} {s.describe()}" for s in sig.outputs),
                f"  LiteRT vs source: max abs difference {result.check.get('max_abs_diff_keras', 0):.3g} "
                f"on {result.check.get('probe_rows')} probe rows",
            ]
        )
        _emit(args, out, text)
        return 0

    return _run(args, action)


def _publish(args: argparse.Namespace) -> int:
    def action() -> int:
        reg = _registry(args)
        version = reg.publish(
            args.directory, args.name, verify=not args.no_verify, source=args.source, actor=args.actor
        )
        out: dict[str, Any] = {"name": args.name, "version": version}
        text = f"published {args.name} version {version}"
        if args.promote:
            reg.promote(args.name, version, args.promote, actor=args.actor)
            out["alias"] = args.promote
            text += f" as {args.promote}"
        _emit(args, out, text)
        return 0

    return _run(args, action)


def _promote(args: argparse.Namespace) -> int:
    def action() -> int:
        reg = _registry(args)
        if args.canary is not None:
            return rollout_cli.start_canary(args, reg, _emit)
        rollout_cli.refuse_plain_promote_during_rollout(reg, args.name, args.alias)
        record = reg.promote(
            args.name, args.version, args.alias, override=args.override, reason=args.reason, actor=args.actor
        )
        _emit(
            args,
            {"name": args.name, "alias": args.alias, **record},
            f"{args.name}@{args.alias} -> version {record['version']}",
        )
        return 0

    return _run(args, action)


def _delete(args: argparse.Namespace) -> int:
    def action() -> int:
        _registry(args).delete(args.name, args.version, force=args.force)
        _emit(
            args,
            {"name": args.name, "version": int(args.version), "deleted": True},
            f"deleted {args.name} version {args.version}",
        )
        return 0

    return _run(args, action)


def _export_reference(args: argparse.Namespace) -> int:
    def action() -> int:
        from maas_models.export import export_reference

        out = export_reference(args.directory, seed=args.seed, epochs=args.epochs)
        _emit(args, {"directory": str(out)}, f"exported the reference model to {out}")
        return 0

    return _run(args, action)
