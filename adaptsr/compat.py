"""Everything adaptsr changes in BasicSR 1.4.2, in one place, each with the reason it is needed.

adaptsr extends BasicSR through its registries and subclasses (archs, models, losses and datasets register; the
models subclass ``SRModel``). What cannot be done that way is listed here; nothing else in adaptsr patches BasicSR.

On ``import adaptsr`` (:func:`adaptsr.shims.install_import_shims`, before ``import basicsr``):

============================================== ========================================================================
``torchvision.transforms.functional_tensor``   torchvision >= 0.17 removed this module and ``basicsr.data.degradations``
(a module in ``sys.modules``, not a BasicSR    imports ``rgb_to_grayscale`` from it, so ``import basicsr`` fails on
attribute)                                     today's torchvision; the stand-in re-exports the function it needs.
============================================== ========================================================================

By :func:`patch_pipelines`, called by the repository's ``train.py`` / ``test.py`` and the console commands only (a
foreign project that imports ``adaptsr.archs`` keeps BasicSR's functions), :data:`PIPELINE_PATCHES` lists the
attributes replaced:

* ``basicsr.train.load_resume_state``: 1.4.2 maps resume states to CUDA unconditionally, so ``--auto_resume``
  cannot run on a CPU-only torch, it looks for ``experiments/`` under the current directory instead of the
  repository root, and an unreadable latest state stops the resume (adaptsr falls back to the newest readable one,
  with a warning that names the bad file: :func:`adaptsr.utils.resume.find_resume_state`);
* ``basicsr.train.CPUPrefetcher``: 1.4.2 restarts the interrupted epoch from its first batch on resume; the
  replacement continues it where it stopped, with the data pipeline's random states
  (:mod:`adaptsr.utils.resume`), so a resumed run equals the uninterrupted one;
* ``basicsr.train.build_dataset`` and ``basicsr.test.build_dataset``: a sample that cannot be read (an empty,
  truncated or non-image file, an LMDB key that is absent) fails in cv2 or with ``'NoneType' object has no attribute
  'astype'``, naming nothing; the datasets are wrapped (:class:`adaptsr.core.data_util.NamedErrorDataset`) so the
  error names the dataset, the sample and its files or keys;
* ``basicsr.utils.options.init_dist``: 1.4.2 calls ``torch.cuda.set_device(rank % 0)`` without CUDA; the replacement
  uses the gloo backend, so ``--launcher pytorch`` trains on CPU;
* ``basicsr.train.parse_options`` and ``basicsr.test.parse_options`` (the same wrapper; each pipeline module
  imported the function by name): ``-opt`` may name a shipped options file (``-opt pcsr_carn_x4``,
  :func:`adaptsr.core.options.find_options`); environment variables in dataset roots, ``path`` entries and
  ``train.<method>``
  strings are expanded (``${ADAPTSR_BENCHMARK}``, ``${ADAPTSR_WEIGHTS}``, ``${ADAPTSR_DATA}``), dataset paths are
  checked, ``num_gpu`` is checked against the CUDA devices torch sees, ``train.total_iter`` is derived from
  ``train.phases`` when absent, and
  :func:`adaptsr.core.options.check_options` rejects unknown keys, all before an experiment folder is made;
  adaptsr's ``--overwrite`` is taken out of ``sys.argv`` here;
* ``basicsr.train.make_exp_dirs`` and ``basicsr.test.make_exp_dirs``: a file path declared by a model is not made a
  directory, and ``--overwrite`` replaces the run's folders instead of archiving them (:func:`_wrap_make_exp_dirs`).

Without :func:`patch_pipelines` (a plain BasicSR ``train.py`` that imports adaptsr) the shipped training YAMLs still
run: they carry ``total_iter``, and the models check their options when they are built.
"""
import importlib
import os
import os.path as osp
import shutil
import sys

import yaml
from basicsr.utils import check_resume, dist_util

from adaptsr.core.data_util import NamedErrorDataset, check_dataset_paths
from adaptsr.core.declarations import side_file_keys
from adaptsr.core.options import (OptionError, check_device, check_options, default_env, expand_paths, find_options,
                                  set_by_path)
from adaptsr.core.phases import PhaseSchedule
from adaptsr.utils.resume import find_resume_state, remove_partial_writes, resumable_prefetcher

_PATCHED = False
#: this run's adaptsr-only flags, taken out of ``sys.argv`` before BasicSR's parser sees them
_RUN = {'overwrite': False}


