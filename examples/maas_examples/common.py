"""What every example shares: train on the digits split, measure accuracy on the held-out 20 %."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maas_examples.digits import Digits


@dataclass
class Built:
    """A trained example: the Keras model and its held-out metrics (recorded in the manifest)."""

    model: Any
    metrics: dict[str, float] = field(default_factory=dict)


def _x(inputs: dict[str, np.ndarray], rows: np.ndarray) -> Any:
    picked = {k: v[rows] for k, v in inputs.items()}
    return picked if len(picked) > 1 else next(iter(picked.values()))


def fit(
    net: Any,
    inputs: dict[str, np.ndarray],
    labels: np.ndarray,
    data: Digits,
    *,
    epochs: int,
    targets: Callable[[np.ndarray], Any] | None = None,
    classifier: str | None = None,
) -> Built:
    """Fit on the training split (targets(rows): what the outputs should be; default the digit
    labels); `accuracy` of the digit prediction (output `classifier` of a model with several
    outputs) on the test split."""
    train_idx, test_idx = data.train, data.test
    wanted = targets(train_idx) if targets is not None else labels[train_idx]
    net.fit(_x(inputs, train_idx), wanted, epochs=epochs, batch_size=32, verbose=0, shuffle=True)
    predicted = net.predict(_x(inputs, test_idx), verbose=0)
    probs = predicted[classifier] if classifier is not None else predicted
    accuracy = float(np.mean(np.argmax(probs, axis=1) == labels[test_idx]))
    return Built(model=net, metrics={"accuracy": accuracy, "test_rows": float(len(test_idx))})
