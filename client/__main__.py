"""python -m client: frontalize image files with a facefront Triton server, analyse faces, or list what it serves."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import images
from .api import (
    DEFAULT_URLS,
    FrontalizeClient,
    ModelNotServed,
    ServerError,
    ServerUnavailable,
    controls_vector,
    option_inputs,
    pose_vector,
)

EPILOG = """\
examples:
  python -m client models                                  # families served at localhost:8001 (gRPC)
  python -m client frontalize face.jpg -o out/             # -> out/face.png with the scaleway model
  python -m client frontalize photos/ -r -o out/ --model mesh3d --yaw 15
  python -m client frontalize a.jpg b.png --protocol http --url 127.0.0.1:8000 -o out/
  python -m client frontalize face.jpg -o out/ --model liveportrait --control smile=0.5 --control eyes=0.3
  python -m client frontalize face.jpg -o out/ --model liveportrait --yaw 15 --smile 0.5 --eyes 0.3
  python -m client frontalize face.jpg -o out/ --model liveportrait --relative --yaw -10 --eye-open 0.4
  python -m client analyze group.jpg face.jpg --all         # one JSON line per image: boxes, landmarks, pose

Inputs are files or folders; in a folder only image files (%s) are taken, sub-folders
with -r. Each input INPUT/stem.ext is written as OUTDIR/stem.png (PNG, RGB); a file is written whole or not
at all. A bad input is reported on one line (file: reason) and the others still run.

Start a server with `python -m facefront.serving`.
exit status: 0 all written, 1 some inputs failed, 2 nothing could run (server unreachable, unknown model,
no inputs, bad arguments).
""" % ", ".join(sorted(images.IMAGE_EXTENSIONS))


def _control(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep or not name.strip():
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=NUMBER, e.g. smile=0.5; got {text!r}") from None


def named_controls() -> dict[str, tuple]:
    """{name: (Control, [families])} for the named flags (--smile 0.5 = --control smile=0.5), read from the model
    repository's ensemble configs when this checkout has one; the server checks the same names and ranges."""
    try:
        from facefront import repository
        served = repository.families()
    except Exception:  # noqa: BLE001 - a client without a repository still has --control NAME=VALUE
        return {}
    out: dict[str, tuple] = {}
    for fam in served.values():
        for c in fam.controls:
            out.setdefault(c.name, (c, []))[1].append(fam.name)
    return out


NAMED_CONTROLS = named_controls()


def named_options() -> dict[str, tuple[str, list[str]]]:
    """{name: (datatype, [families])} of the optional scalar inputs the repository's models take (e.g. a diffusion
    model's STEPS), for flags like --steps 4."""
    try:
        from facefront import repository
        served = repository.families()
    except Exception:  # noqa: BLE001 - no local repository: --option NAME=VALUE still works
        return {}
    out: dict[str, tuple[str, list[str]]] = {}
    for fam in served.values():
        for name, dtype in fam.options:
            out.setdefault(name.lower(), (dtype, []))[1].append(fam.name)
    return out


