"""ONNX graphs of the AniPortrait networks, one per model-repository leaf, each checked against PyTorch with
onnxruntime and against the TensorRT-10 operator list.

    aniportrait_vae_encoder     image Bx3xHxW in [-1, 1]                   -> latents Bx4xhxw (mean * 0.18215)
    aniportrait_vae_decoder     latents Bx4xhxw                             -> image Bx3xHxW in [0, 1]
    aniportrait_image_encoder   pixel_values Bx3x224x224 (CLIP-normalised)  -> image_embeds BxD
    aniportrait_pose_guider     pose Bx3x1xHxW (2*u8 - 1)                   -> fea_0..fea_4 (B x C x 1 x h x w)
    aniportrait_reference_unet  sample Bx4xhxw, timestep B, encoder_hidden_states Bx1xD -> bank_<block> (16)
    aniportrait_denoising_unet  sample Bx4x1xhxw, timestep B, encoder_hidden_states, fea_0..4, bank_<block> (16),
                                reference_rows B (1 = the row reads the bank, 0 = plain self-attention)
                                                                            -> model_output Bx4x1xhxw (v-prediction)

Batch is dynamic; the spatial size is fixed at export (256 px: the CPU default; 512 px on GPU, see TRT_PLAN).
Timesteps are float32 (exact for 0..999). Graphs over 2 GB (the UNets at full size) keep their weights in
`model.onnx.data` beside `model.onnx` (ONNX external data).

Full-size graphs hold ~11 GB of weights (the denoising UNet alone 5.3 GB; tracing and re-saving it holds the module
and its ONNX copy at once, so give it >16 GB of RAM; not run on the 24 GB shared development machine), so
`export()` builds them only with real weights or when asked (`full=True`); the tests export the reduced
configuration.
"""
from __future__ import annotations

import gc
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from facefront import artifact

from ..common import onnx_tools, trt_ops
from .config import FULL, AniPortraitConfig
from .networks import LATENT_SCALE, ImageEncoder, VaeDecoder, VaeEncoder
from .weights import build

OPSET = 17
PREFIX = "aniportrait_"

# TensorRT build plan for 512x512 (latent 64x64), fp16, to be confirmed on a GPU with real weights. Layers named by
# the ONNX node names' module paths. Why each stays fp32:
TRT_PLAN = {
    "size": 512,
    "precision": "fp16",
    "max_batch": {"aniportrait_denoising_unet": 2, "aniportrait_reference_unet": 2, "others": 1},
    "fp32_layers": {
        "all UNets: time_proj (Sin/Cos of t * freq) and time_embedding":
            "t up to 999 times frequencies up to 1: fp16 keeps 3 significant digits, so sin/cos of the product "
            "are wrong in the first digit",
        "all graphs: GroupNormalization / LayerNormalization (variance reductions)":
            "mean of squares over up to 64*64*1280 values overflows fp16 range (65504) for activations above ~4; "
            "TensorRT's normalization layer computes in fp32 when its precision is set so",
        "aniportrait_vae_decoder: mid_block and up_blocks.0-1 (all layers)":
            "SD VAE decoders overflow fp16 at 512 px (diffusers upcasts the VAE: force_upcast); run it fp32 "
            "(it is called once per image)",
        "aniportrait_pose_guider: conv_layers.0 (first conv + BatchNorm)":
            "its input is 2*u8 - 1 in [-1, 509] (upstream quirk): products and sums reach ~1e4..1e5 before the "
            "first BatchNorm",
        "aniportrait_denoising_unet: the bank inputs":
            "already rounded to fp16 by design (upstream casts the bank to fp16), so fp16 there loses nothing",
    },
    "attention": "softmax over [own tokens, bank] with the bank masked by -inf for reference_rows = 0: TensorRT's "
                 "fused MHA accepts the boolean mask; keep the Softmax in fp32 if the masked rows give NaN",
}


