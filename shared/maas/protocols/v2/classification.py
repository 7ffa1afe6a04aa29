"""The v2 classification extension (as Triton implements it): top-k classes instead of the raw scores.

    {"outputs": [{"name": "probabilities", "parameters": {"classification": 2}}]}
    -> {"name": "probabilities", "datatype": "BYTES", "shape": [N, 2], "data": ["0.912000:1:dog", ...]}

Each element is ``"<score>:<index>:<label>"`` (``"<score>:<index>"`` when the output has no class labels
in the manifest), best first; the score is printed with six decimals as Triton's ``std::to_string``
does. ``k`` larger than the number of classes gives every class. The output must be ``[N, classes]``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from maas.protocols.errors import ProtocolError
from maas.protocols.tensors import Signature
from maas.protocols.v2.models import InferenceRequest

CLASSIFICATION = "classification"


def requested_top_k(request: InferenceRequest) -> dict[str, int]:
    """{output name: k} for the outputs that ask for classification; a bad k is a 400 naming it."""
    wanted: dict[str, int] = {}
    for i, out in enumerate(request.outputs or ()):
        k = out.parameters.get(CLASSIFICATION)
        if k is None:
            continue
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ProtocolError(
                f"outputs[{i}].parameters.{CLASSIFICATION} must be a whole number of classes >= 1, got {k!r}"
            )
        wanted[out.name] = k
    return wanted


def classify(
    request: InferenceRequest, outputs: Mapping[str, np.ndarray], signature: Signature
) -> dict[str, np.ndarray]:
    """`outputs` with every output that asks for classification replaced by its top-k strings."""
    wanted = requested_top_k(request)
    if not wanted:
        return dict(outputs)
    labels = {spec.name: spec.class_labels for spec in signature.outputs}
    result = dict(outputs)
    for name, k in wanted.items():
        scores = np.asarray(outputs[name])
        if scores.ndim != 2:
            raise ProtocolError(
                f"output {name!r} has shape {list(scores.shape)}: classification needs [rows, classes]"
            )
        k = min(k, scores.shape[1])
        # stable sort on the negated scores: ties keep the lower class index first, as Triton does
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        names = labels.get(name) or ()
        top = np.empty(order.shape, dtype=object)
        for r, row in enumerate(order):
            for j, c in enumerate(row):
                label = f":{names[c]}" if c < len(names) else ""
                top[r, j] = f"{float(scores[r, c]):.6f}:{int(c)}{label}"
        result[name] = top
    return result
