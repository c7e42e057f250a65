"""The main job, end to end on this machine: serve every usable model on CPU, frontalize the sample faces, run a
short load test, print where everything is, stop the server.

Models with synthetic weights produce noise, not faces: scaleway still runs (it is cheap and shows the whole
chain, labelled as synthetic); LivePortrait and FFWM are skipped with the reason unless real weights were exported
(`weights/<model>/`, then `make export`). mesh3d needs no weights.

The input photos are the most turned single-face photos of `make data` (by the head yaw face analysis measures),
unless --photos names them. The grid's columns are labelled with the model and its weights (real / synthetic /
none). Exit status: 0 when every model that ran wrote all its images and passed its load test, 1 otherwise.

examples:
  python -m bench demo --out out/demo
  python -m bench demo --out out/demo --photos obama.jpg biden.jpg --load-seconds 20
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from facefront.repository import weights_kind

from . import add_results_argument, write_results
from . import header as results_header

PHOTO_COUNT = 4


def add_arguments(p) -> None:
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (default out/demo)")
    p.add_argument("--photos", nargs="+", default=None,
                   help=f"sample photos from `make data` (default: the {PHOTO_COUNT} most turned single-face ones)")
    p.add_argument("--load-users", type=int, default=4)
    p.add_argument("--load-seconds", type=float, default=10)
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    add_results_argument(p, "bench/results/demo_cpu.json")


def choose(ready: list[str]) -> tuple[list[str], dict[str, str]]:
    """The families to demo: real weights or none needed, or declared cheap enough to show with synthetic weights
    (FAMILY.demo_synthetic in their export folder)."""
    from export.common.family import families
    declared = families()
    chosen, skipped = [], {}
    for fam in ready:
        kind = weights_kind(fam)
        if kind in ("real", "none") or (fam in declared and declared[fam].demo_synthetic):
            chosen.append(fam)
        else:
            skipped[fam] = (f"skipped: {kind} weights (no real checkpoint in weights/{fam}/); outputs would not be "
                            f"faces. Put the weights there, run `make export`, then `make demo`")
    return chosen, skipped


def fit(img: np.ndarray | None, size: int) -> np.ndarray:
    """The whole image scaled into a size x size tile (letterboxed); a dark tile for a failed output."""
    import cv2
    tile = np.full((size, size, 3), 40, np.uint8)
    if img is None:
        return tile
    h, w = img.shape[:2]
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    y, x = (size - nh) // 2, (size - nw) // 2
    tile[y:y + nh, x:x + nw] = small
    return tile


def turned_photos(n: int = PHOTO_COUNT) -> list[tuple[str, float]]:
    """(name, yaw) of the n single-face photos of `make data` whose heads are turned the most (|measured yaw|)."""
    import json as _json

    from facefront.data import data_dir, read_rgb
    from facefront.face import NoFaceError, analyze
    from facefront.face.pose import head_pose
    entries = _json.loads((data_dir() / "manifest.json").read_text())["photos"]
    yaws = []
    for e in entries:
        if e.get("faces", 1) != 1:
            continue
        try:
            face = analyze(read_rgb(data_dir() / e["file"]), max_faces=1)[0]
            yaws.append((e["file"], float(head_pose(face.landmarks)[0])))
        except (NoFaceError, ValueError, OSError):
            continue
    return sorted(yaws, key=lambda t: -abs(t[1]))[:n]


def label(tile: np.ndarray, text: str) -> np.ndarray:
    """A caption bar above a tile."""
    import cv2
    bar = np.full((22, tile.shape[1], 3), 20, np.uint8)
    cv2.putText(bar, text[:28], (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (235, 235, 235), 1, cv2.LINE_AA)
    return np.vstack([bar, tile])


def grid(rows: list[list[np.ndarray | None]], size: int = 160, header: list[str] | None = None) -> np.ndarray:
    body = np.vstack([np.hstack([fit(t, size) for t in row]) for row in rows])
    if not header:
        return body
    return np.vstack([np.hstack([label(np.zeros((0, size, 3), np.uint8), h) for h in header]), body])


def run(args) -> int:
    from client import FrontalizeClient
    from facefront import imaging
    from facefront.data import photo
    from facefront.repository import exported_families
    from facefront.serving.server import Server, ServerError

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = results_header("demo")
    ready, not_exported = exported_families()
    chosen, skipped = choose(ready)
    skipped.update(not_exported)
    for fam, why in skipped.items():
        print(f"[demo] {fam}: {why}", flush=True)
    if not chosen:
        print("[demo] nothing to serve: run `make export`", file=sys.stderr)
        return 1
    if args.photos:
        photos = [Path(photo(name)) for name in args.photos]
    else:
        picked = turned_photos()
        photos = [Path(photo(name)) for name, _ in picked]
        print("[demo] photos (most turned first): " + ", ".join(f"{n} (yaw {y:+.0f} deg)" for n, y in picked), flush=True)
    print(f"[demo] starting the CPU tritonserver with {', '.join(chosen)} ...", flush=True)
    summary: dict = {"models": {}, "skipped": skipped}
    try:
        srv = Server(models=chosen, http_port=args.http_port, grpc_port=args.grpc_port,
                     metrics_port=args.metrics_port).start()
    except ServerError as e:
        print(f"[demo] error: {e}", file=sys.stderr)
        return 1
    try:
        rows = [[imaging.decode(p.read_bytes())] for p in photos]
        with FrontalizeClient(srv.grpc_url) as c:
            for fam in chosen:
                kind = weights_kind(fam)
                d = out / fam
                d.mkdir(exist_ok=True)
                written, failed = [], {}
                for i, p in enumerate(photos):
                    try:
                        img = c.frontalize(p, model=fam)
                        dest = d / f"{p.stem}.png"
                        dest.write_bytes(imaging.encode_png(img))
                        written.append(str(dest))
                        rows[i].append(img)
                    except Exception as e:  # one bad photo must not stop the demo
                        failed[p.name] = str(e).splitlines()[0]
                        rows[i].append(None)
                    print(f"[demo] {fam} [{i + 1}/{len(photos)}] {p.name} -> "
                          f"{written[-1] if p.name not in failed else 'FAILED: ' + failed[p.name]}", flush=True)
                summary["models"][fam] = {"weights": kind, "outputs": written, "failed": failed}
        header = ["input"] + [f"{fam} ({summary['models'][fam]['weights']})" for fam in chosen]
        (out / "grid.png").write_bytes(imaging.encode_png(grid(rows, header=header)))
        for fam in chosen:
            load_dir = out / f"load-{fam}"
            cmd = [sys.executable, "-m", "bench", "load", "--model", fam, "--users", str(args.load_users),
                   "--duration", f"{args.load_seconds:g}", "--out", str(load_dir), "--url", srv.grpc_url,
                   "--image", str(photos[0])]
            print(f"[demo] load test: {' '.join(cmd[1:])}", flush=True)
            rc = subprocess.run(cmd, check=False).returncode
            s = load_dir / "summary.json"
            if s.is_file():
                summary["models"][fam]["load"] = json.loads(s.read_text())
            summary["models"][fam]["load_exit"] = rc
    finally:
        srv.stop()
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    load_keys = ("requests", "failures", "fps", "p50_ms", "p95_ms", "p99_ms")
    write_results(args.results, "demo", {
        "photos": [p.name for p in photos], "users": args.load_users, "seconds": args.load_seconds,
        "models": {fam: {"weights": m["weights"], "images": len(m["outputs"]), "failed": len(m["failed"]),
                         "load": {k: (m.get("load") or {}).get(k) for k in load_keys}}
                   for fam, m in summary["models"].items()},
        "skipped": sorted(summary["skipped"])}, started)
    print("\n[demo] results")
    print(f"  grid (input | {' | '.join(chosen)}): {out / 'grid.png'}")
    for fam, m in summary["models"].items():
        print(f"  {fam} ({m['weights']} weights): {len(m['outputs'])} images in {out / fam}/"
              + (f", {len(m['failed'])} failed" if m["failed"] else ""))
        ld = m.get("load")
        if ld:
            print(f"    load ({args.load_users} users, {args.load_seconds:g}s): {ld['fps']:.1f} images/s, "
                  f"p50 {ld['p50_ms']} ms, p95 {ld['p95_ms']} ms, p99 {ld['p99_ms']} ms, "
                  f"{ld['requests']} requests, {ld['failures']} failures -> {out / f'load-{fam}'}/summary.json")
    print(f"  summary: {out / 'summary.json'}")
    print("[demo] server stopped")
    print("[demo] look at the grid: each row is one turned photo, each column a model; a model with synthetic weights "
          "draws noise, mesh3d and models with real weights should show the same person facing the camera")
    problems = demo_problems(summary)
    for p in problems:
        print(f"[demo] FAILED: {p}", file=sys.stderr)
    return 1 if problems else 0


def demo_problems(summary: dict) -> list[str]:
    """What went wrong for the models that ran: an image not written, a load test that failed or did not finish."""
    out = []
    for fam, m in summary["models"].items():
        if m["failed"] or not m["outputs"]:
            out.append(f"{fam}: {len(m['outputs'])} images written, failed: {m['failed'] or 'no output'}")
        ld = m.get("load")
        if ld is None or m.get("load_exit", 0) != 0:
            out.append(f"{fam}: load test exited {m.get('load_exit')} " + ("(no summary.json)" if ld is None else ""))
        elif ld.get("failures") or not ld.get("requests"):
            out.append(f"{fam}: load test had {ld.get('failures')} failures in {ld.get('requests')} requests")
    return out
