"""The command-line description of a model, shared by ``adaptsr-infer`` and the bench's comparison spec: ``-opt`` or
``--model``, ``--scale``, the knob flags and side-file flags every registered model declares (``knob_flags``,
``side_files``), and the tile flags; :func:`model_options` turns them into BasicSR test options.
"""
import argparse

from basicsr.utils.registry import MODEL_REGISTRY

from adaptsr.api import options_for
from adaptsr.core.declarations import declared, side_file_keys
from adaptsr.core.errors import InferError
from adaptsr.core.model_flags import DEFAULT_TILE_OVERLAP, add_model_flags  # noqa: F401  (importable from here)
from adaptsr.core.options import check_options
from adaptsr.utils.argtypes import CLIParser


def parse_model_args(argv):
    """The model flags of ``argv`` (e.g. a comparison spec's ``args``: ``['--model', 'x.pth', '--k', '0']``).

    Raises:
        InferError: an unknown flag or a bad value (named).
    """
    parser = CLIParser(prog='model arguments', add_help=False, exit_on_error=False)
    add_model_flags(parser)
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.set_defaults(output=None)
    try:
        args, unknown = parser.parse_known_args(list(argv))
    except argparse.ArgumentError as err:
        raise InferError(f'model arguments {list(argv)}: {err}') from None
    if unknown:
        raise InferError(f'model arguments {list(argv)}: unknown {unknown}')
    return args


def model_options(args):
    """BasicSR test options for the model of ``args`` (``-opt`` or ``--model``; :func:`adaptsr.api.options_for`),
    the command's knobs and tile flags set.

    Raises:
        InferError: neither or both of ``-opt``/``--model``, a knob the model does not have (the model is named), tile
            flags without tiles. LoadError: see :func:`adaptsr.api.options_for`.
        ConversionError / CheckpointError / FileNotFoundError: a checkpoint that is not recognised (the supported
            archs are listed) or cannot be read.
    """
    if bool(args.opt) == bool(args.model):
        raise InferError('give the model as -opt <test options YAML> or as --model <checkpoint | bicubic>')
    source = args.opt or args.model
    if args.model == 'bicubic' and args.scale is None:
        raise InferError('--model bicubic needs --scale')
    files = {key: getattr(args, key) for key in side_file_keys()}
    opt = options_for(source, args.scale, args.device, files, args.force_yml, args.output)
    val = opt['val']
    val['crop_mode'] = 'none'
    if args.tile is not None:
        val['tile_size'] = args.tile or None
    # a model that tiles only to bound memory (not APE/CABM, whose tiles are their decision units): hide the seams
    memory_tiles = bool(args.tile) and _declared_val(opt['model_type']).get('tile_size') is None
    if args.tile_overlap is not None:
        val['tile_overlap'] = args.tile_overlap
    elif memory_tiles:
        val['tile_overlap'] = min(DEFAULT_TILE_OVERLAP, args.tile // 4)
    if args.tile_merge is not None:
        val['tile_merge'] = args.tile_merge
    elif memory_tiles:
        val['tile_merge'] = 'crop'
    for dest, (model_type, spec) in knob_flags().items():
        value = getattr(args, dest)
        if value is None or value is False:
            continue
        if not issubclass(MODEL_REGISTRY.get(opt['model_type']), MODEL_REGISTRY.get(model_type)):  # a base's knob
            raise InferError(f'{spec["flag"]} is a knob of {model_type}, but {source} is a '
                             f'{opt["network_g"]["type"]} ({opt["model_type"]})')
        val[spec['val']] = spec.get('value', value)
    tile = val.get('tile_size', _declared_val(opt['model_type']).get('tile_size'))
    if not tile and (args.tile_overlap is not None or args.tile_merge is not None):
        raise InferError('--tile-overlap / --tile-merge need tiles: give --tile N (this model runs whole images)')
    check_options(opt)
    return opt


def _declared_val(model_type):
    return declared(MODEL_REGISTRY.get(model_type), 'val_options')


def knob_flags():
    """The knob flags every registered model declares (``knob_flags``): ``dest -> (model_type, spec)``."""
    flags = {}
    for name, cls in MODEL_REGISTRY._obj_map.items():
        for dest, spec in (cls.__dict__.get('knob_flags') or {}).items():
            flags.setdefault(dest, (name, spec))
    return flags


def summary_stats():
    """The statistics the one-row-per-image table keeps: every registered model's ``summary_stats``, in order."""
    stats = []
    for cls in MODEL_REGISTRY._obj_map.values():
        stats += [s for s in cls.__dict__.get('summary_stats', ()) if s not in stats]
    return stats
