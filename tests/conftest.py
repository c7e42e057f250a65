"""Shared test fixtures: paths, and ONE CPU tritonserver per test session (started on first use)."""
from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# No test contacts the internet: a Python socket of this process that connects anywhere but loopback is refused and
# recorded, and the session fails naming it (a refused connect inside code that catches network errors would
# otherwise pass as "no network here").
OUTSIDE: list[str] = []
_connect = socket.socket.connect


def _loopback_only(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        try:
            local = ipaddress.ip_address(address[0].split("%")[0]).is_loopback
        except ValueError:
            local = address[0] == "localhost"
        if not local:
            OUTSIDE.append(f"{address[0]}:{address[1]}")
            raise ConnectionRefusedError(f"tests never contact the internet (tried {address[0]}:{address[1]})")
    return _connect(sock, address)


socket.socket.connect = _loopback_only


def pytest_sessionfinish(session, exitstatus):
    if OUTSIDE:
        print(f"\nerror: tests tried to reach hosts outside this machine: {', '.join(sorted(set(OUTSIDE)))}")
        session.exitstatus = 1


from facefront.serving.server import free_ports  # noqa: E402,F401  (tests import it from here)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: the parity fixtures live in ../shared beside the checkout")
    return SHARED


@pytest.fixture(scope="session")
def triton_server():
    """The real tritonserver (CPU flavour) serving every exported family, started once per session."""
    from facefront.serving.server import Server
    # the session server runs every leaf in fp32, so the served-vs-reference tests keep fp32 tolerances; the bf16
    # path (a leaf's `precision: auto` on a CPU with bf16) has its own fidelity test (tests/test_precision.py)
    os.environ.setdefault("FACEFRONT_PRECISION", "fp32")
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
