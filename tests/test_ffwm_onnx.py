"""The exported ONNX graph vs PyTorch with onnxruntime (see export/ffwm/onnx_export.py for why two weight sets)."""
import onnx
import pytest
import torch

from export.common import trt_ops
from export.ffwm import onnx_export

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return onnx_export.check(tmp_path_factory.mktemp("ffwm_onnx"))


def test_served_graph_rule_v2_weights(result):
    r = result["served"]
    assert r["batch"] == 2  # exported at batch 1: the batch axis is dynamic
    assert r["max_abs_outside_band"] == 0.0, r  # saturated 0/1 output: every confident pixel identical
    assert r["n_differ"] <= r["n_band"] * 0.05, r  # flips only where |logit| is near 0


def test_reduced_gain_graph_matches_closely(result):
    r = result["reduced_gain"]
    assert r["frac_unsaturated"] > 0.9, r  # the check is only meaningful when the sigmoid is not saturated
    assert r["rms_between_images"] > 1e-3, r  # and the output depends on the input
    assert r["max_abs"] < 1e-4, r


def test_graph_interface_and_ops(result):
    model = onnx.load(str(result["served"]["path"]), load_external_data=False)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 128, 128]
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 17
    ops = {n.op_type for n in model.graph.node}
    assert "GridSample" in ops and "BatchNormalization" not in ops
    assert trt_ops.check(model) == []
