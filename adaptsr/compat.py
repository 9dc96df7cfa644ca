"""Fixes BasicSR 1.4.2 needs on today's torch / torchvision / CPU-only machines.

Two kinds of fixes live here (see ``specs/basicsr.md`` section 11):

* :func:`install_import_shims` runs on ``import adaptsr`` (it must run before ``import basicsr``): torchvision >= 0.17
  removed ``torchvision.transforms.functional_tensor``, which ``basicsr.data.degradations`` imports.
* :func:`patch_pipelines` is called by the repository's ``train.py`` / ``test.py`` only (it changes BasicSR's
  pipeline functions, which a foreign project importing ``adaptsr.archs`` may not want):

  - ``load_resume_state`` maps checkpoints to CUDA unconditionally, so resuming is impossible on CPU-only torch;
    ours maps to CPU when CUDA is absent and looks for ``training_states`` under ``root_path`` instead of the
    current working directory;
  - ``init_dist`` calls ``torch.cuda.set_device(rank % 0)`` on CPU; ours uses the gloo backend without CUDA;
  - ``parse_options`` learns ``train.phases`` (``total_iter`` is derived from the phases when absent) and expands
    ``${ADAPTSR_BENCHMARK}`` / ``${ADAPTSR_WEIGHTS}`` (and any other environment variable) in dataset roots and
    ``path`` entries; see :func:`default_env`.
"""
import os
import os.path as osp
import sys
import types

_PATCHED = False


def install_import_shims():
    """Register ``torchvision.transforms.functional_tensor`` if this torchvision no longer has it."""
    if 'torchvision.transforms.functional_tensor' in sys.modules:
        return
    try:
        import torchvision.transforms.functional_tensor  # noqa: F401
        return
    except ImportError:
        pass
    try:
        from torchvision.transforms import functional as tv_functional
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError('adaptsr needs a torchvision build that matches the installed torch '
                          f'(importing torchvision failed: {err}). See README "Installation".') from err
    shim = types.ModuleType('torchvision.transforms.functional_tensor')
    shim.rgb_to_grayscale = tv_functional.rgb_to_grayscale
    sys.modules['torchvision.transforms.functional_tensor'] = shim


def _cpu_safe_load_resume_state(opt):
    """Replacement for ``basicsr.train.load_resume_state`` that works on CPU and from any cwd."""
    import torch
    from basicsr.utils import check_resume, scandir

    resume_state_path = None
    if opt['auto_resume']:
        state_path = osp.join(opt.get('root_path', '.'), 'experiments', opt['name'], 'training_states')
        if osp.isdir(state_path):
            states = list(scandir(state_path, suffix='state', recursive=False, full_path=False))
            if states:
                iters = [int(float(v.split('.state')[0])) for v in states]
                resume_state_path = osp.join(state_path, f'{max(iters)}.state')
                opt['path']['resume_state'] = resume_state_path
    elif opt['path'].get('resume_state'):
        resume_state_path = opt['path']['resume_state']
        if not osp.isfile(resume_state_path):
            raise FileNotFoundError(f'path.resume_state: no such file {resume_state_path!r}')

    if resume_state_path is None:
        return None
    if opt.get('num_gpu', 0) and torch.cuda.is_available():
        device_id = torch.cuda.current_device()
        resume_state = torch.load(resume_state_path, map_location=lambda storage, loc: storage.cuda(device_id))
    else:
        resume_state = torch.load(resume_state_path, map_location='cpu')
    check_resume(opt, resume_state['iter'])
    return resume_state


def _init_dist_any_device(launcher, backend='nccl', **kwargs):
    """``basicsr.utils.dist_util.init_dist`` that falls back to gloo (CPU) when CUDA is absent."""
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from basicsr.utils import dist_util

    if not torch.cuda.is_available() or os.environ.get('ADAPTSR_DIST_BACKEND') == 'gloo':
        if mp.get_start_method(allow_none=True) is None:
            mp.set_start_method('spawn')
        if launcher != 'pytorch':
            raise ValueError(f'CPU distributed training supports --launcher pytorch only, got {launcher!r}')
        dist.init_process_group(backend='gloo', **kwargs)
        return
    dist_util.init_dist(launcher, backend, **kwargs)


def default_env(root_path):
    """Defaults of the data/weights locations used in the shipped YAML files.

    ``ADAPTSR_BENCHMARK``: folder with Set5/Set14/B100/Urban100 in the EDSR layout (default
    ``<repo>/datasets/benchmark``); ``ADAPTSR_WEIGHTS``: folder with the official checkpoints as distributed
    (default ``<repo>/weights/official``).
    """
    os.environ.setdefault('ADAPTSR_BENCHMARK', osp.join(root_path, 'datasets', 'benchmark'))
    os.environ.setdefault('ADAPTSR_WEIGHTS', osp.join(root_path, 'weights', 'official'))


def expand_paths(opt):
    """Expand environment variables in ``datasets.*.dataroot_*``/``meta_info_file`` and ``path.*`` strings.

    Raises:
        ValueError: a variable that is not set (the option and value are named).
    """

    def expand(where, value):
        if not isinstance(value, str) or '$' not in value:
            return value
        out = osp.expandvars(value)
        if '$' in out:
            raise ValueError(f'{where}: environment variable in {value!r} is not set')
        return out

    for name, dopt in (opt.get('datasets') or {}).items():
        for key in list(dopt):
            if key.startswith('dataroot') or key == 'meta_info_file':
                dopt[key] = expand(f'datasets.{name}.{key}', dopt[key])
    for key in list(opt.get('path') or {}):
        opt['path'][key] = expand(f'path.{key}', opt['path'][key])
    return opt


def _wrap_parse_options(parse_options):

    def parse_options_with_phases(root_path, is_train=True):
        default_env(root_path)
        opt, args = parse_options(root_path, is_train)
        opt['root_path'] = root_path
        expand_paths(opt)
        train_opt = opt.get('train') or {}
        if is_train and train_opt.get('phases') is not None:
            from basicsr.utils.registry import MODEL_REGISTRY
            from adaptsr.ops.phases import PhaseSchedule
            model = MODEL_REGISTRY.get(opt['model_type']) if opt.get('model_type') in MODEL_REGISTRY else None
            schedule = PhaseSchedule.from_options(train_opt, getattr(model, 'phase_keys', None))
            if train_opt.get('total_iter') is None:
                train_opt['total_iter'] = schedule.total_iter
            elif int(train_opt['total_iter']) != schedule.total_iter:
                raise ValueError(f"train.total_iter = {train_opt['total_iter']} does not match the sum of "
                                 f'train.phases iters ({schedule.total_iter}); remove total_iter or fix it.')
        return opt, args

    return parse_options_with_phases


def patch_pipelines():
    """Install the pipeline patches (idempotent). Called by ``train.py``/``test.py`` and the tests."""
    global _PATCHED
    if _PATCHED:
        return
    import basicsr.test as bs_test
    import basicsr.train as bs_train
    import basicsr.utils.options as bs_options

    from adaptsr.data.data_util import check_dataset_paths
    build_dataset = bs_train.build_dataset

    def build_dataset_checked(dataset_opt):
        check_dataset_paths(dataset_opt)
        return build_dataset(dataset_opt)

    bs_train.build_dataset = build_dataset_checked
    bs_test.build_dataset = build_dataset_checked
    bs_train.load_resume_state = _cpu_safe_load_resume_state
    bs_options.init_dist = _init_dist_any_device
    wrapped = _wrap_parse_options(bs_options.parse_options)
    bs_train.parse_options = wrapped
    bs_test.parse_options = wrapped
    _PATCHED = True


install_import_shims()
