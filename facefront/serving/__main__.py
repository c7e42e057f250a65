"""python -m facefront.serving: run the CPU Triton server in the foreground (Ctrl-C stops it cleanly)."""
from __future__ import annotations

import argparse
import signal
import sys
import time

from facefront import precision, repository

from .server import Server, ServerError, exported_families, exported_services


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m facefront.serving", description=__doc__,
                                epilog="example: python -m facefront.serving --models scaleway,mesh3d")
    p.add_argument("--models", help="comma-separated families to serve (default: every exported one)")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    p.add_argument("--cache-mb", type=int, default=256,
                   help="Triton response cache in MiB for models that enable it (LivePortrait F/M); 0: off")
    p.add_argument("--list", action="store_true", help="list exported families and exit")
    p.add_argument("--check-every", type=float, default=2.0, metavar="S",
                   help="seconds between health checks of the server and its python stubs; a dead stub's model is "
                        "reloaded, or the whole server restarted if that fails (default 2; 0: no supervision)")
    args = p.parse_args(argv)
    ready, skipped = exported_families()
    if args.list:
        for name, fam in repository.families().items():
            state = skipped.get(name) or f"ready, weights: {repository.weights_kind(name)}"
            takes = ["POSE"] if fam.pose else []
            if fam.controls:
                takes.append(f"CONTROLS ({', '.join(c.name for c in fam.controls)})")
            takes += [n for n, _ in fam.options]
            streams = " (streams its progress)" if fam.decoupled else ""
            print(f"{name:14s} {state}; takes IMAGE{''.join(', ' + t for t in takes)}{streams}")
            for leaf in repository.members(fam.ensemble):
                how = precision.describe(repository.stage_parameters(leaf))
                if how:
                    print(f"{'':14s} {leaf}: {how}")
        svc_ready, svc_skipped = exported_services()
        for m in svc_ready:
            print(f"{m:14s} ready (service)")
        for m, why in svc_skipped.items():
            print(f"{m:14s} {why} (service)")
        return 0
    models = [m for m in args.models.split(",") if m] if args.models else None
    srv = Server(models=models, http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port,
                 cache_bytes=args.cache_mb << 20)
    stop = {"now": False}

    def _stop(signum, frame):
        stop["now"] = True
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        srv.start()
    except ServerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for m, why in srv.skipped.items():
        print(f"skipped {m}: {why}", file=sys.stderr)
    print(f"serving {', '.join(srv.served + srv.services)} (CPU flavour) on grpc {srv.grpc_url}, http {srv.http_url}, "
          f"metrics 127.0.0.1:{args.metrics_port}; log {srv.log_path}; repository view {srv.view}. Ctrl-C to stop.",
          flush=True)
    last_check = time.monotonic()
    while not stop["now"]:
        time.sleep(0.2)
        if srv.proc.poll() is not None:
            print(f"error: tritonserver exited with {srv.proc.returncode}:\n{srv.log_tail()}", file=sys.stderr)
            srv.stop()
            return 1
        if args.check_every > 0 and time.monotonic() - last_check >= args.check_every:
            last_check = time.monotonic()
            dead = srv.dead_stubs()
            if dead:
                # Triton would keep answering ready while failing every request to that model: reload that model
                # (new stubs), or the whole server if that fails
                models = sorted(set(dead.values()))
                print(f"{'; '.join(srv.problems())}: reloading {', '.join(models)}", file=sys.stderr, flush=True)
                t0 = time.monotonic()
                try:
                    for m in models:
                        srv.reload(m)
                    print(f"reloaded {', '.join(models)} in {time.monotonic() - t0:.1f} s", flush=True)
                except ServerError as e:
                    print(f"reload failed ({e}): restarting the server", file=sys.stderr, flush=True)
                    try:
                        srv.restart()
                    except ServerError as e2:
                        print(f"error: restart failed: {e2}", file=sys.stderr)
                        return 1
                    print(f"server restarted in {time.monotonic() - t0:.1f} s (restart {srv.restarts}); repository "
                          f"view {srv.view}", flush=True)
    srv.stop()
    print("server stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
