"""The served request's front end (decode + face detection + 468 landmarks) against MediaPipe's own FaceMesh, quiet
and with every core busy, in one run.

Per photo, the median of --repeat calls on the already-decoded image, the modes interleaved call by call (so a
burst of other work on the machine hits them alike; onnxruntime's defaults alone after them, since its spinning
threads would slow the next call): facefront's face analysis (`facefront.face.analyze`,
max_faces=1) with its default networks (LiteRT/XNNPACK on MediaPipe's own tflite files when ai-edge-litert is
installed: `facefront_ms`, runtime in `facefront_runtime`), the same on onnxruntime with one thread and no spinning
(the graphs translated from the tflite files; the default before LiteRT: `facefront_onnxruntime_ms`) and with
onnxruntime's defaults (a thread per core, spinning: `facefront_ort_defaults_ms`), and MediaPipe's FaceMesh
(`solutions.face_mesh`, static_image_mode=True, max_num_faces=1: the same two networks on TFLite/XNNPACK), each
also as CPU time of the process per call (`*_cpu_ms`: steadier than wall time when other work shares the cores); also
the JPEG/PNG decode (`facefront.imaging.decode`, full size and at the reduced DCT scale the crop stages use).
`_networks` holds each network alone at batch 1 per runtime. "busy" runs the same with one CPU-bound process per
core beside it, as inside a server where stages and clients share the cores. The last column is what one core
sustains for the whole CPU front end (decode at reduced scale + analysis + crop): the ceiling it puts on any
model's GPU throughput per front-end core.
Writes OUT (JSON with machine, date, command) and prints a markdown table.

The condition "served" (`--conditions served`) is issue 10's second target instead: a CPU tritonserver serving
scaleway (and face_analyze), one gRPC client, the whole request (send the JPEG; decode, face, crop, network,
answer) against the in-process sum of its fastest parts (cv2 decode + MediaPipe's FaceMesh + the scaleway generator
alone in onnxruntime, as its CPU leaf runs it), and served face_analyze against cv2 decode + MediaPipe's FaceMesh,
interleaved call by call, with the served code run in-process beside them (`in_process_*`: what the server adds);
written under "served" in OUT. Each also as CPU time per call (`*_cpu_ms`, the mean: the in-process ones this
process's, the served ones the client's plus the whole server's, tritonserver and its python stubs, measured over
a block of --repeat calls of that request alone after the interleaved ones, since the kernel counts other processes'
CPU in 10 ms ticks) and the ratios on CPU time (`*_vs_parts_cpu`), which other work on a shared machine inflates
far less than wall time.

The condition "group" (`--conditions group`) is its third target: face analysis of every face in the group photos of
`make data` (all_faces: the photo is also searched on overlapping tiles) against one face of a single-face photo
(max_faces=1, the first of --photos), interleaved call by call; per photo the faces found, ms per photo, ms per face
and the ratio of the per-face cost to the single-face cost (wall and CPU), under "group" in OUT.

examples:
  python -m bench frontend --out bench/results/frontend_cpu.json
  python -m bench frontend --conditions group --repeat 10 --out bench/results/frontend_group_cpu.json
  python -m bench frontend --photos obama.jpg biden.jpg --repeat 10 --out out/frontend.json
  python -m bench frontend --conditions served --photos obama.jpg --repeat 30 --out bench/results/frontend_served_cpu.json
"""
from __future__ import annotations

import json
import multiprocessing as mp_
import os
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_PHOTOS = ("obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.png")


def add_arguments(p) -> None:
    p.add_argument("--photos", nargs="+", default=list(DEFAULT_PHOTOS), help="photos from `make data`")
    p.add_argument("--repeat", type=int, default=20, help="timed calls per photo and mode (median; default 20)")
    p.add_argument("--conditions", default="quiet,busy",
                   help="quiet, busy and/or served (the whole served request; default quiet,busy)")
    p.add_argument("--out", type=Path, required=True, metavar="JSON")


def _burn(stop_at: float) -> None:
    x = 0
    while time.time() < stop_at:
        x += 1


