"""Safe image decoding for the serving path: any common format, orientation fixed, always RGB uint8.

Untrusted bytes arrive from clients, so the header is checked before pixels are decoded (decompression bombs),
and every failure is an `ImageError` with a one-line reason.

The header is always read by Pillow (format, size, colour mode, EXIF/XMP orientation). The pixels of the common
simple cases (8-bit RGB or grey JPEG, PNG without transparency or EXIF, still RGB WebP, whole files) are then
decoded by OpenCV (`cv2.imdecode`, RGB straight out of libjpeg-turbo/libpng/libwebp, at the same reduced DCT scale
Pillow's `draft` would pick), which costs 25-50% less CPU time than Pillow for a full-size 1 MP JPEG (Pillow also
copies the pixels twice), more inside a server stage; the orientation is applied from Pillow's reading of the tags, as
`ImageOps.exif_transpose` does. Everything else (CMYK, 16-bit, alpha, palettes, GIF/TIFF/BMP, animations, an
EXIF/XMP or ICC chunk in a PNG, a JPEG without its end marker) and anything OpenCV does not decode to the header's
size goes through Pillow as before, so every refusal keeps its message. With the opencv-python and Pillow wheels
installed here the two give identical pixels (both bundle libjpeg-turbo); `tests/test_imaging_fast.py` allows
JPEG builds to differ by a few grey levels and requires PNG/lossless WebP to be identical.
"""
from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000     # 40 MP: larger headers are refused before decoding
MAX_BYTES = 64 * 1024 * 1024


class ImageError(ValueError):
    """The input is not a usable image; str() is a one-line reason for the client."""


def decode(data: bytes, max_pixels: int = MAX_PIXELS, min_side: int | None = None, fast: bool = True) -> np.ndarray:
    """Encoded image bytes -> HxWx3 RGB uint8 with EXIF orientation applied.

    min_side: the caller needs no more than this many pixels on the longer side; a JPEG is then decoded at a
    reduced DCT scale (1/2, 1/4, 1/8) that still has at least that many, which is several times faster.
    fast: decode the simple common cases with OpenCV (see the module's doc); False: always Pillow (the reference)."""
    if data is None or len(data) == 0:
        raise ImageError("empty image (0 bytes)")
    if len(data) > MAX_BYTES:
        raise ImageError(f"image file too large ({len(data)} bytes > {MAX_BYTES})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w <= 0 or h <= 0:
                raise ImageError(f"image has no pixels ({w}x{h})")
            if w * h > max_pixels:
                raise ImageError(f"image too large: {w}x{h} = {w * h} pixels > {max_pixels} (decompression bomb?)")
            draft = None
            if min_side and img.format == "JPEG" and max(w, h) > min_side:
                k = min_side / max(w, h)
                draft = (max(1, int(w * k + 0.999)), max(1, int(h * k + 0.999)))
            if fast:
                rgb = _decode_cv2(data, img, draft)
                if rgb is not None:
                    return rgb
            if draft:
                img.draft("RGB", draft)
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode != "RGB":
                if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                    rgba = img.convert("RGBA")
                    bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # flatten alpha on white
                    img = Image.alpha_composite(bg, rgba)
                img = img.convert("RGB")
            return np.asarray(img, dtype=np.uint8).copy()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not a recognised image format (expected JPEG, PNG, WebP, BMP, TIFF...)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"image too large (decompression bomb): {e}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"corrupt or truncated image: {e}") from None


def header_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the header alone, as stored (before EXIF orientation); ImageError if unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"corrupt or truncated image: {e}") from None


# Pillow's transposes for EXIF orientations 2-8 (as ImageOps.exif_transpose), done by OpenCV on the array
_ORIENT = {
    2: lambda a: cv2.flip(a, 1),                                   # FLIP_LEFT_RIGHT
    3: lambda a: cv2.rotate(a, cv2.ROTATE_180),                    # ROTATE_180
    4: lambda a: cv2.flip(a, 0),                                   # FLIP_TOP_BOTTOM
    5: lambda a: cv2.transpose(a),                                 # TRANSPOSE
    6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),           # ROTATE_270 (counter-clockwise)
    7: lambda a: cv2.rotate(cv2.transpose(a), cv2.ROTATE_180),     # TRANSVERSE
    8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),    # ROTATE_90 (counter-clockwise)
}
# chunks that make a PNG Pillow's: orientation it would read (EXIF/XMP), and an ICC profile, for which libpng
# writes a warning to the server log on every decode when the profile is a known-bad sRGB one
_PNG_PILLOW_MARKS = (b"eXIf", b"Raw profile type exif", b"XML:com.adobe.xmp", b"iCCP")
_PNG_END = b"IEND\xaeB`\x82"


def _decode_cv2(data: bytes, img: Image.Image, draft: tuple[int, int] | None) -> np.ndarray | None:
    """OpenCV's decode of the simple common cases, oriented as Pillow would; None: leave it to Pillow."""
    fmt, mode = img.format, img.mode
    w, h = img.size
    if fmt in ("JPEG", "MPO"):
        # no end marker: truncated (Pillow refuses it; libjpeg would pad it grey) or trailing bytes: Pillow decides
        if mode not in ("RGB", "L") or data[-2:] != b"\xff\xd9":
            return None
        orientation = img.getexif().get(0x0112, 1)   # EXIF, else XMP, as exif_transpose reads it
    elif fmt == "PNG":
        # 8-bit grey (0) or RGB (2), no transparency key, whole file, none of the chunks above
        if mode not in ("RGB", "L") or len(data) < 26 or data[24] != 8 or data[25] not in (0, 2) \
                or "transparency" in img.info or not data.endswith(_PNG_END) \
                or any(m in data for m in _PNG_PILLOW_MARKS):
            return None
        orientation = 1
    elif fmt == "WEBP":
        if mode != "RGB" or getattr(img, "is_animated", False):
            return None
        orientation = img.getexif().get(0x0112, 1)
    else:
        return None
    flags = cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION
    k = 1
    if draft:   # the scale Pillow's JPEG draft() picks: the largest of 1/8, 1/4, 1/2 that keeps `draft`'s size
        s = min(w // draft[0], h // draft[1])
        k = next(c for c in (8, 4, 2, 1) if s >= c)
        flags |= {1: 0, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[k]
    rgb = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if rgb is None or rgb.ndim != 3 or rgb.shape != ((h + k - 1) // k, (w + k - 1) // k, 3) or rgb.dtype != np.uint8:
        return None   # OpenCV failed or disagrees with the header: Pillow decodes it, or says what is wrong
    turn = _ORIENT.get(orientation)
    return turn(rgb) if turn else rgb


def encode_png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def center_square(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return rgb[y:y + s, x:x + s]
