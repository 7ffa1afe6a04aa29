"""The `maas` command line. Each area registers its own subcommands from a module of this package."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules under maas.cli that each expose `register(subparsers)`. Imported lazily by name so that
# `maas --help` stays fast and one area's heavy imports (TensorFlow for training) never slow another.
AREAS: tuple[str, ...] = ("local", "models", "train", "bench", "demo", "tenants")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="maas", description="TensorFlow models as a serverless service.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for area in AREAS:
        try:
            module = importlib.import_module(f"maas.cli.{area}")
        except ModuleNotFoundError as exc:
            if exc.name == f"maas.cli.{area}":
                continue  # area not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int | None = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
