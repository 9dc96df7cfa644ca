"""The options adaptsr models read, declared once with their defaults and checked when the options are parsed.

Every model class declares what it reads beside BasicSR's own keys (class attributes, merged along the class
hierarchy, so a subclass only adds its own):

* ``val_options`` (dict): ``val.<key>`` -> default (e.g. PCSR's ``k: 0.0``, APE's ``tile_size: 48``);
* ``train_section`` (str | None) and ``train_options`` (dict): the method's own ``train.<section>`` block (``ape``,
  ``smsr``, ``cabm``) -> its keys and defaults;
* ``phase_keys`` (frozenset): method keys of ``train.phases[i]`` (see :mod:`adaptsr.core.phases`);
* ``phase_hooks`` (frozenset): the model methods a phase may name in ``on_start`` / ``on_end``;
* ``side_files`` (dict): ``path.<key>`` -> a file the model reads beside its weights (e.g. an edge-to-bit table):
  ``{'what', 'flag', 'default', 'network', 'help'}``, read by :mod:`adaptsr.api` and ``adaptsr-infer``
  (:mod:`adaptsr.core.declarations`).

:func:`check_options` rejects any other key of ``val``, ``train``, ``train.<section>`` and ``train.phases[i]``, a hook
that is not declared, a ``train.total_iter`` that differs from the phases' sum, and a ``network_g`` key the arch's
constructor does not take, each with an error that names the key and the closest known ones. It runs when
``train.py`` / ``test.py`` parse the options and again when a model is built (so a plain BasicSR ``train.py`` that
imports adaptsr checks them too). :func:`resolved` gives a section's values with the declared defaults filled in.
Strict configs of this kind follow traiNNer-redux (github.com/the-database/traiNNer-redux).
"""
import difflib
import glob
import inspect
import os
import os.path as osp
import sysconfig

import torch
import yaml
from basicsr.utils.options import ordered_yaml
from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY

from adaptsr.core.checkpoints import find_format
from adaptsr.core.declarations import declared  # noqa: F401  (importable from here too)
from adaptsr.core.errors import OptionError  # noqa: F401  (importable from here too)
from adaptsr.core.phases import PhaseSchedule

#: ``val`` keys BasicSR's own validation reads (``basicsr/models/sr_model.py``), with their defaults
BASICSR_VAL_OPTIONS = {'val_freq': None, 'save_img': False, 'suffix': None, 'metrics': None, 'pbar': False}
#: ``train`` keys read by BasicSR's ``train_pipeline`` / ``SRModel`` and by the phase schedule
TRAIN_KEYS = frozenset({'total_iter', 'warmup_iter', 'ema_decay', 'optim_g', 'scheduler', 'pixel_opt',
                        'perceptual_opt', 'phases', 'start_phase', 'nonfinite', 'divergence', 'precision',
                        'channels_last'})
#: top-level keys of a BasicSR options file (those BasicSR's parse_options adds included), ``network_*`` aside, plus
#: adaptsr's ``allow_random_weights`` (test a network without ``path.pretrain_network_g``, e.g. a timing run)
TOP_KEYS = frozenset({'name', 'model_type', 'scale', 'num_gpu', 'manual_seed', 'datasets', 'path', 'train', 'val',
                      'logger', 'dist_params', 'find_unused_parameters', 'use_static_graph', 'is_train', 'dist',
                      'rank', 'world_size', 'auto_resume', 'root_path', 'allow_random_weights'})
#: ``path`` keys BasicSR reads or makes (``pretrain_network_*``, ``strict_load_*``, ``param_key_*`` aside)
PATH_KEYS = frozenset({'resume_state', 'ignore_resume_networks', 'experiments_root', 'results_root', 'models',
                       'training_states', 'log', 'visualization', 'root'})
#: ``train.divergence`` defaults: a step whose total loss exceeds ``factor`` x the median of the last ``window`` steps'
#: losses (of the same phase) stops the run; ``factor: ~`` turns the check off
DIVERGENCE_DEFAULTS = {'factor': 1000.0, 'window': 100}


def _unknown(where, keys, known):
    hints = []
    for key in keys:
        close = difflib.get_close_matches(str(key), [str(k) for k in known], n=2)
        hints.append(f'{key!r}' + (f' (did you mean {" or ".join(repr(c) for c in close)}?)' if close else ''))
    return OptionError(f'{where}: unknown key(s) {", ".join(hints)}; known: {sorted(known)}')


