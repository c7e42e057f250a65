"""python -m studio: the facefront studio page, a gateway over a Triton server (it never loads a model).

    python -m studio --triton 127.0.0.1:8001                   # then open http://127.0.0.1:7860
    python -m studio --triton gpu-host:8001 --port 7860         # the GPU container's gRPC port
    python -m studio --serve                                    # also start the CPU Triton server (make studio)
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from client.api import strip_scheme


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m studio", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--triton", default="127.0.0.1:8001", metavar="URL",
                   help="the Triton server's gRPC address, host:port (default 127.0.0.1:8001)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes the page)")
    p.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    p.add_argument("--timeout", type=float, default=300.0, metavar="S",
                   help="seconds to wait for one render (default 300: LivePortrait on CPU takes seconds)")
    p.add_argument("--serve", action="store_true",
                   help="start the CPU Triton server (every exported model, on free ports) and stop it on exit; "
                        "--triton is then ignored")
    p.add_argument("--repository", type=Path, metavar="DIR",
                   help="the local model repository the server serves; its manifests tell real/synthetic weights "
                        "when the server's configs do not (make studio passes model_repository)")
    return p


def _port_busy(host: str, port: int) -> bool:
    import socket
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1" if host in ("0.0.0.0", "") else host, port)) == 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 < args.port < 65536:
        print(f"error: --port must be 1..65535, not {args.port}", file=sys.stderr)
        return 2
    if args.repository is not None and not args.repository.is_dir():
        print(f"error: --repository {args.repository} is not a folder", file=sys.stderr)
        return 2
    if _port_busy(args.host, args.port):
        print(f"error: port {args.port} on {args.host} is already in use (another studio?); pick one with --port",
              file=sys.stderr)
        return 2
    import uvicorn

    from .app import create_app
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    server = None
    triton = strip_scheme(args.triton)
    if args.serve:
        from facefront.serving.server import Server, ServerError, free_ports
        http, grpc, metrics = free_ports(3)
        server = Server(http_port=http, grpc_port=grpc, metrics_port=metrics)
        print("starting the CPU Triton server (every exported model; about a minute)...", flush=True)
        try:
            server.start()
        except ServerError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        triton = server.grpc_url
        print(f"Triton serving {', '.join(server.served + server.services)} on grpc {triton}; "
              f"log {server.log_path}", flush=True)
    try:
        app = create_app(triton, repository=args.repository, timeout=args.timeout)
        print(f"facefront studio: http://{args.host}:{args.port}/  (Triton gRPC at {triton}; Ctrl-C stops)",
              flush=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", server_header=False)
    finally:
        if server is not None:
            server.stop()
            print("Triton server stopped", flush=True)
    return 0

if __name__ == "__main__":
    sys.exit(main())
