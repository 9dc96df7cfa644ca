"""Checkpoints known by their archs: one registry of formats, the strict loader, and the official converters.

Each arch family declares how to recognise its checkpoints and read its hyperparameters from the state_dict with
:func:`register_format` (in the family's convert module or arch module, as spandrel's ``detect``/``load``,
github.com/chaiNNer-org/spandrel); :func:`detect_arch` / :func:`build_detected` go through the registry, and so do
``scripts/convert_official.py`` (:data:`CONVERTERS`, :func:`build_target`) and every model's ``load_network``
(:func:`load_into`). An arch adapts other layouts of its own checkpoints in its ``adapt_state_dict(sd, source)``
method (APE: BasicSR EDSR/RCAN names; CABM: a full-precision file; ETDSPlain: a training form by ET), and may name
``optional_key_prefixes`` that a non-strict load may leave out.
"""
from typing import Callable, NamedTuple

import torch

from adaptsr.convert import CheckpointError, check_finite, load_checkpoint
from adaptsr.convert.pcsr import convert_carn_m, convert_pcsr
from adaptsr.core.errors import ConversionError, WrongScaleError  # noqa: F401

#: readable names of the families, for errors
FAMILY_NAMES = {'etds': 'ETDS/ECBSR/ABPN', 'pcsr': 'PCSR', 'smsr': 'SMSR', 'ape': 'APE', 'cabm': 'CABM'}


class CheckpointFormat(NamedTuple):
    """One arch's checkpoint format: ``detect(sd) -> bool``, ``hyperparams(sd, scale, source) -> kwargs`` and the
    BasicSR ``model_type`` that tests it (its adaptive inference and statistics)."""
    arch: str
    family: str
    detect: Callable
    hyperparams: Callable
    model_type: str = 'AdaptiveSRModel'


FORMATS = []


def register_format(arch, family, detect, hyperparams, model_type='AdaptiveSRModel'):
    """Declare that state_dicts for which ``detect(sd)`` holds build ``ARCH_REGISTRY[arch](**hyperparams(sd, scale,
    source))``, tested by ``MODEL_REGISTRY[model_type]``. No two formats may recognise the same state_dict."""
    FORMATS.append(CheckpointFormat(arch, family, detect, hyperparams, model_type))


def _load_formats():
    import adaptsr.archs  # noqa: F401  (arch modules register their formats)
    import adaptsr.models  # noqa: F401  (the model types the formats name)
    import adaptsr.convert.etds  # noqa: F401
    import adaptsr.convert.pcsr  # noqa: F401


def detect_arch(sd, scale=None, source='?', family=None):
    """Arch name and constructor kwargs of a state_dict, by the registered formats.

    Args:
        sd (dict): state_dict (adaptsr or official names).
        scale (int | None): the scale, where the family cannot read it from the weights (ETDS: explicit, as the
            official test scripts take it); checked against the output convs.
        source (str): file name for errors.
        family (str | None): restrict to one family (``etds``, ``pcsr``, ``smsr``).

    Returns:
        tuple[str, dict]: registered arch name and kwargs.

    Raises:
        ConversionError: no format recognises ``sd`` (the supported archs are listed), or its shapes disagree with
            ``scale``.
    """
    _load_formats()
    found = [f for f in FORMATS if (family is None or f.family == family) and f.detect(sd)]
    if not found:
        what = f'an {FAMILY_NAMES.get(family, family)} state_dict' if family else 'the state_dict of a known arch'
        supported = sorted({f.arch for f in FORMATS if family is None or f.family == family})
        raise ConversionError(f'{source}: not {what} (keys: {sorted(sd)[:6]}...); supported archs: {supported}')
    if len(found) > 1:
        raise ConversionError(f'{source}: ambiguous state_dict, recognised as {[f.arch for f in found]}')
    fmt = found[0]
    return fmt.arch, fmt.hyperparams(sd, scale, source)


def find_format(arch):
    """The registered :class:`CheckpointFormat` of ``arch``. Raises KeyError when it has none."""
    _load_formats()
    for fmt in FORMATS:
        if fmt.arch == arch:
            return fmt
    raise KeyError(f'no checkpoint format registered for {arch}')


#: scales tried, in order, for a family whose scale the weights give only by their shapes (ETDS's output convs)
CANDIDATE_SCALES = (2, 3, 4, 8)