def expand_env(where, value):
    """``value`` with environment variables expanded (``${ADAPTSR_WEIGHTS}/...``); non-strings unchanged.

    Raises:
        OptionError: a variable that is not set (``where`` and the value are named).
    """
    if not isinstance(value, str) or '$' not in value:
        return value
    out = osp.expandvars(value)
    if '$' in out:
        raise OptionError(f'{where}: environment variable in {value!r} is not set')
    return out


#: the documented default layout of the shipped options files: a relative path under one of these prefixes is
#: relocated by its environment variable where that is set (adaptsr's commands set them, see :func:`default_env`);
#: without it (a plain BasicSR pipeline) the path stays relative to the working directory
#: (the embedded demo data, ``datasets/demo/``, is built in the working directory by ``adaptsr-prepare demo`` and
#: never relocated)
DEFAULT_LAYOUT = (('datasets/demo/', None), ('datasets/benchmark/', 'ADAPTSR_BENCHMARK'),
                  ('weights/official/', 'ADAPTSR_WEIGHTS'), ('datasets/', 'ADAPTSR_DATA'))


def locate(where, value):
    """``value`` with environment variables expanded (:func:`expand_env`), and a relative path of the default layout
    (``datasets/benchmark/Set5/HR``, ``weights/official/ETDS/...``, ``datasets/train291/...``) relocated under its
    variable (``ADAPTSR_BENCHMARK``, ``ADAPTSR_WEIGHTS``, ``ADAPTSR_DATA``) where that is set; ``~`` is expanded.

    Raises:
        OptionError: a variable in ``value`` that is not set.
    """
    value = expand_env(where, value)
    if not isinstance(value, str):
        return value
    value = osp.expanduser(value)
    if not osp.isabs(value):
        for prefix, var in DEFAULT_LAYOUT:
            if value.startswith(prefix):
                return osp.join(os.environ[var], value[len(prefix):]) if var and os.environ.get(var) else value
    return value


def default_env(root_path):
    """Defaults of the data/weights locations used in the shipped YAML files.

    ``ADAPTSR_BENCHMARK``: folder with Set5/Set14/B100/Urban100 in the EDSR layout (default
    ``<repo>/datasets/benchmark``); ``ADAPTSR_WEIGHTS``: folder with the official checkpoints as distributed
    (default ``<repo>/weights/official``); ``ADAPTSR_DATA``: root of training sets and their LMDBs, e.g.
    ``${ADAPTSR_DATA}/train291/HR_sub144.lmdb`` (default ``<repo>/datasets``).
    """
    os.environ.setdefault('ADAPTSR_DATA', osp.join(root_path, 'datasets'))
    os.environ.setdefault('ADAPTSR_BENCHMARK', osp.join(root_path, 'datasets', 'benchmark'))
    os.environ.setdefault('ADAPTSR_WEIGHTS', osp.join(root_path, 'weights', 'official'))


def expand_paths(opt):
    """:func:`locate` the ``datasets.*.dataroot_*``/``meta_info_file``, ``path.*`` strings and the strings of the
    method's ``train.<section>`` (e.g. CABM's ``train.cabm.lut_dataroot``).

    Raises:
        ValueError: a variable that is not set (the option and value are named).
    """

    for name, dopt in (opt.get('datasets') or {}).items():
        for key in list(dopt):
            if key.startswith('dataroot') or key == 'meta_info_file':
                dopt[key] = locate(f'datasets.{name}.{key}', dopt[key])
    for key in list(opt.get('path') or {}):
        opt['path'][key] = locate(f'path.{key}', opt['path'][key])
    for section, sub in (opt.get('train') or {}).items():
        if isinstance(sub, dict):
            for key in list(sub):
                sub[key] = locate(f'train.{section}.{key}', sub[key])
    return opt


def check_keys(where, section, known):
    """Raise :class:`OptionError` naming ``where`` if ``section`` (a dict) has a key outside ``known``."""
    extra = sorted(set(section or {}) - set(known), key=str)
    if extra:
        raise _unknown(where, extra, known)


def resolved(opt, model_cls, section):
    """The ``section`` (``'val'`` or the model's ``train_section``) options with declared defaults filled in.

    Returns:
        dict: declared defaults updated with the YAML's values (a new dict; ``opt`` is not changed).
    """
    if section == 'val':
        return dict(declared(model_cls, 'val_options'), **(opt.get('val') or {}))
    return dict(declared(model_cls, 'train_options'), **((opt.get('train') or {}).get(section) or {}))


