"""Import-time checks of a split model (`maas_models.importer.prepare`; needs TensorFlow/Keras).

    split = split_of(keras_model)                     # None when nothing leads the model to cut out
    report = check_split(keras_model, split, signature, backend, samples, atol=..., rtol=...)

`check_split` compares the whole Keras model with numpy preprocessing + the LiteRT core on generated
raw probes and the caller's samples; a gap is ExportMismatch, before anything is published.
`mark_images` gives every image-tensor input its manifest `image` entry (it then takes JPEG/PNG).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from maas_models.convert import keras_outputs
from maas_models.errors import ExportMismatch
from maas_models.preprocessing.image import image_options
from maas_models.preprocessing.pipeline import Preprocessing
from maas_models.preprocessing.probes import keras_inputs, merge_samples, raw_probes
from maas_models.preprocessing.split import SplitModel, split_model
from maas_models.signature import Signature, TensorSpec
from maas_models.verify import compare_named


def mark_images(signature: Signature) -> Signature:
    """Image-tensor inputs [N, H, W, C] get the manifest's `image` entry: they also take JPEG/PNG."""
    inputs = tuple(
        TensorSpec(s.name, s.dtype, s.shape, s.feature_names, s.class_labels, image_options(s.dtype, s.shape))
        for s in signature.inputs
    )
    return Signature(inputs, signature.outputs)


def split_of(keras_model: Any) -> SplitModel | None:
    """The SplitModel of a Keras model that starts with preprocessing to cut out, else None."""
    split = split_model(keras_model)
    return split if split.is_split else None


def manifest_block(split: SplitModel, signature: Signature) -> dict[str, Any]:
    """The manifest's preprocessing block; model_inputs are the converted model's own specs."""
    return {"model_inputs": [s.to_manifest() for s in signature.inputs], "chains": split.chains}


def check_split(
    model: Any,
    split: SplitModel,
    signature: Signature,
    backend: Any,
    samples: Mapping[str, Any] | None,
    *,
    atol: float,
    rtol: float,
) -> dict[str, Any]:
    """Compare the whole Keras model with numpy preprocessing + the LiteRT model on raw probes."""
    pre = Preprocessing.from_manifest(
        {
            "preprocessing": manifest_block(split, signature),
            "outputs": [s.to_manifest() for s in signature.outputs],
        }
    )
    assert pre is not None
    raw = merge_samples(raw_probes(split.raw_inputs, split.chains), samples)
    ranks = {str(t.name): len(t.shape) for t in model.inputs}
    fed = {
        k: (v.reshape(-1, 1) if v.ndim == 1 and ranks.get(k) == 2 else v)
        for k, v in keras_inputs(raw).items()
    }
    want = keras_outputs(model, Signature(tuple(split.raw_inputs), signature.outputs), fed)
    got = backend.predict_named(pre.apply(raw))
    # raw inputs can make Keras itself return NaN (an empty text under a masked average): parity
    # then means NaN in the same places; everywhere else the usual tolerance
    nan_rows = 0
    for name in want:
        w, g = np.asarray(want[name], dtype=np.float64), np.asarray(got[name], dtype=np.float64)
        if w.shape == g.shape and not np.array_equal(np.isnan(w), np.isnan(g)):
            raise ExportMismatch(
                f"numpy preprocessing + model.tflite vs Keras, output {name!r}: NaN in different places"
            )
        if w.shape == g.shape:
            nan_rows += int(np.isnan(w).reshape(len(w), -1).any(axis=1).sum())
            want[name], got[name] = np.nan_to_num(w, nan=0.0), np.nan_to_num(g, nan=0.0)
    gaps = compare_named(want, got, atol=atol, rtol=rtol, what="numpy preprocessing + model.tflite vs Keras")
    rows = int(next(iter(raw.values())).shape[0])
    return {
        "rows": rows,
        "sample_rows": rows - int(next(iter(raw_probes(split.raw_inputs, split.chains).values())).shape[0]),
        "max_abs_diff_keras": max(gaps.values()),
        "rows_nan_in_keras": nan_rows,
        "layers": [s["name"] for c in split.chains for s in c["layers"]],
        "numpy": np.__version__,
    }
