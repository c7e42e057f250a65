"""ONNX graphs of LivePortrait's five networks: names, example inputs, and export with an onnxruntime check.

Every graph has a dynamic batch axis and G's spectral norm folded into plain weights. Two targets differ only in
how W samples its 3-D volumes (see sampling.py):
* "tensorrt": `planar_4d`, opset 17: no 5-D GridSample, which TensorRT 10 cannot run without a plugin. Measured on
  an H200 (README, bench/results/gpu_liveportrait_samplers_h200.json): in fp16 `gather_8` loses 4 dB against the 5-D
  op (its voxel coordinates lose precision in half), `planar_4d` 2 dB less than the native op, at the same speed;
  so the TensorRT graph samples with planar_4d, and M is built in fp32 (TENSORRT_PRECISION: its activations
  overflow fp16 with these weights);
* "onnxruntime": the native 5-D GridSample (opset 20), about twice as fast as any decomposition on CPU.
`tensorrt_problems()` lists anything in a graph that TensorRT 10's ONNX parser would not take natively.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..common import onnx_tools
from . import LEAVES
from .reference import build
from .spade import fold_spectral_norm

OPSET = onnx_tools.DEFAULT_OPSET          # 17: LayerNormalization, 4-D GridSample
OPSET_5D = 20                             # GridSample on 5-D inputs
TRT_SAMPLER = "planar_4d"
# networks whose TensorRT engine stays fp32 whatever precision the build asks for, and why (trt_build reads it from
# the ONNX manifest and records it in the engine's)
TENSORRT_PRECISION = {"M": ("fp32", "M's activations overflow fp16 with the synthetic weights (measured on the H200)")}
SAMPLER_FOR_TARGET = {"tensorrt": TRT_SAMPLER, "onnxruntime": "grid_sample_5d"}


class _MotionGraph(nn.Module):
    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, image):
        o = self.m(image)
        return o["pitch"], o["yaw"], o["roll"], o["t"], o["exp"], o["scale"], o["kp"]


class _WarpGraph(nn.Module):
    def __init__(self, w: nn.Module):
        super().__init__()
        self.w = w

    def forward(self, feature_3d, kp_source, kp_driving):
        o = self.w(feature_3d, kp_driving=kp_driving, kp_source=kp_source)
        return o["occlusion_map"], o["deformation"], o["out"]


@dataclass(frozen=True)
class GraphSpec:
    net: str
    inputs: dict[str, tuple[int, ...]]     # name -> shape without the batch axis
    outputs: tuple[str, ...]
    wrap: Callable[[nn.Module], nn.Module]


SPECS: dict[str, GraphSpec] = {
    "F": GraphSpec("F", {"source_image": (3, 256, 256)}, ("feature_3d",), lambda m: m),
    "M": GraphSpec("M", {"source_image": (3, 256, 256)}, ("pitch", "yaw", "roll", "t", "exp", "scale", "kp"),
                   _MotionGraph),
    "W": GraphSpec("W", {"feature_3d": (32, 16, 64, 64), "kp_source": (21, 3), "kp_driving": (21, 3)},
                   ("occlusion_map", "deformation", "out"), _WarpGraph),
    "G": GraphSpec("G", {"feature": (256, 64, 64)}, ("image",), lambda m: m),
    "S": GraphSpec("S", {"stitching_in": (126,), "lip_in": (65,), "eye_in": (66,)},
                   ("stitching_out", "lip_out", "eye_out"), lambda m: m),
}


def example_inputs(net: str, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Plausible inputs: images in [0, 1], keypoints around the unit cube, features ~N(0, 1)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in SPECS[net].inputs.items():
        if name == "source_image":
            a = rng.random((batch, *shape))
        elif name.startswith("kp_"):
            a = rng.uniform(-0.8, 0.8, (batch, *shape))
        elif name in ("lip_in", "eye_in"):
            a = np.concatenate([rng.uniform(-0.8, 0.8, (batch, 63)), rng.uniform(0, 0.5, (batch, shape[0] - 63))], 1)
        else:
            a = rng.standard_normal((batch, *shape))
        out[name] = a.astype(np.float32)
    if net == "W":  # driving keypoints near the source ones, as a re-pose produces
        out["kp_driving"] = (out["kp_source"] + rng.normal(0, 0.05, out["kp_source"].shape)).astype(np.float32)
    return out


def graph_module(net: str, weights_dir: Path | None = None, sampler: str = TRT_SAMPLER) -> nn.Module:
    """The eval-mode module that is exported for `net` (synthetic weights when `weights_dir` is None)."""
    m = build(net, weights_dir)
    if net == "G":
        fold_spectral_norm(m)
    if net == "W":
        m.set_sampler(sampler)
    return SPECS[net].wrap(m).eval()


def export_one(net: str, path: Path, module: nn.Module | None = None, weights_dir: Path | None = None,
               sampler: str = TRT_SAMPLER, example: dict[str, np.ndarray] | None = None) -> Path:
    """Export `net` (or the given wrapped `module`, traced on `example`) to `path`, batch axis dynamic."""
    spec = SPECS[net]
    module = module if module is not None else graph_module(net, weights_dir, sampler)
    ex = example if example is not None else example_inputs(net, batch=2)
    opset = OPSET_5D if (net == "W" and sampler == "grid_sample_5d") else OPSET
    return onnx_tools.export(module, [torch.from_numpy(v) for v in ex.values()], Path(path), list(spec.inputs),
                             list(spec.outputs), opset=opset)


def export_all(out_dir: Path, weights_dir: Path | None = None, target: str = "tensorrt") -> dict[str, Path]:
    """Write `<out_dir>/liveportrait_<net>.onnx` for F, M, W, G, S; return {net: path}.
    `target` "tensorrt" (default: plugin-free graphs) or "onnxruntime" (W keeps the native 5-D GridSample)."""
    if target not in SAMPLER_FOR_TARGET:
        raise ValueError(f"target must be one of {', '.join(SAMPLER_FOR_TARGET)}, got {target!r}")
    out_dir = Path(out_dir)
    return {net: export_one(net, out_dir / f"liveportrait_{net}.onnx", weights_dir=weights_dir,
                            sampler=SAMPLER_FOR_TARGET[target]) for net in SPECS}


def compare(net: str, path: Path, module: nn.Module, inputs: dict[str, np.ndarray], threads: int = 2) -> dict[str, float]:
    """{output name: max |ORT - PyTorch|} for graph `path` of network `net` on `inputs`."""
    got = onnx_tools.session(path, threads).run(None, inputs)
    with torch.no_grad():
        ref = module(*[torch.from_numpy(v) for v in inputs.values()])
    ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    return {name: float(np.abs(g - r.numpy()).max()) for name, g, r in zip(SPECS[net].outputs, got, ref)}


def tensorrt_problems(path: Path) -> list[str]:
    from ..common import trt_ops
    return [str(p) for p in trt_ops.check(path)]


# model_repository folder and file of each network. S (the stitching/retargeting MLPs, ~0.1 MFLOP) is not a leaf:
# the liveportrait_keypoints python stage runs it with onnxruntime in both flavours.
REPOSITORY_FOLDERS = {**LEAVES, "S": "liveportrait_keypoints"}
REPOSITORY_FILES = {"S": "stitching.onnx"}   # others: model.onnx (TensorRT-safe graph, the GPU flavour's source)
# CPU flavour: leaves whose configs/cpu.pbtxt says `backend: "torch"` also get model.pt, a TorchScript trace of the
# same module (W with the native 5-D grid_sample). Chosen per network by `python -m bench lpspeed`.
TORCH_ON_CPU = ("F", "M", "W")
# CPU leaves that also get model_bf16.pt: a TorchScript trace with bf16 regions and fp32 islands (casts in the graph,
# run without autocast; a config selects it with the parameter `bf16_artifact`). W: whole-network autocast costs the
# LivePortrait image 3.3 dB too many; with only the hourglass and mask conv in bf16 it keeps ~50 dB.
BF16_REGIONS = ("W",)
# max |onnxruntime - PyTorch| an export may show on any output (seen: <= 6.4e-6, W's rewritten warp the largest);
# beyond it the graph is wrong and the export fails
TOLERANCE = 1e-3


def fix_output_dims(path: Path, module: nn.Module, example: dict[str, np.ndarray]) -> None:
    """Write the outputs' static non-batch dims into the graph (the tracer leaves symbolic names for W's and G's
    spatial dims); Triton configs and TensorRT profiles then see the real shapes."""
    import onnx
    with torch.no_grad():
        ref = module(*[torch.from_numpy(v) for v in example.values()])
    ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    model = onnx.load(str(path))
    for out, r in zip(model.graph.output, ref):
        for d, n in zip(list(out.type.tensor_type.shape.dim)[1:], r.shape[1:]):
            d.Clear()
            d.dim_value = int(n)
    onnx.checker.check_model(model)
    tmp = path.with_name(path.name + ".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(path)


def torchscript(net: str, module: nn.Module, path: Path, example: dict[str, np.ndarray]) -> Path:
    """Trace `module` (the eval-mode graph module) on `example` and save it to `path` (atomic)."""
    tmp = path.with_name(path.name + ".tmp")
    with torch.no_grad():
        traced = torch.jit.trace(module, tuple(torch.from_numpy(v) for v in example.values()), check_trace=False)
    traced.save(str(tmp))
    tmp.replace(path)
    return path


def torchscript_bf16_regions(net: str, module: nn.Module, path: Path, example: dict[str, np.ndarray]) -> Path:
    """Trace `module` with its bf16 regions on (W: WarpingNetwork.set_bf16_regions): the autocast casts of the
    regions are recorded in the graph, so the artefact runs as is (no autocast) and everything else stays fp32."""
    inner = module.w
    inner.set_bf16_regions(True)
    try:
        return torchscript(net, module, path, example)
    finally:
        inner.set_bf16_regions(False)


def bf16_rel_l2(net: str, path: Path, example: dict[str, np.ndarray], regions: bool = False) -> dict[str, float]:
    """{output: |bf16 - fp32| / |fp32|} of the TorchScript artefact at `path` run the way a leaf with
    `precision: bf16` runs it (facefront.serving.torch_stage), recorded in its manifest: what bf16 costs here.
    `regions`: `path` is a bf16-regions trace (model_bf16.pt, run without autocast), compared with model.pt beside it."""
    from facefront.serving.torch_stage import run_torchscript, to_channels_last
    names = SPECS[net].outputs
    module = torch.jit.load(str(path), map_location="cpu").eval()
    fp32 = torch.jit.load(str(path.parent / "model.pt"), map_location="cpu").eval() if regions else module
    ref = run_torchscript(fp32, tuple(example), names, example, "fp32")
    to_channels_last(module)
    low = run_torchscript(module, tuple(example), names, example, "fp32" if regions else "bf16")
    return {k: float(np.linalg.norm(low[k] - ref[k]) / max(float(np.linalg.norm(ref[k])), 1e-30)) for k in names}


def export_to_repository(repository: Path, weights: Path | None = None, log=print,
                         torch_on_cpu: tuple[str, ...] = TORCH_ON_CPU) -> list[Path]:
    """`<repository>/<folder>/1/model.onnx` + artefact manifest for each network (TensorRT-safe graphs, checked
    against PyTorch with onnxruntime; W against the upstream 5-D grid_sample), S as the keypoints stage's
    `stitching.onnx`, `model.pt` (TorchScript) for the CPU leaves run by PyTorch, and `model_bf16.pt` (the trace with
    bf16 regions) for BF16_REGIONS. Signature of `Family.export`."""
    from facefront import artifact

    from ..common import trt_ops
    from .weights import FILES, resolve, sha256_file
    root = None if weights is None else resolve(Path(weights))
    if root is None:
        log("liveportrait: NO REAL WEIGHTS given (--weights); exporting SYNTHETIC weights: outputs are not faces")
    written = []
    for net, folder in REPOSITORY_FOLDERS.items():
        out = Path(repository) / folder / "1" / REPOSITORY_FILES.get(net, "model.onnx")
        export_one(net, out, weights_dir=root)
        trt_ops.assert_supported(out)
        reference = graph_module(net, root, sampler="grid_sample_5d")
        fix_output_dims(out, reference, example_inputs(net, batch=1))
        diffs = compare(net, out, reference, example_inputs(net, batch=1, seed=3))
        onnx_tools.require_close(out, diffs, TOLERANCE, f"liveportrait {net}")
        src = dict(model="liveportrait", network=folder, weights="synthetic" if root is None else str(root / FILES[net]),
                   weights_sha256=None if root is None else sha256_file(root / FILES[net]))
        artifact.write(out, **src, opset=OPSET,
                       extra={"ort_vs_torch_max_abs": diffs, "w_sampler": TRT_SAMPLER if net == "W" else None,
                              **({"tensorrt_precision": TENSORRT_PRECISION[net][0],
                                  "tensorrt_precision_reason": TENSORRT_PRECISION[net][1]}
                                 if net in TENSORRT_PRECISION else {}),
                              "spectral_norm": "folded (sigma from stored u, v)" if net == "G" else None,
                              "inputs": list(SPECS[net].inputs), "outputs": list(SPECS[net].outputs)})
        log(f"liveportrait: wrote {out} (onnxruntime vs PyTorch max |diff| {max(diffs.values()):.2e})")
        written.append(out)
        if net in torch_on_cpu:
            pt = torchscript(net, reference, out.parent / "model.pt", example_inputs(net, batch=1))
            artifact.write(pt, **src, extra={"format": "torchscript", "torch": torch.__version__,
                                             "w_sampler": "grid_sample_5d" if net == "W" else None,
                                             "bf16_vs_fp32_rel_l2": bf16_rel_l2(net, pt, example_inputs(net, 1, 3)),
                                             "inputs": list(SPECS[net].inputs), "outputs": list(SPECS[net].outputs)})
            log(f"liveportrait: wrote {pt} (TorchScript, CPU flavour)")
            written.append(pt)
        if net in BF16_REGIONS and net in torch_on_cpu:
            pt = torchscript_bf16_regions(net, reference, out.parent / "model_bf16.pt", example_inputs(net, batch=1))
            artifact.write(pt, **src, extra={"format": "torchscript", "torch": torch.__version__,
                                             "w_sampler": "grid_sample_5d" if net == "W" else None,
                                             "precision": "bf16 regions (hourglass, mask conv); fp32 elsewhere",
                                             "bf16_vs_fp32_rel_l2": bf16_rel_l2(net, pt, example_inputs(net, 1, 3),
                                                                                regions=True),
                                             "inputs": list(SPECS[net].inputs), "outputs": list(SPECS[net].outputs)})
            log(f"liveportrait: wrote {pt} (TorchScript with bf16 regions, CPU flavour)")
            written.append(pt)
    return written
