"""fp32 vs bf16 on this CPU, in ONE run: per network, per runtime, per precision -> time and fidelity; the
LivePortrait chain built from the served leaves' artefacts; and the served LivePortrait frame with every leaf in
fp32 (FACEFRONT_PRECISION=fp32) against the repository's configs (`precision: auto`).

Rows (batch 1, --threads intra-op threads, best of --frames after one warm-up; the modes of one network are timed
round-robin so that load from other processes on a shared machine hits them alike):
* networks: LivePortrait's leaves from their repository artefacts (onnxruntime on model.onnx, PyTorch on the
  TorchScript model.pt in fp32, and in bf16 = autocast + channels-last weights, as facefront.serving.torch_stage runs
  it), then the in-process reference of every family that declares one (scaleway, FFWM: uint8 crop in and out).
  Fidelity: rel-L2 of every output against PyTorch fp32, PSNR of the image outputs.
* chain: crop -> F, M -> keypoints + stitching -> G's input -> G on one photo, fp32 (the leaves' fp32 backends) vs
  the bf16 leaves of --bf16 (default: those the configs run in bf16), PSNR of the final image.
* attribution: the chain's image PSNR with one leaf at a time in bf16 (which leaves keep the bound).
* served: the real tritonserver on the repository, once with FACEFRONT_PRECISION=fp32, once as configured.
Writes DIR/precision.json and DIR/precision.md (and, with --results, bench/results/cpu_precision_<cpu>.json).

examples:
  python -m bench precision --out out/precision                    # ~10 minutes on 2 quiet cores
  python -m bench precision --out out/precision --no-serve --frames 1
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from facefront.precision import BF16_FLAGS, ENV, cpu_flags, decide
from facefront.repository import MODEL_REPOSITORY as REPOSITORY
from facefront.repository import REPO_ROOT

PHOTOS = ("obama2.jpg", "obama.jpg", "biden.jpg")
PSNR_MIN = 38.0   # issue 16: bf16 must stay within this of fp32 on the output image


def add_arguments(p):
    p.add_argument("--out", type=Path, required=True, help="folder for precision.json and precision.md")
    p.add_argument("--frames", type=int, default=2, help="timed calls per mode (after one warm-up; default 2)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--bf16", default="",
                   help="LivePortrait leaves run in bf16 in the chain, e.g. F,W,G (default: the leaves whose config's "
                        "precision resolves to bf16 on a CPU with bf16 hardware, i.e. what is served)")
    p.add_argument("--skip", default="", help="comma list of sections to skip: networks,families,chain,attribution,served")
    p.add_argument("--no-serve", action="store_true", help="skip the served rows (= --skip served)")
    p.add_argument("--results", action="store_true",
                   help="also write bench/results/cpu_precision_<cpu flags>.json (the run quoted in docs/precision.md)")


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    """PSNR in dB of `a` against `b` (inf when equal)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(peak * peak / mse)


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    """|a - b| / |b| (Frobenius)."""
    d = np.linalg.norm(np.asarray(b, np.float64))
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / d) if d else float(np.abs(a).max())


CPU_TIMES: dict[str, dict[str, float]] = {}   # section -> {mode: best CPU seconds}, filled by round_robin


def round_robin(fns: dict, frames: int, section: str = "") -> tuple[dict[str, float], dict]:
    """{mode: best wall seconds}, {mode: last output}: one warm-up each, then `frames` rounds calling every mode
    once. The best CPU seconds of this process (all its threads) go to CPU_TIMES[section]: on a machine whose cores
    other processes share, CPU time measures the work of a mode where wall time mostly measures the queue."""
    outs = {k: f() for k, f in fns.items()}
    best = {k: float("inf") for k in fns}
    cpu = {k: float("inf") for k in fns}
    for _ in range(frames):
        for k, f in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            outs[k] = f()
            best[k] = min(best[k], time.perf_counter() - t0)
            cpu[k] = min(cpu[k], time.process_time() - c0)
    CPU_TIMES[section] = cpu
    return best, outs


