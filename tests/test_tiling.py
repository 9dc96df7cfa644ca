"""Tiling: boxes that cover any size, overlap-averaged merging, and batched tiles equal to single tiles."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

from adaptsr.ops.tiling import crop_size, tile_boxes, tiled_forward
from conftest import BENCHMARK, read_rgb, require


@pytest.mark.parametrize('mode,size,kept', [('none', (37, 29), (37, 29)), ('even', (37, 29), (36, 28)),
                                            ('pcsr', (100, 70), (88, 60)), ('ape', (100, 70), (94, 48))])
def test_crop_modes_keep_the_protocols_grid(mode, size, kept):
    assert crop_size(mode, *size) == kept


def test_unknown_crop_mode_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"val.crop_mode must be one of \['ape', 'even', 'none', 'pcsr'\]"):
        crop_size('pcrs', 10, 10)


def test_image_smaller_than_a_tile_and_tiling_merge(carn_official):
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X4/birdx4.png')))
    small = lq[..., :20, :30]
    assert tile_boxes(20, 30, 64, 8) == [(0, 0, 20, 30)]
    with torch.no_grad():
        assert torch.equal(tiled_forward(carn_official, small, 4, 64, 8), carn_official(small))
    # overlap averaging reconstructs exactly for a position-independent op (nearest upsampling) ...
    up = tiled_forward(lambda x: F.interpolate(x, scale_factor=4, mode='nearest'), lq, 4, 24, 6)
    assert torch.equal(up, F.interpolate(lq, scale_factor=4, mode='nearest'))
    # ... and closely for a network (borders differ by the receptive field)
    with torch.no_grad():
        tiled, full = tiled_forward(carn_official, lq, 4, 40, 12), carn_official(lq)
    assert (tiled - full).abs().mean() < 2e-3
    with pytest.raises(ValueError, match='tile_overlap'):
        tile_boxes(10, 10, 8, 8)


def test_batched_tiles_equal_single_tiles_for_k_rule(pcsr_official):
    """PCSR patch mode (32x32 tiles, stride 28, batches): the k-rule is per pixel, so batching changes nothing;
    ADM clusters each batch jointly (the official patch mode) and stays finite."""
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set14/LR_bicubic/X4/baboonx4.png')))[..., :88, :60]  # 3x2 patches
    costs = []

    def fn(x, **kw):
        out, cost = pcsr_official.infer(x, **kw)
        costs.append(cost['flops'])
        return out

    one = tiled_forward(lambda x: fn(x, k=0.0), lq, 4, 32, 4, tile_batch=1)
    flops_one = sum(costs)
    costs.clear()
    many = tiled_forward(lambda x: fn(x, k=0.0), lq, 4, 32, 4, tile_batch=96)
    assert len(costs) == 1 and costs[0] == pytest.approx(flops_one)
    assert (one - many).abs().max() < 1e-5
    adm = tiled_forward(lambda x: fn(x, adaptive=True), lq, 4, 32, 4, tile_batch=96)
    assert adm.shape == one.shape and torch.isfinite(adm).all()