class _Flat(nn.Module):
    """Adapts a network to flat positional tensors in and a flat tuple out (what torch.onnx.export wants)."""

    def __init__(self, net: str, module: nn.Module, n_bank: int = 0):
        super().__init__()
        self.net, self.module, self.n_bank = net, module, n_bank

    def forward(self, *args):
        m = self.module
        if self.net == "vae_encoder":
            return m(args[0])[0] * LATENT_SCALE
        if self.net == "vae_decoder":
            return (m(args[0]) / 2 + 0.5).clamp(0, 1)
        if self.net == "image_encoder":
            return m(args[0])[0]
        if self.net == "pose_guider":
            return m(args[0])
        if self.net == "reference_unet":
            return m(args[0], args[1], args[2])[1]
        if self.net == "denoising_unet":
            return m(args[0], args[1], args[2], list(args[3:8]), list(args[8:8 + self.n_bank]), args[8 + self.n_bank])
        raise ValueError(self.net)


GRAPHS = ("vae_encoder", "vae_decoder", "image_encoder", "pose_guider", "reference_unet", "denoising_unet")


def _module(graph: str, weights: Path | None, cfg: AniPortraitConfig) -> nn.Module:
    if graph == "vae_encoder":
        return VaeEncoder(build("vae", weights, cfg))
    if graph == "vae_decoder":
        return VaeDecoder(build("vae", weights, cfg))
    if graph == "image_encoder":
        return ImageEncoder(build("image_encoder", weights, cfg))
    return build(graph, weights, cfg)


