"""The served request's front end (decode + face detection + 468 landmarks) against MediaPipe's own FaceMesh, quiet
and with every core busy, in one run.

Per photo, the median of --repeat calls on the already-decoded image: facefront's face analysis
(`facefront.face.analyze`, max_faces=1, onnxruntime on the graphs translated from mediapipe's tflite files) and
MediaPipe's FaceMesh (`solutions.face_mesh`, static_image_mode=True, max_num_faces=1: the same two networks on
TFLite/XNNPACK); also the JPEG/PNG decode (`facefront.imaging.decode`, full size and at the reduced DCT scale the
crop stages use). "busy" runs the same with one CPU-bound process per core beside it, as inside a server where
stages and clients share the cores. The last column is what one core sustains for the whole CPU front end
(decode at reduced scale + analysis + crop): the ceiling it puts on any model's GPU throughput per front-end core.
Writes OUT (JSON with machine, date, command) and prints a markdown table.

examples:
  python -m bench frontend --out bench/results/frontend_cpu.json
  python -m bench frontend --photos obama.jpg biden.jpg --repeat 10 --out out/frontend.json
"""
from __future__ import annotations

import json
import multiprocessing as mp_
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_PHOTOS = ("obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.png")


def add_arguments(p) -> None:
    p.add_argument("--photos", nargs="+", default=list(DEFAULT_PHOTOS), help="photos from `make data`")
    p.add_argument("--repeat", type=int, default=20, help="timed calls per photo and mode (median; default 20)")
    p.add_argument("--conditions", default="quiet,busy", help="quiet, busy or both (default quiet,busy)")
    p.add_argument("--out", type=Path, required=True, metavar="JSON")


def _burn(stop_at: float) -> None:
    x = 0
    while time.time() < stop_at:
        x += 1


def _median_ms(fn, repeat: int) -> float:
    fn()
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return round(float(np.median(t)) * 1000, 2)


def measure(photos: list[str], repeat: int) -> dict:
    from facefront.data import photo
    out = {}
    mesh = None
    try:
        import mediapipe as mp
        mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1)
    except Exception as e:  # noqa: BLE001 - report, don't fail: the comparison row stays empty
        out["_mediapipe_error"] = f"{type(e).__name__}: {e}"
    from facefront.face.analysis import FaceAnalyzer, OrtNetworks
    before = FaceAnalyzer(networks=OrtNetworks(threads=0, spinning=True))   # onnxruntime's defaults (the old setting)
    for name in photos:
        out[name] = _photo_row(Path(photo(name)).read_bytes(), repeat, mesh, before)
    return out


def _photo_row(data: bytes, repeat: int, mesh, before) -> dict:
    from facefront import imaging
    from facefront.face import align, analyze
    rgb = imaging.decode(data)
    row = {"pixels": f"{rgb.shape[1]}x{rgb.shape[0]}",
           "decode_ms": _median_ms(lambda: imaging.decode(data), repeat),
           "decode_reduced_ms": _median_ms(lambda: imaging.decode(data, min_side=128 * 8), repeat),
           "facefront_ms": _median_ms(lambda: analyze(rgb, max_faces=1), repeat),
           "facefront_ort_defaults_ms": _median_ms(lambda: before.analyze(rgb, max_faces=1), repeat)}
    if mesh is not None:
        row["mediapipe_ms"] = _median_ms(lambda: mesh.process(rgb), repeat)
        row["facefront_vs_mediapipe"] = round(row["facefront_ms"] / row["mediapipe_ms"], 2)
    small = imaging.decode(data, min_side=128 * 8)
    face = analyze(small, max_faces=1)[0]
    crop_ms = _median_ms(lambda: align.crop(small, face, "landmark_box", size=128), repeat)
    whole = row["decode_reduced_ms"] + _median_ms(lambda: analyze(small, max_faces=1), repeat) + crop_ms
    row["front_end_ms"] = round(whole, 2)
    row["front_end_images_per_s_one_core"] = round(1000 / whole, 1)
    return row


def run(args) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    res = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "processor": platform.processor()},
           "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "command": "python -m bench frontend " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["frontend"] else sys.argv[1:]),
           "note": "quiet = nothing else started by this command (other work on the machine is not controlled); "
                   "busy = one CPU-bound process per core beside it",
           "conditions": {}}
    for cond in conditions:
        burners = []
        if cond == "busy":
            stop_at = time.time() + 600
            burners = [mp_.Process(target=_burn, args=(stop_at,), daemon=True) for _ in range(os.cpu_count() or 1)]
            for b in burners:
                b.start()
        try:
            print(f"frontend: {cond} ...", file=sys.stderr, flush=True)
            res["conditions"][cond] = measure(args.photos, args.repeat)
        finally:
            for b in burners:
                b.terminate()
                b.join()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(markdown(res))
    return 0


def markdown(res: dict) -> str:
    lines = ["| condition | photo | decode ms (reduced) | facefront ms (before: onnxruntime defaults) | MediaPipe ms | "
             "ratio | front end, one core: images/s |", "|---|---|---:|---:|---:|---:|---:|"]
    for cond, rows in res["conditions"].items():
        for name, r in rows.items():
            if name.startswith("_"):
                continue
            lines.append(f"| {cond} | {name} ({r['pixels']}) | {r['decode_ms']} ({r['decode_reduced_ms']}) | "
                         f"{r['facefront_ms']} ({r['facefront_ort_defaults_ms']}) | {r.get('mediapipe_ms', '-')} | "
                         f"{r.get('facefront_vs_mediapipe', '-')} | "
                         f"{r['front_end_images_per_s_one_core']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from . import standalone
    return standalone("bench.frontend", argv)


if __name__ == "__main__":
    sys.exit(main())
