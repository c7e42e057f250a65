"""Render the README's measured tables from the results files that their commands wrote, or check that they agree.

A table in README.md between `<!-- results: NAME -->` and `<!-- /results -->` is made by RENDERERS[NAME] from
bench/results/*.json (each file holds the machine, the date or the command that produced it). `python -m bench
readme` rewrites those blocks; `--check` changes nothing and exits 1 naming every block that differs from its
results, which `tests/test_readme_numbers.py` runs, so a README number cannot drift from its measurement.

examples:
  python -m bench readme            # re-render the blocks after a benchmark wrote new results
  python -m bench readme --check    # exit 1 if README and results disagree
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from facefront.repository import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results"
README = REPO_ROOT / "README.md"
BLOCK = re.compile(r"(<!-- results: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)


def _load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def _f(v, fmt="{:.1f}") -> str:
    return "" if v is None else fmt.format(v)


def soak() -> str:
    d = _load("soak_cpu.json")
    rows = ["| model | users x seconds | requests | failures | server RSS after warm-up -> after, MB | growth |",
            "|---|---|---:|---:|---|---:|"]
    for m, r in d["models"].items():
        rows.append(f"| {m} | {r['users']} x {r['seconds']:g} | {r['requests']} | {r['failures']} | "
                    f"{r['rss_after_warmup_mb']} -> {r['rss_after_soak_mb']} | {r['rss_growth_pct']:+.1f} % |")
    return "\n".join(rows) + f"\n\n`{d['command']}` ({d['date']}, {d['machine']['cpus']} CPUs).\n"


def frontend() -> str:
    d = _load("frontend_cpu.json")
    rows = ["| condition | photo | facefront ms | before ms | MediaPipe ms | front end (decode + analysis + crop), "
            "one core: images/s |", "|---|---|---:|---:|---:|---:|"]
    for cond, photos in d["conditions"].items():
        for name, r in photos.items():
            if name.startswith("_"):
                continue
            rows.append(f"| {cond} | {name} ({r['pixels']}) | {_f(r['facefront_ms'])} | "
                        f"{_f(r['facefront_ort_defaults_ms'])} | {_f(r.get('mediapipe_ms'))} | "
                        f"{_f(r['front_end_images_per_s_one_core'])} |")
    return "\n".join(rows) + f"\n\n`{d['command']}` ({d['date']}).\n"


GPU_MODES = {"eager32": "eager fp32 (TF32 off)", "tf32": "eager TF32", "fp16": "eager fp16 (M, S in fp32)",
             "compile": "torch.compile fp32", "graphs16": "fp16 + CUDA graphs"}


def gpu_liveportrait() -> str:
    d = _load("gpu_liveportrait_h200.json")
    rows = ["| mode | batch 1 frames/s (ms/frame) | batch 4 | batch 8 | rel. L2 vs fp32 | PSNR vs fp32 (dB) | max abs |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for mode, label in GPU_MODES.items():
        m = d["modes"][mode]
        sp = {s["batch"]: s for s in m["speed"]}
        fid = m["fidelity_vs_eager32"]
        psnr = "" if fid["psnr_db"] in (None, float("inf")) else f"{fid['psnr_db']:.1f}"
        rows.append(f"| {label} | {sp[1]['fps']:.1f} ({sp[1]['ms_per_frame']:.1f}) | {sp[4]['fps']:.1f} | "
                    f"{sp[8]['fps']:.1f} | {fid['rel_l2']:.1e} | {psnr} | {fid['max_abs']:.3f} |")
    rows += ["", "Inside Triton's python backend (the same code as a python-backend model, HTTP clients on the same "
             "machine, dynamic batching up to 8):", "",
             "| mode | 1 client: frames/s | p50 ms | 8 clients: frames/s | p50 / p95 ms |", "|---|---:|---:|---:|---:|"]
    for mode, m in d["triton"]["models"].items():
        runs = {r["users"]: r for r in m["runs"]}
        one, eight = runs[1], runs[8]
        rows.append(f"| {GPU_MODES.get(mode, mode)} | {one['fps']:.1f} | {one['p50_ms']:.1f} | {eight['fps']:.1f} | "
                    f"{eight['p50_ms']:.0f} / {eight['p95_ms']:.0f} |")
    return "\n".join(rows) + f"\n\n{d['gpu']}, torch {d['torch']}, weights {d['weights']}.\n"


RENDERERS = {"soak": soak, "frontend": frontend, "gpu-liveportrait": gpu_liveportrait}


def render(text: str) -> tuple[str, list[str]]:
    """(README with every results block re-rendered, names of the blocks that changed)."""
    changed = []

    def one(m):
        name = m.group("name")
        if name not in RENDERERS:
            raise SystemExit(f"README block {name!r} has no renderer; known: {', '.join(RENDERERS)}")
        body = RENDERERS[name]()
        if body != m.group("body"):
            changed.append(name)
        return m.group(1) + body + m.group(4)
    return BLOCK.sub(one, text), changed


def add_arguments(p) -> None:
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block differs from its results")
    p.add_argument("--readme", type=Path, default=README)


def run(args) -> int:
    text = args.readme.read_text()
    new, changed = render(text)
    if args.check:
        for name in changed:
            print(f"README block {name!r} differs from its results: run `python -m bench readme`", file=sys.stderr)
        return 1 if changed else 0
    if changed:
        args.readme.write_text(new)
    print(f"re-rendered: {', '.join(changed) or 'nothing (up to date)'}")
    return 0


def main(argv=None) -> int:
    from . import standalone
    return standalone("bench.readme", argv)


if __name__ == "__main__":
    sys.exit(main())
