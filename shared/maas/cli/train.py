"""`maas train submit|status|logs|run|validate`: training jobs on AWS Batch, or locally."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

import orjson


def _print_json(value: Any) -> None:
    print(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def register(subparsers: Any) -> None:
    train = subparsers.add_parser(
        "train",
        help="training jobs (AWS Batch or local)",
        description="Train models from a JSON spec (schema: maas.training.spec) on AWS Batch or locally.",
    )
    sub = train.add_subparsers(dest="train_command", metavar="SUBCOMMAND")
    sub.required = True

    p = sub.add_parser(
        "submit",
        help="submit a training job to AWS Batch",
        description="Validate the spec, then batch.submit_job with GPU resourceRequirements, a "
        "timeout and a retry strategy that retries spot reclaims (statusReason 'Host EC2*').",
    )
    p.add_argument(
        "--spec", required=True, help="spec file, s3:// URI or inline JSON (files are sent inline)"
    )
    p.add_argument("--queue", help="job queue (default $MAAS_TRAINING_JOB_QUEUE)")
    p.add_argument("--job-definition", help="job definition (default $MAAS_TRAINING_JOB_DEFINITION)")
    p.add_argument(
        "--gpus", type=int, default=1, help="GPUs for the job (default 1; 0 keeps the definition's)"
    )
    p.add_argument("--timeout", type=int, default=24 * 3600, help="seconds per attempt (default 86400)")
    p.add_argument(
        "--attempts", type=int, default=5, help="attempts, counting spot-reclaim retries (default 5)"
    )
    p.add_argument("--vcpus", type=int, help="override the definition's vCPUs")
    p.add_argument("--memory", type=int, help="override the definition's memory (MiB)")
    p.add_argument("--job-name", help="job name (default train-<model>-<UTC time>)")
    p.set_defaults(func=_submit)

    p = sub.add_parser(
        "status",
        help="show a training job's status",
        description="Status, reason and attempts (exit codes, log streams) of a Batch job.",
    )
    p.add_argument("job_id")
    p.set_defaults(func=_status)

    p = sub.add_parser(
        "logs",
        help="print a training job's logs",
        description="Print the job's CloudWatch Logs (log group /aws/batch/job).",
    )
    p.add_argument("job_id")
    p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    p.add_argument("--log-group", default="/aws/batch/job")
    p.set_defaults(func=_logs)

    p = sub.add_parser(
        "run",
        help="run the training entrypoint as a local process",
        description="Run `maas-train --spec ...` (the container's entrypoint) as a local "
        "process. With --local it talks to the local stack (LocalStack S3): AWS_ENDPOINT_URL "
        "and the models bucket come from `maas local status` unless already set.",
    )
    p.add_argument("--spec", required=True, help="spec file, s3:// URI or inline JSON")
    p.add_argument("--local", action="store_true", help="use the local AWS stack (LocalStack)")
    p.add_argument("--work-dir", help="local scratch dir")
    p.set_defaults(func=_run)

    p = sub.add_parser(
        "validate",
        help="validate a spec and print it with defaults filled in",
        description="Validate a training spec (file, s3:// URI or inline JSON).",
    )
    p.add_argument("--spec", required=True)
    p.set_defaults(func=_validate)


def _validate(args: argparse.Namespace) -> int:
    from maas.training.spec import SpecError, load_spec

    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        print(exc, file=sys.stderr)
        return 2
    _print_json(spec.to_dict())
    return 0


def _submit(args: argparse.Namespace) -> int:
    from maas.training.launch import LaunchError, submit
    from maas.training.spec import SpecError

    try:
        result = submit(
            args.spec,
            queue=args.queue,
            job_definition=args.job_definition,
            gpus=args.gpus,
            timeout_s=args.timeout,
            attempts=args.attempts,
            vcpus=args.vcpus,
            memory_mib=args.memory,
            job_name=args.job_name,
            pack_local_code=True,
        )
    except (SpecError, LaunchError) as exc:
        print(exc, file=sys.stderr)
        return 2
    _print_json(result)
    return 0


def _status(args: argparse.Namespace) -> int:
    from maas.training.launch import LaunchError, status

    try:
        _print_json(status(args.job_id))
    except LaunchError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def _logs(args: argparse.Namespace) -> int:
    from maas.training.launch import LaunchError, log_events

    try:
        for event in log_events(args.job_id, follow=args.follow, log_group=args.log_group):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(event["timestamp"] / 1000))
            print(f"{stamp} {event['message']}", flush=True)
    except LaunchError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def local_stack_env() -> dict[str, str]:
    """Environment for a process that talks to the local stack (endpoint, test credentials, buckets)."""
    env: dict[str, str] = {}
    status: dict[str, Any] = {}
    try:
        out = subprocess.run(
            [sys.executable, "-m", "maas", "local", "status", "--json"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        status = orjson.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else {}
    except (OSError, subprocess.TimeoutExpired, orjson.JSONDecodeError):
        status = {}
    port = os.environ.get("MAAS_LOCAL_PORT", "4566")
    env["AWS_ENDPOINT_URL"] = os.environ.get("AWS_ENDPOINT_URL") or str(
        status.get("endpoint") or f"http://127.0.0.1:{port}"
    )
    for key, value in (
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_DEFAULT_REGION", str(status.get("region") or "us-east-1")),
    ):
        env[key] = os.environ.get(key) or value
    buckets = status.get("buckets") or {}
    if not os.environ.get("MAAS_MODELS_BUCKET") and buckets.get("models"):
        env["MAAS_MODELS_BUCKET"] = str(buckets["models"])
    return env


def _run(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    if args.local:
        env.update(local_stack_env())
        print(f"maas train run: local stack at {env['AWS_ENDPOINT_URL']}", file=sys.stderr)
    cmd = [sys.executable, "-m", "maas.training", "--spec", args.spec]
    if args.work_dir:
        cmd += ["--work-dir", args.work_dir]
    proc = subprocess.Popen(cmd, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # forward as SIGTERM: the job checkpoints and exits like on a spot reclaim
        proc.terminate()
        return proc.wait()
