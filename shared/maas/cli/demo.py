"""`maas demo`: the whole product end to end on the embedded local stack."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="train, publish and serve the reference model on the local stack, printing each result",
        description="Starts the local stack (`maas local up`), trains the reference model on a synthetic "
        "dataset with `maas train run --local`, publishes and promotes it, calls the REST API (TF Serving "
        "and v2), drops a CSV into the ingest bucket and sends a queue message, printing each result.",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from maas import demo

    try:
        return demo.run()
    except demo.DemoError as exc:
        print(f"maas demo: {exc}")
        return 1
