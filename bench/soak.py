"""Soak: many users for a while on one model, counting failures and how much the server's memory grows.

Per model, a CPU server of its own (free loopback ports); a warm-up load (Locust, the same users) so every stage has
built its sessions and buffers; the server's resident memory (tritonserver and every python stub, psutil RSS); then
the timed load; the memory again. Memory growth after warm-up should stay small (a leak shows as steady growth).
Writes OUT (JSON: machine, date, command, per model: requests, failures, images/s, p50/p95, RSS before/after, growth).

examples:
  python -m bench soak --out bench/results/soak_cpu.json
  python -m bench soak --models mesh3d --users 8 --duration 30 --out out/soak.json
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from facefront.repository import REPO_ROOT


def add_arguments(p) -> None:
    p.add_argument("--models", default="scaleway,mesh3d", help="comma-separated families (default scaleway,mesh3d)")
    p.add_argument("--users", type=int, default=16, help="concurrent Locust users (default 16)")
    p.add_argument("--duration", type=float, default=60, metavar="S", help="seconds of timed load per model (default 60)")
    p.add_argument("--warmup", type=float, default=15, metavar="S", help="seconds of untimed load first (default 15)")
    p.add_argument("--out", type=Path, required=True, metavar="JSON", help="results file")


def server_rss_mb(pid: int) -> float:
    import psutil
    procs = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return round(total / 2**20, 1)


def _load(model: str, url: str, users: int, seconds: float, out: Path) -> dict:
    cmd = [sys.executable, "-m", "bench", "load", "--model", model, "--users", str(users), "--duration", f"{seconds:g}",
           "--url", url, "--out", str(out)]
    subprocess.run(cmd, cwd=REPO_ROOT, check=False, capture_output=True, text=True)
    s = out / "summary.json"
    return json.loads(s.read_text()) if s.is_file() else {"error": f"no summary from: {' '.join(cmd[1:])}"}


def soak_one(model: str, args, work: Path, progress=print) -> dict:
    from .resources import server
    with server([model], log_name=f"soak-{model}.log") as srv:
        progress(f"soak {model}: warm-up {args.warmup:g} s with {args.users} users")
        warm = _load(model, srv.grpc_url, args.users, args.warmup, work / f"{model}-warmup")
        before = server_rss_mb(srv.proc.pid)
        progress(f"soak {model}: {args.duration:g} s with {args.users} users (server RSS {before} MB)")
        load = _load(model, srv.grpc_url, args.users, args.duration, work / f"{model}-soak")
        after = server_rss_mb(srv.proc.pid)
        problems = srv.problems()
    row = {"users": args.users, "seconds": args.duration, "warmup_failures": warm.get("failures"),
           **{k: load.get(k) for k in ("requests", "failures", "fps", "p50_ms", "p95_ms", "p99_ms", "error")},
           "rss_after_warmup_mb": before, "rss_after_soak_mb": after,
           "rss_growth_pct": round(100 * (after - before) / before, 2), "server_problems_after": problems}
    return {k: v for k, v in row.items() if v is not None}


def run(args) -> int:
    import tempfile
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    from . import header
    res = {**header("soak"), "models": {}}
    with tempfile.TemporaryDirectory() as d:
        for m in models:
            res["models"][m] = soak_one(m, args, Path(d), lambda s: print(s, file=sys.stderr, flush=True))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    for m, r in res["models"].items():
        print(f"{m}: {r.get('requests')} requests, {r.get('failures')} failures, {r.get('fps')} images/s, "
              f"p95 {r.get('p95_ms')} ms; server RSS {r['rss_after_warmup_mb']} -> {r['rss_after_soak_mb']} MB "
              f"({r['rss_growth_pct']:+.1f} %)")
    bad = [m for m, r in res["models"].items() if r.get("failures") or not r.get("requests")]
    return 1 if bad else 0


def main(argv=None) -> int:
    from . import standalone
    return standalone("bench.soak", argv)


if __name__ == "__main__":
    sys.exit(main())
