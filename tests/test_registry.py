"""Checkpoints known by their archs: every registered format recognises a state_dict of its arch at every scale,
reads back the hyperparameters it was built with, and loads it strictly; a model names what a wrong file holds."""
import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY

from adaptsr.core.checkpoints import FORMATS, build_detected, detect_arch, matching_formats
from adaptsr.core.reparam import ConversionError

# (arch, constructor kwargs without the scale, scales); the scale is read back from the weights (the output convs,
# PCSR's x4) except where they do not hold it (FSRCNN's transposed-conv stride)
SAMPLES = [
    ('PCSRNet', {'encoder': 'carn', 'encoder_opt': {'num_feat': 16}, 'heavy_hidden': [16, 16], 'light_hidden': [8],
                 'cls_hidden': [8]}, (4, )),
    ('PCSRCARN', {'num_feat': 16}, (4, )),
    ('PCSRFSRCNN', {'d': 24}, (4, )),
    ('SMSRNet', {'num_feat': 16}, (2, 3, 4)),
    ('ETDSPlain', {'num_block': 3, 'num_feat': 16}, (2, 3, 4)),
    ('ETDSNet', {'num_block': 3, 'num_feat': 16}, (2, 3, 4)),
    ('ETDSAblationResidual', {'num_block': 3, 'num_feat': 16}, (2, 3, 4)),
    ('ETDSAblationAdvancedResidual', {'num_block': 3, 'num_feat': 16}, (2, 3, 4)),
    ('ETDSOnlyET', {'num_block': 3, 'num_feat': 16}, (2, 3, 4)),
    ('ECBSRPlain', {'num_block': 2, 'num_feat': 8}, (2, 3, 4)),
    ('ABPNNet', {'num_block': 2, 'num_feat': 8}, (2, 3, 4)),
    ('ECBSR', {'num_in_ch': 3, 'num_out_ch': 3, 'num_block': 2, 'num_channel': 8, 'with_idt': False,
               'act_type': 'prelu'}, (2, 3, 4)),
    ('APEECBSR', {'num_block': 4, 'num_feat': 8, 'act_type': 'prelu'}, (2, 3, 4)),
    ('APEECBSR', {'num_block': 4, 'num_feat': 8, 'act_type': 'prelu', 'exit_tails': 'separate', 'exit_interval': 2},
     (4, )),
    ('CABMNet', {'backbone': {'type': 'ECBSRPlain', 'num_block': 3, 'num_feat': 8},
                 'quant_layers': ['backbone.1.0', 'backbone.2.0', 'backbone.3.0'], 'mode': 'cadyq'}, (2, 4)),
    ('ETDSPlain', {'num_block': 3, 'num_feat': 16, 'tail_feat': 20}, (2, 3, 4)),  # ABPN's ET form
    ('ETDSAblationPlain', {'num_block': 3, 'num_feat': 16}, (2, 3, 4)),
    ('ESPCN', {'num_feat': 16, 'num_feat2': 8}, (2, 3, 4)),
    ('FSRCNN', {'d': 16, 's': 6, 'm': 2}, (2, 3, 4)),
]
#: archs whose weights do not fix the scale (FSRCNN: the stride of its transposed convolution)
SCALE_GIVEN = {'FSRCNN'}
CASES = [(arch, kwargs, s) for arch, kwargs, scales in SAMPLES for s in scales]


def _with_scale(arch, kwargs, scale):
    if arch == 'CABMNet':  # the scale is the backbone's
        return dict(kwargs, backbone=dict(kwargs['backbone'], upscale=scale), upscale=scale)
    return dict(kwargs, **{'scale' if arch == 'ECBSR' else 'upscale': scale})


def _build(arch, kwargs, scale):
    return ARCH_REGISTRY.get(arch)(**_with_scale(arch, kwargs, scale))


def test_every_registered_format_has_a_sample_here():
    assert sorted({f.arch for f in FORMATS}) == sorted({a for a, _, _ in SAMPLES})


