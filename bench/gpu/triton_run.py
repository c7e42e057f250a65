"""Start tritonserver (nvidia-pytriton wheel) with one bench model per mode, drive it over HTTP, read its stats."""
from __future__ import annotations

import concurrent.futures as cf
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from facefront.serving.server import REPO_ROOT, Server

CONFIG = """name: "{name}"
backend: "python"
max_batch_size: 8
input [ {{ name: "CROP", data_type: TYPE_UINT8, dims: [ 256, 256, 3 ] }} ]
output [ {{ name: "FRONTAL", data_type: TYPE_UINT8, dims: [ 512, 512, 3 ] }} ]
instance_group [ {{ kind: KIND_CPU, count: 1 }} ]
dynamic_batching {{ max_queue_delay_microseconds: 2000 }}
parameters {{ key: "mode", value: {{ string_value: "{mode}" }} }}
parameters {{ key: "device", value: {{ string_value: "{device}" }} }}
"""


def make_repository(modes: list[str], device: str = "cuda") -> Path:
    # inside the checkout so the model file finds the repo root three levels up
    (REPO_ROOT / ".cache").mkdir(exist_ok=True)
    repo = Path(tempfile.mkdtemp(prefix="gpu-repo-", dir=REPO_ROOT / ".cache"))
    for mode in modes:
        d = repo / f"lp_{mode}"
        (d / "1").mkdir(parents=True)
        (d / "config.pbtxt").write_text(CONFIG.format(name=d.name, mode=mode, device=device))
        shutil.copy(Path(__file__).with_name("triton_model.py"), d / "1" / "model.py")
    return repo


def infer(url: str, model: str, crop: np.ndarray) -> float:
    raw = crop.tobytes()
    header = json.dumps({"inputs": [{"name": "CROP", "shape": list(crop.shape), "datatype": "UINT8",
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "outputs": [{"name": "FRONTAL", "parameters": {"binary_data": True}}]}).encode()
    req = urllib.request.Request(f"http://{url}/v2/models/{model}/infer", data=header + raw, method="POST",
                                 headers={"Content-Type": "application/octet-stream",
                                          "Inference-Header-Content-Length": str(len(header))})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as r:
        body = r.read()
        n = int(r.headers["Inference-Header-Content-Length"])
    ms = (time.perf_counter() - t) * 1000
    assert len(body) - n == 512 * 512 * 3 * crop.shape[0], "unexpected response size"
    return ms


def drive(url: str, model: str, crop: np.ndarray, requests: int, users: int) -> dict:
    infer(url, model, crop)
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(users) as ex:
        lat = list(ex.map(lambda _: infer(url, model, crop), range(requests)))
    wall = time.perf_counter() - t0
    return {"users": users, "requests": requests, "fps": round(requests / wall, 2),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p95_ms": round(float(np.percentile(lat, 95)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2)}


def stats(url: str, model: str) -> dict:
    with urllib.request.urlopen(f"http://{url}/v2/models/{model}/stats", timeout=10) as r:
        s = json.loads(r.read())["model_stats"][0]
    inf = s["inference_stats"]
    n = max(int(s["execution_count"]), 1)
    return {"inference_count": int(s["inference_count"]), "execution_count": int(s["execution_count"]),
            "compute_infer_ms_per_execution": round(int(inf["compute_infer"]["ns"]) / n / 1e6, 3),
            "queue_ms_per_request": round(int(inf["queue"]["ns"]) / max(int(s["inference_count"]), 1) / 1e6, 3)}


def measure(args, budget_end: float) -> dict:
    modes = args.triton_modes.split(",")
    repo = make_repository(modes, args.device)
    srv = Server(flavour="gpu", http_port=18000, grpc_port=18001, metrics_port=18002,
                 log_path=REPO_ROOT / ".cache" / "gpu-tritonserver.log", startup_timeout=600)
    cmd = srv.command(repo)
    print(f"[gpu] starting tritonserver with {', '.join(modes)} ...", flush=True)
    t = time.monotonic()
    srv._log = open(srv.log_path, "w")
    srv.proc = subprocess.Popen(cmd, stdout=srv._log, stderr=subprocess.STDOUT, env=srv.env(), cwd=REPO_ROOT,
                                start_new_session=True)
    out: dict = {"models": {}}
    try:
        srv._wait_ready()
        out["startup_s"] = round(time.monotonic() - t, 1)
        crop = np.random.default_rng(0).integers(0, 256, (1, 256, 256, 3), dtype=np.uint8)
        for mode in modes:
            if time.monotonic() > budget_end:
                out["models"][mode] = "skipped: time budget"
                continue
            m = f"lp_{mode}"
            runs = [drive(srv.http_url, m, crop, max(2, args.triton_requests // 4), 1),
                    drive(srv.http_url, m, crop, args.triton_requests, 8)]
            out["models"][mode] = {"runs": runs, "stats": stats(srv.http_url, m)}
            print(f"[gpu]   triton {mode}: {runs}", flush=True)
    finally:
        srv.stop()
        out["log_tail"] = srv.log_tail(15)
    return out
