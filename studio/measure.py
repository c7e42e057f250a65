"""python -m studio.measure: what a studio render costs, through the gateway and directly with the client.

    python -m studio.measure --triton 127.0.0.1:8001 [--models mesh3d,liveportrait] [--repeats 3]
    python -m studio.measure --serve                  # start a CPU server for the run (about a minute)

For each model, on one photo:
- warm-up: the first render after the server started (lazy initialisation inside the stages), not counted;
- first render of a photo the server has never seen vs repeated edits of it (other poses): LivePortrait's F and M
  answer edits from Triton's response cache, so an edit should cost less than a first render. Each "first" uses
  fresh bytes (the photo with a few pixels changed, so its crop and the cache key are new);
- the gateway's added time: the same render, alternately through the gateway (HTTP, whole request as the page
  sends it) and with FrontalizeClient directly (gRPC), medians; and inside the gateway, its total minus the
  client call (X-Studio-Ms - X-Triton-Ms: request parsing, PNG encoding).
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

EDITS = ((10.0, 0.0), (-10.0, 5.0), (20.0, -5.0))  # (yaw, pitch) of the repeated edits


def variant(data: bytes, k: int) -> bytes:
    """The photo with a few pixels of its corner changed (k picks which): new bytes and a new face crop."""
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).copy()
    rng = np.random.default_rng(int(time.time() * 1e3) % 2**32 + k)
    rgb[:4, :4] = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    face_area = slice(rgb.shape[0] // 4, 3 * rgb.shape[0] // 4), slice(rgb.shape[1] // 4, 3 * rgb.shape[1] // 4)
    rgb[face_area] = np.clip(rgb[face_area].astype(np.int16) + rng.integers(-1, 2, (1, 1, 3)), 0, 255)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class Gateway:
    """The studio's HTTP API as the page uses it."""

    def __init__(self, url: str):
        self.url = url

    def _post(self, path: str, body: bytes, ctype: str):
        req = urllib.request.Request(self.url + path, data=body, method="POST", headers={"Content-Type": ctype})
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.read(), r.headers  # case-insensitive lookups

    def upload(self, data: bytes) -> str:
        body, _ = self._post("/api/photos", data, "application/octet-stream")
        return json.loads(body)["id"]

    def render(self, photo: str, model: str, yaw=0.0, pitch=0.0) -> dict:
        t0 = time.perf_counter()
        body, headers = self._post("/api/render", json.dumps({"photo": photo, "model": model, "yaw": yaw,
                                                               "pitch": pitch}).encode(), "application/json")
        wall = (time.perf_counter() - t0) * 1e3
        assert body[:8] == b"\x89PNG\r\n\x1a\n", "the gateway did not answer a PNG"
        return {"wall_ms": wall, "studio_ms": float(headers["X-Studio-Ms"]), "triton_ms": float(headers["X-Triton-Ms"])}


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def model_stats(client) -> dict[str, dict]:
    """{model: {"executions", "cache_hits"}} from Triton's statistics (every model the server runs)."""
    stats = client.statistics()
    out = {}
    for m in stats.get("model_stats", []):
        hits = m.get("inference_stats", {}).get("cache_hit", {}).get("count", 0)
        out[m["name"]] = {"executions": int(m.get("execution_count", 0)), "cache_hits": int(hits)}
    return out


def cache_delta(before: dict, after: dict) -> dict[str, dict]:
    """Per model answered from Triton's response cache in between: its executions and cache hits meanwhile."""
    out = {}
    for name, a in after.items():
        b = before.get(name, {"executions": 0, "cache_hits": 0})
        hits = a["cache_hits"] - b["cache_hits"]
        if hits:
            out[name] = {"executions": a["executions"] - b["executions"], "cache_hits": hits}
    return out