def _interleaved_ms(fns: dict, repeat: int, cpu: bool = False) -> dict[str, float]:
    """Median ms of each function ("x_ms"), called in turn (rotating order) `repeat` times after one warm-up call
    each; with `cpu`, also the median CPU time of this process (all its threads) per call ("x_cpu_ms"), which
    other work on the machine does not inflate the way it inflates the wall time."""
    names = list(fns)
    for n in names:
        fns[n]()
    t = {n: [] for n in names}
    c = {n: [] for n in names}
    for i in range(repeat):
        for n in names[i % len(names):] + names[:i % len(names)]:
            c0, t0 = time.process_time(), time.perf_counter()
            fns[n]()
            t[n].append(time.perf_counter() - t0)
            c[n].append(time.process_time() - c0)
    out = {n: round(float(np.median(v)) * 1000, 2) for n, v in t.items()}
    if cpu:
        out.update({n[:-3] + "_cpu_ms": round(float(np.median(v)) * 1000, 2) for n, v in c.items()})
    return out


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
    from facefront.face.analysis import FaceAnalyzer, OrtNetworks, default_analyzer
    analyzers = {
        "facefront": default_analyzer(),                                      # what analyze() and the stages run
        "facefront_onnxruntime": FaceAnalyzer(runtime="onnxruntime"),        # 1 thread, no spinning
        "facefront_ort_defaults": FaceAnalyzer(networks=OrtNetworks(threads=0, spinning=True)),  # the oldest setting
    }
    out["_networks"] = _networks(analyzers, repeat)
    for name in photos:
        out[name] = _photo_row(Path(photo(name)).read_bytes(), repeat, mesh, analyzers)
    return out


def _networks(analyzers: dict, repeat: int) -> dict:
    """Each network alone at batch 1 (random input), per runtime, interleaved: ms."""
    rng = np.random.default_rng(0)
    xd = rng.uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
    xl = rng.uniform(0, 1, (1, 192, 192, 3)).astype(np.float32)
    nets = {a.networks.runtime: a.networks for a in (analyzers["facefront"], analyzers["facefront_onnxruntime"])}
    fns = {}
    for rt, n in nets.items():
        fns[f"{rt}_detector_ms"] = lambda n=n: n.detector(xd)
        fns[f"{rt}_landmarks_ms"] = lambda n=n: n.landmarks(xl)
    return _interleaved_ms(fns, repeat)


def _photo_row(data: bytes, repeat: int, mesh, analyzers: dict) -> dict:
    from facefront import imaging
    from facefront.face import align
    rgb = imaging.decode(data)
    default = analyzers["facefront"]
    row = {"pixels": f"{rgb.shape[1]}x{rgb.shape[0]}", "facefront_runtime": default.networks.runtime}
    row.update(_interleaved_ms({"decode_ms": lambda: imaging.decode(data),
                                "decode_reduced_ms": lambda: imaging.decode(data, min_side=128 * 8)}, repeat))
    fns = {f"{k}_ms": (lambda a=a: a.analyze(rgb, max_faces=1)) for k, a in analyzers.items()
           if k != "facefront_ort_defaults"}
    if mesh is not None:
        fns["mediapipe_ms"] = lambda: mesh.process(rgb)
    row.update(_interleaved_ms(fns, repeat, cpu=True))
    # on its own: onnxruntime's spinning threads would slow whatever ran right after it
    old = analyzers["facefront_ort_defaults"]
    row["facefront_ort_defaults_ms"] = _median_ms(lambda: old.analyze(rgb, max_faces=1), repeat)
    if mesh is not None:
        for k in analyzers:
            row[f"{k}_vs_mediapipe"] = round(row[f"{k}_ms"] / row["mediapipe_ms"], 2)
            if f"{k}_cpu_ms" in row:
                row[f"{k}_vs_mediapipe_cpu"] = round(row[f"{k}_cpu_ms"] / max(row["mediapipe_cpu_ms"], 1e-3), 2)
    small = imaging.decode(data, min_side=128 * 8)
    face = default.analyze(small, max_faces=1)[0]
    crop_ms = _median_ms(lambda: align.crop(small, face, "landmark_box", size=128), repeat)
    whole = row["decode_reduced_ms"] + _median_ms(lambda: default.analyze(small, max_faces=1), repeat) + crop_ms
    row["front_end_ms"] = round(whole, 2)
    row["front_end_images_per_s_one_core"] = round(1000 / whole, 1)
    return row


