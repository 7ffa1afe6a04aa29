"""Training container entrypoint: `python jobs/train/entrypoint.py --spec <file | s3://... | JSON>`.

The same as the `maas-train` console script (maas.training.entrypoint:main); see jobs/train/README.md.
"""

from __future__ import annotations

import sys

from maas.training.entrypoint import main

if __name__ == "__main__":
    sys.exit(main())
