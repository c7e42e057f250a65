"""The static TensorRT-10 check must catch what TensorRT can't parse natively, and pass what it can."""
from onnx import TensorProto, helper

from export.common import trt_ops


def _model(node, inputs, outputs, opset=17):
    g = helper.make_graph([node], "g", inputs, outputs)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _t(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_gridsample_4d_ok_5d_rejected():
    ok = _model(helper.make_node("GridSample", ["x", "g"], ["y"]), [_t("x", [1, 3, 8, 8]), _t("g", [1, 4, 4, 2])],
                [_t("y", [1, 3, 4, 4])])
    assert trt_ops.check(ok) == []
    bad = _model(helper.make_node("GridSample", ["x", "g"], ["y"]),
                 [_t("x", [1, 3, 4, 8, 8]), _t("g", [1, 2, 4, 4, 3])], [_t("y", [1, 3, 2, 4, 4])], opset=20)
    problems = trt_ops.check(bad)
    assert len(problems) == 1 and "5-D" in problems[0].reason


def test_unsupported_op_custom_domain_and_opset():
    m = _model(helper.make_node("Unique", ["x"], ["y"]), [_t("x", [4])], [_t("y", [4])])
    assert any(p.op == "Unique" for p in trt_ops.check(m))
    m = _model(helper.make_node("Relu", ["x"], ["y"]), [_t("x", [4])], [_t("y", [4])], opset=21)
    assert any(p.op == "opset" for p in trt_ops.check(m))
    node = helper.make_node("GridSample3D", ["x"], ["y"], domain="com.example")
    m = helper.make_model(helper.make_graph([node], "g", [_t("x", [4])], [_t("y", [4])]),
                          opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    assert any("plugin" in p.reason for p in trt_ops.check(m))


def test_resize_cubic_rejected():
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], mode="cubic")
    scales = helper.make_tensor("s", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    g = helper.make_graph([node], "g", [_t("x", [1, 1, 4, 4])], [_t("y", [1, 1, 8, 8])], initializer=[scales])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    assert any("cubic" in p.reason for p in trt_ops.check(m))