def run(args) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    from . import header
    res = {**header("frontend"),
           "note": "quiet = nothing else started by this command (other work on the machine is not controlled); "
                   "busy = one CPU-bound process per core beside it",
           "conditions": {}}
    if "group" in conditions:
        conditions.remove("group")
        print("frontend: group photos ...", file=sys.stderr, flush=True)
        res["group"] = measure_group(args.photos[0], args.repeat)
    if "served" in conditions:
        conditions.remove("served")
        print("frontend: served ...", file=sys.stderr, flush=True)
        res["served"] = measure_served(args.photos, args.repeat)
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


def measure_group(single: str, repeat: int) -> dict:
    """Every face of each group photo vs one face of `single`, interleaved: ms, CPU ms, per face, ratios."""
    import json as _json

    from facefront.data import data_dir, read_rgb
    from facefront.face.analysis import default_analyzer
    analyzer = default_analyzer()
    one = read_rgb(data_dir() / single)
    entries = _json.loads((data_dir() / "manifest.json").read_text())["photos"]
    out = {"single": {"photo": single, "pixels": f"{one.shape[1]}x{one.shape[0]}"}}
    for e in entries:
        if e.get("faces", 1) < 2:
            continue
        img = read_rgb(data_dir() / e["file"])
        faces = len(analyzer.analyze(img))
        if not faces:
            continue
        ms = _interleaved_ms({"all_faces_ms": lambda img=img: analyzer.analyze(img),
                              "single_face_ms": lambda: analyzer.analyze(one, max_faces=1)}, repeat, cpu=True)
        out[e["file"]] = {"pixels": f"{img.shape[1]}x{img.shape[0]}", "faces": faces, "faces_in_manifest": e["faces"],
                          **ms, "per_face_ms": round(ms["all_faces_ms"] / faces, 2),
                          "per_face_vs_single": round(ms["all_faces_ms"] / faces / ms["single_face_ms"], 2),
                          "per_face_vs_single_cpu": round(ms["all_faces_cpu_ms"] / faces / ms["single_face_cpu_ms"], 2)}
        print(f"  {e['file']}: {faces} faces, {out[e['file']]['per_face_ms']} ms per face "
              f"({out[e['file']]['per_face_vs_single']}x one face)", file=sys.stderr, flush=True)
    return out


def measure_served(photos: list[str], repeat: int) -> dict:
    """Per photo: served scaleway and face_analyze (1 gRPC client) vs the in-process parts, interleaved; ms."""
    import mediapipe as mp

    from client import FrontalizeClient
    from facefront import repository
    from facefront.data import photo
    from facefront.serving.server import Server, free_ports
    from facefront.sessions import session_from_parameters
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1)
    gen = session_from_parameters(repository.MODEL_REPOSITORY / "scaleway_generator" / "1" / "model.onnx",
                                  repository.stage_parameters("scaleway_generator"))
    http, grpc, metrics = free_ports(3)
    srv = Server(models=["scaleway"], http_port=http, grpc_port=grpc, metrics_port=metrics).start()
    out = {"server_log_runtime": [ln for ln in Path(srv.log_path).read_text(errors="replace").splitlines()
                                  if ln.startswith(("[face_detector]", "[face_landmarks]", "[face_analyze]"))]}
    client = FrontalizeClient(srv.grpc_url, protocol="grpc")
    try:
        for name in photos:
            out[name] = _served_row(Path(photo(name)).read_bytes(), client, mesh, gen, repeat, srv)
            print(f"served {name}: {out[name]}", file=sys.stderr, flush=True)
    finally:
        client.close()
        srv.stop()
    return out


