"""Translate MediaPipe's small float TFLite face models into ONNX, without TensorFlow.

The TFLite flatbuffer is read with the ``tflite`` package (generated from the TFLite schema) and each
operator is written as the equivalent ONNX operator. Only the operators the BlazeFace detector and the
FaceMesh landmark model use are handled; anything else raises ``UnsupportedModel`` naming the operator.

TFLite is NHWC and ONNX convolutions are NCHW: 4-D activations are kept in NCHW inside the graph and
transposed back only where an NHWC view matters (reshape, graph outputs), so the graph is a plain
conv/pool/add stack that onnxruntime and TensorRT both run without layout shuffles.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NCHW_FROM_NHWC = [0, 3, 1, 2]
NHWC_FROM_NCHW = [0, 2, 3, 1]
_NP_TYPE = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}


class UnsupportedModel(ValueError):
    """The TFLite model uses something this translator does not handle."""


def _opnames() -> dict[int, str]:
    import tflite
    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if isinstance(v, int)}


def _options(op, cls):
    tab = op.BuiltinOptions()
    opt = cls()
    opt.Init(tab.Bytes, tab.Pos)
    return opt


def _same_pads(in_hw, k_hw, s_hw, d_hw=(1, 1)):
    """TensorFlow 'SAME' padding as explicit ONNX pads [top, left, bottom, right]."""
    pads_begin, pads_end = [], []
    for size, k, s, d in zip(in_hw, k_hw, s_hw, d_hw):
        eff = (k - 1) * d + 1
        out = -(-size // s)
        total = max((out - 1) * s + eff - size, 0)
        pads_begin.append(total // 2)
        pads_end.append(total - total // 2)
    return pads_begin + pads_end


def convert(tflite_bytes: bytes, output_names: dict[str, str] | None = None,
            input_name: str = "input", opset: int = 17) -> onnx.ModelProto:
    """Return an ONNX model computing the same function as the TFLite model.

    The ONNX input keeps TFLite's NHWC float layout with a dynamic batch dimension N (TFLite's is 1);
    ``output_names`` renames graph outputs.
    """
    import tflite
    model = tflite.Model.GetRootAsModel(tflite_bytes, 0)
    if model.SubgraphsLength() != 1:
        raise UnsupportedModel("only single-subgraph models are handled")
    g = model.Subgraphs(0)
    names = _opnames()
    output_names = output_names or {}

    nodes: list = []
    inits: list = []
    consts: dict[int, np.ndarray] = {}   # tensor index -> constant value (TFLite layout)
    live: dict[int, tuple[str, str]] = {}  # tensor index -> (onnx name, "nchw" | "plain")
    counter = [0]

    def fresh(stem: str) -> str:
        counter[0] += 1
        return f"{stem}_{counter[0]}"

    def shape(i: int) -> list[int]:
        return [int(x) for x in g.Tensors(i).ShapeAsNumpy()]

    def const_value(i: int) -> np.ndarray | None:
        if i in consts:
            return consts[i]
        t = g.Tensors(i)
        buf = model.Buffers(t.Buffer())
        if buf.DataLength() == 0:
            return None
        if t.Sparsity() is not None:
            raise UnsupportedModel(f"sparse tensor {t.Name().decode()} (DENSIFY) is not handled")
        dtype = _NP_TYPE.get(t.Type())
        if dtype is None:
            raise UnsupportedModel(f"tensor {t.Name().decode()} has TFLite type {t.Type()}")
        arr = buf.DataAsNumpy().view(dtype).reshape(shape(i))
        consts[i] = arr
        return arr

    def add_init(arr: np.ndarray, stem: str) -> str:
        name = fresh(stem)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def act(name: str, fused: int) -> str:
        # ActivationFunctionType: 0 NONE, 1 RELU, 3 RELU6
        if fused == 0:
            return name
        out = fresh("act")
        if fused == 1:
            nodes.append(helper.make_node("Relu", [name], [out]))
        elif fused == 3:
            nodes.append(helper.make_node("Clip", [name, add_init(np.float32(0), "lo"),
                                                   add_init(np.float32(6), "hi")], [out]))
        else:
            raise UnsupportedModel(f"fused activation {fused}")
        return out

    def as_layout(i: int, layout: str) -> str:
        """ONNX name of tensor i in layout "nchw" or "plain" (TFLite's own, NHWC for 4-D)."""
        if i not in live:
            c = const_value(i)
            if c is None:
                raise UnsupportedModel(f"tensor {g.Tensors(i).Name().decode()} used before defined")
            c = c.astype(np.float32) if c.dtype == np.float16 else c
            if layout == "nchw" and c.ndim == 4:
                c = c.transpose(NCHW_FROM_NHWC)
            elif layout == "nchw" and c.ndim in (1, 3):
                # broadcast over channels: [C] or [1,1,C] -> [C,1,1]
                c = c.reshape(-1, 1, 1)
            return add_init(c, "const")
        name, have = live[i]
        if (have == "nchw") == (layout == "nchw") or len(shape(i)) != 4:
            return name
        out = fresh("t")
        perm = NCHW_FROM_NHWC if layout == "nchw" else NHWC_FROM_NCHW
        nodes.append(helper.make_node("Transpose", [name], [out], perm=perm))
        return out

    # graph input: NHWC float, transposed once to NCHW
    (gin,) = g.InputsAsNumpy()
    in_shape = shape(gin)
    nodes.append(helper.make_node("Transpose", [input_name], ["input_nchw"], perm=NCHW_FROM_NHWC))
    live[gin] = ("input_nchw", "nchw")

    for k in range(g.OperatorsLength()):
        op = g.Operators(k)
        oc = model.OperatorCodes(op.OpcodeIndex())
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        opname = names.get(code, str(code))
        ins = [int(x) for x in op.InputsAsNumpy()]
        (out_i,) = [int(x) for x in op.OutputsAsNumpy()]
        out = fresh(opname.lower())

        if opname == "DEQUANTIZE":
            # float16 weights stored compactly: fold to a float32 constant
            c = const_value(ins[0])
            if c is None:
                raise UnsupportedModel("DEQUANTIZE of a non-constant tensor")
            consts[out_i] = c.astype(np.float32)
            continue
        if opname in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            depthwise = opname == "DEPTHWISE_CONV_2D"
            o = _options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
            w = const_value(ins[1]).astype(np.float32)
            b = const_value(ins[2]).astype(np.float32) if len(ins) > 2 and ins[2] >= 0 else None
            x_shape = shape(ins[0])
            if depthwise:   # [1, KH, KW, C*m] -> [C*m, 1, KH, KW]
                w_onnx = w.transpose(3, 0, 1, 2)
                group = x_shape[3]
            else:           # [O, KH, KW, I] -> [O, I, KH, KW]
                w_onnx = w.transpose(0, 3, 1, 2)
                group = 1
            kh, kw = w.shape[1], w.shape[2]
            strides = [o.StrideH(), o.StrideW()]
            dil = [o.DilationHFactor(), o.DilationWFactor()]
            pads = (_same_pads(x_shape[1:3], (kh, kw), strides, dil) if o.Padding() == 0 else [0, 0, 0, 0])
            inputs = [as_layout(ins[0], "nchw"), add_init(w_onnx, "w")]
            if b is not None:
                inputs.append(add_init(b, "b"))
            conv_out = fresh("conv")
            nodes.append(helper.make_node("Conv", inputs, [conv_out], kernel_shape=[kh, kw], strides=strides,
                                          dilations=dil, pads=pads, group=group))
            live[out_i] = (act(conv_out, o.FusedActivationFunction()), "nchw")
            continue
        if opname in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            o = _options(op, tflite.Pool2DOptions)
            k_hw = [o.FilterHeight(), o.FilterWidth()]
            strides = [o.StrideH(), o.StrideW()]
            pads = _same_pads(shape(ins[0])[1:3], k_hw, strides) if o.Padding() == 0 else [0, 0, 0, 0]
            onnx_op = "MaxPool" if opname == "MAX_POOL_2D" else "AveragePool"
            extra = {"count_include_pad": 0} if onnx_op == "AveragePool" else {}
            nodes.append(helper.make_node(onnx_op, [as_layout(ins[0], "nchw")], [out], kernel_shape=k_hw,
                                          strides=strides, pads=pads, **extra))
            live[out_i] = (act(out, o.FusedActivationFunction()), "nchw")
            continue
        if opname in ("ADD", "MUL"):
            o = _options(op, tflite.AddOptions if opname == "ADD" else tflite.MulOptions)
            layout = "nchw" if len(shape(out_i)) == 4 else "plain"
            nodes.append(helper.make_node(opname.capitalize(), [as_layout(i, layout) for i in ins], [out]))
            live[out_i] = (act(out, o.FusedActivationFunction()), layout)
            continue
        if opname in ("RELU", "LOGISTIC", "RELU6"):
            layout = live[ins[0]][1]
            if opname == "RELU6":
                nodes.append(helper.make_node("Clip", [live[ins[0]][0], add_init(np.float32(0), "lo"),
                                                       add_init(np.float32(6), "hi")], [out]))
            else:
                nodes.append(helper.make_node({"RELU": "Relu", "LOGISTIC": "Sigmoid"}[opname],
                                              [live[ins[0]][0]], [out]))
            live[out_i] = (out, layout)
            continue
        if opname == "PRELU":
            layout = live[ins[0]][1]
            nodes.append(helper.make_node("PRelu", [live[ins[0]][0], as_layout(ins[1], layout)], [out]))
            live[out_i] = (out, layout)
            continue
        if opname == "PAD":
            p = const_value(ins[1]).astype(np.int64)   # [[before, after]] per NHWC axis
            layout = "nchw" if len(shape(ins[0])) == 4 else "plain"
            if layout == "nchw":
                p = p[NCHW_FROM_NHWC]
            pads = np.concatenate([p[:, 0], p[:, 1]])
            nodes.append(helper.make_node("Pad", [as_layout(ins[0], layout), add_init(pads, "pads")], [out]))
            live[out_i] = (out, layout)
            continue
        if opname == "RESHAPE":
            target = np.array(shape(out_i), dtype=np.int64)
            target[0] = 0   # ONNX: copy the (dynamic) batch dimension
            nodes.append(helper.make_node("Reshape", [as_layout(ins[0], "plain"), add_init(target, "shape")],
                                          [out]))
            live[out_i] = (out, "plain")   # a 4-D "plain" tensor is NHWC; as_layout transposes on demand
            continue
        if opname == "CONCATENATION":
            o = _options(op, tflite.ConcatenationOptions)
            rank = len(shape(out_i))
            axis = o.Axis() % rank
            layout = "nchw" if rank == 4 else "plain"
            if layout == "nchw":
                axis = NCHW_FROM_NHWC.index(axis)
            nodes.append(helper.make_node("Concat", [as_layout(i, layout) for i in ins], [out], axis=axis))
            live[out_i] = (act(out, o.FusedActivationFunction()), layout)
            continue
        raise UnsupportedModel(f"TFLite operator {opname} is not handled")

    outputs = []
    for i in g.OutputsAsNumpy():
        i = int(i)
        tname = g.Tensors(i).Name().decode()
        final = output_names.get(tname, tname)
        nodes.append(helper.make_node("Identity", [as_layout(i, "plain")],
                                      [final]))
        outputs.append(helper.make_tensor_value_info(final, TensorProto.FLOAT, ["N"] + shape(i)[1:]))

    graph = helper.make_graph(nodes, "tflite_translated",
                              [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N"] + in_shape[1:])],
                              outputs, inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                          producer_name="facefront.face.tflite_onnx")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def convert_file(src: str | Path, dst: str | Path, **kw) -> Path:
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    model = convert(Path(src).read_bytes(), **kw)
    tmp = dst.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(dst)
    return dst
