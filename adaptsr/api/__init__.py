"""The Python API: load any adaptsr model and super-resolve tensors with it.

Example::

    import adaptsr
    sr = adaptsr.load('weights/PCSR/carn-pcsr-phase1/iter_last.pth', k=0.0)   # recognised from its weights
    out = sr(lr)            # (N, 3, H, W) float in [0, 1] -> (N, 3, H*s, W*s)
    print(sr.stats)         # {'gflops': ..., 'gflops_full': ..., 'heavy_ratio': ...}
    out = sr(lr, k=1.0)     # a knob for this call only

``source`` is a checkpoint (adaptsr's own ``net_g_*.pth`` or an official file of a supported method, recognised
from its weights), a test options YAML (its ``network_g``, ``path`` and ``val``; its datasets are not read), an
exported ``.onnx`` / ``.tflite`` model (fp32 or INT8, run by onnxruntime / LiteRT on the CPU) or ``'bicubic'``.
``adaptsr-infer`` loads its models through :func:`options_for` and :func:`load`.
"""
import os
import os.path as osp

import torch
from basicsr.models import build_model as basicsr_build
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from adaptsr.api.runtimes import OnnxModel, TFLiteModel
from adaptsr.api.weights import resolve
from adaptsr.core.checkpoints import recognise_checkpoint
from adaptsr.core.declarations import adaptsr_models, declared, declared_knobs, side_file_keys, side_file_specs
from adaptsr.core.errors import LoadError  # noqa: F401  (importable from here too)
from adaptsr.core.options import check_options, default_env, load_test_options


def _base_options(name, scale, model_type, network, out_dir, device):
    out_dir = out_dir or os.getcwd()
    return {'name': name, 'model_type': model_type, 'scale': int(scale), 'num_gpu': 1 if device == 'cuda' else 0,
            'manual_seed': 0, 'is_train': False, 'dist': False, 'rank': 0, 'world_size': 1, 'auto_resume': False,
            'root_path': os.getcwd(), 'datasets': {}, 'network_g': network,
            'path': {'pretrain_network_g': None, 'strict_load_g': True, 'param_key_g': 'params',
                     'results_root': out_dir, 'log': out_dir, 'visualization': out_dir}, 'val': {}}


