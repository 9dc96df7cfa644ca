"""Checkpoints known by their archs: every registered format recognises a state_dict of its arch at every scale,
reads back the hyperparameters it was built with, and loads it strictly; a model names what a wrong file holds."""
import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY

from adaptsr.convert.registry import FORMATS, _load_formats, build_detected, detect_arch
from adaptsr.ops.reparam import ConversionError

# (arch, constructor kwargs without the scale, scales); the scale is read back from the weights where the family
# can (PCSR's x4, SMSR's tail) and given explicitly where it cannot (ETDS family)
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
]
CASES = [(arch, kwargs, s) for arch, kwargs, scales in SAMPLES for s in scales]


def _build(arch, kwargs, scale):
    key = 'scale' if arch == 'ECBSR' else 'upscale'
    return ARCH_REGISTRY.get(arch)(**kwargs, **{key: scale})


def test_every_registered_format_has_a_sample_here():
    _load_formats()
    assert sorted({f.arch for f in FORMATS}) == sorted(a for a, _, _ in SAMPLES)


@pytest.mark.parametrize('arch,kwargs,scale', CASES, ids=[f'{a}-x{s}' for a, _, s in CASES])
def test_format_recognises_its_arch_and_reads_its_hyperparameters(arch, kwargs, scale):
    torch.manual_seed(0)
    sd = _build(arch, kwargs, scale).state_dict()
    found, read = detect_arch(sd, scale, f'{arch}.pth')
    assert found == arch
    expected = dict(kwargs, **({'scale': scale} if arch == 'ECBSR' else {'upscale': scale}))
    assert {k: v for k, v in read.items() if k in expected} == expected
    net = build_detected(sd, scale, f'{arch}.pth')
    assert type(net).__name__ == arch and all(torch.equal(net.state_dict()[k], v) for k, v in sd.items())


@pytest.mark.parametrize('arch,kwargs', [(a, k) for a, k, scales in SAMPLES
                                         if len(scales) > 1 and a != 'SMSRNet'])
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
