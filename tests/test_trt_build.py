"""The TensorRT engine build's decisions, tested without TensorRT: a fake `tensorrt` module records what the builder
was told (flags, per-layer precision, batch profile), on a real exported graph and its manifest."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from export.common import onnx_tools, trt_build
from facefront import artifact


class FakeLayer:
    def __init__(self, name):
        self.name, self.precision, self.num_outputs, self.output_types = name, "default", 1, {}

    def set_output_type(self, k, t):
        self.output_types[k] = t


class FakeNetwork:
    def __init__(self, layers):
        self.layers = [FakeLayer(n) for n in layers]
        self.num_layers = len(self.layers)
        self.num_inputs = 1

    def get_layer(self, i):
        return self.layers[i]

    def get_input(self, i):
        return SimpleNamespace(name="x", shape=(-1, 4))


class FakeConfig:
    def __init__(self):
        self.flags = set()

    def set_memory_pool_limit(self, *a):
        pass

    def set_flag(self, f):
        self.flags.add(f)

    def add_optimization_profile(self, p):
        self.profile = p


class FakeProfile:
    def set_shape(self, name, lo, opt, hi):
        self.shapes = (name, lo, opt, hi)


def fake_trt(layers):
    seen = {}

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            seen["network"] = FakeNetwork(layers)
            return seen["network"]

        def create_builder_config(self):
            seen["config"] = FakeConfig()
            return seen["config"]

        def create_optimization_profile(self):
            return FakeProfile()

        def build_serialized_network(self, network, config):
            return b"plan"

    class OnnxParser:
        num_errors = 0

        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            return True

    trt = SimpleNamespace(Logger=SimpleNamespace(WARNING=0, __call__=None), Builder=Builder, OnnxParser=OnnxParser,
                          MemoryPoolType=SimpleNamespace(WORKSPACE="ws"), float32="fp32",
                          BuilderFlag=SimpleNamespace(FP16="FP16", OBEY_PRECISION_CONSTRAINTS="OBEY"))
    trt.Logger = lambda level: None
    trt.Logger.WARNING = 0
    return trt, seen


@pytest.fixture
def graph(tmp_path):
    """A tiny exported graph with a manifest, as `python -m export onnx` leaves it."""
    out = tmp_path / "1" / "model.onnx"
    onnx_tools.export(torch.nn.Linear(4, 2).eval(), [torch.zeros(2, 4)], out, ["x"], ["y"])
    artifact.write(out, model="toy", network="toy_leaf", weights="synthetic", weights_sha256=None, opset=17)
    return out


def _entry(graph, **fields):
    artifact.annotate(graph.parent, "model.onnx", **fields)


def test_fp16_build_pins_the_layers_the_export_names(graph, monkeypatch):
    trt, seen = fake_trt(["/pe/Mul", "/mlp/Gemm", "/pe/Sin"])
    monkeypatch.setattr(trt_build, "_tensorrt", lambda: trt)
    _entry(graph, tensorrt_fp32_layers=["/pe/Mul", "/pe/Sin", "/gone/Cos"])
    plan = trt_build.build(graph.parent, "fp16", max_batch=8)
    assert seen["config"].flags == {"FP16", "OBEY"}
    pinned = {layer.name: (layer.precision, layer.output_types) for layer in seen["network"].layers}
    assert pinned["/pe/Mul"] == ("fp32", {0: "fp32"}) and pinned["/pe/Sin"] == ("fp32", {0: "fp32"})
    assert pinned["/mlp/Gemm"] == ("default", {})
    e = json.loads((plan.parent / "manifest.json").read_text())["artifacts"]["model.plan"]
    assert (e["precision"], e["precision_requested"], e["fp32_layers"]) == ("fp16", "fp16", 3)
    assert e["fp32_layers_missing"] == ["/gone/Cos"]            # a renamed node is reported, not silently lost
    assert seen["config"].profile.shapes == ("x", (1, 4), (4, 4), (8, 4))


def test_a_network_pinned_to_fp32_builds_fp32_when_fp16_is_asked(graph, monkeypatch):
    trt, seen = fake_trt(["/a"])
    monkeypatch.setattr(trt_build, "_tensorrt", lambda: trt)
    _entry(graph, tensorrt_precision="fp32", tensorrt_precision_reason="activations overflow fp16")
    plan = trt_build.build(graph.parent, "fp16")
    assert "FP16" not in seen["config"].flags
    e = json.loads((plan.parent / "manifest.json").read_text())["artifacts"]["model.plan"]
    assert e["precision"] == "fp32" and "overflow" in e["precision_reason"]


def test_fp32_build_pins_nothing_and_bad_precision_fails_early(graph, monkeypatch):
    trt, seen = fake_trt(["/pe/Mul"])
    monkeypatch.setattr(trt_build, "_tensorrt", lambda: trt)
    _entry(graph, tensorrt_fp32_layers=["/pe/Mul"])
    trt_build.build(graph.parent, "fp32")
    assert seen["config"].flags == set() and seen["network"].layers[0].precision == "default"
    with pytest.raises(ValueError, match="fp16 or fp32"):
        trt_build.build(graph.parent, "int8")


def test_liveportrait_export_declares_its_tensorrt_precision_choices():
    from export.liveportrait import export_spec as es
    assert es.TRT_SAMPLER == "planar_4d"          # fp16 gather_8 lost 4 dB on the H200; planar_4d 2 dB
    assert es.TENSORRT_PRECISION["M"][0] == "fp32"
    assert trt_build.precision_plan({"tensorrt_precision": "fp32"}, "fp16")["built"] == "fp32"


def test_a_dynamic_pixel_axis_takes_the_range_its_export_declares():
    shapes = trt_build.profile_shapes("pixels", (-1, -1, 2), (1, 2, 4), {"1": [1, 4096, 8192]})
    assert shapes == ((1, 1, 2), (2, 4096, 2), (4, 8192, 2))
    assert trt_build.profile_shapes("z", (-1, 1024, 768), (1, 4, 8), {}) == ((1, 1024, 768), (4, 1024, 768),
                                                                          (8, 1024, 768))
    with pytest.raises(RuntimeError, match="axis 1 .* declares no range"):
        trt_build.profile_shapes("pixels", (-1, -1, 2), (1, 2, 4), {})
