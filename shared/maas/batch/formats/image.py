"""One encoded image dropped as a file (``incoming/<model>/<path>.jpg|.jpeg|.png``): one prediction.

The model must have exactly one input, an image tensor ``[N, H, W, C]`` (its manifest ``image`` entry):
the file is decoded as the HTTP paths decode ``{"b64": ...}`` values (``maas.protocols.images``: Pillow,
EXIF orientation, channel conversion, resize to H x W, the input dtype). The output
``predictions/<model>/<path>.json`` is one JSON object written by the tensor JSON Lines writer:
``class``/``probability`` (``prob_<label>`` on request) for a classifier, else one key per output. A file
that is not an allowed image, is truncated or is a pixel bomb fails the drop: its report says why,
naming the input, and no output is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from maas.batch import tensors
from maas.batch.common import Batch, InputSpec, UnreadableInput
from maas.batch.formats.base import Format, Writer
from maas.batch.formats.jsonl_tensors import TensorJsonlWriter
from maas.batch.io import Sink, Source
from maas.protocols.errors import ProtocolError
from maas.protocols.images import decode_images

#: Larger files are refused before they are read: a photo for a model input is far smaller, and the
#: whole file is held in memory to decode it.
MAX_IMAGE_BYTES = 32 * 1024 * 1024


class ImageFormat(Format):
    name = "image"
    content_type = "application/json"

    def prepare(self, source: Source, spec: InputSpec) -> dict[str, Any]:
        sig = tensors.signature_of(spec) if not spec.tabular else None
        if sig is None or len(sig.inputs) != 1 or sig.inputs[0].image is None:
            raise UnreadableInput(
                "an image file is scored by a model with one image input [N, H, W, C]; this model takes "
                + (", ".join(sig.input_names) if sig is not None else "a row of features")
                + ": drop JSON Lines or Parquet instead"
            )
        if source.size > MAX_IMAGE_BYTES:
            raise UnreadableInput(
                f"the image file is {source.size} bytes; the limit is {MAX_IMAGE_BYTES}: send it resized to "
                f"{sig.inputs[0].shape[2]}x{sig.inputs[0].shape[1]}"
            )
        return {"bytes": source.size}

    def full_range(self, source: Source, layout: dict[str, Any]) -> dict[str, Any]:
        return {"start": 0, "end": source.size, "first_row": 0}

    def split(self, source: Source, layout: dict[str, Any], chunk_bytes: int) -> list[dict[str, Any]]:
        return [self.full_range(source, layout)]  # one image is one row: never split

    def read(
        self, source: Source, layout: dict[str, Any], spec: InputSpec, rng: dict[str, Any], block_bytes: int
    ) -> Iterator[Batch]:
        tspec = tensors.signature_of(spec).inputs[0]
        data = source.read_range(0, source.size)
        try:
            pixels = decode_images([data], tspec, "image file")
        except ProtocolError as exc:
            raise UnreadableInput(exc.message) from None
        yield Batch(inputs={tspec.name: pixels}, rows_seen=1, passthrough=(False, [b""]))

    def open_writer(self, sink: Sink, layout: dict[str, Any], spec: InputSpec, *, part: bool) -> Writer:
        return TensorJsonlWriter(sink, spec)
