"""Write summary.json for a Locust run from its CSV, with the same content as `python -m bench load`
(bench.load.summarize: rps, fps, p50/p95/p99 ms, requests, failures, settings). Used by the distributed load test
on Kubernetes (deploy/k8s/loadtest), whose master runs Locust directly.

    python3 deploy/locust_summary.py DIR --model mesh3d --url facefront-triton:8001 --users 64 --workers 4 \\
        --duration 120 --image /opt/facefront/data/obama.jpg
exit status: 0 summary written and no request failed, 1 some failed (or none was made), 2 no stats to read.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the facefront checkout, when run by path

from bench.load import FINAL_CSV, summarize  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="locust_summary.py", description=__doc__.splitlines()[0])
    p.add_argument("dir", type=Path, help="the folder with Locust's CSV files (--csv DIR/locust)")
    p.add_argument("--model", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--protocol", default="grpc")
    p.add_argument("--users", type=int, required=True)
    p.add_argument("--spawn-rate", type=float)
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--image", type=Path, required=True)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--locust-exit-code", type=int, default=0)
    a = p.parse_args(argv)
    stats = a.dir / FINAL_CSV if (a.dir / FINAL_CSV).is_file() else a.dir / "locust_stats.csv"
    if not stats.is_file():
        print(f"error: no {FINAL_CSV} or locust_stats.csv in {a.dir}: Locust wrote no statistics", file=sys.stderr)
        return 2
    settings = {"model": a.model, "protocol": a.protocol, "url": a.url, "users": a.users,
                "spawn_rate": a.spawn_rate or a.users, "duration_s": a.duration, "workers": a.workers,
                "image": str(a.image), "image_bytes": a.image.stat().st_size if a.image.is_file() else None,
                "images_per_request": 1, "timeout_s": a.timeout, "locust_exit_code": a.locust_exit_code}
    summary = summarize(stats, settings)
    (a.dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0 if summary["requests"] and not summary["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
