"""Where the FSRT weights come from, and why we cannot fetch them automatically.

The upstream README (andrerochow/fsrt @ b895383, "Pretrained Checkpoints") publishes the checkpoints only as a
Google Drive folder; `kp_detector.pt` goes to `fsrt_checkpoints/` beside `vox256.pt`. A Drive folder is not a
file URL (it lists its files through JavaScript and large files need a confirmation page), and upstream states
no checksums and no license for the files. So `download()` accepts files already in `dest` (verified exactly like
--weights) and otherwise fails with one line saying where to get them. Nothing is written, so nothing partial
is left behind.
"""
from __future__ import annotations

from pathlib import Path

from ..common.by_hand import already_placed, one_line_cli
from .weights import KP_FILE, MODEL_FILE, load_state_dicts

GOOGLE_DRIVE = "https://drive.google.com/drive/folders/1R9BuWM-kqPddriZtIVf5z3Yq14D4DDSP?usp=drive_link"


def download(dest: Path) -> Path:
    """`dest` once it holds both verified checkpoints; WeightsError (one line) when they are not there."""
    return already_placed(dest, (KP_FILE, MODEL_FILE), lambda d: load_state_dicts(d), lambda d: (
        f"FSRT weights cannot be downloaded automatically (a Google Drive folder, no direct file links): fetch "
        f"fsrt_checkpoints/{KP_FILE} and fsrt_checkpoints/{MODEL_FILE} by hand from {GOOGLE_DRIVE} into {d} "
        f"(the repository states no license for them: they are yours to bring)"))


def main(argv=None) -> int:
    return one_line_cli("python -m export.fsrt.download", __doc__,
                        lambda p: p.add_argument("dest", type=Path, help=f"directory for {KP_FILE} and {MODEL_FILE}"),
                        lambda a: print(download(a.dest)), argv)


if __name__ == "__main__":
    raise SystemExit(main())
