"""Each exported ONNX graph against its PyTorch network, as the export measured it: the max abs difference per
output that `python -m export onnx` checks against the family's tolerance (and records in the artefact's
manifest.json) before it keeps a graph. Collects them from model_repository/ into --results and prints a table.

examples:
  python -m bench graphs
  python -m bench graphs --results bench/results/export_fidelity.json
"""
from __future__ import annotations

import json

from facefront.repository import MODEL_REPOSITORY

from . import add_results_argument, header, write_results


def add_arguments(p) -> None:
    add_results_argument(p, "bench/results/export_fidelity.json")


def collect(repository=MODEL_REPOSITORY) -> dict:
    """{leaf/artefact: {outputs: {name: max_abs}, weights, opset, tools, w_sampler?}} for every checked graph."""
    out = {}
    for path in sorted(repository.glob("*/1/manifest.json")):
        for name, a in json.loads(path.read_text()).get("artifacts", {}).items():
            diffs = a.get("ort_vs_torch_max_abs")
            if a.get("ort_vs_torch_max_abs_uint8") is not None:     # uint8 crop in, uint8 face out (scaleway, FFWM)
                diffs = {"image, grey levels": a["ort_vs_torch_max_abs_uint8"]}
            if not isinstance(diffs, dict):
                continue
            row = {"outputs": {k: float(v) for k, v in diffs.items()}, "weights": a.get("weights"),
                   "opset": a.get("opset"), "tools": a.get("tools")}
            if a.get("w_sampler"):
                row["w_sampler"] = a["w_sampler"]
            out[f"{path.parent.parent.name}/{name}"] = row
    return out


def run(args) -> int:
    started = header("graphs")
    graphs = collect()
    if not graphs:
        print("error: no exported graph records an onnxruntime-vs-PyTorch check: run `python -m export onnx all`")
        return 2
    for key, g in graphs.items():
        worst = max(g["outputs"].items(), key=lambda kv: kv[1])
        print(f"{key:48s} max abs {worst[1]:.1e} ({worst[0]}; {len(g['outputs'])} outputs, {g['weights']} weights)")
    write_results(args.results, "graphs", {"graphs": graphs}, started)
    return 0
