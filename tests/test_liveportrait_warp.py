"""The TensorRT-safe 3-D warps equal 5-D grid_sample (trilinear, zeros padding, align_corners=False)."""
import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from export.common import onnx_tools, trt_ops
from export.liveportrait.sampling import SAMPLERS, gather_8, planar_4d

torch.set_num_threads(2)


def case(seed, n=2, c=3, d=5, h=6, w=7, out=(4, 5, 6), spread=1.6):
    g = torch.Generator().manual_seed(seed)
    vol = torch.randn(n, c, d, h, w, generator=g)
    grid = (torch.rand(n, *out, 3, generator=g) * 2 - 1) * spread  # ~40% of points outside [-1, 1] on some axis
    # exact borders, exact voxel centres, just-outside and far-outside coordinates
    special = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [1.0 + 1e-3, 0.0, 0.0], [0.0, 0.0, -1.2],
                            [1 / 7 - 1, 1 / 6 - 1, 1 / 5 - 1], [0.0, -1.0 - 1 / 6, 0.0], [50.0, -50.0, 3.0], [0, 0, 1.19]])
    grid.view(-1, 3)[: len(special)] = special
    return vol, grid


def reference(vol, grid):
    return F.grid_sample(vol, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@pytest.mark.parametrize("sampler", [gather_8, planar_4d], ids=["gather_8", "planar_4d"])
@pytest.mark.parametrize("seed", range(4))
def test_equals_5d_grid_sample(sampler, seed):
    vol, grid = case(seed)
    ref = reference(vol, grid)
    got = sampler(vol, grid)
    assert got.shape == ref.shape
    assert float((got - ref).abs().max()) < 2e-6


def test_outside_points_are_zero_and_inside_corners_exact():
    vol, grid = case(7)
    ref = reference(vol, grid)
    far = (grid.abs() > 1 + 2 / 5).any(-1)  # more than one voxel outside on some axis: nothing contributes
    assert far.any()
    for s in (gather_8, planar_4d):
        out = s(vol, grid)
        assert float(out.permute(0, 2, 3, 4, 1)[far].abs().max()) == 0.0
        assert torch.allclose(out, ref, atol=2e-6)


@pytest.mark.parametrize("shape", [dict(c=32, d=16, h=64, w=64, out=(16, 64, 64), n=1),
                                   dict(c=4, d=16, h=64, w=64, out=(44, 64, 64), n=1)], ids=["W_warp", "W_dense_motion"])
def test_at_warping_module_sizes(shape):
    vol, grid = case(3, spread=1.1, **shape)
    ref = reference(vol, grid)
    for name in ("gather_8", "planar_4d"):
        assert float((SAMPLERS[name](vol, grid) - ref).abs().max()) < 5e-6, name


class _Sampler(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, volume, grid):
        return self.fn(volume, grid)


@pytest.mark.parametrize("name", ["gather_8", "planar_4d"])
def test_onnx_graph_is_tensorrt_native_and_matches(name, tmp_path):
    vol, grid = case(11, n=2)
    path = onnx_tools.export(_Sampler(SAMPLERS[name]), [vol, grid], tmp_path / f"{name}.onnx", ["volume", "grid"], ["out"])
    model = onnx.load(str(path))
    assert trt_ops.check(model) == []
    ops = {n.op_type for n in model.graph.node}
    assert ("Gather" in ops) if name == "gather_8" else ("GridSample" in ops)
    vol3, grid3 = case(12, n=3)  # another batch size: the batch axis is dynamic
    got = onnx_tools.run(path, {"volume": vol3.numpy(), "grid": grid3.numpy()})[0]
    np.testing.assert_allclose(got, reference(vol3, grid3).numpy(), atol=2e-6)
