"""The bench's one measuring loop (:func:`run_configs`: configurations interleaved image by image, repeats, the real
multiply-adds counted in an untimed run) and what it measures with: timing, peak memory, quality, speed-ups.

The protocols that produce rows with it: an options file (:mod:`adaptsr.bench.options_file`), large inputs
(:mod:`adaptsr.bench.sizes`), a comparison spec (:mod:`adaptsr.bench.compare`); tables and plots are written by
:mod:`adaptsr.utils.report`.
"""
import os
import time

import numpy as np
import torch
from basicsr.metrics import calculate_metric, calculate_psnr, calculate_ssim
from basicsr.utils import tensor2img

from adaptsr.core.cost import real_flops_counting


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
    parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
    plain network's is cached per input shape), one untimed run that counts it (:mod:`adaptsr.core.cost`). The bench,
    its comparison mode and ``adaptsr-infer`` time every forward through here.

    Args:
        model: a BasicSR model with data fed (or an exported model without cost). device: its device.
        repeats (int): timed runs. count_real (bool): False: never the counted run.

    Returns:
        float: seconds.
    """
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
    metrics = model.val_opt['metrics']
    if not metrics:
        raise ValueError(f'{model.opt["name"]}: the bench scores with val.metrics, and the options define none')
    data = {'img': tensor2img([model.output.detach().cpu().clone()]),
            'img2': tensor2img([model.gt.detach().cpu().clone()])}
    return {name: float(calculate_metric(data, mopt)) for name, mopt in metrics.items()}


def _images(output, gt):
    return tensor2img([output.detach().cpu().clone()]), tensor2img([gt.detach().cpu().clone()])


def psnr_y(output, gt, scale):
    """:func:`quality`'s PSNR on Y alone (crop_border = scale), for sweeps that score many images (SSIM is most of
    :func:`quality`'s time). Tensors (1, 3, H, W) in [0, 1]."""
    return float(calculate_psnr(*_images(output, gt), crop_border=scale, test_y_channel=True))


def quality(output, gt, scale):
    """PSNR/SSIM on Y (crop_border = scale) and RGB PSNR (shave = scale) of SR vs HR tensors (1, 3, H, W)."""
    sr, hr = _images(output, gt)
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


def largest(images):
    """The item with the largest LR image (``images`` may be a generator: one image is held at a time)."""
    return max(images, key=lambda it: it['lq'].numel())


def add_speedups(row, base):
    """Speed-ups of ``row`` against ``base`` (the first reference): time, FLOPs, and the realised fraction."""
    row['time_speedup'] = base['sec_total'] / row['sec_total']
    if base['gflops'] > 0 and row['gflops'] > 0:
        row['flops_speedup'] = base['gflops'] / row['gflops']
        flops_cut = 1 - row['gflops'] / base['gflops']
        time_cut = 1 - row['sec_total'] / base['sec_total']
        row['realized'] = time_cut / flops_cut if flops_cut > 0 else float('nan')


def run_configs(configs, images, device, warmup=1, repeats=1, quality=None, count_real=True):
    """Per-image quality, cost and time of ``model.test()`` for every configuration, interleaved: each image runs
    through all configurations in turn, so a drift of the machine's speed during the run weighs on all of them alike.
    The timed runs do not count the real multiply-adds (``gflops_real``); an untimed run does, where the count is not
    known already (a plain network's is cached per input shape).

    Args:
        configs (list): ``(model, budget)`` pairs; ``budget`` (None: unchanged) is applied before each of its runs.
        repeats (int): each image is timed this many times per configuration, the fastest kept.
        quality (callable, optional): ``fn(model, item) -> dict`` of quality metrics; default the options'
            ``val.metrics`` (:func:`adaptsr.bench.measure.model_quality`).
        count_real (bool): False: no counted run (``gflops_real`` NaN where it is not known already).

    Returns:
        list[list[dict]]: per configuration, its per-image rows (name, seconds, quality, cost metrics).
    """
    def prepare(model, budget, item):
        if budget is not None:
            model.apply_budget(budget)
        model.feed_data({'lq': item['lq'], 'gt': item['gt']})

    for model, budget in configs:
        for _ in range(warmup):
            prepare(model, budget, images[0])
            model.test()
    per_config = [[] for _ in configs]
    for item in images:
        for (model, budget), rows in zip(configs, per_config):
            prepare(model, budget, item)
            seconds = timed_test(model, device, repeats, count_real)
            row = {'name': item['name'], 'seconds': seconds}
            row.update(quality(model, item) if quality else model_quality(model))
            row.update({k: v for k, v in model.cost_metric_values().items()})
            rows.append(row)
    return per_config


def peak_memory(model, images, device, memory):
    """Peak MiB of one forward on the largest image (the model's budget as set): the CUDA allocator peak in this
    process, or on CPU ``memory()`` (a fresh-process probe)."""
    if torch.device(device).type != 'cuda':
        return memory()
    big = largest(images)
    model.feed_data({'lq': big['lq'], 'gt': big['gt']})
    return cuda_peak_mib(model.test, device)