def recognise_checkpoint(path, scale=None, param_key='auto'):
    """What a checkpoint file holds, for building a model from it alone (``adaptsr-infer --model``).

    The scale is, in order: ``scale``; the checkpoint's ``meta['scale']`` (converted files); what the arch reads off
    the weights (SMSR's and APE's tails; PCSR's heads are trained at x4 and work at any scale); the only scale of
    :data:`CANDIDATE_SCALES` that the output convs fit (ETDS family).

    Args:
        path (str): checkpoint file (an adaptsr/BasicSR checkpoint, an official file of a converted method, or a raw
            state_dict).
        scale (int | None): the scale, when known.
        param_key (str): ``params``, ``params_ema`` or ``auto`` (``params_ema`` when present).

    Returns:
        dict: ``arch``, ``kwargs`` (constructor), ``model_type``, ``scale``, ``param_key`` (the key that holds the
        weights) and ``state_dict``.

    Raises:
        FileNotFoundError: no such file. ValueError: not a checkpoint (named). ConversionError: no registered format
        recognises the weights (the supported archs are listed), or no single scale fits them.
    """
    ckpt = to_basicsr_checkpoint(load_checkpoint(path), path)
    key = ('params_ema' if 'params_ema' in ckpt else 'params') if param_key == 'auto' else param_key
    sd = checkpoint_state_dict(ckpt, path, key)
    check_finite(sd, path)
    meta_scale = (ckpt.get('meta') or {}).get('scale')
    if scale is None and meta_scale is not None:
        scale = int(meta_scale)
    if scale is None:
        try:
            arch, kwargs = detect_arch(sd, None, path)
            scale = kwargs.get('upscale', kwargs.get('scale'))
        except (TypeError, WrongScaleError):  # the family needs the scale to read the shapes
            pass
    if scale is None:
        fits = []
        for candidate in CANDIDATE_SCALES:
            try:
                detect_arch(sd, candidate, path)
                fits.append(candidate)
            except WrongScaleError:
                continue
        if len(fits) != 1:
            why = 'the weights do not fix it' if fits else 'no scale fits the output convs'
            raise ConversionError(f'{path}: cannot tell the scale from the weights ({why}: fits {fits} of '
                                  f'{list(CANDIDATE_SCALES)}); give it (--scale)')
        scale = fits[0]
    arch, kwargs = detect_arch(sd, scale, path)
    return {'arch': arch, 'kwargs': kwargs, 'model_type': find_format(arch).model_type, 'scale': int(scale),
            'param_key': key, 'state_dict': sd}


def build_detected(sd, scale=None, source='?', family=None):
    """Instantiate the arch :func:`detect_arch` finds and load ``sd`` strictly (through the arch's
    ``adapt_state_dict`` when it has one, e.g. an official ``ABPN_ET`` file's names into ``ETDSPlain``).

    Raises:
        ConversionError: not recognised, or not loading strictly into the detected arch.
    """
    from basicsr.utils.registry import ARCH_REGISTRY
    arch, kwargs = detect_arch(sd, scale, source, family)
    net = ARCH_REGISTRY.get(arch)(**kwargs)
    if hasattr(net, 'adapt_state_dict'):
        sd = net.adapt_state_dict(sd, source)
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        raise ConversionError(f'{source}: does not load strictly into {arch}({kwargs}): {err}') from None
    return net


