"""Method name -> converter, and the adaptsr arch each converted checkpoint loads into."""
from adaptsr.convert.pcsr import convert_carn_m, convert_pcsr


def _pcsr(ckpt, scale=4, source='?'):
    out = convert_pcsr(ckpt, source=source)
    if out['meta']['scale'] != scale:
        raise ValueError(f"{source}: checkpoint is x{out['meta']['scale']}, --scale is {scale}")
    return out


def _carn_m(ckpt, scale=4, source='?'):
    return convert_carn_m(ckpt, scale=scale, source=source)


def checkpoint_state_dict(ckpt, source, param_key='auto'):
    """The weights of any supported checkpoint: ``param_key`` of a BasicSR checkpoint (``auto``: ``params_ema`` when
    present, the EMA model that ETDS releases, else ``params``), or a raw state_dict."""
    ckpt = to_basicsr_checkpoint(ckpt, source)
    key = ('params_ema' if 'params_ema' in ckpt else 'params') if param_key == 'auto' else param_key
    if key not in ckpt:
        raise KeyError(f'{source}: no {key!r} in the checkpoint (keys: {list(ckpt)})')
    return {k[7:] if k.startswith('module.') else k: v for k, v in ckpt[key].items()}


def _plain_checkpoint(net, info, scale, source, method):
    from adaptsr.convert import basicsr_checkpoint
    out = basicsr_checkpoint(net.state_dict(), method, type(net).__name__, scale, source)
    out['meta'].update({k: v for k, v in info.items() if k != 'scale'})
    return out


def _etds(ckpt, scale=4, source='?', param_key='auto', et=True, **_):
    """ETDS family -> ``ETDSPlain``: released plain files are checked and wrapped; training forms (ours or the
    official ablations; also ECBSR/ABPN states) are converted by ET and verified."""
    from adaptsr.convert.etds import build_from_state_dict, et_convert
    net = build_from_state_dict(checkpoint_state_dict(ckpt, source, param_key), scale, source)
    if type(net).__name__ == 'ETDSPlain':
        return _plain_checkpoint(net, {'source_arch': 'ETDSPlain', 'max_diff_255': 0.0}, scale, source, 'etds')
    plain, info = et_convert(net)
    return _plain_checkpoint(plain, info, scale, source, 'etds')


def _ecbsr(ckpt, scale=4, source='?', param_key='auto', et=False, **_):
    """ECBSR: BasicSR training form (ECB blocks) -> ``ECBSRPlain`` (verified); released ``ECBSRPlain`` files are
    wrapped; with ``et``, either goes on to ``ETDSPlain`` (C + 4 channels, PReLU, embedded clamp)."""
    from adaptsr.convert.etds import build_from_state_dict, check_equivalence, ecbsr_train_to_plain, et_convert
    from adaptsr.ops.reparam import ConversionError, probe_inputs
    net = build_from_state_dict(checkpoint_state_dict(ckpt, source, param_key), scale, source)
    info = {'source_arch': type(net).__name__, 'max_diff_255': 0.0}
    if type(net).__name__ == 'ECBSR':
        plain = ecbsr_train_to_plain(net)
        info['max_diff_255'] = check_equivalence(net, plain, probe_inputs(), what='ECBSR -> ECBSRPlain',
                                                 ref_train_mode=True)
        net = plain
    elif type(net).__name__ != 'ECBSRPlain':
        raise ConversionError(f'{source}: --method ecbsr expects an ECBSR checkpoint, found {type(net).__name__}')
    if et:
        net, info = et_convert(net)
    return _plain_checkpoint(net, info, scale, source, 'ecbsr')


def _abpn(ckpt, scale=4, source='?', param_key='auto', **_):
    """ABPN -> ``ETDSPlain`` by ET, verified."""
    from adaptsr.convert.etds import build_from_state_dict, et_convert
    from adaptsr.ops.reparam import ConversionError
    net = build_from_state_dict(checkpoint_state_dict(ckpt, source, param_key), scale, source)
    if type(net).__name__ != 'ABPNNet':
        raise ConversionError(f'{source}: --method abpn expects an ABPN checkpoint, found {type(net).__name__}')
    plain, info = et_convert(net)
    return _plain_checkpoint(plain, info, scale, source, 'abpn')


def _smsr(ckpt, scale=2, source='?', param_key='auto', **_):
    """Official SMSR state_dict (legacy pickle, raw OrderedDict, github.com/LongguangWang/SMSR) -> ``SMSRNet``.

    Raises:
        ValueError: not an SMSR state_dict, or its tail is for another scale.
    """
    from adaptsr.convert import basicsr_checkpoint
    sd = checkpoint_state_dict(ckpt, source, param_key)
    if 'body.0.body.ch_mask' not in sd or 'tail.0.weight' not in sd:
        raise ValueError(f'{source}: not an SMSR state_dict (no body.0.body.ch_mask / tail.0.weight)')
    found = round((sd['tail.0.weight'].shape[0] / 3) ** 0.5)
    if found != scale:
        raise ValueError(f'{source}: SMSR checkpoint is x{found} (tail.0 has {sd["tail.0.weight"].shape[0]} '
                         f'channels), but --scale is {scale}')
    return basicsr_checkpoint(sd, 'smsr', 'SMSRNet', scale, source)


CONVERTERS = {'pcsr': _pcsr, 'carn_m': _carn_m, 'etds': _etds, 'ecbsr': _ecbsr, 'abpn': _abpn, 'smsr': _smsr}


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
    if meta['arch'] == 'SMSRNet':
        return ARCH_REGISTRY.get('SMSRNet')(num_feat=sd['head.0.weight'].shape[0], upscale=meta['scale'])
    if meta['arch'] in ('ETDSPlain', 'ECBSRPlain'):
        from adaptsr.convert.etds import infer_arch
        arch, kwargs = infer_arch(sd, meta['scale'])
        return ARCH_REGISTRY.get(arch)(**kwargs)
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
