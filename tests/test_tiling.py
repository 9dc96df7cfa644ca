"""Tiling: boxes that cover any size, overlap-averaged merging, and batched tiles equal to single tiles."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

from adaptsr.core.tiling import crop_size, tile_boxes, tiled_forward
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


@pytest.mark.parametrize('size', [(61, 47), (64, 64), (100, 37)])
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_crop_merge_gives_the_whole_image_result_when_the_overlap_covers_the_receptive_field(size, scale):
    """A plain conv net (8 convs 3x3: receptive radius 8 LR pixels) tiled with overlap 16 and the ``crop`` merge
    equals its whole-image output; the ``average`` merge does not (its tile borders miss context)."""
    from adaptsr.methods.etds.etds_arch import ETDSPlain
    from adaptsr.core.tiling import tile_core
    torch.manual_seed(0)
    net = ETDSPlain(num_block=6, num_feat=16, upscale=scale).eval()
    lq = torch.rand(1, 3, *size)
    with torch.no_grad():
        whole = net(lq)
        crop = tiled_forward(net, lq, scale, 40, overlap=16, merge='crop')
        average = tiled_forward(net, lq, scale, 40, overlap=16, merge='average')
    assert crop.shape == whole.shape and (crop - whole).abs().max() < 1e-5
    assert (average - whole).abs().max() > 1e-3
    # the cores cover every pixel
    boxes = tile_boxes(*size, 40, 16)
    covered = torch.zeros(size, dtype=torch.bool)
    for box in boxes:
        t, l, b, r = tile_core(box, *size, 16)
        covered[t:b, l:r] = True
    assert bool(covered.all())


def test_an_unknown_tile_merge_is_refused_when_the_options_are_read():
    from adaptsr.core.adaptive_model import AdaptiveSRModel
    from adaptsr.core.options import OptionError, check_val_ranges
    with pytest.raises(OptionError, match=r"val.tile_merge = 'mean': must be 'average' or 'crop'"):
        check_val_ranges({'tile_merge': 'mean'}, AdaptiveSRModel)
