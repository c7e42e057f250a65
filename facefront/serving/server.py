"""Start the real `tritonserver` (from the nvidia-pytriton wheel) on CPU, bound to 127.0.0.1.

    python -m facefront.serving [--models scaleway,mesh3d] [--http-port 8000] [--grpc-port 8001]

The server runs the CPU flavour of the model repository (`--model-config-name=cpu`: each model folder's
`configs/cpu.pbtxt`). Clients cannot load or unload models: the model-repository API is restricted to a header whose
value only this launcher knows (it uses it to reload a model whose python stub died). Only families whose
artefacts were exported are served; the others are listed with the reason. The launcher waits for readiness and,
if a model fails to load, exits non-zero with the tail of the server log.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from facefront.repository import FAMILY_SUFFIX, MODEL_REPOSITORY, REPO_ROOT, exported_families, exported_services, members

CACHE = REPO_ROOT / ".cache" / "triton"
ADMIN_HEADER = "facefront-admin"


class ServerError(RuntimeError):
    pass


def python_stubs(pid: int) -> dict[int, str]:
    """{pid: model} of the python-backend stub processes (one per model instance) below process `pid`."""
    import psutil
    out = {}
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return out
    for c in children:
        try:
            cmd = c.cmdline()
        except psutil.Error:
            continue
        if cmd and cmd[0].endswith("triton_python_backend_stub"):
            model = next((Path(a).parent.parent.name for a in cmd if a.endswith("model.py")), None)
            if model:
                out[c.pid] = model
    return out


def _pytriton_dirs() -> tuple[Path, Path]:
    try:
        import importlib.util
        spec = importlib.util.find_spec("pytriton")
    except Exception:
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("tritonserver not found: the nvidia-pytriton wheel is not installed (run `make setup`)")
    pkg = Path(list(spec.submodule_search_locations)[0])
    return pkg / "tritonserver", pkg.parent / "nvidia_pytriton.libs"


def backend_dir() -> Path:
    """A backends folder whose python/ holds the backend library and the stub for this interpreter's Python."""
    tsdir, _ = _pytriton_dirs()
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = tsdir / "python_backend_stubs" / ver / "triton_python_backend_stub"
    if not stub.is_file():
        raise ServerError(f"the nvidia-pytriton wheel has no python backend stub for Python {ver}")
    dest = CACHE / f"backends-py{ver}"
    py = dest / "python"
    src = tsdir / "backends" / "python"
    wanted = {"libtriton_python.so": src / "libtriton_python.so",
              "triton_python_backend_utils.py": src / "triton_python_backend_utils.py",
              "triton_python_backend_stub": stub}
    py.mkdir(parents=True, exist_ok=True)
    for name, s in wanted.items():
        d = py / name
        if not d.exists() or d.stat().st_size != s.stat().st_size:
            shutil.copy2(s, d)
    return dest


def select_repository(families: list[str], repo: Path = MODEL_REPOSITORY, services: list[str] = ()) -> Path:
    """A repository view (symlinks) holding only these families' ensembles, the `services` models, and their
    member models."""
    names: set[str] = set()
    for svc in services:
        names.add(svc)
        names.update(members(svc, repo))
    for fam in families:
        ens = repo / f"{fam}{FAMILY_SUFFIX}"
        if not ens.is_dir():
            raise ServerError(f"unknown model {fam!r}: no {ens.name} in {repo}")
        names.add(ens.name)
        names.update(members(ens.name, repo))
    view = Path(tempfile.mkdtemp(prefix="repo-", dir=_ensure(CACHE)))
    for n in sorted(names):
        (view / n).symlink_to(repo / n, target_is_directory=True)
    return view