def options_for(source, scale=None, device='cpu', files=None, force_yml=(), out_dir=None):
    """BasicSR test options for ``source`` (see the module docstring), before any knob is set.

    Args:
        source (str): checkpoint file, the name of an official file (``etds_m6c32_x4``, :mod:`adaptsr.api.weights`),
            test options YAML (``.yml``/``.yaml``) or ``'bicubic'``.
        scale (int | None): the scale where the source does not give it (bicubic; a file whose weights do not hold
            it); checked against the YAML's ``scale``.
        device (str): ``'cpu'`` or ``'cuda'``.
        files (dict | None): side files of the model (``{path key: file}``, the keys its model type declares in
            ``side_files``, e.g. an edge-to-bit table); by default a checkpoint's model finds each under its
            declared name beside the checkpoint, and a YAML gives them in ``path``.
        force_yml (iterable[str]): with a YAML: ``key:sub=value`` overrides.
        out_dir (str | None): where the model's own outputs (maps with ``val.save_img``) would go.

    Returns:
        dict: the options.

    Raises:
        LoadError: bicubic without ``scale``, a ``scale`` the YAML contradicts, a side file the model does not
            read, or one that does not exist; ``force_yml`` with a source that is not a YAML. ConversionError /
            CheckpointError / FileNotFoundError: a checkpoint that is not recognised (the supported archs are listed)
            or cannot be read.
    """
    files = {k: v for k, v in (files or {}).items() if v}
    default_env(os.getcwd())
    if str(source).lower().endswith(('.yml', '.yaml')):
        opt = load_test_options(source, os.getcwd(), force_yml)
        opt['datasets'] = {}
        if out_dir:
            opt['path'].update(results_root=out_dir, log=out_dir, visualization=out_dir)
        if scale is not None and scale != opt['scale']:
            raise LoadError(f'scale {scale} but {source} has scale: {opt["scale"]}')
        opt['num_gpu'] = 1 if device == 'cuda' else 0
        opt['path'].update(files)
    elif force_yml:
        raise LoadError(f'{source}: force_yml overrides a test options YAML; give a checkpoint\'s knobs as keyword '
                        'arguments (e.g. precision=\'bf16\') or load a YAML')
    elif source == 'bicubic':
        if scale is None:
            raise LoadError('bicubic needs a scale')
        opt = _base_options('bicubic', scale, 'AdaptiveSRModel', {'type': 'BicubicSR', 'upscale': scale}, out_dir,
                            device)
    else:
        source, official = resolve(source)  # an official weights name: its verified file (fetched when needed)
        if official and scale is None:
            scale = official['scale']
        found = recognise_checkpoint(source, scale)
        opt = _base_options(osp.splitext(osp.basename(source))[0], found.scale, found.model_type,
                            dict(found.kwargs, type=found.arch), out_dir, device)
        opt['path'].update(pretrain_network_g=source, param_key_g=found.param_key)
        for key, spec in found.side_files.items():
            path = files.get(key) or osp.join(osp.dirname(source), spec['default'])
            if osp.isfile(path):
                opt['path'][key] = path
                opt['network_g'].update(spec.get('network') or {})
            elif key in files:
                raise LoadError(f'{spec.get("what", "path." + key)} {path}: no such file')
    model_cls = MODEL_REGISTRY._obj_map.get(opt['model_type'])
    foreign = sorted(set(files) - set(declared(model_cls, 'side_files') if model_cls else ()))
    if foreign:
        readers = side_file_keys()
        raise LoadError('; '.join(f'{_side_file_what(k)} is read by {", ".join(readers.get(k, ["no model"]))}'
                                  for k in foreign) + f', but {source} is a '
                        f'{opt["network_g"]["type"]} ({opt["model_type"]})')
    opt['val'] = opt.get('val') or {}
    opt['val'].update(budget_sweep=None, save_img=False, metrics=None)
    return opt


def _side_file_what(key):
    """How a side file is named in messages: ``a <what>`` where a model declares one, else ``path.<key>``."""
    what = side_file_specs().get(key, {}).get('what')
    return f'a {what}' if what else f'path.{key}'


def knob_names(model_type):
    """The knobs (``val`` options that change what the model computes) of a registered model type, with their
    defaults: e.g. PCSR ``k``, ``adaptive``, ``refine``; APE ``exit_threshold``; every model the tile options."""
    return declared_knobs(MODEL_REGISTRY.get(model_type))


def set_knobs(opt, knobs, source='the model'):
    """Write ``knobs`` into ``opt['val']``, refusing a name the model does not have.

    Raises:
        LoadError: an unknown knob (``source``, the model and its knobs are named).
    """
    known = knob_names(opt['model_type'])
    unknown = sorted(set(knobs) - set(known))
    if unknown:
        raise LoadError(f'{source} ({opt["network_g"]["type"]}, {opt["model_type"]}) has no knob '
                        f'{", ".join(unknown)}; its knobs: {", ".join(sorted(known))}')
    opt['val'].update(knobs)
    return opt


