"""PyTorch reference for FSRT: build the four networks, run upstream's reenactment math, and our driving recipe.

One reenactment step (upstream demo.py, `make_animation`):
    kp_s, e_s = keypoints and expression of the source            (kp_detector + expression_encoder)
    z         = encoder(source, kp_s, pixel grid, e_s)            (once per source photo)
    kp_d, e_d = keypoints and expression of the driving frame
    kp        = normalize_kp(kp_s, kp_d, kp_d0, mode)             (absolute: kp_d; relative: see normalize_kp)
    rgb       = decoder(z, pixel grid, kp, e_d)                   (raw; the picture is clamp(rgb, 0, 1), HWC)
The expression is never relative: the decoder always gets the driving frame's own expression.

Our driving recipe (`frontalize`): the driver is mesh3d's render of the SAME crop at the requested pose.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facefront.fsrt import geometry
from facefront.fsrt.geometry import hull_area  # noqa: F401  (re-exported: tests and tools use reference.hull_area)

from ..common import fixtures
from ..common.synthetic import synthetic_state_dict
from .keypoints import ExpressionEncoder, KeypointDetector
from .scene import DEFAULT_CHUNK, PixelDecoder, SceneEncoder, pixel_grid
from .weights import constructors

SIZE = 256                 # FSRT's input resolution (vox256)
OUTPUT_SIZES = (128, 256)  # decoder query grids offered to users: 128 costs a quarter of the decoder time
SIZE_RANGE = (16, 512)     # any square grid works (query pixels are continuous positions); tests use small ones
TAP_STRIDE = 128           # the decoder fixture's taps are on query pixels 0, 128, 256, ...


@functools.lru_cache(maxsize=1)
def _synthetic() -> dict[str, dict[str, torch.Tensor]]:
    # ~62 M values drawn by the rule: seconds; never mutated (load_state_dict copies)
    return {net: synthetic_state_dict(cls()) for net, cls in constructors().items()}


@dataclass
class Networks:
    kp_detector: KeypointDetector
    expression_encoder: ExpressionEncoder
    encoder: SceneEncoder
    decoder: PixelDecoder
    weights: str = "synthetic"   # or the weights directory

    def __getitem__(self, net: str):
        return getattr(self, net)


def build(weights: Path | None = None) -> Networks:
    """The four networks in eval mode (BatchNorm on running statistics): released weights from the directory
    `weights`, or rule-v2 synthetic weights when None."""
    if weights is None:
        sds, src = _synthetic(), "synthetic"
    else:
        from .weights import load_state_dicts, resolve
        sds, src = load_state_dicts(weights), str(resolve(weights))
    nets = {}
    for net, cls in constructors().items():
        m = cls()
        m.load_state_dict(sds[net], strict=True)
        nets[net] = m.eval()
    return Networks(**nets, weights=src)


def _t(a) -> torch.Tensor:
    return a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


# ---- the inference math (upstream demo.py) --------------------------------------------------------------------

@torch.no_grad()
def keypoints_and_expression(nets: Networks, image) -> tuple[torch.Tensor, torch.Tensor]:
    """image Bx3x256x256 RGB [0,1] -> (kp Bx10x2, expression Bx256)."""
    kp, feature_map, heatmap = nets.kp_detector(_t(image))
    return kp, nets.expression_encoder(feature_map, heatmap)


def normalize_kp(kp_source, kp_driving, kp_driving_initial=None, relative: bool = False,
                 adapt_scale: bool = False) -> tuple[torch.Tensor, float]:
    """(query keypoints, movement scale) for the decoder; all keypoint arguments Bx10x2 (batch 1 for the hull).
    The math is the served code's (facefront.fsrt.geometry.normalize_kp, numpy), here on tensors:

    absolute: kp_driving itself (the driver's own geometry is used; right when the driver is the same person).
    relative: kp_source + (kp_driving - kp_driving_initial) * s: only the driver's MOTION since its first frame
    is transferred onto the source's geometry, which preserves a different person's face shape. With adapt_scale
    s = sqrt(area(hull(kp_source))) / sqrt(area(hull(kp_driving_initial))) (the two faces' sizes), else 1."""
    def arr(a):
        return None if a is None else _t(a).detach().cpu().numpy()
    kp, s = geometry.normalize_kp(arr(kp_source), arr(kp_driving), arr(kp_driving_initial), relative, adapt_scale)
    return torch.from_numpy(np.ascontiguousarray(kp)), s


@torch.no_grad()
def encode(nets: Networks, images, keypoints, expression, pixels=None) -> torch.Tensor:
    """Upstream's encoder call: images BxNx3xHxW, keypoints BxNx10x2, expression BxNx256 (pixels BxNxHxWx2,
    default the grid) -> z Bx(N*1024)x768 (the N views' tokens concatenated)."""
    images, keypoints, expression = _t(images), _t(keypoints), _t(expression)
    b, n = images.shape[:2]
    px = None if pixels is None else _t(pixels).flatten(0, 1)
    z = nets.encoder(images.flatten(0, 1), keypoints.flatten(0, 1), expression.flatten(0, 1), px)
    return z.reshape(b, n * z.shape[1], z.shape[2])


@torch.no_grad()
def decode(nets: Networks, z, keypoints, expression, size: int = SIZE, chunk: int | None = DEFAULT_CHUNK) -> torch.Tensor:
    """Render a size x size frame: raw rgb BxHxWx3 (no clamp). keypoints Bx10x2, expression Bx256."""
    z = _t(z)
    grid = pixel_grid(size).reshape(1, size * size, 2).expand(z.shape[0], size * size, 2)
    rgb = nets.decoder(z, grid, _t(keypoints), _t(expression), chunk=chunk)
    return rgb.reshape(z.shape[0], size, size, 3)


def _check_crop(name: str, image) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3 or a.shape[-1] != 3 or a.shape[:2] != (SIZE, SIZE):
        raise ValueError(f"{name} must be a {SIZE}x{SIZE}x3 RGB crop, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0
    a = a.astype(np.float32)
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
        raise ValueError(f"{name} must be RGB floats in [0, 1] (or uint8), got range {a.min():.3g}..{a.max():.3g}")
    return a


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)[None]))


