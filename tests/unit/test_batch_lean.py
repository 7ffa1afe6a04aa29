"""The asynchronous serving path never imports TensorFlow or Keras, not even transitively."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CODE = """
import sys, importlib.util
for name in ("batch_score", "queue_score"):
    spec = importlib.util.spec_from_file_location("app_" + name, "functions/%s/app.py" % name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
import maas.batch.entry, maas.batch.fanout, maas.batch.formats, maas.queue.entry, maas.queue.processor
from maas.batch.common import InputSpec, Scorer
from maas.batch.formats import get_format
import numpy as np
spec = InputSpec(tuple(f"f{i}" for i in range(3)), ("a", "b"))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras", "torch"))
print("HEAVY", heavy)
"""


def test_no_tensorflow_on_the_async_path() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CODE], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "HEAVY []" in proc.stdout, proc.stdout
