"""The model flags of ``adaptsr-infer`` and of the bench's comparison specs, and what ``--help`` needs from the
methods (knob flags, side files, converter names), read without importing torch or BasicSR.

A method folder (``adaptsr/methods/<m>/``) may hold a ``declarations.py`` of plain data (standard library only):
``KNOB_FLAGS`` (``dest -> spec``, the ``knob_flags`` its model class declares), ``SIDE_FILES`` (``key -> spec``, its
model's ``side_files``) and ``CONVERTERS`` (``name -> help``, its ``adaptsr-convert --method`` names). The model and
the formats module import them from there, so one text serves both the registry and the help. For ``--help`` the
files are loaded by path (:func:`room_declarations`): the method's package, whose import registers its classes and
imports torch, is not imported.
"""
import glob
import importlib.util
import os.path as osp
import sys

from adaptsr.utils.argtypes import int_at_least

ROOM_FILE = 'declarations.py'
#: ``--tile`` without ``--tile-overlap``: LR pixels of overlap (at most a quarter of the tile) for a model whose tiles
#: only bound memory (a model that decides per tile keeps its own overlap)
DEFAULT_TILE_OVERLAP = 16
#: the knob every adaptsr model has (``AdaptiveSRModel.knob_flags``)
CORE_KNOB_FLAGS = {'precision': {'flag': '--precision', 'val': 'precision', 'type': str,
                                 'help': 'fp32 (default), bf16 (CPU matrix units or CUDA), fp16 (CUDA) or auto (bf16 '
                                         'on CUDA or a CPU with AMX-BF16, else fp32): the network under autocast, its '
                                         'declared fp32 parts in float32'},
                   'compile': {'flag': '--compile', 'val': 'compile', 'value': True,
                               'help': 'torch.compile a plain (non-adaptive) network; used from the second call of a '
                                       'size on (the first counts the cost): benches, tiles, same-size images'}}
_CACHE = {}


def room_declarations():
    """``{room: module}`` of every ``adaptsr/methods/<room>/declarations.py``, loaded by path (their packages are not
    imported), in folder order."""
    if not _CACHE:
        methods = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'methods')
        for path in sorted(glob.glob(osp.join(methods, '*', ROOM_FILE))):
            room = osp.basename(osp.dirname(path))
            spec = importlib.util.spec_from_file_location(f'_adaptsr_declarations_{room}', path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            _CACHE[room] = module
    return dict(_CACHE)


def room_commands():
    """``{console command: (room, module)}`` of the commands the rooms declare (``COMMANDS``)."""
    return {name: (room, target) for room, module in room_declarations().items()
            for name, target in (getattr(module, 'COMMANDS', None) or {}).items()}


def merged(attr):
    """``attr`` (a dict) of every room's declarations merged, the first room to declare a key giving its value."""
    out = {}
    for module in room_declarations().values():
        for key, value in (getattr(module, attr, None) or {}).items():
            out.setdefault(key, value)
    return out


def _registered(attr):
    """``attr`` dicts of the registered model classes, if BasicSR's registry is imported already (a method kept
    outside adaptsr declares its flags only there); else ``{}`` (nothing is imported for it)."""
    registry = sys.modules.get('basicsr.utils.registry')
    out = {}
    for cls in (registry.MODEL_REGISTRY._obj_map.values() if registry is not None else ()):
        for key, value in (cls.__dict__.get(attr) or {}).items():
            out.setdefault(key, value)
    return out


def knob_flag_specs():
    """``{dest: spec}`` of every model's knob flags: :data:`CORE_KNOB_FLAGS`, the rooms' ``KNOB_FLAGS``, then any
    other registered model's ``knob_flags``."""
    flags = dict(CORE_KNOB_FLAGS, **merged('KNOB_FLAGS'))
    return dict(flags, **{k: v for k, v in _registered('knob_flags').items() if k not in flags})


def side_file_flag_specs():
    """``{key: spec}`` of the files methods read beside their weights: the rooms' ``SIDE_FILES``, then any other
    registered model's ``side_files``."""
    files = merged('SIDE_FILES')
    return dict(files, **{k: v for k, v in _registered('side_files').items() if k not in files})


def converter_help():
    """``{name: help}`` of the ``adaptsr-convert --method`` converters: the rooms' ``CONVERTERS``, then any other
    registered one (:func:`adaptsr.core.checkpoints.register_converter`, if that module is imported already)."""
    names = merged('CONVERTERS')
    registered = sys.modules.get('adaptsr.core.checkpoints')
    for name, (_, text) in (registered.CONVERTERS.items() if registered is not None else ()):
        names.setdefault(name, text)
    return names


def add_model_flags(parser):
    """Add the model flags to ``parser`` (an ``argparse.ArgumentParser``): ``-opt`` or ``--model``, ``--scale``,
    ``--force-yml``, every method's knob and side-file flags, and the tile flags."""
    parser.add_argument('-opt', '--opt', default=None, help='test options YAML (network_g, path, val)')
    parser.add_argument('--model', default=None,
                        help='checkpoint (adaptsr or official; recognised from its weights), "bicubic", or an ONNX '
                             'or TFLite model (fp32 or INT8, adaptsr-export; run by onnxruntime or LiteRT)')
    parser.add_argument('--scale', type=int_at_least(1), default=None,
                        help='the scale, where the checkpoint does not say it')
    parser.add_argument('--force-yml', nargs='+', default=[], help='with -opt: override options, key:sub=value')
    for dest, spec in knob_flag_specs().items():  # each model's knobs, declared on the model
        if 'value' in spec:
            parser.add_argument(spec['flag'], dest=dest, action='store_true', help=spec['help'])
        else:
            parser.add_argument(spec['flag'], dest=dest, type=spec['type'], default=None, help=spec['help'])
    for key, spec in side_file_flag_specs().items():  # the files models read beside their weights, declared on them
        parser.add_argument(spec['flag'], dest=key, default=None, help=spec['help'])
    parser.add_argument('--tile', type=int_at_least(0), default=None,
                        help="tile size in LR pixels, to bound memory (0: whole image; default: the model's own: "
                             "whole images, or the tiles of a model that decides per tile)")
    parser.add_argument('--tile-overlap', dest='tile_overlap', type=int_at_least(0), default=None,
                        help=f'tile overlap in LR pixels (default with --tile: {DEFAULT_TILE_OVERLAP}, at most a '
                             "quarter of the tile; a model that decides per tile: its own)")
    parser.add_argument('--tile-merge', dest='tile_merge', choices=('average', 'crop'), default=None,
                        help="how overlapping tiles combine (default with --tile: crop, each tile's core, for a "
                             "model that tiles only to bound memory; a model that decides per tile: average, its "
                             "protocol)")
