"""Render the README's measured tables from the results files that their commands wrote, or check that they agree.

A table in README.md between `<!-- results: NAME -->` and `<!-- /results -->` is made by RENDERERS[NAME] from
bench/results/*.json (each file holds the machine, the date or the command that produced it). `python -m bench
readme` rewrites those blocks; `--check` changes nothing and exits 1 naming every block that differs from its
results or that finds a measured-looking figure (1.4x, 38 dB, 20 images/s, 93 ms, 4.5 s) in the prose outside the
blocks, which `tests/test_readme_numbers.py` runs, so a README number cannot drift from its measurement.

examples:
  python -m bench readme            # re-render the blocks after a benchmark wrote new results
  python -m bench readme --check    # exit 1 if README and results disagree
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from facefront.repository import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results"
README = REPO_ROOT / "README.md"
BLOCK = re.compile(r"(<!-- results: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)


def _load(name: str) -> dict:
    path = RESULTS / name
    if not path.is_file():
        raise SystemExit(f"error: no {path.relative_to(REPO_ROOT)}: run the command that writes it (its --results "
                         f"option; `python -m bench --help` lists them)")
    return json.loads(path.read_text())


def _f(v, fmt="{:.1f}") -> str:
    return "" if v is None else fmt.format(v)


def soak() -> str:
    d = _load("soak_cpu.json")
    rows = ["| model | users x seconds | requests | failures | server RSS after warm-up -> after, MB | growth |",
            "|---|---|---:|---:|---|---:|"]
    for m, r in d["models"].items():
        rows.append(f"| {m} | {r['users']} x {r['seconds']:g} | {r['requests']} | {r['failures']} | "
                    f"{r['rss_after_warmup_mb']} -> {r['rss_after_soak_mb']} | {r['rss_growth_pct']:+.1f} % |")
    return "\n".join(rows) + f"\n\n`{d['command']}` ({d['date']}, {d['machine']['cpus']} CPUs).\n"


def frontend() -> str:
    d = _load("frontend_cpu.json")
    rows = ["| condition | photo | facefront (LiteRT) ms | onnxruntime, 1 thread ms | onnxruntime defaults ms | "
            "MediaPipe ms | facefront / MediaPipe: wall | CPU time | front end, one core: images/s |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    wall, cpu = [], []
    for cond, photos in d["conditions"].items():
        for name, r in photos.items():
            if name.startswith("_"):
                continue
            wall.append(r["facefront_vs_mediapipe"])
            cpu.append(r["facefront_vs_mediapipe_cpu"])
            rows.append(f"| {cond} | {name} ({r['pixels']}) | {_f(r['facefront_ms'])} | "
                        f"{_f(r['facefront_onnxruntime_ms'])} | {_f(r['facefront_ort_defaults_ms'])} | "
                        f"{_f(r.get('mediapipe_ms'))} | {_f(r['facefront_vs_mediapipe'], '{:.2f}')} | "
                        f"{_f(r['facefront_vs_mediapipe_cpu'], '{:.2f}')} | {_f(r['front_end_images_per_s_one_core'])} |")
    text = (f"Face detection + 468 landmarks take {min(wall):.2f}-{max(wall):.2f}x MediaPipe's wall time and "
            f"{min(cpu):.2f}-{max(cpu):.2f}x its CPU time, quiet and busy. ")
    out = "\n".join(rows) + "\n\n" + text + _ran(d) + "\n"
    if (RESULTS / "frontend_served_cpu.json").is_file():
        sd = _load("frontend_served_cpu.json")
        rows = ["| photo | served scaleway ms | in-process parts ms (cv2 decode + MediaPipe + generator) | ratio | "
                "served face_analyze ms | parts ms (cv2 decode + MediaPipe) | ratio |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, r in sd["served"].items():
            if not isinstance(r, dict) or "served_scaleway_ms" not in r:
                continue
            parts = r["cv2_decode_ms"] + r["mediapipe_ms"] + r["generator_onnxruntime_ms"]
            rows.append(f"| {name} ({r['pixels']}) | {r['served_scaleway_ms']:.1f} | {parts:.1f} | "
                        f"{r['scaleway_vs_parts']:.2f}x | {r['served_face_analyze_ms']:.1f} | "
                        f"{r['cv2_decode_ms'] + r['mediapipe_ms']:.1f} | {r['face_analyze_vs_parts']:.2f}x |")
        out += ("\nThe whole served request (1 gRPC client) against the fastest in-process parts, same run:\n\n"
                + "\n".join(rows) + "\n\n" + _ran(sd) + "\n")
    if (RESULTS / "frontend_group_cpu.json").is_file():
        gd = _load("frontend_group_cpu.json")
        g = gd["group"]
        rows = [f"| group photo | faces | all faces ms | per face ms | one face of {g['single']['photo']} ms | "
                "per face / one face: wall | CPU time |", "|---|---:|---:|---:|---:|---:|---:|"]
        for name, r in g.items():
            if name == "single":
                continue
            rows.append(f"| {name} ({r['pixels']}) | {r['faces']} | {r['all_faces_ms']:.1f} | {r['per_face_ms']:.1f} | "
                        f"{r['single_face_ms']:.1f} | {r['per_face_vs_single']:.2f}x | {r['per_face_vs_single_cpu']:.2f}x |")
        out += ("\nGroup photos (every face, `all_faces`) against one face of a single-face photo, interleaved:\n\n"
                + "\n".join(rows) + "\n\n" + _ran(gd) + "\n")
    return out


def _ran(d: dict) -> str:
    """`command` (date, N CPUs, load average at start): the line under every rendered table."""
    m = d.get("machine", {})
    load = m.get("load_avg_at_start")
    extra = f", load average {load[0]:.1f} at start" if load else ""
    return f"`{d['command']}` ({d['date']}, {m.get('cpus', '?')} CPUs{extra})."


def _speed_rows(path: str) -> dict:
    return {r["mode"]: r for r in _load(path)["results"] if not r.get("skipped")}


SPEED_TIMED = {"eager": "network only, PyTorch 2.13", "onnxruntime": "network only",
               "pipeline": "in-process: decode + face detection/landmarks + crop + onnxruntime",
               "triton-1": "whole gRPC request, 1 client", "triton-8": "whole gRPC request, 8 clients"}


def speed_scaleway() -> str:
    d = _load("speed_scaleway_cpu.json")
    r = _speed_rows("speed_scaleway_cpu.json")
    rows = ["| mode | what is timed | images/s | p50 ms | p95 ms |", "|---|---|---:|---:|---:|"]
    for mode, label in SPEED_TIMED.items():
        if mode in r:
            x = r[mode]
            label = x["timed"].split(", 2 threads")[0] if mode == "eager" else label
            rows.append(f"| {mode} | {label} | {x['images_per_s']:.1f} | {x['p50_ms']:.1f} | {x['p95_ms']:.1f} |")
    e, o, pipe, one = (r.get(k) for k in ("eager", "onnxruntime", "pipeline", "triton-1"))
    text = []
    if e and o:
        text.append(f"onnxruntime runs the generator {o['images_per_s'] / e['images_per_s']:.1f}x as fast as eager "
                    f"PyTorch here ({o['p50_ms']:.1f} vs {e['p50_ms']:.1f} ms p50).")
    if pipe and one:
        net = f" ({o['p50_ms']:.1f} ms)" if o else ""
        text.append(f"A served request at 1 client and the same work in-process differ by {one['p50_ms'] - pipe['p50_ms']:+.1f} "
                    f"ms (p50 {one['p50_ms']:.1f} vs {pipe['p50_ms']:.1f} ms): the time goes to decoding the photo and "
                    f"finding the face, not to the network{net} or to Triton.")
    return "\n".join(rows) + "\n\n" + " ".join(text) + "\n\n" + _ran(d) + "\n"


def speed_ffwm() -> str:
    d = _load("speed_ffwm_cpu.json")
    r = _speed_rows("speed_ffwm_cpu.json")
    e, o, pipe, one = (r.get(k) for k in ("eager", "onnxruntime", "pipeline", "triton-1"))
    text = (f"Speed on CPU: onnxruntime runs the graph {o['images_per_s'] / e['images_per_s']:.1f}x as fast as eager "
            f"PyTorch ({o['p50_ms'] / 1e3:.2f} s vs {e['p50_ms'] / 1e3:.2f} s per image, p50)")
    if pipe and one:
        text += (f"; a whole served request takes {one['p50_ms'] / 1e3:.2f} s against {pipe['p50_ms'] / 1e3:.2f} s for the "
                 f"same work in-process")
    return text + ". " + _ran(d) + "\n"


def lpspeed() -> str:
    d = _load("lpspeed_cpu.json")
    e, srv = d["eager"]["stages"]["end_to_end"], d["served"]

    def cell(x):
        return f"{x['median_s']:.2f} | {x['min_s']:.2f}-{x['max_s']:.2f}"
    edit = srv["per_stage"]["edit"]
    f_leaf, m_leaf = "liveportrait_appearance", "liveportrait_motion"
    rows = [f"| path (one frame, batch 1, 1 client) | median s | spread (min-max) s, {e['n']} frames |",
            "|---|---:|---|",
            f"| eager PyTorch chain, in-process | {cell(e)} |",
            f"| served, a photo the server has not seen | {cell(srv['new_photo'])} |",
            f"| served, another pose of the same photo (F and M from the response cache) | {cell(srv['edit'])} |"]
    text = (f"Served vs eager: {d['speedup_new']:.2f}x for a new photo, {d['speedup_edit']:.2f}x for a repeated edit "
            f"(during the edits F and M ran {edit.get(f_leaf, {}).get('executions')} and "
            f"{edit.get(m_leaf, {}).get('executions')} times, the cache answered {edit.get(f_leaf, {}).get('cache_hits')} "
            f"and {edit.get(m_leaf, {}).get('cache_hits')} times).")
    return "\n".join(rows) + "\n\n" + text + "\n\n" + _ran(d) + "\n"


def mesh3d() -> str:
    d = _load("mesh3d_eval.json")
    s, sp = d["summary"], d["speed"]
    return (f"Measured on the {s['photos']} offline photos: output |yaw| {s['mean_abs_output_yaw']:.1f}° and |pitch| "
            f"{s['mean_abs_output_pitch']:.1f}° on average (inputs up to {s['max_abs_input_yaw']:.0f}° yaw), dlib identity "
            f"distance input→output {s['identity_mean']:.2f} mean, {s['identity_max']:.2f} max (same person < 0.6); "
            f"{sp['fps_frontalize']:.1f} frontalizations/s on {sp['photo']} (detection + landmarks + render), render "
            f"alone {sp['fps_render']:.1f}/s. " + _ran(d) + "\n")


ACTIONS = {"reloaded the model": "reloads that model alone (the whole server only if the reload fails)",
           "restarted the server": "restarts the server"}


def fault() -> str:
    d = _load("fault_cpu.json")
    sd = d["shutdown"]
    between = d.get("successes_between_failures")
    drained = (f" ({between} requests succeeded in between: requests already queued at the dead stub fail as they "
               "drain)") if between else ""
    return (f"- **A dead python stub** (the `{d['leaf']}` stub killed with SIGKILL while {d['users']} clients sent "
            f"requests in a loop, each retrying 0.2 s after a failure): Triton alone keeps answering ready and fails "
            f"that model forever; `python -m facefront.serving` notices within its check interval and "
            f"{ACTIONS.get(d['launcher_action'], d['launcher_action'])}. {d['model']} answered every request again "
            f"{d['recovered_s']} s after the kill; "
            f"{d['failed_after_kill']} requests failed before that{drained}, {d['failures_after_recovery']} of the "
            f"{d['requests_after_recovery']} after. Ctrl-C then exited {sd['exit_code']}, leaving {sd['left_processes']} "
            f"of its {sd['children_before']} processes and {sd['left_views']} of its {sd['repository_views']} "
            f"repository views behind. " + _ran(d) + "\n")


def export_fidelity() -> str:
    d = _load("export_fidelity.json")
    rows = ["| graph | max abs, onnxruntime vs PyTorch | outputs | weights |", "|---|---:|---|---|"]
    for key, g in d["graphs"].items():
        worst = max(g["outputs"].values())
        sampler = f" ({g['w_sampler']} warp)" if g.get("w_sampler") else ""
        value = f"{worst:.0f} grey levels" if "grey levels" in "".join(g["outputs"]) else f"{worst:.1e}"
        rows.append(f"| {key}{sampler} | {value} | {', '.join(g['outputs'])} | {g['weights']} |")
    return "\n".join(rows) + "\n\n" + _ran(d) + "\n"


def demo() -> str:
    d = _load("demo_cpu.json")
    rows = [f"| model | weights | images written | load: images/s ({d['users']} users, {d['seconds']:g} s) | p50 ms | "
            "p95 ms | p99 ms | failures |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for m, r in d["models"].items():
        ld = r["load"]
        rows.append(f"| {m} | {r['weights']} | {r['images']} | {_f(ld.get('fps'))} | {_f(ld.get('p50_ms'), '{:.0f}')} | "
                    f"{_f(ld.get('p95_ms'), '{:.0f}')} | {_f(ld.get('p99_ms'), '{:.0f}')} | {ld.get('failures')} |")
    skipped = (f" Not run (synthetic weights would draw noise, or not exported): {', '.join(d['skipped'])}."
               if d.get("skipped") else "")
    return "\n".join(rows) + "\n\n" + skipped.strip() + ("\n\n" if skipped else "") + _ran(d) + "\n"


def report() -> str:
    d = _load("report_cpu.json")
    ds = d["dataset"]
    rows = ["| " + " | ".join(d["columns"]) + " |", "|" + "---|" * len(d["columns"])]
    rows += ["| " + " | ".join(str(c) for c in r) + " |" for r in d["rows"]]
    intro = (f"Dataset: {ds['label']}, {ds['samples']} samples; load sweep at {d['users']} users, {d['duration_s']:g} s "
             f"per point; the whole report took {d['wall_s'] / 60:.0f} minutes.")
    return intro + "\n\n" + "\n".join(rows) + "\n\n" + _ran(d) + "\n"


GPU_MODES = {"eager32": "eager fp32 (TF32 off)", "tf32": "eager TF32", "fp16": "eager fp16 (M, S in fp32)",
             "compile": "torch.compile fp32", "graphs16": "fp16 + CUDA graphs"}


def gpu_liveportrait() -> str:
    d = _load("gpu_liveportrait_h200.json")
    rows = ["| mode | batch 1 frames/s (ms/frame) | batch 4 | batch 8 | rel. L2 vs fp32 | PSNR vs fp32 (dB) | max abs |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for mode, label in GPU_MODES.items():
        m = d["modes"][mode]
        sp = {s["batch"]: s for s in m["speed"]}
        fid = m["fidelity_vs_eager32"]
        psnr = "" if fid["psnr_db"] in (None, float("inf")) else f"{fid['psnr_db']:.1f}"
        rows.append(f"| {label} | {sp[1]['fps']:.1f} ({sp[1]['ms_per_frame']:.1f}) | {sp[4]['fps']:.1f} | "
                    f"{sp[8]['fps']:.1f} | {fid['rel_l2']:.1e} | {psnr} | {fid['max_abs']:.3f} |")
    rows += ["", "Inside Triton's python backend (the same code as a python-backend model, HTTP clients on the same "
             "machine, dynamic batching up to 8):", "",
             "| mode | 1 client: frames/s | p50 ms | 8 clients: frames/s | p50 / p95 ms |", "|---|---:|---:|---:|---:|"]
    for mode, m in d["triton"]["models"].items():
        runs = {r["users"]: r for r in m["runs"]}
        one, eight = runs[1], runs[8]
        rows.append(f"| {GPU_MODES.get(mode, mode)} | {one['fps']:.1f} | {one['p50_ms']:.1f} | {eight['fps']:.1f} | "
                    f"{eight['p50_ms']:.0f} / {eight['p95_ms']:.0f} |")
    m = d["modes"]
    ms = {k: m[k]["speed"][0]["ms_per_frame"] for k in ("eager32", "fp16", "graphs16")}
    served1 = {r["users"]: r for r in d["triton"]["models"]["graphs16"]["runs"]}[1]["fps"]
    text = (f"At batch 1, fp16 takes the frame from {ms['eager32']:.1f} to {ms['fp16']:.1f} ms at a PSNR of "
            f"{m['fp16']['fidelity_vs_eager32']['psnr_db']:.1f} dB against fp32, and CUDA graphs to {ms['graphs16']:.1f} ms; "
            f"the python backend keeps {served1 / m['graphs16']['speed'][0]['fps']:.0%} "
            f"of the in-process rate at 1 client.")
    return "\n".join(rows) + f"\n\n{text} {d['gpu']}, torch {d['torch']}, weights {d['weights']}.\n"


def precision() -> str:
    name = next(iter(sorted(RESULTS.glob("cpu_precision_*.json")))).name
    d = _load(name)
    rows = ["| network | runtime + precision | CPU s per call | vs fastest fp32 (CPU) | rel-L2 vs PyTorch fp32 (worst output) |",
            "|---|---|---:|---:|---:|"]
    for net, r in d["networks"].items():
        cpu = r["cpu_s"]
        fp32 = min(v for k, v in cpu.items() if k.endswith("fp32"))
        for mode, v in cpu.items():
            rel = max(r.get("rel_l2", {}).get(mode) or [0.0])
            rows.append(f"| LivePortrait {net} | {mode} | {v:.2f} | {fp32 / v:.2f}x | {rel:.1e} |")
    att = d.get("attribution_psnr_db", {})
    text = ("LivePortrait's output image against the fp32 chain with only the named leaves in bf16 (bound: 38 dB): "
            + "; ".join(f"{k} {v:.1f} dB" for k, v in att.items()) + ". ")
    sv = d.get("served")
    if sv:
        psnr = min(sv.get("psnr_db_uint8", {}).values(), default=None)
        text += (f"Served as configured against the same repository forced to fp32 (`FACEFRONT_PRECISION=fp32`), one "
                 f"client: the server's CPU seconds per new photo {sv['fp32']['cold_cpu_s'][0]:.1f} -> "
                 f"{sv['configured']['cold_cpu_s'][0]:.1f} ({sv['speedup_cold_cpu']:.2f}x), per repeated edit "
                 f"{sv['speedup_edit_cpu']:.2f}x" + (f", output {psnr:.1f} dB against fp32. " if psnr else ". "))
    return ("\n".join(rows) + "\n\n" + text + f"`{d['command']}` ({d['date']}, {d['machine']['cpu']}, "
            f"{d['machine']['cores']} cores, {', '.join(d['machine']['bf16_flags']) or 'no bf16'}).\n")


SAMPLERS = {"grid_sample_5d": "native 5-D GridSample", "gather_8": "gather_8", "planar_4d": "planar_4d"}


def gpu_samplers() -> str:
    d = _load("gpu_liveportrait_samplers_h200.json")
    rows = ["| W sampling | fp32: max abs vs 5-D | fp16: PSNR vs fp32 5-D | fp16 + graphs, batch 1 / 8 frames/s |",
            "|---|---:|---:|---:|"]
    for key, label in SAMPLERS.items():
        m = d["modes"]
        e32, f16, g16 = (m[f"{mode}/{key}"] for mode in ("eager32", "fp16", "graphs16"))
        mx = e32["fidelity_vs_eager32"]["max_abs"]
        sp = {x["batch"]: x["fps"] for x in g16["speed"]}
        rows.append(f"| {label} | {'0' if mx == 0 else f'{mx:.1e}'} | {f16['fidelity_vs_eager32']['psnr_db']:.1f} dB | "
                    f"{sp[1]:.1f} / {sp[8]:.1f} |")
    m = d["modes"]
    loss = m["fp16/grid_sample_5d"]["fidelity_vs_eager32"]["psnr_db"] - m["fp16/gather_8"]["fidelity_vs_eager32"]["psnr_db"]
    return ("\n".join(rows) + f"\n\nIn fp16, gather_8 loses {loss:.1f} dB against the native op at about the same speed. "
            f"{d['gpu']}, torch {d['torch']}, weights {d['weights']}.\n")


RENDERERS = {"soak": soak, "frontend": frontend, "gpu-liveportrait": gpu_liveportrait,
             "speed-scaleway": speed_scaleway, "speed-ffwm": speed_ffwm, "lpspeed": lpspeed, "demo": demo,
             "report": report, "mesh3d": mesh3d, "gpu-samplers": gpu_samplers,
             "fault": fault, "export-fidelity": export_fidelity, "precision": precision}


# a measured figure: a ratio (1.4x), decibels, a rate, milliseconds, or seconds with decimals (settings such as
# "16 users for 60 s" are whole numbers and stay in the prose)
FIGURE = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)?\s?(?:x|dB|images/s|frames/s|FPS|ms)(?![\w/])"
                    r"|(?<![\w.])\d+\.\d+\s?s\b")


def stray_figures(text: str) -> list[str]:
    """Measured-looking figures in README prose, outside results blocks, code blocks and `code`: each must come
    from a results file instead."""
    prose = BLOCK.sub("", text)
    prose = re.sub(r"```.*?```", "", prose, flags=re.S)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    return [f"{m.group(0)!r} in: ...{prose[max(0, m.start() - 60):m.end() + 20]}...".replace("\n", " ")
            for m in FIGURE.finditer(prose)]


def render(text: str) -> tuple[str, list[str]]:
    """(README with every results block re-rendered, names of the blocks that changed)."""
    changed = []

    def one(m):
        name = m.group("name")
        if name not in RENDERERS:
            raise SystemExit(f"README block {name!r} has no renderer; known: {', '.join(RENDERERS)}")
        body = RENDERERS[name]()
        if body != m.group("body"):
            changed.append(name)
        return m.group(1) + body + m.group(4)
    return BLOCK.sub(one, text), changed


def add_arguments(p) -> None:
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block differs from its results")
    p.add_argument("--readme", type=Path, default=README)


def run(args) -> int:
    text = args.readme.read_text()
    new, changed = render(text)
    stray = stray_figures(new)
    for s in stray:
        print(f"README figure outside a results block (render it from bench/results instead): {s}", file=sys.stderr)
    if args.check:
        for name in changed:
            print(f"README block {name!r} differs from its results: run `python -m bench readme`", file=sys.stderr)
        return 1 if changed or stray else 0
    if changed:
        args.readme.write_text(new)
    print(f"re-rendered: {', '.join(changed) or 'nothing (up to date)'}")
    return 0


def main(argv=None) -> int:
    from . import standalone
    return standalone("bench.readme", argv)


if __name__ == "__main__":
    sys.exit(main())
