"""Capacity model: how many replicas (GPUs) a target frame rate needs at a p95 latency target, from our measured
per-batch service times, by discrete-event simulation (simpy) of Triton replicas with dynamic batching.

Each replica is one Triton model instance behind a dynamic batcher: requests queue; when the instance is free it
takes up to --max-batch of them, waiting at most --queue-delay-ms after the oldest one for the batch to fill (Triton's
max_queue_delay_microseconds), and is busy for the measured service time of that batch size (linear between the
measured sizes). Each request also pays a fixed overhead outside the batched execution (protocol, python stages),
measured as the 1-client served latency minus the batch-1 service time. Arrivals are Poisson (open loop, a rate)
or closed-loop users (Locust's users with no wait). Routing is random per request (kube-proxy's choice); with random
routing N replicas are N independent copies fed at rate/N (Poisson splitting), which is what is simulated.

Every number printed is a model's prediction, not a measurement; --validate compares it with one: a Locust sweep
against one CPU server on this machine, with the service times measured on the same server just before.

examples:
  python -m bench capacity                                          GPUs per model for 100, 1,000, 10,000 frames/s
  python -m bench capacity --rates 500 --p95-ms 100 --model liveportrait/graphs16
  python -m bench capacity --model liveportrait/graphs16 --replicas 2 --loads 50,100,150,200
  python -m bench capacity --validate --model mesh3d --users 1,2,4 --duration 20 \\
      --out bench/results/capacity_cpu_mesh3d.json                  predicted vs measured on this machine
exit status: 0 done, 1 a target cannot be met by any replica count, 2 could not run.
"""
from __future__ import annotations

import bisect
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results"
DEFAULT_RESULTS = (RESULTS / "gpu_liveportrait_h200.json",)
# bench/gpu/triton_run.py served every LivePortrait mode with max_batch_size 8 and a 2 ms queue delay
GPU_MAX_BATCH = 8
GPU_QUEUE_DELAY_MS = 2.0
MAX_REPLICAS = 100_000


@dataclass(frozen=True)
class Profile:
    """What one replica of a model costs: measured service time per batch size, and the batcher's settings."""
    name: str                       # "liveportrait/graphs16", "mesh3d"
    device: str                     # "NVIDIA H200", "CPU (2 cores)"
    batch_ms: dict                  # {batch size: ms per batch}, measured
    max_batch: int
    queue_delay_ms: float
    overhead_ms: float = 0.0        # per request, outside the batched execution (does not occupy the instance)
    cv: float = 0.0                 # coefficient of variation of the service time (0: always the same)
    source: str = ""

    def __post_init__(self):
        if not self.batch_ms or min(self.batch_ms) < 1 or any(v <= 0 for v in self.batch_ms.values()):
            raise ValueError(f"{self.name}: service times need batch sizes >= 1 and times > 0, got {self.batch_ms}")
        if self.max_batch < 1 or self.queue_delay_ms < 0 or self.overhead_ms < 0 or self.cv < 0:
            raise ValueError(f"{self.name}: max_batch >= 1, queue delay, overhead and cv >= 0 required")

    def service_ms(self, b: int) -> float:
        """Service time of a batch of b: measured, linear between measured sizes; below the smallest, that size's
        time (a smaller batch is never slower); above the largest, the largest's time per frame times b."""
        sizes = sorted(int(k) for k in self.batch_ms)
        ms = [float(self.batch_ms[k]) for k in sizes]
        if b <= sizes[0]:
            return ms[0]
        if b >= sizes[-1]:
            return ms[-1] * b / sizes[-1]
        i = bisect.bisect_left(sizes, b)
        if sizes[i] == b:
            return ms[i]
        lo, hi = sizes[i - 1], sizes[i]
        return ms[i - 1] + (ms[i] - ms[i - 1]) * (b - lo) / (hi - lo)

    def capacity_fps(self) -> float:
        """The most frames/s one replica can finish (best batch size up to max_batch)."""
        return max(b / self.service_ms(b) * 1e3 for b in range(1, self.max_batch + 1))

    def with_batching(self, max_batch: int | None = None, queue_delay_ms: float | None = None) -> "Profile":
        d = asdict(self)
        if max_batch is not None:
            d["max_batch"] = max_batch
        if queue_delay_ms is not None:
            d["queue_delay_ms"] = queue_delay_ms
        return Profile(**d)


