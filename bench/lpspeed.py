"""LivePortrait on CPU, in ONE run: the eager PyTorch reference chain per stage, each CPU leaf backend in-process
(onnxruntime on model.onnx, PyTorch on the TorchScript model.pt), and the served CPU ensemble (1 user), plus
the saving of Triton's response cache on repeated edits of one photo (F and M not recomputed).

Per frame, batch 1, --threads intra-op threads everywhere. The eager chain is `export.liveportrait.reference.Pipeline`
on the served crop (decode + face crop + F + M + keypoints + W + G + uint8); the served rows time whole requests as
a client sees them (image bytes in, 512x512 face out), cold = a photo the server has not seen (F and M run),
edit = the same photo at another pose (F and M answered from the cache). Writes DIR/lpspeed.json and DIR/lpspeed.md.

examples:
  python -m bench lpspeed --out out/lpspeed                 # ~4 minutes on 2 cores with synthetic weights
  python -m bench lpspeed --out out/lpspeed --frames 1 --no-serve
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from export.liveportrait import LEAVES  # network -> repository leaf
from facefront.repository import MODEL_REPOSITORY as REPOSITORY
from facefront.repository import REPO_ROOT

PHOTOS = ("obama2.jpg", "obama.jpg", "biden.jpg")


def add_arguments(p):
    p.add_argument("--out", type=Path, required=True, help="folder for lpspeed.json and lpspeed.md")
    p.add_argument("--frames", type=int, default=2, help="timed frames per mode (after one warm-up; default 2)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--no-serve", action="store_true", help="skip the served rows")


def _best(fn, frames: int) -> tuple[float, object]:
    out = fn()
    times = []
    for _ in range(frames):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def _timed(times: dict, key: str, fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    times[key] = time.perf_counter() - t0
    return out


def eager_chain(frames: int) -> dict:
    """Per-stage and end-to-end seconds of the eager reference chain on the served crop of PHOTOS[0]."""
    from export.liveportrait.reference import Pipeline
    from facefront import imaging
    from facefront.data import photo
    from facefront.liveportrait import kinematics as kin
    from facefront.liveportrait.stages import crop_face, to_source, to_uint8
    p = Pipeline()
    data = photo(PHOTOS[0]).read_bytes()
    stages: dict[str, float] = {}
    ends = []
    for i in range(frames + 1):
        t = {}
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
        end = time.perf_counter() - t0
        if i == 0:
            continue   # warm-up
        ends.append(end)
        for k, v in t.items():
            stages[k] = min(stages.get(k, v), v)
    return {"stages_s": stages, "end_to_end_s": min(ends)}


def leaves_in_process(frames: int, threads: int) -> dict:
    """{net: {"onnxruntime": s, "torch": s}} for each leaf's artefacts on the export's example inputs."""
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
            row["onnxruntime"] = _best(lambda s=s, ex=ex: s.run(None, ex), frames)[0]
            del s
        if (d / "model.pt").is_file():
            m = torch.jit.load(str(d / "model.pt")).eval()
            args = [torch.from_numpy(v) for v in ex.values()]
            with torch.inference_mode():
                row["torch"] = _best(lambda m=m, args=args: m(*args), frames)[0]
            del m
        out[net] = row
    return out


def served(frames: int) -> dict:
    """Cold frames (photos not seen before) and edits of one photo, per request, with Triton's statistics."""
    from client import FrontalizeClient
    from facefront.data import photo
    from facefront.serving.server import Server, free_ports
    http, grpc, metrics = free_ports(3)
    with Server(models=["liveportrait"], http_port=http, grpc_port=grpc, metrics_port=metrics,
                log_path=REPO_ROOT / ".cache" / "triton" / "lpspeed-server.log") as srv, \
            FrontalizeClient(srv.grpc_url, timeout=600) as c:
        c.frontalize(photo(PHOTOS[-1]), model="liveportrait")   # warm-up (first call loads lazily)

        def stats():
            res = {}
            for s in c._call("get_inference_statistics", "", as_json=True)["model_stats"]:
                if not s["name"].startswith("liveportrait_"):
                    continue
                inf = s.get("inference_stats", {})
                res[s["name"]] = {"executions": int(s.get("execution_count", 0)),
                                  "compute_ns": int(inf.get("compute_infer", {}).get("ns", 0)),
                                  "cache_hits": int(inf.get("cache_hit", {}).get("count", 0))}
            return res

        cold, edits = [], []
        before = stats()
        for name in PHOTOS[:max(1, min(frames, len(PHOTOS) - 1))]:
            t0 = time.perf_counter()
            c.frontalize(photo(name), model="liveportrait")
            cold.append(time.perf_counter() - t0)
        mid = stats()
        for i in range(frames + 1):
            t0 = time.perf_counter()
            c.frontalize(photo(PHOTOS[0]), model="liveportrait", yaw=5.0 * (i + 1), smile=0.2)
            edits.append(time.perf_counter() - t0)
        after = stats()

    def per_stage(a, b, n):
        return {m: (b[m]["compute_ns"] - a[m]["compute_ns"]) / 1e9 / max(n, 1) for m in b if m in a}

    return {"cold_s": cold, "edit_s": edits, "cold_per_stage_s": per_stage(before, mid, len(cold)),
            "edit_per_stage_s": per_stage(mid, after, len(edits)),
            "edit_executions": {m: after[m]["executions"] - mid[m]["executions"] for m in after},
            "edit_cache_hits": {m: after[m]["cache_hits"] - mid[m]["cache_hits"] for m in after}}


