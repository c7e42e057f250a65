"""Load test: Locust users (gRPC or HTTP) send one fixed image to a served model for a fixed time.

Locust runs headless in a subprocess under `timeout -k`. DIR gets Locust's CSV files (locust_stats.csv,
locust_stats_history.csv, locust_failures.csv, ...), its report (locust.html), final_stats.csv (the same columns
as locust_stats.csv, written once at the end: Locust's own file is refreshed only every second), and
summary.json: rps, fps (images/s), p50_ms, p95_ms, p99_ms, requests, failures and the settings used.
Locust rounds response-time percentiles (2 significant digits above 100 ms).

examples:
  python -m bench load --model scaleway --users 8 --duration 30 --out out/load
  python -m bench load --model scaleway --users 2 --duration 10 --protocol http --image face.jpg --out out/load-http
exit status: 0 run done without failures, 1 some requests failed (or none was made), 2 could not run.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from client import FrontalizeClient, ServerError, ServerUnavailable

from . import add_server_arguments, server_url

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
USER_CLASSES = {"grpc": "GrpcUser", "http": "HttpTritonUser"}  # classes in locustfile.py
DEFAULT_PHOTO = "obama.jpg"
FINAL_CSV = "final_stats.csv"
KILL_AFTER_S = 10     # timeout -k: SIGKILL this long after SIGTERM
GRACE_S = 60          # start-up and shutdown allowance on top of --duration


def add_arguments(p) -> None:
    p.add_argument("--model", default="scaleway", help="model family (default scaleway)")
    p.add_argument("--users", type=int, default=4, help="concurrent users (default 4)")
    p.add_argument("--spawn-rate", type=float, help="users started per second (default: all at once)")
    p.add_argument("--duration", type=float, default=30, metavar="S", help="seconds of load (default 30)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the CSV, HTML and summary.json")
    p.add_argument("--image", type=Path, help=f"image file to send (default the {DEFAULT_PHOTO} test photo)")
    p.add_argument("--timeout", type=float, default=60, metavar="S", help="seconds per request (default 60)")
    add_server_arguments(p)


def default_image() -> Path:
    from facefront.data import photo
    return Path(photo(DEFAULT_PHOTO))


def locust_command(args, out: Path) -> list[str]:
    rate = args.spawn_rate or args.users
    limit = int(args.duration + GRACE_S)
    return ["timeout", "-k", str(KILL_AFTER_S), str(limit),
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "-u", str(args.users), "-r", f"{rate:g}", "-t", f"{args.duration:g}s", "--stop-timeout", "5",
            "--csv", str(out / "locust"), "--html", str(out / "locust.html"),
            "--only-summary", "--loglevel", "WARNING", USER_CLASSES[args.protocol]]


def summarize(stats_csv: Path, settings: dict) -> dict:
    """summary.json's content from Locust's <prefix>_stats.csv (its 'Aggregated' row)."""
    with open(stats_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    agg = next((r for r in rows if r.get("Name") == "Aggregated"), None)
    if agg is None:
        raise ValueError(f"{stats_csv}: no 'Aggregated' row")

    def num(key: str) -> float | None:
        v = agg.get(key, "")
        return None if v in ("", "N/A") else float(v)

    rps = num("Requests/s") or 0.0
    return {
        "rps": round(rps, 3),
        "fps": round(rps * settings.get("images_per_request", 1), 3),
        "p50_ms": num("50%"), "p95_ms": num("95%"), "p99_ms": num("99%"),
        "mean_ms": num("Average Response Time"),
        "requests": int(num("Request Count") or 0),
        "failures": int(num("Failure Count") or 0),
        "settings": settings,
    }


def run(args) -> int:
    if args.users < 1 or args.duration <= 0:
        print("error: --users must be >= 1 and --duration > 0", file=sys.stderr)
        return 2
    try:
        image = args.image or default_image()
    except Exception as e:
        print(f"error: no default test photo ({e}); pass --image", file=sys.stderr)
        return 2
    if not Path(image).is_file():
        print(f"error: --image {image}: no such file", file=sys.stderr)
        return 2
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / FINAL_CSV).unlink(missing_ok=True)  # never summarize a previous run
    with server_url(args) as url:
        # One request first: a clear error if the server or model is missing, and a warm model for the run.
        try:
            with FrontalizeClient(url, protocol=args.protocol, timeout=args.timeout) as c:
                c.frontalize(image, model=args.model)
        except (ServerUnavailable, ServerError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        cmd = locust_command(args, out)
        env = dict(os.environ, FF_MODEL=args.model, FF_IMAGE=str(Path(image).resolve()), FF_URL=url,
                   FF_TIMEOUT=str(args.timeout), FF_FINAL_CSV=str((out / FINAL_CSV).resolve()))
        print(f"locust: {args.users} {args.protocol} users for {args.duration:g} s on {args.model}_frontalize at {url}",
              file=sys.stderr)
        t0 = time.time()
        proc = subprocess.run(cmd, env=env, cwd=Path(__file__).resolve().parents[1])
        wall = time.time() - t0
    if proc.returncode in (124, 137):
        print(f"error: Locust did not finish within {args.duration + GRACE_S:g} s and was stopped", file=sys.stderr)
        return 2
    stats = out / FINAL_CSV if (out / FINAL_CSV).is_file() else out / "locust_stats.csv"
    if not stats.is_file():
        print(f"error: Locust exited with {proc.returncode} and wrote no {stats}", file=sys.stderr)
        return 2
    settings = {"model": args.model, "protocol": args.protocol, "url": url, "users": args.users,
                "spawn_rate": args.spawn_rate or args.users, "duration_s": args.duration,
                "image": str(image), "image_bytes": Path(image).stat().st_size, "images_per_request": 1,
                "timeout_s": args.timeout, "wall_s": round(wall, 1), "locust_exit_code": proc.returncode}
    summary = summarize(stats, settings)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{summary['requests']} requests, {summary['failures']} failed: {summary['rps']:.1f} req/s, "
          f"{summary['fps']:.1f} images/s, p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms, "
          f"p99 {summary['p99_ms']} ms -> {out / 'summary.json'}", file=sys.stderr)
    return 0 if summary["requests"] and not summary["failures"] else 1