def example_inputs(graph: str, cfg: AniPortraitConfig, size: int, bank_names: list[str],
                   seed: int = 0) -> dict[str, np.ndarray]:
    """Named example inputs (batch 2) with realistic ranges; the same dict drives export and the ORT check."""
    rng = np.random.default_rng(seed)
    h = size // 8
    d = cfg.unet.cross_attention_dim
    ch = cfg.unet.block_out_channels

    def n(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    if graph == "vae_encoder":
        return {"image": np.clip(n(2, 3, size, size, scale=0.5), -1, 1)}
    if graph == "vae_decoder":
        return {"latents": n(2, 4, h, h)}
    if graph == "image_encoder":
        return {"pixel_values": n(2, 3, cfg.clip.image_size, cfg.clip.image_size)}
    if graph == "pose_guider":
        u8 = (rng.random((2, 3, 1, size, size)) < 0.3) * rng.integers(0, 256, (2, 3, 1, size, size))
        return {"pose": (2.0 * u8 - 1.0).astype(np.float32)}
    tokens = {"down_0": h * h, "up_3": h * h, "down_1": (h // 2) ** 2, "up_2": (h // 2) ** 2,
              "down_2": (h // 4) ** 2, "up_1": (h // 4) ** 2, "mid": (h // 8) ** 2}
    chans = {"down_0": ch[0], "up_3": ch[0], "down_1": ch[1], "up_2": ch[1], "down_2": ch[2], "up_1": ch[2],
             "mid": ch[3]}
    common = {"timestep": np.array([999.0, 999.0], np.float32), "encoder_hidden_states": n(2, 1, d)}
    if graph == "reference_unet":
        return {"sample": n(2, 4, h, h), **common, "timestep": np.zeros(2, np.float32)}
    if graph == "denoising_unet":
        pc = cfg.pose_guider.noise_latent_channels
        fea_shapes = [(pc, h), (pc, h // 2), (2 * pc, h // 4), (4 * pc, h // 8), (4 * pc, h // 8)]
        out = {"sample": n(2, 4, 1, h, h), **common}
        out.update({f"fea_{i}": n(2, c, 1, s, s) for i, (c, s) in enumerate(fea_shapes)})
        for name in bank_names:
            key = name.rsplit("_", 1)[0]
            out[f"bank_{name}"] = n(2, tokens[key], chans[key])
        out["reference_rows"] = np.array([0.0, 1.0], np.float32)
        return out
    raise ValueError(f"unknown graph {graph!r}; known: {', '.join(GRAPHS)}")


def output_names(graph: str, bank_names: list[str]) -> list[str]:
    return {"vae_encoder": ["latents"], "vae_decoder": ["image"], "image_encoder": ["image_embeds"],
            "pose_guider": [f"fea_{i}" for i in range(5)], "reference_unet": [f"bank_{b}" for b in bank_names],
            "denoising_unet": ["model_output"]}[graph]


def _export_onnx(module: nn.Module, inputs: dict[str, np.ndarray], outputs: list[str], path: Path) -> Path:
    """torch.onnx.export with a dynamic batch, written atomically; weights go to external data when the graph
    exceeds protobuf's 2 GB."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(inputs)
    axes = {k: {0: "batch"} for k in names + outputs}
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".export-") as tmp:
        raw = Path(tmp) / "raw.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), tuple(torch.from_numpy(v) for v in inputs.values()), str(raw),
                              input_names=names, output_names=outputs, dynamic_axes=axes, opset_version=OPSET,
                              do_constant_folding=True, dynamo=False)
        # torch writes a graph over 2 GB as many external tensor files; gather them into one model.onnx.data
        big = any(p != raw for p in Path(tmp).iterdir())
        staged = Path(tmp) / "model.onnx"
        if big:
            model = onnx.load(str(raw), load_external_data=True)
            onnx.save_model(model, str(staged), save_as_external_data=True, all_tensors_to_one_file=True,
                            location="model.onnx.data", size_threshold=1024)
            del model
            gc.collect()
        else:
            raw.replace(staged)
        onnx.checker.check_model(str(staged), full_check=True)
        data = path.with_name("model.onnx.data")
        data.unlink(missing_ok=True)
        if big:
            shutil.move(str(staged.with_name("model.onnx.data")), str(data))
        staged.replace(path)
    return path


def check(path: Path, module: nn.Module, inputs: dict[str, np.ndarray]) -> list[float]:
    """Per-output max |onnxruntime - PyTorch| on `inputs`."""
    with torch.no_grad():
        ref = module(*[torch.from_numpy(v) for v in inputs.values()])
    ref = [ref] if isinstance(ref, torch.Tensor) else list(ref)
    got = onnx_tools.run(onnx_tools.session(path, threads=2), inputs)
    return [float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref)]


def export_graph(graph: str, repository: Path, weights: Path | None, cfg: AniPortraitConfig, size: int,
                 log=print) -> tuple[Path, list[float]]:
    """Build one network, write <repository>/aniportrait_<graph>/1/model.onnx, check it, free the network."""
    from .networks import construct
    bank_names = construct("reference_unet", cfg).bank_names()
    module = _Flat(graph, _module(graph, weights, cfg), len(bank_names)).eval()
    inputs = example_inputs(graph, cfg, size, bank_names)
    out = Path(repository) / f"{PREFIX}{graph}" / "1" / "model.onnx"
    _export_onnx(module, inputs, output_names(graph, bank_names), out)
    trt_ops.assert_supported(out)
    diffs = check(out, module, inputs)
    del module
    gc.collect()
    src = "synthetic" if weights is None else str(weights)
    artifact.write(out, model="aniportrait", network=f"{PREFIX}{graph}", weights=src, weights_sha256=None,
                   opset=OPSET, extra={"config": cfg.name, "size": size, "ort_vs_torch_max_abs": diffs,
                                       "external_data": out.with_name("model.onnx.data").is_file(),
                                       "trt_plan": TRT_PLAN})
    log(f"aniportrait: wrote {out} ({cfg.name}, {size} px; onnxruntime vs PyTorch max |diff| {max(diffs):.2e})")
    return out, diffs


def export(repository: Path, weights: Path | None = None, log=print, full: bool = False,
           cfg: AniPortraitConfig | None = None, size: int = 256, graphs=GRAPHS) -> list[Path]:
    """Write every graph (one network in memory at a time). Real weights -> full size; no weights -> full-size
    synthetic only with `full=True` (else nothing, said in one line); `cfg` forces a configuration (tests)."""
    if cfg is None:
        if weights is None and not full:
            log("aniportrait: skipped (no real weights; full-size synthetic graphs are ~11 GB: ask with full=True "
                "/ --synthetic-full)")
            return []
        cfg = FULL
    if weights is None:
        log(f"aniportrait: NO REAL WEIGHTS given (--weights); exporting SYNTHETIC weights ({cfg.name} config): "
            "outputs are not faces")
    return [export_graph(g, repository, weights, cfg, size, log)[0] for g in graphs]
