"""Numeric precision of a CPU leaf: `fp32`, `bf16` or `auto`, per model config (parameter `precision`).

bf16 only pays on CPUs with bf16 matrix hardware: Intel AMX (`amx_bf16`, Sapphire Rapids and later) or
AVX-512 BF16 (`avx512_bf16`: Cooper Lake, AMD Zen 4 and later). Without them oneDNN emulates bf16 and is slower
than fp32, so `auto` picks bf16 only where /proc/cpuinfo lists one of those flags, and fp32 everywhere else
(the path every parity test checks). `FACEFRONT_PRECISION=fp32|bf16|auto` in the environment overrides every
config at once: the benchmark serves the same repository both ways with it, and an operator can fall back to fp32
without editing configs.

bf16 runs in OpenVINO (a leaf configured `backend: openvino`: its CPU plugin's native bf16 convolutions) or in PyTorch
(autocast + channels-last weights, or a trace with bf16 regions; see facefront.serving.torch_stage): onnxruntime has
no bf16 CPU kernels for convolutions on x86, so an onnxruntime leaf that resolves to bf16 runs its TorchScript
artefact.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CHOICES = ("fp32", "bf16", "auto")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")   # either one gives oneDNN native bf16 dot products
ENV = "FACEFRONT_PRECISION"


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The `flags` of the first processor in `cpuinfo` (a path, or the file's text); empty where unreadable
    (not Linux): no flags means fp32, the safe default."""
    text = str(cpuinfo)
    if "\n" not in text:
        try:
            text = Path(text).read_text()
        except OSError:
            return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):    # x86, aarch64
            return frozenset(value.split())
    return frozenset()


@dataclass(frozen=True)
class Decision:
    precision: str     # "fp32" or "bf16": what runs
    requested: str     # what the config (or FACEFRONT_PRECISION) asked for
    reason: str        # one line for the server log and --list

    def __str__(self) -> str:
        return f"precision {self.precision} ({self.reason})"


def decide(requested: str | None, flags: frozenset[str] | set[str] | None = None,
           environ: dict[str, str] | None = None) -> Decision:
    """Resolve a config's `precision` on a CPU with `flags` (None: this machine's). A config without the parameter
    (None) is fp32 and FACEFRONT_PRECISION does not touch it: only leaves that opted in switch. `bf16` is honoured
    even without the hardware (slow, but what was asked for); `auto` needs one of BF16_FLAGS."""
    if requested is None:
        return Decision("fp32", "fp32", "no precision parameter")
    env = (os.environ if environ is None else environ).get(ENV, "").strip()
    source = "config"
    if env:
        requested, source = env, ENV
    requested = requested.strip().lower()
    if requested not in CHOICES:
        raise ValueError(f"precision must be one of {', '.join(CHOICES)}, got {requested!r} (from {source})")
    if requested != "auto":
        return Decision(requested, requested, f"{requested} from {source}")
    flags = cpu_flags() if flags is None else frozenset(flags)
    have = [f for f in BF16_FLAGS if f in flags]
    if have:
        return Decision("bf16", "auto", f"auto from {source}: CPU has {', '.join(have)}")
    return Decision("fp32", "auto", f"auto from {source}: CPU has neither {' nor '.join(BF16_FLAGS)}")


def runtime(params: dict[str, str], precision: str) -> str:
    """Which runtime a LeafStage with config `params` uses at `precision` (facefront.serving.torch_stage)."""
    backend = params.get("backend", "onnxruntime")
    if backend == "openvino":
        from facefront.sessions import openvino_import_error
        if openvino_import_error() is not None:
            return runtime({**params, "backend": "onnxruntime"}, precision) + " (OpenVINO does not import)"
        if precision == "bf16" and params.get("fp32_head"):
            return f"OpenVINO with an fp32 head (up to {params['fp32_head']})"
        return "OpenVINO"
    if backend == "torch" or precision == "bf16":
        how = "PyTorch" if backend == "torch" else "PyTorch (onnxruntime has no bf16 CPU kernels)"
        if precision == "bf16" and params.get("bf16_artifact"):
            how += f" with fp32 islands ({params['bf16_artifact']})"
        return how
    return backend


def describe(params: dict[str, str]) -> str:
    """What a stage with config `params` runs at on this machine, and on which runtime, for `--list`: "" when it has
    no precision parameter (fp32, nothing to say)."""
    if "precision" not in params:
        return ""
    try:
        d = decide(params["precision"])
    except ValueError as e:
        return f"bad precision: {e}"
    return f"{d} on {runtime(params, d.precision)}"
