"""Weights download: good file, sha256 mismatch, truncated transfer, unreachable host (127.0.0.1 only)."""
import hashlib
import http.server
import threading

import pytest

from export.common.download import WeightsError, fetch

GOOD = bytes(range(256)) * 4096  # 1 MiB


def _serve(body: bytes, length: int):
    """A GET handler that answers with body, announcing length bytes (a short body: a truncated transfer)."""
    def do_get(self):
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        try:
            self.wfile.write(body)
        except BrokenPipeError:
            pass
        self.close_connection = True
    return do_get


PATHS = {"/good.bin": _serve(GOOD, len(GOOD)), "/corrupt.bin": _serve(GOOD[:-1] + b"\x00", len(GOOD)),
         "/truncated.bin": _serve(GOOD[: len(GOOD) // 2], len(GOOD))}   # promises more than it sends


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path not in PATHS:
            self.send_error(404)
            return
        PATHS[self.path](self)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


SHA = hashlib.sha256(GOOD).hexdigest()


def _leftovers(d):
    return sorted(p.name for p in d.iterdir())


def test_good_file_is_verified_and_placed(server, tmp_path):
    dest = fetch(f"{server}/good.bin", tmp_path / "w.pt", SHA)
    assert dest.read_bytes() == GOOD and _leftovers(tmp_path) == ["w.pt"]


def test_sha256_mismatch_leaves_nothing(server, tmp_path):
    with pytest.raises(WeightsError, match="sha256 mismatch") as e:
        fetch(f"{server}/corrupt.bin", tmp_path / "w.pt", SHA)
    assert "\n" not in str(e.value)
    assert _leftovers(tmp_path) == []


def test_truncated_download_leaves_nothing(server, tmp_path):
    with pytest.raises(WeightsError, match="truncated|cannot download"):
        fetch(f"{server}/truncated.bin", tmp_path / "w.pt", SHA)
    assert _leftovers(tmp_path) == []


def test_existing_file_survives_a_failed_download(server, tmp_path):
    (tmp_path / "w.pt").write_bytes(b"old")
    with pytest.raises(WeightsError):
        fetch(f"{server}/corrupt.bin", tmp_path / "w.pt", SHA)
    assert (tmp_path / "w.pt").read_bytes() == b"old"


def test_unreachable_host_is_one_clear_line(tmp_path):
    with pytest.raises(WeightsError, match="cannot download") as e:
        fetch("http://127.0.0.1:9/none.bin", tmp_path / "w.pt", SHA, timeout=2)
    assert "\n" not in str(e.value) and _leftovers(tmp_path) == []


def _cli(dest, mirror):
    """`python -m export download scaleway` with its public host replaced by a local mirror: no test touches the
    internet, and the outcome is the same on every machine."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO
    env = {**os.environ, "FACEFRONT_WEIGHTS_MIRROR": mirror}
    return subprocess.run([sys.executable, "-m", "export", "download", "scaleway", "--dest", str(dest)],
                          capture_output=True, text=True, cwd=REPO, timeout=120, env=env)


def test_download_cli_unreachable_host_is_one_line_and_exit_1(tmp_path):
    r = _cli(tmp_path, "http://127.0.0.1:9")                    # discard port: connection refused
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("error: cannot download http://127.0.0.1:9/github.com/scaleway/"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and _leftovers(tmp_path) == []


def test_download_cli_places_the_file_from_a_mirror(server, tmp_path, monkeypatch):
    # scaleway's sha256 is not pinned (upstream states none): the file is placed whole, under its own name
    monkeypatch.setattr(_Handler, "do_GET", _serve(GOOD, len(GOOD)))
    r = _cli(tmp_path, server)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"scaleway: weights at {tmp_path / 'generator_v0.pt'}"
    assert (tmp_path / "generator_v0.pt").read_bytes() == GOOD and _leftovers(tmp_path) == ["generator_v0.pt"]


def test_download_cli_truncated_transfer_is_one_line_and_leaves_nothing(server, tmp_path, monkeypatch):
    monkeypatch.setattr(_Handler, "do_GET", _serve(GOOD[:1000], len(GOOD)))
    r = _cli(tmp_path, server)
    assert r.returncode == 1, r.stdout
    assert r.stderr.startswith("error: download of ") and "truncated" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and _leftovers(tmp_path) == []


def test_mirror_keeps_host_and_path(monkeypatch):
    from export.common.download import MIRROR_ENV, mirrored
    url = "https://huggingface.co/KwaiVGI/LivePortrait/resolve/main/x.pth"
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    assert mirrored(url) == url
    monkeypatch.setenv(MIRROR_ENV, "http://10.0.0.5/w/")
    assert mirrored(url) == "http://10.0.0.5/w/huggingface.co/KwaiVGI/LivePortrait/resolve/main/x.pth"
