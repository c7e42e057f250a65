"""PyTorch reference for LivePortrait: build the five networks, run each one, and run the frontalization chain.

These are the numbers the served pipeline must match. Keypoint math is facefront/liveportrait/kinematics.py (numpy),
shared with serving.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from facefront.liveportrait import kinematics as kin

from ..common import fixtures
from ..common.synthetic import fill_
from .appearance import AppearanceFeatureExtractor
from .motion import HEADS, MotionExtractor
from .spade import SpadeGenerator
from .stitching import MLPS, StitchingRetargeting
from .warping import WarpingNetwork

NETWORKS = ("F", "M", "W", "G", "S")
# constructor arguments of the released models (upstream src/config/models.yaml)
CONSTRUCTORS: dict[str, Callable[[], nn.Module]] = {
    "F": lambda: AppearanceFeatureExtractor(image_channel=3, block_expansion=64, num_down_blocks=2, max_features=512,
                                            reshape_channel=32, reshape_depth=16, num_resblocks=6),
    "M": lambda: MotionExtractor(num_kp=21, backbone="convnextv2_tiny"),
    "W": lambda: WarpingNetwork(num_kp=21, block_expansion=64, max_features=512, num_down_blocks=2, reshape_channel=32,
                                estimate_occlusion_map=True,
                                dense_motion_params=dict(block_expansion=32, max_features=1024, num_blocks=5,
                                                         reshape_depth=16, compress=4)),
    "G": lambda: SpadeGenerator(upscale=2, block_expansion=64, max_features=512, num_down_blocks=2),
    "S": StitchingRetargeting,
}


def build(net: str, weights_dir: Path | None = None) -> nn.Module:
    """One network in eval mode: released weights from `weights_dir`, or rule-v2 synthetic weights when None."""
    if net not in CONSTRUCTORS:
        raise ValueError(f"unknown LivePortrait network {net!r}; known: {', '.join(NETWORKS)}")
    module = CONSTRUCTORS[net]()
    if weights_dir is not None:
        from .weights import load_into
        return load_into(net, module, Path(weights_dir)).eval()
    if net == "S":  # the seed key of each MLP entry is '<checkpoint sub-dict>.<key>'
        for name, (subdict, *_rest) in MLPS.items():
            fill_(getattr(module, name), seed_prefix=subdict + ".")
        return module.eval()
    return fill_(module)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


class Pipeline:
    """The five networks, built on first use, and the steps of the frontalization chain."""

    def __init__(self, weights_dir: Path | None = None):
        self.weights_dir = weights_dir
        self._nets: dict[str, nn.Module] = {}

    def net(self, name: str) -> nn.Module:
        if name not in self._nets:
            self._nets[name] = build(name, self.weights_dir)
        return self._nets[name]

    @torch.no_grad()
    def appearance(self, image: np.ndarray) -> np.ndarray:
        return self.net("F")(_t(image)).numpy()

    @torch.no_grad()
    def motion(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self.net("M")(_t(image)).items()}

    @torch.no_grad()
    def warp(self, feature_3d, kp_source, kp_driving) -> dict[str, np.ndarray]:
        out = self.net("W")(_t(feature_3d), kp_driving=_t(kp_driving), kp_source=_t(kp_source))
        return {k: v.numpy() for k, v in out.items()}

    @torch.no_grad()
    def generate(self, feature: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(image in (0, 1), pre-sigmoid logits)."""
        logits = self.net("G").logits(_t(feature))
        return torch.sigmoid(logits).numpy(), logits.numpy()

    @torch.no_grad()
    def stitch_mlps(self, stitching_in, lip_in, eye_in) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(o.numpy() for o in self.net("S")(_t(stitching_in), _t(lip_in), _t(eye_in)))

    @torch.no_grad()
    def stitch_delta(self, x_s, x_d) -> np.ndarray:
        return self.net("S").stitching(_t(kin.stitching_input(x_s, x_d))).numpy()

    @torch.no_grad()
    def lip_delta(self, x_s, lip_ratio) -> np.ndarray:
        return kin.retarget_offsets(self.net("S").lip(_t(kin.lip_input(x_s, lip_ratio))).numpy())

    @torch.no_grad()
    def eye_delta(self, x_s, eye_ratio) -> np.ndarray:
        return kin.retarget_offsets(self.net("S").eye(_t(kin.eye_input(x_s, eye_ratio))).numpy())

    def repose(self, image: np.ndarray, pitch=0.0, yaw=0.0, roll=0.0, mode="absolute", expression=None,
               stitch: bool = True) -> np.ndarray:
        """Source crop (B,3,256,256) in [0,1] -> (B,3,512,512) at the target pose (frontalize: the defaults)."""
        info = kin.decode_motion(self.motion(image))
        x_s = kin.source_keypoints(info)
        target = kin.target_pose(info.degrees, pitch, yaw, roll, mode)
        x_d = kin.driving_keypoints(info, target, kin.expression_offsets(expression) if expression else None)
        if stitch:
            x_d = kin.apply_stitching(x_d, self.stitch_delta(x_s, x_d))
        return self.generate(self.warp(self.appearance(image), x_s, x_d)["out"])[0]

    def frontalization_chain(self, image: np.ndarray, lip_ratio=None, eye_ratio=None) -> dict[str, np.ndarray]:
        """Every intermediate of the fixture chain: F, M -> degrees, R_s -> x_s -> x_d at pose 0/0/0 -> W -> G.
        Stitching, lip and eye deltas are computed and recorded but not applied before W (as in the fixtures)."""
        out: dict[str, np.ndarray] = {}
        feature = self.appearance(image)
        out["out_feature_3d"] = feature
        raw = self.motion(image)
        out.update({f"out_M_{k}": raw[k] for k in HEADS})
        info = kin.decode_motion(raw)
        out["out_pitch_deg"], out["out_yaw_deg"], out["out_roll_deg"] = (a[:, None] for a in (info.pitch, info.yaw, info.roll))
        out["out_R_s"] = kin.rotation_matrix(info.pitch, info.yaw, info.roll)
        x_s = kin.transform_keypoints(info.kp, out["out_R_s"], info.exp, info.scale, info.t)
        target = kin.target_pose(info.degrees, 0.0, 0.0, 0.0, "absolute")
        out["out_R_d"] = kin.rotation_matrix(target[:, 0], target[:, 1], target[:, 2])
        x_d = kin.driving_keypoints(info, target)
        out["out_x_s"], out["out_x_d_frontal"] = x_s, x_d
        out["out_stitch_delta"] = self.stitch_delta(x_s, x_d)
        out["out_x_d_frontal_stitched"] = kin.apply_stitching(x_d, out["out_stitch_delta"])
        if lip_ratio is not None:
            out["out_lip_delta"] = self.lip_delta(x_s, lip_ratio)
        if eye_ratio is not None:
            out["out_eye_delta"] = self.eye_delta(x_s, eye_ratio)
        warped = self.warp(feature, x_s, x_d)
        out["out_occlusion_map"], out["out_deformation"], out["out_warp_out"] = (
            warped["occlusion_map"], warped["deformation"], warped["out"])
        out["out_image_out"], out["out_tap_image_logits"] = self.generate(warped["out"])
        return out