def load_into(net, load_path, strict=True, param_key='params', scale=None, may_be_missing=()):
    """Strict, loud loading of a checkpoint file into ``net`` (every model's ``load_network``).

    Accepts BasicSR checkpoints, official PCSR files (converted on the fly) and raw state_dicts; ``module.``
    prefixes are dropped and ``net.adapt_state_dict(sd, source)`` (when the arch has one) maps other layouts. With
    ``strict=False`` only keys under ``net.optional_key_prefixes`` may be missing when the arch declares them (else
    BasicSR's rule: any key may be missing). Keys in ``may_be_missing`` may be missing even when strict (a phase
    that trains them from scratch, see ``train.start_phase``); they keep the network's initialisation, and the log
    names them.

    Raises:
        FileNotFoundError: no such file. ValueError: the file cannot be read, its recorded scale differs from
        ``scale``, or a tensor holds NaN/Inf (a diverged training; the tensors are named).
        CheckpointError: ``param_key`` absent (``params_ema`` falls back to ``params``).
        RuntimeError: missing/unexpected keys (strict) or shape
        mismatches, listing them and naming the arch the file holds when the registry recognises it.
    """
    from basicsr.utils import get_root_logger
    ckpt = to_basicsr_checkpoint(load_checkpoint(load_path), load_path)
    meta = ckpt.get('meta') or {}
    if meta.get('scale') is not None and scale is not None and meta['scale'] != scale:
        raise ValueError(f"{load_path}: checkpoint is for x{meta['scale']} but the options say scale: {scale}")
    key = param_key
    if key not in ckpt:  # as BasicSR, an EMA network loads 'params' from a checkpoint without EMA weights
        if param_key != 'params_ema' or 'params' not in ckpt:
            weights = [k for k, v in ckpt.items() if isinstance(v, dict) and v and all(torch.is_tensor(t)
                                                                                         for t in v.values())]
            raise CheckpointError(f'{load_path}: no {param_key!r} in the checkpoint (path.param_key_g?); its weights '
                                  f'are under {weights}')
        key = 'params'
        get_root_logger().info(f'{load_path}: no params_ema, the EMA network loads params')
    sd = {k[7:] if k.startswith('module.') else k: v for k, v in ckpt[key].items()}
    check_finite(sd, f'{load_path} [{key}]')
    adapt = getattr(net, 'adapt_state_dict', None)
    if adapt is not None:
        sd = adapt(sd, load_path)
    own = net.state_dict()
    absent = set(own) - set(sd)
    new = sorted(absent & set(may_be_missing))
    missing = sorted(absent - set(may_be_missing))
    unexpected = sorted(set(sd) - set(own))
    optional = getattr(net, 'optional_key_prefixes', None)
    if not strict and optional is not None:
        outside = [k for k in missing if not k.startswith(tuple(optional))]
        if outside or unexpected:
            raise RuntimeError(f'cannot load {load_path} into {type(net).__name__} (strict=False): only keys '
                               f'starting with {list(optional)} may be missing; missing {outside}, unexpected '
                               f'{unexpected}')
    mismatched = [f'{k}: checkpoint {tuple(sd[k].shape)} vs network {tuple(own[k].shape)}'
                  for k in sorted(set(sd) & set(own)) if sd[k].shape != own[k].shape]
    problems = []
    if mismatched:
        problems.append('shape mismatches:\n  ' + '\n  '.join(mismatched))
    if strict and missing:
        problems.append(f'missing keys ({len(missing)}): {missing}')
    if strict and unexpected:
        problems.append(f'unexpected keys ({len(unexpected)}): {unexpected}')
    if problems:
        try:
            arch, kwargs = detect_arch(sd, scale or meta.get('scale'), load_path)
            holds = f'; the file holds {arch}({kwargs})'
        except WrongScaleError:
            raise
        except (ConversionError, KeyError, TypeError, ValueError):
            holds = ''
        raise RuntimeError(f'cannot load {load_path} into {type(net).__name__} (strict={strict}){holds}:\n' +
                           '\n'.join(problems))
    net.load_state_dict(sd, strict=strict and not new)
    missing += new
    get_root_logger().info(f'Loaded {type(net).__name__} from {load_path} [{key}] ({len(sd)} tensors)' +
                           (f'; not in the checkpoint (newly initialised): {missing}' if missing else ''))


def _pcsr(ckpt, scale=4, source='?', param_key='auto'):
    """An official PCSR wrapper, or a PCSR-family BasicSR checkpoint / state_dict (e.g. adaptsr's own)."""
    from adaptsr.convert import basicsr_checkpoint
    from adaptsr.convert.pcsr import is_pcsr_wrapper
    if is_pcsr_wrapper(ckpt):
        out = convert_pcsr(ckpt, source=source)
    else:
        sd = checkpoint_state_dict(ckpt, source, param_key)
        arch, _ = detect_arch(sd, scale, source, family='pcsr')
        out = basicsr_checkpoint(sd, 'pcsr', arch, scale, source)
    if out['meta']['scale'] != scale:
        raise ValueError(f"{source}: checkpoint is x{out['meta']['scale']}, --scale is {scale}")
    return out


def keep_modules(ckpt, prefixes):
    """A converted checkpoint reduced to the state_dict keys under ``prefixes`` (module names), e.g. PCSR's phase-0
    part (``encoder``, ``heavy_sampler``) of a phase-1 file, to train the other modules again from scratch with
    ``train.start_phase``. ``meta['kept_modules']`` records the prefixes.

    Raises:
        ValueError: a prefix that matches no key, or prefixes that keep every key.
    """
    def under(key, prefix):
        return key == prefix or key.startswith(prefix + '.')

    def kept(key):
        return any(under(key, p) for p in prefixes)

    sd = ckpt['params']
    unmatched = [p for p in prefixes if not any(under(k, p) for k in sd)]
    if unmatched:
        tops = sorted({k.split('.')[0] for k in sd})
        raise ValueError(f"--keep {unmatched} match no key of {ckpt['meta']['arch']}; its modules: {tops}")
    out = dict(ckpt, meta=dict(ckpt['meta'], kept_modules=list(prefixes)))
    for key in ('params', 'params_ema'):
        if key in ckpt:
            out[key] = {k: v for k, v in ckpt[key].items() if kept(k)}
    if len(out['params']) == len(sd):
        raise ValueError(f'--keep {list(prefixes)} keeps every key; nothing would be re-initialised')
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
    from adaptsr.archs.etds_arch import ETDSPlain
    from adaptsr.convert.etds import build_from_state_dict, et_convert
    net = build_from_state_dict(checkpoint_state_dict(ckpt, source, param_key), scale, source)
    if isinstance(net, ETDSPlain):
        return _plain_checkpoint(net, {'source_arch': 'ETDSPlain', 'max_diff_255': 0.0}, scale, source, 'etds')
    plain, info = et_convert(net)
    return _plain_checkpoint(plain, info, scale, source, 'etds')


