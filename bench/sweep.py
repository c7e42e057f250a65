"""Load sweeps on top of `python -m bench load`: concurrency 1, 2, 4, ... users, with and without dynamic batching,
and Locust's distributed mode (one master, two workers, all on 127.0.0.1).

Each point is one `python -m bench load ... --out DIR/<variant>/<model>/u<N>` run (its summary.json: rps, fps,
p50/p95/p99 ms, requests, failures); this module only starts the servers and collects the summaries. "Without
dynamic batching" serves a copy of the model repository whose configs have their `dynamic_batching` block
removed (the version folders are symlinks to the real ones). perf_analyzer runs where a real binary is on PATH.

    python -m bench.sweep --models scaleway --users 1,2,4,8,16 --duration 10 --out out/sweep
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NOBATCH_REPO = REPO_ROOT / ".cache" / "bench" / "repo-no-batching"
_DYNAMIC = re.compile(r"dynamic_batching\s*\{[^{}]*\}\s*")


def strip_dynamic_batching(text: str) -> str:
    return _DYNAMIC.sub("", text)


def repository_without_batching(src: Path, dest: Path = NOBATCH_REPO) -> Path:
    """A copy of the model repository (configs rewritten, version folders symlinked) with no dynamic batching."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    for model in sorted(p for p in src.iterdir() if p.is_dir()):
        d = dest / model.name
        d.mkdir()
        for item in model.iterdir():
            if item.name == "configs" and item.is_dir():
                (d / "configs").mkdir()
                for cfg in item.glob("*.pbtxt"):
                    (d / "configs" / cfg.name).write_text(strip_dynamic_batching(cfg.read_text()))
            elif item.name == "config.pbtxt":
                (d / item.name).write_text(strip_dynamic_batching(item.read_text()))
            else:
                (d / item.name).symlink_to(item.resolve(), target_is_directory=item.is_dir())
    return dest


def load_point(url: str, model: str, users: int, duration: float, out: Path, protocol: str = "grpc",
               image: Path | None = None) -> dict:
    """One `python -m bench load` run; its summary.json, or {'error': ...}."""
    cmd = [sys.executable, "-m", "bench", "load", "--model", model, "--users", str(users), "--duration", f"{duration:g}",
           "--url", url, "--protocol", protocol, "--out", str(out)]
    if image:
        cmd += ["--image", str(image)]
    p = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=duration + 120)
    summary = out / "summary.json"
    if not summary.is_file():
        return {"users": users, "error": (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1][:300],
                "command": _shell(cmd)}
    s = json.loads(summary.read_text())
    return {"users": users, **{k: s.get(k) for k in ("rps", "fps", "p50_ms", "p95_ms", "p99_ms", "requests", "failures")},
            "command": _shell(cmd)}


def _shell(cmd: list[str]) -> str:
    cmd = ["python" if c == sys.executable else c for c in cmd]
    return " ".join(cmd)


def sweep(url: str, models: list[str], users: list[int], duration: float, out: Path, variant: str,
          progress=print, protocol: str = "grpc") -> dict:
    res = {}
    for m in models:
        pts = []
        for u in users:
            progress(f"sweep [{variant}] {m}: {u} users for {duration:g} s")
            pts.append(load_point(url, m, u, duration, out / variant / m / f"u{u}", protocol))
        res[m] = pts
    return res


