"""ONNX graphs of FSRT's four networks: interfaces, export with an onnxruntime check, TensorRT-10 op check.

    fsrt_kp_detector         image [B,3,256,256]                     -> kp [B,10,2], feature_map [B,35,64,64],
                                                                        heatmap [B,10,58,58]
    fsrt_expression_encoder  feature_map, heatmap                    -> expression [B,256]
    fsrt_encoder             image, keypoints [B,10,2], expression   -> z [B,1024,768]   (pixel grid built in)
    fsrt_decoder             z, pixels [B,P,2], keypoints, expression -> rgb [B,P,3]     (raw, not clamped)

Every axis named B is dynamic; the decoder's P (query pixels) is dynamic too, so a frame is decoded in chunks of
P pixels with bounded memory (pixels are independent; `reference.decode` shows the loop). The decoder recomputes
to_kv(z) per call (4.8 GFLOP, ~4 % of an 8192-pixel chunk).

TensorRT precision: the positional encodings must stay fp32 in any fp16/TF32 engine (see layers.PositionalEncoding:
arguments reach 5.1e4 rad, whose fp16 ulp is 32). `FP32_OPS` says which ops; each manifest lists the graph's node
names (`tensorrt_fp32_layers`: TensorRT names its layers after the ONNX nodes) so the engine build can pin them
with layer precision constraints. The encoder's pixel encoding is a constant of the graph (computed by PyTorch in
fp32: `SceneEncoder.grid_encoding`), so only its keypoint encoding remains as ops.
"""
from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import torch
from torch import nn

from facefront import artifact

from ..common import onnx_tools, trt_ops
from . import reference
from .scene import DEFAULT_CHUNK, pixel_grid

OPSET = onnx_tools.DEFAULT_OPSET   # 17: LayerNormalization native; GELU exported as Erf (exact)
FP32_OPS = ("Mul (coordinate x 2^o*pi, the argument)", "Sin", "Cos", "Concat (sin | cos)",
            "and the Unsqueeze/Reshape/Expand between them")
FP32_NOTE = ("TensorRT fp16/TF32 builds must keep the positional-encoding layers in fp32 (layer precision + "
             "output type constraints, strict types): " + ", ".join(FP32_OPS) + ". Arguments reach 2^14*pi*|c| "
             "~5.1e4 rad; fp16 cannot hold them (ulp 32) and sin/cos need full range reduction.")


_PE_SCOPE = re.compile(r"(^|/)(kp|pix)_encoding/")


class _Expression(nn.Module):
    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, feature_map, heatmap):
        return self.m(feature_map, heatmap)


@dataclass(frozen=True)
class GraphSpec:
    folder: str                                  # model_repository leaf, e.g. fsrt_decoder
    inputs: dict[str, tuple[int, ...]]           # name -> shape without the batch axis (-1: dynamic)
    outputs: dict[str, tuple[int, ...]]
    module: Callable[[reference.Networks], nn.Module]
    tolerance: float                             # onnxruntime vs PyTorch, max abs (measured 3e-7..8e-6)


NETWORKS: dict[str, GraphSpec] = {
    "kp_detector": GraphSpec(
        "fsrt_kp_detector", {"image": (3, 256, 256)},
        {"kp": (10, 2), "feature_map": (35, 64, 64), "heatmap": (10, 58, 58)}, lambda n: n.kp_detector, 5e-5),
    "expression_encoder": GraphSpec(
        "fsrt_expression_encoder", {"feature_map": (35, 64, 64), "heatmap": (10, 58, 58)}, {"expression": (256,)},
        lambda n: _Expression(n.expression_encoder), 5e-5),
    "encoder": GraphSpec(
        "fsrt_encoder", {"image": (3, 256, 256), "keypoints": (10, 2), "expression": (256,)},
        {"z": (1024, 768)}, lambda n: n.encoder, 2e-4),
    "decoder": GraphSpec(
        "fsrt_decoder", {"z": (1024, 768), "pixels": (-1, 2), "keypoints": (10, 2), "expression": (256,)},
        {"rgb": (-1, 3)}, lambda n: n.decoder, 1e-4),
}


def example_inputs(net: str, batch: int = 1, pixels: int = 512, seed: int = 0,
                   nets: reference.Networks | None = None) -> dict[str, np.ndarray]:
    """Plausible inputs: recipe images; keypoints, feature maps and expressions from the networks themselves
    when `nets` is given (else in their typical ranges); z random at its typical scale; decoder query pixels a
    random subset of the 256 grid."""
    rng = np.random.default_rng(seed)
    imgs = np.concatenate([reference.recipe_images(seed + i)["source"] for i in range(batch)])
    out: dict[str, np.ndarray] = {}
    need = NETWORKS[net].inputs
    feats = None
    if nets is not None and ({"keypoints", "expression", "feature_map"} & need.keys()):
        with torch.no_grad():
            kp, fm, hm = nets.kp_detector(torch.from_numpy(imgs))
            ex = nets.expression_encoder(fm, hm)
        feats = {"keypoints": kp, "feature_map": fm, "heatmap": hm, "expression": ex}
    for name, shape in need.items():
        if feats is not None and name in feats:
            out[name] = feats[name].numpy()
        elif name == "image":
            out[name] = imgs
        elif name == "pixels":
            grid = pixel_grid(256).reshape(-1, 2).numpy()
            idx = np.sort(rng.choice(len(grid), pixels, replace=False))
            out[name] = np.broadcast_to(grid[idx], (batch, pixels, 2)).copy()
        elif name == "z":  # scene tokens at the encoder's scale (rms ~2.8 under the synthetic weights), not
            out[name] = 3 * rng.standard_normal((batch, *shape))   # the encoder's output: 150 GFLOP saved
        elif name == "keypoints":
            out[name] = rng.uniform(-0.5, 0.5, (batch, *shape))
        elif name == "heatmap":
            logits = rng.standard_normal((batch, 10, 58 * 58)) * 3
            e = np.exp(logits - logits.max(-1, keepdims=True))
            out[name] = (e / e.sum(-1, keepdims=True)).reshape(batch, *shape)
        else:
            out[name] = rng.standard_normal((batch, *shape))
        out[name] = np.ascontiguousarray(out[name], dtype=np.float32)
    return out