def check_network_options(where, net_opt):
    """``network_g``-style options against the registered arch's constructor.

    Raises:
        OptionError: no ``type``, an unregistered type, or a key the constructor does not take.
    """
    if not isinstance(net_opt, dict) or 'type' not in net_opt:
        raise OptionError(f'{where}: needs a "type" (a registered arch), got {net_opt!r}')
    if net_opt['type'] not in ARCH_REGISTRY:
        close = difflib.get_close_matches(net_opt['type'], list(ARCH_REGISTRY._obj_map), n=3)
        raise OptionError(f'{where}.type: no arch {net_opt["type"]!r} is registered' +
                          (f' (did you mean {close}?)' if close else ''))
    params = inspect.signature(ARCH_REGISTRY.get(net_opt['type'])).parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    check_keys(f'{where} ({net_opt["type"]})', {k: v for k, v in net_opt.items() if k != 'type'}, params)


def _number_text(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _yaml_float(text):
    """``1e9`` -> ``1.0e+9``: the spelling PyYAML reads as a float."""
    mantissa, _, exponent = text.lower().partition('e')
    mantissa = mantissa if '.' in mantissa else mantissa + '.0'
    if exponent and exponent[0] not in '+-':
        exponent = '+' + exponent
    return mantissa + ('e' + exponent if exponent else '')


def check_device(opt):
    """``num_gpu`` against the devices torch sees.

    Raises:
        OptionError: ``num_gpu`` > 0 (or not a number / ``auto``) without a CUDA device (or more than there are).
    """
    num_gpu = opt.get('num_gpu', 0)
    if num_gpu in (None, 'auto'):
        return
    if isinstance(num_gpu, bool) or not isinstance(num_gpu, int) or num_gpu < 0:
        raise OptionError(f"num_gpu = {num_gpu!r}: must be 0 (CPU), a number of GPUs or 'auto'")
    if num_gpu > 0:
        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if num_gpu > have:
            raise OptionError(f'num_gpu = {num_gpu}, but torch sees {have} CUDA device(s); set num_gpu: '
                              f'{have if have else 0}{" (CPU)" if not have else ""} or auto')


def check_divergence_options(div):
    """``train.divergence``: ``{factor: number > 1 or ~, window: integer >= 1}`` (see
    :meth:`adaptsr.core.phased_model.PhasedSRModel._check_divergence`).

    Raises:
        OptionError: not a mapping, an unknown key, or a value out of range (named).
    """
    if div is None:
        return
    if not isinstance(div, dict):
        raise OptionError(f'train.divergence = {div!r}: must be a mapping {{factor: 1000, window: 100}}')
    check_keys('train.divergence', div, ('factor', 'window'))
    factor, window = (dict(DIVERGENCE_DEFAULTS, **div)[k] for k in ('factor', 'window'))
    if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 1):
        raise OptionError(f'train.divergence.factor = {factor!r}: must be a number > 1 (or ~ to turn the check off)')
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise OptionError(f'train.divergence.window = {window!r}: must be an integer >= 1')


def check_val_ranges(val_opt, model_cls):
    """Check the knobs of ``val_opt`` against ``val_ranges`` declared by ``model_cls`` (merged along its class
    hierarchy): ``key -> (low, high, integer)``, a closed range (None: unbounded); NaN is never valid.

    Raises:
        OptionError: a value that is NaN, not a number, not an integer where one is due, or out of range (the key,
            the value and the range are named; ``tile_size: ~`` means no tiles, never 0).
    """
    import math
    for key, (low, high, integer) in declared(model_cls, 'val_ranges').items():
        value = val_opt.get(key)
        if value is None:
            continue
        where = f'val.{key} = {value!r}'
        if isinstance(value, str) and _number_text(value):
            raise OptionError(f'{where}: YAML read this as a string, not a number (YAML 1.1 needs a dot in a number '
                              f'with an exponent: write {_yaml_float(value)})')
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise OptionError(f'{where}: must be a number')
        if integer and value != int(value):
            raise OptionError(f'{where}: must be an integer')
        if (low is not None and value < low) or (high is not None and value > high):
            hint = ' (tile_size: ~ tests whole images)' if key == 'tile_size' else ''
            raise OptionError(f'{where}: must be in [{low if low is not None else "-inf"}, '
                              f'{high if high is not None else "inf"}]{hint}')
    if val_opt.get('tile_merge', 'average') not in ('average', 'crop'):
        raise OptionError(f"val.tile_merge = {val_opt['tile_merge']!r}: must be 'average' or 'crop'")
    tile, overlap = val_opt.get('tile_size'), val_opt.get('tile_overlap') or 0
    if isinstance(tile, (int, float)) and tile and overlap * 2 >= tile:
        raise OptionError(f'val.tile_overlap = {overlap} must be less than half of val.tile_size = {tile}')


