"""The gateway in a background thread of this process (tests, `studio.measure`, `studio.screenshot`)."""
from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path

import uvicorn

from .app import create_app


class BackgroundStudio:
    """uvicorn serving the studio app on 127.0.0.1:`port` until `stop()` (or the end of a `with` block)."""

    def __init__(self, triton: str, port: int | None = None, repository: Path | None = None, timeout: float = 300.0):
        if port is None:
            from facefront.serving.server import free_ports
            (port,) = free_ports(1)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        app = create_app(triton, repository=repository, timeout=timeout)
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                     server_header=False))
        self._thread = threading.Thread(target=self._server.run, name="studio", daemon=True)

    def start(self, timeout: float = 30.0) -> "BackgroundStudio":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._server.started:
                with urllib.request.urlopen(self.url + "/", timeout=5) as r:
                    if r.status == 200:
                        return self
            if not self._thread.is_alive():
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the studio gateway did not start on {self.url}")

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(10)

    def __enter__(self) -> "BackgroundStudio":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
