"""python -m bench: measure facefront models.

  python -m bench load  --model scaleway --users 8 --duration 30 --out out/load     Locust load test on the server
  python -m bench speed --model scaleway --out out/speed                            eager vs onnxruntime vs served
  python -m bench demo --out out/demo                                              the `make demo` run
  python -m bench report --out report                                              the comparison report
  python -m bench lpspeed --out out/lpspeed                                         LivePortrait CPU: eager vs leaves vs served
  python -m bench readme [--check]                                                  README tables from bench/results
  python -m bench precision --out out/precision --frames 1 --results           CPU fp32 vs bf16 per network, served
  python -m bench fsrtspeed --out out/fsrtspeed --sizes 128                         FSRT CPU: served vs eager, cold vs edit
  python -m bench frontend --out bench/results/frontend_cpu.json                    face front end vs MediaPipe, quiet/busy
  python -m bench soak --out bench/results/soak_cpu.json                            16 users x 60 s: failures, RSS growth
  python -m bench mesh3d --results bench/results/mesh3d_eval.json                  mesh3d pose and identity on the photos
  python -m bench fault --results bench/results/fault_cpu.json                       kill a stub under load: failures, recovery
  python -m bench graphs --results bench/results/export_fidelity.json               each ONNX graph vs PyTorch (export check)
  python -m bench capacity --rates 100,1000,10000 --p95-ms 200                     replicas needed per model (capacity model)
"""
from __future__ import annotations

import argparse
import importlib
import sys

# command -> module; each module has add_arguments(parser) and run(args). A new command is one line here.
COMMANDS = {
    "load": "bench.load",
    "speed": "bench.speed",
    "demo": "bench.demo",
    "report": "bench.report",
    "quality": "bench.quality",
    "fidelity": "bench.fidelity",
    "lpspeed": "bench.lpspeed",
    "capacity": "bench.capacity",
    "soak": "bench.soak",
    "frontend": "bench.frontend",
    "fsrtspeed": "bench.fsrtspeed",
    "precision": "bench.precision",
    "readme": "bench.readme",
    "mesh3d": "bench.mesh3d",
    "fault": "bench.fault",
    "graphs": "bench.graphs",
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    modules = {}
    for name, path in COMMANDS.items():
        mod = modules[name] = importlib.import_module(path)
        doc = (mod.__doc__ or "").strip()
        sp = sub.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(sp)
    args = p.parse_args(argv)
    return modules[args.cmd].run(args)


if __name__ == "__main__":
    sys.exit(main())
