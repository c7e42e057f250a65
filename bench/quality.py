"""Quality per model and pose bucket: identity kept, residual head pose, expression kept, pixels against a frontal
ground truth, and Fréchet distances, for every served model on a dataset (see bench/datasets.py).

Each sample's image is sent to each model through the client (so what is measured is what a user gets); the
input itself is scored as the baseline row ``input``. Per output: dlib identity distance to the input (same
person < 0.6) and ArcFace ID-SIM (cosine) with --arcface; residual |yaw|, |pitch| (our landmarks + head_pose);
expression distance to the input (bench.metrics.expression_distance); with a frontal reference: PSNR, SSIM,
LPIPS-alex on the aligned crops. Pose-capable models also get pose edits (commanded vs measured angles).
Writes DIR/quality.json and the outputs as DIR/images/<model>/<sample>.png.

examples:
  python -m bench.quality --dataset synthetic --serve --out out/quality
  python -m bench.quality --dataset photos --models scaleway,mesh3d --url 127.0.0.1:8001 --out out/quality
  python -m bench.quality --dataset my_faces.csv --arcface w600k_r50.onnx --serve --out out/quality
exit status: 0 done, 2 could not run.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from . import add_server_arguments
from . import datasets as ds
from . import metrics as mx

BASELINE = "input"
POSE_EDITS = ((20.0, 0.0), (0.0, 10.0))   # (yaw, pitch) commanded on pose-capable models


def add_arguments(p) -> None:
    p.add_argument("--dataset", default="synthetic",
                   help="'synthetic' (mesh3d renders of the photos), 'photos' (offline photos), or a manifest .jsonl/.csv")
    p.add_argument("--photos", nargs="+", default=list(ds.SMALL_PHOTOS), help="source photos for the built-in sets")
    p.add_argument("--full", action="store_true", help="synthetic set: every yaw +-15/30/45/60 and pitch +-15")
    p.add_argument("--models", help="comma-separated families (default: every served one)")
    p.add_argument("--arcface", type=Path, help="ArcFace ONNX file for ID-SIM (none installs offline)")
    p.add_argument("--fid", action="store_true",
                   help="also try standard FID (Inception) through the clean-fid venv; needs its weights download")
    p.add_argument("--no-cleanfid", action="store_true", help="compute Fréchet distances in-process even if the venv is there")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    add_server_arguments(p)


def load_dataset(args, progress=print) -> tuple[str, list[ds.Sample]]:
    if args.dataset == "synthetic":
        poses = ds.SYNTHETIC_POSES if args.full else ds.SMALL_POSES
        out = ds.REPO_ROOT / ".cache" / "bench" / "synthetic"
        samples = ds.synthetic_samples(out, args.photos, poses, progress=progress)
        return "synthetic (mesh3d renders; favours geometric models)", samples
    if args.dataset == "photos":
        return "photos (offline, pose measured)", ds.photo_samples(args.photos)
    return f"manifest {args.dataset}", ds.read_manifest(args.dataset)


class Scorer:
    """Analyses one image once (face, landmarks, pose, embeddings) and scores outputs against it."""

    def __init__(self, arcface: Path | None = None):
        from . import identity
        self.arcface = identity.arcface(str(arcface)) if arcface else None

    def analyse(self, rgb: np.ndarray) -> dict | None:
        from facefront.face import NoFaceError, analyze
        from facefront.face.pose import head_pose

        from . import identity
        try:
            face = analyze(rgb, max_faces=1)[0]
        except NoFaceError:
            return None
        a = {"face": face, "rgb": rgb, "pose": head_pose(face.landmarks), "aligned": mx.aligned(rgb, face)}
        a["dlib"] = identity.dlib_embedding(rgb, face)
        if self.arcface:
            a["arcface"] = self.arcface.embedding(rgb, face.landmarks)
        return a

    def score(self, out: dict | None, inp: dict, ref: dict | None) -> dict:
        from . import identity, lpips
        if out is None:
            return {"face_found": False}
        r = {"face_found": True, "yaw": out["pose"][0], "pitch": out["pose"][1], "roll": out["pose"][2],
             "id_dist": float(np.linalg.norm(out["dlib"] - inp["dlib"])),
             "expr_dist": mx.expression_distance(inp["face"].landmarks, out["face"].landmarks)}
        if "arcface" in out:
            r["id_sim"] = identity.cosine(out["arcface"], inp["arcface"])
        if ref is not None:
            r["psnr"] = mx.psnr(out["aligned"], ref["aligned"])
            r["ssim"] = mx.ssim(out["aligned"], ref["aligned"])
            r["lpips"] = float(lpips.distance(out["aligned"], ref["aligned"])[0])
            r["id_dist_ref"] = float(np.linalg.norm(out["dlib"] - ref["dlib"]))
        return r


def aggregate(rows: list[dict]) -> dict:
    """Means over the outputs where a face was found; 'no_face' counts the others."""
    found = [r for r in rows if r.get("face_found")]
    out = {"n": len(rows), "no_face": len(rows) - len(found)}
    out.update({f"pose_{k}": v for k, v in mx.pose_summary([(r["yaw"], r["pitch"]) for r in found]).items() if k != "n"})
    for key in ("id_dist", "id_sim", "expr_dist", "psnr", "ssim", "lpips", "id_dist_ref"):
        vals = [r[key] for r in found if key in r and np.isfinite(r[key])]
        if vals:
            out[key] = float(np.mean(vals))
    if found:
        out["same_person"] = float(np.mean([r["id_dist"] < 0.6 for r in found]))
    return out


def evaluate(url: str, protocol: str, samples: list[ds.Sample], models: list[str], out: Path,
             arcface: Path | None = None, progress=print) -> dict:
    import cv2

    from client import FrontalizeClient
    from facefront.data import read_rgb
    scorer = Scorer(arcface)
    (out / "images").mkdir(parents=True, exist_ok=True)
    records, feats = [], {m: {"vgg": [], "id": []} for m in [BASELINE, *models]}
    ref_feats = {"vgg": [], "id": []}
    seen_refs: set[str] = set()
    pose_edits: dict[str, list] = {}
    t0 = time.time()
    with FrontalizeClient(url, protocol=protocol, timeout=120) as client:
        infos = {m: client.model_info(m) for m in models}
        for i, s in enumerate(samples):
            rgb = read_rgb(s.image)
            inp = scorer.analyse(rgb)
            rec = {"sample": s.name, "image": s.image, "identity": s.identity, "synthetic": s.synthetic,
                   "frontal": s.frontal, "yaw_given": s.yaw, "pitch_given": s.pitch, "outputs": {}}
            if inp is None:
                rec["skipped"] = "no face in the input"
                records.append(rec)
                continue
            yaw = s.yaw if s.yaw is not None else inp["pose"][0]
            rec.update(bucket=ds.bucket(yaw), input_pose=list(inp["pose"]))
            ref = scorer.analyse(read_rgb(s.frontal)) if s.frontal else None
            if s.frontal and ref is not None and s.frontal not in seen_refs:
                seen_refs.add(s.frontal)
                ref_feats["id"].append(ref["dlib"])
                ref_feats["vgg"].append(ref["aligned"])
            elif not s.frontal:  # no ground truth: the real photos are the reference distribution
                ref_feats["id"].append(inp["dlib"])
                ref_feats["vgg"].append(inp["aligned"])
            # the input itself, scored as if it were an output: the baseline every model should beat
            rec["outputs"][BASELINE] = scorer.score(inp, inp, ref)
            feats[BASELINE]["vgg"].append(inp["aligned"])
            feats[BASELINE]["id"].append(inp["dlib"])
            for m in models:
                path = out / "images" / m / f"{s.name}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                t = time.perf_counter()
                try:
                    res = client.frontalize(s.image, model=m)
                except Exception as e:  # one failing request is a result, not the end of the run
                    rec["outputs"][m] = {"error": str(e)[:300]}
                    continue
                ms = (time.perf_counter() - t) * 1e3
                cv2.imwrite(str(path), cv2.cvtColor(res, cv2.COLOR_RGB2BGR))
                o = scorer.analyse(res)
                sc = scorer.score(o, inp, ref)
                sc.update(latency_ms=round(ms, 1), image=str(path.relative_to(out)), shape=list(res.shape))
                rec["outputs"][m] = sc
                if o is not None:
                    feats[m]["vgg"].append(o["aligned"])
                    feats[m]["id"].append(o["dlib"])
                if infos[m].pose and i == 0:
                    for y, p in POSE_EDITS:
                        try:
                            e = scorer.analyse(client.frontalize(s.image, model=m, yaw=y, pitch=p))
                        except Exception:
                            e = None
                        pose_edits.setdefault(m, []).append(
                            {"sample": s.name, "commanded": [y, p], "measured": None if e is None else list(e["pose"][:2])})
            records.append(rec)
            progress(f"quality: {i + 1}/{len(samples)} samples x {len(models)} models ({time.time() - t0:.0f} s)")
    return {"records": records, "feats": feats, "ref_feats": ref_feats, "pose_edits": pose_edits}


def summarize(records: list[dict], models: list[str]) -> dict:
    agg = {}
    for m in [BASELINE, *models]:
        rows_by: dict[str, list] = {}
        for rec in records:
            o = rec.get("outputs", {}).get(m)
            if o is None or "error" in o:
                continue
            rows_by.setdefault(rec["bucket"], []).append(o)
            rows_by.setdefault("all", []).append(o)
        errors = sum(1 for rec in records if "error" in rec.get("outputs", {}).get(m, {}))
        agg[m] = {b: aggregate(rows) for b, rows in sorted(rows_by.items())}
        agg[m]["errors"] = errors
    return agg


def frechet_section(feats: dict, ref_feats: dict, use_cleanfid: bool) -> dict:
    from . import lpips
    out = {}
    ref_vgg = lpips.vgg16_features(ref_feats["vgg"]) if len(ref_feats["vgg"]) >= 2 else np.zeros((0, 512))
    ref_id = np.asarray(ref_feats["id"]).reshape(-1, 128)
    pairs = {}
    for m, f in feats.items():
        vgg = lpips.vgg16_features(f["vgg"]) if len(f["vgg"]) >= 2 else np.zeros((0, 512))
        pairs[(m, "FD-VGG16")] = (vgg, ref_vgg)
        pairs[(m, "FD-identity")] = (np.asarray(f["id"]).reshape(-1, 128), ref_id)
    for (m, space), v in mx.frechet_many(pairs, use_cleanfid).items():
        out.setdefault(m, {})[space] = v
    return out


def standard_fid_section(out: Path, models: list[str], records: list[dict], wanted: bool) -> dict:
    if not wanted:
        return {"value": None, "why": "not requested (--fid): clean-fid downloads its Inception weights at run time, "
                                      "which fails offline; the FD-VGG16 / FD-identity stand-ins are computed instead"}
    if mx.cleanfid_python() is None:
        return {"value": None, "why": "the clean-fid venv is not installed (python -m bench.metrics setup-cleanfid)"}
    refs = sorted({r["frontal"] for r in records if r.get("frontal")})
    if len(refs) < 2:
        return {"value": None, "why": "fewer than 2 frontal references"}
    import shutil
    import tempfile
    res = {}
    with tempfile.TemporaryDirectory() as d:
        rd = Path(d) / "ref"
        rd.mkdir()
        for p in refs:
            shutil.copy(p, rd / Path(p).name)
        for m in models:
            try:
                res[m] = {"value": mx.standard_fid(out / "images" / m, rd)}
            except Exception as e:
                res[m] = {"value": None, "why": str(e)[:300]}
    return res


def run_quality(args, url: str, models: list[str], progress=print) -> dict:
    label, samples = load_dataset(args, progress)
    ev = evaluate(url, args.protocol, samples, models, args.out, args.arcface, progress)
    result = {
        "dataset": {"name": args.dataset, "label": label, "samples": len(samples),
                    "synthetic": any(s.synthetic for s in samples), "photos": args.photos},
        "models": models, "arcface": str(args.arcface) if args.arcface else None,
        "aggregate": summarize(ev["records"], models),
        "pose_edits": {m: {"edits": e, **mx.pose_error([x["commanded"] for x in e if x["measured"]],
                                                       [x["measured"] for x in e if x["measured"]])}
                       for m, e in ev["pose_edits"].items()},
        "frechet": frechet_section(ev["feats"], ev["ref_feats"], not args.no_cleanfid),
        "fid": standard_fid_section(args.out, models, ev["records"], args.fid),
        "records": ev["records"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    return result


def served_models(url: str, protocol: str, wanted: str | None) -> list[str]:
    from client import FrontalizeClient
    with FrontalizeClient(url, protocol=protocol) as c:
        served = c.models()
    if wanted:
        models = [m.strip() for m in wanted.split(",") if m.strip()]
        missing = [m for m in models if m not in served]
        if missing:
            raise ValueError(f"not served: {', '.join(missing)} (served: {', '.join(served) or 'none'})")
        return models
    return served


def run(args) -> int:
    from .resources import server
    try:
        if args.serve:
            from facefront.repository import exported_families
            ready, _ = exported_families()
            fams = [m.strip() for m in args.models.split(",")] if args.models else ready
            with server(fams) as srv:
                url = srv.grpc_url if args.protocol == "grpc" else srv.http_url
                run_quality(args, url, served_models(url, args.protocol, args.models),
                            lambda m: print(m, file=sys.stderr))
        else:
            from client.api import DEFAULT_URLS
            url = args.url or DEFAULT_URLS[args.protocol]
            run_quality(args, url, served_models(url, args.protocol, args.models), lambda m: print(m, file=sys.stderr))
    except (ValueError, OSError, ds.ManifestError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out / 'quality.json'}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    from . import standalone
    return standalone("bench.quality", argv)


if __name__ == "__main__":
    sys.exit(main())
