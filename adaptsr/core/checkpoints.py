"""Checkpoints known by their archs: the format registry, the descriptor of a file, and the strict loader.

Each method declares, in its ``formats.py``, how to recognise its checkpoints and read its hyperparameters from the
state_dict (:func:`register_format`, as spandrel's ``detect``/``load``, github.com/chaiNNer-org/spandrel), the
wrapper layouts of its official files (:func:`register_wrapper`) and its converters (:func:`register_converter`).
This module knows no method: it goes through what they registered. An arch adapts other layouts of its own
checkpoints in its ``adapt_state_dict(sd, source)`` method (e.g. BasicSR EDSR names, a full-precision file) or
through an adapter its method registers (:func:`register_adapter`, e.g. a training form by a conversion), and may
name ``optional_key_prefixes`` that a non-strict load may leave out.
"""
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch
from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY

from adaptsr.core.checkpoint_io import CheckpointError, basicsr_checkpoint, check_finite, load_checkpoint
from adaptsr.core.declarations import declared, declared_knobs
from adaptsr.core.errors import ConversionError, WrongScaleError  # noqa: F401  (importable from here too)


class CheckpointFormat(NamedTuple):
    """One arch's checkpoint format.

    Attributes:
        arch (str): the registered arch it builds. method (str): the method package that registered it.
        detect (callable): ``detect(sd) -> bool``.
        hyperparams (callable): ``hyperparams(sd, scale, source) -> kwargs``; ``scale`` may be None where the
            weights give it (else TypeError, the caller then asks for it), and a scale the weights contradict is a
            :class:`WrongScaleError`.
        model_type (str): the BasicSR model that tests it (its adaptive inference and statistics).
        first (bool): tried before the formats without it: a method that adds modules to another's backbone
            (e.g. a regressor or bit selectors on a plain net) recognises its files before the backbone's format.
        deploy (callable | None): ``deploy(sd, scale, source) -> (nn.Module, dict)``, the network to export
            (ONNX/TFLite) and what to report of it (e.g. an equivalent plain form; ``int8_clips`` where the
            method learned its own activation ranges); None: the format does not export.
    """
    arch: str
    method: str
    detect: Callable
    hyperparams: Callable
    model_type: str = 'AdaptiveSRModel'
    first: bool = False
    deploy: Callable = None


FORMATS = []
#: ``(recognise(obj) -> bool, to_checkpoint(obj, source) -> BasicSR checkpoint)`` of file layouts that are not a
#: BasicSR checkpoint nor a state_dict (an official wrapper file), registered by their method
WRAPPERS = []
#: ``arch -> adapt(net, sd, source)`` (:func:`register_adapter`)
ADAPTERS = {}
#: ``adaptsr-convert --method NAME``: ``NAME -> (convert(ckpt, scale, source, param_key, **flags), help)``
CONVERTERS = {}


def register_format(arch, method, detect, hyperparams, model_type='AdaptiveSRModel', first=False, deploy=None):
    """Declare that state_dicts for which ``detect(sd)`` holds build ``ARCH_REGISTRY[arch](**hyperparams(sd, scale,
    source))``, tested by ``MODEL_REGISTRY[model_type]`` (see :class:`CheckpointFormat`). Among the formats of one
    order (``first`` or not) no two may recognise the same state_dict."""
    FORMATS.append(CheckpointFormat(arch, method, detect, hyperparams, model_type, first, deploy))


def set_deploy(arch, deploy):
    """Give the registered format(s) of ``arch`` a ``deploy`` (:class:`CheckpointFormat`): a method that exports
    another's networks in its own form (e.g. an equivalent plain net) declares it from its own package.

    Raises:
        KeyError: no format of ``arch`` is registered (register the method it belongs to first).
    """
    hits = [i for i, f in enumerate(FORMATS) if f.arch == arch]
    if not hits:
        raise KeyError(f'no checkpoint format registered for {arch}')
    for i in hits:
        FORMATS[i] = FORMATS[i]._replace(deploy=deploy)


def register_adapter(arch, adapt):
    """Declare how ``arch`` reads other layouts of its weights: ``adapt(net, sd, source) -> sd`` (e.g. a training
    form turned into a plain net's weights by the method's conversion), where the arch itself does not define
    ``adapt_state_dict(sd, source)``."""
    ADAPTERS[arch] = adapt


def adapter(net):
    """``adapt(sd, source) -> sd`` of ``net``: its registered adapter, or its own ``adapt_state_dict``, or None."""
    registered = ADAPTERS.get(type(net).__name__)
    if registered is not None:
        return lambda sd, source='?': registered(net, sd, source)
    return getattr(net, 'adapt_state_dict', None)


