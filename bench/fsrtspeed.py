"""FSRT on CPU in ONE run: the served CPU ensemble (1 client) per frame at each output size, cold (a photo the
server has not seen: the source's keypoints, expression and encoder run) and edit (the same photo at another pose:
those three answered from Triton's response cache), then the eager PyTorch reference (export.fsrt.reference) on
the same crops, cold (whole frontalize) and edit (driver render + driver keypoints/expression + decoder, z reused).
Every row includes decode + face crop (+ the driver render); batch 1, --threads intra-op threads.
The served rows ask for RAW too, for the last column: served vs eager raw colours on the cold photo.
Writes DIR/fsrtspeed.json and DIR/fsrtspeed.md.

    python -m bench fsrtspeed --out out/fsrtspeed              # ~10 minutes on 2 cores (256 px dominates)
    python -m bench fsrtspeed --out out/fsrtspeed --sizes 128
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from facefront.repository import REPO_ROOT

PHOTOS = ("obama.jpg", "biden.jpg", "astronaut.png")   # one unseen photo per size for the cold rows
EDIT_YAW = 15.0


def add_arguments(p):
    p.add_argument("--out", type=Path, required=True, help="folder for fsrtspeed.json and fsrtspeed.md")
    p.add_argument("--sizes", default="128,256", help="output sizes (default 128,256)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads of the eager reference (default 2)")
    p.add_argument("--no-serve", action="store_true", help="skip the served rows")
    p.add_argument("--no-eager", action="store_true", help="skip the eager rows")


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _infer(c, data: bytes, size: int, yaw: float = 0.0):
    """One request as the client sends it (IMAGE, POSE, CONTROLS), also asking for RAW (the pre-clamp colours,
    for the fidelity column): -> (FRONTAL, RAW)."""
    import numpy as np
    tc = c._tc
    tensors = []
    for name, value in (("IMAGE", np.frombuffer(data, np.uint8)[None]), ("POSE", np.array([[yaw, 0, 0]], np.float32)),
                        ("CONTROLS", np.array([[size]], np.float32))):
        t = tc.InferInput(name, list(value.shape), "UINT8" if value.dtype == np.uint8 else "FP32")
        t.set_data_from_numpy(value)
        tensors.append(t)
    r = c._call("infer", "fsrt_frontalize", tensors, outputs=[tc.InferRequestedOutput(n) for n in ("FRONTAL", "RAW")])
    return r.as_numpy("FRONTAL")[0], r.as_numpy("RAW")[0]


def served(sizes, log=print) -> tuple[list[dict], dict]:
    from client import FrontalizeClient
    from facefront.data import photo
    from facefront.serving.server import Server, free_ports
    http, grpc, metrics = free_ports(3)
    srv = Server(models=["fsrt"], http_port=http, grpc_port=grpc, metrics_port=metrics,
                 log_path=REPO_ROOT / ".cache" / "triton" / f"fsrtspeed-{os.getpid()}.log")
    rows, raws = [], {}
    srv.start()
    try:
        with FrontalizeClient(srv.grpc_url, timeout=900) as c:
            c.frontalize(photo("obama2.jpg"), model="fsrt", output_size=128)   # warm-up: sessions, arenas
            for size, name in zip(sizes, PHOTOS):
                data = photo(name).read_bytes()
                cold, (out, raws[size]) = _timed(lambda d=data, n=size: _infer(c, d, n))
                edit, _ = _timed(lambda d=data, n=size: _infer(c, d, n, EDIT_YAW))
                assert out.shape == (size, size, 3)
                rows += [{"mode": "served", "size": size, "case": "cold", "s": cold, "photo": name},
                         {"mode": "served", "size": size, "case": "edit", "s": edit, "photo": name}]
                log(f"served {size}px: cold {cold:.1f} s, edit {edit:.1f} s")
    finally:
        srv.stop()
    return rows, raws


def eager(sizes, threads: int, log=print) -> tuple[list[dict], dict]:
    import torch
    torch.set_num_threads(threads)
    from export.fsrt import reference
    from facefront.data import photo
    from facefront.fsrt import stages
    from facefront.serving.stage import from_repository
    nets = reference.build()
    pre = from_repository("fsrt_preprocess")
    rows, raws = [], {}
    for size, name in zip(sizes, PHOTOS):
        data = photo(name).read_bytes()

        def cold(data=data, size=size):
            crop, lm = pre.prepare(data)
            return crop, lm, reference.frontalize(crop, size=size, landmarks=lm, nets=nets)

        t_cold, (crop, lm, ref) = _timed(cold)
        raws[size] = ref.raw
        with torch.no_grad():
            src = torch.from_numpy(stages.to_chw(crop)[None])
            kp_s, e_s = reference.keypoints_and_expression(nets, src)
            z = nets.encoder(src, kp_s, e_s)

            def edit(data=data, size=size, z=z):
                crop2, lm2 = pre.prepare(data)   # the served edit decodes and crops again too
                drv = stages.to_chw(stages.driver(crop2, lm2, EDIT_YAW, 0, 0))[None]
                kp_d, e_d = reference.keypoints_and_expression(nets, torch.from_numpy(drv))
                return reference.decode(nets, z, kp_d, e_d, size=size)

            t_edit, _ = _timed(edit)
        rows += [{"mode": "eager", "size": size, "case": "cold", "s": t_cold, "photo": name},
                 {"mode": "eager", "size": size, "case": "edit", "s": t_edit, "photo": name}]
        log(f"eager {size}px: cold {t_cold:.1f} s, edit {t_edit:.1f} s")
    return rows, raws


def run(args) -> int:
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    import numpy as np
    s_rows, s_raw = ([], {}) if args.no_serve else served(sizes)
    e_rows, e_raw = ([], {}) if args.no_eager else eager(sizes, args.threads)
    rows = s_rows + e_rows
    # served RAW vs the eager reference's raw colours on the same photo (the cold rows)
    fidelity = {str(n): float(np.abs(s_raw[n] - e_raw[n]).max()) for n in sizes if n in s_raw and n in e_raw}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fsrtspeed.json").write_text(json.dumps({"rows": rows, "threads": args.threads, "edit_yaw": EDIT_YAW,
                                                         "served_vs_eager_raw_max_abs": fidelity}, indent=1))
    by = {(r["mode"], r["size"], r["case"]): r["s"] for r in rows}
    lines = ["| output | served cold s | served edit s | eager cold s | eager edit s | served vs eager raw max abs |",
             "|---|---:|---:|---:|---:|---:|"]
    for size in sizes:
        cells = [f"{by[k]:.1f}" if (k := (m, size, c)) in by else "—" for m in ("served", "eager") for c in ("cold", "edit")]
        fid = f"{fidelity[str(size)]:.1e}" if str(size) in fidelity else "—"
        lines.append(f"| {size} px | " + " | ".join(cells) + f" | {fid} |")
    (args.out / "fsrtspeed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    import argparse
    import sys
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    sys.exit(run(p.parse_args()))