# ---------------------------------------------------------------- reading bench/results

def load_profiles(path: Path, served: bool = True) -> list[Profile]:
    """Profiles from a results file: `python -m bench.gpu` output (modes -> speed per batch) or a --validate file.
    For a mode that was also served by Triton to several clients, a second profile `<name>@triton` adds the
    serving cost fitted to that run (fit_served)."""
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read results ({e})") from None
    if "profile" in d:                                    # written by --validate
        p = d["profile"]
        return [Profile(name=p["name"], device=p["device"], batch_ms={int(k): v for k, v in p["batch_ms"].items()},
                        max_batch=p["max_batch"], queue_delay_ms=p["queue_delay_ms"], overhead_ms=p["overhead_ms"],
                        cv=p.get("cv", 0.0), source=str(Path(path).name))]
    if "modes" not in d:
        raise ValueError(f"{path}: neither a `python -m bench.gpu` result (modes) nor a capacity profile")
    triton = (d.get("triton") or {}).get("models") or {}
    out = []
    for mode, m in d["modes"].items():
        speed = m.get("speed") if isinstance(m, dict) else None
        if not speed:
            continue
        batch_ms = {int(s["batch"]): float(s["ms_per_batch_p50"]) for s in speed}
        # overhead: the same mode served by Triton to 1 client, minus the in-process batch-1 time and the batcher's
        # wait (a lone request waits the whole queue delay for company)
        overhead, cv = 0.0, 0.0
        runs = (triton.get(mode) or {}).get("runs") if isinstance(triton.get(mode), dict) else None
        one = next((r for r in runs or () if r.get("users") == 1), None)
        if one and 1 in batch_ms:
            overhead = max(0.0, float(one["p50_ms"]) - batch_ms[1] - GPU_QUEUE_DELAY_MS)
            # spread of the 1-client latency, as if normal: p95 = p50 + 1.645 sd
            cv = max(0.0, float(one["p95_ms"]) - float(one["p50_ms"])) / 1.645 / float(one["p50_ms"])
        prof = Profile(name=f"liveportrait/{mode}", device=d.get("gpu") or d.get("device", "?"), batch_ms=batch_ms,
                       max_batch=GPU_MAX_BATCH, queue_delay_ms=GPU_QUEUE_DELAY_MS, overhead_ms=round(overhead, 3),
                       cv=round(cv, 4), source=str(Path(path).name))
        out.append(prof)
        many = max((r for r in runs or () if r.get("users", 0) > 1), key=lambda r: r["users"], default=None)
        # Only a steady run is fitted: p95 over twice p50 means stalls (in the stored eager runs, the first batches
        # of each new shape: cuDNN picks its algorithms per shape), which a short run cannot amortise.
        if served and many and float(many["p95_ms"]) <= 2 * float(many["p50_ms"]):
            fitted = fit_served(prof, int(many["users"]), float(many["fps"]))
            if fitted:
                out.append(fitted)
    return out


def fit_served(p: Profile, users: int, fps: float, requests: int = 3000, seed: int = 0) -> Profile | None:
    """`p` with k ms added per frame to every batch, k chosen so that `users` closed-loop clients reach the
    measured `fps`: what serving through Triton's python backend costs on top of the in-process times (tensor
    copies through shared memory, per-request python). None when the in-process times are already that slow."""
    def fps_at(k: float) -> float:
        q = Profile(**{**asdict(p), "batch_ms": {b: ms + k * b for b, ms in p.batch_ms.items()}})
        return simulate(q, users=users, requests=requests, seed=seed).fps

    if fps_at(0.0) <= fps:
        return None
    lo, hi = 0.0, 1.0
    while fps_at(hi) > fps:
        lo, hi = hi, hi * 2
        if hi > 1e5:
            return None
    for _ in range(20):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fps_at(mid) > fps else (lo, mid)
    k = round(hi, 3)
    return Profile(**{**asdict(p), "name": f"{p.name}@triton", "batch_ms": {b: round(ms + k * b, 3) for b, ms in
                                                                           p.batch_ms.items()},
                      "source": f"{p.source}: in-process + {k} ms/frame, fitted to the {users}-client Triton run"})