def _cpu_safe_load_resume_state(opt):
    """Replacement for ``basicsr.train.load_resume_state``: works on CPU and from any cwd, and ``--auto_resume``
    falls back to the newest readable state (:func:`adaptsr.utils.resume.find_resume_state`)."""
    import torch


    resume_state = None
    if opt['auto_resume']:
        exp = osp.join(opt.get('root_path', '.'), 'experiments', opt['name'])
        networks = tuple(k[len('network_'):] for k in opt if k.startswith('network_'))
        remove_partial_writes(exp)
        found = find_resume_state(osp.join(exp, 'training_states'), osp.join(exp, 'models'), networks or ('g',))
        if found is not None:
            opt['path']['resume_state'], resume_state = found
    elif opt['path'].get('resume_state'):
        path = opt['path']['resume_state']
        if not osp.isfile(path):
            raise FileNotFoundError(f'path.resume_state: no such file {path!r}')
        try:
            resume_state = torch.load(path, map_location='cpu', weights_only=False)
        except Exception as err:
            raise RuntimeError(f'path.resume_state: {path} cannot be read ({type(err).__name__}: {err})') from err

    if resume_state is None:
        return None
    if opt.get('num_gpu', 0) and torch.cuda.is_available():
        device_id = torch.cuda.current_device()
        resume_state = torch.load(opt['path']['resume_state'],
                                  map_location=lambda storage, loc: storage.cuda(device_id), weights_only=False)
    check_resume(opt, resume_state['iter'])
    return resume_state


def _init_dist_any_device(launcher, backend='nccl', **kwargs):
    """``basicsr.utils.dist_util.init_dist`` that falls back to gloo (CPU) when CUDA is absent."""
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not torch.cuda.is_available() or os.environ.get('ADAPTSR_DIST_BACKEND') == 'gloo':
        if mp.get_start_method(allow_none=True) is None:
            mp.set_start_method('spawn')
        if launcher != 'pytorch':
            raise ValueError(f'CPU distributed training supports --launcher pytorch only, got {launcher!r}')
        dist.init_process_group(backend='gloo', **kwargs)
        return
    dist_util.init_dist(launcher, backend, **kwargs)


def _take_indexed_force_yml(argv):
    """Remove from ``argv`` the ``--force_yml`` entries whose key path indexes a list (``train:phases:0:iters=10``;
    BasicSR 1.4.2 indexes every segment as a dict key, a ``TypeError``) and return them, to be applied after
    BasicSR's parse by :func:`adaptsr.core.options.set_by_path`."""
    if '--force_yml' not in argv:
        return []
    start = argv.index('--force_yml') + 1
    end = start
    while end < len(argv) and not argv[end].startswith('-'):
        end += 1
    entries = argv[start:end]
    indexed = [e for e in entries if any(k.strip().isdigit() for k in e.split('=', 1)[0].split(':'))]
    kept = [e for e in entries if e not in indexed]
    argv[start - (0 if kept else 1):end] = kept
    return indexed


def _apply_indexed_force_yml(opt, entries, path):
    """Apply the entries :func:`_take_indexed_force_yml` took; a phase's ``iters`` changed this way re-derives a
    ``train.total_iter`` that equalled the phases' sum.

    Raises:
        OptionError: an entry that is not ``key=value``, or a key or index the options do not have (named).
    """
    train = opt.get('train') or {}
    phases = train.get('phases') or []
    old_sum = sum(int(p.get('iters', 0)) for p in phases if isinstance(p, dict))
    for entry in entries:
        if '=' not in entry:
            raise OptionError(f'--force_yml {entry!r}: expected key:sub=value')
        key, value = entry.split('=', 1)
        try:
            set_by_path(opt, key.strip(), yaml.safe_load(value.strip()))
        except (KeyError, IndexError, ValueError, TypeError) as err:
            raise OptionError(f'--force_yml {entry}: {path} has no such key or index ({err})') from None
    if phases and train.get('total_iter') == old_sum:
        train['total_iter'] = sum(int(p.get('iters', 0)) for p in phases)


