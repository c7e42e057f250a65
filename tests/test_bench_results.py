"""The pieces that results files are made of: the header every file carries, the medians lpspeed reports, its
photo variants that no cache can answer, and the export-fidelity collection from manifests."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import bench
from bench import graphs, lpspeed, readme


def test_header_records_machine_date_and_the_command_as_typed(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["bench", "speed", "--model", "ffwm", "--serve"])
    h = bench.header("speed")
    assert h["command"] == "python -m bench speed --model ffwm --serve"
    assert h["machine"]["cpus"] >= 1 and len(h["machine"]["load_avg_at_start"]) == 3 and h["date"][:2] == "20"
    monkeypatch.setattr(sys, "argv", ["/x/bench/speed.py", "--seconds", "3"])     # python -m bench.speed ...
    assert bench.header("speed")["command"] == "python -m bench speed --seconds 3"
    out = tmp_path / "r" / "x.json"
    bench.write_results(out, "speed", {"rows": [1]}, started={"date": "then", "command": "c", "machine": {}})
    assert json.loads(out.read_text()) == {"date": "then", "command": "c", "machine": {}, "rows": [1]}
    bench.write_results(None, "speed", {"rows": [2]})          # no --results: nothing written
    assert json.loads(out.read_text())["rows"] == [1]


def test_spread_is_median_min_max():
    s = lpspeed.spread([5.0, 1.0, 9.0, 2.0])
    assert s == {"median_s": 3.5, "min_s": 1.0, "max_s": 9.0, "n": 4}


def test_photo_variants_are_distinct_and_stay_the_photo():
    import cv2
    vs = lpspeed.photo_variants(3)
    assert len({v for v in vs}) == 3
    imgs = [cv2.imdecode(np.frombuffer(v, np.uint8), cv2.IMREAD_COLOR).astype(int) for v in vs]
    d = [float(np.median(b - a)) for a, b in zip(imgs[:-1], imgs[1:], strict=True)]
    assert d == [1.0, 1.0]                        # one grey level apart: the same photo, different bytes and crops


def test_graphs_collects_every_checked_artefact(tmp_path):
    for leaf, art in (("a_net", {"model.onnx": {"ort_vs_torch_max_abs": {"x": 1e-6, "y": 3e-6}, "weights": "synthetic"}}),
                      ("b_gen", {"model.onnx": {"ort_vs_torch_max_abs_uint8": 1, "weights": "real"}}),
                      ("c_plan", {"model.plan": {"weights": "real"}})):
        d = tmp_path / leaf / "1"
        d.mkdir(parents=True)
        (d / "manifest.json").write_text(json.dumps({"artifacts": art}))
    got = graphs.collect(tmp_path)
    assert set(got) == {"a_net/model.onnx", "b_gen/model.onnx"}
    assert got["a_net/model.onnx"]["outputs"] == {"x": 1e-6, "y": 3e-6}
    assert got["b_gen/model.onnx"]["outputs"] == {"image, grey levels": 1.0}


@pytest.mark.parametrize("name", sorted(p.stem for p in (readme.RESULTS).glob("*.json")))
def test_every_results_file_is_rendered_or_linked_from_the_readme(name):
    from tests.conftest import REPO
    text = (REPO / "README.md").read_text() + "".join(p.read_text() for p in (REPO / "docs").glob("*.md"))
    import inspect
    renderers = inspect.getsource(readme)
    assert f"{name}.json" in renderers or f"{name}.json" in text, f"bench/results/{name}.json is used nowhere"
