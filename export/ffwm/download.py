"""Where the FFWM weights come from, and why we cannot fetch them automatically.

The upstream README (csyxwei/FFWM @ d42c578, section "Testing") publishes the checkpoints only as a Google Drive
folder and a BaiduNetDisk share. Neither is a direct file URL: a Drive folder lists its files through JavaScript,
and Baidu needs a login and the extraction code. So `download()` only accepts files that are already in `dest`
(verified like --weights) and otherwise fails with one line saying where to get them.
"""
from __future__ import annotations

from pathlib import Path

from ..common.by_hand import already_placed, one_line_cli
from .weights import FILES, load_state_dicts

GOOGLE_DRIVE = "https://drive.google.com/drive/folders/1U26FvuLtXraxPrRNxCxFka3DOvRuG4NW?usp=sharing"
BAIDU = "https://pan.baidu.com/s/1X62Atd9Q_USs0aGQk3WllA"
BAIDU_CODE = "l98p"


def download(dest: Path) -> Path:
    """`dest` once it holds both verified checkpoints; WeightsError (one line) when they are not there."""
    return already_placed(dest, FILES.values(), lambda d: load_state_dicts(d), lambda d: (
        f"FFWM weights cannot be downloaded automatically: fetch ffwm/{' and ffwm/'.join(FILES.values())} by hand "
        f"from {GOOGLE_DRIVE} (or {BAIDU}, code {BAIDU_CODE}) into {d}"))


def main(argv=None) -> int:
    return one_line_cli("python -m export.ffwm.download", __doc__,
                        lambda p: p.add_argument("dest", type=Path, help="directory for " + " and ".join(FILES.values())),
                        lambda a: print(download(a.dest)), argv)


if __name__ == "__main__":
    raise SystemExit(main())