@dataclass
class Reenactment:
    image: np.ndarray            # size x size x 3 float32 in [0, 1] (clamped)
    raw: np.ndarray              # size x size x 3 float32, the decoder's raw output
    kp_source: np.ndarray        # 10x2
    kp_driving: np.ndarray       # 10x2
    kp_query: np.ndarray         # 10x2: what the decoder was given (normalize_kp)
    scale: float                 # the movement scale (1 unless relative + adapt_scale)
    driver: np.ndarray | None = None   # 256x256x3 float32, the driving image (frontalize: mesh3d's render)


@torch.no_grad()
def reenact(source, driving, nets: Networks | None = None, *, relative: bool = False, adapt_scale: bool = False,
            driving_initial=None, size: int = SIZE, chunk: int | None = DEFAULT_CHUNK) -> Reenactment:
    """Source crop + driving image (each 256x256x3 RGB, float [0,1] or uint8) -> the source person with the
    driver's keypoints and expression. `size` is the output resolution (the decoder's query grid; 128 or 256
    offered, 256 is the training resolution).
    Relative mode needs `driving_initial` (the driver's neutral first frame)."""
    if not (isinstance(size, (int, np.integer)) and SIZE_RANGE[0] <= size <= SIZE_RANGE[1]):
        raise ValueError(f"output size must be an integer from {SIZE_RANGE[0]} to {SIZE_RANGE[1]} pixels "
                         f"({' or '.join(map(str, OUTPUT_SIZES))} offered), got {size!r}")
    nets = nets or build()
    src, drv = _chw(_check_crop("source", source)), _chw(_check_crop("driving", driving))
    kp_s, e_s = keypoints_and_expression(nets, src)
    kp_d, e_d = keypoints_and_expression(nets, drv)
    kp_d0 = None
    if relative:
        if driving_initial is None:
            raise ValueError("relative mode needs driving_initial (the driver's first frame)")
        kp_d0, _ = keypoints_and_expression(nets, _chw(_check_crop("driving_initial", driving_initial)))
    kp, s = normalize_kp(kp_s, kp_d, kp_d0, relative=relative, adapt_scale=adapt_scale)
    z = nets.encoder(src, kp_s, e_s)
    raw = decode(nets, z, kp, e_d, size=size, chunk=chunk)[0].numpy()
    return Reenactment(np.clip(raw, 0, 1), raw, kp_s[0].numpy(), kp_d[0].numpy(), kp[0].numpy(), s)