def _models_reading(attr, keys):
    """The registered adaptsr models that declare every key of ``keys`` in ``attr`` (for a hint), as a string."""
    if not keys:
        return ''
    names = sorted(n for n, cls in MODEL_REGISTRY._obj_map.items()
                   if hasattr(cls, 'val_options') and set(keys) <= set(declared(cls, attr)))
    return ', '.join(names)


def _check_foreign_model(opt, model_cls):
    """A model that is not adaptsr's (BasicSR's ``SRModel``) with an adaptsr arch whose checkpoint format names the
    adaptsr model that runs it (its adaptive inference, checkpoints and cost): refused, naming that model.

    Raises:
        OptionError: e.g. ``model_type: SRModel`` with ``network_g: PCSRNet`` (use ``PCSRModel``).
    """
    net_type = (opt.get('network_g') or {}).get('type')
    try:
        fmt = find_format(net_type)
    except KeyError:
        return
    if fmt.model_type != 'AdaptiveSRModel':
        raise OptionError(f'model_type: {model_cls.__name__} cannot run network_g {net_type} (its checkpoints, '
                          f'adaptive inference and cost are read by {fmt.model_type}); set model_type: '
                          f'{fmt.model_type}')


def check_options(opt, model_cls=None):
    """Check the options a model reads (see the module docstring).

    Args:
        opt (dict): parsed options (BasicSR layout).
        model_cls (type | None): the model class; default ``MODEL_REGISTRY[opt['model_type']]``. Models that are
            not adaptsr's (no declarations) are left to BasicSR.

    Raises:
        OptionError: an unknown key (top level, ``path``, ``val``, ``train``...), an undeclared phase hook, or a
            ``total_iter`` that differs from the phases' sum.
    """
    if model_cls is None:
        if opt.get('model_type') not in MODEL_REGISTRY:
            known = list(MODEL_REGISTRY._obj_map)
            close = difflib.get_close_matches(str(opt.get('model_type')), known, n=3)
            ours = sorted(k for k in known if hasattr(MODEL_REGISTRY.get(k), 'val_options'))
            raise OptionError(f'model_type: {opt.get("model_type")!r} is not a registered model' +
                              (f' (did you mean {" or ".join(map(repr, close))}?)' if close else '') +
                              f'; adaptsr models: {ours}')
        model_cls = MODEL_REGISTRY.get(opt['model_type'])
    if not hasattr(model_cls, 'val_options'):
        _check_foreign_model(opt, model_cls)
        return
    name = model_cls.__name__
    check_keys(f'top level ({name})', {k: v for k, v in opt.items() if not k.startswith('network_')}, TOP_KEYS)
    if opt.get('path') is not None:
        prefixes = ('pretrain_network_', 'strict_load_', 'param_key_')
        check_keys(f'path ({name})', {k: v for k, v in opt['path'].items() if not k.startswith(prefixes)},
                   PATH_KEYS | set(declared(model_cls, 'side_files')) | {p + 'g' for p in prefixes})
    if opt.get('val') is not None:
        known = declared(model_cls, 'val_options')
        try:
            check_keys(f'val ({name})', opt['val'], known)
        except OptionError as err:
            owners = _models_reading('val_options', set(opt['val']) - set(known))
            if owners:
                raise OptionError(f'{err}. {owners} read them: is model_type ({name}) the model of '
                                  f'network_g ({(opt.get("network_g") or {}).get("type")})?') from None
            raise
        check_val_ranges(resolved(opt, model_cls, 'val'), model_cls)
    section = getattr(model_cls, 'train_section', None)
    train_opt = opt.get('train')
    if train_opt is not None:
        check_keys(f'train ({name})', train_opt, TRAIN_KEYS | ({section} if section else set()))
        check_divergence_options(train_opt.get('divergence'))
        if section and train_opt.get(section) is not None:
            check_keys(f'train.{section} ({name})', train_opt[section], declared(model_cls, 'train_options'))
        if train_opt.get('phases') is not None:
            schedule = PhaseSchedule.from_options(train_opt, declared(model_cls, 'phase_keys'),
                                                  declared(model_cls, 'phase_hooks'))
            total = train_opt.get('total_iter')
            if total is not None and int(total) != schedule.total_iter:
                raise OptionError(f'train.total_iter = {total} does not match the sum of train.phases iters '
                                  f'({schedule.total_iter}); fix it or remove it (train.py derives it).')
    if opt.get('network_g') is not None:
        check_network_options('network_g', opt['network_g'])
    hook = getattr(model_cls, 'check_model_options', None)
    if hook is not None:
        hook(opt)


