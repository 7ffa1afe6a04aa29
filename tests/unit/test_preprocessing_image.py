"""Image decoding for raw-image inputs (Pillow, no TensorFlow) against TensorFlow's decoders."""

from __future__ import annotations

import io

import numpy as np
import pytest
from maas_models.errors import InvalidInput
from maas_models.preprocessing import step_from_state
from PIL import Image


def _encode(arr: np.ndarray, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr.squeeze() if arr.shape[-1] == 1 else arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _decoder(h=16, w=12, c=3, dtype="uint8", **kw):
    return step_from_state(
        {"layer": "ImageDecoder", "name": "img", "height": h, "width": w, "channels": c, "dtype": dtype, **kw}
    )


def _pixels(h=16, w=12, c=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, c)).astype(np.uint8)


def test_png_decodes_exactly_and_jpeg_like_tensorflow():
    tf = pytest.importorskip("tensorflow")
    pix = _pixels()
    png = _encode(pix, "PNG")
    yy, xx = np.mgrid[0:16, 0:12]
    photo = np.stack([yy * 15, xx * 20, (yy + xx) * 8], axis=-1).astype(np.uint8)  # smooth, like a photo
    jpg = _encode(photo, "JPEG", quality=90)
    got = _decoder()(np.asarray([png, jpg], dtype=object))
    np.testing.assert_array_equal(got[0], pix)
    np.testing.assert_array_equal(got[0], tf.io.decode_png(png, channels=3).numpy())
    # Pillow's and TensorFlow's bundled libjpeg builds differ in chroma upsampling / IDCT rounding:
    # the stated tolerance is a mean gap under 1.5 grey levels and at most 8 on any pixel
    diff = np.abs(got[1].astype(int) - tf.io.decode_jpeg(jpg, channels=3).numpy().astype(int))
    assert diff.mean() < 1.5 and diff.max() <= 8


def test_channels_dtype_and_resize():
    pix = _pixels(32, 24)
    rgb = _encode(pix, "PNG")
    grey = _decoder(c=1, dtype="float32")(np.asarray([rgb], dtype=object))
    assert grey.shape == (1, 16, 12, 1) and grey.dtype == np.float32
    want = np.asarray(
        Image.fromarray(pix).convert("L").resize((12, 16), Image.Resampling.BILINEAR), np.float32
    )
    np.testing.assert_array_equal(grey[0, :, :, 0], want)
    rgb_from_grey = _decoder()(np.asarray([_encode(pix[:, :, :1], "PNG")], dtype=object))
    assert rgb_from_grey.shape == (1, 16, 12, 3)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation_is_applied(fmt):
    pix = _pixels(16, 12)
    img = Image.fromarray(pix)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    img.save(buf, format=fmt, exif=exif.tobytes())
    got = _decoder(h=12, w=16)(np.asarray([buf.getvalue()], dtype=object))[0]
    stored = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))  # JPEG: the lossy pixels
    assert got.shape == (12, 16, 3)
    np.testing.assert_array_equal(got, np.rot90(stored, k=-1))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"not an image at all", "not an image in an allowed format"),
        (_encode(_pixels(), "PNG")[:60], "cannot be decoded"),
        (_encode(_pixels(), "GIF"), "not an image in an allowed format"),
        ("text", "expected encoded image bytes"),
    ],
    ids=["garbage", "truncated", "gif-not-allowed", "str"],
)
def test_bad_images_are_invalid_input_naming_the_input(data, match):
    with pytest.raises(InvalidInput, match=f"input 'img'.*{match}"):
        _decoder()(np.asarray([data], dtype=object))


def test_pixel_bomb_is_refused_before_decoding():
    big = _encode(np.zeros((400, 400, 3), np.uint8), "PNG")
    with pytest.raises(InvalidInput, match="160000 pixels; the limit is 10000"):
        _decoder(max_pixels=10_000)(np.asarray([big], dtype=object))