def markdown(r: dict) -> str:
    e = r["eager"]
    lines = [f"# LivePortrait on CPU ({r['threads']} threads, {r['cpus']} cores, synthetic weights: "
             f"{r['synthetic']}), best of {r['frames']} frames", "",
             "| stage | eager PyTorch s | onnxruntime s | TorchScript s | served (Triton compute) s |", "|---|---|---|---|---|"]
    srv = r.get("served", {}).get("cold_per_stage_s", {})
    names = {"crop": "liveportrait_preprocess", "keypoints": "liveportrait_keypoints", "uint8": "liveportrait_postprocess",
             **LEAVES}
    for k, v in e["stages_s"].items():
        leaf = r["leaves"].get(k, {})
        ort, pt = leaf.get("onnxruntime"), leaf.get("torch")
        s = srv.get(names[k])
        lines.append(f"| {k} | {v:.3f} | {'-' if ort is None else f'{ort:.3f}'} | {'-' if pt is None else f'{pt:.3f}'} | "
                     f"{'-' if s is None else f'{s:.3f}'} |")
    lines += ["", f"eager end to end: **{e['end_to_end_s']:.2f} s** per frame"]
    if "served" in r:
        s = r["served"]
        lines += [f"served, cold photo: **{min(s['cold_s']):.2f} s** per frame (requests: "
                  f"{', '.join(f'{x:.2f}' for x in s['cold_s'])}) -> **{r['speedup_cold']:.2f}x** the eager chain",
                  f"served, repeated edit of the same photo: **{min(s['edit_s']):.2f} s** "
                  f"({', '.join(f'{x:.2f}' for x in s['edit_s'])}) -> {r['speedup_edit']:.2f}x; F/M executions during "
                  f"the edits: {s['edit_executions'].get('liveportrait_appearance')}/"
                  f"{s['edit_executions'].get('liveportrait_motion')}, cache hits "
                  f"{s['edit_cache_hits'].get('liveportrait_appearance')}/{s['edit_cache_hits'].get('liveportrait_motion')}"]
    return "\n".join(lines) + "\n"


def run(args) -> int:
    import torch
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    man = json.loads((REPOSITORY / LEAVES["F"] / "1" / "manifest.json").read_text())
    r = {"threads": args.threads, "cpus": os.cpu_count(), "frames": args.frames,
         "synthetic": man["artifacts"]["model.onnx"].get("synthetic_weights"),
         "eager": eager_chain(args.frames), "leaves": leaves_in_process(args.frames, args.threads)}
    print(json.dumps(r, indent=1), flush=True)
    if not args.no_serve:
        r["served"] = served(args.frames)
        r["speedup_cold"] = r["eager"]["end_to_end_s"] / min(r["served"]["cold_s"])
        r["speedup_edit"] = r["eager"]["end_to_end_s"] / min(r["served"]["edit_s"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lpspeed.json").write_text(json.dumps(r, indent=1) + "\n")
    (args.out / "lpspeed.md").write_text(markdown(r))
    print(markdown(r))
    return 0
