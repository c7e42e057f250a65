"""Kubernetes exec probe for a facefront Triton container: exit 0 healthy, 1 not (the reason on stdout).

Why not an httpGet on /v2/health/ready: when a python backend stub process dies, Triton keeps answering 200 on
/v2/health/live, /v2/health/ready and /v2/models/<name>/ready, and the model stays listed as loaded, while
every request to that model fails with "Stub process '<instance>' is not healthy" (seen with Triton 2.51 here:
kill -9 of the mesh3d_frontalize stub). Triton does not restart the stub. So this probe checks:

  1. /v2/health/live (liveness) or /v2/health/ready (startup, readiness) answers 200;
  2. every instance of every loaded python-backend model has a running stub process: the instances come from
     Triton's own model configs (/v2/models/<m>/config), the stubs from /proc (their command line names the
     instance). This covers every python stage of every ensemble, not just the one a test request would reach,
     and costs no inference;
  3. readiness only: one cheap inference through a python model: a few bytes that are not an image, sent to
     `face_analyze`. A live stub answers with our own decode error; a dead one with Triton's stub error. No
     network runs, so the probe stays cheap under load.

    python3 deploy/probe.py liveness|startup|readiness [--url 127.0.0.1:8000] [--timeout 4]

Standard library only: it runs inside the serving image with no extra install, in well under a second.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

NOT_AN_IMAGE = b"facefront-probe"           # decodes to nothing: our decode error proves the stub ran
PROBE_MODEL = "face_analyze"
STUB = "triton_python_backend_stub"


class Unhealthy(Exception):
    pass


def _get(url: str, timeout: float, data: bytes | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET",
                                 headers={"Content-Type": "application/json"} if data is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        raise Unhealthy(f"{url}: {e}") from None


def _processes(proc: Path):
    """(pid, argv, state) of every process, zombies included."""
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        yield int(d.name), [a.decode(errors="replace") for a in argv], state


def server_pids(http_port: int, proc: Path = Path("/proc")) -> set[int]:
    """The tritonserver serving this HTTP port (its command line says --http-port=PORT); every tritonserver if
    none says so (one per container in a pod; a development machine may run several)."""
    servers = {pid: argv for pid, argv, state in _processes(proc)
               if argv and Path(argv[0]).name == "tritonserver" and state not in ("Z", "X")}
    mine = {pid for pid, argv in servers.items() if f"--http-port={http_port}" in argv}
    return mine or set(servers)


def running_stub_instances(proc: Path = Path("/proc"), parents: set[int] | None = None) -> set[str]:
    """Instance names of the live python backend stubs (zombies excluded) of the given tritonserver pids (any if
    None). The stub's command line is `stub model.py shm-region shm-size shm-growth PARENT-PID backend-dir
    ipc-size INSTANCE runtime`."""
    names = set()
    for _, argv, state in _processes(proc):
        if len(argv) > 8 and argv[0].endswith(STUB) and state not in ("Z", "X"):
            if parents is None or (argv[5].isdigit() and int(argv[5]) in parents):
                names.add(argv[8])
    return names


def expected_stub_instances(base: str, timeout: float) -> set[str]:
    """`<group name>_<i>` for every instance of every loaded python-backend model, from Triton's configs."""
    # the statistics API lists the loaded models; the repository index is the model-control API, which facefront's
    # launcher restricts to itself
    status, body = _get(f"{base}/v2/models/stats", timeout)
    if status != 200:
        raise Unhealthy(f"model statistics: HTTP {status}")
    expected = set()
    for m in json.loads(body).get("model_stats", []):
        status, body = _get(f"{base}/v2/models/{m['name']}/config", timeout)
        if status != 200:
            raise Unhealthy(f"{m['name']} config: HTTP {status}")
        cfg = json.loads(body)
        if cfg.get("backend") != "python":
            continue
        for group in cfg.get("instance_group") or ():   # Triton names instance c of a group `<group>_<c>`
            expected.update(f"{group['name']}_{i}" for i in range(int(group.get("count", 1))))
    return expected


def check(stage: str, base: str, timeout: float, proc: Path = Path("/proc")) -> None:
    health = "live" if stage == "liveness" else "ready"
    status, _ = _get(f"{base}/v2/health/{health}", timeout)
    if status != 200:
        raise Unhealthy(f"/v2/health/{health}: HTTP {status}")
    port = int(base.rsplit(":", 1)[1]) if base.rsplit(":", 1)[1].isdigit() else 80
    missing = expected_stub_instances(base, timeout) - running_stub_instances(proc, server_pids(port, proc))
    if missing:
        raise Unhealthy(f"python backend stub not running for {', '.join(sorted(missing))}")
    if stage != "readiness":
        return
    status, _ = _get(f"{base}/v2/models/{PROBE_MODEL}/ready", timeout)
    if status != 200:
        return  # not served in this deployment: the stub check above is the whole test
    req = json.dumps({"inputs": [{"name": "IMAGE", "shape": [len(NOT_AN_IMAGE)], "datatype": "UINT8",
                                  "data": list(NOT_AN_IMAGE)}]}).encode()
    status, body = _get(f"{base}/v2/models/{PROBE_MODEL}/infer", timeout, data=req)
    text = body.decode(errors="replace")
    if "Stub process" in text or not (status == 200 or "image" in text.lower()):
        raise Unhealthy(f"{PROBE_MODEL} inference: HTTP {status}: {text[:200]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="probe.py", description=__doc__.splitlines()[0])
    p.add_argument("stage", choices=("liveness", "startup", "readiness"))
    p.add_argument("--url", default=os.environ.get("FACEFRONT_PROBE_URL", "127.0.0.1:8000"), help="Triton HTTP host:port")
    p.add_argument("--timeout", type=float, default=4.0, help="seconds per HTTP call")
    a = p.parse_args(argv)
    try:
        check(a.stage, f"http://{a.url}", a.timeout)
    except Unhealthy as e:
        print(f"{a.stage}: unhealthy: {e}")
        return 1
    print(f"{a.stage}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