def triton_checks(path: Path) -> dict:
    """{mode: [runs]}: the closed-loop Triton runs a bench.gpu result holds (to compare the model with)."""
    d = json.loads(Path(path).read_text())
    models = (d.get("triton") or {}).get("models") or {}
    return {m: v["runs"] for m, v in models.items() if isinstance(v, dict) and v.get("runs")}


# ---------------------------------------------------------------- the simulation

@dataclass
class SimResult:
    requests: int
    fps: float                      # completed requests per second (frames/s)
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    queue_ms: float                 # mean wait in the batcher's queue (what the HPA's metric measures)
    mean_batch: float
    utilisation: float              # share of time the replicas were executing
    stable: bool = True             # False when the offered load is at or above capacity

    def row(self) -> dict:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class _Replica:
    """One model instance behind Triton's dynamic batcher."""

    def __init__(self, env, profile: Profile, stats: dict, rng):
        self.env, self.p, self.stats, self.rng = env, profile, stats, rng
        self.queue: list = []           # [(arrival time s, done event)]
        self.wake = env.event()
        env.process(self._serve())

    def submit(self, done) -> None:
        self.queue.append((self.env.now, done))
        if not self.wake.triggered:
            self.wake.succeed()

    def _serve(self):
        env, p = self.env, self.p
        delay = p.queue_delay_ms / 1e3
        while True:
            if not self.queue:
                self.wake = env.event()
                yield self.wake
                continue
            deadline = self.queue[0][0] + delay   # the batcher waits at most this long after the oldest request
            while len(self.queue) < p.max_batch and env.now < deadline:
                self.wake = env.event()
                yield self.wake | env.timeout(deadline - env.now)
            batch, self.queue = self.queue[:p.max_batch], self.queue[p.max_batch:]
            self.stats["waits"].extend(env.now - t for t, _ in batch)
            t = p.service_ms(len(batch)) / 1e3
            if p.cv > 0:   # gamma with mean 1 and the measured coefficient of variation (positive, right-skewed)
                t *= self.rng.gamma(1 / p.cv ** 2, p.cv ** 2)
            self.stats["busy"] += t
            self.stats["batches"] += 1
            self.stats["frames"] += len(batch)
            yield env.timeout(t)
            for _, done in batch:
                done.succeed()


def simulate(profile: Profile, *, rate: float | None = None, users: int | None = None, replicas: int = 1,
             requests: int = 20_000, warmup: float = 0.1, seed: int = 0) -> SimResult:
    """Simulate `requests` requests: Poisson arrivals at `rate` frames/s (open loop), or `users` closed-loop clients
    (each sends its next request when the last is answered). The first `warmup` share is not counted."""
    import simpy
    if (rate is None) == (users is None):
        raise ValueError("give either rate (open loop) or users (closed loop)")
    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be > 0 frames/s, got {rate}")
    if users is not None and users < 1:
        raise ValueError(f"users must be >= 1, got {users}")
    if replicas < 1 or requests < 10:
        raise ValueError("replicas must be >= 1 and requests >= 10")
    rng = np.random.default_rng(seed)
    env = simpy.Environment()
    stats = {"busy": 0.0, "batches": 0, "frames": 0, "waits": []}
    reps = [_Replica(env, profile, stats, rng) for _ in range(replicas)]
    overhead = profile.overhead_ms / 1e3
    lat: list[float] = []
    ends: list[float] = []
    skip = int(requests * warmup)
    issued = [0]

    def one(t0):
        done = env.event()
        reps[int(rng.integers(len(reps)))].submit(done)   # random routing
        yield done
        if overhead:
            yield env.timeout(overhead)
        lat.append(env.now - t0)
        ends.append(env.now)

    def poisson():
        while issued[0] < requests:
            yield env.timeout(rng.exponential(1.0 / rate))
            issued[0] += 1
            env.process(one(env.now))

    def user():
        while issued[0] < requests:
            issued[0] += 1
            yield env.process(one(env.now))

    if rate is not None:
        env.process(poisson())
    else:
        for _ in range(users):
            env.process(user())
    env.run()
    kept = np.asarray(lat[skip:]) * 1e3
    t_ends = np.asarray(ends)
    span = t_ends[-1] - t_ends[skip] if len(t_ends) > skip + 1 else float("nan")
    fps = (len(t_ends) - skip - 1) / span if span and span > 0 else float("nan")
    util = stats["busy"] / (env.now * replicas) if env.now > 0 else 0.0
    return SimResult(requests=len(kept), fps=float(fps), p50_ms=float(np.percentile(kept, 50)),
                     p95_ms=float(np.percentile(kept, 95)), p99_ms=float(np.percentile(kept, 99)),
                     mean_ms=float(kept.mean()), queue_ms=float(np.mean(stats["waits"][skip:]) * 1e3),
                     mean_batch=stats["frames"] / max(stats["batches"], 1), utilisation=float(util))


