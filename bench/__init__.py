"""facefront benchmarks: `python -m bench COMMAND` (see `python -m bench --help`).

Each command is one module with `add_arguments(parser)` and `run(args) -> exit code`; __main__ lists them.
bench sits at the end of the data flow: it talks to the server through `client/` and may import `export/`
for in-process reference runs.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Iterator

from client.api import DEFAULT_URLS


def add_server_arguments(p: argparse.ArgumentParser) -> None:
    """--url/--protocol/--serve, shared by the commands that talk to a server."""
    p.add_argument("--protocol", choices=("grpc", "http"), default="grpc", help="wire protocol (default grpc)")
    p.add_argument("--url", help=f"server host:port (default {DEFAULT_URLS['grpc']} for grpc, {DEFAULT_URLS['http']} for http)")
    p.add_argument("--serve", action="store_true",
                   help="start a server for this run only (facefront.serving, ports 8000/8001) instead of using one")


@contextlib.contextmanager
def server_url(args) -> Iterator[str]:
    """The host:port to use for args.protocol: args.url, or a server started for the run with --serve."""
    if not args.serve:
        yield args.url or DEFAULT_URLS[args.protocol]
        return
    from facefront.serving.server import Server
    print(f"starting a server for {args.model} ...", file=sys.stderr)
    with Server(models=[args.model]) as srv:
        yield srv.grpc_url if args.protocol == "grpc" else srv.http_url


def standalone(module_name: str, argv: list[str] | None = None) -> int:
    """`python -m bench.<name>`: the same command as `python -m bench <name>`, for modules with
    add_arguments(parser) and run(args)."""
    import importlib
    mod = importlib.import_module(module_name)
    p = argparse.ArgumentParser(prog=f"python -m {module_name}", description=mod.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    mod.add_arguments(p)
    return mod.run(p.parse_args(argv))



def header(command: str) -> dict:
    """What every results file records about its run: the machine, the date and the command as typed."""
    argv = sys.argv[1:]
    if argv[:1] == [command]:      # `python -m bench NAME ...` (else `python -m bench.NAME ...`)
        argv = argv[1:]
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "")
    return {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "cpu": cpu or platform.processor(),
                        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]},
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(["python -m bench", command, *argv])}


def add_results_argument(p: argparse.ArgumentParser, example: str) -> None:
    """--results PATH: also write the run as a results file (what `python -m bench readme` renders)."""
    p.add_argument("--results", type=Path, metavar="JSON",
                   help=f"also write this run, with machine, date and command, to JSON (e.g. {example}; "
                        "`python -m bench readme` renders README tables from bench/results/)")


def write_results(path: Path | None, command: str, payload: dict, started: dict | None = None) -> None:
    """Write payload under header(command) (or the header taken when the run started) to path, if given."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**(started or header(command)), **payload}, indent=1) + "\n")
    print(f"results: {path}", file=sys.stderr)
