"""Fetch weights from their public host (or a mirror of it), verify a pinned sha256, and never leave a partial file
behind.

FACEFRONT_WEIGHTS_MIRROR=http://host/dir makes every download read <dir>/<original host>/<original path> instead,
e.g. an internal mirror made with `wget -x` of the public files; the pinned sha256 still applies.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

MIRROR_ENV = "FACEFRONT_WEIGHTS_MIRROR"


class WeightsError(RuntimeError):
    """Weights could not be fetched, verified or loaded; the message is one line for the user."""


def mirrored(url: str) -> str:
    """url, or its copy under $FACEFRONT_WEIGHTS_MIRROR (<mirror>/<host>/<path>) when that is set."""
    base = os.environ.get(MIRROR_ENV, "").strip()
    if not base:
        return url
    parts = urllib.parse.urlsplit(url)
    return f"{base.rstrip('/')}/{parts.netloc}{parts.path}"


def fetch(url: str, dest: Path, sha256: str | None, timeout: float = 30.0, progress=None) -> Path:
    """Download `url` to `dest` atomically. Raises WeightsError (dest untouched) on network error,
    short read, or sha256 mismatch. `sha256=None` means not pinned: the file is kept and its hash reported."""
    dest = Path(dest)
    url = mirrored(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    h = hashlib.sha256()
    done = 0
    try:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r, os.fdopen(fd, "wb") as f:
                total = int(r.headers.get("Content-Length") or 0)
                while block := r.read(1 << 20):
                    f.write(block)
                    h.update(block)
                    done += len(block)
                    if progress:
                        progress(done, total)
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
            reason = getattr(e, "reason", e)
            raise WeightsError(f"cannot download {url}: {reason} (no network to that host? put the file at "
                               f"{dest} yourself, or pass --weights)") from None
        if total and done != total:
            raise WeightsError(f"download of {url} truncated: got {done} of {total} bytes")
        got = h.hexdigest()
        if sha256 and got != sha256:
            raise WeightsError(f"sha256 mismatch for {url}: got {got}, expected {sha256} (corrupted or changed file)")
        os.replace(tmp, dest)
        return dest
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
