"""Encoded images (JPEG, PNG) -> the model's image tensor [H, W, C], with Pillow (no TensorFlow).

Steps, in this order: refuse formats that are not allowed and images over the pixel limit (before
decoding: Pillow reads the size from the header), decode, apply the EXIF orientation
(`ImageOps.exif_transpose`), convert to C channels ("L" for 1, "RGB" for 3), resize to H x W when
the size differs with the manifest's method, then cast to the input dtype (uint8 as is; floats
0..255 unscaled, as `tf.io.decode_image` + a cast would give: a Rescaling layer in the model does
any scaling). Every failure is InvalidInput naming the input and what to send instead.

Pillow's resize filters are not TensorFlow's kernels: bilinear with antialias differs from
`tf.image.resize(..., antialias=False)` by a few grey levels, so a model whose Keras graph resizes
is compared within a stated tolerance (tests), and clients get exact results by sending H x W.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from maas_models.errors import InvalidInput

DEFAULT_FORMATS = ("JPEG", "PNG")
DEFAULT_MAX_PIXELS = 40_000_000  # about 6300 x 6300; a decompression bomb is refused before decoding
RESIZE_METHODS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


@dataclass(frozen=True)
class ImageDecoder:
    height: int
    width: int
    channels: int
    dtype: str = "uint8"
    resize: str = "bilinear"
    formats: tuple[str, ...] = DEFAULT_FORMATS
    max_pixels: int = DEFAULT_MAX_PIXELS
    name: str = ""

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ImageDecoder:
        method = str(state.get("resize", "bilinear"))
        if method not in RESIZE_METHODS:
            raise ValueError(f"resize {method!r} is not one of {RESIZE_METHODS}")
        return cls(
            height=int(state["height"]),
            width=int(state["width"]),
            channels=int(state["channels"]),
            dtype=str(state.get("dtype", "uint8")),
            resize=method,
            formats=tuple(str(f).upper() for f in state.get("formats") or DEFAULT_FORMATS),
            max_pixels=int(state.get("max_pixels", DEFAULT_MAX_PIXELS)),
            name=str(state.get("name", "")),
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "layer": "ImageDecoder",
            "name": self.name,
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "dtype": self.dtype,
            "resize": self.resize,
            "formats": list(self.formats),
            "max_pixels": self.max_pixels,
        }

    def decode(self, data: Any) -> np.ndarray:
        """One encoded image -> [H, W, C] of the input dtype."""
        from PIL import Image, ImageOps, UnidentifiedImageError

        what = f"input {self.name!r}" if self.name else "image"
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInput(
                f"{what}: expected encoded image bytes (JPEG or PNG), got {type(data).__name__}"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img: Image.Image = Image.open(io.BytesIO(bytes(data)), formats=list(self.formats))
            if img.width * img.height > self.max_pixels:
                raise InvalidInput(
                    f"{what}: the image is {img.width}x{img.height} = {img.width * img.height} pixels; the "
                    f"limit is {self.max_pixels}: send it resized to {self.width}x{self.height}"
                )
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # in place: without it Pillow copies every image
        except InvalidInput:
            raise
        except UnidentifiedImageError:
            raise InvalidInput(
                f"{what}: not an image in an allowed format ({', '.join(self.formats)}): "
                "send JPEG or PNG bytes"
            ) from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InvalidInput(f"{what}: the image has too many pixels (a decompression bomb)") from None
        except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt data
            raise InvalidInput(
                f"{what}: the image cannot be decoded ({exc}): send a complete JPEG or PNG"
            ) from None
        mode = _MODES.get(self.channels)
        if mode is None:
            raise InvalidInput(f"{what}: the model takes {self.channels} channels; images give 1, 3 or 4")
        if img.mode != mode:
            img = img.convert(mode)
        if img.size != (self.width, self.height):
            img = img.resize((self.width, self.height), resample=_resample(self.resize))
        arr = np.asarray(img, dtype=np.uint8)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return arr.astype(self.dtype, copy=False)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        flat = values.reshape(-1)
        out = np.empty((flat.size, self.height, self.width, self.channels), dtype=self.dtype)
        for i, item in enumerate(flat.tolist()):
            out[i] = self.decode(item)
        return out


def _resample(method: str) -> int:
    from PIL import Image

    return int(
        {
            "nearest": Image.Resampling.NEAREST,
            "bilinear": Image.Resampling.BILINEAR,
            "bicubic": Image.Resampling.BICUBIC,
            "lanczos": Image.Resampling.LANCZOS,
            "box": Image.Resampling.BOX,
            "hamming": Image.Resampling.HAMMING,
        }[method]
    )


def image_options(dtype: str, shape: tuple[int, ...]) -> dict[str, Any] | None:
    """The manifest's `image` entry for an input that is an image tensor [N, H, W, C] (C 1 or 3,
    uint8 or float, fixed H and W), else None: such inputs also take encoded JPEG/PNG."""
    if len(shape) != 4 or shape[3] not in (1, 3) or shape[1] < 1 or shape[2] < 1:
        return None
    if dtype != "uint8" and not dtype.startswith("float"):
        return None
    return {"resize": "bilinear", "formats": list(DEFAULT_FORMATS), "max_pixels": DEFAULT_MAX_PIXELS}


def decoder_for(name: str, dtype: str, shape: tuple[int, ...], options: dict[str, Any]) -> ImageDecoder:
    return ImageDecoder.from_state(
        {**options, "name": name, "height": shape[1], "width": shape[2], "channels": shape[3], "dtype": dtype}
    )