def register_wrapper(recognise, to_checkpoint):
    """Declare a checkpoint file layout that wraps its weights (e.g. an official repository's ``{'model': {'sd':
    ...}}``): ``to_checkpoint(obj, source)`` returns the BasicSR checkpoint of an object ``recognise`` accepts."""
    WRAPPERS.append((recognise, to_checkpoint))


def register_converter(name, convert, help_text):
    """Declare ``adaptsr-convert --method name``: ``convert(ckpt, scale=..., source=..., param_key=..., **flags)``
    returns a BasicSR checkpoint with ``meta``."""
    if name in CONVERTERS:
        raise ValueError(f'converter {name!r} is registered twice')
    CONVERTERS[name] = (convert, help_text)


def matching_formats(sd, archs=None):
    """The formats that recognise ``sd`` in detection order: those registered with ``first`` where any of them does,
    else the others (one, for a state_dict that is not ambiguous)."""
    found = [f for f in FORMATS if (archs is None or f.arch in archs) and f.detect(sd)]
    first = [f for f in found if f.first]
    return first or found


def match_format(sd, source='?', archs=None, what=None):
    """The :class:`CheckpointFormat` that recognises ``sd``.

    Args:
        sd (dict): state_dict (adaptsr or official names). source (str): file name for errors.
        archs (Collection[str] | None): only these archs (e.g. the ones a converter accepts).
        what (str | None): how the error names them (e.g. ``'an ETDS/ECBSR/ABPN state_dict'``).

    Raises:
        ConversionError: no format recognises ``sd`` (the supported archs are listed), or two do.
    """
    found = matching_formats(sd, archs)
    if not found:
        what = what or (f'the state_dict of {", ".join(sorted(set(archs)))}' if archs else
                        'the state_dict of a known arch')
        supported = sorted({f.arch for f in FORMATS if archs is None or f.arch in archs})
        hint = '' if archs else (f'; an official file in another layout may need converting first: adaptsr-convert '
                                 f'--method {"|".join(sorted(CONVERTERS))}')
        raise ConversionError(f'{source}: not {what} (keys: {sorted(sd)[:6]}...); supported archs: {supported}{hint}')
    if len(found) > 1:
        raise ConversionError(f'{source}: ambiguous state_dict, recognised as {[f.arch for f in found]}')
    return found[0]


def detect_arch(sd, scale=None, source='?', archs=None, what=None):
    """Arch name and constructor kwargs of a state_dict, by the registered formats.

    Args:
        sd (dict): state_dict (adaptsr or official names).
        scale (int | None): the scale, where the weights do not give it (FSRCNN's transposed conv stride); else
            checked against them.
        source (str): file name for errors.
        archs (Collection[str] | None): restrict to these archs. what (str | None): see :func:`match_format`.

    Returns:
        tuple[str, dict]: registered arch name and kwargs.

    Raises:
        ConversionError: no format recognises ``sd`` (the supported archs are listed). WrongScaleError: its shapes
            disagree with ``scale``. TypeError: ``scale`` is None and the weights do not give it.
    """
    fmt = match_format(sd, source, archs, what)
    return fmt.arch, fmt.hyperparams(sd, scale, source)


def scale_from_channels(arch, channels, scale=None, source='?', channels_at=lambda s: 3 * s * s, scales=range(1, 9)):
    """The scale of an output conv with ``channels`` channels (``channels_at(s)``, default 3 s^2 before PixelShuffle),
    or ``scale`` checked against it.

    Raises:
        WrongScaleError: ``scale`` given and the conv is for another one. ConversionError: ``scale`` None and no
            single scale of ``scales`` fits.
    """
    if scale is not None:
        if channels_at(scale) != channels:
            raise WrongScaleError(f'{source}: {arch} output conv has {channels} channels, but x{scale} needs '
                                  f'{channels_at(scale)}; is this a checkpoint of another scale?')
        return scale
    fits = [s for s in scales if channels_at(s) == channels]
    if len(fits) != 1:
        raise ConversionError(f'{source}: cannot tell the scale from the weights ({arch} output conv has {channels} '
                              f'channels; fits {fits}); give it (--scale)')
    return fits[0]


def find_format(arch):
    """The registered :class:`CheckpointFormat` of ``arch``. Raises KeyError when it has none."""
    for fmt in FORMATS:
        if fmt.arch == arch:
            return fmt
    raise KeyError(f'no checkpoint format registered for {arch}')


