"""The model repository's configs: both flavours agree, ensembles are wired, exported graphs match configs."""
from __future__ import annotations

import subprocess
from pathlib import Path

import onnx
import pytest
from tritonclient.grpc import model_config_pb2 as mc

from facefront import repository
from facefront.serving.stage import load_stage
from tests.conftest import REPO

REPOSITORY = repository.MODEL_REPOSITORY
MODELS = [REPOSITORY / m for m in repository.models()]

ONNX_TYPES = {onnx.TensorProto.FLOAT: mc.TYPE_FP32, onnx.TensorProto.UINT8: mc.TYPE_UINT8,
              onnx.TensorProto.FLOAT16: mc.TYPE_FP16, onnx.TensorProto.INT64: mc.TYPE_INT64,
              onnx.TensorProto.INT32: mc.TYPE_INT32}


parse = repository.parse


def cpu_config(model_dir: Path) -> mc.ModelConfig:
    return repository.config(model_dir.name, "cpu")  # configs/cpu.pbtxt, else config.pbtxt as Triton falls back


def io_of(cfg):
    return ([(t.name, t.data_type, list(t.dims)) for t in cfg.input],
            [(t.name, t.data_type, list(t.dims)) for t in cfg.output])


def test_repository_has_models():
    assert any(m.name == "scaleway_frontalize" for m in MODELS)


@pytest.mark.parametrize("model_dir", MODELS, ids=lambda p: p.name)
def test_config_parses_and_names_its_folder(model_dir):
    for cfg in (parse(model_dir / "config.pbtxt"), cpu_config(model_dir)):
        assert cfg.name == model_dir.name
        assert (model_dir / "1").is_dir(), "Triton needs a version folder"


@pytest.mark.parametrize("model_dir", [m for m in MODELS if parse(m / "config.pbtxt").platform == "tensorrt_plan"],
                         ids=lambda p: p.name)
def test_network_leaf_has_two_flavours_with_the_same_interface(model_dir):
    gpu, cpu = parse(model_dir / "config.pbtxt"), parse(model_dir / "configs" / "cpu.pbtxt")
    assert all(g.kind == mc.ModelInstanceGroup.KIND_GPU for g in gpu.instance_group)
    assert cpu.backend == "python" and all(g.kind == mc.ModelInstanceGroup.KIND_CPU for g in cpu.instance_group)
    assert io_of(gpu) == io_of(cpu)
    assert gpu.max_batch_size == cpu.max_batch_size > 0
    assert gpu.HasField("dynamic_batching") and cpu.HasField("dynamic_batching")
    # the CPU leaf runs the exported graph (OnnxStage) or, per measured speed, the same network in PyTorch (LeafStage)
    from facefront.serving.onnx_stage import OnnxStage
    assert issubclass(load_stage(repository.parameters(cpu)["stage"]), OnnxStage)


PYTHON_MODELS = [m for m in MODELS if cpu_config(m).backend == "python"]


@pytest.mark.parametrize("model_dir", PYTHON_MODELS, ids=lambda p: p.name)
def test_every_python_model_is_the_same_line_and_its_config_names_the_stage(model_dir):
    """model.py is identical everywhere: the class and its settings are the config's `parameters`."""
    assert (model_dir / "1" / "model.py").read_bytes() == (PYTHON_MODELS[0] / "1" / "model.py").read_bytes()
    params = repository.parameters(cpu_config(model_dir))
    assert load_stage(params["stage"], model_dir.name)   # imports and is a Stage


def test_stage_parameter_errors_are_clear():
    with pytest.raises(RuntimeError, match="must name a facefront stage"):
        load_stage("os:system", "evil")
    with pytest.raises(RuntimeError, match="cannot be loaded"):
        load_stage("facefront.serving.crop_stage:NoSuchStage", "m")
    with pytest.raises(RuntimeError, match="is not a Stage"):
        load_stage("facefront.repository:Control", "m")


@pytest.mark.parametrize("model_dir", [m for m in MODELS if parse(m / "config.pbtxt").platform == "ensemble"],
                         ids=lambda p: p.name)
def test_ensemble_steps_are_wired(model_dir):
    ens = parse(model_dir / "config.pbtxt")
    produced = {t.name for t in ens.input}
    for step in ens.ensemble_scheduling.step:
        member = REPOSITORY / step.model_name
        assert member.is_dir(), f"{step.model_name} missing"
        for flavour in (parse(member / "config.pbtxt"), cpu_config(member)):
            ins, outs = io_of(flavour)
            assert set(step.input_map) <= {n for n, _, _ in ins}
            assert set(step.output_map) <= {n for n, _, _ in outs}
            required = {t.name for t in flavour.input if not t.optional}
            assert required <= set(step.input_map), f"{step.model_name} inputs not all fed"
        assert set(step.input_map.values()) <= produced, f"{step.model_name} reads a tensor nobody produced"
        produced |= set(step.output_map.values())
    assert {t.name for t in ens.output} <= produced
    assert ens.max_batch_size > 0
    assert model_dir.name.endswith("_frontalize") and "FRONTAL" in {t.name for t in ens.output}
    assert "IMAGE" in {t.name for t in ens.input}


def _exported():
    return sorted(REPOSITORY.glob("*/1/model.onnx"))


@pytest.mark.parametrize("graph", _exported(), ids=lambda p: p.parent.parent.name)
def test_exported_graph_matches_its_config_and_is_trt_native(graph):
    from export.common import trt_ops
    from facefront import artifact
    cfg = parse(graph.parent.parent / "config.pbtxt")
    m = onnx.load(str(graph), load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    for vis, tensors in (([i for i in m.graph.input if i.name not in inits], cfg.input), (m.graph.output, cfg.output)):
        assert [v.name for v in vis] == [t.name for t in tensors]
        for v, t in zip(vis, tensors, strict=True):
            assert ONNX_TYPES[v.type.tensor_type.elem_type] == t.data_type, v.name
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in v.type.tensor_type.shape.dim]
            assert dims[0] == -1, f"{v.name}: batch axis must be dynamic"
            assert len(dims) - 1 == len(t.dims) and all(a == b or b == -1 for a, b in zip(dims[1:], t.dims, strict=True)), v.name
    assert trt_ops.check(m) == []
    artifact.verify(graph.parent, "model.onnx")


def test_dockerfile_lints_clean_and_matches_the_cpu_core():
    text = (REPO / "Dockerfile").read_text()
    assert "nvcr.io/nvidia/tritonserver:24.10-py3" in text  # Triton 2.51, the core bundled by nvidia-pytriton 0.7.0
    hadolint = REPO / ".venv" / "bin" / "hadolint"
    exe = str(hadolint) if hadolint.exists() else "hadolint"
    r = subprocess.run([exe, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_gpu_requirements_agree_with_cpu_pins():
    def pins(name):
        out = {}
        for line in (REPO / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if "==" in line:
                k, v = line.split("==")
                out[k.split("[")[0].lower()] = v
        return out
    cpu, gpu = pins("requirements.txt"), pins("requirements-gpu.txt")
    for k in set(cpu) & set(gpu):
        assert cpu[k] == gpu[k], k


def test_docker_build_context_leaves_out_local_state():
    ignored = {ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines() if ln.strip() and ln[0] != "#"}
    assert {".venv", ".cache", "weights", "out"} <= ignored
    text = (REPO / "Dockerfile").read_text()
    assert "--cache-config=local" in text            # LivePortrait's F/M response cache on the GPU flavour too
    assert "127.0.0.1:8000-8002" in text and "--shm-size" in text