def simulate_fleet(profile: Profile, rate: float, replicas: int, **kw) -> SimResult:
    """N replicas at `rate` frames/s in all. Random routing splits a Poisson stream into N independent Poisson
    streams of rate/N, so one replica is simulated at rate/N (exact, and N times cheaper)."""
    if rate / replicas >= profile.capacity_fps():
        inf = float("inf")
        return SimResult(requests=0, fps=profile.capacity_fps() * replicas, p50_ms=inf, p95_ms=inf, p99_ms=inf,
                         mean_ms=inf, queue_ms=inf, mean_batch=float(profile.max_batch), utilisation=1.0, stable=False)
    r = simulate(profile, rate=rate / replicas, replicas=1, **kw)
    r.fps *= replicas
    return r


def replicas_needed(profile: Profile, rate: float, p95_ms: float, **kw) -> tuple[int | None, SimResult | None]:
    """The fewest replicas whose simulated p95 is <= p95_ms at `rate` frames/s; (None, None) when even an idle
    replica is slower than the target (one request's own time is over it)."""
    idle = profile.service_ms(1) + profile.queue_delay_ms + profile.overhead_ms
    if idle > p95_ms:
        return None, None
    lo = max(1, math.ceil(rate / profile.capacity_fps() * 1.0001))   # fewer cannot keep up at all
    res = simulate_fleet(profile, rate, lo, **kw)
    if res.p95_ms <= p95_ms:
        return lo, res
    hi, hi_res = lo, res
    while hi_res.p95_ms > p95_ms:                                     # double until the target is met ...
        lo, hi = hi, min(hi * 2, MAX_REPLICAS)
        hi_res = simulate_fleet(profile, rate, hi, **kw)
        if hi == MAX_REPLICAS and hi_res.p95_ms > p95_ms:
            return None, None
    while hi - lo > 1:                                                # ... then bisect (p95 falls as N grows)
        mid = (lo + hi) // 2
        r = simulate_fleet(profile, rate, mid, **kw)
        if r.p95_ms <= p95_ms:
            hi, hi_res = mid, r
        else:
            lo = mid
    return hi, hi_res


# ---------------------------------------------------------------- CLI