def _ecbsr(ckpt, scale=4, source='?', param_key='auto', et=False, **_):
    """ECBSR: BasicSR training form (ECB blocks) -> ``ECBSRPlain`` (verified); released ``ECBSRPlain`` files are
    wrapped; with ``et``, either goes on to ``ETDSPlain`` (C + 4 channels, PReLU, embedded clamp)."""
    from basicsr.archs.ecbsr_arch import ECBSR
    from adaptsr.archs.ecbsr_arch import ECBSRPlain
    from adaptsr.convert.etds import build_from_state_dict, check_equivalence, ecbsr_train_to_plain, et_convert
    from adaptsr.ops.reparam import probe_inputs
    net = build_from_state_dict(checkpoint_state_dict(ckpt, source, param_key), scale, source)
    info = {'source_arch': type(net).__name__, 'max_diff_255': 0.0}
    if isinstance(net, ECBSR):
        plain = ecbsr_train_to_plain(net)
        info['max_diff_255'] = check_equivalence(net, plain, probe_inputs(), what='ECBSR -> ECBSRPlain',
                                                 ref_train_mode=True)
        net = plain
    elif not isinstance(net, ECBSRPlain):
        raise ConversionError(f'{source}: --method ecbsr expects an ECBSR checkpoint, found {type(net).__name__}')
    if et:
        net, info = et_convert(net)
    return _plain_checkpoint(net, info, scale, source, 'ecbsr')


def _abpn(ckpt, scale=4, source='?', param_key='auto', **_):
    """ABPN -> ``ETDSPlain`` by ET, verified."""
    from adaptsr.archs.abpn_arch import ABPNNet
    from adaptsr.convert.etds import build_from_state_dict, et_convert
    net = build_from_state_dict(checkpoint_state_dict(ckpt, source, param_key), scale, source)
    if not isinstance(net, ABPNNet):
        raise ConversionError(f'{source}: --method abpn expects an ABPN checkpoint, found {type(net).__name__}')
    plain, info = et_convert(net)
    return _plain_checkpoint(plain, info, scale, source, 'abpn')


def _smsr(ckpt, scale=2, source='?', param_key='auto', **_):
    """Official SMSR state_dict (legacy pickle, raw OrderedDict, github.com/LongguangWang/SMSR) -> ``SMSRNet``.

    Raises:
        ConversionError: not an SMSR state_dict. ValueError: its tail is for another scale.
    """
    from adaptsr.convert import basicsr_checkpoint
    sd = checkpoint_state_dict(ckpt, source, param_key)
    _, kwargs = detect_arch(sd, None, source, family='smsr')
    if kwargs['upscale'] != scale:
        raise ValueError(f'{source}: SMSR checkpoint is x{kwargs["upscale"]} (tail.0 has '
                         f'{sd["tail.0.weight"].shape[0]} channels), but --scale is {scale}')
    return basicsr_checkpoint(sd, 'smsr', 'SMSRNet', scale, source)


CONVERTERS = {'pcsr': _pcsr, 'carn_m': _carn_m, 'etds': _etds, 'ecbsr': _ecbsr, 'abpn': _abpn, 'smsr': _smsr}


def build_target(ckpt):
    """Instantiate the arch of a converted checkpoint (``{'params', 'meta'}``) with the sizes its weights imply.

    Raises:
        ConversionError: the registry does not recognise the weights, or they do not give ``meta['arch']``.
    """
    from basicsr.utils.registry import ARCH_REGISTRY
    meta = ckpt['meta']
    arch, kwargs = detect_arch(ckpt['params'], meta['scale'], meta.get('source', '?'))
    if arch != meta['arch']:
        raise ConversionError(f"{meta.get('source', '?')}: converted to {meta['arch']} but the weights are {arch}'s")
    return ARCH_REGISTRY.get(arch)(**kwargs)


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
