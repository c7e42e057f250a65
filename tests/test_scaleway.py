"""scaleway generator: parity with upstream, weights loading, ONNX export and the served graph."""
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from export.common.download import WeightsError
from export.common.synthetic import fill_
from export.scaleway import reference
from export.scaleway.network import Generator
from export.scaleway.weights import load_state_dict
from tests.conftest import REPO


def test_parity_cli_passes_on_public_fixtures(shared_dir):
    r = subprocess.run([sys.executable, "-m", "export", "parity", "scaleway", str(shared_dir / "parity/scaleway/public")],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("PASS") == 3 and "3/3 outputs within tolerance" in r.stdout


def test_parity_cli_fails_on_wrong_network(shared_dir, monkeypatch, capsys):
    """The parity command must exit non-zero when an output is off (here: one weight perturbed)."""
    from export.common import parity
    from export.scaleway import FAMILY

    def perturbed(fixture_dir):
        out = reference.run_fixtures(fixture_dir)
        out["G"]["out_tap_code"] = out["G"]["out_tap_code"] + 1e-3
        return out
    fam = types.SimpleNamespace(**{**FAMILY.__dict__, "run_fixtures": perturbed})
    assert not parity.run(fam, shared_dir / "parity/scaleway/public")
    assert "FAIL  G/out_tap_code" in capsys.readouterr().out


def test_parity_reads_subsample_form(shared_dir, tmp_path):
    """A fixture set stored in the __idx/__sub/__shape/__stats form is compared through the subsample."""
    import shutil

    from export.common import fixtures
    src = np.load(shared_dir / "parity/scaleway/public/G.npz")
    full = src["out_frontal"]
    rng = np.random.default_rng(1)
    idx = np.sort(rng.choice(full.size, 4096, replace=False)).astype(np.int32)
    flat = full.reshape(-1).astype(np.float64)
    stats = np.array([flat.mean(), flat.std(), flat.sum(), flat.min(), flat.max(), np.abs(flat).sum()])
    np.savez(tmp_path / "G.npz", in_profile=src["in_profile"], out_frontal__idx=idx,
             out_frontal__sub=full.reshape(-1)[idx], out_frontal__shape=np.array(full.shape), out_frontal__stats=stats)
    shutil.copy(shared_dir / "parity/scaleway/manifest.json", tmp_path / "manifest.json")
    refs = fixtures.load(tmp_path / "G.npz")
    assert isinstance(refs["out_frontal"], fixtures.Subsample)
    rule = {"kind": "atol", "atol": 1e-5}
    out = reference.run_fixtures(tmp_path)["G"]["out_frontal"]
    assert fixtures.check("G/out_frontal", out, refs, rule).ok
    assert not fixtures.check("G/out_frontal", out + 1e-3, refs, rule).ok


def _whole_module_pickle(path):
    """A file like upstream's generator_v0.pt: torch.save of a whole `network.G` module."""
    mod = types.ModuleType("network")
    sys.modules["network"] = mod
    try:
        G = type("G", (Generator,), {"__module__": "network"})
        mod.G = G
        g = fill_(G())
        torch.save(g, path)
    finally:
        del sys.modules["network"]
    return g


def test_whole_module_checkpoint_loads_without_upstream_code(tmp_path):
    g = _whole_module_pickle(tmp_path / "generator_v0.pt")
    assert "network" not in sys.modules
    sd = load_state_dict(tmp_path)
    assert len(sd) == 68 and all(torch.equal(sd[k], v) for k, v in g.state_dict().items())
    assert "network" not in sys.modules


def test_unexpected_pickled_code_is_refused(tmp_path):
    import os

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))
    torch.save({"main.0.weight": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match="refusing to load .*GLOBAL"):
        load_state_dict(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()


def test_wrong_or_damaged_weights_have_clear_errors(tmp_path):
    torch.save({"main.0.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="not a scaleway generator"):
        load_state_dict(tmp_path / "other.pt")
    _whole_module_pickle(tmp_path / "g.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "g.pt").read_bytes()[:4000])
    with pytest.raises(WeightsError, match="refusing to load"):
        load_state_dict(tmp_path / "cut.pt")
    with pytest.raises(WeightsError, match="not found"):
        load_state_dict(tmp_path / "nowhere")


def test_onnx_export_matches_pytorch_and_is_trt_native(tmp_path):
    from export.common import onnx_tools, trt_ops
    from export.scaleway.export_spec import ServingGenerator
    net = ServingGenerator(reference.build())
    faces = np.random.default_rng(3).integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)
    path = onnx_tools.export(net, [torch.from_numpy(faces[:2])], tmp_path / "model.onnx", ["face"], ["frontal"])
    got = onnx_tools.run(path, {"face": faces})[0]   # batch 3: the batch axis is dynamic
    with torch.no_grad():
        ref = net(torch.from_numpy(faces)).numpy()
    assert got.dtype == np.uint8 and got.shape == (3, 128, 128, 3)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1
    assert trt_ops.check(path) == []


def test_eval_mode_is_what_we_serve():
    g = reference.build()
    assert not g.training and all(not m.training for m in g.modules())
