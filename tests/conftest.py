"""Shared test fixtures: paths, and ONE CPU tritonserver per test session (started on first use)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"



def free_ports(n: int) -> list[int]:
    """n free loopback ports (away from the 8000-8002 a developer's `make serve` may hold)."""
    import socket
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: the parity fixtures live in ../shared beside the checkout")
    return SHARED


@pytest.fixture(scope="session")
def triton_server():
    """The real tritonserver (CPU flavour) serving every exported family, started once per session."""
    from facefront.serving.server import Server
    http, grpc, metrics = free_ports(3)
    srv = Server(http_port=http, grpc_port=grpc, metrics_port=metrics,
                 log_path=REPO / ".cache" / "triton" / f"pytest-server-{os.getpid()}.log")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def pytest_collection_modifyitems(config, items):
    has_gpu = False
    try:
        import torch
        has_gpu = torch.cuda.is_available()
    except Exception:
        pass
    if not has_gpu:
        skip = pytest.mark.skip(reason="needs an NVIDIA GPU (PyTorch CUDA); the CPU path is tested separately")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
