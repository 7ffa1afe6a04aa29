"""`python -m maas_examples NAME OUT_DIR [--epochs N] [--seed S]`: train an example, write its .keras."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from maas_examples import EXAMPLES, save


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maas_examples", description=__doc__)
    parser.add_argument("name", choices=sorted(EXAMPLES))
    parser.add_argument("out_dir")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(save(args.name, args.out_dir, epochs=args.epochs, seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