def set_by_path(opt, dotted, value):
    """``a:b:0:c=value`` style assignment (BasicSR's --force_yml syntax; list indices allowed)."""
    keys = dotted.split(':')
    node = opt
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    elif last not in node:
        raise KeyError(f'--force_yml {dotted}: key {last!r} does not exist in the options')
    else:
        node[last] = value


def load_test_options(opt_path, root_path, force_yml=()):
    """Test options as BasicSR's ``parse_options(is_train=False)`` would build them, without argv.

    Raises:
        FileNotFoundError: ``opt_path`` is neither a file nor a shipped test options name (:func:`find_options`).
        KeyError: a --force_yml key that does not exist.
    """
    opt_path = find_options(opt_path, 'test')
    with open(opt_path) as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    for entry in force_yml or ():
        if '=' not in entry:
            raise ValueError(f'--force_yml entries are key:sub=value, got {entry!r}')
        key, value = entry.split('=', 1)
        set_by_path(opt, key.strip(), yaml.safe_load(value.strip()))
    default_env(root_path)
    opt['dist'] = False
    opt['rank'], opt['world_size'] = 0, 1
    opt['is_train'] = False
    opt['auto_resume'] = False
    if opt.get('num_gpu') in ('auto', None) or not torch.cuda.is_available():
        opt['num_gpu'] = torch.cuda.device_count() if torch.cuda.is_available() else 0
    opt['root_path'] = root_path
    results_root = os.path.join(root_path, 'results', opt['name'] + '_bench')
    opt.setdefault('path', {})
    opt['path'].update(results_root=results_root, log=results_root,
                       visualization=os.path.join(results_root, 'visualization'))
    for phase, dopt in opt['datasets'].items():
        dopt['phase'] = phase.split('_')[0]
        dopt['scale'] = opt['scale']
    expand_paths(opt)
    check_options(opt)
    return opt


#: the kinds of shipped options files (the folders of ``options/``)
OPTION_KINDS = ('train', 'test', 'bench', 'compare')


def options_roots():
    """The folders that hold the shipped options files: a checkout's (or an editable install's) ``options/``, then
    what a wheel installs under ``<prefix>/share/adaptsr/options``."""
    package_parent = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    roots = [osp.join(package_parent, 'options'), osp.join(sysconfig.get_path('data'), 'share', 'adaptsr', 'options')]
    return [r for r in dict.fromkeys(roots) if osp.isdir(r)]


def shipped_options(kind):
    """``{name: path}`` of the shipped options files of ``kind`` (``train``, ``test``, ``bench``, ``compare``)."""
    found = {}
    for root in reversed(options_roots()):  # a checkout's files win over installed ones
        for path in glob.glob(osp.join(root, kind, '*.yml')):
            found[osp.splitext(osp.basename(path))[0]] = path
    return dict(sorted(found.items()))


def find_options(name, kind):
    """An options file by path, or a shipped one by name (``pcsr_carn_x4`` -> ``options/<kind>/pcsr_carn_x4.yml``).

    Args:
        name (str): a path, or the name of a shipped file of ``kind`` (with or without ``.yml``).
        kind (str): one of :data:`OPTION_KINDS`.

    Returns:
        str: the file.

    Raises:
        FileNotFoundError: neither a file nor a shipped name (the closest shipped names are given).
    """
    if osp.isfile(name):
        return name
    stem = osp.splitext(name)[0] if name.endswith(('.yml', '.yaml')) else name
    shipped = shipped_options(kind)
    if osp.basename(stem) == stem and stem in shipped:
        return shipped[stem]
    close = difflib.get_close_matches(osp.basename(stem), list(shipped), n=3)
    raise FileNotFoundError(f'options file {name!r} does not exist, and no shipped {kind} options have that name' +
                            (f' (did you mean {", ".join(close)}?)' if close else
                             f' (shipped: {", ".join(shipped)})' if len(shipped) <= 10 else
                             f' ({len(shipped)} shipped, e.g. {", ".join(list(shipped)[:3])})'))
