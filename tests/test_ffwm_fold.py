"""Spectral-norm and BatchNorm folding: the exported network computes what the eval-mode network computes."""
import copy

import torch
from torch import nn

from export.ffwm import fold, reference

torch.set_num_threads(2)


def _small_inputs(batch=2, size=32):
    # any size divisible by 8 runs; 32 px keeps this 16x cheaper than 128 px
    g = torch.Generator().manual_seed(0)
    img = torch.rand(batch, 3, size, size, generator=g)
    flows = [torch.rand(batch, 2, size // s, size // s, generator=g) * 1.6 - 0.8 for s in (4, 2, 1)]
    return img, flows


def _logits(generator, img, flows):
    taps = []
    hooks = [getattr(generator, f"rec{i}")[0].register_forward_hook(lambda m, i, o: taps.append(o))
             for i in range(3)]
    with torch.no_grad():
        out = generator(img, flows)
    for h in hooks:
        h.remove()
    return list(out) + taps


def test_spectral_norm_fold_is_bit_identical():
    _, generator = reference.build()
    img, flows = _small_inputs()
    want = _logits(generator, img, flows)
    folded = copy.deepcopy(generator).train()  # the fold never runs a power iteration, whatever the mode
    assert fold.fold_spectral_norm(folded) == 52
    folded.eval()
    assert not any(k.endswith(("_orig", "_u", "_v")) for k in folded.state_dict())
    got = _logits(folded, img, flows)
    assert all(torch.equal(a, b) for a, b in zip(want, got, strict=True))
    # and the folded weight is what the eval-mode hook computes from the stored u, v
    generator.rec2[0](torch.zeros(1, 195, 3, 3))
    assert torch.equal(generator.rec2[0].weight, folded.rec2[0].weight)


def test_batch_norm_fold_matches_to_float_rounding():
    flow_net, generator = reference.build()
    img, flows = _small_inputs()
    want = _logits(generator, img, flows)
    folded = copy.deepcopy(generator)
    fold.fold(folded)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    got = _logits(folded, img, flows)
    for a, b in zip(want, got, strict=True):  # relative to max: the synthetic logits reach ~1e8 (see parity README)
        assert float((a - b).abs().max() / a.abs().max()) < 2e-5
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))  # the flow net needs a multiple of 64
    with torch.no_grad():
        f_want = flow_net(x)
        f_got = fold.fold(copy.deepcopy(flow_net))(x)
    assert all(float((a - b).abs().max()) < 1e-5 for a, b in zip(f_want, f_got, strict=True))