def _ensure(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


@dataclass
class Server:
    """A tritonserver process on 127.0.0.1 serving `models` (family names; default: every exported family)."""
    models: list[str] | None = None
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    flavour: str = "cpu"
    repository: Path = MODEL_REPOSITORY
    log_path: Path | None = None
    startup_timeout: float = 300.0
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    services: list[str] = field(default_factory=list)   # non-family models served too (face_analyze)
    # Triton's response cache (local, in host memory), used by models whose config says `response_cache
    # { enable: true }` (LivePortrait's F and M: repeated edits of one photo skip them). 0 turns it off.
    cache_bytes: int = 256 << 20
    # the model-repository API (load/unload/index) answers only requests with this header: the launcher's own
    admin_token: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def command(self, repo: Path) -> list[str]:
        tsdir, _ = _pytriton_dirs()
        cmd = [str(tsdir / "bin" / "tritonserver"), f"--model-repository={repo}",
               f"--backend-directory={backend_dir()}", "--model-control-mode=explicit", "--load-model=*",
               f"--http-restricted-api=model-repository:{ADMIN_HEADER}={self.admin_token}",
               f"--grpc-restricted-protocol=model-repository:{ADMIN_HEADER}={self.admin_token}",
               "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
               f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}", f"--metrics-port={self.metrics_port}",
               "--allow-gpu-metrics=false", "--pinned-memory-pool-byte-size=0", "--disable-auto-complete-config",
               "--exit-on-error=true", "--log-verbose=0"]
        if self.flavour == "cpu":
            cmd.append("--model-config-name=cpu")
        if self.cache_bytes > 0:
            cmd += [f"--cache-directory={tsdir / 'caches'}", f"--cache-config=local,size={int(self.cache_bytes)}"]
        return cmd + self.extra_args

    def env(self) -> dict[str, str]:
        _, libs = _pytriton_dirs()
        env = dict(os.environ)
        venv_bin = str(Path(sys.executable).parent)
        # the python backend stub finds its site-packages through `python3` on PATH
        env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "")
        ld = [str(libs), sysconfig.get_config_var("LIBDIR") or ""]
        env["LD_LIBRARY_PATH"] = os.pathsep.join([p for p in ld if p] + [env.get("LD_LIBRARY_PATH", "")])
        env.setdefault("OMP_NUM_THREADS", "1")
        return env

    def start(self) -> "Server":
        ready, self.skipped = exported_families(self.repository)
        wanted = self.models if self.models is not None else ready
        not_ready = [m for m in wanted if m not in ready]
        if not_ready:
            reasons = "; ".join(f"{m}: {self.skipped.get(m, 'unknown model')}" for m in not_ready)
            raise ServerError(f"cannot serve {', '.join(not_ready)}: {reasons}")
        if not wanted:
            raise ServerError("no exported models to serve: run `make export` first")
        self.services, _ = exported_services(self.repository)
        repo = self.view = select_repository(wanted, self.repository, self.services)
        for port in (self.http_port, self.grpc_port, self.metrics_port):
            if _port_busy(port):
                raise ServerError(f"port {port} on 127.0.0.1 is already in use (another server running?)")
        self.log_path = self.log_path or _ensure(CACHE) / "tritonserver.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.command(repo), stdout=self._log, stderr=subprocess.STDOUT, env=self.env(),
                                     cwd=REPO_ROOT, start_new_session=True)
        self.served = wanted
        self._wait_ready()
        self.stubs = self.stub_models()
        return self

    # -- supervision -----------------------------------------------------------------------------------------------
    def stub_models(self) -> dict[int, str]:
        """{pid: model} of the python-backend stub processes (one per model instance) under this server."""
        return python_stubs(self.proc.pid)

    def dead_stubs(self) -> dict[int, str]:
        """{pid: model} of the python stubs seen at start (or last reload) that are gone now. Triton 2.51 then fails
        every request to that model with "Stub process ... is not healthy" while /v2/health/ready still answers 200,
        and never restarts the stub."""
        alive = self.stub_models()
        return {pid: model for pid, model in self.stubs.items() if pid not in alive}

    def problems(self) -> list[str]:
        """Why the server cannot answer every model now: tritonserver exited, or a model's python stub died."""
        if self.proc is None or self.proc.poll() is not None:
            return [f"tritonserver exited with {None if self.proc is None else self.proc.returncode}"]
        return [f"the python stub of {model} (pid {pid}) died" for pid, model in self.dead_stubs().items()]

    def _repository_call(self, model: str, action: str, timeout: float) -> None:
        req = urllib.request.Request(f"http://{self.http_url}/v2/repository/models/{model}/{action}", data=b"",
                                     method="POST", headers={ADMIN_HEADER: self.admin_token})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                if r.status != 200:
                    raise ServerError(f"{action} of {model} answered HTTP {r.status}")
        except OSError as e:
            raise ServerError(f"{action} of {model} failed: {e}") from None

    def reload(self, model: str, timeout: float | None = None) -> "Server":
        """Unload and load one model again (new python stubs); the rest of the server keeps serving. Triton skips a
        load of an unchanged model that is still loaded, hence the unload first. While it reloads, the model and the
        ensembles that use it answer "not ready"."""
        timeout = timeout or self.startup_timeout
        self._repository_call(model, "unload", timeout)
        self._repository_call(model, "load", timeout)
        self.stubs = self.stub_models()
        self.reloads = getattr(self, "reloads", 0) + 1
        return self

    def restart(self) -> "Server":
        """Stop and start again on the same ports."""
        self.stop()
        self.restarts = getattr(self, "restarts", 0) + 1
        return self.start()

    def _wait_ready(self):
        deadline = time.monotonic() + self.startup_timeout
        url = f"http://{self.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"tritonserver exited with code {self.proc.returncode} while loading models:\n"
                                  + self.log_tail())
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise ServerError(f"tritonserver not ready after {self.startup_timeout:.0f}s:\n" + self.log_tail())

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = Path(self.log_path).read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return "\n".join(lines[-n:])

    def stop(self, timeout: float = 30.0) -> int | None:
        """Stop tritonserver and every process it started (stubs included), and remove the repository view."""
        try:
            if self.proc is None or self.proc.poll() is not None:
                return self.proc.returncode if self.proc else None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            try:   # stubs left behind by a dying server belong to its process group
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
            return self.proc.returncode
        finally:
            if getattr(self, "_log", None) is not None:
                self._log.close()
            view = getattr(self, "view", None)
            if view is not None and Path(view).parent == CACHE:
                shutil.rmtree(view, ignore_errors=True)   # only symlinks: the models themselves are untouched
                self.view = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def free_ports(n: int = 3) -> list[int]:
    """n free loopback ports (for tests and benchmarks: never 8000-8002, which `make serve` may hold)."""
    import socket
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_busy(port: int) -> bool:
    import socket
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