def add_arguments(p) -> None:
    p.add_argument("--results", type=Path, action="append", metavar="JSON",
                   help="measured results to read (repeatable; default bench/results/gpu_liveportrait_h200.json)")
    p.add_argument("--model", action="append", metavar="NAME",
                   help="profile(s) to use, e.g. liveportrait/graphs16 (repeatable; default all in the results)")
    p.add_argument("--rates", default="100,1000,10000", help="target frames/s, comma-separated (default 100,1000,10000)")
    p.add_argument("--p95-ms", type=float, default=200.0, help="p95 latency target in ms (default 200)")
    p.add_argument("--replicas", type=int, help="instead: p95 vs load for this many replicas (loads from --loads)")
    p.add_argument("--loads", help="frames/s for --replicas, comma-separated (default 10%%..95%% of capacity)")
    p.add_argument("--max-batch", type=int, help="override the dynamic batcher's max batch size")
    p.add_argument("--queue-delay-ms", type=float, help="override the dynamic batcher's max queue delay")
    p.add_argument("--requests", type=int, default=20_000, help="simulated requests per point (default 20000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, metavar="JSON", help="also write the results here")
    v = p.add_argument_group("--validate: predicted vs measured for one CPU server on this machine")
    v.add_argument("--validate", action="store_true",
                   help="serve --model (a family, default mesh3d) on CPU, measure its service time per batch size, "
                        "then run a Locust sweep and the model at the same user counts")
    v.add_argument("--users", default="1,2,4", help="Locust users per sweep point (default 1,2,4)")
    v.add_argument("--duration", type=float, default=20, metavar="S", help="seconds per sweep point (default 20)")
    v.add_argument("--calibrate-s", type=float, default=6, metavar="S",
                   help="seconds per concurrency level while measuring service times (default 6)")


def _floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not vals or any(not v > 0 for v in vals):
        raise ValueError(f"{what} must be positive numbers, got {text!r}")
    return vals


def select_profiles(args) -> list[Profile]:
    profiles = []
    for path in args.results or DEFAULT_RESULTS:
        profiles += load_profiles(path)
    if args.model:
        names = {p.name for p in profiles}
        unknown = [m for m in args.model if m not in names]
        if unknown:
            raise ValueError(f"no profile {', '.join(unknown)} in the results (have: {', '.join(sorted(names))})")
        profiles = [p for p in profiles if p.name in args.model]
    if not profiles:
        raise ValueError("the results hold no service times")
    return [p.with_batching(args.max_batch, args.queue_delay_ms) for p in profiles]


def run(args) -> int:
    try:
        if args.validate:
            return validate(args)
        profiles = select_profiles(args)
        if args.replicas is not None:
            if args.replicas < 1:
                raise ValueError("--replicas must be >= 1")
            return _load_curve(args, profiles)
        return _table(args, profiles, _floats(args.rates, "--rates"))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _sim_kw(args) -> dict:
    return {"requests": args.requests, "seed": args.seed}


def _table(args, profiles: list[Profile], rates: list[float]) -> int:
    rows, missed = [], False
    print(f"PREDICTION (capacity model, not a measurement): replicas needed at p95 <= {args.p95_ms:g} ms, "
          f"Poisson arrivals, random routing")
    print(f"{'model':<30}{'device':<14}{'frames/s per replica':>21}" + "".join(f"{r:>12,.0f}/s" for r in rates))
    for p in profiles:
        cells = []
        for rate in rates:
            n, res = replicas_needed(p, rate, args.p95_ms, **_sim_kw(args))
            missed |= n is None
            cells.append({"rate_fps": rate, "replicas": n, "sim": res.row() if res else None})
        rows.append({"model": p.name, "device": p.device, "capacity_fps": round(p.capacity_fps(), 2),
                     "profile": asdict(p), "targets": cells})
        print(f"{p.name:<30}{p.device[:13]:<14}{p.capacity_fps():>21.1f}"
              + "".join(f"{(c['replicas'] if c['replicas'] else 'never'):>14}" for c in cells))
    checks = _closed_loop_checks(args, profiles)
    for c in checks:
        print(f"check {c['model']} on Triton, {c['users']} closed-loop clients: measured {c['measured']['fps']} fps "
              f"p50 {c['measured']['p50_ms']} p95 {c['measured']['p95_ms']} ms; predicted {c['predicted']['fps']} fps "
              f"p50 {c['predicted']['p50_ms']} p95 {c['predicted']['p95_ms']} ms")
    _write(args, {"kind": "prediction: capacity model (bench/capacity.py), not a measurement",
                  "p95_target_ms": args.p95_ms, "routing": "random", "arrivals": "poisson",
                  "rows": rows, "closed_loop_checks": checks})
    return 1 if missed else 0


def _closed_loop_checks(args, profiles: list[Profile]) -> list[dict]:
    """The model against the closed-loop Triton runs stored beside the service times (same GPU, same file)."""
    out = []
    for path in args.results or DEFAULT_RESULTS:
        try:
            runs = triton_checks(path)
        except (OSError, ValueError):
            continue
        for p in profiles:
            mode = p.name.split("/", 1)[-1].split("@")[0]   # a fitted @triton profile matches fps by construction
            for r in runs.get(mode, ()):
                if not p.source.startswith(Path(path).name):
                    continue
                sim = simulate(p, users=int(r["users"]), requests=max(2000, args.requests // 4), seed=args.seed)
                out.append({"model": p.name, "users": r["users"], "source": p.source,
                            "measured": {k: r.get(k) for k in ("fps", "p50_ms", "p95_ms", "requests")},
                            "predicted": {k: round(getattr(sim, k), 1) for k in ("fps", "p50_ms", "p95_ms")}})
    return out


def _load_curve(args, profiles: list[Profile]) -> int:
    out = []
    for p in profiles:
        cap = p.capacity_fps() * args.replicas
        loads = _floats(args.loads, "--loads") if args.loads else [round(cap * f, 1) for f in
                                                                   (0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95)]
        print(f"PREDICTION for {p.name} ({p.device}), {args.replicas} replica(s), capacity {cap:.1f} frames/s, "
              f"max batch {p.max_batch}, queue delay {p.queue_delay_ms:g} ms, overhead {p.overhead_ms:g} ms")
        print(f"{'frames/s':>10}{'load':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'mean batch':>12}")
        pts = []
        for rate in loads:
            r = simulate_fleet(p, rate, args.replicas, **_sim_kw(args))
            pts.append({"rate_fps": rate, **r.row()})
            print(f"{rate:>10.1f}{rate / cap:>7.0%}{r.p50_ms:>9.1f}{r.p95_ms:>9.1f}{r.p99_ms:>9.1f}{r.mean_batch:>12.2f}")
        out.append({"model": p.name, "replicas": args.replicas, "capacity_fps": round(cap, 2), "points": pts})
    _write(args, {"kind": "prediction: capacity model (bench/capacity.py), not a measurement", "curves": out})
    return 0


def _write(args, data: dict) -> None:
    if args.out:
        data = {"command": "python -m bench capacity " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["capacity"]
                                                                 else sys.argv[1:]),
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **data}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=1, default=_json_default) + "\n")
        print(f"-> {args.out}", file=sys.stderr)


