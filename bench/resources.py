"""Resources: server and per-model memory, model file sizes, cold start, per-stage time, weights provenance.

Memory: RSS (psutil) of the tritonserver process and of each python-backend stub (one process per model
instance; the stub's command line names its model folder). GPU memory through NVML when pynvml and a GPU are
there. Per-stage time: Triton's statistics extension (queue, compute input/infer/output per model, averaged
over the requests it served). Cold start: seconds from launching tritonserver to ready, one family at a time.

    python -m bench.resources --out out/resources
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_REPOSITORY = REPO_ROOT / "model_repository"


def server(models: list[str], repository: Path | None = None, log_name: str = "bench-server.log"):
    """A facefront Server on free loopback ports (never 8000-8002, which a developer's `make serve` may hold)."""
    from facefront.serving.server import Server, free_ports
    http, grpc, metrics = free_ports(3)
    kw = {"repository": repository} if repository else {}
    return Server(models=models, http_port=http, grpc_port=grpc, metrics_port=metrics,
                  log_path=REPO_ROOT / ".cache" / "triton" / log_name, **kw)


def members(family: str, repo: Path = MODEL_REPOSITORY) -> list[str]:
    """The family's ensemble members (or the family's single python model when it has none)."""
    from facefront import repository
    ens = f"{family}{repository.FAMILY_SUFFIX}"
    if not (repo / ens / "config.pbtxt").is_file():
        return []
    return repository.members(ens, repo) or [ens]


def weights_status(family: str, repo: Path = MODEL_REPOSITORY) -> dict:
    """What the served artefacts were exported from: synthetic weights, real ones, or none needed."""
    nets = {}
    for m in members(family, repo):
        man = repo / m / "1" / "manifest.json"
        if man.is_file():
            for name, a in json.loads(man.read_text()).get("artifacts", {}).items():
                nets[f"{m}/{name}"] = {"synthetic": bool(a.get("synthetic_weights")), "weights": a.get("weights")}
    if not nets:
        kind = "none (weight-free)" if (repo / f"{family}_frontalize").is_dir() else "not exported"
        return {"kind": kind, "networks": {}}
    synth = any(v["synthetic"] for v in nets.values())
    return {"kind": "synthetic (deterministic, not trained)" if synth else "real", "networks": nets}


def file_sizes(family: str, repo: Path = MODEL_REPOSITORY) -> dict:
    out = {}
    for m in members(family, repo):
        for f in sorted((repo / m).glob("[0-9]*/*")):
            if f.is_file() and f.suffix in (".onnx", ".plan", ".data", ".py"):
                out[str(f.relative_to(repo))] = f.stat().st_size
    return {"files": out, "total_mb": round(sum(out.values()) / 2**20, 2)}


def memory(srv) -> dict:
    import psutil
    p = psutil.Process(srv.proc.pid)
    rss = {"tritonserver_mb": round(p.memory_info().rss / 2**20, 1), "stubs": {}}
    for c in p.children(recursive=True):
        try:
            cmd = c.cmdline()
            mem = c.memory_info().rss
        except psutil.Error:
            continue
        model = next((Path(a).parent.parent.name for a in cmd if a.endswith("model.py")), None)
        if model is None:
            model = next((Path(a).parent.name for a in cmd if "/1" in a), c.name())
        rss["stubs"][model] = round(rss["stubs"].get(model, 0) + mem / 2**20, 1)
    rss["total_mb"] = round(rss["tritonserver_mb"] + sum(rss["stubs"].values()), 1)
    return rss


def gpu_memory() -> dict:
    try:
        import pynvml
        pynvml.nvmlInit()
    except Exception as e:
        return {"available": False, "why": f"NVML not available ({type(e).__name__}): CPU machine or pynvml not installed"}
    h = pynvml.nvmlDeviceGetHandleByIndex(0)
    info = pynvml.nvmlDeviceGetMemoryInfo(h)
    return {"available": True, "used_mb": round(info.used / 2**20), "total_mb": round(info.total / 2**20),
            "name": str(pynvml.nvmlDeviceGetName(h))}


def stage_times(grpc_url: str) -> dict:
    """Per model: requests served, and mean queue / compute-input / compute-infer / compute-output ms."""
    import tritonclient.grpc as tc
    c = tc.InferenceServerClient(grpc_url)
    try:
        stats = c.get_inference_statistics(as_json=True).get("model_stats", [])
    finally:
        c.close()
    out = {}
    for s in stats:
        inf = s.get("inference_stats", {})
        n = int(inf.get("success", {}).get("count", 0) or 0)
        if not n:
            continue

        def ms(key, inf=inf, n=n):
            return round(int(inf.get(key, {}).get("ns", 0) or 0) / n / 1e6, 2)

        out[s["name"]] = {"requests": n, "executions": int(s.get("execution_count", 0) or 0), "queue_ms": ms("queue"),
                          "compute_input_ms": ms("compute_input"), "compute_infer_ms": ms("compute_infer"),
                          "compute_output_ms": ms("compute_output")}
    return out


def cold_start(family: str) -> dict:
    srv = server([family], log_name=f"bench-cold-{family}.log")
    t0 = time.perf_counter()
    try:
        srv.start()
    except Exception as e:
        return {"error": str(e).splitlines()[0][:300]}
    ready = time.perf_counter() - t0
    mem = memory(srv)
    srv.stop()
    return {"ready_s": round(ready, 2), "memory": mem}


def run_resources(families: list[str], progress=print) -> dict:
    res = {"gpu": gpu_memory(), "families": {}}
    for f in families:
        progress(f"resources: cold start of {f}")
        res["families"][f] = {"cold_start": cold_start(f), "sizes": file_sizes(f), "weights": weights_status(f)}
    return res


def main(argv=None) -> int:
    import argparse

    from facefront.repository import exported_families
    ap = argparse.ArgumentParser(prog="python -m bench.resources", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="comma-separated families (default: every exported one)")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    fams = [m.strip() for m in a.models.split(",")] if a.models else exported_families()[0]
    res = run_resources(fams, lambda m: print(m, file=sys.stderr))
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "resources.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
