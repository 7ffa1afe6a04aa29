"""What the steps of a training run hand each other (``maas.training.trainer``, ``.publish``), and
the run's result (the job's JSON summary)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class RunResult:
    model_name: str
    run_id: str
    checkpoint_uri: str
    status: str  # "published" | "already_published" | "interrupted" | "worker"
    epochs_total: int
    resumed_from_epoch: int = 0
    epochs_run: list[int] = field(default_factory=list)
    version: int | None = None
    promoted: bool = False
    alias: str | None = None
    gates: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Prepared:
    """Step 1: the data, its seeded split, the balancing, and the fingerprint."""

    data: Any
    parts: Any
    train_rows: np.ndarray
    weights: np.ndarray
    fingerprint: dict[str, Any]

    @property
    def n_features(self) -> int:
        return int(self.data.x.shape[1])

    @property
    def n_classes(self) -> int:
        return len(self.data.class_labels)


@dataclass
class Evaluation:
    """Step 5: the float32 copy that is exported, its held-out outputs, metrics, fairness and gates."""

    export_model: Any
    x_val: np.ndarray
    proba: np.ndarray
    metrics: dict[str, Any]
    fairness: dict[str, Any] | None
    gate: Any
