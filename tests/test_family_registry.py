"""Adding a model is one export folder plus its repository folders (issue 9), proved on a copy of the checkout.

A fresh copy of the tracked files gets a new family "toyface": scaleway's export folder and its repository folders
copied under the new name, with the name changed only inside those copies. Then, with no other file edited, the
new family exports, is listed by the export CLI and by `python -m facefront.serving --list`, is served (the
client's model list and a real request), runs in the speed benchmark (eager, onnxruntime and served), and has its
row, with fidelity numbers, in the comparison report. Also: the runtime never imports the build side.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, free_ports

SOURCE, NEW = "scaleway", "toyface"
pytestmark = [pytest.mark.server, pytest.mark.slow]


def _tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [f for f in out.decode().split("\0") if f and (REPO / f).is_file()]


def _copy_renamed(src: Path, dst: Path, tracked: set[str]) -> None:
    """The tracked files of folder `src` into `dst`, with SOURCE changed to NEW in their paths and text."""
    for f in sorted(p for p in src.rglob("*") if str(p.relative_to(REPO)) in tracked):
        rel = Path(*(part.replace(SOURCE, NEW) for part in f.relative_to(src).parts))
        out = dst / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f.read_text().replace(SOURCE, NEW))


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy") / "facefront"
    files = _tracked_files()
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, root / f)
    _copy_renamed(REPO / "export" / SOURCE, root / "export" / NEW, set(files))
    for d in sorted((REPO / "model_repository").glob(f"{SOURCE}_*")):
        _copy_renamed(d, root / "model_repository" / d.name.replace(SOURCE, NEW), set(files))
    (root.parent / "shared").symlink_to(REPO.parent / "shared")   # ../shared beside the checkout, as in CI
    # the copies are the only new files: everything else is the tracked tree, byte for byte
    added = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} - set(files)
    assert added and all(a.startswith((f"export/{NEW}/", f"model_repository/{NEW}_")) for a in added), added
    return root


@pytest.fixture(scope="module")
def env():
    e = dict(os.environ)
    # caches made by `make data` in this checkout: the face models' ONNX files and the offline photos
    e["FACEFRONT_FACE_MODELS"] = str(REPO / ".cache" / "face_models")
    e["FACEFRONT_DATA"] = str(REPO / ".cache" / "data")
    e.pop("PYTHONPATH", None)
    return e


def run(checkout, env, *args, timeout=600) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, *args], cwd=checkout, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(args)} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p


def test_the_copy_imports_its_own_packages(checkout, env):
    out = run(checkout, env, "-c", "import export, facefront, client, bench; "
                                   "print(export.__file__, facefront.__file__, client.__file__, bench.__file__)")
    assert all(Path(p).is_relative_to(checkout) for p in out.stdout.split()), out.stdout


def test_new_family_exports_and_is_listed(checkout, env):
    out = run(checkout, env, "-m", "export", "onnx", NEW)
    assert (checkout / "model_repository" / f"{NEW}_generator" / "1" / "model.onnx").is_file(), out.stdout
    assert NEW in run(checkout, env, "-m", "export", "list").stdout
    listing = run(checkout, env, "-m", "facefront.serving", "--list").stdout
    assert any(line.startswith(NEW) and "ready" in line for line in listing.splitlines()), listing


@pytest.fixture(scope="module")
def served(checkout, env):
    """`python -m facefront.serving --models toyface` of the copy, on free ports."""
    run(checkout, env, "-m", "export", "onnx", NEW, "--missing-only")
    http, grpc, metrics = free_ports(3)
    proc = subprocess.Popen([sys.executable, "-m", "facefront.serving", "--models", NEW, "--http-port", str(http),
                             "--grpc-port", str(grpc), "--metrics-port", str(metrics)], cwd=checkout, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline, lines = time.monotonic() + 300, []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("serving ") or proc.poll() is not None:
            break
    assert lines and lines[-1].startswith("serving "), "".join(lines)
    try:
        yield f"127.0.0.1:{grpc}"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_client_lists_and_frontalizes_with_the_new_family(checkout, env, served, tmp_path):
    models = run(checkout, env, "-m", "client", "models", "--url", served).stdout
    assert any(line.split()[0] == NEW for line in models.splitlines()), models
    photo = REPO / ".cache" / "data" / "obama.jpg"
    run(checkout, env, "-m", "client", "frontalize", str(photo), "-o", str(tmp_path), "--model", NEW, "--url", served)
    assert (tmp_path / "obama.png").stat().st_size > 1000


def test_speed_benchmark_runs_the_new_family(checkout, env, served, tmp_path):
    run(checkout, env, "-m", "bench", "speed", "--model", NEW, "--modes", "eager,onnxruntime,pipeline,triton-1",
        "--seconds", "0.5", "--warmup", "1", "--url", served, "--images", str(REPO / ".cache" / "data" / "obama.jpg"),
        "--out", str(tmp_path))
    rows = {r["mode"]: r for r in json.loads((tmp_path / "speed.json").read_text())["results"]}
    assert set(rows) == {"eager", "onnxruntime", "pipeline", "triton-1"}
    assert all(not r["skipped"] and r["requests"] > 0 for r in rows.values()), rows


def test_report_has_a_row_for_the_new_family(checkout, env, tmp_path):
    run(checkout, env, "-m", "bench", "report", "--out", str(tmp_path),
        "--skip", "quality,sweep,resources,install", timeout=900)
    md = (tmp_path / "report.md").read_text()
    assert any(line.startswith(f"| {NEW} ") for line in md.splitlines()), md[:3000]
    fidelity = json.loads((tmp_path / "data" / "report_data.json").read_text())["fidelity"]["rows"]
    mine = [r for r in fidelity if r["model"] == NEW]
    assert mine and all("error" not in r for r in mine), mine


def test_runtime_never_imports_the_build_side():
    """facefront/, client/ and model_repository/ read nothing of export/ (data flows one way)."""
    offenders = []
    for top in ("facefront", "client", "model_repository"):
        for f in (REPO / top).rglob("*.py"):
            for n, line in enumerate(f.read_text().splitlines(), 1):
                s = line.strip()
                if s.startswith(("import export", "from export")):
                    offenders.append(f"{f.relative_to(REPO)}:{n}: {s}")
    assert not offenders, offenders
