"""Training jobs: a JSON spec in, a published (and maybe promoted) model version out.

Light on import on purpose: `maas.training.spec` and `maas.training.launch` never import TensorFlow, so the
train_launcher Lambda and `maas train submit|status|logs` stay lean. Only `maas.training.trainer` (and the
modules it uses: model, strategy, checkpoint) import TensorFlow, and only inside the training container or a
local `maas train run`.

Modules:
- spec:        the training spec schema, loading (file, s3:// URI or inline JSON) and validation.
- storage:     tiny s3:// / local path helpers (download, upload, list) over plain boto3.
- data:        dataset loading with pyarrow (CSV/Parquet, local or S3), splitting, class balance.
- fingerprint: training-data fingerprint (sha256, rows, per-feature stats + histograms for PSI).
- evaluation:  accuracy/loss/per-class metrics, per-group metrics and promotion gates.
- strategy:    tf.distribute strategy selection and mixed precision.
- checkpoint:  per-epoch and on-SIGTERM checkpoints to S3 with resume.
- trainer:     the training run end to end (load -> train -> export -> publish -> promote).
- entrypoint:  `maas-train --spec ...` (the container entrypoint).
- launch:      AWS Batch submit_job / status / logs.
"""

from __future__ import annotations

from maas.training.spec import SpecError, TrainingSpec, load_spec, parse_spec

__all__ = ["SpecError", "TrainingSpec", "load_spec", "parse_spec"]
