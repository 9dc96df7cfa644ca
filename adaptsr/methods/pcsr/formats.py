"""PCSR's checkpoint formats, its official wrapper files and the official CARN-M (github.com/3587jjh/PCSR).

* ``save/<cfg>/iter_last.pth`` of github.com/3587jjh/PCSR: ``{'model': {'name', 'args', 'sd'}, ...}``; the
  weights at ``['model']['sd']`` already use adaptsr's module names (``pcsr-phase1`` -> ``PCSRNet``, ``carn`` ->
  ``PCSRCARN``, ``fsrcnn`` -> ``PCSRFSRCNN``).
* ``carn_m.pth`` of github.com/nmhkahn/CARN-pytorch (multi-scale CARN-M): its x4 branch maps bit-exactly onto
  ``PCSRCARN``: 1x1 fusion bias -> BatchNorm with identity statistics (weight 1, mean 0, var 1 - eps).
"""
import torch

from adaptsr.core.checkpoint_io import basicsr_checkpoint
from adaptsr.core.checkpoints import (checkpoint_state_dict, detect_arch, register_converter, register_format,
                                      register_wrapper)
from adaptsr.methods.pcsr.declarations import CONVERTERS

PCSR_NAMES = {'pcsr-phase1': 'PCSRNet', 'pcsr-phase0': 'PCSRNet', 'carn': 'PCSRCARN', 'fsrcnn': 'PCSRFSRCNN'}
BN_EPS = 1e-5


def is_pcsr_wrapper(ckpt):
    return isinstance(ckpt, dict) and isinstance(ckpt.get('model'), dict) and 'sd' in ckpt['model']


def convert_pcsr(ckpt, source='?'):
    """Official PCSR wrapper (phase-1 PCSR or original CARN/FSRCNN) -> BasicSR checkpoint.

    Raises:
        ValueError: not a PCSR wrapper, or an unknown model name.
    """
    if not is_pcsr_wrapper(ckpt):
        raise ValueError(f"{source}: not an official PCSR checkpoint (expected ckpt['model']['sd'])")
    name = ckpt['model'].get('name')
    if name not in PCSR_NAMES:
        raise ValueError(f'{source}: unknown PCSR model name {name!r}; expected one of {sorted(PCSR_NAMES)}')
    scale = ckpt['model'].get('args', {}).get('scale', 4)  # PCSR trains x4 only
    return basicsr_checkpoint(ckpt['model']['sd'], 'pcsr', PCSR_NAMES[name], scale, source)


def convert_carn_m(sd, scale=4, source='?'):
    """Official multi-scale CARN-M state_dict -> ``PCSRCARN`` x``scale`` (bit-exact).

    Raises:
        ValueError: keys of the scale branch missing (not a CARN-M file).
    """
    prefix = f'upsample.up{scale}.'
    if not any(k.startswith(prefix) for k in sd):
        raise ValueError(f'{source}: no {prefix}* keys; not an official multi-scale CARN-M checkpoint')
    out = {}
    for key, val in sd.items():
        if key.startswith(('sub_mean.', 'add_mean.')) or (key.startswith('upsample.') and not key.startswith(prefix)):
            continue
        if key.startswith(prefix):
            out['upsample.up.' + key[len(prefix):]] = val
            continue
        parts = key.split('.')
        # X.cK.body.0.{weight,bias} (block level) or cK.body.0.{weight,bias} (network level) -> 1x1 conv + BN
        if len(parts) >= 4 and parts[-4].startswith('c') and parts[-3] == 'body' and parts[-2] == '0':
            base = '.'.join(parts[:-3])
            if parts[-1] == 'weight':
                out[f'{base}.0.weight'] = val
            else:
                out[f'{base}.1.bias'] = val
                out[f'{base}.1.weight'] = torch.ones_like(val)
                out[f'{base}.1.running_mean'] = torch.zeros_like(val)
                out[f'{base}.1.running_var'] = torch.full_like(val, 1 - BN_EPS)
                out[f'{base}.1.num_batches_tracked'] = torch.tensor(0)
            continue
        out[key] = val
    return basicsr_checkpoint(out, 'pcsr', 'PCSRCARN', scale, source)


def pcsr_net_kwargs(sd, scale=None, source='?'):
    """PCSRNet kwargs (encoder, MLP widths, scale) read off a PCSR state_dict (adaptsr or official names)."""

    def widths(prefix):
        keys = sorted((int(k.split('.')[-2]), k) for k in sd if k.startswith(prefix) and k.endswith('.weight'))
        return [sd[k].shape[0] for _, k in keys][:-1]

    if 'encoder.entry.weight' in sd:
        encoder, enc_opt = 'carn', {'num_feat': sd['encoder.entry.weight'].shape[0]}
    elif 'encoder.head_conv.0.weight' in sd:
        encoder, enc_opt = 'fsrcnn', {'d': sd['encoder.head_conv.0.weight'].shape[0]}
    else:
        encoder, enc_opt = 'srresnet', {'num_feat': sd['encoder.conv_first.weight'].shape[0]}
    return dict(encoder=encoder, encoder_opt=enc_opt, heavy_hidden=widths('heavy_sampler.'),
                light_hidden=widths('light_sampler.'), cls_hidden=widths('classifier.'), upscale=scale or 4)


register_format('PCSRNet', 'pcsr', lambda sd: any(k.startswith('heavy_sampler.') for k in sd) and
                any(k.startswith('classifier.') for k in sd), pcsr_net_kwargs, model_type='PCSRModel')
# the original CARN / FSRCNN of PCSR's repository (its baselines, and its encoders' sources): PCSR trains x4 only
register_format('PCSRCARN', 'pcsr', lambda sd: 'entry.weight' in sd and any(k.startswith('upsample.up.') for k in sd),
                lambda sd, scale=None, source='?': {'num_feat': sd['entry.weight'].shape[0], 'upscale': scale or 4})
register_format('PCSRFSRCNN', 'pcsr', lambda sd: 'head_conv.0.weight' in sd,
                lambda sd, scale=None, source='?': {'d': sd['head_conv.0.weight'].shape[0], 'upscale': scale or 4})
register_wrapper(is_pcsr_wrapper, lambda ckpt, source='?': convert_pcsr(ckpt, source=source))
#: the PCSR-family archs (a converted file must be one of these)
PCSR_ARCHS = ('PCSRNet', 'PCSRCARN', 'PCSRFSRCNN')


def _pcsr(ckpt, scale=4, source='?', param_key='auto', **_):
    """An official PCSR wrapper, or a PCSR-family BasicSR checkpoint / state_dict (e.g. adaptsr's own)."""
    if is_pcsr_wrapper(ckpt):
        out = convert_pcsr(ckpt, source=source)
    else:
        sd = checkpoint_state_dict(ckpt, source, param_key)
        arch, _ = detect_arch(sd, scale, source, archs=PCSR_ARCHS)
        out = basicsr_checkpoint(sd, 'pcsr', arch, scale, source)
    if out['meta']['scale'] != scale:
        raise ValueError(f"{source}: checkpoint is x{out['meta']['scale']}, --scale is {scale}")
    return out


register_converter('pcsr', _pcsr, CONVERTERS['pcsr'])
register_converter('carn_m', lambda ckpt, scale=4, source='?', **_: convert_carn_m(ckpt, scale=scale, source=source),
                   CONVERTERS['carn_m'])
