"""bench/ against the real CPU tritonserver: a short Locust run and the served rows of the speed table.
Timings are not asserted (2 shared cores); only that the runs complete and the files are right."""
from __future__ import annotations

import json

import pytest

from bench import __main__ as bench_main

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def face():
    from facefront.data import photo
    return photo("obama.jpg")


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_load_short_run_writes_summary(triton_server, face, tmp_path, protocol):
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
    rc = bench_main.main(["load", "--model", "scaleway", "--users", "2", "--duration", "3", "--out", str(tmp_path),
                          "--image", str(face), "--url", url, "--protocol", protocol])
    s = json.loads((tmp_path / "summary.json").read_text())
    assert rc == 0, s
    assert s["requests"] > 0 and s["failures"] == 0
    assert s["rps"] > 0 and s["fps"] == s["rps"] and s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"]
    assert s["settings"]["users"] == 2 and s["settings"]["protocol"] == protocol
    assert (tmp_path / "locust.html").is_file() and (tmp_path / "locust_stats.csv").is_file()


def test_speed_all_modes(triton_server, face, tmp_path):
    rc = bench_main.main(["speed", "--model", "scaleway", "--out", str(tmp_path), "--images", str(face),
                          "--seconds", "0.5", "--warmup", "1", "--url", triton_server.grpc_url])
    report = json.loads((tmp_path / "speed.json").read_text())
    rows = {r["mode"]: r for r in report["results"]}
    assert list(rows) == ["eager", "onnxruntime", "pipeline", "triton-1", "triton-8"]
    skipped = {m: r["skipped"] for m, r in rows.items() if r["skipped"]}
    assert rc == (1 if skipped else 0)
    assert set(skipped) <= {"onnxruntime", "pipeline"}, skipped  # only if not exported
    assert isinstance(report["settings"]["ensemble_overhead_p50_ms"], float)
    assert rows["eager"]["vs_eager"] == 1.0 and rows["triton-8"]["requests"] > 0
    assert "| triton-8 |" in (tmp_path / "speed.md").read_text()
