"""Decoding untrusted image bytes: formats, orientation, colour modes, and clear refusals."""
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from facefront.imaging import ImageError, decode


def _encode(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


RGB = np.zeros((40, 60, 3), np.uint8)
RGB[:, :30] = (255, 0, 0)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
def test_common_formats_decode_to_rgb(fmt):
    out = decode(_encode(Image.fromarray(RGB), fmt))
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    assert out[20, 5, 0] > 200 and out[20, 50, 0] < 60


def test_grayscale_and_rgba_become_rgb():
    g = decode(_encode(Image.fromarray(np.full((10, 10), 77, np.uint8)), "PNG"))
    assert g.shape == (10, 10, 3) and (g == 77).all()
    rgba = np.zeros((10, 10, 4), np.uint8)  # fully transparent -> flattened on white
    out = decode(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert out.shape == (10, 10, 3) and (out == 255).all()


def test_exif_orientation_is_applied():
    img = Image.fromarray(RGB)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    out = decode(_encode(img, "JPEG", exif=exif))
    assert out.shape == (60, 40, 3)


def _png_header_only(w, h):
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("data,match", [
    (b"", "empty"),
    (bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8)), "not a recognised image"),
    (_png_header_only(20000, 20000), "too large"),
])
def test_bad_bytes_are_refused_with_a_reason(data, match):
    with pytest.raises(ImageError, match=match):
        decode(data)


def test_truncated_jpeg_is_refused():
    rng = np.random.default_rng(1)
    data = _encode(Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)), "JPEG")
    with pytest.raises(ImageError, match="truncated|corrupt"):
        decode(data[: len(data) // 3])


def test_reduced_scale_jpeg_decode_keeps_at_least_min_side():
    big = np.random.default_rng(2).integers(0, 256, (1600, 1200, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(big), "JPEG")
    full = decode(data)
    small = decode(data, min_side=500)
    assert full.shape == (1600, 1200, 3)
    assert 500 <= max(small.shape[:2]) < 1600 and small.shape[2] == 3
    assert decode(_encode(Image.fromarray(big[:300, :200]), "PNG"), min_side=100).shape == (300, 200, 3)  # PNG: full
