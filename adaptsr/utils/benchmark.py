"""Measurement helpers for ``scripts/benchmark.py``: option loading, timing, peak memory, quality metrics."""
import os
import time
from copy import deepcopy

import numpy as np
import torch
import yaml
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import tensor2img

from adaptsr.options import check_options, default_env, expand_env, expand_paths


def _set_by_path(opt, dotted, value):
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
        FileNotFoundError: ``opt_path`` missing. KeyError: a --force_yml key that does not exist.
    """
    from basicsr.utils.options import ordered_yaml
    if not os.path.isfile(opt_path):
        raise FileNotFoundError(f'options file {opt_path!r} does not exist')
    with open(opt_path) as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    for entry in force_yml or ():
        if '=' not in entry:
            raise ValueError(f'--force_yml entries are key:sub=value, got {entry!r}')
        key, value = entry.split('=', 1)
        _set_by_path(opt, key.strip(), yaml.safe_load(value.strip()))
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


def _reference(opt, network, pretrain, model_type, val=None, allow_random_weights=False):
    ref = deepcopy(opt)
    if allow_random_weights:
        ref['allow_random_weights'] = True
    ref.pop('network_ref', None)
    ref.pop('network_refs', None)
    ref['network_g'] = deepcopy(network)
    ref['model_type'] = model_type
    ref['path']['pretrain_network_g'] = pretrain
    ref['path']['param_key_g'] = 'params'
    from basicsr.utils.registry import MODEL_REGISTRY
    from adaptsr.options import declared
    known = declared(MODEL_REGISTRY.get(model_type), 'val_options')  # the method's knob is not the reference's
    ref['val'] = {k: v for k, v in ref['val'].items() if k != 'budget_sweep' and k in known}
    ref['val'].update(deepcopy(val or {}))
    return ref


def reference_options(opt):
    """Options of the models measured beside the method: ``[(label, options), ...]``.

    * ``network_ref`` + ``path.pretrain_network_ref``: the method's full/original model, label ``reference``;
    * ``network_refs``: ``{label: {network: {...}, pretrain: path or null, model_type: (AdaptiveSRModel)}}``,
      further models of similar size (e.g. ETDS against its dual-stream form, ECBSR and ABPN); an entry's optional
      ``val`` overrides the test options for that model (e.g. ``{tile_size: null}``: the whole image at once; or
      ``{budget_sweep: [...]}`` with ``model_type`` the method's model: a second adaptive model, e.g. the official
      weights beside one's own, swept over its own budgets); ``allow_random_weights: true`` with ``pretrain: null``
      times an untrained network (its quality is meaningless; refused otherwise).

    The first entry is the one speed-ups are measured against.

    Raises:
        ValueError: a ``network_refs`` entry without ``network``, or an unset environment variable in ``pretrain``.
    """
    refs = []
    if opt.get('network_ref') is not None:
        refs.append(('reference', _reference(opt, opt['network_ref'], opt['path'].get('pretrain_network_ref'),
                                             'AdaptiveSRModel')))
    for label, entry in (opt.get('network_refs') or {}).items():
        if not isinstance(entry, dict) or 'network' not in entry:
            raise ValueError(f'network_refs.{label}: expected {{network: {{type: ...}}, pretrain: ...}}, got {entry!r}')
        pretrain = entry.get('pretrain')
        pretrain = expand_env(f'network_refs.{label}.pretrain', pretrain)
        unknown = sorted(set(entry) - {'network', 'pretrain', 'model_type', 'val', 'allow_random_weights'})
        if unknown:
            raise ValueError(f'network_refs.{label}: unknown key(s) {unknown}; known: network, pretrain, model_type, '
                             'val, allow_random_weights')
        refs.append((label, _reference(opt, entry['network'], pretrain, entry.get('model_type', 'AdaptiveSRModel'),
                                       entry.get('val'), bool(entry.get('allow_random_weights')))))
    return refs


def _rss_bytes():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def peak_rss_bytes():
    """Peak resident set size of this process so far (``VmHWM``), in bytes."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    raise RuntimeError('VmHWM not found in /proc/self/status')


def reset_peak_rss():
    """Reset this process's ``VmHWM`` to its current RSS (``/proc/self/clear_refs``, Linux >= 4.0)."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def fresh_process_env():
    """Environment of a fresh measuring process (the bench's memory probe, the large-input runs): a fixed
    ``MALLOC_MMAP_THRESHOLD_`` (glibc's dynamic one makes freed large tensors stay in the heap at random) and the
    folder above the adaptsr package on ``PYTHONPATH`` (a checkout that is not installed)."""
    import adaptsr
    parent = os.path.dirname(os.path.dirname(os.path.abspath(adaptsr.__file__)))
    return dict(os.environ, MALLOC_MMAP_THRESHOLD_='131072',
                PYTHONPATH=os.pathsep.join(p for p in (parent, os.environ.get('PYTHONPATH')) if p))


def fresh_process_peak_mib(fn):
    """Peak memory of ``fn()`` in MiB: ``VmHWM`` after the call minus RSS before it, the high-water mark being reset
    just before the call.

    Meant for a fresh process started with ``MALLOC_MMAP_THRESHOLD_`` fixed (``scripts/benchmark.py
    --probe_memory``), so that large tensors are mapped and unmapped deterministically; in a process that has run
    forwards before, freed memory stays mapped and later peaks no longer show in its RSS.
    """
    reset_peak_rss()
    base = _rss_bytes()
    fn()
    return (peak_rss_bytes() - base) / 2**20


def cuda_peak_mib(fn, device):
    """Peak CUDA allocator memory of ``fn()`` above the level before it, in MiB."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


def timed(fn, device):
    """Seconds taken by ``fn()`` (CUDA-synchronised on GPU)."""
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def timed_test(model, device, repeats=1, count_real=True):
    """Seconds of ``model.test()`` (the fastest of ``repeats`` runs) with the real-cost counter off, since counting
    slows a forward down; then, when the model counts cost and its ``flops_real`` for this input is not known yet (a
    plain network's is cached per input shape), one untimed run that counts it (:mod:`adaptsr.ops.cost`). The bench,
    its comparison mode and ``adaptsr-infer`` time every forward through here.

    Args:
        model: a BasicSR model with data fed (or an exported model without cost). device: its device.
        repeats (int): timed runs. count_real (bool): False: never the counted run.

    Returns:
        float: seconds.
    """
    from adaptsr.ops.cost import real_flops_counting
    with real_flops_counting(False):
        seconds = min(timed(model.test, device) for _ in range(max(1, repeats)))
    if count_real and model.val_opt.get('cost', True) and getattr(model, 'cost', {}).get('flops_real') is None:
        del model.output  # an 8K output is not held twice
        model.test()
    return seconds


def model_quality(model):
    """The options' ``val.metrics`` of the model's last ``test()`` (``model.output`` vs ``model.gt``), computed as
    BasicSR's validation computes them (``calculate_metric`` on 8-bit images): the bench scores as ``test.py`` does.

    Raises:
        ValueError: the options define no ``val.metrics``.
    """
    from basicsr.metrics import calculate_metric
    metrics = model.val_opt['metrics']
    if not metrics:
        raise ValueError(f'{model.opt["name"]}: the bench scores with val.metrics, and the options define none')
    data = {'img': tensor2img([model.output.detach().cpu().clone()]),
            'img2': tensor2img([model.gt.detach().cpu().clone()])}
    return {name: float(calculate_metric(data, mopt)) for name, mopt in metrics.items()}


def quality(output, gt, scale):
    """PSNR/SSIM on Y (crop_border = scale) and RGB PSNR (shave = scale) of SR vs HR tensors (1, 3, H, W)."""
    sr = tensor2img([output.detach().cpu().clone()])
    hr = tensor2img([gt.detach().cpu().clone()])
    return {
        'psnr_y': float(calculate_psnr(sr, hr, crop_border=scale, test_y_channel=True)),
        'ssim_y': float(calculate_ssim(sr, hr, crop_border=scale, test_y_channel=True)),
        'psnr_rgb': float(calculate_psnr(sr, hr, crop_border=scale, test_y_channel=False)),
    }


def summarise(per_image):
    """Mean of the quality/cost entries and median seconds over images."""
    keys = [k for k in per_image[0] if k not in ('name', 'seconds')]
    row = {k: float(np.mean([r[k] for r in per_image])) for k in keys}
    row['sec_median'] = float(np.median([r['seconds'] for r in per_image]))
    row['sec_total'] = float(np.sum([r['seconds'] for r in per_image]))
    row['images'] = len(per_image)
    return row