def _export(module: nn.Module, example: dict[str, np.ndarray], path: Path, spec: GraphSpec) -> Path:
    """Like onnx_tools.export, but with every -1 axis of the spec dynamic as well as the batch (atomic write)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    axes = {}
    for name, shape in {**spec.inputs, **spec.outputs}.items():
        axes[name] = {0: "batch", **{i + 1: "pixels" for i, d in enumerate(shape) if d == -1}}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), tuple(torch.from_numpy(v) for v in example.values()), str(tmp),
                              input_names=list(spec.inputs), output_names=list(spec.outputs), dynamic_axes=axes,
                              opset_version=OPSET, do_constant_folding=True, dynamo=False)
        model = onnx.load(str(tmp))
        # the tracer leaves symbolic names on some static output dims (z's 1024x768): write the real sizes, so
        # Triton configs and TensorRT profiles see them
        for out in model.graph.output:
            for d, n in zip(list(out.type.tensor_type.shape.dim)[1:], spec.outputs[out.name]):
                if n != -1:
                    d.Clear()
                    d.dim_value = n
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(tmp))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def fp32_layers(path: Path) -> list[str]:
    """Names of the graph nodes that compute a positional encoding (the exporter names them after the
    PositionalEncoding modules, `kp_encoding` and `pix_encoding`)."""
    model = onnx.load(str(path), load_external_data=False)
    return [n.name for n in model.graph.node if _PE_SCOPE.search(n.name) and n.op_type != "Constant"]


def compare(net: str, path: Path, module: nn.Module, inputs: dict[str, np.ndarray], threads: int = 2) -> dict[str, float]:
    """{output: max |onnxruntime - PyTorch|} of graph `path` on `inputs`."""
    got = onnx_tools.session(path, threads).run(None, inputs)
    with torch.no_grad():
        ref = module(*[torch.from_numpy(v) for v in inputs.values()])
    ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    return {name: float(np.abs(g - r.numpy()).max()) for name, g, r in zip(NETWORKS[net].outputs, got, ref)}


def export_network(net: str, path: Path, nets: reference.Networks, check_batch: int = 2) -> dict:
    """Write `net`'s graph to `path`, verify its TensorRT-10 ops and onnxruntime vs PyTorch (on a batch of
    `check_batch`, traced at batch 1 so the dynamic axes are exercised); ValueError when either fails."""
    spec = NETWORKS[net]
    module = spec.module(nets).eval()
    _export(module, example_inputs(net, batch=1, pixels=256, nets=nets), path, spec)
    trt_ops.assert_supported(path)
    diffs = compare(net, path, module, example_inputs(net, batch=check_batch, pixels=384, seed=3, nets=nets))
    worst = max(diffs.values())
    if not worst <= spec.tolerance:
        raise ValueError(f"{path}: onnxruntime differs from PyTorch by {worst:.3g} > {spec.tolerance:g} ({diffs})")
    return {"ort_vs_torch_max_abs": diffs, "tolerance": spec.tolerance, "tensorrt_fp32_layers": fp32_layers(path)}


def export(repository: Path, weights: Path | None = None, log=print) -> list[Path]:
    """`<repository>/fsrt_<net>/1/model.onnx` + artefact manifest for each of the four networks (signature of
    `Family.export`). Synthetic rule-v2 weights when `weights` is None (said loudly, recorded)."""
    if weights is None:
        log("fsrt: NO REAL WEIGHTS given (--weights); exporting SYNTHETIC weights: outputs are not faces")
    nets = reference.build(weights)
    src = nets.weights
    wsha = None
    if weights is not None:
        from .weights import sha256s
        wsha = sha256s(weights)
    written = []
    for net, spec in NETWORKS.items():
        out = Path(repository) / spec.folder / "1" / "model.onnx"
        t = time.perf_counter()
        info = export_network(net, out, nets)
        extra = {**info, "inputs": {k: ["batch", *v] for k, v in spec.inputs.items()},
                 "outputs": {k: ["batch", *v] for k, v in spec.outputs.items()},
                 "dynamic": "batch" + (", pixels: decode a frame in chunks of query pixels" if net == "decoder" else ""),
                 "tensorrt_precision_note": FP32_NOTE if info["tensorrt_fp32_layers"] else None,
                 "upstream": "andrerochow/fsrt@b89538368f9d86a09c2f968c9bf299e953df6917"}
        if net == "decoder":
            extra["default_chunk_pixels"] = DEFAULT_CHUNK
            # the TensorRT engine's profile over the pixel axis (trt_build): fsrt_render sends chunks of up to
            # chunk_pixels (8192) query pixels, the last one shorter
            extra["tensorrt_dim_ranges"] = {"pixels": {"1": [1, DEFAULT_CHUNK, DEFAULT_CHUNK]}}
        artifact.write(out, model="fsrt", network=spec.folder, weights=src, weights_sha256=wsha, opset=OPSET,
                       extra=extra)
        log(f"fsrt: wrote {out} (onnxruntime vs PyTorch max |diff| {max(info['ort_vs_torch_max_abs'].values()):.2e}, "
            f"{len(info['tensorrt_fp32_layers'])} fp32 PE nodes, {time.perf_counter() - t:.0f} s)")
        written.append(out)
    return written