def _server_cpu_s(srv) -> float:
    """CPU seconds used so far by tritonserver and every process it started (the python stubs)."""
    import psutil
    root = psutil.Process(srv.proc.pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def _mean_cpu_ms(fn, repeat: int, srv=None) -> float:
    """Mean CPU ms per call of `fn` over `repeat` calls: this process's, plus the server's when `srv` is given."""
    fn()
    s0, c0 = (_server_cpu_s(srv) if srv else 0.0), time.process_time()
    for _ in range(repeat):
        fn()
    c1, s1 = time.process_time(), (_server_cpu_s(srv) if srv else 0.0)
    return round((c1 - c0 + s1 - s0) / repeat * 1000, 2)


def _served_row(data: bytes, client, mesh, gen, repeat: int, srv=None) -> dict:
    import cv2

    from facefront.face.analysis import default_analyzer
    from facefront.face.bls_stage import faces_to_outputs
    from facefront.imaging import decode
    from facefront.serving.stage import from_repository
    crop = from_repository("scaleway_preprocess")       # the served crop stage, its config's settings
    analyzer = default_analyzer()
    buf = np.frombuffer(data, np.uint8)
    rgb = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    face = np.zeros((1, 128, 128, 3), np.uint8)      # the generator's cost does not depend on the pixels
    fns = {
        "served_scaleway_ms": lambda: client.frontalize(data, model="scaleway"),
        "served_face_analyze_ms": lambda: client.analyze(data),
        "cv2_decode_ms": lambda: cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB),
        "mediapipe_ms": lambda: mesh.process(rgb),
        "generator_onnxruntime_ms": lambda: gen.run(None, {"face": face}),
        # the served code in-process, no server: what the transport, scheduling and python-stage hops add
        "in_process_scaleway_ms": lambda: gen.run(None, {"face": crop.crop_one(data)[None]}),
        "in_process_face_analyze_ms": lambda: faces_to_outputs(analyzer.analyze(decode(data), max_faces=1)),
    }
    ms = _interleaved_ms(fns, repeat)
    cpu = {k[:-3] + "_cpu_ms": _mean_cpu_ms(fn, repeat, srv if k.startswith("served_") else None)
           for k, fn in fns.items()}
    parts = ms["cv2_decode_ms"] + ms["mediapipe_ms"]
    parts_cpu = cpu["cv2_decode_cpu_ms"] + cpu["mediapipe_cpu_ms"]
    return {"pixels": f"{rgb.shape[1]}x{rgb.shape[0]}", **ms,
            "scaleway_vs_parts": round(ms["served_scaleway_ms"] / (parts + ms["generator_onnxruntime_ms"]), 2),
            "face_analyze_vs_parts": round(ms["served_face_analyze_ms"] / parts, 2),
            **cpu,
            "scaleway_vs_parts_cpu": round(cpu["served_scaleway_cpu_ms"]
                                           / (parts_cpu + cpu["generator_onnxruntime_cpu_ms"]), 2),
            "face_analyze_vs_parts_cpu": round(cpu["served_face_analyze_cpu_ms"] / parts_cpu, 2)}


def markdown(res: dict) -> str:
    lines = ["| condition | photo | decode ms (reduced) | facefront ms (runtime) | onnxruntime 1 thread ms | "
             "onnxruntime defaults ms | MediaPipe ms | ratio (onnxruntime's) | front end, one core: images/s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for cond, rows in res["conditions"].items():
        for name, r in rows.items():
            if name.startswith("_"):
                continue
            lines.append(f"| {cond} | {name} ({r['pixels']}) | {r['decode_ms']} ({r['decode_reduced_ms']}) | "
                         f"{r['facefront_ms']} ({r.get('facefront_runtime', '?')}) | "
                         f"{r.get('facefront_onnxruntime_ms', '-')} | {r['facefront_ort_defaults_ms']} | "
                         f"{r.get('mediapipe_ms', '-')} | {r.get('facefront_vs_mediapipe', '-')} "
                         f"({r.get('facefront_onnxruntime_vs_mediapipe', '-')}) | "
                         f"{r['front_end_images_per_s_one_core']} |")
    for name, r in res.get("served", {}).items():
        if isinstance(r, dict):
            lines.append(f"\nserved {name} ({r['pixels']}), 1 gRPC client, ms: scaleway {r['served_scaleway_ms']}, "
                         f"face_analyze {r['served_face_analyze_ms']}; in-process cv2 decode {r['cv2_decode_ms']}, "
                         f"MediaPipe {r['mediapipe_ms']}, generator {r['generator_onnxruntime_ms']}; ratios: scaleway "
                         f"{r['scaleway_vs_parts']}x its parts, face_analyze {r['face_analyze_vs_parts']}x"
                         + (f"; on CPU time: scaleway {r['scaleway_vs_parts_cpu']}x, face_analyze "
                            f"{r['face_analyze_vs_parts_cpu']}x" if "scaleway_vs_parts_cpu" in r else ""))
    for cond, rows in res["conditions"].items():
        if "_networks" in rows:
            nets = ", ".join(f"{k[:-3]} {v}" for k, v in rows["_networks"].items())
            lines.append(f"\n{cond}, each network alone at batch 1, ms: {nets}")
    return "\n".join(lines)


def main(argv=None) -> int:
    from . import standalone
    return standalone("bench.frontend", argv)


if __name__ == "__main__":
    sys.exit(main())
