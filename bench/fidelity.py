"""Fidelity of the served engines against the reference implementation, per stage and end to end.

Per stage (network leaves with a PyTorch reference, listed in bench.speed.IN_PROCESS): the eager module the ONNX
file was exported from vs onnxruntime on that file (the CPU flavour's engine), on the same aligned uint8 crops.
End to end: the served ensemble's answer vs the same pipeline run in-process (facefront's crop + the eager
network; for mesh3d, facefront.face.mesh3d.frontalize, numpy: it has no network). Numbers: max and mean
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
    from .speed import IN_PROCESS
    spec = IN_PROCESS.get(family)
    if spec is None:
        return []
    onnx = REPO_ROOT / spec.onnx
    row = {"model": family, "stage": Path(spec.onnx).parts[1], "flavour": "onnxruntime fp32 CPU",
           "reference": "eager PyTorch (export reference)"}
    if not onnx.is_file():
        return [{**row, "error": f"no {spec.onnx}: run `python -m export onnx {family}`"}]
    import onnxruntime as ort
    import torch
    net = spec.build()
    sess = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    res = []
    with torch.inference_mode():
        for c in crops:
            x = c[None]
            res.append(compare(sess.run(None, {name: x})[0], net(torch.from_numpy(x.copy())).numpy()))
    return [{**row, **merge(res)}]


def end_to_end_rows(family: str, client, images: list[np.ndarray], paths: list[Path]) -> list[dict]:
    from facefront.serving.crop_stage import face_crop

    from .speed import IN_PROCESS
    row = {"model": family, "stage": "end to end (served ensemble)", "flavour": "tritonserver CPU (onnxruntime fp32)"}
    res = []
    if family == "mesh3d":
        from facefront.face.mesh3d import frontalize
        row["reference"] = "facefront.face.mesh3d.frontalize in-process (numpy)"
        for im, p in zip(images, paths):
            res.append(compare(client.frontalize(p, model=family), frontalize(im, size=256)))
    elif family in IN_PROCESS:
        import torch
        spec = IN_PROCESS[family]
        row["reference"] = "facefront crop + eager PyTorch in-process"
        net = spec.build()
        with torch.inference_mode():
            for im, p in zip(images, paths):
                crop = face_crop(im, family, spec.input_size)
                ref = net(torch.from_numpy(crop[None].copy())).numpy()[0]
                res.append(compare(client.frontalize(p, model=family), ref))
    else:
        return [{**row, "reference": "-", "error": f"no in-process reference for {family} in bench.speed.IN_PROCESS"}]
    return [{**row, **merge(res)}]


def gpu_rows() -> tuple[list[dict], str]:
    if not GPU_RESULTS.is_file():
        return [], f"no {GPU_RESULTS.relative_to(REPO_ROOT)}: TensorRT fp32/fp16 need a GPU run (NGC image)"
    data = json.loads(GPU_RESULTS.read_text())
    return list(data.get("rows", [])), f"recorded GPU run: {GPU_RESULTS.relative_to(REPO_ROOT)} ({data.get('machine', '?')})"


def run_fidelity(url: str, protocol: str, models: list[str]) -> dict:
    from client import FrontalizeClient
    from facefront.data import load_rgb, photo
    from facefront.face import align, analyze

    from .speed import IN_PROCESS
    images = [load_rgb(n) for n in PHOTOS]
    paths = [Path(photo(n)) for n in PHOTOS]
    rows = []
    with FrontalizeClient(url, protocol=protocol, timeout=120) as c:
        for m in models:
            if m in IN_PROCESS:
                crops = [align.crop(im, analyze(im, max_faces=1)[0], m, size=IN_PROCESS[m].input_size)[0] for im in images]
                rows += stage_rows(m, crops)
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
            from facefront.serving.server import exported_families

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
