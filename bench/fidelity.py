"""Fidelity of the served engines against the reference implementation, per stage and end to end.

Per stage (network leaves with a PyTorch reference: the `reference` their export folder's FAMILY declares): the
eager module the ONNX file was exported from vs onnxruntime on that file (the CPU flavour's engine), on the same
aligned uint8 crops. End to end: the served ensemble's answer vs the same pipeline run in-process (the family's
served crop stage + the eager network; or the FAMILY's `end_to_end` function, e.g. mesh3d's numpy renderer). Numbers: max and mean
absolute error (uint8 levels), PSNR (dB) and relative L2 (|a-b| / |b|).
GPU flavours (TensorRT fp32/fp16) are read from bench/results/fidelity_gpu.json when a GPU run left one there
(same fields, plus "flavour"); they are never made up here.

    python -m bench.fidelity --serve --out out/fidelity
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from . import add_server_arguments

REPO_ROOT = Path(__file__).resolve().parents[1]
GPU_RESULTS = REPO_ROOT / "bench" / "results" / "fidelity_gpu.json"
PHOTOS = ("obama.jpg", "biden.jpg")


def compare(a: np.ndarray, ref: np.ndarray) -> dict:
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    if a.shape != ref.shape:
        return {"error": f"shape {list(a.shape)} vs reference {list(ref.shape)}"}
    d = np.abs(a - ref)
    mse = float((d ** 2).mean())
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean()),
            "psnr_db": float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse)),
            "rel_l2": float(np.linalg.norm(a - ref) / max(np.linalg.norm(ref), 1e-12))}


def merge(items: list[dict]) -> dict:
    """Worst max, mean of means, worst PSNR and rel L2 over several comparisons."""
    ok = [i for i in items if "error" not in i]
    if not ok:
        return items[0] if items else {"error": "no comparison"}
    return {"max_abs": max(i["max_abs"] for i in ok), "mean_abs": float(np.mean([i["mean_abs"] for i in ok])),
            "psnr_db": min(i["psnr_db"] for i in ok), "rel_l2": max(i["rel_l2"] for i in ok), "n": len(ok)}


def stage_rows(family: str, crops: list[np.ndarray]) -> list[dict]:
    from export.common.family import families
    fam = families().get(family)
    spec = fam.reference if fam else None
    if spec is None:
        return []
    row = {"model": family, "stage": spec.network, "flavour": "onnxruntime fp32 CPU",
           "reference": "eager PyTorch (export reference)"}
    if not spec.onnx.is_file():
        return [{**row, "error": f"no {spec.onnx.relative_to(REPO_ROOT)}: run `python -m export onnx {family}`"}]
    import torch

    from facefront.sessions import onnx_session
    net = spec.build()
    sess = onnx_session(spec.onnx)
    name = sess.get_inputs()[0].name
    res = []
    with torch.inference_mode():
        for c in crops:
            x = c[None]
            res.append(compare(sess.run(None, {name: x})[0], net(torch.from_numpy(x.copy())).numpy()))
    return [{**row, **merge(res)}]


def served_crops(family: str, paths: list[Path]) -> list[np.ndarray]:
    """The family's crops as its served preprocess stage makes them (same code, same config parameters)."""
    from facefront.repository import preprocess_model
    from facefront.serving.stage import from_repository
    stage = from_repository(preprocess_model(family))
    return [stage.crop_one(Path(p).read_bytes()) for p in paths]


def end_to_end_rows(family: str, client, images: list[np.ndarray], paths: list[Path]) -> list[dict]:
    from export.common.family import families
    fam = families().get(family)
    row = {"model": family, "stage": "end to end (served ensemble)", "flavour": "tritonserver CPU (onnxruntime fp32)"}
    res = []
    if fam is not None and fam.end_to_end is not None:
        row["reference"] = f"export/{family} FAMILY.end_to_end in-process"
        for im, p in zip(images, paths):
            res.append(compare(client.frontalize(p, model=family), fam.end_to_end(im)))
    elif fam is not None and fam.reference is not None:
        import torch
        row["reference"] = "the served crop stage + eager PyTorch in-process"
        net = fam.reference.build()
        with torch.inference_mode():
            for crop, p in zip(served_crops(family, paths), paths):
                ref = net(torch.from_numpy(crop[None].copy())).numpy()[0]
                res.append(compare(client.frontalize(p, model=family), ref))
    else:
        return [{**row, "reference": "-", "error": f"no in-process reference declared in export/{family}"}]
    return [{**row, **merge(res)}]


def gpu_rows() -> tuple[list[dict], str]:
    if not GPU_RESULTS.is_file():
        return [], f"no {GPU_RESULTS.relative_to(REPO_ROOT)}: TensorRT fp32/fp16 need a GPU run (NGC image)"
    data = json.loads(GPU_RESULTS.read_text())
    return list(data.get("rows", [])), f"recorded GPU run: {GPU_RESULTS.relative_to(REPO_ROOT)} ({data.get('machine', '?')})"


def run_fidelity(url: str, protocol: str, models: list[str]) -> dict:
    from client import FrontalizeClient
    from export.common.family import families
    from facefront.data import load_rgb, photo
    images = [load_rgb(n) for n in PHOTOS]
    paths = [Path(photo(n)) for n in PHOTOS]
    fams = families()
    rows = []
    with FrontalizeClient(url, protocol=protocol, timeout=120) as c:
        for m in models:
            if m in fams and fams[m].reference is not None:
                rows += stage_rows(m, served_crops(m, paths))
            rows += end_to_end_rows(m, c, images, paths)
    gpu, gpu_note = gpu_rows()
    return {"photos": list(PHOTOS), "rows": rows + gpu, "gpu_note": gpu_note}


def add_arguments(p) -> None:
    p.add_argument("--models", help="comma-separated families (default: every served one)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    add_server_arguments(p)


def run(args) -> int:
    from .quality import served_models
    try:
        if args.serve:
            from facefront.repository import exported_families

            from .resources import server
            fams = [m.strip() for m in args.models.split(",")] if args.models else exported_families()[0]
            with server(fams) as srv:
                url = srv.grpc_url if args.protocol == "grpc" else srv.http_url
                res = run_fidelity(url, args.protocol, served_models(url, args.protocol, args.models))
        else:
            from client.api import DEFAULT_URLS
            url = args.url or DEFAULT_URLS[args.protocol]
            res = run_fidelity(url, args.protocol, served_models(url, args.protocol, args.models))
    except (ValueError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fidelity.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res["rows"], indent=1))
    return 0


def main(argv=None) -> int:
    from . import standalone
    return standalone("bench.fidelity", argv)


if __name__ == "__main__":
    sys.exit(main())
