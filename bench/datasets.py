"""Evaluation data: a dataset manifest format, the built-in photo set and the synthetic multi-pose set.

Manifest: JSON lines (``.jsonl``) or CSV (``.csv``), one face image per record. Fields:

  image      path of the image file (relative paths are relative to the manifest's folder)   required
  identity   who it is (any string; same string = same person)                               optional
  yaw        head yaw in degrees, if known (signs as ``facefront.face.pose``)                optional
  pitch      head pitch in degrees, if known                                                 optional
  frontal    path of a frontal reference photo of the same person, if any                    optional
  synthetic  true when the image was rendered from ``frontal`` (numbers from it favour geometric models)

So Multi-PIE, CFP-FP or your own photos are one small file away, e.g. a CSV::

    image,identity,yaw,frontal
    cfp/001/profile/01.jpg,001,90,cfp/001/frontal/01.jpg

Built in:
  photos     the offline photos of ``make data`` (``facefront.data``), single-face ones; pose measured later.
  synthetic  frontal photos rendered by the mesh3d renderer at yaw +-15/30/45/60 and pitch +-15, each paired
             with the same photo rendered frontal in the same framing as ground truth. Labelled synthetic:
             the renderer is mesh3d's own, so mesh3d is favoured on it.

    python -m bench.datasets synthetic --out .cache/bench/synthetic     # writes images + manifest.jsonl
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("image", "identity", "yaw", "pitch", "frontal", "synthetic")
# single-face offline photos and who they show (face_recognition's test images, insightface's, scikit-image's)
PHOTOS = {"obama.jpg": "obama", "obama2.jpg": "obama", "obama3.jpg": "obama", "biden.jpg": "biden",
          "astronaut.png": "eileen_collins"}
SMALL_PHOTOS = ("obama.jpg", "biden.jpg")
SYNTHETIC_POSES = tuple((y, 0.0) for y in (-60, -45, -30, -15, 15, 30, 45, 60)) + ((0.0, -15.0), (0.0, 15.0))
SMALL_POSES = ((-45.0, 0.0), (-15.0, 0.0), (30.0, 0.0), (60.0, 0.0), (0.0, 15.0))
# pose buckets by |yaw| (nearest of the rendered angles): label -> (low, high) degrees, high exclusive
BUCKETS = {"0": (0, 7.5), "15": (7.5, 22.5), "30": (22.5, 37.5), "45": (37.5, 52.5), "60+": (52.5, 181)}


class ManifestError(ValueError):
    """A manifest line that cannot be used; the message names the file and line."""


@dataclass
class Sample:
    image: str
    identity: str = ""
    yaw: float | None = None
    pitch: float | None = None
    frontal: str | None = None
    synthetic: bool = False

    @property
    def name(self) -> str:
        return Path(self.image).stem


def bucket(yaw: float | None) -> str:
    """The pose bucket of a yaw angle (by |yaw|); '?' when unknown."""
    if yaw is None:
        return "?"
    a = abs(float(yaw))
    return next((k for k, (lo, hi) in BUCKETS.items() if lo <= a < hi), "60+")


def _number(v, where: str, name: str) -> float | None:
    if v is None or (isinstance(v, str) and v.strip() in ("", "NA", "N/A", "null")):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ManifestError(f"{where}: {name} must be a number of degrees, not {v!r}") from None


def _bool(v) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes", "y") if v is not None else False


def read_manifest(path: str | Path, check_files: bool = True) -> list[Sample]:
    """Samples of a .jsonl or .csv manifest; paths made absolute against the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest")
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "image" not in reader.fieldnames:
                raise ManifestError(f"{path}: the CSV header must have an 'image' column; has {reader.fieldnames}")
            records = [(i + 2, r) for i, r in enumerate(reader)]
    else:
        records = []
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise ManifestError(f"{path}:{i}: not JSON ({e.msg})") from None
            if not isinstance(r, dict):
                raise ManifestError(f"{path}:{i}: each line must be a JSON object")
            records.append((i, r))
    samples = []
    for line, r in records:
        where = f"{path}:{line}"
        unknown = sorted(set(r) - set(FIELDS))
        if unknown:
            raise ManifestError(f"{where}: unknown field(s) {', '.join(unknown)}; fields: {', '.join(FIELDS)}")
        if not r.get("image"):
            raise ManifestError(f"{where}: 'image' is required")
        image = str((path.parent / str(r["image"])).resolve())
        frontal = str((path.parent / str(r["frontal"])).resolve()) if r.get("frontal") else None
        for p in (image, frontal):
            if check_files and p and not Path(p).is_file():
                raise ManifestError(f"{where}: no such file {p}")
        samples.append(Sample(image=image, identity=str(r.get("identity") or ""),
                              yaw=_number(r.get("yaw"), where, "yaw"), pitch=_number(r.get("pitch"), where, "pitch"),
                              frontal=frontal, synthetic=_bool(r.get("synthetic"))))
    if not samples:
        raise ManifestError(f"{path}: no samples")
    return samples


