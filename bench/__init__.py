"""facefront benchmarks: `python -m bench COMMAND` (see `python -m bench --help`).

Each command is one module with `add_arguments(parser)` and `run(args) -> exit code`; __main__ lists them.
bench sits at the end of the data flow: it talks to the server through `client/` and may import `export/`
for in-process reference runs.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
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

