"""Checkpoint compatibility: strict keys and shapes of the released files, clear errors for bad ones."""
import json
from pathlib import Path

import pytest
import torch

from export.common.download import WeightsError
from export.ffwm import download, reference, weights
from export.ffwm.network import FlowEstimator, WarpGenerator

torch.set_num_threads(2)
MANIFEST = Path(__file__).resolve().parents[2] / "shared" / "parity" / "ffwm" / "manifest.json"
needs_manifest = pytest.mark.skipif(not MANIFEST.is_file(), reason=f"no {MANIFEST}")


def _manifest_entries(net):
    return json.loads(MANIFEST.read_text())["networks"][net]["state_dict"]


@needs_manifest
@pytest.mark.parametrize("net, cls", [("flowNetF", FlowEstimator), ("netG", WarpGenerator)])
def test_strict_load_of_exactly_the_manifest_keys(net, cls):
    entries = _manifest_entries(net)
    module = cls()
    assert [e["key"] for e in entries] == list(module.state_dict())  # same keys, same order as upstream
    sd = {e["key"]: torch.zeros(e["shape"], dtype=getattr(torch, e["dtype"])) for e in entries}
    module.load_state_dict(sd, strict=True)


def test_unused_occlusion_layers_load_but_do_nothing():
    f = FlowEstimator().eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        before = f(x)
        for name, p in f.named_parameters():
            if name.startswith("inter_conv_occ"):
                p.add_(1.0)
        after = f(x)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def _save(path, sd):
    torch.save(sd, path)
    return path


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory):
    """Both checkpoints, in upstream's format (plain state_dict with _metadata), from freshly built networks."""
    d = tmp_path_factory.mktemp("ffwm_weights")
    _save(d / weights.FILES["flowNetF"], FlowEstimator().state_dict())
    _save(d / weights.FILES["netG"], WarpGenerator().state_dict())
    return d


def test_good_files_load_and_match(good_dir, monkeypatch):
    saved = torch.load(good_dir / weights.FILES["netG"], weights_only=True)
    # a file names its folder; spectral-norm keys load without _metadata, as upstream's loader does it
    _, generator = reference.build(good_dir / weights.FILES["netG"])
    assert all(torch.equal(generator.state_dict()[k], saved[k]) for k in saved)
    checked = []
    monkeypatch.setattr(download, "load_state_dicts", checked.append)  # already covered above; skip a reload
    assert download.download(good_dir) == good_dir and checked == [good_dir]  # files there: no network


def _one_line(excinfo):
    msg = str(excinfo.value)
    assert "\n" not in msg and msg
    return msg


def test_missing_directory_and_file(tmp_path, good_dir):
    with pytest.raises(WeightsError) as e:
        weights.load_state_dicts(tmp_path / "nope")
    assert "not a directory" in _one_line(e)
    d = tmp_path / "half"
    d.mkdir()
    (d / weights.FILES["flowNetF"]).symlink_to(good_dir / weights.FILES["flowNetF"])
    with pytest.raises(WeightsError) as e:
        weights.load_state_dicts(d)
    assert "latest_net_netG.pth" in _one_line(e) and "missing" in str(e.value)


def test_garbage_and_pickled_module_refused(tmp_path):
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(WeightsError) as e:
        weights.load_file(bad, "netG")
    assert "not a loadable torch state_dict" in _one_line(e)
    module_pickle = _save(tmp_path / "module.pth", torch.nn.Linear(2, 2))  # needs arbitrary pickle code
    with pytest.raises(WeightsError) as e:
        weights.load_file(module_pickle, "netG")
    _one_line(e)


def test_wrong_keys_shapes_and_values(tmp_path):
    sd = WarpGenerator().state_dict()
    wrong_keys = {("module." + k): v for k, v in sd.items()}  # a DataParallel-style prefix
    with pytest.raises(WeightsError) as e:
        weights.load_file(_save(tmp_path / "keys.pth", wrong_keys), "netG")
    assert "383 missing" in _one_line(e) and "383 unexpected" in str(e.value)
    with pytest.raises(WeightsError) as e:  # the flow net's file given as the generator
        weights.load_file(_save(tmp_path / "swapped.pth", FlowEstimator().state_dict()), "netG")
    assert "keys do not match FFWM netG" in _one_line(e)
    wrong_shape = dict(sd, **{"rec2.0.weight_orig": torch.zeros(3, 195, 5, 5)})
    with pytest.raises(WeightsError) as e:
        weights.load_file(_save(tmp_path / "shape.pth", wrong_shape), "netG")
    assert "rec2.0.weight_orig has shape (3, 195, 5, 5)" in _one_line(e)
    nan = dict(sd, **{"e0.0.bias": torch.full((64,), float("nan"))})
    with pytest.raises(WeightsError) as e:
        weights.load_file(_save(tmp_path / "nan.pth", nan), "netG")
    assert "NaN" in _one_line(e)


def test_pinned_hash_is_enforced(tmp_path, good_dir, monkeypatch):
    monkeypatch.setitem(weights.SHA256, weights.FILES["netG"], "0" * 64)
    with pytest.raises(WeightsError) as e:
        weights.load_state_dicts(good_dir)
    assert "sha256" in _one_line(e)


def test_download_fails_with_the_public_links(tmp_path):
    with pytest.raises(WeightsError) as e:
        download.download(tmp_path)
    msg = _one_line(e)
    assert download.GOOGLE_DRIVE in msg and download.BAIDU in msg
