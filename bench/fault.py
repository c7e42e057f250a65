"""A killed python stub under load: how many requests fail and how long until the server answers again.

Starts `python -m facefront.serving` (what `make serve` runs) as a user would, on free ports, with --users client
threads sending the photo to --model in a loop; after --warmup seconds it kills (SIGKILL) the python stub of the
model's --leaf, then counts failed requests and the seconds from the kill to the first answer again (Triton alone
keeps that stub dead and its health endpoint at 200; the launcher's supervision reloads that model). Finally
SIGINT, as Ctrl-C does, and checks that no process or repository view is left. Writes --results.

examples:
  python -m bench fault --results bench/results/fault_cpu.json
  python -m bench fault --model mesh3d --leaf mesh3d_frontalize --users 2
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from facefront.repository import REPO_ROOT

from . import add_results_argument, header, write_results


def add_arguments(p) -> None:
    p.add_argument("--model", default="scaleway", help="family to serve and load (default scaleway)")
    p.add_argument("--leaf", help="Triton model whose stub is killed (default <model>_generator)")
    p.add_argument("--users", type=int, default=4, help="client threads sending requests (default 4)")
    p.add_argument("--warmup", type=float, default=5, help="seconds of load before the kill (default 5)")
    p.add_argument("--timeout", type=float, default=120, help="give up waiting for recovery after this (default 120)")
    p.add_argument("--photo", default="obama.jpg", help="photo from `make data` (default obama.jpg)")
    add_results_argument(p, "bench/results/fault_cpu.json")


class Launcher:
    """`python -m facefront.serving --models MODEL` in a child process; its output lines are kept in .lines."""

    def __init__(self, model: str, check_every: float = 1.0, startup_timeout: float = 300):
        from facefront.serving.server import free_ports
        self.http, self.grpc, self.metrics = free_ports(3)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "facefront.serving", "--models", model, "--check-every", f"{check_every:g}",
             "--http-port", str(self.http), "--grpc-port", str(self.grpc), "--metrics-port", str(self.metrics)],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(iter(self.proc.stdout.readline, "")), daemon=True).start()
        deadline = time.monotonic() + startup_timeout
        while not any(ln.startswith("serving ") for ln in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("the launcher did not start serving:\n" + "".join(self.lines[-20:]))
            time.sleep(0.2)

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc}"

    def stubs(self) -> dict[int, str]:
        """{pid: Triton model} of the python backend stubs under the launcher."""
        from facefront.serving.server import python_stubs
        return python_stubs(self.proc.pid)

    def interrupt(self, timeout: float = 60) -> dict:
        """SIGINT (Ctrl-C); {exit_code, left_processes, left_views}: what it left behind."""
        import psutil
        children = [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)]
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        time.sleep(0.5)
        left = [p for p in children if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        views = [ln.rsplit("repository view ", 1)[1].split(". Ctrl-C")[0].strip()
                 for ln in self.lines if "repository view" in ln]
        return {"exit_code": self.proc.returncode, "children_before": len(children), "left_processes": len(left),
                "repository_views": len(views), "left_views": sum(os.path.exists(v) for v in views)}


def kill_under_load(launcher: Launcher, model: str, leaf: str, photo: bytes, users: int, warmup: float,
                    timeout: float) -> dict:
    """Load from `users` threads, SIGKILL the leaf's stub after `warmup` s; failures and seconds to recover."""
    from client import FrontalizeClient
    stop = threading.Event()
    lock = threading.Lock()
    log: list[tuple[float, bool]] = []          # (time, ok) of every finished request

    def user():
        with FrontalizeClient(launcher.url, timeout=30) as c:
            while not stop.is_set():
                try:
                    c.frontalize(photo, model=model)
                    ok = True
                except Exception:  # noqa: BLE001 - unavailable or "stub not healthy" until the restart is done
                    ok = False
                    time.sleep(0.2)
                with lock:
                    log.append((time.monotonic(), ok))

    threads = [threading.Thread(target=user, daemon=True) for _ in range(users)]
    for t in threads:
        t.start()
    time.sleep(warmup)
    victim = next((pid for pid, m in launcher.stubs().items() if m == leaf), None)
    if victim is None:
        stop.set()
        raise RuntimeError(f"no python stub of {leaf!r} under the launcher: {sorted(set(launcher.stubs().values()))}")
    t_kill = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    recovered = None      # the first answer after the last failure: from then on every request succeeds

    def settled():
        """(time of the first success after the last failure, successes since) once failures began after the kill."""
        with lock:
            after = [(t, ok) for t, ok in log if t > t_kill]
        fails = [t for t, ok in after if not ok]
        if not fails:
            return None, 0
        oks = [t for t, ok in after if ok and t > fails[-1]]
        return (oks[0] if oks else None), len(oks)

    while time.monotonic() - t_kill < timeout:
        first, n = settled()
        if first is not None and time.monotonic() - first >= 3 and n >= users:   # 3 s of answers without a failure
            recovered = first
            break
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(40)
    before = [ok for t, ok in log if t <= t_kill]
    after = [ok for t, ok in log if t > t_kill]
    later = [ok for t, ok in log if recovered and t >= recovered]
    action = ("reloaded the model" if any(ln.startswith("reloaded ") for ln in launcher.lines) else
              "restarted the server" if any(ln.startswith("server restarted") for ln in launcher.lines) else None)
    runs: list[list] = []                       # the outcomes after the kill as runs: [ok, count, first s, last s]
    for t, ok in log:
        if t <= t_kill:
            continue
        if runs and runs[-1][0] == ok:
            runs[-1][1] += 1
            runs[-1][3] = round(t - t_kill, 2)
        else:
            runs.append([ok, 1, round(t - t_kill, 2), round(t - t_kill, 2)])
    return {"timeline_after_kill": runs[:12], "users": users, "warmup_s": warmup, "requests_before_kill": len(before),
            "failures_before_kill": before.count(False), "failed_after_kill": after.count(False),
            "recovered_s": None if recovered is None else round(recovered - t_kill, 1),
            "requests_after_recovery": len(later), "failures_after_recovery": later.count(False),
            "successes_between_failures": sum(1 for t, ok in log if ok and t_kill < t < (recovered or 0)),
            "launcher_action": action}


def run(args) -> int:
    from facefront.data import photo
    started = header("fault")
    leaf = args.leaf or f"{args.model}_generator"
    launcher = Launcher(args.model)
    try:
        res = kill_under_load(launcher, args.model, leaf, photo(args.photo).read_bytes(), args.users, args.warmup,
                              args.timeout)
    finally:
        shutdown = launcher.interrupt()
    res = {"model": args.model, "leaf": leaf, **res, "shutdown": shutdown}
    write_results(args.results, "fault", res, started)
    print(f"{leaf} stub killed under {args.users} users: {res['failed_after_kill']} requests failed, answered again "
          f"after {res['recovered_s']} s; after recovery {res['failures_after_recovery']} of "
          f"{res['requests_after_recovery']} failed; Ctrl-C: exit {shutdown['exit_code']}, {shutdown['left_processes']} "
          f"processes and {shutdown['left_views']} repository views left")
    ok = (res["recovered_s"] is not None and not res["failures_after_recovery"] and shutdown["exit_code"] == 0
          and not shutdown["left_processes"] and not shutdown["left_views"])
    return 0 if ok else 1