NAMED_OPTIONS = named_options()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m client", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    conn = argparse.ArgumentParser(add_help=False)
    conn.add_argument("--protocol", choices=("grpc", "http"), default="grpc", help="wire protocol (default grpc)")
    conn.add_argument("--url", help=f"server host:port (default {DEFAULT_URLS['grpc']} for grpc, "
                                    f"{DEFAULT_URLS['http']} for http)")
    conn.add_argument("--timeout", type=float, default=60.0, metavar="S", help="seconds to wait per request (default 60)")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    f = sub.add_parser("frontalize", parents=[conn], help="frontalize image files into a folder",
                       description="Frontalize image files into OUTDIR, one PNG per input.", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    f.add_argument("-o", "--out", required=True, type=Path, metavar="OUTDIR", help="folder for the results (created)")
    f.add_argument("--model", default="scaleway", help="model family, see `python -m client models` (default scaleway)")
    f.add_argument("-r", "--recursive", action="store_true", help="also take images in sub-folders of folder inputs")
    for angle in ("yaw", "pitch", "roll"):
        f.add_argument(f"--{angle}", type=float, default=0.0, metavar="DEG",
                       help=f"target {angle} in degrees (pose-capable models only; default 0)")
    f.add_argument("--control", type=_control, action="append", default=[], metavar="NAME=VALUE",
                   help="a named control the model takes, e.g. smile=0.5 (repeatable; see `models`)")
    group = f.add_argument_group("model controls (the ensembles' `controls` parameter); each is --control NAME=VALUE")
    for name, (c, fams) in NAMED_CONTROLS.items():
        flag, where = f"--{name.replace('_', '-')}", f"({', '.join(fams)})"
        if c.switch:
            group.add_argument(flag, dest=f"ctl_{name}", action="store_const", const=1.0,
                               help=f"{c.help} {where}; --control {name}=1")
        else:
            group.add_argument(flag, dest=f"ctl_{name}", type=float, metavar="V",
                               help=f"{c.help} {c.low:g}..{c.high:g}, 0 = no change {where}")
    opt = f.add_argument_group("model options (optional scalar inputs of the served models); each is --option NAME=VALUE")
    opt.add_argument("--option", type=_control, action="append", default=[], metavar="NAME=VALUE",
                     help="an optional input the model takes, e.g. steps=4 (repeatable)")
    for name, (dtype, fams) in NAMED_OPTIONS.items():
        opt.add_argument(f"--{name.replace('_', '-')}", dest=f"opt_{name}", metavar="V",
                         type=int if dtype.startswith("INT") else float,
                         help=f"{name.upper()} ({dtype}) of {', '.join(fams)}")
    f.add_argument("-q", "--quiet", action="store_true", help="print only failures and the summary")

    a = sub.add_parser("analyze", parents=[conn], help="detect faces: boxes, 468 landmarks, head pose (JSON lines)",
                       description="Detect the faces in image files. Prints one JSON line per input on stdout: "
                                   '{"file", "faces": [{"box": [x0, y0, x1, y1], "score", "pose": {"yaw", "pitch", '
                                   '"roll"}, "landmarks": [[x, y, z] x 468]}]} (largest face first), or {"file", '
                                   '"error"}. Pixels; degrees.',
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    a.add_argument("--all", dest="all_faces", action="store_true", help="every face, not only the largest")
    a.add_argument("--no-landmarks", action="store_true", help="leave the 468 landmarks out of the output")
    a.add_argument("-r", "--recursive", action="store_true", help="also take images in sub-folders of folder inputs")

    sub.add_parser("models", parents=[conn], help="list the model families the server serves",
                   description="List the model families served (ensembles named <family>_frontalize).")
    return p


def cmd_models(client: FrontalizeClient) -> int:
    names = client.models()
    if not names:
        print(f"no *_frontalize models are ready at {client.url}", file=sys.stderr)
        return 1
    for name in names:
        info = client.model_info(name)
        controls = ",".join(info.controls) or "-"
        print(f"{name:16s} pose={'yes' if info.pose else 'no':3s} controls={controls}")
    return 0


def selected_controls(args) -> dict[str, float]:
    """--control NAME=VALUE pairs plus the named flags (--smile 0.5, --relative)."""
    controls = dict(args.control)
    for name in NAMED_CONTROLS:
        value = getattr(args, f"ctl_{name}", None)
        if value is not None:
            controls[name] = value
    return controls


def selected_options(args) -> dict[str, float]:
    options = {k.lower(): v for k, v in getattr(args, "option", [])}
    for name in NAMED_OPTIONS:
        value = getattr(args, f"opt_{name}", None)
        if value is not None:
            options[name] = value
    return options


def cmd_frontalize(client: FrontalizeClient, args) -> int:
    files, problems = images.discover(args.inputs, recursive=args.recursive)
    for path, reason in problems:
        print(f"{path}: {reason}", file=sys.stderr)
    if not files:
        print("error: no input files to frontalize", file=sys.stderr)
        return 2
    # Check the model and the pose/controls once, before any file: these errors would repeat for every file.
    info = client.model_info(args.model)
    controls = selected_controls(args)
    pose_vector(info, args.yaw, args.pitch, args.roll)
    controls_vector(info, controls)
    options = selected_options(args)
    option_inputs(info, options)

    args.out.mkdir(parents=True, exist_ok=True)
    n, failed, taken = len(files), len(problems), {}
    for i, path in enumerate(files, 1):
        dest = args.out / f"{path.stem}.png"
        tag = f"[{i}/{n}] {path}"
        if dest in taken:
            failed += 1
            print(f"{tag}: FAILED: output {dest} already written for {taken[dest]} (same file stem)", file=sys.stderr)
            continue
        t0 = time.perf_counter()
        try:
            rgb = client.frontalize(path, model=args.model, yaw=args.yaw, pitch=args.pitch, roll=args.roll,
                                    options=options, progress=None if args.quiet else _progress(tag), **controls)
            images.write_png(rgb, dest)
        except ServerUnavailable:
            raise
        except (ValueError, OSError, ServerError) as e:
            failed += 1
            print(f"{tag}: FAILED: {e}", file=sys.stderr)
            continue
        taken[dest] = path
        if not args.quiet:
            print(f"{tag} -> {dest} ({(time.perf_counter() - t0) * 1e3:.0f} ms)", file=sys.stderr)
    print(f"{len(taken)} written to {args.out}, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


def _progress(tag: str):
    """Progress lines of a streaming model: `[i/n] photo.jpg: step 2/4`."""
    return lambda done, total: print(f"{tag}: step {done}/{total}", file=sys.stderr, flush=True)


def face_json(face: dict, landmarks: bool = True) -> dict:
    """A face from `FrontalizeClient.analyze` as plain JSON values (0.01-pixel / 0.01-degree precision)."""
    out = {"box": [round(v, 2) for v in face["box"]], "score": round(face["score"], 4),
           "pose": {k: round(v, 2) for k, v in face["pose"].items()}}
    if landmarks:
        out["landmarks"] = [[round(float(v), 2) for v in p] for p in face["landmarks"]]
    return out


def cmd_analyze(client: FrontalizeClient, args) -> int:
    files, problems = images.discover(args.inputs, recursive=args.recursive)
    for path, reason in problems:
        print(json.dumps({"file": str(path), "error": reason}), flush=True)
    if not files:
        print("error: no input files to analyze", file=sys.stderr)
        return 2
    failed = len(problems)
    for path in files:
        try:
            faces = client.analyze(path, all_faces=args.all_faces)
        except (ServerUnavailable, ModelNotServed):  # the same for every file: stop now (exit 2)
            raise
        except (ValueError, OSError, ServerError) as e:
            failed += 1
            print(json.dumps({"file": str(path), "error": str(e)}), flush=True)
            continue
        line = {"file": str(path), "faces": [face_json(f, not args.no_landmarks) for f in faces]}
        print(json.dumps(line, separators=(",", ":")), flush=True)
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Like parse_args, but options may follow the inputs (`frontalize DIR -r more.jpg -o OUT`)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    if argv and argv[0] in commands:  # argparse cannot intermix positionals with sub-commands, a sub-parser can
        args = commands[argv[0]].parse_intermixed_args(argv[1:])
        args.cmd = argv[0]
        return args
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with FrontalizeClient(args.url, protocol=args.protocol, timeout=args.timeout) as client:
            if args.cmd == "models":
                return cmd_models(client)
            if args.cmd == "analyze":
                return cmd_analyze(client, args)
            return cmd_frontalize(client, args)
    except ServerUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ValueError, ServerError) as e:  # model not served, pose/controls it does not take
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
