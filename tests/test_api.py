"""``adaptsr.load``: every kind of source, knobs per call, statistics, and errors that name the knob or source."""
import os.path as osp

import pytest
import torch

import adaptsr
from conftest import BENCHMARK, ROOT, WEIGHTS, read_rgb, require


@pytest.fixture(scope='module')
def bird():
    return read_rgb(require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X4/birdx4.png')))[..., :48, :40]


def test_an_official_plain_file_gives_exactly_its_network(bird):
    from adaptsr.methods.etds.etds_arch import ETDSPlain
    from adaptsr.core.checkpoint_io import load_checkpoint
    path = require(osp.join(WEIGHTS, 'ETDS/ETDS_M4C32_x4.pth'))
    sr = adaptsr.load(path)
    net = ETDSPlain(upscale=4, num_block=4, num_feat=32)
    net.load_state_dict(load_checkpoint(path), strict=True)
    with torch.no_grad():
        assert torch.equal(sr(bird), net.eval()(bird))
    assert sr.scale == 4 and sr.stats['gflops'] > 0 and set(sr.knobs) == {'tile_size', 'tile_overlap', 'tile_batch',
                                                                          'tile_merge', 'precision', 'compile'}


def test_a_knob_applies_to_one_call_and_is_checked(bird):
    path = require(osp.join(WEIGHTS, 'PCSR/carn-pcsr-phase1/iter_last.pth'))
    sr = adaptsr.load(path, k=0.0)
    base = sr(bird)
    ratio0 = sr.stats['heavy_ratio']
    sr(bird, k=1.0)
    assert sr.stats['heavy_ratio'] < ratio0 and sr.knobs['k'] == 0.0  # the call's knob does not stay
    assert torch.equal(sr(bird), base)
    with pytest.raises(adaptsr.api.LoadError,
                       match=r'has no knob exit_threshold; its knobs: adaptive, k, precision, refine'):
        sr(bird, exit_threshold=0.5)
    from adaptsr.core.options import OptionError
    with pytest.raises(OptionError, match=r'val.k = nan: must be a number'):
        sr(bird, k=float('nan'))
    assert sr.knobs['k'] == 0.0


def test_sources_bicubic_and_yaml_and_their_errors(bird):
    from basicsr.utils.matlab_functions import imresize
    b = adaptsr.load('bicubic', scale=2)
    assert torch.equal(b(bird)[0], imresize(bird[0], 2))  # MATLAB's bicubic, as the benchmark LR was made
    with pytest.raises(adaptsr.api.LoadError, match='bicubic needs a scale'):
        adaptsr.load('bicubic')
    require(osp.join(WEIGHTS, 'ETDS/ETDS_M4C32_x3.pth'))
    y = adaptsr.load(osp.join(ROOT, 'options/test/etds_m4c32_x3.yml'))
    assert y.scale == 3 and y(bird).shape == (1, 3, 144, 120)
    with pytest.raises(adaptsr.api.LoadError, match='scale 4 but .*etds_m4c32_x3.yml has scale: 3'):
        adaptsr.load(osp.join(ROOT, 'options/test/etds_m4c32_x3.yml'), scale=4)
    with pytest.raises(adaptsr.api.LoadError, match=r'has no knob k; its knobs: compile, precision, tile_batch'):
        adaptsr.load(osp.join(WEIGHTS, 'ETDS/ETDS_M4C32_x3.pth'), k=1)
    with pytest.raises(adaptsr.api.LoadError, match=r'expected an \(N, 3, H, W\) tensor'):
        y(bird[0])
