"""AniPortrait networks: key compatibility with the released checkpoints (via the parity manifest), the synthetic
weight rule, the reference-attention bank mechanics, and the light package import."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from export.aniportrait.config import REDUCED
from export.aniportrait.networks import NETWORKS, construct
from export.aniportrait.weights import build, fill_synthetic

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO.parent / "shared" / "parity" / "aniportrait" / "manifest.json"

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def manifest() -> dict:
    if not MANIFEST.is_file():
        pytest.fail(f"{MANIFEST} is missing: the parity fixtures live in ../shared beside the checkout")
    return json.loads(MANIFEST.read_text())


@pytest.mark.parametrize("net", NETWORKS)
def test_state_dict_keys_and_shapes_match_upstream(manifest, net):
    """Every key and shape of the full-size module is the upstream one (so the released files load strictly)."""
    ours = {k: list(v.shape) for k, v in construct(net).state_dict().items()
            if k != "vision_model.embeddings.position_ids"}
    theirs = {e["key"]: e["shape"] for e in manifest["networks"][net]["state_dict"]}
    assert sorted(set(ours) ^ set(theirs)) == []
    assert {k: s for k, s in ours.items() if theirs[k] != s} == {}
    assert sum(int(np.prod(s)) for k, s in ours.items()) == manifest["networks"][net]["state_dict_numel"] - (
        257 if net == "image_encoder" else 0)


def test_synthetic_fill_matches_manifest_sha256(manifest):
    """The pose guider filled by the rule reproduces the manifest's sha256 of every entry (incl. BN buffers)."""
    module = build("pose_guider")
    sd = module.state_dict()
    bad = []
    for e in manifest["networks"]["pose_guider"]["state_dict"]:
        a = sd[e["key"]].numpy()
        if hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() != e["sha256"]:
            bad.append(e["key"])
    assert bad == []


def test_bank_order_is_upstream_pairing(manifest):
    names = construct("reference_unet").bank_names()
    assert ["bank_" + n for n in names] == manifest["bank_array_names_in_order"]
    assert construct("denoising_unet").bank_names() == names


@pytest.fixture(scope="module")
def reduced_unets():
    return build("reference_unet", cfg=REDUCED), build("denoising_unet", cfg=REDUCED)


def _inputs(seed=0, size=64):
    g = torch.Generator().manual_seed(seed)
    h, pc, d = size // 8, REDUCED.pose_guider.noise_latent_channels, REDUCED.unet.cross_attention_dim
    sample = torch.randn(2, 4, 1, h, h, generator=g)
    context = torch.randn(2, 1, d, generator=g)
    fea = [torch.randn(2, c, 1, s, s, generator=g) for c, s in
           ((pc, h), (pc, h // 2), (2 * pc, h // 4), (4 * pc, h // 8), (4 * pc, h // 8))]
    return sample, context, fea


@torch.no_grad()
def test_reference_unet_returns_bank_of_every_transformer_block(reduced_unets):
    ref, _ = reduced_unets
    x = torch.randn(2, 4, 8, 8)
    out, bank = ref(x, torch.tensor(0), torch.randn(2, 1, REDUCED.unet.cross_attention_dim))
    names = ref.bank_names()
    assert len(bank) == len(names) == 10   # reduced: 3 down + 6 up + 1 mid transformer blocks
    ch = dict(zip(names, [b.shape[-1] for b in bank], strict=True))
    assert ch["down_0_0"] == ch["up_3_0"] == 32 and ch["mid_0"] == 128
    assert out.shape == (2, 32, 8, 8)
    # a bank entry is norm1 output: zero mean, unit variance per token (LayerNorm with affine weights ~1)
    assert all(torch.isfinite(b).all() for b in bank)


@torch.no_grad()
def test_uncond_rows_ignore_the_bank_and_cond_rows_read_it(reduced_unets):
    ref, den = reduced_unets
    sample, context, fea = _inputs()
    _, bank = ref(torch.randn(2, 4, 8, 8), torch.tensor(0), context)
    other = [b + 1.0 for b in bank]
    t = torch.tensor(999)
    rows = torch.tensor([0.0, 1.0])
    a = den(sample, t, context, fea, list(bank), rows)
    b = den(sample, t, context, fea, other, rows)
    assert torch.equal(a[0], b[0])                     # row 0 (uncond) never sees the bank
    assert (a[1] - b[1]).abs().max() > 1e-3            # row 1 (cond) does
    c = den(sample, t, context, fea, list(bank), torch.tensor([1.0, 1.0]))
    assert (a[0] - c[0]).abs().max() > 1e-3 and torch.allclose(a[1], c[1], atol=1e-6)


@torch.no_grad()
def test_masked_bank_equals_plain_self_attention(reduced_unets):
    """reference_rows = 0 (bank keys masked out of the softmax) is exactly self-attention over the own tokens."""
    _, den = reduced_unets
    block = den.down_blocks[0].attentions[0].transformer_blocks[0]
    x = torch.randn(2, 16, 32)
    ctx = torch.randn(2, 1, REDUCED.unet.cross_attention_dim)
    plain, _ = block(x, ctx)
    masked, _ = block(x, ctx, bank=torch.randn(2, 16, 32) * 5, reads=torch.zeros(2))
    assert torch.allclose(plain, masked, atol=1e-5)


@torch.no_grad()
def test_bank_is_rounded_to_float16_like_upstream(reduced_unets):
    ref, den = reduced_unets
    sample, context, fea = _inputs()
    _, bank = ref(torch.randn(2, 4, 8, 8), torch.tensor(0), context)
    rows = torch.tensor([0.0, 1.0])
    a = den(sample, torch.tensor(999), context, fea, list(bank), rows)
    b = den(sample, torch.tensor(999), context, fea, [x.half().float() for x in bank], rows)
    assert torch.equal(a, b)


def test_fill_synthetic_is_lazy_and_deterministic():
    a = fill_synthetic(construct("pose_guider", REDUCED)).state_dict()
    b = fill_synthetic(construct("pose_guider", REDUCED)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["conv_layers.1.num_batches_tracked"].item() == 0
    assert float(a["conv_layers.1.running_var"].min()) >= 1.0


def test_package_import_is_light():
    code = ("import sys; import export.aniportrait as a; f = a.FAMILY; "
            "print(f.name, 'torch' in sys.modules, 'diffusers' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["aniportrait", "False", "False", "False"]


@torch.no_grad()
def test_no_bank_is_the_same_as_no_row_reading_it(reduced_unets):
    ref, den = reduced_unets
    sample, context, fea = _inputs(seed=1)
    _, bank = ref(torch.randn(2, 4, 8, 8), torch.tensor(0), context)
    none = den(sample, torch.tensor(499), context, fea)
    masked = den(sample, torch.tensor(499), context, fea, list(bank), torch.zeros(2))
    assert torch.allclose(none, masked, atol=1e-5)
    with pytest.raises(ValueError):   # a bank must have one tensor per transformer block
        den(sample, torch.tensor(499), context, fea, list(bank)[:-1], torch.ones(2))