def tree_cpu_seconds(pid: int) -> float:
    """user + system CPU seconds of process `pid` and all its descendants (Linux /proc): the server's work, all
    python-backend stubs included."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(d.name)] = (int(f[1]), (int(f[11]) + int(f[12])) / tick)   # ppid, utime + stime
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, (0, 0.0))[1]
        todo += [c for c, (pp, _) in stats.items() if pp == p]
    return total


def _load_pt(path: Path, precision: str):
    import torch

    from facefront.serving.torch_stage import to_channels_last
    m = torch.jit.load(str(path), map_location="cpu").eval()
    if precision == "bf16":
        to_channels_last(m)
    return m


def _torch_fn(module, args: list[np.ndarray], precision: str):
    import torch
    t = [torch.from_numpy(np.ascontiguousarray(a)) for a in args]

    def fn():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = module(*t)
        out = [out] if isinstance(out, torch.Tensor) else list(out)
        return [o.float().numpy() for o in out]
    return fn


def liveportrait_leaves(frames: int, threads: int) -> dict:
    """{net: {"time_s": {mode: s}, "rel_l2": {mode: [per output]}, "psnr_db": {...} (G)}} from the artefacts."""
    from export.liveportrait import LEAVES
    from export.liveportrait.export_spec import example_inputs
    from facefront.repository import stage_parameters
    from facefront.sessions import onnx_session, openvino_import_error, openvino_session
    res = {}
    for net, folder in LEAVES.items():
        d = REPOSITORY / folder / "1"
        ex = example_inputs(net, batch=1)
        fns = {}
        if (d / "model.pt").is_file():
            fns["torch fp32"] = _torch_fn(_load_pt(d / "model.pt", "fp32"), list(ex.values()), "fp32")
            fns["torch bf16"] = _torch_fn(_load_pt(d / "model.pt", "bf16"), list(ex.values()), "bf16")
        params = stage_parameters(folder)
        if (d / "model_bf16.pt").is_file():     # bf16 regions in the graph: runs without autocast
            fns["torch bf16 islands"] = _torch_fn(_load_pt(d / "model_bf16.pt", "bf16"), list(ex.values()), "fp32")
        if (d / "model.onnx").is_file() and net != "W":   # W's model.onnx is the TensorRT graph (planar sampling)
            s = onnx_session(d / "model.onnx", threads, spinning=False)
            fns["onnxruntime fp32"] = lambda s=s, ex=ex: s.run(None, ex)
        if (d / "model.onnx").is_file() and openvino_import_error() is None:
            # W: the TensorRT graph (planar_4d sampling), as OpenVINO has no 5-D GridSample
            for prec in ("fp32", "bf16"):
                s = openvino_session(d / "model.onnx", threads, prec)
                fns[f"openvino {prec}"] = lambda s=s, ex=ex: s.run(None, ex)
            if params.get("fp32_head"):         # the configured fp32 island: the graph's head as its own fp32 model
                s = openvino_session(d / "model.onnx", threads, "bf16", fp32_head=params["fp32_head"])
                fns["openvino bf16 islands"] = lambda s=s, ex=ex: s.run(None, ex)
        if not fns:
            res[net] = {"skipped": f"no artefact in {d}; run `python -m export onnx liveportrait`"}
            continue
        times, outs = round_robin(fns, frames, net)
        ref = outs["torch fp32"] if "torch fp32" in outs else outs["onnxruntime fp32"]
        row = {"time_s": times, "cpu_s": CPU_TIMES[net],
               "rel_l2": {k: [rel_l2(o, r) for o, r in zip(v, ref)] for k, v in outs.items()}}
        if net == "G":
            row["psnr_db"] = {k: psnr(np.clip(v[0], 0, 1), np.clip(ref[0], 0, 1)) for k, v in outs.items()}
        res[net] = row
        print(f"precision: {net}: {json.dumps(row)}", flush=True)
        del fns, outs
    return res


def family_references(frames: int, threads: int) -> dict:
    """Each family with an in-process reference (uint8 crop -> uint8 face): onnxruntime fp32, PyTorch fp32, bf16."""
    import torch

    from export.common.family import families
    from facefront.serving.torch_stage import to_channels_last
    from facefront.sessions import onnx_session, openvino_import_error, openvino_session
    res = {}
    for name, fam in families().items():
        spec = fam.reference
        if spec is None or not spec.onnx.is_file():
            continue
        x = np.random.default_rng(0).integers(0, 256, (1, spec.input_size, spec.input_size, 3), dtype=np.uint8)
        m32 = spec.build().eval()
        mbf = spec.build().eval()
        to_channels_last(mbf)
        s = onnx_session(spec.onnx, threads, spinning=False)
        feed = {s.get_inputs()[0].name: x}
        f32, fbf = _torch_fn(m32, [x], "fp32"), _torch_fn(mbf, [x], "bf16")
        fns = {"onnxruntime fp32": lambda s=s, feed=feed: s.run(None, feed)[0],
               "torch fp32": lambda f=f32: f()[0], "torch bf16": lambda f=fbf: f()[0]}
        if openvino_import_error() is None:
            for prec in ("fp32", "bf16"):
                try:
                    o = openvino_session(spec.onnx, threads, prec)
                except RuntimeError as e:   # a graph OpenVINO cannot convert: say so, keep the other rows
                    print(f"precision: {name}: openvino {prec} skipped: {str(e).splitlines()[0]}", flush=True)
                    continue
                fns[f"openvino {prec}"] = lambda o=o, feed=feed: o.run(None, feed)[0]
        times, outs = round_robin(fns, frames, name)
        res[name] = {"time_s": times, "cpu_s": CPU_TIMES[name],
                     "psnr_db_vs_torch_fp32": {k: psnr(v, outs["torch fp32"], 255.0) for k, v in outs.items()},
                     "max_abs_grey_levels": {k: int(np.abs(v.astype(int) - outs["torch fp32"].astype(int)).max())
                                             for k, v in outs.items()}}
        print(f"precision: {name}: {json.dumps(res[name])}", flush=True)
        del m32, mbf, s, f32, fbf, fns
        torch.set_num_threads(threads)
    return res


class _Leaf:
    """One LivePortrait leaf in-process, run by the served stage itself (LeafStage with the leaf's CPU config) at
    `precision`; `overrides` replace config parameters (e.g. {"backend": "openvino"} for a row that is not served)."""

    def __init__(self, net: str, precision: str, threads: int, **overrides: str):
        from export.liveportrait import LEAVES
        from export.liveportrait.export_spec import SPECS
        from facefront.repository import stage_parameters
        from facefront.serving.torch_stage import LeafStage
        params = {**stage_parameters(LEAVES[net]), "intra_op_threads": str(threads), "precision": precision,
                  **overrides}
        old = os.environ.pop(ENV, None)     # this row's precision, whatever the environment says
        try:
            self.stage = LeafStage.standalone(params, LEAVES[net], REPOSITORY / LEAVES[net] / "1")
        finally:
            if old is not None:
                os.environ[ENV] = old
        self.names, self.precision = SPECS[net].outputs, self.stage.decision.precision
        self.backend = self.stage.backend
        if (self.stage.backend == "torch" and self.precision == "bf16" and self.stage.autocast == "fp32") or \
                (self.stage.backend == "openvino" and self.stage.session.fp32_head):
            self.backend += " islands"

    def __call__(self, *args) -> dict[str, np.ndarray]:
        return self.stage.run(dict(zip(self.stage.INPUTS, args)))


def configured_bf16() -> set[str]:
    """LivePortrait leaves whose CPU config resolves to bf16 on a CPU with bf16 hardware (environment ignored)."""
    from export.liveportrait import LEAVES
    from facefront.repository import stage_parameters
    return {net for net, folder in LEAVES.items()
            if decide(stage_parameters(folder).get("precision"), set(BF16_FLAGS), environ={}).precision == "bf16"}


def liveportrait_chain(frames: int, threads: int, bf16: set[str]) -> dict:
    """End-to-end in-process frame (crop -> uint8) in fp32 and with the `bf16` leaves in bf16, PSNR between them."""
    from export.liveportrait.reference import Pipeline
    from facefront import imaging
    from facefront.data import photo
    from facefront.liveportrait import kinematics as kin
    from facefront.liveportrait.stages import crop_face, to_source, to_uint8
    stitch = Pipeline()   # S only (~0.1 MFLOP, fp32 in both)
    crop, _, _ = crop_face(imaging.decode(photo(PHOTOS[0]).read_bytes()))
    src = to_source(crop)[None]
    chains = {"fp32": {n: _Leaf(n, "fp32", threads) for n in "FMWG"},
              "bf16": {n: _Leaf(n, "bf16" if n in bf16 else "fp32", threads) for n in "FMWG"}}

    def frame(leaves):
        def fn():
            feature = leaves["F"](src)["feature_3d"]
            info = kin.decode_motion(leaves["M"](src))
            x_s = kin.source_keypoints(info)
            x_d = kin.driving_keypoints(info, kin.target_pose(info.degrees))
            x_d = kin.apply_stitching(x_d, stitch.stitch_delta(x_s, x_d)).astype(np.float32)
            warped = leaves["W"](feature, x_s.astype(np.float32), x_d)["out"]
            return leaves["G"](warped)["image"][0]
        return fn

    times, outs = round_robin({k: frame(v) for k, v in chains.items()}, frames, "chain")
    img32, imgbf = outs["fp32"], outs["bf16"]
    r = {"backends": {k: {n: f"{leaf.backend} {leaf.precision}" for n, leaf in v.items()} for k, v in chains.items()},
         "time_s": times, "speedup": times["fp32"] / times["bf16"], "cpu_s": CPU_TIMES["chain"],
         "speedup_cpu": CPU_TIMES["chain"]["fp32"] / CPU_TIMES["chain"]["bf16"],
         "psnr_db_float": psnr(np.clip(imgbf, 0, 1), np.clip(img32, 0, 1)),
         "psnr_db_uint8": psnr(to_uint8(imgbf), to_uint8(img32), 255.0), "rel_l2": rel_l2(imgbf, img32)}
    print(f"precision: chain: {json.dumps(r)}", flush=True)
    return r


# bf16 variants tried per leaf in the attribution: the runtimes that can run it in bf16 (config overrides)
# ("islands": the leaf's configured fp32 islands, offered only where its config has them)
VARIANTS = {"torch bf16": {"backend": "torch", "bf16_artifact": ""},
            "torch bf16 islands": {"backend": "torch"},
            "openvino bf16": {"backend": "openvino", "fp32_head": ""},
            "openvino bf16 islands": {"backend": "openvino"}}
ISLANDS = {"torch": "bf16_artifact", "openvino": "fp32_head"}   # the config parameter of each runtime's islands


def leaf_attribution(threads: int) -> dict[str, float]:
    """Image PSNR (dB) of the chain against the fp32 chain with ONE leaf in bf16, per runtime that can run it so
    (M, F, W, G x PyTorch autocast / OpenVINO, whole or with the config's fp32 islands), then the configured bf16
    leaves together (and with G added, where G is not one of them): which leaf and runtime keep PSNR_MIN."""
    from export.liveportrait.reference import Pipeline
    from facefront import imaging
    from facefront.data import photo
    from facefront.liveportrait import kinematics as kin
    from facefront.liveportrait.stages import crop_face, to_source
    from facefront.sessions import openvino_import_error
    crop, _, _ = crop_face(imaging.decode(photo(PHOTOS[0]).read_bytes()))
    src = to_source(crop)[None]
    stitch = Pipeline()
    fp32 = {n: _Leaf(n, "fp32", threads) for n in "FMWG"}

    def image(leaves):
        leaves = {**fp32, **leaves}
        feature = leaves["F"](src)["feature_3d"]
        info = kin.decode_motion(leaves["M"](src))
        x_s = kin.source_keypoints(info).astype(np.float32)
        x_d = kin.driving_keypoints(info, kin.target_pose(info.degrees))
        x_d = kin.apply_stitching(x_d, stitch.stitch_delta(x_s, x_d)).astype(np.float32)
        return np.clip(leaves["G"](leaves["W"](feature, x_s, x_d)["out"])["image"][0], 0, 1)

    ref = image({})
    res = {}
    from export.liveportrait import LEAVES
    from facefront.repository import stage_parameters
    for net in "MFWG":
        params = stage_parameters(LEAVES[net])
        for variant, overrides in VARIANTS.items():
            if "islands" in variant and not params.get(ISLANDS[overrides["backend"]]):
                continue
            if "openvino" in variant and openvino_import_error() is not None:
                continue
            res[f"{net} {variant}"] = psnr(image({net: _Leaf(net, "bf16", threads, **overrides)}), ref)
            print(f"precision: attribution: {net} {variant}: {res[f'{net} {variant}']:.2f} dB", flush=True)
    configured = sorted(configured_bf16())
    low = {n: _Leaf(n, "bf16", threads) for n in configured}
    res[f"configured ({', '.join(configured)})"] = psnr(image(low), ref)
    if openvino_import_error() is not None:
        pass
    elif "G" not in configured:
        g = _Leaf("G", "bf16", threads, **VARIANTS["openvino bf16"])
        res[f"configured + G openvino bf16 ({', '.join(configured + ['G'])})"] = psnr(image({**low, "G": g}), ref)
    else:   # what G's fp32 head buys in the configured chain
        g = _Leaf("G", "bf16", threads, **VARIANTS["openvino bf16"])
        res["configured, but G openvino bf16 without its fp32 head"] = psnr(image({**low, "G": g}), ref)
    print(f"precision: attribution: {json.dumps(res)}", flush=True)
    return res


def served(frames: int) -> dict:
    """Whole requests on the real server, FACEFRONT_PRECISION=fp32 then the configs as written; output PSNR."""
    from client import FrontalizeClient
    from facefront.data import photo
    from facefront.serving.server import Server, free_ports
    res, images = {}, {}
    old = os.environ.get(ENV)
    try:
        for mode, env in (("fp32", "fp32"), ("configured", None)):
            if env is None:
                os.environ.pop(ENV, None)
            else:
                os.environ[ENV] = env
            http, grpc, metrics = free_ports(3)
            log = REPO_ROOT / ".cache" / "triton" / f"precision-{mode}-server.log"
            with Server(models=["liveportrait"], http_port=http, grpc_port=grpc, metrics_port=metrics,
                        log_path=log) as srv, FrontalizeClient(srv.grpc_url, timeout=900) as c:
                c.frontalize(photo(PHOTOS[-1]), model="liveportrait")    # warm-up (lazy first call)
                cold, edit, cold_cpu, edit_cpu = [], [], [], []
                for name in PHOTOS[:max(1, min(frames, len(PHOTOS) - 1))]:
                    t0, c0 = time.perf_counter(), tree_cpu_seconds(srv.proc.pid)
                    images[(mode, name)] = c.frontalize(photo(name), model="liveportrait")
                    cold.append(time.perf_counter() - t0)
                    cold_cpu.append(tree_cpu_seconds(srv.proc.pid) - c0)
                for i in range(frames):
                    t0, c0 = time.perf_counter(), tree_cpu_seconds(srv.proc.pid)
                    c.frontalize(photo(PHOTOS[0]), model="liveportrait", yaw=5.0 * (i + 1))
                    edit.append(time.perf_counter() - t0)
                    edit_cpu.append(tree_cpu_seconds(srv.proc.pid) - c0)
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if "precision" in ln and "] " in ln]
            res[mode] = {"cold_s": cold, "edit_s": edit, "cold_cpu_s": cold_cpu, "edit_cpu_s": edit_cpu,
                         "log": lines[-8:]}
            print(f"precision: served {mode}: {json.dumps(res[mode])}", flush=True)
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old
    names = sorted({n for _, n in images})
    res["psnr_db_uint8"] = {n: psnr(images[("configured", n)], images[("fp32", n)], 255.0) for n in names}
    res["speedup_cold"] = min(res["fp32"]["cold_s"]) / min(res["configured"]["cold_s"])
    res["speedup_edit"] = min(res["fp32"]["edit_s"]) / min(res["configured"]["edit_s"])
    res["speedup_cold_cpu"] = min(res["fp32"]["cold_cpu_s"]) / min(res["configured"]["cold_cpu_s"])
    res["speedup_edit_cpu"] = min(res["fp32"]["edit_cpu_s"]) / min(res["configured"]["edit_cpu_s"])
    return res


def _f(x, fmt="{:.3f}"):
    return "-" if x is None else fmt.format(x)


def markdown(r: dict) -> str:
    lines = [f"# fp32 vs bf16 on {r['machine']['cpu']} ({r['threads']} threads, bf16 flags: "
             f"{', '.join(r['machine']['bf16_flags']) or 'none'}), best of {r['frames']}, {r['date']}", "",
             f"`{r['command']}`; {r['note']}", ""]
    if r.get("networks") or r.get("families"):
        lines += ["| network | runtime + precision | wall s / call | CPU s / call | speed vs fastest fp32 (wall / CPU) "
                  "| fidelity vs PyTorch fp32 |", "|---|---|---:|---:|---:|---|"]
        for net, row in {**r.get("networks", {}), **r.get("families", {})}.items():
            if "skipped" in row:
                lines.append(f"| {net} | skipped: {row['skipped']} | | | | |")
                continue
            fp32 = min(v for k, v in row["time_s"].items() if "fp32" in k)
            fp32_cpu = min(v for k, v in row["cpu_s"].items() if "fp32" in k)
            for mode, t in row["time_s"].items():
                if "rel_l2" in row:
                    fid = "rel-L2 " + ", ".join(f"{x:.1e}" for x in row["rel_l2"][mode])
                    if "psnr_db" in row:
                        fid += f"; PSNR {row['psnr_db'][mode]:.1f} dB"
                else:
                    fid = (f"PSNR {row['psnr_db_vs_torch_fp32'][mode]:.1f} dB, max "
                           f"{row['max_abs_grey_levels'][mode]} grey levels")
                c = row["cpu_s"][mode]
                lines.append(f"| {net} | {mode} | {t:.3f} | {c:.3f} | {fp32 / t:.2f}x / {fp32_cpu / c:.2f}x | {fid} |")
    if "chain" in r:
        c = r["chain"]
        lines += ["", f"LivePortrait chain in-process (crop -> uint8, {PHOTOS[0]}): fp32 {c['time_s']['fp32']:.2f} s, "
                  f"bf16 ({', '.join(f'{k} {v}' for k, v in c['backends']['bf16'].items())}) "
                  f"{c['time_s']['bf16']:.2f} s: **{c['speedup']:.2f}x** (CPU seconds: {c['cpu_s']['fp32']:.1f} vs "
                  f"{c['cpu_s']['bf16']:.1f}, {c['speedup_cpu']:.2f}x), image PSNR {c['psnr_db_float']:.1f} dB "
                  f"(uint8 {c['psnr_db_uint8']:.1f} dB), rel-L2 {c['rel_l2']:.1e}"]
    if "attribution_psnr_db" in r:
        lines += ["", "LivePortrait image PSNR vs fp32 with only these leaves in bf16 (the rest fp32): "
                  + ", ".join(f"{k} {v:.1f} dB" for k, v in r["attribution_psnr_db"].items())
                  + f" (bound: {PSNR_MIN:.0f} dB)"]
    if "served" in r:
        s = r["served"]
        lines += ["", f"served LivePortrait frame (real tritonserver, 1 client): fp32 (`{ENV}=fp32`) "
                  f"{min(s['fp32']['cold_s']):.2f} s, as configured {min(s['configured']['cold_s']):.2f} s: "
                  f"**{s['speedup_cold']:.2f}x** (cold photo); repeated edit (F, M cached) "
                  f"{min(s['fp32']['edit_s']):.2f} s vs {min(s['configured']['edit_s']):.2f} s: "
                  f"**{s['speedup_edit']:.2f}x**; server CPU seconds per request (all stages): cold "
                  f"{min(s['fp32']['cold_cpu_s']):.1f} vs {min(s['configured']['cold_cpu_s']):.1f} "
                  f"({s['speedup_cold_cpu']:.2f}x), edit {min(s['fp32']['edit_cpu_s']):.1f} vs "
                  f"{min(s['configured']['edit_cpu_s']):.1f} ({s['speedup_edit_cpu']:.2f}x); output PSNR vs fp32 served: "
                  + ", ".join(f"{k} {v:.1f} dB" for k, v in s["psnr_db_uint8"].items())]
    return "\n".join(lines) + "\n"


def run(args) -> int:
    import torch
    torch.set_num_threads(args.threads)
    torch._C._jit_set_profiling_executor(False)   # as facefront.serving.torch_stage: the served leaves run so
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    skip = set(filter(None, args.skip.split(","))) | ({"served"} if args.no_serve else set())
    flags = cpu_flags()
    from . import header
    h = header("precision")
    load = h["machine"]["load_avg_at_start"]
    r = {**h, "machine": {**h["machine"], "cores": os.cpu_count(), "bf16_flags": [f for f in BF16_FLAGS if f in flags],
                          "auto_decision": str(decide("auto")), "torch": torch.__version__},
         "threads": args.threads, "frames": args.frames,
         "note": ("shared machine: other processes used the same cores during the run (load average at start "
                  f"{', '.join(f'{x:.1f}' for x in load) if load else '?'}), so absolute times are inflated and "
                  "only ratios within this run compare; synthetic weights (as exported)")}
    if not r["machine"]["bf16_flags"]:
        print(f"precision: this CPU has neither {' nor '.join(BF16_FLAGS)}: bf16 rows are emulated (slow); "
              "`auto` keeps fp32 here", flush=True)
    if "networks" not in skip:
        r["networks"] = liveportrait_leaves(args.frames, args.threads)
    if "families" not in skip:
        r["families"] = family_references(args.frames, args.threads)
    if "chain" not in skip:
        r["chain"] = liveportrait_chain(args.frames, args.threads, set(filter(None, args.bf16.split(",")))
                                        or configured_bf16())
    if "attribution" not in skip:
        r["attribution_psnr_db"] = leaf_attribution(args.threads)
    if "served" not in skip:
        r["served"] = served(args.frames)
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(r, indent=1, default=str) + "\n"
    (args.out / "precision.json").write_text(text)
    (args.out / "precision.md").write_text(markdown(r))
    if args.results:
        tag = "_".join(r["machine"]["bf16_flags"]) or "fp32only"
        (REPO_ROOT / "bench" / "results" / f"cpu_precision_{tag}.json").write_text(text)
    print(markdown(r))
    return 0


def main(argv: list[str] | None = None) -> int:
    from bench import standalone
    return standalone("bench.precision", argv)


if __name__ == "__main__":
    sys.exit(main())
