"""python -m export: build, check and package the networks of every model family.

  python -m export list                         families and their weight status
  python -m export parity MODEL FIXTURE_DIR     our networks vs upstream reference outputs (exit 0 = all pass)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import family as fam


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list model families")
    pp = sub.add_parser("parity", help="compare our networks with a parity fixture set")
    pp.add_argument("model", help="model family name, e.g. scaleway")
    pp.add_argument("fixture_dir", type=Path, help="directory of <net>.npz fixtures (manifest.json in it or its parent)")
    args = p.parse_args(argv)

    if args.cmd == "list":
        for name, f in fam.families().items():
            print(f"{name:14s} {f.summary}")
        return 0
    if args.cmd == "parity":
        from .common import parity
        return 0 if parity.run(fam.get(args.model), args.fixture_dir) else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