def _json_default(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    raise TypeError(type(o))


# ---------------------------------------------------------------- --validate: one CPU server, measured

def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "system": platform.platform(),
            # a shared machine: how busy it was says how far to trust the numbers
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}


def model_stats(http_url: str, model: str) -> dict:
    """Triton's statistics for one model: counts and, per executed batch size, (executions, ns of compute)."""
    import urllib.request
    with urllib.request.urlopen(f"http://{http_url}/v2/models/{model}/stats", timeout=10) as r:
        s = json.loads(r.read())["model_stats"][0]
    inf = s["inference_stats"]
    per_batch = {}
    for b in s.get("batch_stats") or ():
        ci = b["compute_input"], b["compute_infer"], b["compute_output"]
        per_batch[int(b["batch_size"])] = (int(ci[1]["count"]), sum(int(c["ns"]) for c in ci))
    return {"inference_count": int(s["inference_count"]), "execution_count": int(s["execution_count"]),
            "success_ns": int(inf["success"]["ns"]), "success_count": int(inf["success"]["count"]),
            "queue_ns": int(inf["queue"]["ns"]), "per_batch": per_batch}


def stats_delta(before: dict, after: dict) -> dict:
    per_batch = {}
    for b, (n, ns) in after["per_batch"].items():
        n0, ns0 = before["per_batch"].get(b, (0, 0))
        if n - n0 > 0:
            per_batch[b] = (n - n0, ns - ns0)
    return {"per_batch": per_batch, **{k: after[k] - before[k] for k in
                                       ("inference_count", "execution_count", "success_ns", "success_count",
                                        "queue_ns")}}