def driver_render(source_crop, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, landmarks=None):
    """mesh3d's render (facefront.face.mesh3d) of the crop at (yaw, pitch, roll) degrees: a `Render` whose
    `.image` is 256x256x3 uint8. `landmarks` (468x3 in crop pixels) skips the face analysis."""
    from facefront.face import mesh3d
    crop = np.clip(np.round(_check_crop("source", source_crop) * 255), 0, 255).astype(np.uint8)
    for name, v in (("yaw", yaw), ("pitch", pitch), ("roll", roll)):
        if not np.isfinite(v) or abs(v) > 90:
            raise ValueError(f"{name} must be a finite angle within +-90 degrees, got {v}")
    if landmarks is None:
        from facefront.face.analysis import analyze
        landmarks = analyze(crop, max_faces=1)[0].landmarks   # NoFaceError (a ValueError) when there is none
    return mesh3d.render(crop, landmarks, yaw, pitch, roll, size=SIZE)


def frontalize(source_crop, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, *, nets: Networks | None = None,
               size: int = SIZE, landmarks=None, chunk: int | None = DEFAULT_CHUNK) -> Reenactment:
    """The person in `source_crop` (256x256x3 RGB, float [0,1] or uint8) seen at (yaw, pitch, roll) degrees
    (frontal by default), `size` x `size` (128 or 256: the decoder's query grid, see `reenact`).

    FSRT has no pose input: it copies the keypoints and expression of a driving image. The driver here is
    mesh3d's geometric render of the SAME crop at the requested pose, and the decoder runs in ABSOLUTE mode
    (the driver's own keypoints). Absolute is right because the driver is the same person: its keypoints already
    carry this face's shape, so nothing needs transferring. Relative mode exists to keep a *different* source
    face's geometry while copying a driver's motion from a reference frame; here it would need a 'neutral' driver
    frame and would re-add the source pose (kp_source + (kp_d - kp_d0)), and adapt_scale would correct a size
    difference that is not there.
    """
    r = driver_render(source_crop, yaw, pitch, roll, landmarks)
    driver = r.image.astype(np.float32) / 255.0
    out = reenact(source_crop, driver, nets, relative=False, size=size, chunk=chunk)
    out.driver = driver
    return out


# ---- parity fixtures ------------------------------------------------------------------------------------------

def recipe_images(seed: int, size: int = SIZE) -> dict[str, np.ndarray]:
    """The fixtures' input recipe: source, driving, driving_initial (drawn in that order), each 1x3xHxW RGB in
    [0,1] (smooth random colour fields). Seed 0 reproduces the public fixture inputs."""
    rng = np.random.default_rng(seed)

    def up(a: np.ndarray) -> np.ndarray:  # separable linear interpolation, align-corners, rows then columns
        pos = np.arange(size) * (a.shape[-1] - 1) / (size - 1)
        src = np.arange(a.shape[-1])
        a = np.apply_along_axis(lambda r: np.interp(pos, src, r), 1, a)
        return np.apply_along_axis(lambda r: np.interp(pos, src, r), 2, a)

    out = {}
    for name in ("source", "driving", "driving_initial"):
        low9, low33 = rng.random((3, 9, 9)), rng.random((3, 33, 33))
        out[name] = np.clip(0.75 * up(low9) + 0.25 * up(low33), 0, 1).astype(np.float32)[None]
    return out


def _np(d: dict) -> dict[str, np.ndarray]:
    return {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in d.items()}


@torch.no_grad()
def run_kp_detector(nets: Networks, image) -> dict[str, np.ndarray]:
    d = nets.kp_detector.detect(_t(image))
    return _np({"out_kp": d["kp"], "out_feature_map": d["feature_map"], "out_heatmap": d["heatmap"].unsqueeze(2),
                "out_tap_down": d["down"], "out_tap_kp_logits": d["logits"]})


@torch.no_grad()
def run_expression_encoder(nets: Networks, feature_map, heatmap) -> dict[str, np.ndarray]:
    ee = nets.expression_encoder
    pooled = ee.pooled(_t(feature_map), _t(heatmap))
    return _np({"out_expression": ee.expression_mlp(pooled), "out_tap_mlp_in": pooled})


