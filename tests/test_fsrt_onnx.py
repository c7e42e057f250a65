"""FSRT's exported ONNX graphs vs PyTorch with onnxruntime, their interfaces, and the TensorRT-10 op check."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from export.common import onnx_tools, trt_ops
from export.fsrt import FAMILY, export_spec, reference

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def nets():
    return reference.build()


@pytest.fixture(scope="module")
def decoder_graph(tmp_path_factory, nets):
    path = tmp_path_factory.mktemp("fsrt_dec") / "fsrt_decoder" / "1" / "model.onnx"
    info = export_spec.export_network("decoder", path, nets)
    return path, info


def _dims(vi):
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def test_decoder_graph_runs_in_chunks_of_any_size(decoder_graph, nets):
    path, info = decoder_graph
    assert info["ort_vs_torch_max_abs"]["rgb"] <= 1e-4
    model = onnx.load(str(path), load_external_data=False)
    assert {i.name: _dims(i) for i in model.graph.input} == {
        "z": ["batch", 1024, 768], "pixels": ["batch", "pixels", 2], "keypoints": ["batch", 10, 2],
        "expression": ["batch", 256]}
    assert _dims(model.graph.output[0]) == ["batch", "pixels", 3]
    assert trt_ops.check(model) == []
    # one 64x64 frame (4096 pixels) decoded by ORT in uneven chunks equals PyTorch in one call
    ex = export_spec.example_inputs("decoder", batch=1, nets=nets)
    grid = reference.pixel_grid(64).reshape(1, -1, 2).numpy()
    sess = onnx_tools.session(path, threads=2)
    parts = [sess.run(None, {"z": ex["z"], "pixels": grid[:, i:i + 1500], "keypoints": ex["keypoints"],
                             "expression": ex["expression"]})[0] for i in range(0, grid.shape[1], 1500)]
    got = np.concatenate(parts, 1)
    with torch.no_grad():
        want = nets.decoder(*(torch.from_numpy(a) for a in (ex["z"], grid, ex["keypoints"], ex["expression"]))).numpy()
    assert got.shape == (1, 4096, 3)
    assert np.abs(got - want).max() <= 1e-4
    assert want.std(1).max() > 1e-3  # the pixels are not all alike: the comparison sees position-dependent output


def test_positional_encoding_nodes_are_named_for_fp32(decoder_graph):
    path, info = decoder_graph
    layers = set(info["tensorrt_fp32_layers"])
    model = onnx.load(str(path), load_external_data=False)
    trig = [n for n in model.graph.node if n.op_type in ("Sin", "Cos")]
    assert len(trig) == 4 and all(n.name in layers for n in trig)  # keypoint and pixel encodings, sin and cos
    muls = [n.name for n in model.graph.node if n.op_type == "Mul" and n.name in layers]
    assert len(muls) == 2  # the arguments c * 2^o * pi
    assert not any("render_mlp" in n or "to_q" in n for n in layers)


@pytest.mark.slow
def test_export_all_four_with_manifests(tmp_path):
    """export_spec.export into a scratch repository (~1 minute): four graphs, each ORT-checked (batch 2 against
    a batch-1 trace), TensorRT-native, with a manifest that records synthetic weights and the fp32 layers."""
    logs = []
    paths = export_spec.export(tmp_path, log=logs.append)
    assert [p.parent.parent.name for p in paths] == FAMILY.networks
    assert any("SYNTHETIC" in line for line in logs)
    for p, (net, spec) in zip(paths, export_spec.NETWORKS.items(), strict=True):
        entry = json.loads((p.parent / "manifest.json").read_text())["artifacts"]["model.onnx"]
        assert entry["synthetic_weights"] and entry["model"] == "fsrt" and entry["network"] == spec.folder
        assert max(entry["ort_vs_torch_max_abs"].values()) <= spec.tolerance
        assert trt_ops.check(p) == []
        model = onnx.load(str(p), load_external_data=False)
        assert [i.name for i in model.graph.input] == list(spec.inputs)
        assert [o.name for o in model.graph.output] == list(spec.outputs)
        for o in model.graph.output:
            assert _dims(o)[1:] == [d if d != -1 else "pixels" for d in spec.outputs[o.name]]
        has_pe = net in ("encoder", "decoder")
        assert bool(entry["tensorrt_fp32_layers"]) == has_pe and bool(entry["tensorrt_precision_note"]) == has_pe
    enc = onnx.load(str(paths[2]), load_external_data=False)
    # the encoder's pixel encoding is a constant: only the keypoint encoding runs sin/cos
    assert sum(n.op_type == "Sin" for n in enc.graph.node) == 1
    assert not (tmp_path / "fsrt_decoder" / "config.pbtxt").exists()


def test_family_declaration_is_light():
    """Importing the package must not import torch (the CLI lists families cheaply)."""
    import subprocess
    import sys
    code = "import sys, export.fsrt as f; print(f.FAMILY.name, 'torch' in sys.modules)"
    repo = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo).stdout.split()
    assert out == ["fsrt", "False"]
    assert FAMILY.export is not None and FAMILY.end_to_end is not None and FAMILY.weights_file == "vox256.pt"
    from facefront import repository
    assert repository.families()["fsrt"].pose          # its ensemble takes POSE
    assert FAMILY.networks == [s.folder for s in export_spec.NETWORKS.values()]
