"""Fold spectral norm and eval-mode BatchNorm into the conv weights, so the exported graph is plain Conv layers.

Both folds are for inference only and change the module in place (key compatibility with the checkpoints is
lost; build a fresh module to load weights again).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm, remove_spectral_norm


def eval_spectral_weight(module: nn.Module, hook: SpectralNorm) -> torch.Tensor:
    """The weight eval-mode torch uses: W_orig / sigma with sigma = u . (W_mat v) from the STORED u and v
    (no power iteration), computed with the same float32 ops, so the folded weight is bit-identical."""
    w = getattr(module, hook.name + "_orig")
    u = getattr(module, hook.name + "_u")
    v = getattr(module, hook.name + "_v")
    mat = w if hook.dim == 0 else w.permute(hook.dim, *[d for d in range(w.dim()) if d != hook.dim])
    sigma = torch.dot(u, torch.mv(mat.reshape(mat.size(0), -1), v))
    return w / sigma


@torch.no_grad()
def fold_spectral_norm(root: nn.Module) -> int:
    """Replace every spectral_norm parametrisation under `root` by its fixed eval-mode weight; returns the count."""
    n = 0
    for module in root.modules():
        for hook in [h for h in module._forward_pre_hooks.values() if isinstance(h, SpectralNorm)]:
            weight = eval_spectral_weight(module, hook)
            remove_spectral_norm(module, hook.name)
            getattr(module, hook.name).copy_(weight)
            n += 1
    return n


def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    # float64 for the per-channel factors; the fold adds one or two float32 roundings per weight
    var = bn.running_var.double()
    mean = bn.running_mean.double()
    gamma = bn.weight.double() if bn.affine else torch.ones_like(var)
    beta = bn.bias.double() if bn.affine else torch.zeros_like(var)
    scale = gamma / torch.sqrt(var + bn.eps)
    return scale, beta - mean * scale


@torch.no_grad()
def _fold_into(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d, repeat: int) -> None:
    """conv -> [PixelShuffle(r), repeat = r*r] -> bn becomes one conv. Output channel c of the shuffle comes from
    conv channels c*r*r .. c*r*r + r*r-1, hence the repeat_interleave."""
    scale, shift = _bn_scale_shift(bn)
    scale, shift = scale.repeat_interleave(repeat), shift.repeat_interleave(repeat)
    out_axis = 1 if isinstance(conv, nn.ConvTranspose2d) else 0
    if conv.groups != 1:
        raise NotImplementedError("grouped conv + BN fold")
    shape = [1] * conv.weight.dim()
    shape[out_axis] = -1
    conv.weight.mul_(scale.float().view(shape))  # float32: the weights are the bulk of the work
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    if conv.bias is None:
        conv.bias = nn.Parameter(torch.zeros(scale.numel(), dtype=conv.weight.dtype))
    conv.bias.copy_((bias * scale + shift).float())


@torch.no_grad()
def fold_batch_norm(root: nn.Module) -> int:
    """Fold each BatchNorm2d that directly follows a Conv2d/ConvTranspose2d (optionally with a PixelShuffle in
    between) inside an nn.Sequential; the BN becomes Identity. Returns the count. Needs eval-mode semantics."""
    n = 0
    for seq in [m for m in root.modules() if isinstance(m, nn.Sequential)]:
        kids = list(seq.named_children())
        for i, (name, bn) in enumerate(kids):
            if not isinstance(bn, nn.BatchNorm2d) or i == 0:
                continue
            j, repeat = i - 1, 1
            if isinstance(kids[j][1], nn.PixelShuffle) and j > 0:
                repeat = kids[j][1].upscale_factor ** 2
                j -= 1
            conv = kids[j][1]
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)):
                _fold_into(conv, bn, repeat)
                setattr(seq, name, nn.Identity())
                n += 1
    return n


def fold(root: nn.Module) -> nn.Module:
    """Spectral norm, then BatchNorm (BN scales the already-normalised weight). Returns `root` in eval mode."""
    root.eval()
    fold_spectral_norm(root)
    fold_batch_norm(root)
    return root