def _wrap_parse_options(parse_options):

    def parse_options_checked(root_path, is_train=True):
        default_env(root_path)
        _RUN['overwrite'] = '--overwrite' in sys.argv  # adaptsr's flag, unknown to BasicSR's parser
        sys.argv[:] = [a for a in sys.argv if a != '--overwrite']
        if '-opt' in sys.argv[:-1]:  # a shipped options file by name: -opt pcsr_carn_x4
            i = sys.argv.index('-opt') + 1
            sys.argv[i] = find_options(sys.argv[i], 'train' if is_train else 'test')
        indexed = _take_indexed_force_yml(sys.argv)
        try:
            opt, args = parse_options(root_path, is_train)
        except KeyError as err:  # BasicSR reads required top-level keys without a check
            path = sys.argv[sys.argv.index('-opt') + 1] if '-opt' in sys.argv[:-1] else 'the options file'
            raise OptionError(f'{path}: required key {err} is missing (a misspelt top-level key?); BasicSR options '
                              "need name, model_type, scale, num_gpu, datasets, network_g, path (and train, logger "
                              'to train)') from err
        for key in ('name', 'model_type', 'datasets', 'network_g', 'path') + (('train', 'logger') if is_train else ()):
            if key not in opt:
                raise OptionError(f'{args.opt}: required top-level key {key!r} is missing')
        if _RUN['overwrite'] and getattr(args, 'auto_resume', False):
            raise OptionError('--overwrite and --auto-resume: choose one (start over, or continue the run)')
        _apply_indexed_force_yml(opt, indexed, args.opt)
        opt['root_path'] = root_path
        expand_paths(opt)
        check_device(opt)
        check_options(opt)
        for dataset_opt in (opt.get('datasets') or {}).values():
            check_dataset_paths(dataset_opt)
        train_opt = opt.get('train') or {}
        if is_train and train_opt.get('phases') is not None and train_opt.get('total_iter') is None:
            train_opt['total_iter'] = PhaseSchedule.from_options(train_opt).total_iter
        return opt, args

    return parse_options_checked


def _wrap_make_exp_dirs(make_exp_dirs):
    """``basicsr.utils.make_exp_dirs`` makes a directory at every ``path.*`` value but the checkpoint ones; the file
    that a model reads from ``path`` (a key some registered model declares in ``side_files``, e.g. an edge-to-bit
    table) is left out, and a file where a directory is due is an error naming the key. With ``--overwrite`` the
    run's folders (``experiments/<name>`` and ``tb_logger/<name>``, or ``results/<name>``) are removed first; without
    it BasicSR archives them as ``<folder>_archived_<time>``, so nothing is lost either way but by the flag."""

    def make_exp_dirs_files_kept(opt):
        path_opt = opt['path']
        file_keys = set(side_file_keys())
        skipped = ('strict_load', 'pretrain_network', 'resume', 'param_key', 'experiments_root', 'results_root')
        for key, value in path_opt.items():
            if key in file_keys or any(s in key for s in skipped) or not isinstance(value, str):
                continue
            if osp.isfile(value):
                raise OptionError(f'path.{key}: {value!r} is a file, but BasicSR makes a directory there')
        files = {k: path_opt.pop(k) for k in list(path_opt) if k in file_keys}
        if _RUN['overwrite']:  # replace the run's folders instead of archiving them as <name>_archived_<time>
            for folder in ([path_opt['experiments_root'], osp.join(opt['root_path'], 'tb_logger', opt['name'])]
                           if opt['is_train'] else [path_opt['results_root']]):
                if osp.isdir(folder):
                    print(f'--overwrite: removing {folder}', flush=True)
                    shutil.rmtree(folder)
        try:
            return make_exp_dirs(opt)
        finally:
            path_opt.update(files)

    return make_exp_dirs_files_kept


def _named_error_dataset(build_dataset):

    def build_dataset_named_errors(dataset_opt):
        return NamedErrorDataset(build_dataset(dataset_opt))

    return build_dataset_named_errors


def _resumable_prefetcher(cpu_prefetcher):
    return resumable_prefetcher(cpu_prefetcher)


#: (module, attribute, replacement factory) of every BasicSR attribute :func:`patch_pipelines` replaces
PIPELINE_PATCHES = (
    ('basicsr.train', 'load_resume_state', lambda old: _cpu_safe_load_resume_state),
    ('basicsr.utils.options', 'init_dist', lambda old: _init_dist_any_device),
    ('basicsr.train', 'parse_options', _wrap_parse_options),
    ('basicsr.test', 'parse_options', _wrap_parse_options),
    ('basicsr.train', 'make_exp_dirs', _wrap_make_exp_dirs),
    ('basicsr.test', 'make_exp_dirs', _wrap_make_exp_dirs),
    ('basicsr.train', 'CPUPrefetcher', _resumable_prefetcher),
    ('basicsr.train', 'build_dataset', _named_error_dataset),
    ('basicsr.test', 'build_dataset', _named_error_dataset),
)


def patch_pipelines():
    """Install :data:`PIPELINE_PATCHES` (idempotent). Called by ``train.py``/``test.py`` and the tests."""
    global _PATCHED
    if _PATCHED:
        return
    for module_name, attr, make in PIPELINE_PATCHES:
        module = importlib.import_module(module_name)
        setattr(module, attr, make(getattr(module, attr)))
    _PATCHED = True