def distributed(url: str, model: str, users: int, duration: float, out: Path, image: Path, workers: int = 2) -> dict:
    """Locust master + `workers` workers on loopback; the master's aggregated stats through bench.load.summarize."""
    from . import load
    out.mkdir(parents=True, exist_ok=True)
    locustfile = str(load.LOCUSTFILE)
    env = dict(os.environ, FF_MODEL=model, FF_IMAGE=str(Path(image).resolve()), FF_URL=url, FF_TIMEOUT="60")
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    limit = str(int(duration + load.GRACE_S))
    base = ["timeout", "-k", "10", limit, sys.executable, "-m", "locust", "-f", locustfile]
    master = base + ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "--headless",
                     "--expect-workers", str(workers), "-u", str(users), "-r", str(users), "-t", f"{duration:g}s",
                     "--stop-timeout", "5", "--csv", str(out / "locust"), "--only-summary", "--loglevel", "WARNING",
                     load.USER_CLASSES["grpc"]]
    worker = base + ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port), "--loglevel", "WARNING",
                     load.USER_CLASSES["grpc"]]
    t0 = time.time()
    m = subprocess.Popen(master, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ws = [subprocess.Popen(worker, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True) for _ in range(workers)]
    try:
        _, err = m.communicate(timeout=duration + load.GRACE_S + 15)
    finally:
        for w in ws:
            try:
                w.wait(timeout=20)
            except subprocess.TimeoutExpired:  # a worker the master did not stop: end its whole group
                os.killpg(w.pid, signal.SIGTERM)
                w.wait(timeout=15)
    cmd = " ".join(["python" if c == sys.executable else c for c in master])
    stats = out / "locust_stats.csv"
    if not stats.is_file():
        return {"error": f"master exited {m.returncode}: {(err or '').strip()[-300:]}", "command": cmd}
    s = load.summarize(stats, {"model": model, "users": users, "workers": workers, "duration_s": duration,
                                "wall_s": round(time.time() - t0, 1), "images_per_request": 1})
    s["command"] = f"{cmd}  (+ {workers}x locust --worker --master-host 127.0.0.1)"
    return s


def perf_analyzer(url: str, model: str) -> dict:
    exe = shutil.which("perf_analyzer")
    if exe is None:
        return {"ran": False, "why": "no perf_analyzer on PATH (the real binary ships in the tritonclient 2.51.0 wheel "
                                     "and needs libcudart.so.12; tritonclient[all] 2.73 installs a placeholder)"}
    try:
        p = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"ran": False, "why": f"perf_analyzer does not start: {e}"}
    if p.returncode != 0:
        return {"ran": False, "why": f"perf_analyzer does not start: {(p.stderr or p.stdout).strip()[-200:]}"}
    return {"ran": False, "why": "perf_analyzer present; its run needs a BYTES/raw input file for IMAGE, not wired yet",
            "version": p.stdout.strip()[:100]}


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m bench.sweep", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="scaleway")
    ap.add_argument("--users", default="1,2,4,8,16")
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--no-distributed", action="store_true")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    res = run_all([m.strip() for m in a.models.split(",")], [int(u) for u in a.users.split(",")], a.duration, a.out,
                  not a.no_distributed, lambda m: print(m, file=sys.stderr))
    print(json.dumps(res, indent=1))
    return 0


def run_all(models: list[str], users: list[int], duration: float, out: Path, with_distributed: bool = True,
            progress=print) -> dict:
    """Both batching variants (a server each) and the distributed run; writes out/sweep.json."""
    from facefront.data import photo
    from facefront.repository import MODEL_REPOSITORY

    from . import load
    from .resources import server
    res: dict = {"users": users, "duration_s": duration, "models": models}
    with server(models, log_name="bench-sweep.log") as srv:
        res["dynamic_batching"] = sweep(srv.grpc_url, models, users, duration, out, "batching", progress)
        if with_distributed:
            progress(f"distributed: 1 master + 2 workers, {max(users)} users on {models[0]}")
            res["distributed"] = distributed(srv.grpc_url, models[0], max(users), duration, out / "distributed",
                                             Path(photo(load.DEFAULT_PHOTO)))
        res["perf_analyzer"] = perf_analyzer(srv.grpc_url, models[0])
    repo = repository_without_batching(MODEL_REPOSITORY)
    with server(models, repository=repo, log_name="bench-sweep-nobatch.log") as srv:
        res["no_batching"] = sweep(srv.grpc_url, models, users, duration, out, "no-batching", progress)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    sys.exit(main())
