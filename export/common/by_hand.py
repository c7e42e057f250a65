"""Weights that no script can fetch (a Google Drive folder, a share behind a login): the user places the files, and
these helpers check them and give the family's two small command lines one shape.

    already_placed(dest, names, verify, how_to_get)   `dest` once every file is there and verified, else one line
    one_line_cli(prog, doc, add_arguments, action)    a weights tool's CLI: `error: <one line>` and exit 1 on failure
    print_verified(folder, names, pinned)             `ok  <file>  sha256 <hash>  (pinned: <hash or unknown>)`
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from facefront.artifact import sha256_file

from .download import WeightsError


def already_placed(dest: Path, names: Iterable[str], verify: Callable[[Path], object],
                   how_to_get: Callable[[Path], str]) -> Path:
    """`dest` once it holds every file in `names`, checked by verify(dest) (which raises WeightsError); otherwise
    WeightsError(how_to_get(dest)), one line saying where to get them. Writes nothing, so nothing partial is left."""
    dest = Path(dest)
    if all((dest / name).is_file() for name in names):
        verify(dest)
        return dest
    raise WeightsError(how_to_get(dest))


def one_line_cli(prog: str, doc: str | None, add_arguments: Callable[[argparse.ArgumentParser], None],
                 action: Callable[[argparse.Namespace], None], argv=None) -> int:
    """Parse argv, run action(args) (it prints its result): 0; a WeightsError: `error: <message>` and 1."""
    p = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        action(args)
    except WeightsError as e:
        print(f"error: {e}")
        return 1
    return 0


def print_verified(folder: Path, names: Iterable[str], pinned: Mapping[str, str]) -> None:
    for name in names:
        print(f"ok  {name}  sha256 {sha256_file(Path(folder) / name)}  (pinned: {pinned[name]})")