def batch_ms_from(delta: dict) -> dict:
    """{batch size: (mean ms per execution, executions)} from a stats delta."""
    return {b: (ns / n / 1e6, n) for b, (n, ns) in sorted(delta["per_batch"].items())}


def _calibrate(http_url: str, grpc_url: str, family: str, image: Path, seconds: float, levels=(1, 2, 4, 8)) -> dict:
    """Service time per batch size, read from Triton's own statistics while 1, 2, 4, 8 concurrent gRPC clients
    (threads here, no Locust) send requests; and the per-request overhead: the 1-client latency seen by the client
    minus the server's own time for that request."""
    import concurrent.futures as cf
    import threading

    from client import FrontalizeClient
    model = f"{family}_frontalize"
    data = Path(image).read_bytes()
    out = {"levels": []}
    before_all = model_stats(http_url, model)
    for c in levels:
        stop = time.monotonic() + seconds
        lat: list[float] = []
        lock = threading.Lock()

        def worker(stop=stop, lat=lat, lock=lock):
            with FrontalizeClient(grpc_url, timeout=60) as cl:
                while time.monotonic() < stop:
                    t = time.perf_counter()
                    cl.frontalize(data, model=family)
                    with lock:
                        lat.append((time.perf_counter() - t) * 1e3)

        s0 = model_stats(http_url, model)
        with cf.ThreadPoolExecutor(c) as ex:
            for f in [ex.submit(worker) for _ in range(c)]:
                f.result()
        d = stats_delta(s0, model_stats(http_url, model))
        server_ms = d["success_ns"] / max(d["success_count"], 1) / 1e6
        out["levels"].append({"clients": c, "requests": len(lat), "client_p50_ms": round(float(np.median(lat)), 2),
                              "server_ms_per_request": round(server_ms, 2),
                              "batch_ms": {b: [round(ms, 2), n] for b, (ms, n) in batch_ms_from(d).items()}})
        if c == 1:
            out["overhead_ms"] = round(max(0.0, float(np.median(lat)) - server_ms), 2)
            out["cv"] = round(float(np.std(lat) / np.mean(lat)), 4)   # spread of one request's time, nothing queued
    total = batch_ms_from(stats_delta(before_all, model_stats(http_url, model)))
    out["batch_ms"] = {b: [round(ms, 2), n] for b, (ms, n) in total.items()}
    return out