def write_manifest(samples: list[Sample], path: str | Path) -> Path:
    """JSON lines, paths relative to the manifest's folder where they lie under it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def rel(p):
        if not p:
            return p
        try:
            return str(Path(p).resolve().relative_to(path.parent.resolve()))
        except ValueError:
            return str(p)

    with open(path, "w") as f:
        for s in samples:
            d = {k: v for k, v in asdict(s).items() if v not in (None, "", False)}
            d["image"] = rel(s.image)
            if s.frontal:
                d["frontal"] = rel(s.frontal)
            f.write(json.dumps(d) + "\n")
    return path


def photo_samples(names=SMALL_PHOTOS) -> list[Sample]:
    """The offline photos (gathered into .cache/data first if needed); pose unknown, no frontal reference."""
    from facefront.data import photo
    unknown = [n for n in names if n not in PHOTOS]
    if unknown:
        raise ValueError(f"not a built-in single-face photo: {', '.join(unknown)}; built in: {', '.join(PHOTOS)}")
    return [Sample(image=str(photo(n)), identity=PHOTOS[n]) for n in names]


def synthetic_samples(out: str | Path, sources=SMALL_PHOTOS, poses=SMALL_POSES, size: int = 256,
                      progress=None) -> list[Sample]:
    """Render each source photo at each (yaw, pitch) with mesh3d, with its frontal render as ground truth.

    Cached: images already in ``out`` are reused. Returns the samples and writes ``out/manifest.jsonl``."""
    import cv2

    from facefront.data import load_rgb
    from facefront.face import analyze
    from facefront.face.mesh3d import frontalize
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    samples = []
    for k, name in enumerate(sources):
        stem = Path(name).stem
        gt_path = out / f"{stem}_frontal.png"
        todo = [(y, p) for y, p in poses if not (out / f"{stem}_y{y:+.0f}_p{p:+.0f}.png").is_file()]
        if todo or not gt_path.is_file():
            rgb = load_rgb(name)
            face = analyze(rgb, max_faces=1)[0]
            if not gt_path.is_file():
                gt = frontalize(rgb, yaw=0, pitch=0, size=size, face=face)
                cv2.imwrite(str(gt_path), cv2.cvtColor(gt, cv2.COLOR_RGB2BGR))
            for y, p in todo:
                im = frontalize(rgb, yaw=y, pitch=p, size=size, face=face)
                cv2.imwrite(str(out / f"{stem}_y{y:+.0f}_p{p:+.0f}.png"), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
        for y, p in poses:
            samples.append(Sample(image=str(out / f"{stem}_y{y:+.0f}_p{p:+.0f}.png"), identity=PHOTOS.get(name, stem),
                                  yaw=float(y), pitch=float(p), frontal=str(gt_path), synthetic=True))
        if progress:
            progress(f"synthetic set: {k + 1}/{len(sources)} sources rendered")
    write_manifest(samples, out / "manifest.jsonl")
    return samples


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.datasets", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synthetic", help="render the synthetic multi-pose set and write its manifest")
    s.add_argument("--out", type=Path, default=REPO_ROOT / ".cache" / "bench" / "synthetic")
    s.add_argument("--photos", nargs="+", default=list(SMALL_PHOTOS), help=f"source photos ({', '.join(PHOTOS)})")
    s.add_argument("--full", action="store_true", help="every yaw +-15/30/45/60 and pitch +-15 (default: 5 poses)")
    s.add_argument("--size", type=int, default=256)
    c = sub.add_parser("check", help="read a manifest and print what it holds")
    c.add_argument("manifest", type=Path)
    a = ap.parse_args(argv)
    try:
        if a.cmd == "synthetic":
            poses = SYNTHETIC_POSES if a.full else SMALL_POSES
            samples = synthetic_samples(a.out, a.photos, poses, a.size, progress=lambda m: print(m, file=sys.stderr))
            print(f"{len(samples)} synthetic samples -> {a.out / 'manifest.jsonl'}")
        else:
            samples = read_manifest(a.manifest)
            by = {}
            for s in samples:
                by[bucket(s.yaw)] = by.get(bucket(s.yaw), 0) + 1
            print(f"{len(samples)} samples, {len({s.identity for s in samples})} identities, "
                  f"{sum(1 for s in samples if s.frontal)} with a frontal reference, "
                  f"{sum(s.synthetic for s in samples)} synthetic; by |yaw| bucket: {by}")
    except (ManifestError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
