"""The baselines' checkpoint formats: how their released files are recognised and their sizes read.

ECBSR (training form, BasicSR's ``ECBSR``; re-parameterised, ``ECBSRPlain``), ABPN, ESPCN and FSRCNN as released
with ETDS (github.com/ECNUSR/ETDS, Apache-2.0). The scale is read off the output convs (3 s^2 channels) except
FSRCNN's, which is its transposed conv's stride and must be given.
"""
import re

from adaptsr.core.checkpoints import build_detected, register_format, scale_from_channels
from adaptsr.core.errors import ConversionError


def ecbsr_train_kwargs(sd, scale, source='?'):
    """BasicSR ``ECBSR`` kwargs read off a training-form state_dict (``backbone.{i}.conv3x3.*`` keys).

    ``with_idt`` adds no parameters and cannot be read off the weights; it is left False (the ETDS baselines).
    """
    idx = sorted({int(m.group(1)) for k in sd for m in [re.match(r'backbone\.(\d+)\.conv3x3\.weight$', k)] if m})
    if not idx:
        raise ConversionError(f'{source}: not a BasicSR ECBSR training-form state_dict')
    scale = scale_from_channels('ECBSR', sd[f'backbone.{idx[-1]}.conv3x3.weight'].shape[0], scale, source)
    return dict(num_in_ch=3, num_out_ch=3, num_block=len(idx) - 2,
                num_channel=sd['backbone.0.conv3x3.weight'].shape[0], with_idt=False, act_type='prelu', scale=scale)


def _anchor_kwargs(arch):
    """Hyperparameters of ``ECBSRPlain`` / ``ABPNNet`` (``backbone.{i}.0`` convs) read off a state_dict."""

    def read(sd, scale, source='?'):
        n = len({int(m.group(1)) for k in sd for m in [re.match(r'backbone\.(\d+)\.0\.weight$', k)] if m})
        scale = scale_from_channels(arch, sd[f'backbone.{n - 1}.0.weight'].shape[0], scale, source)
        return {'num_block': n - 2, 'num_feat': sd['backbone.0.0.weight'].shape[0], 'upscale': scale}

    return read


def abpn_kwargs(sd, scale, source='?'):
    """ABPNNet kwargs (the released layout: ``backbone.0`` conv, ``backbone.{2..M+1}.0`` middle convs,
    ``backbone.{M+2}`` conv to 3 s^2, ``backbone.{M+4}`` output conv) read off a state_dict, any size.

    Raises:
        WrongScaleError: the output convs are for another scale than ``scale``.
    """
    mids = sorted({int(m.group(1)) for k in sd for m in [re.match(r'backbone\.(\d+)\.0\.weight$', k)] if m})
    last = f'backbone.{len(mids) + 4}.weight'
    if last not in sd:
        raise ConversionError(f'{source}: ABPN layout without its output conv {last}')
    scale = scale_from_channels('ABPNNet', sd[last].shape[0], scale, source)
    return {'num_block': len(mids), 'num_feat': sd['backbone.0.weight'].shape[0], 'upscale': scale}


def espcn_kwargs(sd, scale=None, source='?'):
    """ESPCN kwargs read off a state_dict; the scale from ``conv3`` (3 s^2 channels).

    Raises:
        WrongScaleError: ``scale`` given and ``conv3`` is for another one.
    """
    found = scale_from_channels('ESPCN', sd['conv3.weight'].shape[0], scale, source)
    return {'upscale': found, 'num_feat': sd['conv1.weight'].shape[0], 'num_feat2': sd['conv2.weight'].shape[0]}


def fsrcnn_kwargs(sd, scale=None, source='?'):
    """FSRCNN kwargs read off a state_dict. The scale is the transposed conv's stride, which the weights do not
    hold: it must be given (``--scale``).

    Raises:
        TypeError: no scale (the caller then asks for it).
    """
    if scale is None:
        raise TypeError('the FSRCNN scale (its transposed convolution stride) is not in the weights')
    mapping = sum(1 for k in sd if k.startswith('mid_part.') and k.endswith('.weight') and sd[k].dim() == 4) - 2
    return {'upscale': scale, 'd': sd['first_part.0.weight'].shape[0], 's': sd['mid_part.0.weight'].shape[0],
            'm': mapping}


def _has(*keys):
    return lambda sd: all(k in sd for k in keys)


def _last_conv_is_3x3(sd):
    """ABPN's own layout ends in a 3x3 output conv (a 1x1 conv last is another method's transformed form)."""
    last = max((int(m.group(1)) for k in sd for m in [re.match(r'backbone\.(\d+)\.weight$', k)] if m), default=-1)
    return last > 0 and tuple(sd[f'backbone.{last}.weight'].shape[-2:]) == (3, 3)


def _as_released(sd, scale, source):
    """Plain networks export as they are."""
    return build_detected(sd, scale, source), {}


register_format('ECBSR', 'baselines', _has('backbone.0.conv3x3.weight'), ecbsr_train_kwargs)
register_format('ECBSRPlain', 'baselines', _has('backbone.0.0.weight', 'backbone.0.1.weight'),
                _anchor_kwargs('ECBSRPlain'))
register_format('ABPNNet', 'baselines', lambda sd: _has('backbone.0.weight', 'backbone.2.0.weight')(sd) and
                _last_conv_is_3x3(sd), abpn_kwargs)
register_format('ESPCN', 'baselines', lambda sd: {'conv1.weight', 'conv2.weight', 'conv3.weight'} <= set(sd) and
                len(sd) == 6, espcn_kwargs, deploy=_as_released)
register_format('FSRCNN', 'baselines', lambda sd: 'first_part.0.weight' in sd and 'last_part.weight' in sd,
                fsrcnn_kwargs, deploy=_as_released)
