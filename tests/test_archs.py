"""Every arch adaptsr registers, at every scale it supports, through the one inference contract
(:func:`adaptsr.core.cost.run_inference`): SR shape and range on a real image, and a cost whose common fields are
present and add up over tiles (the base model sums the costs of an image's tiles)."""
import os.path as osp

import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY

from adaptsr.core.cost import run_inference, sum_costs
from conftest import BENCHMARK, read_rgb, require

ECBSR_SMALL = {'type': 'ECBSRPlain', 'num_block': 2, 'num_feat': 8}
# arch -> (small constructor kwargs, scales); the scale goes in as ``upscale``
ARCHS = {
    'PCSRNet': ({'encoder': 'carn', 'encoder_opt': {'num_feat': 16}, 'heavy_hidden': [16, 16], 'light_hidden': [8],
                 'cls_hidden': [8]}, (2, 3, 4)),
    'PCSRCARN': ({'num_feat': 16}, (2, 3, 4)),
    'PCSRFSRCNN': ({'d': 16, 's': 8, 'm': 2}, (2, 3, 4)),
    'BicubicSR': ({}, (2, 3, 4)),
    'ETDSPlain': ({'num_block': 2, 'num_feat': 16}, (2, 3, 4)),
    'ETDSNet': ({'num_block': 2, 'num_feat': 16}, (2, 3, 4)),
    'ETDSAblationResidual': ({'num_block': 2, 'num_feat': 16}, (2, 3, 4)),
    'ETDSAblationAdvancedResidual': ({'num_block': 2, 'num_feat': 16}, (2, 3, 4)),
    'ETDSOnlyET': ({'num_block': 2, 'num_feat': 16}, (2, 3, 4)),
    'ETDSAblationPlain': ({'num_block': 2, 'num_feat': 16}, (2, 3, 4)),
    'ECBSRPlain': ({'num_block': 2, 'num_feat': 8}, (2, 3, 4)),
    'ABPNNet': ({'num_block': 2, 'num_feat': 8}, (2, 3, 4)),
    'ESPCN': ({'num_feat': 16, 'num_feat2': 8}, (2, 3, 4)),
    'FSRCNN': ({'d': 16, 's': 6, 'm': 2}, (2, 3, 4)),
    'SMSRNet': ({'num_feat': 16, 'num_module': 2}, (2, 3, 4)),
    'APEEDSR': ({'num_feat': 16, 'num_block': 4, 'exit_interval': 2}, (2, 3, 4)),
    'APERCAN': ({'num_feat': 16, 'num_group': 2, 'num_block': 2, 'reduction': 4}, (2, 3, 4)),
    'APEVDSR': ({'num_feat': 16, 'num_conv': 4}, (2, 3, 4)),
    'APEECBSR': ({'num_feat': 8, 'num_block': 2}, (2, 3, 4)),
    'CABMEDSR': ({'num_feat': 16, 'num_block': 2}, (2, 3, 4)),
    'CABMNet': ({'quant_layers': ['backbone.[1-2].0']}, (2, 3, 4)),
}
CASES = [(arch, s) for arch, (_, scales) in ARCHS.items() for s in scales]


def build(arch, scale):
    kwargs = dict(ARCHS[arch][0])
    if arch == 'CABMNet':
        kwargs['backbone'] = dict(ECBSR_SMALL, upscale=scale)
    else:
        kwargs['upscale'] = scale
    torch.manual_seed(0)
    return ARCH_REGISTRY.get(arch)(**kwargs).eval()


@pytest.fixture(scope='module')
def lq():
    """A real LR crop (Set14 baboon x4 LR, 20 x 24)."""
    return read_rgb(require(osp.join(BENCHMARK, 'Set14/LR_bicubic/X4/baboonx4.png')))[..., 30:50, 40:64]


def test_every_adaptsr_arch_is_covered():
    ours = sorted(k for k, v in ARCH_REGISTRY._obj_map.items() if v.__module__.startswith('adaptsr.'))
    assert ours == sorted(ARCHS)


@pytest.mark.parametrize('arch,scale', CASES, ids=[f'{a}-x{s}' for a, s in CASES])
def test_inference_contract(arch, scale, lq):
    net = build(arch, scale)
    sr, cost = run_inference(net, lq)
    assert sr.shape == (1, 3, 20 * scale, 24 * scale) and torch.isfinite(sr).all()
    assert cost['pixels'] == 20 * 24
    assert all(isinstance(v, (int, float)) for k, v in cost.items() if k != 'trace')
    assert cost['flops'] >= 0 and cost['flops_full'] >= 0
    if arch != 'BicubicSR':
        assert cost['flops_full'] > 0
    # the full model's cost adds up over tiles (the left and right halves of the image)
    halves = [run_inference(net, lq[..., :12])[1], run_inference(net, lq[..., 12:])[1]]
    total, _ = sum_costs(halves)
    assert total['pixels'] == cost['pixels']
    # exactly, except per-call terms (RCAN's channel attention acts on one pooled pixel per tile)
    assert total['flops_full'] == pytest.approx(cost['flops_full'], rel=1e-4)


def test_a_plain_net_takes_no_knobs(lq):
    with pytest.raises(TypeError, match=r"ETDSPlain has no adaptive inference; it takes no \['k'\]"):
        run_inference(build('ETDSPlain', 4), lq, k=0.0)


def test_costs_that_are_not_counts_are_refused():
    with pytest.raises(TypeError, match="cost field 'masks' must be a number"):
        sum_costs([{'flops': 1, 'masks': [1, 2]}])