def _run_file(p: Pipeline, net: str, ins: dict[str, np.ndarray], fixture_dir: Path) -> dict[str, np.ndarray]:
    if net == "F":
        return {"out_feature_3d": p.appearance(ins["in_source_image"])}
    if net == "M":
        return {f"out_{k}": v for k, v in p.motion(ins["in_source_image"]).items()}
    if net == "W":
        o = p.warp(ins["in_feature_3d"], ins["in_kp_source"], ins["in_kp_driving"])
        return {"out_occlusion_map": o["occlusion_map"], "out_deformation": o["deformation"], "out_out": o["out"]}
    if net == "G":
        image, logits = p.generate(ins["in_feature"])
        return {"out_out": image, "out_tap_logits": logits}
    if net == "S":
        s, lip, eye = p.stitch_mlps(ins["in_stitching_in"], ins["in_lip_in"], ins["in_eye_in"])
        return {"out_stitching_out": s, "out_lip_out": lip, "out_eye_out": eye}
    if net == "chain":
        # the lip/eye ratios of a fixture set are drawn once and stored with the S fixture
        lip = ins.get("in_lip_ratio")
        eye = ins.get("in_eye_ratio")
        s_file = fixture_dir / "S.npz"
        if (lip is None or eye is None) and s_file.is_file():
            s_in = fixtures.load(s_file)
            lip = s_in.get("in_lip_ratio") if lip is None else lip
            eye = s_in.get("in_eye_ratio") if eye is None else eye
        return p.frontalization_chain(ins["in_source_image"], lip_ratio=lip, eye_ratio=eye)
    return {}


def run_fixtures(fixture_dir: Path, weights_dir: Path | None = None) -> dict[str, dict[str, np.ndarray]]:
    """{file stem: {out name: array}} for every `<net>.npz` in `fixture_dir`, from its in_* arrays."""
    fixture_dir = Path(fixture_dir)
    torch.set_num_threads(min(torch.get_num_threads(), 2))
    p = Pipeline(weights_dir)
    results = {}
    for path in sorted(fixture_dir.glob("*.npz")):
        refs = fixtures.load(path)
        ins = {k: v for k, v in refs.items() if k.startswith("in_")}
        results[path.stem] = _run_file(p, path.stem, ins, fixture_dir)
    return results
