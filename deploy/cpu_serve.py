"""Entry point of the CPU image (deploy/cpu.Dockerfile): the embedded CPU tritonserver (facefront.serving) in the
foreground, listening on every interface so a Kubernetes Service can reach it, its log on stdout.

    python3 deploy/cpu_serve.py [--models scaleway,mesh3d] [--address 0.0.0.0]

`python -m facefront.serving` binds 127.0.0.1 only (right on a shared development machine); here the addresses
are passed to tritonserver once more after the launcher's own flags, and tritonserver keeps the last value given.
SIGTERM (pod shutdown) stops tritonserver, which finishes its in-flight requests first. A python stub that dies is
left to the pod's liveness probe (deploy/probe.py): the kubelet restarts the container, as it does on GPU pods.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the facefront checkout, when run by path

from facefront.serving.server import Server, ServerError  # noqa: E402


def server(models: list[str] | None, address: str, ports=(8000, 8001, 8002), log: str = "/dev/stdout") -> Server:
    http, grpc, metrics = ports
    return Server(models=models, http_port=http, grpc_port=grpc, metrics_port=metrics, log_path=Path(log),
                  startup_timeout=600,
                  extra_args=[f"--http-address={address}", f"--grpc-address={address}",
                              f"--metrics-address={address}"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cpu_serve.py", description=__doc__.splitlines()[0])
    p.add_argument("--models", help="comma-separated families (default: every exported one)")
    p.add_argument("--address", default="0.0.0.0", help="interface to listen on (default all)")
    p.add_argument("--ports", default="8000,8001,8002", help="HTTP, gRPC and metrics ports")
    p.add_argument("--log", default="/dev/stdout", help="server log (default stdout, for kubectl logs)")
    a = p.parse_args(argv)
    try:
        ports = tuple(int(x) for x in a.ports.split(","))
        if len(ports) != 3:
            raise ValueError
    except ValueError:
        print(f"error: --ports needs three comma-separated numbers, got {a.ports!r}", file=sys.stderr)
        return 2
    models = [m for m in a.models.split(",") if m] if a.models else None
    srv = server(models, a.address, ports, a.log)
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    signal.signal(signal.SIGINT, lambda *_: stop.update(now=True))
    try:
        srv.start()
    except ServerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"serving {', '.join(srv.served + srv.services)} on {a.address}:{ports[0]} (HTTP), "
          f"{a.address}:{ports[1]} (gRPC), {a.address}:{ports[2]} (metrics)", file=sys.stderr, flush=True)
    while not stop["now"] and srv.proc.poll() is None:
        time.sleep(0.5)
    if srv.proc.poll() is not None and not stop["now"]:
        print(f"error: tritonserver exited with {srv.proc.returncode}", file=sys.stderr)
        return 1
    return 0 if srv.stop() in (0, None) else 1


if __name__ == "__main__":
    sys.exit(main())
