"""What the page needs to know about each served model, read from the server through the project's client.

From Triton (``FrontalizeClient.model_info`` and the ensemble config's ``parameters``):
- pose-capable: the ensemble has a POSE input;
- controls: names, ranges, help and on/off switches, as the client parses them from the ``controls`` parameter
  (``ModelInfo.control_specs``); a server whose parameter is the older plain list of names gets the documented
  ranges below;
- pose range: the ``pose_range`` parameter, JSON ``{"yaw": [low, high], "pitch": [...], "roll": [...]}``, else
  the documented +-90 degrees;
- weights: the ``weights`` parameter (``real``, ``synthetic`` or ``none``); without it, the artefact manifests of
  a local model repository when the gateway was told where it is (``--repository``, what ``make studio`` does:
  the server beside it serves that repository), else ``unknown``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

POSE_RANGE_PARAMETER = "pose_range"
WEIGHTS_PARAMETER = "weights"
WEIGHT_KINDS = ("real", "synthetic", "none")
ANGLES = ("yaw", "pitch", "roll")

# The documented ranges, for servers whose configs do not state them: the pose limit is what the mesh3d and
# LivePortrait stages accept (+-90 degrees); the controls are docs/liveportrait.md's "Inputs and controls" table.
# 0 = no change for every control, so 0 lies inside each range and is the slider's rest position.
DOCUMENTED_POSE_RANGE = (-90.0, 90.0)
DOCUMENTED_CONTROLS: dict[str, tuple[float, float]] = {
    "relative": (0.0, 1.0), "eye_open": (0.0, 1.0), "lip_open": (0.0, 1.0),
    "smile": (-0.3, 1.3), "aaa": (-30.0, 120.0), "eee": (-20.0, 15.0), "woo": (-20.0, 15.0),
    "wink": (0.0, 25.0), "pupil_x": (-15.0, 15.0), "pupil_y": (-15.0, 15.0),
    "eyes": (-20.0, 5.0), "eyebrow": (-10.0, 15.0),
}
DOCUMENTED_SWITCHES = {"relative"}
FALLBACK_RANGE = (-1.0, 1.0)  # a control no one documented: a small symmetric range around "no change"


@dataclass(frozen=True)
class Control:
    name: str
    min: float
    max: float
    help: str = ""
    switch: bool = False     # on/off (0 or 1): a checkbox on the page
    source: str = "server"   # "server" or "documented"


@dataclass
class StudioModel:
    name: str
    pose: bool
    controls: list[Control] = field(default_factory=list)
    pose_range: dict[str, tuple[float, float]] = field(default_factory=dict)
    weights: str = "unknown"

    def as_json(self) -> dict:
        return asdict(self)


def controls_of(info) -> list[Control]:
    """The model's controls with ranges: the server's (the client's `control_specs`, parsed from the `controls`
    parameter), else the names alone with the documented ranges (a server whose configs predate the ranges)."""
    specs = getattr(info, "control_specs", ()) or ()
    if specs:
        return [Control(c.name, float(c.low), float(c.high), c.help, bool(c.switch)) for c in specs]
    return [Control(n, *DOCUMENTED_CONTROLS.get(n, FALLBACK_RANGE), switch=n in DOCUMENTED_SWITCHES,
                    source="documented") for n in info.controls]


def parse_pose_range(raw: str, where: str) -> dict[str, tuple[float, float]]:
    out = {a: DOCUMENTED_POSE_RANGE for a in ANGLES}
    if not raw.strip():
        return out
    try:
        given = json.loads(raw)
        for a in ANGLES:
            if a in given:
                lo, hi = (float(v) for v in given[a])
                if not lo < hi:
                    raise ValueError(f"{a}: low {lo:g} is not below high {hi:g}")
                out[a] = (lo, hi)
    except (ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"{where}: expected JSON {{\"yaw\": [low, high], ...}}: {e}") from None
    return out


def describe(client, family: str, repository: Path | None = None) -> StudioModel:
    """The page's view of one served family (ValueError if the server does not serve it)."""
    info = client.model_info(family)
    params = parameters(client, info.ensemble)
    controls = controls_of(info)
    pose_range = parse_pose_range(params.get(POSE_RANGE_PARAMETER, ""), f"{info.ensemble} {POSE_RANGE_PARAMETER} "
                                  "parameter") if info.pose else {}
    weights = params.get(WEIGHTS_PARAMETER, "").strip().lower()
    if weights not in WEIGHT_KINDS:
        weights = local_weights(family, repository) if repository else "unknown"
    return StudioModel(family, info.pose, controls, pose_range, weights)


def parameters(client, ensemble: str) -> dict[str, str]:
    """The ensemble config's ``parameters`` as {key: string_value}, through the client's own connection."""
    return client.model_parameters(ensemble)


def local_weights(family: str, repository: Path) -> str:
    """real / synthetic / none / missing from the artefact manifests in a local model repository."""
    from facefront.repository import weights_kind
    try:
        return weights_kind(family, Path(repository))
    except (OSError, ValueError):
        return "unknown"