def measure_model(client, gw: Gateway, model: str, photo: bytes, repeats: int) -> dict:
    out: dict = {"model": model}
    pose = client.model_info(model).pose
    out["warmup_ms"] = timed(lambda: client.frontalize(variant(photo, 0), model=model))
    # first render vs repeated edits, through the gateway (what the page sees) and directly
    fresh = variant(photo, 1)
    pid = gw.upload(fresh)
    out["gateway_first_ms"] = gw.render(pid, model)["wall_ms"]
    edits = EDITS if pose else ((0.0, 0.0),) * len(EDITS)
    before = model_stats(client)
    out["gateway_edits_ms"] = [gw.render(pid, model, y, p)["wall_ms"] for y, p in edits]
    out["edits_cache"] = cache_delta(before, model_stats(client))
    fresh = variant(photo, 2)
    out["direct_first_ms"] = timed(lambda: client.frontalize(fresh, model=model))
    out["direct_edits_ms"] = [timed(lambda y=y, p=p: client.frontalize(fresh, model=model, yaw=y, pitch=p))
                              for y, p in edits]
    # the gateway's added time: same photo, same pose, alternating
    direct, via, inside = [], [], []
    for _ in range(repeats):
        direct.append(timed(lambda: client.frontalize(fresh, model=model)))
        r = gw.render(pid, model)
        via.append(r["wall_ms"])
        inside.append(r["studio_ms"] - r["triton_ms"])
    out.update(direct_ms=direct, gateway_ms=via, gateway_inside_ms=inside,
               added_ms=statistics.median(via) - statistics.median(direct),
               added_inside_ms=statistics.median(inside))
    return out


def summary(rows: list[dict]) -> str:
    med = statistics.median
    lines = ["| model | warm-up (1st after start) ms | first render ms (gateway / direct) | repeated edit ms, median "
             "(gateway / direct) | render via gateway ms, median | direct client ms, median | gateway added ms "
             "(wall / inside) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['warmup_ms']:.0f} | {r['gateway_first_ms']:.0f} / {r['direct_first_ms']:.0f} "
                     f"| {med(r['gateway_edits_ms']):.0f} / {med(r['direct_edits_ms']):.0f} "
                     f"| {med(r['gateway_ms']):.0f} | {med(r['direct_ms']):.0f} "
                     f"| {r['added_ms']:+.1f} / {r['added_inside_ms']:.1f} |")
    for r in rows:
        cache = ", ".join(f"{k} executed {v['executions']}x, {v['cache_hits']} cache hits"
                          for k, v in r["edits_cache"].items())
        lines.append(f"\n{r['model']}, during the {len(r['gateway_edits_ms'])} repeated edits: {cache or 'no cache hits'}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m studio.measure", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--triton", default="127.0.0.1:8001", help="Triton gRPC host:port (default 127.0.0.1:8001)")
    p.add_argument("--serve", action="store_true", help="start a CPU Triton server for the run")
    p.add_argument("--models", default="mesh3d,liveportrait", help="comma-separated (default mesh3d,liveportrait)")
    p.add_argument("--photo", default="obama2.jpg", help="a photo of `make data` or a path (default obama2.jpg)")
    p.add_argument("--repeats", type=int, default=3, help="alternating gateway/direct pairs per model (default 3)")
    p.add_argument("--out", type=Path, help="also write the raw numbers as JSON here")
    args = p.parse_args(argv)
    from client import FrontalizeClient
    from facefront.data import photo as data_photo

    from .background import BackgroundStudio
    path = Path(args.photo) if Path(args.photo).is_file() else data_photo(args.photo)
    data = path.read_bytes()
    server = None
    triton = args.triton
    if args.serve:
        from facefront.serving.server import Server, free_ports
        http, grpc, metrics = free_ports(3)
        server = Server(models=[m for m in args.models.split(",") if m], http_port=http, grpc_port=grpc,
                        metrics_port=metrics).start()
        triton = server.grpc_url
    rows = []
    try:
        with FrontalizeClient(triton, timeout=600) as client, BackgroundStudio(triton) as studio:
            gw = Gateway(studio.url)
            for model in (m for m in args.models.split(",") if m):
                print(f"measuring {model} on {path.name}...", file=sys.stderr, flush=True)
                rows.append(measure_model(client, gw, model, data, args.repeats))
    finally:
        if server is not None:
            server.stop()
    print(summary(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"photo": path.name, "triton": triton, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
