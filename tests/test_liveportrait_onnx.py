"""LivePortrait ONNX graphs vs PyTorch with onnxruntime, and TensorRT-10-native ops only.

F, M and S are exported at full size. W and G are exported with the same classes at reduced widths and spatial
size (about 1.3 TFLOP per full-size frame is minutes on 2 cores); set LIVEPORTRAIT_FULL_ONNX=1 to also export and
check the full-size W and G (export_all).
"""
import os

import numpy as np
import onnx
import pytest
import torch

from export.common import trt_ops
from export.common.synthetic import fill_
from export.liveportrait import export_spec as es
from export.liveportrait.spade import SpadeGenerator, fold_spectral_norm
from export.liveportrait.warping import WarpingNetwork

torch.set_num_threads(2)

SMALL = {
    "W": (lambda: WarpingNetwork(num_kp=21, block_expansion=8, max_features=512, num_down_blocks=2, reshape_channel=32,
                                 dense_motion_params=dict(block_expansion=4, max_features=32, num_blocks=5,
                                                          reshape_depth=16, compress=1)),
          {"feature_3d": (32, 16, 32, 32), "kp_source": (21, 3), "kp_driving": (21, 3)}),
    "G": (lambda: SpadeGenerator(upscale=2, block_expansion=8, max_features=32, num_down_blocks=2),
          {"feature": (32, 16, 16)}),
}


def small_inputs(net, batch, seed):
    rng = np.random.default_rng(seed)
    out = {k: rng.standard_normal((batch, *s)).astype(np.float32) for k, s in SMALL[net][1].items()}
    if net == "W":
        out["kp_source"] = rng.uniform(-0.8, 0.8, out["kp_source"].shape).astype(np.float32)
        out["kp_driving"] = (out["kp_source"] + rng.normal(0, 0.05, out["kp_source"].shape)).astype(np.float32)
    return out


def small_module(net, sampler=es.TRT_SAMPLER):
    m = fill_(SMALL[net][0]())
    if net == "G":
        fold_spectral_norm(m)
    else:
        m.set_sampler(sampler)
    return es.SPECS[net].wrap(m).eval()


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """{net: (path, torch module, inputs)}; every graph was traced at batch 2 and is run at another batch size."""
    d = tmp_path_factory.mktemp("liveportrait_onnx")
    out = {}
    for net in ("F", "M", "S"):
        m = es.graph_module(net)
        batch = 1 if net == "F" else 3  # F: ~45 GFLOP per image
        out[net] = (es.export_one(net, d / f"{net}.onnx", module=m), m, es.example_inputs(net, batch=batch, seed=1))
    for net in ("W", "G"):
        m = small_module(net)
        p = es.export_one(net, d / f"{net}.onnx", module=m, example=small_inputs(net, 2, 0))
        # W's TensorRT graph samples with planar_4d; compare it with the upstream op (5-D grid_sample) in PyTorch
        out[net] = (p, small_module(net, "grid_sample_5d") if net == "W" else m, small_inputs(net, 1 if net == "W" else 3, 1))
    m = small_module("W", "grid_sample_5d")
    p = es.export_one("W", d / "W_onnxruntime.onnx", module=m, sampler="grid_sample_5d", example=small_inputs("W", 2, 0))
    out["W_onnxruntime"] = (p, m, small_inputs("W", 1, 1))
    return out


TOL = {"F": 1e-4, "M": 1e-4, "W": 1e-4, "G": 1e-4, "S": 1e-5}


@pytest.mark.slow
@pytest.mark.parametrize("net", ["F", "M", "W", "G", "S"])
def test_onnxruntime_matches_pytorch(graphs, net):
    path, module, inputs = graphs[net]
    diffs = es.compare(net, path, module, inputs)
    assert set(diffs) == set(es.SPECS[net].outputs)
    assert max(diffs.values()) < TOL[net], diffs


@pytest.mark.slow
@pytest.mark.parametrize("net", ["F", "M", "W", "G", "S"])
def test_graph_interface_and_tensorrt_ops(graphs, net):
    model = onnx.load(str(graphs[net][0]), load_external_data=False)
    assert [i.name for i in model.graph.input] == list(es.SPECS[net].inputs)
    assert [o.name for o in model.graph.output] == list(es.SPECS[net].outputs)
    for vi in list(model.graph.input) + list(model.graph.output):
        assert vi.type.tensor_type.shape.dim[0].dim_param == "batch", vi.name
    assert trt_ops.check(model) == [], net
    ops = {n.op_type for n in model.graph.node}
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 17
    if net == "W":   # planar_4d: 4-D GridSample over the depth slices only (the 5-D op would fail trt_ops.check)
        assert "GridSample" in ops and all(len(vi.type.tensor_type.shape.dim) <= 4 for vi in model.graph.value_info
                                           if any(n.op_type == "GridSample" and vi.name in n.output
                                                  for n in model.graph.node))
    if net == "G":  # spectral norm folded: no power-iteration arithmetic left in the graph
        assert "ReduceL2" not in ops and "InstanceNormalization" in ops


@pytest.mark.slow
def test_onnxruntime_target_keeps_5d_grid_sample(graphs):
    path, module, inputs = graphs["W_onnxruntime"]
    model = onnx.load(str(path), load_external_data=False)
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 20
    assert "GridSample" in {n.op_type for n in model.graph.node}
    assert any("5-D input" in str(p) for p in trt_ops.check(model))  # what the TensorRT target avoids
    assert max(es.compare("W", path, module, inputs).values()) < TOL["W"]


@pytest.mark.skipif(os.environ.get("LIVEPORTRAIT_FULL_ONNX") != "1", reason="full-size W/G export: set LIVEPORTRAIT_FULL_ONNX=1")
def test_export_all_full_size(tmp_path):
    paths = es.export_all(tmp_path)
    assert sorted(paths) == ["F", "G", "M", "S", "W"]
    for net, path in paths.items():
        assert es.tensorrt_problems(path) == [], net
        reference = es.graph_module(net, sampler="grid_sample_5d")  # W: the upstream op in PyTorch
        diffs = es.compare(net, path, reference, es.example_inputs(net, batch=1, seed=2))
        assert max(diffs.values()) < TOL[net], (net, diffs)
