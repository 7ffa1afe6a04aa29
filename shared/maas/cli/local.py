"""`maas local up|down|status`: the embedded local AWS stack (LocalStack in host mode, no Docker)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "local",
        help="run the AWS stack locally (LocalStack in host mode + template.yaml; no Docker needed)",
        description=(
            "Run template.yaml on LocalStack in host mode on 127.0.0.1 (MAAS_LOCAL_PORT, default 4566), "
            "with each Lambda function executed by the AWS Lambda runtime client in the environment its "
            "Dockerfile builds (`maas local envs`). State lives in MAAS_LOCAL_DIR (default .localstack/)."
        ),
    )
    actions = parser.add_subparsers(dest="local_command", metavar="ACTION")
    actions.required = True

    up = actions.add_parser(
        "up",
        help="start LocalStack (creating its venv the first time) and deploy the stack",
        description="Idempotent: a second `up` changes nothing; a dead LocalStack is restarted.",
    )
    up.add_argument("--json", action="store_true", help="print the status as JSON")
    up.add_argument(
        "--existing",
        action="store_true",
        help="deploy into a LocalStack already listening on the port instead of starting one",
    )
    up.set_defaults(func=_up)

    down = actions.add_parser(
        "down", help="stop what `up` started (LocalStack and handler processes), remove state"
    )
    down.set_defaults(func=_down)

    status = actions.add_parser(
        "status",
        help="show whether the stack runs, its API URL, buckets and queues",
        description="Exit status 0 when running and deployed, 1 otherwise.",
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(func=_status)

    envs = actions.add_parser(
        "envs",
        help="build (or reuse) the image-equivalent environment of each function and the training job",
        description=(
            "Each environment is built the way its Dockerfile builds the image (base image's Python, "
            "exactly the extras it installs, the handler copied), cached in MAAS_LOCAL_ENVS_DIR "
            "(default .localstack/envs) by a hash of its inputs. Prints each one's python and size."
        ),
    )
    envs.add_argument("names", nargs="*", help="images to build (default: all)")
    envs.add_argument("--json", action="store_true", help="print the environments as JSON")
    envs.set_defaults(func=_envs)

    invoke = actions.add_parser(
        "invoke",
        help="run a function once, as `sam local invoke` does, without Docker",
        description=(
            "Runs FUNCTION's handler once in its image-equivalent environment (or, with --deployed, the "
            "function deployed in the local stack) with the environment variables template.yaml gives it, "
            "pointed at the running local stack. The response goes to stdout; logs and the REPORT line to "
            "stderr. Exit status 1 when the function errors or times out, 2 for bad input."
        ),
    )
    invoke.add_argument(
        "function", help="logical id in template.yaml (PredictFunction) or short name (predict)"
    )
    invoke.add_argument(
        "-e", "--event", help="event JSON file, or - for stdin (default: stdin), e.g. events/predict/*.json"
    )
    invoke.add_argument(
        "--env-vars", help='JSON overrides in SAM\'s format: {"PredictFunction": {"VAR": "v"}}'
    )
    invoke.add_argument(
        "--deployed", action="store_true", help="invoke the function deployed in the local stack"
    )
    invoke.add_argument("--json", action="store_true", help="print one JSON record (response, error, report)")
    invoke.set_defaults(func=_invoke)

    logs = actions.add_parser(
        "logs",
        help="print a function's CloudWatch Logs from the local stack, as `sam logs` does",
    )
    logs.add_argument(
        "function", help="logical id in template.yaml (PredictFunction) or short name (predict)"
    )
    logs.add_argument("--tail", action="store_true", help="keep printing new log events until Ctrl-C")
    logs.add_argument("--since", help="only events since then: 30s, 10m, 2h, 1d or an ISO time")
    logs.add_argument("--filter", dest="filter_text", help="only messages containing this text")
    logs.set_defaults(func=_logs)


def _print(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(info, indent=2, sort_keys=True))
        return
    state = "running" if info["running"] else "not running"
    print(f"LocalStack: {state} at {info['endpoint']} (region {info['region']}, stack {info['stack']})")
    if info.get("problem"):
        print(f"problem:    {info['problem']}")
    if info.get("api_url"):
        print(f"API:        {info['api_url']}")
        print(f"            try: curl {info['api_url']}/v2/health/live")
    for title, key in (("buckets", "buckets"), ("queues", "queues"), ("functions", "functions")):
        items = info.get(key) or {}
        if items:
            print(f"{title}:")
            for name, value in items.items():
                print(f"  {name:<16} {value}")
    if info["running"]:
        print(f"logs:       {info['log_file']} (LocalStack), {info['handler_logs']}/ (handlers)")


def _up(args: argparse.Namespace) -> int:
    from maas.local import LocalError, up

    try:
        info = up(existing=args.existing)
    except LocalError as exc:
        print(f"maas local up: {exc}", file=sys.stderr)
        return 1
    _print(info, args.json)
    return 0 if info["running"] or args.existing else 1


def _down(args: argparse.Namespace) -> int:
    from maas.local import LocalConfig, LocalError, down

    try:
        cfg = LocalConfig.from_env()
        stopped = down(cfg)
    except LocalError as exc:
        print(f"maas local down: {exc}", file=sys.stderr)
        return 1
    print(f"stopped LocalStack on port {cfg.port}" if stopped else f"nothing was running on port {cfg.port}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from maas.local import LocalError, status

    try:
        info = status()
    except LocalError as exc:
        print(f"maas local status: {exc}", file=sys.stderr)
        return 1
    _print(info, args.json)
    return 0 if info["running"] and not info.get("problem") else 1


def _envs(args: argparse.Namespace) -> int:
    from maas.local import LocalConfig, LocalError
    from maas.local.envs import Environments, installed_size_mb

    try:
        cfg = LocalConfig.from_env()
        built = Environments(
            cfg.project_root, cfg.envs_dir, lambda m: print(f"maas local: {m}", file=sys.stderr)
        )
        envs = built.ensure_all(args.names or None)
    except LocalError as exc:
        print(f"maas local envs: {exc}", file=sys.stderr)
        return 1
    rows: dict[str, dict[str, Any]] = {
        name: {
            **env.mapping(),
            "base": env.spec.base,
            "extras": list(env.spec.extras),
            "installed_mb": round(installed_size_mb(env), 1),
        }
        for name, env in envs.items()
    }
    if args.json:
        print(json.dumps(rows, indent=2, sort_keys=True))
    else:
        for name, row in rows.items():
            print(f"{name:<16} {row['installed_mb']:>7.1f} MB  [{','.join(row['extras'])}]  {row['python']}")
    return 0


def _invoke(args: argparse.Namespace) -> int:
    from maas.local.invoke import invoke

    return invoke(
        args.function, args.event, env_vars=args.env_vars, deployed=args.deployed, as_json=args.json
    )


def _logs(args: argparse.Namespace) -> int:
    from maas.local.invoke import logs

    return logs(args.function, tail=args.tail, since=args.since, filter_text=args.filter_text)
