"""AniPortrait weights: the release layout loads strictly (reduced-size files written here), bad files give one-line
WeightsErrors, and download fails cleanly without network."""
from __future__ import annotations

import pickle

import pytest
import torch
from safetensors.torch import save_file

from export.aniportrait import download, weights
from export.aniportrait.config import REDUCED
from export.aniportrait.networks import NETWORKS, construct
from export.common.download import WeightsError


def _synthetic(net: str) -> dict[str, torch.Tensor]:
    return weights.fill_synthetic(construct(net, REDUCED)).state_dict()


def _vae_legacy(sd):
    ren = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}
    out = {}
    for k, v in sd.items():
        for a, b in ren.items():
            if "mid_block.attentions" in k:
                k = k.replace(a, b)
        out[k] = v.contiguous()
    return out


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A weights folder in the released layout, holding reduced-size synthetic weights."""
    d = tmp_path_factory.mktemp("weights") / "aniportrait"
    d.mkdir()
    sds = {net: _synthetic(net) for net in NETWORKS}
    torch.save(sds["pose_guider"], d / "pose_guider.pth")
    # as pose2vid loads it: the file may carry SD1.5's output head, which the reference UNet does not have
    den = sds["denoising_unet"]
    torch.save({**sds["reference_unet"], "conv_out.weight": den["conv_out.weight"]}, d / "reference_unet.pth")
    torch.save({k: v for k, v in den.items() if "motion_modules." not in k}, d / "denoising_unet.pth")
    torch.save({k: v for k, v in den.items() if "motion_modules." in k}, d / "motion_module.pth")
    (d / "sd-vae-ft-mse").mkdir()
    save_file(_vae_legacy(sds["vae"]), str(d / "sd-vae-ft-mse" / "diffusion_pytorch_model.safetensors"))
    (d / "image_encoder").mkdir()
    torch.save(sds["image_encoder"], d / "image_encoder" / "pytorch_model.bin")
    return d, sds


@pytest.mark.parametrize("net", NETWORKS)
def test_release_layout_loads_strictly(release, net):
    d, sds = release
    module = weights.load_release(construct(net, REDUCED), net, d.parent)   # the parent folder is accepted too
    got = module.state_dict()
    assert set(got) == set(sds[net])
    assert all(torch.equal(got[k], sds[net][k]) for k in got)
    assert not module.training


def test_missing_denoising_keys_come_from_sd15_unet_else_error(release, tmp_path):
    d, sds = release
    den = sds["denoising_unet"]
    w = tmp_path / "w"
    w.mkdir()
    for f in ("motion_module.pth",):
        (w / f).write_bytes((d / f).read_bytes())
    torch.save({k: v for k, v in den.items() if "motion_modules." not in k and k != "conv_in.weight"},
               w / "denoising_unet.pth")
    with pytest.raises(WeightsError, match="missing 1: \\['conv_in.weight'\\]"):
        weights.load_release(construct("denoising_unet", REDUCED), "denoising_unet", w)
    (w / "stable-diffusion-v1-5" / "unet").mkdir(parents=True)
    save_file({"conv_in.weight": den["conv_in.weight"]},
              str(w / "stable-diffusion-v1-5" / "unet" / "diffusion_pytorch_model.safetensors"))
    got = weights.load_release(construct("denoising_unet", REDUCED), "denoising_unet", w).state_dict()
    assert torch.equal(got["conv_in.weight"], den["conv_in.weight"])


def _error(tmp_path, obj_or_bytes) -> str:
    w = tmp_path / "bad"
    w.mkdir(exist_ok=True)
    for f in weights.RELEASE_FILES.values():
        (w / f).write_bytes(b"")
    p = w / "pose_guider.pth"
    if isinstance(obj_or_bytes, bytes):
        p.write_bytes(obj_or_bytes)
    else:
        torch.save(obj_or_bytes, p)
    with pytest.raises(WeightsError) as e:
        weights.load_release(construct("pose_guider", REDUCED), "pose_guider", w)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_bad_files_give_one_line_errors(release, tmp_path):
    d, sds = release
    sd = dict(sds["pose_guider"])
    good = (d / "pose_guider.pth").read_bytes()
    assert "cannot load" in _error(tmp_path, good[: len(good) // 2])
    assert "cannot load" in _error(tmp_path, pickle.dumps(print))          # pickled code is refused
    assert "keys do not match" in _error(tmp_path, {k: v for k, v in sd.items() if k != "scale"})
    assert "shape" in _error(tmp_path, {**sd, "scale": torch.zeros(2)})
    assert "not a tensor" in _error(tmp_path, {**sd, "scale": 1.0})
    assert "expected a dict" in _error(tmp_path, [1, 2])


def test_weights_folder_not_found(tmp_path):
    with pytest.raises(WeightsError, match="not found under"):
        weights.resolve(tmp_path)


def test_folder_found_from_itself_its_parent_or_its_marker_file(release):
    d, _ = release
    assert weights.resolve(d) == weights.resolve(d.parent) == weights.resolve(d / "denoising_unet.pth") == d


def test_released_weights_only_fit_the_full_configuration(release):
    with pytest.raises(WeightsError, match="full configuration"):
        weights.build("pose_guider", release[0], REDUCED)


def test_download_names_every_file_and_fails_in_one_line_without_network(tmp_path, monkeypatch):
    urls = {name: url for name, (url, _, _) in download.files().items()}
    assert urls["denoising_unet"] == "https://huggingface.co/ZJYang/AniPortrait/resolve/main/denoising_unet.pth"
    assert set(urls) == set(weights.RELEASE_FILES) | {"vae", "image_encoder"}
    monkeypatch.setattr(download, "RELEASE_HOST", "http://127.0.0.1:9")   # discard port: connection refused
    with pytest.raises(WeightsError) as e:
        download.download(tmp_path / "dl")
    assert "\n" not in str(e.value) and "cannot download" in str(e.value)
    assert [p for p in (tmp_path / "dl").rglob("*") if p.is_file()] == []   # no partial file
