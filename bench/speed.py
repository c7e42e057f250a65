"""Speed comparison on the same inputs: eager PyTorch and onnxruntime in-process, and served through Triton at
1 and 8 concurrent clients.

What is timed differs by design, and the table says so: the in-process rows time the served network alone (the
graph exported to ONNX, uint8 crop in, uint8 face out) on batch-1 crops prepared before timing (a centre crop
stands in for the server's face crop); the served rows time a whole request as a client sees it (send the encoded
image; server-side decode, crop, network; raw RGB answer). Each mode runs --seconds after --warmup calls.
Writes DIR/speed.json and DIR/speed.md.

examples:
  python -m bench speed --model scaleway --out out/speed
  python -m bench speed --model scaleway --out out/speed --serve --seconds 10
  python -m bench speed --model scaleway --out out/speed --modes eager,onnxruntime
  python -m bench speed --model scaleway --serve --seconds 8 --out out/speed --results bench/results/speed_scaleway_cpu.json
exit status: 0 every mode ran, 1 a mode was skipped (reason in the table), 2 could not run.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from client import FrontalizeClient, ServerError, ServerUnavailable
from facefront.sessions import onnx_session

from . import add_results_argument, add_server_arguments, header, server_url, write_results

REPO_ROOT = Path(__file__).resolve().parents[1]
MODES = ("eager", "onnxruntime", "pipeline", "triton-1", "triton-8")
DEFAULT_PHOTOS = ("obama.jpg", "obama2.jpg", "biden.jpg", "astronaut.png")


@dataclass
class Result:
    mode: str
    timed: str
    concurrency: int = 1
    requests: int = 0
    wall_s: float = 0.0
    images_per_s: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    mean_ms: float | None = None
    vs_eager: float | None = None
    skipped: str | None = None
    latencies_ms: list[float] = field(default_factory=list, repr=False)

    def finish(self, latencies_ms: list[float], wall_s: float) -> "Result":
        lat = np.asarray(latencies_ms)
        self.requests, self.wall_s = len(lat), round(wall_s, 3)
        self.images_per_s = round(len(lat) / wall_s, 2)
        self.p50_ms, self.p95_ms = (round(float(np.percentile(lat, q)), 2) for q in (50, 95))
        self.mean_ms = round(float(lat.mean()), 2)
        return self


def add_arguments(p) -> None:
    p.add_argument("--model", default="scaleway",
                   help="model family (in-process runs: the families whose export folder declares a reference)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for speed.json and speed.md")
    p.add_argument("--images", type=Path, nargs="+", metavar="IMAGE",
                   help=f"input images (default the test photos {', '.join(DEFAULT_PHOTOS)})")
    p.add_argument("--seconds", type=float, default=5.0, help="timed seconds per mode (default 5)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls per mode first (default 3)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    p.add_argument("--onnx", type=Path, help="ONNX file for the onnxruntime run (default: the exported one)")
    add_server_arguments(p)
    add_results_argument(p, "bench/results/speed_scaleway_cpu.json")


# -- inputs -----------------------------------------------------------------------------------------------------
def load_inputs(paths: list[Path]) -> list[tuple[Path, bytes]]:
    return [(p, Path(p).read_bytes()) for p in paths]


def to_tensor(data: bytes, size: int) -> np.ndarray:
    """1xSxSx3 uint8 RGB: centre square crop and resize (the in-process stand-in for the served face crop)."""
    import io

    from PIL import Image
    im = Image.open(io.BytesIO(data)).convert("RGB")
    s = min(im.size)
    left, top = (im.width - s) // 2, (im.height - s) // 2
    im = im.crop((left, top, left + s, top + s)).resize((size, size), Image.BILINEAR)
    return np.array(im, dtype=np.uint8)[None]  # a writable copy: torch.from_numpy warns on read-only arrays


def timed_loop(fn, inputs: list, seconds: float, warmup: int) -> tuple[list[float], float]:
    """Call fn(x) over inputs round-robin: `warmup` untimed calls, then for `seconds` (at least one per input)."""
    for i in range(warmup):
        fn(inputs[i % len(inputs)])
    lat, t0, i = [], time.perf_counter(), 0
    while i < len(inputs) or time.perf_counter() - t0 < seconds:
        t = time.perf_counter()
        fn(inputs[i % len(inputs)])
        lat.append((time.perf_counter() - t) * 1e3)
        i += 1
    return lat, time.perf_counter() - t0


# -- modes ------------------------------------------------------------------------------------------------------
def run_eager(spec, tensors: list[np.ndarray], args) -> Result:
    import torch
    net = spec.build()
    xs = [torch.from_numpy(t) for t in tensors]
    with torch.inference_mode():
        lat, wall = timed_loop(net, xs, args.seconds, args.warmup)
    return Result("eager", f"network only, PyTorch {torch.__version__}, {torch.get_num_threads()} threads").finish(lat, wall)


def run_onnxruntime(spec, tensors: list[np.ndarray], args) -> Result:
    import onnxruntime as ort
    path = args.onnx or spec.onnx
    timed = f"network only, onnxruntime {ort.__version__} CPU"
    if not Path(path).is_file():
        return Result("onnxruntime", timed, skipped=f"no {path}: run `python -m export onnx {args.model}`")
    sess = onnx_session(path)
    name = sess.get_inputs()[0].name
    lat, wall = timed_loop(lambda x: sess.run(None, {name: x}), tensors, args.seconds, args.warmup)
    return Result("onnxruntime", timed).finish(lat, wall)


def run_pipeline(spec, encoded: list[bytes], args) -> Result:
    """The served request's work in-process (decode, face crop by the preprocess stage's own code, onnxruntime):
    triton-1 minus this is what the ensemble adds (transport, scheduling, python-stage hops)."""
    from facefront.repository import preprocess_model
    from facefront.serving.stage import from_repository
    path = args.onnx or spec.onnx
    timed = "whole request in-process: decode + face crop + onnxruntime, no server"
    if not Path(path).is_file():
        return Result("pipeline", timed, skipped=f"no {path}: run `python -m export onnx {args.model}`")
    stage = from_repository(preprocess_model(args.model))   # the served crop stage, its config's settings
    sess = _leaf_session(args.model, path)   # as the served CPU leaf runs it (configs/cpu.pbtxt threads, spinning)
    name = sess.get_inputs()[0].name
    lat, wall = timed_loop(lambda b: sess.run(None, {name: stage.crop_one(b)[None]}), encoded, args.seconds, args.warmup)
    return Result("pipeline", timed).finish(lat, wall)


def _leaf_session(model: str, path):
    """An onnxruntime session with the settings of the family's served CPU generator leaf (`<model>_generator`'s
    configs/cpu.pbtxt: intra_op_threads, allow_spinning); 2 threads when the family has no such leaf."""
    from facefront import repository
    from facefront.sessions import session_from_parameters
    leaf = f"{model}_generator"
    if (repository.MODEL_REPOSITORY / leaf / "config.pbtxt").is_file():
        return session_from_parameters(path, repository.stage_parameters(leaf))
    return onnx_session(path, threads=2)


def run_triton(url: str, encoded: list[bytes], users: int, args) -> Result:
    """`users` threads, each with its own client, sending the images round-robin for args.seconds."""
    mode, timed = f"triton-{users}", f"whole request over {args.protocol}, {users} concurrent client(s)"
    clients = [FrontalizeClient(url, protocol=args.protocol) for _ in range(users)]
    try:
        try:
            clients[0].frontalize(encoded[0], model=args.model)
        except (ServerUnavailable, ServerError, ValueError) as e:
            return Result(mode, timed, concurrency=users, skipped=str(e))
        per_thread: list[list[float]] = [[] for _ in range(users)]
        errors: list[str] = []
        start = threading.Barrier(users + 1)

        def worker(k: int):
            c = clients[k]
            start.wait()
            try:
                per_thread[k] = timed_loop(lambda b: c.frontalize(b, model=args.model),
                                           encoded[k:] + encoded[:k], args.seconds, args.warmup)[0]
            except Exception as e:  # report, don't hang the others
                errors.append(f"{type(e).__name__}: {e}")

        threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(users)]
        for t in threads:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        if errors:
            return Result(mode, timed, concurrency=users, skipped=f"request failed: {errors[0]}")
        lat = [x for xs in per_thread for x in xs]
        # warm-up calls ran inside the wall time too; count them out of the rate estimate
        wall_timed = wall * len(lat) / (len(lat) + users * args.warmup)
        return Result(mode, timed, concurrency=users).finish(lat, wall_timed)
    finally:
        for c in clients:
            c.close()


# -- report -----------------------------------------------------------------------------------------------------
def markdown(results: list[Result], settings: dict) -> str:
    lines = [f"# Speed: {settings['model']}", "",
             f"{settings['inputs']} input images, {settings['seconds']:g} s per mode after {settings['warmup']} warm-up "
             f"calls, batch 1. `vs eager` = images/s relative to eager PyTorch.", "",
             "| mode | timed | concurrency | requests | images/s | p50 ms | p95 ms | vs eager |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if r.skipped:
            lines.append(f"| {r.mode} | skipped: {r.skipped} | {r.concurrency} | | | | | |")
            continue
        ratio = "" if r.vs_eager is None else f"{r.vs_eager:.2f}x"
        lines.append(f"| {r.mode} | {r.timed} | {r.concurrency} | {r.requests} | {r.images_per_s:.1f} | "
                     f"{r.p50_ms:.1f} | {r.p95_ms:.1f} | {ratio} |")
    if settings.get("ensemble_overhead_p50_ms") is not None:
        lines += ["", f"What serving adds at 1 client (p50 of triton-1 minus p50 of pipeline): "
                      f"{settings['ensemble_overhead_p50_ms']:.1f} ms per request."]
    lines += ["", f"Settings: `{json.dumps(settings)}`", ""]
    return "\n".join(lines)


def run(args) -> int:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        print(f"error: unknown mode(s) {', '.join(bad) or '(none)'}; choose from {', '.join(MODES)}", file=sys.stderr)
        return 2
    from export.common.family import families
    started = header("speed")
    fam = families().get(args.model)
    spec = fam.reference if fam else None
    try:
        if args.images:
            paths = list(args.images)
        else:
            from facefront.data import photo
            paths = [Path(photo(n)) for n in DEFAULT_PHOTOS]
        inputs = load_inputs(paths)
    except Exception as e:
        print(f"error: cannot read the input images ({e}); pass --images", file=sys.stderr)
        return 2
    encoded = [data for _, data in inputs]

    results: list[Result] = []
    in_process = [m for m in modes if m in ("eager", "onnxruntime")]
    if in_process and spec is None:
        results += [Result(m, "network only", skipped=f"no in-process reference for {args.model!r}") for m in in_process]
    elif in_process:
        tensors = [to_tensor(d, spec.input_size) for d in encoded]
        for m in in_process:
            print(f"{m} ...", file=sys.stderr)
            results.append(run_eager(spec, tensors, args) if m == "eager" else run_onnxruntime(spec, tensors, args))
    if "pipeline" in modes:
        print("pipeline ...", file=sys.stderr)
        results.append(run_pipeline(spec, encoded, args) if spec else
                       Result("pipeline", "whole request in-process", skipped=f"no in-process reference for {args.model!r}"))
    served = [m for m in modes if m.startswith("triton-")]
    url = None
    if served:
        with server_url(args) as url:
            for m in served:
                print(f"{m} at {url} ...", file=sys.stderr)
                results.append(run_triton(url, encoded, int(m.split("-")[1]), args))

    pipe = next((r for r in results if r.mode == "pipeline" and not r.skipped), None)
    one = next((r for r in results if r.mode == "triton-1" and not r.skipped), None)
    overhead = round(one.p50_ms - pipe.p50_ms, 2) if pipe and one else None
    eager = next((r for r in results if r.mode == "eager" and not r.skipped), None)
    for r in results:
        if eager and not r.skipped:
            r.vs_eager = round(r.images_per_s / eager.images_per_s, 3)
    settings = {"model": args.model, "inputs": len(inputs), "images": [Path(p).name for p, _ in inputs],
                "seconds": args.seconds, "warmup": args.warmup, "protocol": args.protocol, "url": url,
                "modes": modes, "ensemble_overhead_p50_ms": overhead}
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [{k: v for k, v in asdict(r).items() if k != "latencies_ms"} for r in results]
    (args.out / "speed.json").write_text(json.dumps({"settings": settings, "results": rows}, indent=2) + "\n")
    write_results(args.results, "speed", {"settings": settings, "results": rows}, started)
    md = markdown(results, settings)
    (args.out / "speed.md").write_text(md)
    print(md)
    return 1 if any(r.skipped for r in results) else 0
