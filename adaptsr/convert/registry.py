"""Method name -> converter, and the adaptsr arch each converted checkpoint loads into."""
from adaptsr.convert.pcsr import convert_carn_m, convert_pcsr


def _pcsr(ckpt, scale=4, source='?'):
    out = convert_pcsr(ckpt, source=source)
    if out['meta']['scale'] != scale:
        raise ValueError(f"{source}: checkpoint is x{out['meta']['scale']}, --scale is {scale}")
    return out


def _carn_m(ckpt, scale=4, source='?'):
    return convert_carn_m(ckpt, scale=scale, source=source)


CONVERTERS = {'pcsr': _pcsr, 'carn_m': _carn_m}


def build_target(ckpt):
    """Instantiate the arch named in ``ckpt['meta']`` with the sizes implied by its weights."""
    import adaptsr.archs  # noqa: F401  (registration)
    from basicsr.utils.registry import ARCH_REGISTRY
    meta = ckpt['meta']
    sd = ckpt['params']
    if meta['arch'] == 'PCSRNet':
        return ARCH_REGISTRY.get('PCSRNet')(**pcsr_net_kwargs(sd), upscale=meta['scale'])
    if meta['arch'] == 'PCSRCARN':
        return ARCH_REGISTRY.get('PCSRCARN')(num_feat=sd['entry.weight'].shape[0], upscale=meta['scale'])
    if meta['arch'] == 'PCSRFSRCNN':
        return ARCH_REGISTRY.get('PCSRFSRCNN')(d=sd['head_conv.0.weight'].shape[0], upscale=meta['scale'])
    raise ValueError(f"no target arch for {meta['arch']!r}")


def pcsr_net_kwargs(sd):
    """PCSRNet kwargs (encoder, widths) read off a PCSR state_dict."""

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
                light_hidden=widths('light_sampler.'), cls_hidden=widths('classifier.'))


def to_basicsr_checkpoint(ckpt, source='?'):
    """Any supported checkpoint -> ``{'params': ..., ['params_ema'], ['meta']}``.

    Accepts BasicSR checkpoints as they are, official PCSR wrappers (converted on the fly) and raw state_dicts.

    Raises:
        ValueError: an object that is none of these.
    """
    from adaptsr.convert.pcsr import is_pcsr_wrapper
    if isinstance(ckpt, dict) and 'params' in ckpt:
        return ckpt
    if is_pcsr_wrapper(ckpt):
        return convert_pcsr(ckpt, source=source)
    if isinstance(ckpt, dict) and ckpt and all(hasattr(v, 'shape') for v in ckpt.values()):
        return {'params': dict(ckpt)}
    raise ValueError(f'{source}: not a BasicSR checkpoint, an official PCSR checkpoint or a state_dict '
                     f'(top-level keys: {list(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__})')
