"""bench.report: the page renders in headless Chromium, its images load, the table has a row per model; plus one
short real end-to-end run against the CPU tritonserver."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import report, sweep

REPO = Path(__file__).resolve().parents[1]


def fake_data(tmp: Path) -> dict:
    """What run_sections returns, small and made up (no server): two served models, two missing."""
    from PIL import Image
    qdir = tmp / "data" / "quality" / "images"
    recs = []
    for k, yaw in enumerate((-30.0, 15.0)):
        src = tmp / f"in{k}.png"
        Image.fromarray(np.full((40, 40, 3), 60 * k, np.uint8)).save(src)
        outs = {"input": {"face_found": True, "yaw": yaw, "pitch": 0.0, "id_dist": 0.0}}
        for m in ("scaleway", "mesh3d"):
            (qdir / m).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((32, 32, 3), 100, np.uint8)).save(qdir / m / f"s{k}.png")
            outs[m] = {"face_found": m == "mesh3d", "image": f"images/{m}/s{k}.png"}
        recs.append({"sample": f"s{k}", "image": str(src), "bucket": "30" if k == 0 else "15", "outputs": outs})
    b = {"n": 2, "no_face": 0, "id_dist": 0.3, "pose_mean_abs_yaw": 2.0, "pose_within_10deg": 1.0, "ssim": 0.5}
    pt = lambda u: {"users": u, "fps": 5.0 * u, "rps": 5.0 * u, "p50_ms": 100, "p95_ms": 150, "p99_ms": 160,
                    "requests": 10, "failures": 0}
    return {
        "families": ["scaleway", "mesh3d", "liveportrait", "ffwm"], "served": ["scaleway", "mesh3d"],
        "not_served": {"liveportrait": "not exported (liveportrait_f): run `make export`"},
        "machine": {"cores": 2}, "commands": {"quality": "python -m bench.quality ...", "sweep": "python -m bench.sweep ..."},
        "quality": {"dataset": {"label": "synthetic (test)", "samples": 2, "synthetic": True}, "models": ["scaleway", "mesh3d"],
                    "aggregate": {"input": {"all": b, "15": b, "30": b, "errors": 0},
                                  "scaleway": {"all": {"n": 2, "no_face": 2}, "errors": 0},
                                  "mesh3d": {"all": b, "15": b, "30": b, "errors": 0}},
                    "frechet": {"mesh3d": {"FD-VGG16": {"value": 1.5, "n1": 2, "n2": 2, "dim": 512, "implementation": "in-process"}}},  # noqa: E501
                    "fid": {"value": None, "why": "offline"}, "pose_edits": {}, "records": recs},
        "sweep": {"duration_s": 1, "dynamic_batching": {"scaleway": [pt(1), pt(2)]}, "no_batching": {"scaleway": [pt(1)]},
                  "distributed": {"error": "not run"}, "perf_analyzer": {"why": "absent"}},
    }


def test_render_writes_markdown_html_and_figures(tmp_path):
    md, page = report.render(fake_data(tmp_path), tmp_path)
    text = md.read_text()
    assert "| scaleway |" in text and "not measured: not exported (liveportrait_f)" in text
    assert "ffwm" in text and "favours geometric models" in text and "Command: `python -m bench.quality" in text
    figs = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert "latency_vs_concurrency.png" in figs and "quality_vs_yaw.png" in figs
    assert any(f.startswith("grid_yaw_") for f in figs)
    srcs = re.findall(r"<img src='([^']+)'", page.read_text())
    assert srcs and all((tmp_path / s).is_file() for s in srcs)


def test_strip_dynamic_batching():
    cfg = 'name: "x"\nmax_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 200 }\ninstance_group [ ]\n'
    out = sweep.strip_dynamic_batching(cfg)
    assert "dynamic_batching" not in out and "instance_group" in out and "max_batch_size: 8" in out


def test_page_in_headless_chromium(tmp_path):
    chromium = report.find_chromium(install=True)
    if chromium is None:
        msg = "chromium not found and could not be installed (apt-get install -y chromium, as root)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    _, page = report.render(fake_data(tmp_path), tmp_path)
    dom = report.dump_dom(page, chromium)
    assert "facefront comparison report" in dom
    body = re.search(r"<body([^>]*)>", dom).group(1)
    assert 'data-images-ok="true"' in body, f"images failed to load: {body}"
    assert int(re.search(r'data-images="(\d+)"', body).group(1)) >= 3
    rows = re.findall(r'<tr class="model-row[^"]*" data-model="([^"]+)"', dom)
    assert set(rows) >= {"scaleway", "mesh3d", "liveportrait", "ffwm"}, rows
    assert len(re.findall(r'class="model-row missing"', dom)) == 2


@pytest.mark.server
@pytest.mark.slow
def test_report_end_to_end(tmp_path):
    """The real thing, small: quality on 5 synthetic samples of one photo and fidelity on the served models, then the page."""
    from facefront.repository import exported_families
    if not exported_families()[0]:
        pytest.skip("nothing exported (make export)")
    out = tmp_path / "report"
    p = subprocess.run([sys.executable, "-m", "bench.report", "--out", str(out), "--photos", "obama.jpg",
                        "--skip", "sweep,resources,install"], cwd=REPO, capture_output=True, text=True, timeout=900,
                       env=os.environ)
    assert p.returncode == 0, p.stderr[-2000:]
    data = json.loads((out / "data" / "report_data.json").read_text())
    for m in data["served"]:
        assert m in data["quality"]["aggregate"]
        assert any(r["model"] == m for r in data["fidelity"]["rows"])
    html = (out / "index.html").read_text()
    for fam in ("scaleway", "mesh3d", "liveportrait"):
        assert f"data-model='{fam}'" in html