@dataclass
class Descriptor:
    """What a checkpoint holds, for building a model from it alone (:func:`recognise_checkpoint`).

    Attributes:
        arch (str): registered arch. kwargs (dict): its constructor arguments. scale (int): upscaling factor.
        method (str): the method package of its format. model_type (str): the BasicSR model that runs it.
        param_key (str): the checkpoint key that holds the weights. source (str): the file.
        state_dict (dict): the weights. format (CheckpointFormat): the format that recognised it.
    """
    arch: str
    kwargs: dict
    scale: int
    method: str
    model_type: str
    param_key: str
    source: str
    state_dict: dict = field(repr=False)
    format: CheckpointFormat = field(repr=False)

    @property
    def model_cls(self):
        return MODEL_REGISTRY.get(self.model_type)

    @property
    def knobs(self):
        """The model's knobs and their defaults (e.g. PCSR ``k``; every model ``tile_size``)."""
        return declared_knobs(self.model_cls)

    @property
    def tile_size(self):
        """The model's own tiles in LR pixels (a method that decides per tile), or None: whole images."""
        return declared(self.model_cls, 'val_options').get('tile_size')

    @property
    def side_files(self):
        """Files the model reads beside its weights (``path`` keys, e.g. an edge-to-bit table), as declared by
        its model type (``side_files``)."""
        return declared(self.model_cls, 'side_files')

    def build(self):
        """The network, with the weights loaded strictly (through its ``adapt_state_dict`` where it has one)."""
        return build_network(self.arch, self.kwargs, self.state_dict, self.source)

    def deploy(self, source=None):
        """The network to export and what to report (:attr:`CheckpointFormat.deploy`).

        Raises:
            ConversionError: the format does not export (the exportable archs are named).
        """
        source = source or self.source
        if self.format.deploy is None:
            ok = sorted({f.arch for f in FORMATS if f.deploy is not None})
            raise ConversionError(f'{source}: {self.arch} does not export to ONNX/TFLite; exportable archs: {ok}')
        return self.format.deploy(self.state_dict, self.scale, source)


def recognise_checkpoint(path, scale=None, param_key='auto'):
    """What a checkpoint file holds (``adaptsr.load``, ``adaptsr-infer --model``, ``adaptsr-export``).

    The scale is, in order: ``scale``; the checkpoint's ``meta['scale']`` (converted files); what the format reads
    off the weights (the output convs; PCSR's heads are trained at x4 and work at any scale).

    Args:
        path (str): checkpoint file (an adaptsr/BasicSR checkpoint, an official file of a converted method, or a raw
            state_dict).
        scale (int | None): the scale, when known.
        param_key (str): ``params``, ``params_ema`` or ``auto`` (``params_ema`` when present).

    Returns:
        Descriptor: arch, kwargs, scale, method, model type, weights.

    Raises:
        FileNotFoundError: no such file. ValueError: not a checkpoint (named). ConversionError: no registered format
        recognises the weights (the supported archs are listed), or the weights do not give the scale.
        WrongScaleError: ``scale`` contradicts them.
    """
    ckpt = to_basicsr_checkpoint(load_checkpoint(path), path)
    key = ('params_ema' if 'params_ema' in ckpt else 'params') if param_key == 'auto' else param_key
    sd = checkpoint_state_dict(ckpt, path, key)
    check_finite(sd, path)
    meta = ckpt.get('meta') or {}
    meta_scale = meta.get('scale')
    if scale is None and meta_scale is not None:
        scale = int(meta_scale)
    trained = _trained_network(meta)
    if trained is not None and not matching_formats(sd):  # a file adaptsr-train wrote, of an arch no format reads
        return _from_training_meta(trained, meta['trained_with'], sd, scale, key, path)
    fmt = match_format(sd, path)
    try:
        kwargs = fmt.hyperparams(sd, scale, path)
    except TypeError as err:  # the weights do not hold the scale
        raise ConversionError(f'{path}: cannot tell the scale from the weights (the weights do not fix it: {err}); '
                              'give it (--scale)') from None
    found = kwargs.get('upscale', kwargs.get('scale', scale))
    return Descriptor(fmt.arch, kwargs, int(found), fmt.method, fmt.model_type, key, str(path), sd, fmt)


def _trained_network(meta):
    """The ``network_g`` options in a checkpoint's ``meta['trained_with']`` (files ``adaptsr-train`` saves) if their
    ``type`` is a registered arch, else None."""
    net = (meta.get('trained_with') or {}).get('network_g')
    return net if isinstance(net, dict) and net.get('type') in ARCH_REGISTRY else None


