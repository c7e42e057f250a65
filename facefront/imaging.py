"""Safe image decoding for the serving path: any common format, orientation fixed, always RGB uint8.

Untrusted bytes arrive from clients, so the header is checked before pixels are decoded (decompression bombs),
and every failure is an `ImageError` with a one-line reason.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000     # 40 MP: larger headers are refused before decoding
MAX_BYTES = 64 * 1024 * 1024


class ImageError(ValueError):
    """The input is not a usable image; str() is a one-line reason for the client."""


def decode(data: bytes, max_pixels: int = MAX_PIXELS, min_side: int | None = None) -> np.ndarray:
    """Encoded image bytes -> HxWx3 RGB uint8 with EXIF orientation applied.

    min_side: the caller needs no more than this many pixels on the longer side; a JPEG is then decoded at a
    reduced DCT scale (1/2, 1/4, 1/8) that still has at least that many, which is several times faster."""
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
            if min_side and img.format == "JPEG" and max(w, h) > min_side:
                k = min_side / max(w, h)
                img.draft("RGB", (max(1, int(w * k + 0.999)), max(1, int(h * k + 0.999))))
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


def encode_png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def center_square(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return rgb[y:y + s, x:x + s]