class Runner:
    """A loaded model: ``runner(x, **knobs)`` super-resolves a batch, ``runner.stats`` holds the last call's cost.

    Attributes:
        scale (int): the upscaling factor. model: the BasicSR model (or the exported model's wrapper).
        opt (dict): the options it was built from. knobs (dict): its knobs and their current values.
    """

    def __init__(self, model, opt, source):
        self.model, self.opt, self.source, self.scale = model, opt, str(source), int(opt['scale'])
        self.stats = {}

    @property
    def knobs(self):
        val = getattr(self.model, 'val_opt', None)
        if val is None or self.opt['model_type'] not in adaptsr_models():  # an exported model has none
            return {}
        return {k: val.get(k) for k in knob_names(self.opt['model_type'])}

    @property
    def device(self):
        return self.model.device

    @torch.no_grad()
    def __call__(self, x, **knobs):
        """Super-resolve ``x``.

        Args:
            x (Tensor): (N, 3, H, W) float RGB in [0, 1] (on any device; moved to the model's).
            **knobs: knob values for this call only (e.g. ``k=1.0``, ``exit_threshold=0.9``).

        Returns:
            Tensor: (N, 3, H * scale, W * scale) float RGB, not clamped, on the model's device.

        Raises:
            LoadError: a knob the model does not have. OptionError: a knob value out of its range.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise LoadError(f'expected an (N, 3, H, W) tensor, got shape {tuple(x.shape)}')
        if not knobs:
            return self._run(x)
        known = self.knobs
        unknown = sorted(set(knobs) - set(known))
        if unknown:
            raise LoadError(f'{self.source} has no knob {", ".join(unknown)}; its knobs: '
                            f'{", ".join(sorted(known)) or "none"}')
        with self.model.kept_val_options() as val:
            val.update(knobs)
            self.model.check_val_ranges()
            return self._run(x)

    def _run(self, x):
        try:
            self.model.feed_data({'lq': x.float().to(self.model.device)})
            self.model.test()
            out = self.model.output
            cost_on = getattr(self.model, 'val_opt', {}).get('cost', True)
            self.stats = self.model.cost_metric_values() if cost_on else {}
        finally:
            for name in ('lq', 'output'):
                if hasattr(self.model, name):
                    delattr(self.model, name)
        return out

    def maps(self, sr_img=None):
        """Pictures of the last call's adaptive decisions (``{name: (H, W, 3) uint8 BGR}``; empty for a plain
        network), drawn over ``sr_img`` where given."""
        routing = getattr(self.model, 'routing_maps', None)
        return routing(sr_img) if routing else {}


def describe(source, scale=None, param_key='auto'):
    """What a checkpoint holds, without building a model: its arch, constructor arguments, scale, method, model type,
    knobs, side files and how it exports (:class:`adaptsr.core.checkpoints.Descriptor`).

    Raises:
        ConversionError / CheckpointError / FileNotFoundError: a file that is not recognised (the supported archs are
            listed) or cannot be read; WrongScaleError: ``scale`` contradicts the weights.
    """
    return recognise_checkpoint(source, scale, param_key)


def build_model(opt):
    """The BasicSR model of ``opt``, quiet (BasicSR's INFO log lines off)."""
    get_root_logger(log_level=40)
    return basicsr_build(opt)


def load(source, scale=None, device='cpu', force_yml=(), threads=None, **knobs):
    """Load a model for inference (see the module docstring).

    Args:
        source (str): checkpoint, test options YAML, ``.onnx`` / ``.tflite`` file, or ``'bicubic'``.
        scale (int | None): where the source does not give it. device (str): ``'cpu'`` or ``'cuda'``.
        force_yml (iterable[str]): YAML overrides.
        threads (int | None): onnxruntime / LiteRT threads of an exported model.
        **knobs: the model's knobs (``k``, ``adaptive``, ``refine``, ``exit_threshold``, ``calibration``,
            ``tile_size``, ``tile_overlap``, ``tile_merge``...), checked against the model, and its side files
            by their ``path`` keys (e.g. ``cabm_lut='table.json'``).

    Returns:
        Runner: the loaded model.

    Raises:
        LoadError: an unknown knob or option (named); OptionError: a knob out of range; ConversionError /
        CheckpointError / FileNotFoundError: a source that is not recognised or cannot be read.
    """
    if device == 'cuda' and not torch.cuda.is_available():
        raise LoadError("device 'cuda', but torch sees no CUDA device")
    ext = osp.splitext(str(source))[1].lower()
    if ext in ('.onnx', '.tflite'):
        if knobs or force_yml:
            raise LoadError(f'{source}: an exported model takes no knobs, side files or options')
        if not osp.isfile(source):
            raise LoadError(f'{source}: no such file')
        model = (OnnxModel if ext == '.onnx' else TFLiteModel)(source, threads, scale)
        return Runner(model, {'scale': model.scale, 'network_g': {'type': ext[1:].upper()},
                              'model_type': osp.basename(source)}, source)
    files = {k: knobs.pop(k) for k in list(knobs) if k in side_file_keys()}
    opt = set_knobs(options_for(source, scale, device, files, force_yml), knobs, source)
    check_options(opt)
    return Runner(build_model(opt), opt, source)
