"""AniPortrait ONNX export (reduced configuration of the same code): one graph per network, TensorRT-10-native,
equal to PyTorch under onnxruntime, with the bank and reference_rows as real graph inputs/outputs."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from export.aniportrait import export_spec
from export.aniportrait.config import REDUCED
from export.aniportrait.networks import construct
from export.common import onnx_tools, trt_ops

torch.set_num_threads(2)
SIZE = 64


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    lines: list[str] = []
    paths = export_spec.export(repo, cfg=REDUCED, size=SIZE, log=lines.append)
    return repo, paths, lines


def test_one_graph_per_network_with_manifest(exported):
    repo, paths, lines = exported
    assert [p.parent.parent.name for p in paths] == [f"aniportrait_{g}" for g in export_spec.GRAPHS]
    assert any("SYNTHETIC" in line for line in lines)
    for p in paths:
        assert p.name == "model.onnx" and p.parent.name == "1"
        entry = json.loads((p.parent / "manifest.json").read_text())["artifacts"]["model.onnx"]
        assert entry["synthetic_weights"] and entry["config"] == "reduced"
        assert max(entry["ort_vs_torch_max_abs"]) < 5e-5, (p, entry["ort_vs_torch_max_abs"])
        assert entry["trt_plan"]["precision"] == "fp16"
    # serving configs are not this step's job
    assert not list(repo.rglob("config.pbtxt"))


def test_graphs_are_tensorrt_native_with_dynamic_batch(exported):
    _, paths, _ = exported
    for p in paths:
        assert trt_ops.check(p) == [], p
        model = onnx.load(str(p), load_external_data=False)
        for vi in list(model.graph.input) + list(model.graph.output):
            assert vi.type.tensor_type.shape.dim[0].dim_param == "batch", (p, vi.name)


def test_unet_graph_interfaces(exported):
    repo, _, _ = exported
    names = construct("reference_unet", REDUCED).bank_names()
    ref = onnx.load(str(repo / "aniportrait_reference_unet/1/model.onnx"), load_external_data=False)
    assert [o.name for o in ref.graph.output] == [f"bank_{n}" for n in names]
    den = onnx.load(str(repo / "aniportrait_denoising_unet/1/model.onnx"), load_external_data=False)
    assert [i.name for i in den.graph.input] == (["sample", "timestep", "encoder_hidden_states"]
                                                 + [f"fea_{i}" for i in range(5)] + [f"bank_{n}" for n in names]
                                                 + ["reference_rows"])


def test_denoising_graph_reads_bank_only_for_reference_rows(exported):
    """reference_rows is live in the graph (not folded to a constant): flipping row 0 to 1 changes row 0 only."""
    repo, _, _ = exported
    names = construct("reference_unet", REDUCED).bank_names()
    inputs = export_spec.example_inputs("denoising_unet", REDUCED, SIZE, names, seed=3)
    sess = onnx_tools.session(repo / "aniportrait_denoising_unet/1/model.onnx", threads=2)
    a = sess.run(None, inputs)[0]
    b = sess.run(None, {**inputs, "reference_rows": np.array([1.0, 1.0], np.float32)})[0]
    assert np.abs(a[0] - b[0]).max() > 1e-3 and np.abs(a[1] - b[1]).max() < 1e-5
    # batch 1 through the dynamic axis equals row 1 of the batch-2 call
    one = sess.run(None, {k: v[1:] for k, v in inputs.items()})[0]
    assert np.abs(one[0] - a[1]).max() < 1e-4


def test_export_without_weights_or_request_is_skipped_in_one_line(tmp_path):
    lines: list[str] = []
    assert export_spec.export(tmp_path, log=lines.append) == []
    assert len(lines) == 1 and "skipped" in lines[0]
    assert not any(tmp_path.iterdir())
