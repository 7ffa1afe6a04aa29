"""`maas-train --spec <file | s3://... | inline JSON>`: the training container's entrypoint.

Exit codes: 0 done (published, or already published by an earlier attempt), 2 invalid spec, dataset or
code (missing entry point, sha256 mismatch, no model written, failed verification...), 3 the team's
code failed (its traceback is in the log; not retried),
143 stopped by SIGTERM after saving a checkpoint (AWS Batch retries the job on a spot reclaim and the
next attempt resumes), 1 anything else. The last stdout line is the run summary as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence

import orjson

from maas.settings import TrainingSettings
from maas.training.spec import SpecError, load_spec

log = logging.getLogger("maas.training")
EXIT_USER_CODE = 3  # the team's code failed: the job definition's evaluateOnExit does not retry it


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("maas")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maas-train",
        description="Run one training job from a spec (see maas.training.spec for the schema).",
    )
    parser.add_argument("--spec", required=True, help="spec: a local JSON file, an s3:// URI or inline JSON")
    parser.add_argument("--work-dir", help="local scratch dir (default: a new temp dir)")
    parser.add_argument("--validate-only", action="store_true", help="validate the spec and exit")
    parser.add_argument(
        "--log-level", default=TrainingSettings().log_level, help="default INFO (MAAS_TRAINING_LOG_LEVEL)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    try:
        spec = load_spec(args.spec)
    except SpecError as exc:
        log.error("%s", exc)
        print(orjson.dumps({"status": "invalid_spec", "errors": exc.errors}).decode(), flush=True)
        return 2
    if args.validate_only:
        print(orjson.dumps({"status": "valid", "spec": spec.to_dict()}).decode(), flush=True)
        return 0

    from pathlib import Path

    from maas.training.byo import UserCodeFailed
    from maas.training.data import DataError
    from maas.training.rendezvous import RendezvousTimeout, ensure_tf_config
    from maas.training.source import CodeError
    from maas.training.trainer import (
        EXIT_INTERRUPTED,
        CheckpointMismatch,
        checkpoint_uri_for,
        run,
        run_id_for,
    )

    try:  # Batch multi-node parallel job: find the other nodes before TensorFlow starts
        ensure_tf_config(checkpoint_uri_for(spec, run_id_for(spec)))
    except (RendezvousTimeout, ValueError) as exc:
        log.error("%s", exc)
        return 1
    try:
        work_dir = Path(args.work_dir) if args.work_dir else None
        if spec.code is not None:  # a team's own script or builder
            from maas.training.byo import run_with_code

            result = run_with_code(spec, work_dir=work_dir)
        else:
            result = run(spec, work_dir=work_dir)
    except DataError as exc:
        log.error("dataset does not match the spec: %s", exc)
        print(orjson.dumps({"status": "invalid_data", "errors": [str(exc)]}).decode(), flush=True)
        return 2
    except CodeError as exc:
        log.error("%s", exc)
        print(orjson.dumps({"status": "invalid_code", "errors": [str(exc)]}).decode(), flush=True)
        return 2
    except UserCodeFailed as exc:
        log.error("%s (exit %d: not retried)", exc, EXIT_USER_CODE)
        print(orjson.dumps({"status": "user_code_failed", "errors": [str(exc)]}).decode(), flush=True)
        return EXIT_USER_CODE
    except CheckpointMismatch as exc:
        log.error("%s", exc)
        print(orjson.dumps({"status": "invalid_checkpoint", "errors": [str(exc)]}).decode(), flush=True)
        return 2
    except Exception:
        log.exception("training failed")
        return 1
    print(orjson.dumps(result.as_dict()).decode(), flush=True)
    return EXIT_INTERRUPTED if result.status == "interrupted" else 0


if __name__ == "__main__":
    sys.exit(main())
