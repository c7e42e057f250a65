"""Loading released-format LivePortrait checkpoints: official layout, 'module.' prefixes in S, strict checks."""
import pytest
import torch

from export.common.download import WeightsError
from export.common.synthetic import synthetic_state_dict
from export.liveportrait import download, reference, weights
from export.liveportrait.stitching import MLPS

torch.set_num_threads(2)


def write_f_and_s(root):
    """A checkpoint tree like the release, holding F and S (filled with rule-v2 values)."""
    (root / "base_models").mkdir(parents=True)
    (root / "retargeting_models").mkdir()
    torch.save(synthetic_state_dict(reference.CONSTRUCTORS["F"]()), root / weights.FILES["F"])
    s = reference.CONSTRUCTORS["S"]()
    ckpt = {sub: {f"module.{k}": v for k, v in synthetic_state_dict(getattr(s, name), sub + ".").items()}
            for name, (sub, *_r) in MLPS.items()}
    ckpt["extra_training_state"] = {"epoch": torch.tensor(3)}  # the release holds more than the three MLPs
    torch.save(ckpt, root / weights.FILES["S"])
    return root


def test_loads_official_layout_and_matches_synthetic(tmp_path):
    root = write_f_and_s(tmp_path / "liveportrait")
    for d in (root, tmp_path):  # the layout dir itself, or its parent
        s = reference.build("S", d)
        ref = reference.build("S")
        x = torch.randn(2, 66)
        assert torch.equal(s.eye(x), ref.eye(x))
    f = reference.build("F", root)
    mine, ref = f.state_dict().values(), reference.build("F").state_dict().values()
    assert all(torch.equal(a, b) for a, b in zip(mine, ref, strict=True))


def test_errors_are_one_line(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        reference.build("F", tmp_path)
    root = write_f_and_s(tmp_path / "lp")
    with pytest.raises(WeightsError, match="missing"):
        reference.build("G", root)
    sd = torch.load(root / weights.FILES["F"], weights_only=True)
    sd["second.weight"] = torch.zeros(512, 256, 3, 3)
    torch.save(sd, root / weights.FILES["F"])
    with pytest.raises(WeightsError, match=r"second.weight has shape \(512, 256, 3, 3\)") as e:
        reference.build("F", root)
    assert "\n" not in str(e.value)
    del sd["second.weight"]
    torch.save(sd, root / weights.FILES["F"])
    with pytest.raises(WeightsError, match="keys do not match"):
        reference.build("F", root)
    (root / weights.FILES["S"]).write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot load"):
        reference.build("S", root)


def test_pinned_hash_is_enforced(tmp_path, monkeypatch):
    root = write_f_and_s(tmp_path / "lp")
    monkeypatch.setitem(weights.SHA256, "F", "0" * 64)
    with pytest.raises(WeightsError, match="sha256"):
        reference.build("F", root)
    monkeypatch.setitem(weights.SHA256, "F", weights.sha256_file(root / weights.FILES["F"]))
    reference.build("F", root)


def test_download_urls_follow_the_release_layout():
    assert download.url("G") == ("https://huggingface.co/KwaiVGI/LivePortrait/resolve/main/liveportrait/"
                                 "base_models/spade_generator.pth")
    assert download.url("S").endswith("liveportrait/retargeting_models/stitching_retargeting_module.pth")
