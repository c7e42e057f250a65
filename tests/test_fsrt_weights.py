"""Checkpoint compatibility: strict keys, order and shapes of kp_detector.pt and vox256.pt; clear errors."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from export.common.download import WeightsError
from export.fsrt import download, reference, weights

torch.set_num_threads(2)
MANIFEST = Path(__file__).resolve().parents[2] / "shared" / "parity" / "fsrt" / "manifest.json"
needs_manifest = pytest.mark.skipif(not MANIFEST.is_file(), reason=f"no {MANIFEST}")


@needs_manifest
@pytest.mark.parametrize("net", weights.NETWORKS)
def test_same_keys_order_and_shapes_as_the_manifest(net):
    entries = json.loads(MANIFEST.read_text())["networks"][net]["state_dict"]
    module = weights.constructors()[net]()
    sd = module.state_dict()
    assert list(sd) == [e["key"] for e in entries]  # same keys, same order as upstream
    assert [list(t.shape) for t in sd.values()] == [e["shape"] for e in entries]
    assert [str(t.dtype).removeprefix("torch.") for t in sd.values()] == [e["dtype"] for e in entries]
    module.load_state_dict({e["key"]: torch.zeros(e["shape"], dtype=getattr(torch, e["dtype"])) for e in entries},
                           strict=True)


@needs_manifest
def test_synthetic_fill_matches_the_manifest_hashes():
    """The rule-v2 fill of our modules gives the fixtures' weights bit for bit (sha256 of every entry)."""
    import hashlib
    nets = json.loads(MANIFEST.read_text())["networks"]
    sds = reference._synthetic()
    for net, info in nets.items():
        for e in info["state_dict"]:
            a = np.ascontiguousarray(sds[net][e["key"]].numpy())
            assert hashlib.sha256(a.tobytes()).hexdigest() == e["sha256"], (net, e["key"])


def _save(path, obj):
    torch.save(obj, path)
    return path


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory):
    """Both files in upstream's format, from our modules, with a training checkpoint's extras (an optimizer
    state, counters, a numpy scalar) that the loader must ignore."""
    d = tmp_path_factory.mktemp("fsrt_weights")
    sds = reference._synthetic()
    _save(d / weights.KP_FILE, sds["kp_detector"])
    _save(d / weights.MODEL_FILE, {"encoder": sds["encoder"], "decoder": sds["decoder"],
                                   "expression_encoder": sds["expression_encoder"],
                                   "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]},
                                   "it": 123, "epoch_it": 4, "loss_val_best": np.float64(0.25)})
    return d


def test_good_files_load_and_match(good_dir, monkeypatch):
    nets = reference.build(good_dir / weights.MODEL_FILE)  # a file names its folder
    assert nets.weights == str(good_dir)
    sds = reference._synthetic()
    for net in weights.NETWORKS:
        got = nets[net].state_dict()
        assert all(torch.equal(got[k], v) for k, v in sds[net].items()), net
    checked = []
    monkeypatch.setattr(download, "load_state_dicts", checked.append)  # verified above; skip a second load
    assert download.download(good_dir) == good_dir and checked == [good_dir]  # files there: no network


def _one_line(excinfo):
    msg = str(excinfo.value)
    assert msg and "\n" not in msg
    return msg


def test_missing_directory_and_files(tmp_path, good_dir):
    with pytest.raises(WeightsError) as e:
        weights.load_state_dicts(tmp_path / "nope")
    assert "not a directory" in _one_line(e)
    d = tmp_path / "half"
    d.mkdir()
    (d / weights.KP_FILE).symlink_to(good_dir / weights.KP_FILE)
    with pytest.raises(WeightsError) as e:
        weights.load_state_dicts(d)
    assert "vox256.pt: missing" in _one_line(e)