def _read_pbtxt_batching(family: str) -> tuple[int, float]:
    """(max_batch_size, max_queue_delay ms) of the served model, parsed with Triton's config schema."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2
    d = REPO_ROOT / "model_repository" / f"{family}_frontalize"
    cfg = d / "configs" / "cpu.pbtxt"
    cfg = cfg if cfg.is_file() else d / "config.pbtxt"
    mc = text_format.Parse(cfg.read_text(), model_config_pb2.ModelConfig())
    if not mc.HasField("dynamic_batching"):
        return max(mc.max_batch_size, 1), 0.0
    return max(mc.max_batch_size, 1), mc.dynamic_batching.max_queue_delay_microseconds / 1e3


def validate(args) -> int:
    from facefront.serving.server import Server, ServerError, free_ports

    from . import load
    from .sweep import load_point
    family = (args.model or ["mesh3d"])[0]
    users = [int(u) for u in _floats(args.users, "--users")]
    if args.duration <= 0 or args.calibrate_s <= 0:
        raise ValueError("--duration and --calibrate-s must be > 0")
    image = Path(load.default_image())
    max_batch, delay_ms = _read_pbtxt_batching(family)
    http, grpc, metrics = free_ports(3)     # never 8000-8002: a `make serve` may hold them
    work = REPO_ROOT / ".cache" / "capacity" / family
    t0 = time.time()
    try:
        srv = Server(models=[family], http_port=http, grpc_port=grpc, metrics_port=metrics,
                     log_path=REPO_ROOT / ".cache" / "capacity-tritonserver.log")
        srv.start()
    except ServerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        print(f"calibrating {family}: {args.calibrate_s:g} s at 1, 2, 4, 8 clients ...", file=sys.stderr)
        cal = _calibrate(srv.http_url, srv.grpc_url, family, image, args.calibrate_s)
        profile = Profile(name=family, device=f"CPU ({os.cpu_count()} cores)",
                          batch_ms={b: v[0] for b, v in cal["batch_ms"].items()}, max_batch=max_batch,
                          queue_delay_ms=delay_ms, overhead_ms=cal["overhead_ms"], cv=cal["cv"],
                          source="measured by --validate on this server before the sweep")
        points = []
        for u in users:
            print(f"locust: {u} users for {args.duration:g} s", file=sys.stderr)
            s0 = model_stats(srv.http_url, f"{family}_frontalize")
            m = load_point(srv.grpc_url, family, u, args.duration, work / f"u{u}")
            d = stats_delta(s0, model_stats(srv.http_url, f"{family}_frontalize"))
            sim = simulate(profile, users=u, requests=args.requests, seed=args.seed)
            # the same model fed the service times the server showed during this point: separates the queueing
            # model's error from the service time drifting under load (2 shared cores, Locust among them)
            during = {b: ms for b, (ms, _) in batch_ms_from(d).items()}
            sim_during = simulate(Profile(**{**asdict(profile), "batch_ms": {**profile.batch_ms, **during}}),
                                  users=u, requests=args.requests, seed=args.seed) if during else None
            points.append({
                "users": u,
                "measured": {k: m.get(k) for k in ("fps", "p50_ms", "p95_ms", "p99_ms", "requests", "failures",
                                                   "error")},
                "predicted": {k: round(getattr(sim, k), 1) for k in ("fps", "p50_ms", "p95_ms", "p99_ms")}
                | {"mean_batch": round(sim.mean_batch, 2)},
                "predicted_with_service_during_point": None if sim_during is None else
                {k: round(getattr(sim_during, k), 1) for k in ("fps", "p50_ms", "p95_ms", "p99_ms")},
                "server_during_sweep": {"batch_ms": {b: [round(ms, 2), n] for b, (ms, n) in batch_ms_from(d).items()},
                                        "queue_ms_per_request": round(d["queue_ns"] / max(d["inference_count"], 1)
                                                                      / 1e6, 2)},
                "command": m.get("command")})
    finally:
        srv.stop()
    result = {"kind": "validation of the capacity model: predicted (simulation, service times measured first) vs "
                      "measured (Locust, closed-loop users) on one CPU server",
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
              "command": f"python -m bench capacity --validate --model {family} --users {args.users} "
                         f"--duration {args.duration:g} --calibrate-s {args.calibrate_s:g}"
                         + (f" --out {args.out}" if args.out else ""),
              "image": image.name, "wall_s": round(time.time() - t0, 1), "profile": asdict(profile),
              "calibration": cal, "points": points}
    print(f"{'users':>5} | {'measured fps':>12}{'p50':>7}{'p95':>7} | {'predicted fps':>13}{'p50':>7}{'p95':>7} | "
          f"{'same, service times of the point':>32}")
    for pt in points:
        m, p, q = pt["measured"], pt["predicted"], pt["predicted_with_service_during_point"] or {}
        print(f"{pt['users']:>5} | {m.get('fps')!s:>12}{m.get('p50_ms')!s:>7}{m.get('p95_ms')!s:>7} | "
              f"{p['fps']:>13}{p['p50_ms']:>7}{p['p95_ms']:>7} | {q.get('fps')!s:>12}{q.get('p50_ms')!s:>10}"
              f"{q.get('p95_ms')!s:>10}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"-> {args.out}", file=sys.stderr)
    return 0 if all(not pt["measured"].get("error") and pt["measured"].get("requests") for pt in points) else 1


if __name__ == "__main__":
    from bench import standalone
    sys.exit(standalone("bench.capacity"))
