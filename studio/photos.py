"""Uploaded photos: checked from their bytes, kept in memory only (never written to disk), bounded in number.

The limits are the server's own (facefront.imaging): a photo the server would refuse is refused here first,
with the same reason, before it travels to Triton.
"""
from __future__ import annotations

import io
import secrets
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from facefront.imaging import MAX_BYTES, MAX_PIXELS

# What a browser can show and the server decodes; sniffed from the bytes (PIL's header parsers), never taken
# from the file name or the Content-Type the browser sent.
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "BMP": "image/bmp", "GIF": "image/gif"}


class UploadError(ValueError):
    """The upload cannot be used; str() is the message the page shows. `status` is the HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Photo:
    id: str
    data: bytes
    mime: str
    width: int
    height: int
    faces: tuple = ()


def sniff(data: bytes, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> tuple[str, int, int]:
    """(mime type, width, height) from the header of `data`; UploadError when it is not an image we take."""
    if not data:
        raise UploadError("the file is empty")
    if len(data) > max_bytes:
        raise UploadError(f"the file is too large ({len(data) / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB)", 413)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:  # the header only: no pixels are decoded here
                fmt, (w, h) = im.format, im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError(f"the image has too many pixels (the limit is {max_pixels / 1e6:.0f} megapixels)", 413) from None
    except UnidentifiedImageError:
        raise UploadError("this file is not an image (JPEG, PNG, WebP, BMP or GIF expected)", 415) from None
    except Exception:  # a truncated or corrupt header
        raise UploadError("this image file is damaged or truncated", 415) from None
    if fmt not in FORMATS:
        raise UploadError(f"{fmt or 'this'} images are not supported (JPEG, PNG, WebP, BMP or GIF expected)", 415)
    if w <= 0 or h <= 0 or w * h > max_pixels:
        raise UploadError(f"the image is too large ({w}x{h} pixels; the limit is {max_pixels / 1e6:.0f} megapixels)", 413)
    return FORMATS[fmt], w, h


class PhotoStore:
    """The last `capacity` uploads (least recently used dropped first), also bounded in total bytes."""

    def __init__(self, capacity: int = 16, max_total: int = 256 << 20):
        self.capacity, self.max_total = capacity, max_total
        self._photos: OrderedDict[str, Photo] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, data: bytes, mime: str, width: int, height: int, faces: tuple) -> Photo:
        photo = Photo(secrets.token_urlsafe(12), bytes(data), mime, width, height, faces)
        with self._lock:
            self._photos[photo.id] = photo
            while len(self._photos) > self.capacity or (
                    len(self._photos) > 1 and sum(len(p.data) for p in self._photos.values()) > self.max_total):
                self._photos.popitem(last=False)
        return photo

    def get(self, photo_id: str) -> Photo:
        with self._lock:
            photo = self._photos.get(photo_id)
            if photo is None:
                raise UploadError("this photo is no longer held by the studio (it keeps the last few uploads "
                                  "in memory only); upload it again", 404)
            self._photos.move_to_end(photo_id)
            return photo

    def __len__(self) -> int:
        return len(self._photos)