@pytest.mark.parametrize('arch,kwargs,scale', CASES, ids=[f'{a}-{i}-x{s}' for i, (a, _, s) in enumerate(CASES)])
def test_format_recognises_its_arch_and_reads_its_hyperparameters(arch, kwargs, scale):
    torch.manual_seed(0)
    sd = _build(arch, kwargs, scale).state_dict()
    found, read = detect_arch(sd, scale, f'{arch}.pth')
    assert found == arch
    expected = _with_scale(arch, kwargs, scale)
    assert {k: v for k, v in read.items() if k in expected} == expected
    net = build_detected(sd, scale, f'{arch}.pth')
    assert type(net).__name__ == arch and all(torch.equal(net.state_dict()[k], v) for k, v in sd.items())


@pytest.mark.parametrize('arch,kwargs', [(a, k) for a, k, scales in SAMPLES if len(scales) > 1 and
                                         a not in ('SMSRNet', 'APEECBSR', 'CABMNet', 'ESPCN', 'FSRCNN')])
def test_etds_family_names_the_other_scale(arch, kwargs):
    sd = _build(arch, kwargs, 2).state_dict()
    with pytest.raises(ConversionError, match=r'but x4 needs \d+; is this a checkpoint of another scale'):
        detect_arch(sd, 4, 'x2.pth')


def test_unknown_state_dict_lists_the_supported_archs():
    with pytest.raises(ConversionError,
                       match=r"foo.pth: not the state_dict of a known arch .*supported archs: \['ABPNNet'"):
        detect_arch({'foo.weight': torch.zeros(1)}, 4, 'foo.pth')


def test_a_model_names_the_arch_a_wrong_checkpoint_holds(tmp_path):
    from basicsr.models import build_model
    from conftest import model_options
    path = str(tmp_path / 'smsr_x2.pth')
    torch.save({'params': ARCH_REGISTRY.get('SMSRNet')(num_feat=16, upscale=2).state_dict()}, path)
    opt = model_options(tmp_path, 'SMSRModel', {'type': 'SMSRNet', 'upscale': 2, 'num_feat': 32}, pretrain=path)
    with pytest.raises(RuntimeError, match=r"into SMSRNet \(strict=True\); the file holds SMSRNet\(\{'num_feat': 16, "
                                           r"'upscale': 2\}\):\nshape mismatches"):
        build_model(opt)


@pytest.mark.parametrize('arch,kwargs,scale', CASES, ids=[f'{a}-{i}-x{s}' for i, (a, _, s) in enumerate(CASES)])
def test_a_checkpoint_file_alone_gives_arch_scale_and_model(tmp_path, arch, kwargs, scale):
    """What ``adaptsr-infer --model`` builds from: the scale is found without being told (from the tail, or the
    only scale the output convs fit), except for PCSR's heads, which run at any scale (x4 unless told)."""
    from adaptsr.core.checkpoints import find_format, recognise_checkpoint
    torch.manual_seed(0)
    path = str(tmp_path / f'{arch}.pth')
    torch.save({'params': _build(arch, kwargs, scale).state_dict()}, path)
    if arch in SCALE_GIVEN:
        with pytest.raises(ConversionError, match=r'cannot tell the scale from the weights \(the weights do not fix '
                                                  r'it.*give it \(--scale\)'):
            recognise_checkpoint(path)
    found = recognise_checkpoint(path, scale if arch in SCALE_GIVEN else None)
    assert found.arch == arch and found.scale == scale
    assert found.model_type == find_format(arch).model_type
    assert found.model_type == {'PCSRNet': 'PCSRModel', 'SMSRNet': 'SMSRModel', 'APEECBSR': 'APEModel',
                                   'CABMNet': 'CABMModel'}.get(arch, 'AdaptiveSRModel')


def test_two_formats_never_claim_one_state_dict():
    """An APE or CABM network on an ECBSR backbone is not taken for the plain ECBSR (their formats come first)."""
    for arch, kwargs, scales in SAMPLES:
        sd = _build(arch, kwargs, scales[-1]).state_dict()
        found = [f.arch for f in matching_formats(sd)]
        assert found == [arch], (arch, found)