def _from_training_meta(net, trained, sd, scale, key, path):
    """The :class:`Descriptor` of a training checkpoint whose arch no format recognises from its weights (e.g. APE on
    EDSR, whose residual scaling and exit interval the weights do not tell): the network and model its ``meta``
    records (:meth:`adaptsr.core.phased_model.PhasedSRModel.save_network`): ``net`` its ``network_g``
    (:func:`_trained_network`), ``trained`` its ``meta['trained_with']``.

    Raises:
        WrongScaleError: ``scale`` contradicts the recorded one.
    """
    arch = net['type']
    kwargs = {k: v for k, v in net.items() if k != 'type'}
    found = kwargs.get('upscale', kwargs.get('scale', trained.get('scale')))
    if scale is not None and found is not None and int(found) != int(scale):
        raise WrongScaleError(f'{path}: a x{found} {arch} (its training options), not x{scale}')
    model_type = trained.get('model_type') if trained.get('model_type') in MODEL_REGISTRY else 'AdaptiveSRModel'
    module = ARCH_REGISTRY.get(arch).__module__.split('.')
    method = module[2] if module[:2] == ['adaptsr', 'methods'] and len(module) > 3 else module[0]
    fmt = CheckpointFormat(arch, method, None, None, model_type)
    return Descriptor(arch, kwargs, int(found if found is not None else scale or 0), method, model_type, key,
                      str(path), sd, fmt)


def build_network(arch, kwargs, sd, source='?'):
    """``ARCH_REGISTRY[arch](**kwargs)`` with ``sd`` loaded strictly (through the arch's ``adapt_state_dict``).

    Raises:
        ConversionError: ``sd`` does not load strictly.
    """
    net = ARCH_REGISTRY.get(arch)(**kwargs)
    adapt = adapter(net)
    if adapt is not None:
        sd = adapt(sd, source)
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        raise ConversionError(f'{source}: does not load strictly into {arch}({kwargs}): {err}') from None
    return net


def build_detected(sd, scale=None, source='?', archs=None, what=None):
    """Instantiate the arch :func:`detect_arch` finds and load ``sd`` strictly (through the arch's
    ``adapt_state_dict`` when it has one, e.g. an official ``ABPN_ET`` file's names into ``ETDSPlain``).

    Raises:
        ConversionError: not recognised, or not loading strictly into the detected arch.
    """
    arch, kwargs = detect_arch(sd, scale, source, archs, what)
    return build_network(arch, kwargs, sd, source)


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
    adapt = adapter(net)
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


def checkpoint_state_dict(ckpt, source, param_key='auto'):
    """The weights of any supported checkpoint: ``param_key`` of a BasicSR checkpoint (``auto``: ``params_ema`` when
    present, the EMA model that ETDS releases, else ``params``), or a raw state_dict."""
    ckpt = to_basicsr_checkpoint(ckpt, source)
    key = ('params_ema' if 'params_ema' in ckpt else 'params') if param_key == 'auto' else param_key
    if key not in ckpt:
        raise KeyError(f'{source}: no {key!r} in the checkpoint (keys: {list(ckpt)})')
    return {k[7:] if k.startswith('module.') else k: v for k, v in ckpt[key].items()}


def plain_checkpoint(net, info, scale, source, method):
    """A BasicSR checkpoint of a converted network, ``info`` (e.g. the conversion's measured difference) in its
    ``meta``."""
    out = basicsr_checkpoint(net.state_dict(), method, type(net).__name__, scale, source)
    out['meta'].update({k: v for k, v in info.items() if k != 'scale'})
    return out


def build_target(ckpt):
    """Instantiate the arch of a converted checkpoint (``{'params', 'meta'}``) with the sizes its weights imply.

    Raises:
        ConversionError: the registry does not recognise the weights, or they do not give ``meta['arch']``.
    """
    meta = ckpt['meta']
    arch, kwargs = detect_arch(ckpt['params'], meta['scale'], meta.get('source', '?'))
    if arch != meta['arch']:
        raise ConversionError(f"{meta.get('source', '?')}: converted to {meta['arch']} but the weights are {arch}'s")
    return ARCH_REGISTRY.get(arch)(**kwargs)


def to_basicsr_checkpoint(ckpt, source='?'):
    """Any supported checkpoint -> ``{'params': ..., ['params_ema'], ['meta']}``.

    Accepts BasicSR checkpoints as they are, the wrapper layouts the methods register (:func:`register_wrapper`,
    converted on the fly) and raw state_dicts.

    Raises:
        ValueError: an object that is none of these.
    """
    if isinstance(ckpt, dict) and 'params' in ckpt:
        return ckpt
    for recognise, to_checkpoint in WRAPPERS:
        if recognise(ckpt):
            return to_checkpoint(ckpt, source)
    if isinstance(ckpt, dict) and ckpt and all(hasattr(v, 'shape') for v in ckpt.values()):
        return {'params': dict(ckpt)}
    raise ValueError(f'{source}: not a BasicSR checkpoint, a known wrapper of one or a state_dict '
                     f'(top-level keys: {list(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__})')
