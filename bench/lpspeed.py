"""LivePortrait on CPU, in ONE run: the eager PyTorch reference chain per stage, each CPU leaf backend in-process
(onnxruntime on model.onnx, PyTorch on the TorchScript model.pt), and the served CPU ensemble (1 user), plus
the saving of Triton's response cache on repeated edits of one photo (F and M not recomputed).

Per frame, batch 1, --threads intra-op threads everywhere. The eager chain is `export.liveportrait.reference.Pipeline`
on the served crop (decode + face crop + F + M + keypoints + W + G + uint8); the served rows time whole requests as
a client sees them (image bytes in, 512x512 face out), new photo = one the server has not seen (F and M run), edit =
the same photo at another pose (F and M answered from the cache). Each frame uses its own variant of the photo
(brightness shifted by a few grey levels, PNG), so no cache answers a "new photo". The three paths take turns frame
by frame (eager, served new, served edit, eager, ...) so that load from other processes hits them alike; the tables
give the median and the spread (min-max) over --frames frames after one warm-up each. Writes DIR/lpspeed.json and
DIR/lpspeed.md (and --results).

examples:
  python -m bench lpspeed --out out/lpspeed                 # ~5 minutes on 2 cores with synthetic weights
  python -m bench lpspeed --out out/lpspeed --frames 7 --results bench/results/lpspeed_cpu.json
  python -m bench lpspeed --out out/lpspeed --frames 1 --no-serve
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from export.liveportrait import LEAVES  # network -> repository leaf
from facefront.repository import MODEL_REPOSITORY as REPOSITORY
from facefront.repository import REPO_ROOT

from . import add_results_argument, header, write_results

PHOTOS = ("obama2.jpg", "obama.jpg", "biden.jpg")


def add_arguments(p):
    p.add_argument("--out", type=Path, required=True, help="folder for lpspeed.json and lpspeed.md")
    p.add_argument("--frames", type=int, default=5, help="timed frames per path (after one warm-up; default 5)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--no-serve", action="store_true", help="skip the served rows")
    add_results_argument(p, "bench/results/lpspeed_cpu.json")


def spread(times: list[float]) -> dict:
    """median, min, max and count of a list of seconds."""
    t = np.asarray(times, dtype=float)
    return {"median_s": round(float(np.median(t)), 4), "min_s": round(float(t.min()), 4),
            "max_s": round(float(t.max()), 4), "n": int(t.size)}


def _median(fn, frames: int) -> float:
    fn()
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _timed(times: dict, key: str, fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    times[key] = time.perf_counter() - t0
    return out


def photo_variants(n: int) -> list[bytes]:
    """n PNG encodings of PHOTOS[0], each brightness-shifted by its own 1..n grey levels: distinct bytes and crops."""
    import cv2

    from facefront.data import photo
    img = cv2.imread(str(photo(PHOTOS[0])), cv2.IMREAD_COLOR)
    out = []
    for i in range(n):
        shifted = cv2.add(img, np.full_like(img, i + 1))
        out.append(cv2.imencode(".png", shifted)[1].tobytes())
    return out


class EagerChain:
    """The eager reference chain on the served crop; frame(data) -> per-stage seconds plus "end_to_end"."""

    def __init__(self):
        from export.liveportrait.reference import Pipeline
        self.p = Pipeline()

    def frame(self, data: bytes) -> dict:
        from facefront import imaging
        from facefront.liveportrait import kinematics as kin
        from facefront.liveportrait.stages import crop_face, to_source, to_uint8
        p, t = self.p, {}
        t0 = time.perf_counter()
        crop, _, _ = crop_face(imaging.decode(data))
        src = to_source(crop)[None]
        t["crop"] = time.perf_counter() - t0
        feature = _timed(t, "F", p.appearance, src)
        raw = _timed(t, "M", p.motion, src)
        t1 = time.perf_counter()
        info = kin.decode_motion(raw)
        x_s = kin.source_keypoints(info)
        x_d = kin.driving_keypoints(info, kin.target_pose(info.degrees))
        x_d = kin.apply_stitching(x_d, p.stitch_delta(x_s, x_d))
        t["keypoints"] = time.perf_counter() - t1
        warped = _timed(t, "W", p.warp, feature, x_s, x_d)["out"]
        image = _timed(t, "G", p.generate, warped)[0]
        _timed(t, "uint8", to_uint8, image[0])
        t["end_to_end"] = time.perf_counter() - t0
        return t


def leaves_in_process(frames: int, threads: int) -> dict:
    """{net: {"onnxruntime": s, "torch": s}}: median seconds of each leaf's artefacts on the export's example inputs."""
    import torch

    from export.liveportrait.export_spec import example_inputs
    from facefront.sessions import onnx_session
    torch._C._jit_set_profiling_executor(False)   # as facefront.serving.torch_stage
    out = {}
    for net, folder in LEAVES.items():
        d = REPOSITORY / folder / "1"
        ex = example_inputs(net, batch=1)
        row = {}
        if (d / "model.onnx").is_file():
            s = onnx_session(d / "model.onnx", threads, spinning=False)
            row["onnxruntime"] = _median(lambda s=s, ex=ex: s.run(None, ex), frames)
            del s
        if (d / "model.pt").is_file():
            m = torch.jit.load(str(d / "model.pt")).eval()
            args = [torch.from_numpy(v) for v in ex.values()]
            with torch.inference_mode():
                row["torch"] = _median(lambda m=m, args=args: m(*args), frames)
            del m
        out[net] = row
    return out


def interleaved(frames: int, serve: bool) -> dict:
    """Eager frame, served new photo, served edit of that photo, in turn, --frames times after one warm-up each."""
    variants = photo_variants(frames + 1)
    eager = EagerChain()
    eager.frame(variants[-1])                       # warm-up
    stages: dict[str, list[float]] = {}

    def eager_frame(i):
        for k, v in eager.frame(variants[i]).items():
            stages.setdefault(k, []).append(v)

    if not serve:
        for i in range(frames):
            eager_frame(i)
        return {"eager": {"stages": {k: spread(v) for k, v in stages.items()}}}

    from client import FrontalizeClient
    from facefront.serving.server import Server, free_ports
    http, grpc, metrics = free_ports(3)
    with Server(models=["liveportrait"], http_port=http, grpc_port=grpc, metrics_port=metrics,
                log_path=REPO_ROOT / ".cache" / "triton" / "lpspeed-server.log") as srv, \
            FrontalizeClient(srv.grpc_url, timeout=600) as c:
        c.frontalize(variants[-1], model="liveportrait")              # warm-up: loads lazily, fills nothing we time
        c.frontalize(variants[-1], model="liveportrait", yaw=3.0)

        def stats():
            res = {}
            for st in c._call("get_inference_statistics", "", as_json=True)["model_stats"]:
                if not st["name"].startswith("liveportrait_"):
                    continue
                inf = st.get("inference_stats", {})
                res[st["name"]] = {"executions": int(st.get("execution_count", 0)),
                                   "compute_ns": int(inf.get("compute_infer", {}).get("ns", 0)),
                                   "cache_hits": int(inf.get("cache_hit", {}).get("count", 0))}
            return res

        def request(data, kind, **pose):
            a = stats()
            t0 = time.perf_counter()
            c.frontalize(data, model="liveportrait", **pose)
            dt = time.perf_counter() - t0
            b = stats()
            for m in b:
                d = per_stage[kind].setdefault(m, {"compute_s": [], "executions": 0, "cache_hits": 0})
                d["compute_s"].append((b[m]["compute_ns"] - a.get(m, b[m])["compute_ns"]) / 1e9)
                d["executions"] += b[m]["executions"] - a.get(m, b[m])["executions"]
                d["cache_hits"] += b[m]["cache_hits"] - a.get(m, b[m])["cache_hits"]
            return dt

        per_stage: dict[str, dict] = {"new": {}, "edit": {}}
        new, edit = [], []
        for i in range(frames):
            eager_frame(i)
            new.append(request(variants[i], "new"))
            edit.append(request(variants[i], "edit", yaw=5.0 * (i + 1), smile=0.2))
    return {"eager": {"stages": {k: spread(v) for k, v in stages.items()}},
            "served": {"new_photo": spread(new), "edit": spread(edit),
                       "per_stage": {kind: {m: {"compute_median_s": round(float(np.median(d["compute_s"])), 4),
                                                "executions": d["executions"], "cache_hits": d["cache_hits"]}
                                            for m, d in rows.items()} for kind, rows in per_stage.items()}}}


def markdown(r: dict) -> str:
    e = r["eager"]["stages"]
    lines = [f"# LivePortrait on CPU ({r['threads']} threads, {r['cpus']} cores, synthetic weights: "
             f"{r['synthetic']}), median of {r['frames']} frames", "",
             "| stage | eager PyTorch s | onnxruntime s | TorchScript s | served, new photo (Triton compute) s |",
             "|---|---|---|---|---|"]
    srv = r.get("served", {}).get("per_stage", {}).get("new", {})
    names = {"crop": "liveportrait_preprocess", "keypoints": "liveportrait_keypoints", "uint8": "liveportrait_postprocess",
             **LEAVES}
    for k, v in e.items():
        if k == "end_to_end":
            continue
        leaf = r["leaves"].get(k, {})
        ort, pt = leaf.get("onnxruntime"), leaf.get("torch")
        sv = srv.get(names[k], {}).get("compute_median_s")
        lines.append(f"| {k} | {v['median_s']:.3f} | {'-' if ort is None else f'{ort:.3f}'} | "
                     f"{'-' if pt is None else f'{pt:.3f}'} | {'-' if sv is None else f'{sv:.3f}'} |")
    ee = e["end_to_end"]
    lines += ["", f"eager end to end: **{ee['median_s']:.2f} s** per frame (min {ee['min_s']:.2f}, max {ee['max_s']:.2f})"]
    if "served" in r:
        s = r["served"]
        hits = s["per_stage"]["edit"]
        lines += [f"served, new photo: **{s['new_photo']['median_s']:.2f} s** (min {s['new_photo']['min_s']:.2f}, max "
                  f"{s['new_photo']['max_s']:.2f}) -> **{r['speedup_new']:.2f}x** the eager chain",
                  f"served, repeated edit of the same photo: **{s['edit']['median_s']:.2f} s** (min {s['edit']['min_s']:.2f}, "
                  f"max {s['edit']['max_s']:.2f}) -> {r['speedup_edit']:.2f}x; F/M executions during the edits: "
                  f"{hits.get(LEAVES['F'], {}).get('executions')}/{hits.get(LEAVES['M'], {}).get('executions')}, cache hits "
                  f"{hits.get(LEAVES['F'], {}).get('cache_hits')}/{hits.get(LEAVES['M'], {}).get('cache_hits')}"]
    return "\n".join(lines) + "\n"


def run(args) -> int:
    import torch
    if args.frames < 1:
        print("error: --frames must be at least 1", flush=True)
        return 2
    started = header("lpspeed")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    man = json.loads((REPOSITORY / LEAVES["F"] / "1" / "manifest.json").read_text())
    r = {"threads": args.threads, "cpus": os.cpu_count(), "frames": args.frames,
         "synthetic": man["artifacts"]["model.onnx"].get("synthetic_weights"),
         "leaves": leaves_in_process(args.frames, args.threads)}
    r.update(interleaved(args.frames, serve=not args.no_serve))
    if "served" in r:
        eager = r["eager"]["stages"]["end_to_end"]["median_s"]
        r["speedup_new"] = round(eager / r["served"]["new_photo"]["median_s"], 3)
        r["speedup_edit"] = round(eager / r["served"]["edit"]["median_s"], 3)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lpspeed.json").write_text(json.dumps(r, indent=1) + "\n")
    (args.out / "lpspeed.md").write_text(markdown(r))
    write_results(args.results, "lpspeed", r, started)
    print(markdown(r))
    return 0
