"""Image files on the client side: what counts as an image, turning inputs into encoded bytes, writing results.

The server decodes the bytes we send, so the client never resizes or converts; it only makes sure that what it
sends is an image file (a header check, no full decode) and encodes numpy arrays as PNG.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})

ImageLike = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray]


def encode(image: ImageLike) -> bytes:
    """Encoded image file bytes for `image`: a path, the bytes of an image file, or an RGB uint8 array (-> PNG).

    Raises ValueError (FileNotFoundError for a missing path) naming what is wrong.
    """
    if isinstance(image, np.ndarray):
        return png_bytes(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    elif isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        data = path.read_bytes()
    else:
        raise TypeError(f"image must be a path, image file bytes or a numpy array, not {type(image).__name__}")
    check_image_bytes(data)
    return data


def check_image_bytes(data: bytes) -> str:
    """The format name (e.g. 'JPEG') if `data` starts like an image file PIL knows; ValueError otherwise."""
    if not data:
        raise ValueError("empty file")
    try:
        with Image.open(io.BytesIO(data)) as im:  # reads the header only
            return im.format or "unknown"
    except UnidentifiedImageError:
        raise ValueError("not an image file (unknown format)") from None
    except Exception as e:  # truncated or corrupt header
        raise ValueError(f"not a readable image file ({e})") from None


def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG file bytes of an HxWx3 (RGB) or HxW (grey) uint8 array."""
    if rgb.dtype != np.uint8 or not (rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] == 3)):
        raise ValueError(f"array image must be uint8 HxWx3 (RGB) or HxW, got {rgb.dtype} {rgb.shape}")
    if rgb.size == 0:
        raise ValueError(f"array image is empty: {rgb.shape}")
    buf = io.BytesIO()
    # Level 1: the bytes only travel to the server, so speed matters more than size.
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def write_png(rgb: np.ndarray, path: Path) -> None:
    """Write `rgb` as PNG at `path` atomically: a temp file beside it, then rename, so no partial file is left."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # same folder: the rename cannot cross filesystems
    try:
        with open(tmp, "wb") as f:
            Image.fromarray(np.ascontiguousarray(rgb)).save(f, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def discover(inputs: Iterable[str | os.PathLike], recursive: bool = False) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files to process from files and folders, and (path, reason) for inputs that name nothing usable.

    A file named on the command line is taken whatever its extension (the user asked for it); inside a folder
    only files with an image extension are taken, sorted, and sub-folders only when `recursive`.
    Each file appears once, in the order given.
    """
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            files.append(p)

    for item in inputs:
        p = Path(item)
        if p.is_file():
            add(p)
        elif p.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(f for f in p.glob(pattern) if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                hint = "" if recursive else " (use -r to search sub-folders)"
                problems.append((p, f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in folder{hint}"))
            for f in found:
                add(f)
        elif p.exists():
            problems.append((p, "not a regular file or folder"))
        else:
            problems.append((p, "no such file or folder"))
    return files, problems
