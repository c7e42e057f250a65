"""Build a TensorRT engine (model.plan) from an exported model.onnx: fp16 or fp32, batch profile 1..N.

The export's manifest can pin precision where measurements say fp16 is not safe: `tensorrt_precision: "fp32"` keeps
the whole network fp32 (LivePortrait's M), `tensorrt_fp32_layers` names layers (ONNX node names, which TensorRT keeps
as layer names) built in fp32 inside an fp16 engine with precision constraints obeyed (FSRT's positional
encodings). The engine's manifest records what was asked, what was built and why.

Runs where TensorRT 10 is installed (the NGC tritonserver image, see Dockerfile). Elsewhere it stops with a clear
message; the ONNX graph is still checked statically (`trt_ops`) so a graph TensorRT cannot parse is caught here.
"""
from __future__ import annotations

from pathlib import Path

from facefront import artifact

from . import trt_ops


class TensorRTUnavailable(RuntimeError):
    pass


def _tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise TensorRTUnavailable(
            "TensorRT is not installed on this machine (it ships in the NGC image nvcr.io/nvidia/tritonserver:"
            "24.10-py3; build there: `docker build -t facefront-gpu .` or `make trt` inside it)") from None
    return trt


def build(version_dir: Path, precision: str = "fp16", max_batch: int = 8, opt_batch: int | None = None,
          workspace_gib: float = 4.0) -> Path:
    """model.onnx in `version_dir` -> model.plan beside it, with a manifest naming the ONNX it came from."""
    version_dir = Path(version_dir)
    onnx_path = version_dir / "model.onnx"
    src = artifact.verify(version_dir, "model.onnx")
    precision_plan(src, precision)   # a bad precision fails before TensorRT is even imported
    trt_ops.assert_supported(onnx_path)
    trt = _tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    plan_precision = precision_plan(src, precision)
    if plan_precision["built"] == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
        pinned = set(plan_precision["fp32_layers"])
        if pinned:
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
            found = set()
            for i in range(network.num_layers):
                layer = network.get_layer(i)
                if layer.name in pinned:
                    layer.precision = trt.float32
                    for k in range(layer.num_outputs):
                        layer.set_output_type(k, trt.float32)
                    found.add(layer.name)
            plan_precision["fp32_layers_missing"] = sorted(pinned - found)
    profile = builder.create_optimization_profile()
    opt = opt_batch or max(1, max_batch // 2)
    ranges = src.get("tensorrt_dim_ranges") or {}
    for i in range(network.num_inputs):
        t = network.get_input(i)
        lo, mid, hi = profile_shapes(t.name, tuple(t.shape), (1, opt, max_batch), ranges.get(t.name, {}))
        profile.set_shape(t.name, lo, mid, hi)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
    out = version_dir / "model.plan"
    tmp = out.with_suffix(".plan.tmp")
    tmp.write_bytes(bytes(plan))
    tmp.replace(out)
    artifact.write(out, model=src["model"], network=src["network"], weights=src["weights"],
                   weights_sha256=src["weights_sha256"], opset=src.get("opset"),
                   extra={"precision": plan_precision["built"], "precision_requested": precision,
                          "precision_reason": plan_precision["reason"],
                          "fp32_layers": len(plan_precision["fp32_layers"]),
                          "fp32_layers_missing": plan_precision.get("fp32_layers_missing", []),
                          "max_batch": max_batch, "source_onnx_sha256": src["sha256"]})
    return out


def profile_shapes(name: str, shape: tuple, batch: tuple[int, int, int], dim_ranges: dict) -> tuple:
    """(min, opt, max) shapes of one input: the batch axis over `batch`, any other dynamic axis over the range its
    export declared in the manifest (`tensorrt_dim_ranges: {input: {axis: [min, opt, max]}}`, e.g. FSRT's decoder
    pixels); a dynamic axis without a declared range is an error."""
    shapes = [[b] for b in batch]
    for axis, d in enumerate(shape[1:], start=1):
        if d >= 0:
            for s in shapes:
                s.append(d)
            continue
        r = dim_ranges.get(str(axis))
        if not r or len(r) != 3:
            raise RuntimeError(f"{name}: axis {axis} of {shape} is dynamic but its export declares no range "
                               f"(tensorrt_dim_ranges in the manifest); only the batch axis may be dynamic otherwise")
        for s, v in zip(shapes, r):
            s.append(int(v))
    return tuple(tuple(s) for s in shapes)


def precision_plan(onnx_entry: dict, requested: str) -> dict:
    """What to build from the ONNX manifest entry: {"built": fp16|fp32, "fp32_layers": [...], "reason": str}."""
    if requested not in ("fp16", "fp32"):
        raise ValueError(f"precision must be fp16 or fp32, not {requested!r}")
    pinned = onnx_entry.get("tensorrt_precision")
    if requested == "fp16" and pinned == "fp32":
        return {"built": "fp32", "fp32_layers": [],
                "reason": f"network pinned to fp32 by its export: {onnx_entry.get('tensorrt_precision_reason', '')}"}
    layers = list(onnx_entry.get("tensorrt_fp32_layers") or []) if requested == "fp16" else []
    reason = f"{len(layers)} layers pinned to fp32 by the export" if layers else "as requested"
    return {"built": requested, "fp32_layers": layers, "reason": reason}
