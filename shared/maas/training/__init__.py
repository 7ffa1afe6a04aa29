"""Training jobs: a JSON spec in, a published (and maybe promoted) model version out.

Light on import on purpose: `maas.training.spec` and `maas.training.launch` never import TensorFlow, so the
train_launcher Lambda and `maas train submit|status|logs` stay lean. Only `maas.training.trainer` (and the
modules it uses: model, strategy, checkpoint) import TensorFlow, and only inside the training container or a
local `maas train run`.

Modules:
- spec:        the training spec schema (pydantic models), loading (file, s3:// URI or inline JSON).
- spec_errors: pydantic's validation errors as field-first messages.
- storage:     tiny s3:// / local path helpers (download, upload, list) over the layer's boto3 client.
- data:        dataset loading with pyarrow (CSV/Parquet, local or S3), splitting, class balance.
- fingerprint: training-data fingerprint (sha256, rows, per-feature stats + histograms for PSI).
- evaluation:  accuracy/loss/per-class metrics, per-group metrics and promotion gates.
- strategy:    tf.distribute strategy selection and mixed precision.
- checkpoint:  per-epoch and on-SIGTERM checkpoints to S3 with resume.
- trainer:     the training run end to end, as the steps of jobs/train/README.md (load -> resume or
               build -> train -> evaluate), refusing another spec's checkpoint.
- publish:     its last steps: model card, export, publish, promote.
- results:     what the steps hand each other, and the run's result.
- model:       the Keras model, its tf.data input pipeline and progress log.
- entrypoint:  `maas-train --spec ...` (the container entrypoint).
- launch:      AWS Batch submit_job / status / logs.
"""

from __future__ import annotations

from maas.training.spec import SpecError, TrainingSpec, load_spec, parse_spec

__all__ = ["SpecError", "TrainingSpec", "load_spec", "parse_spec"]
