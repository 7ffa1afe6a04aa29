"""`python -m maas.training --spec ...` = `maas-train`."""

import sys

from maas.training.entrypoint import main

sys.exit(main())
