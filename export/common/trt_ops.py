"""Static check that an ONNX graph uses only operators TensorRT 10 parses natively (no plugins).

Facts from the onnx-tensorrt operator support matrix for TensorRT 10 (docs/operators.md, release 10.x): the
supported operator names, the opset range 9..20, and the restrictions that matter for our graphs.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx

OPSET_RANGE = (9, 20)

SUPPORTED = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast CastLike Ceil Celu
Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace DequantizeLinear Div
Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gelu Gemm
GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization GRU HardSigmoid
HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less
LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization
Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear
RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum
ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize
ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign
Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh ThresholdedRelu Tile
TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

# rank restrictions from the matrix: GridSample 4-D only; Conv/ConvTranspose/pooling 2-D or 3-D spatial
MAX_RANK = {"GridSample": (4, 4), "Conv": (4, 5), "ConvTranspose": (4, 5), "MaxPool": (4, 5), "AveragePool": (4, 5)}
RESIZE_MODES = {"nearest", "linear"}


@dataclass
class Problem:
    node: str
    op: str
    reason: str

    def __str__(self):
        return f"{self.op} ({self.node}): {self.reason}"


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            ranks[vi.name] = len(t.shape.dim)
    for init in inferred.graph.initializer:
        ranks[init.name] = len(init.dims)
    return ranks


def _nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(attr.g)
            for g in attr.graphs:
                yield from _nodes(g)


def check(model_or_path) -> list[Problem]:
    """Problems that would stop TensorRT 10 parsing the graph without a plugin; empty list = OK."""
    model = onnx.load(str(model_or_path), load_external_data=False) if isinstance(model_or_path, (str, Path)) \
        else model_or_path
    problems: list[Problem] = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not OPSET_RANGE[0] <= opset <= OPSET_RANGE[1]:
        problems.append(Problem("<model>", "opset", f"opset {opset} outside TensorRT 10's range {OPSET_RANGE}"))
    ranks = _ranks(model)
    for node in _nodes(model.graph):
        name = node.name or node.output[0]
        if node.domain not in ("", "ai.onnx"):
            problems.append(Problem(name, f"{node.domain}::{node.op_type}", "custom domain needs a plugin"))
            continue
        if node.op_type not in SUPPORTED:
            problems.append(Problem(name, node.op_type, "not supported by TensorRT 10's ONNX parser"))
            continue
        if node.op_type in MAX_RANK and node.input:
            r = ranks.get(node.input[0])
            lo, hi = MAX_RANK[node.op_type]
            if r is None:
                problems.append(Problem(name, node.op_type, "input rank unknown; cannot prove it is supported"))
            elif not lo <= r <= hi:
                problems.append(Problem(name, node.op_type, f"{r}-D input; TensorRT 10 supports rank {lo}..{hi}"))
        if node.op_type == "Resize":
            mode = next((a.s.decode() for a in node.attribute if a.name == "mode"), "nearest")
            if mode not in RESIZE_MODES:
                problems.append(Problem(name, node.op_type, f"mode {mode!r}; TensorRT supports nearest/linear"))
    return problems


def assert_supported(path) -> None:
    problems = check(path)
    if problems:
        raise ValueError(f"{path}: not TensorRT-10-native:\n  " + "\n  ".join(map(str, problems)))