@torch.no_grad()
def run_encoder(nets: Networks, images, keypoints, pixels, expression) -> dict[str, np.ndarray]:
    images, keypoints, pixels, expression = map(_t, (images, keypoints, pixels, expression))
    tokens = nets.encoder.tokens(images.flatten(0, 1), keypoints.flatten(0, 1), expression.flatten(0, 1),
                                 pixels.flatten(0, 1))
    return _np({"out_z": encode(nets, images, keypoints, expression, pixels), "out_tap_tokens": tokens})


@torch.no_grad()
def run_decoder(nets: Networks, z, pixels, keypoints, expression, chunk: int | None = DEFAULT_CHUNK,
                tap_stride: int = TAP_STRIDE):
    """Upstream's decoder call, plus the three taps on query pixels 0, tap_stride, ... (pixels are independent,
    so the taps come from a second small call on just those pixels)."""
    z, pixels, keypoints, expression = map(_t, (z, pixels, keypoints, expression))
    dec = nets.decoder
    out = {"out_pixels": dec(z, pixels, keypoints, expression, chunk=chunk)}
    sub_kp = keypoints[:, ::tap_stride] if keypoints.dim() == 4 else keypoints
    queries = dec.queries(pixels[:, ::tap_stride], sub_kp, expression)
    taps: dict = {}
    dec.decode(queries, dec.keys_values(z), taps)
    out.update(out_tap_queries_s128=queries, out_tap_input_mlp_s128=taps["input_mlp"],
               out_tap_transformer_s128=taps["transformer"])
    return _np(out)


@torch.no_grad()
def run_chain(nets: Networks, source, driving_initial, driving, chunk: int | None = DEFAULT_CHUNK):
    """One relative frame with adapt_scale (upstream's recommended command), as `chain.npz` holds it."""
    source, driving_initial, driving = map(_t, (source, driving_initial, driving))
    kp_s, e_s = keypoints_and_expression(nets, source)
    kp_d0, _ = keypoints_and_expression(nets, driving_initial)
    kp_d, e_d = keypoints_and_expression(nets, driving)
    kp_norm, s = normalize_kp(kp_s, kp_d, kp_d0, relative=True, adapt_scale=True)
    size = source.shape[-1]
    grid = pixel_grid(size)
    z = encode(nets, source[:, None], kp_s[:, None], e_s[:, None], grid[None, None])
    raw = decode(nets, z, kp_norm, e_d, size=size, chunk=chunk)
    return _np({"out_kp_source": kp_s, "out_expression_src": e_s[:, None], "out_kp_driving_initial": kp_d0,
                "out_kp_driving": kp_d, "out_expression_driving": e_d,
                "out_adapt_movement_scale": np.array([s], dtype=np.float64), "out_kp_norm": kp_norm,
                "out_z": z, "out_image_raw": raw, "out_image": raw[0].clamp(0, 1)})


def run_fixtures(fixture_dir: Path, nets: Networks | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Outputs for every fixture file present in `fixture_dir` (kp_detector, expression_encoder, encoder,
    decoder, chain), each from that file's own in_* arrays, with synthetic rule-v2 weights."""
    fixture_dir = Path(fixture_dir)
    nets = nets or build()
    runners = {
        "kp_detector": lambda r: run_kp_detector(nets, r["in_image"]),
        "expression_encoder": lambda r: run_expression_encoder(nets, r["in_feature_map"], r["in_heatmap"]),
        "encoder": lambda r: run_encoder(nets, r["in_images"], r["in_keypoints"], r["in_pixels"],
                                         r["in_expression_vector"]),
        "decoder": lambda r: run_decoder(nets, r["in_z"], r["in_pixels"], r["in_keypoints"],
                                         r["in_expression_vector"]),
        "chain": lambda r: run_chain(nets, r["in_source"], r["in_driving_initial"], r["in_driving"]),
    }
    out: dict[str, dict[str, np.ndarray]] = {}
    for net, run in runners.items():
        path = fixture_dir / f"{net}.npz"
        if path.is_file():
            out[net] = run(fixtures.load(path))
    return out