def _with_kp(tmp_path, good_dir, model_obj=None, model_bytes=None):
    d = tmp_path / "w"
    d.mkdir()
    (d / weights.KP_FILE).symlink_to(good_dir / weights.KP_FILE)
    if model_bytes is not None:
        (d / weights.MODEL_FILE).write_bytes(model_bytes)
    else:
        _save(d / weights.MODEL_FILE, model_obj)
    return d


def test_garbage_and_pickled_module_refused(tmp_path, good_dir):
    with pytest.raises(WeightsError) as e:
        weights.load_state_dicts(_with_kp(tmp_path, good_dir, model_bytes=b"not a checkpoint"))
    assert "not a loadable torch checkpoint" in _one_line(e)
    d = tmp_path / "module"
    d.mkdir()
    _save(d / weights.KP_FILE, torch.nn.Linear(2, 2))  # a whole pickled module needs arbitrary code: refused
    _save(d / weights.MODEL_FILE, {})
    with pytest.raises(WeightsError) as e:
        weights.load_state_dicts(d)
    assert "kp_detector.pt" in _one_line(e)


def test_missing_sub_dict_is_an_error_not_a_warning(tmp_path, good_dir):
    sds = reference._synthetic()
    with pytest.raises(WeightsError) as e:
        weights.load_state_dicts(_with_kp(tmp_path, good_dir, {"encoder": sds["encoder"]}))
    assert "no 'expression_encoder' state_dict" in _one_line(e)


def test_wrong_keys_shapes_dtypes_and_values():
    sd = dict(reference._synthetic()["decoder"])
    with pytest.raises(WeightsError) as e:  # FSRT.state_dict()'s prefixed form, which no released file uses
        weights.check_state_dict({"decoder." + k: v for k, v in sd.items()}, "decoder", "f")
    assert "38 missing" in _one_line(e) and "38 unexpected" in str(e.value)
    with pytest.raises(WeightsError) as e:  # the encoder's dict where the decoder's belongs
        weights.check_state_dict(reference._synthetic()["encoder"], "decoder", "f")
    assert "keys do not match FSRT decoder" in _one_line(e)
    with pytest.raises(WeightsError) as e:
        weights.check_state_dict(dict(sd, **{"render_mlp.8.weight": torch.zeros(4, 1536)}), "decoder", "f")
    assert "render_mlp.8.weight has shape (4, 1536)" in _one_line(e)
    with pytest.raises(WeightsError) as e:
        weights.check_state_dict(dict(sd, **{"render_mlp.8.bias": torch.zeros(3, dtype=torch.int64)}), "decoder", "f")
    assert "dtype" in _one_line(e)
    with pytest.raises(WeightsError) as e:
        weights.check_state_dict(dict(sd, **{"render_mlp.8.bias": torch.tensor([0.0, float("nan"), 0.0])}),
                                 "decoder", "f")
    assert "NaN" in _one_line(e)
    half = weights.check_state_dict(dict(sd, **{"render_mlp.8.bias": sd["render_mlp.8.bias"].half()}), "decoder", "f")
    assert half["render_mlp.8.bias"].dtype == torch.float32  # a half-precision copy is accepted and widened


def test_pinned_hash_is_enforced(good_dir, monkeypatch):
    monkeypatch.setitem(weights.SHA256, weights.KP_FILE, "0" * 64)
    with pytest.raises(WeightsError) as e:
        weights.load_state_dicts(good_dir)
    assert "sha256" in _one_line(e)


def test_download_fails_with_the_public_link(tmp_path):
    with pytest.raises(WeightsError) as e:
        download.download(tmp_path)
    msg = _one_line(e)
    assert download.GOOGLE_DRIVE in msg and "kp_detector.pt" in msg and "vox256.pt" in msg
    assert list(tmp_path.iterdir()) == []  # nothing partial left behind


def test_cli_reports_one_line(tmp_path, capsys):
    assert weights.main(["--weights", str(tmp_path / "none")]) == 1
    assert capsys.readouterr().out.count("\n") == 1
    assert download.main([str(tmp_path)]) == 1
