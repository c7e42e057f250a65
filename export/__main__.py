"""python -m export: build, check and package the networks of every model family.

Data flows one way: PyTorch networks (+ weights) -> ONNX (+ TensorRT plan) in model_repository/<network>/1/.
Without real weights every family exports deterministic synthetic weights, says so loudly, and records it in
the artefact manifest.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import family as fam

EPILOG = """examples:
  python -m export list
  python -m export parity scaleway ../shared/parity/scaleway/public
  python -m export onnx scaleway                         # synthetic weights unless weights/scaleway/ has them
  python -m export onnx scaleway --weights ~/generator_v0.pt
  python -m export onnx all
  python -m export download scaleway                     # to weights/scaleway/ (needs network access)
  python -m export trt all --precision fp16              # only where TensorRT is installed (NGC image)
  python -m export check-trt                             # static TensorRT-10 op check of every exported graph
"""


def _targets(name: str) -> list[fam.Family]:
    fams = fam.families()
    if name == "all":
        if fam.BROKEN:  # a family folder that does not import must not be skipped silently
            raise SystemExit("error: cannot export every model, these family folders fail to import: "
                             + "; ".join(f"export/{k}: {v}" for k, v in fam.BROKEN.items()))
        return [f for f in fams.values() if f.export]
    return [fam.get(name)]


def fingerprint(f: fam.Family, weights: Path | None) -> dict:
    """What a family's exported graphs are made from: the code (its export folder, export/common, and the runtime
    modules the exporters import), the weights (path, sizes and times of their files) and the tool versions. An
    export whose manifests record the same fingerprint is up to date."""
    import hashlib
    import importlib

    from facefront.artifact import tool_versions
    pkg = Path(importlib.import_module(f"export.{f.name}").__path__[0])
    code = sorted(pkg.rglob("*.py")) + sorted((pkg.parent / "common").glob("*.py")) + \
        sorted((fam.REPO_ROOT / "facefront").rglob("*.py"))
    h = hashlib.sha256()
    for p in code:
        h.update(str(p.relative_to(fam.REPO_ROOT)).encode() + b"\0" + p.read_bytes())
    if weights is None:
        w = "synthetic"
    else:
        files = [weights] if Path(weights).is_file() else sorted(p for p in Path(weights).rglob("*") if p.is_file())
        w = str(weights) + ";" + ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    return {"code_sha256": h.hexdigest(), "weights": w, "tools": tool_versions()}


def _up_to_date(repository: Path, f: fam.Family, want: dict) -> bool:
    from facefront import artifact
    try:
        entries = [artifact.verify(repository / net / "1", "model.onnx") for net in f.networks]
    except artifact.ArtifactError:
        return False
    return bool(entries) and all(e.get("export_fingerprint") == want for e in entries)


def _intact(repository: Path, f: fam.Family, name: str, nets: list[str] | None = None) -> bool:
    from facefront import artifact
    try:
        for net in nets or f.networks:
            artifact.verify(repository / net / "1", name)
    except artifact.ArtifactError:
        return False
    return bool(nets or f.networks)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m export", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    sub.add_parser("list", help="list model families and where their weights come from")
    pp = sub.add_parser("parity", help="compare our networks with a parity fixture set (exit 0 = all pass)")
    pp.add_argument("model", help="model family, e.g. scaleway")
    pp.add_argument("fixture_dir", type=Path, help="folder of <net>.npz fixtures (manifest.json in it or its parent)")
    po = sub.add_parser("onnx", help="export ONNX graphs into the model repository")
    po.add_argument("model", help="model family or 'all'")
    po.add_argument("--weights", type=Path, help="real weights (file or folder); default weights/<model>/ if present")
    po.add_argument("--repository", type=Path, default=fam.MODEL_REPOSITORY)
    po.add_argument("--missing-only", action="store_true",
                    help="skip families whose graphs are exported and intact, even if their code or weights changed")
    po.add_argument("--synthetic-full", action="store_true",
                    help="also export families whose full-size synthetic graphs are huge (AniPortrait: ~11 GB) "
                         "when no real weights are given; they are skipped otherwise")
    po.add_argument("--force", action="store_true",
                    help="re-export even when the manifests show the graphs are up to date (same code, weights, tools)")
    pt = sub.add_parser("trt", help="build TensorRT engines from the exported ONNX (TensorRT 10 required)")
    pt.add_argument("model", help="model family or 'all'")
    pt.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    pt.add_argument("--max-batch", type=int, default=8)
    pt.add_argument("--repository", type=Path, default=fam.MODEL_REPOSITORY)
    pt.add_argument("--missing-only", action="store_true", help="skip engines that exist and match their ONNX")
    pd = sub.add_parser("download", help="fetch a family's released weights into weights/<model>/ (sha256-checked)")
    pd.add_argument("model")
    pd.add_argument("--dest", type=Path, help="default weights/<model>/")
    pc = sub.add_parser("check-trt", help="static check: every exported graph uses only TensorRT-10-native ops")
    pc.add_argument("--repository", type=Path, default=fam.MODEL_REPOSITORY)
    args = p.parse_args(argv)

    if args.cmd == "list":
        for name, f in fam.families().items():
            w = f.default_weights()
            source = f.weights_note or (w if w else f"synthetic (no weights/{name}/)")
            print(f"{name:14s} {f.summary}\n{'':14s} weights: {source}")
        for name, why in fam.BROKEN.items():
            print(f"{name:14s} BROKEN: {why}")
        return 0
    if args.cmd == "parity":
        from .common import parity
        return 0 if parity.run(fam.get(args.model), args.fixture_dir) else 1
    if args.cmd == "onnx":
        from .common.download import WeightsError
        from .common.onnx_tools import ExportMismatch
        for f in _targets(args.model):
            if f.export is None:
                print(f"{f.name}: nothing to export ({f.weights_note or 'no export step'})")
                continue
            if args.missing_only and _intact(args.repository, f, "model.onnx"):
                print(f"{f.name}: exported graphs intact, skipped")
                continue
            weights = args.weights or f.default_weights()
            want = fingerprint(f, weights)
            if not args.force and _up_to_date(args.repository, f, want):
                print(f"{f.name}: up to date (same code, weights and tools as its manifests), kept; --force re-exports")
                continue
            import inspect
            # families with huge synthetic graphs take `full`; the others have nothing to ask
            full = {"full": True} if args.synthetic_full and "full" in inspect.signature(f.export).parameters else {}
            try:
                written = f.export(args.repository, weights, **full)
            except (WeightsError, ExportMismatch) as e:
                print(f"error: {e}", file=sys.stderr)
                return 1
            from facefront import artifact
            for path in written or []:
                artifact.annotate(Path(path).parent, Path(path).name, export_fingerprint=want)
        return 0
    if args.cmd == "trt":
        from .common import trt_build
        try:
            for f in _targets(args.model):
                for net in f.networks:
                    if args.missing_only and _intact(args.repository, f, "model.plan", [net]):
                        print(f"{net}: engine intact, skipped")
                        continue
                    plan = trt_build.build(args.repository / net / "1", args.precision, args.max_batch)
                    print(f"{f.name}: wrote {plan} ({args.precision})")
        except trt_build.TensorRTUnavailable as e:
            print(f"error: {e}", file=sys.stderr)
            return 3
        return 0
    if args.cmd == "download":
        from .common.download import WeightsError
        f = fam.get(args.model)
        if f.download is None:
            print(f"error: {f.name} has no released weights to download", file=sys.stderr)
            return 1
        try:
            path = f.download(args.dest or fam.WEIGHTS_ROOT / f.name)
        except WeightsError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"{f.name}: weights at {path}")
        return 0
    if args.cmd == "check-trt":
        from .common import trt_ops
        bad = 0
        graphs = sorted(args.repository.glob("*/1/model.onnx"))
        for g in graphs:
            problems = trt_ops.check(g)
            print(f"{'OK  ' if not problems else 'FAIL'} {g.relative_to(args.repository)}")
            for pr in problems:
                print(f"      {pr}")
            bad += bool(problems)
        if not graphs:
            print("no exported graphs: run `python -m export onnx all` first", file=sys.stderr)
            return 1
        return 1 if bad else 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
