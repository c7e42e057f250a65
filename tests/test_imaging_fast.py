"""The OpenCV fast path of `facefront.imaging.decode` against its Pillow path (`fast=False`, the reference): same
pixels, same orientation, same reduced DCT scale, and every case it does not take left to Pillow unchanged."""
import io

import numpy as np
import pytest
from PIL import Image

from facefront import imaging
from facefront.data import photo
from facefront.imaging import ImageError, decode

# Both wheels bundle libjpeg-turbo: measured max |diff| 0 on obama.jpg, obama2.jpg, biden.jpg (full size and at
# 1/2, 1/4, 1/8) and on the synthetic images below. The bound lets another build's IDCT differ by a few grey levels.
JPEG_MAX_DIFF = 4
JPEG_MEAN_DIFF = 0.5


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _scene(h: int = 90, w: int = 130) -> np.ndarray:
    """A smooth, asymmetric RGB picture: every flip and rotation of it is a different array."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([x / w * 255, y / h * 255, (x * y) / (w * h) * 255], -1)
    rgb[5:25, 10:40] = (250, 20, 20)   # a red block near the top-left corner
    return rgb.astype(np.uint8)


def _fast_taken(monkeypatch) -> list:
    """Records what the OpenCV path returned (None: it left the image to Pillow)."""
    seen = []
    real = imaging._decode_cv2

    def spy(*a, **kw):
        out = real(*a, **kw)
        seen.append(out is not None)
        return out
    monkeypatch.setattr(imaging, "_decode_cv2", spy)
    return seen


def assert_close_jpeg(a: np.ndarray, b: np.ndarray):
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    assert d.max() <= JPEG_MAX_DIFF and d.mean() <= JPEG_MEAN_DIFF, (d.max(), d.mean())


@pytest.mark.parametrize("name", ["obama.jpg", "biden.jpg"])
@pytest.mark.parametrize("min_side", [None, 1024, 512, 200])
def test_photo_jpeg_equals_pillow_at_every_scale(monkeypatch, name, min_side):
    data = photo(name).read_bytes()
    seen = _fast_taken(monkeypatch)
    fast = decode(data, min_side=min_side)
    assert seen == [True]
    assert_close_jpeg(fast, decode(data, min_side=min_side, fast=False))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(monkeypatch, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _encode(Image.fromarray(_scene()), "JPEG", quality=95, exif=exif)
    seen = _fast_taken(monkeypatch)
    fast = decode(data)
    assert seen == [True]
    ref = decode(data, fast=False)
    assert fast.shape == ref.shape == ((90, 130, 3) if orientation <= 4 else (130, 90, 3))
    assert_close_jpeg(fast, ref)
    # and at a reduced scale: orientation applied after the DCT-scaled decode
    assert_close_jpeg(decode(data, min_side=40), decode(data, min_side=40, fast=False))


def test_xmp_orientation_is_read_as_pillow_reads_it():
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    data = _encode(Image.fromarray(_scene()), "JPEG", quality=95, xmp=xmp)
    ref = decode(data, fast=False)
    assert ref.shape == (130, 90, 3)
    assert_close_jpeg(decode(data), ref)


@pytest.mark.parametrize("fmt,kw", [("PNG", {}), ("WEBP", {"lossless": True})])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_png_and_lossless_webp_are_identical(monkeypatch, fmt, kw, mode):
    img = Image.fromarray(_scene()).convert(mode)
    data = _encode(img, fmt, **kw)
    seen = _fast_taken(monkeypatch)
    fast = decode(data)
    assert np.array_equal(fast, decode(data, fast=False)) and fast.shape == (90, 130, 3)
    # a grey WebP is stored as RGB by libwebp; a grey PNG stays "L": both on the fast path
    assert seen == [True]


def _cmyk_jpeg():
    return _encode(Image.fromarray(_scene()).convert("CMYK"), "JPEG")


def _rgba_png():
    rgba = np.dstack([_scene(), np.full((90, 130), 128, np.uint8)])
    return _encode(Image.fromarray(rgba, "RGBA"), "PNG")


def _png_16bit():
    return _encode(Image.fromarray((np.arange(90 * 130).reshape(90, 130) * 5).astype(np.uint16)), "PNG")


def _png_with_exif():
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(Image.fromarray(_scene()), "PNG", exif=exif)


def _jpeg_trailing_bytes():
    return _encode(Image.fromarray(_scene()), "JPEG") + b"trailing bytes after the end marker"


def _gif():
    return _encode(Image.fromarray(_scene()).convert("P"), "GIF")


@pytest.mark.parametrize("make", [_cmyk_jpeg, _rgba_png, _png_16bit, _png_with_exif, _jpeg_trailing_bytes, _gif],
                         ids=lambda f: f.__name__.strip("_"))
def test_other_cases_are_left_to_pillow(monkeypatch, make):
    data = make()
    seen = _fast_taken(monkeypatch)
    out = decode(data)
    assert seen == [False]
    assert np.array_equal(out, decode(data, fast=False))


def test_truncated_jpeg_keeps_pillows_refusal():
    data = photo("obama.jpg").read_bytes()
    for cut in (len(data) // 3, len(data) - 2):
        with pytest.raises(ImageError, match="truncated|corrupt"):
            decode(data[:cut])


def test_header_size_is_the_stored_size():
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(Image.fromarray(_scene()), "JPEG", exif=exif)
    assert imaging.header_size(data) == (130, 90) and decode(data).shape == (130, 90, 3)
    with pytest.raises(ImageError):
        imaging.header_size(b"not an image")
