"""Which method for my budget? All methods on the same images, threads and protocol, with real cost, in one run
(``adaptsr-bench --compare options/compare/x4.yml --json bench_out/compare_x4.json``).

The spec (YAML) names:

* ``scale``; ``threads`` (default 2); ``repeats`` (default 1: each image's time is the fastest of that many runs);
  ``memory`` (default true: peak memory of each configuration on the largest LR image of the first dataset, in a
  fresh ``adaptsr-infer`` process);
* ``datasets``: ``name -> {lr: <LR folder>, hr: <HR folder>, max_images: N}`` (HR found by stem, the EDSR naming
  ``img_001x4`` -> ``img_001`` included);
* ``models``: ``label -> {args: [adaptsr-infer model arguments: --model <checkpoint | bicubic | x.onnx | x.tflite>,
  --scale, knobs ...], sweep: {budget label: [more arguments]}}``. Each sweep entry is one configuration (e.g. PCSR
  ``k0: [--k, 0]``, APE ``thr0.9: [--exit-threshold, 0.9]``); without ``sweep`` the model is one configuration.

Each configuration is built as ``adaptsr-infer`` builds it (its checkpoint recognised from its weights, the
method's own test protocol: APE and CABM decide per 48-pixel tile, PCSR refines, no crop) and all configurations run
interleaved image by image. Per configuration and dataset: PSNR/SSIM on Y and RGB PSNR (crop_border = scale), the
paper-convention GFLOPs (``gflops``) and the multiply-adds that actually ran (``gflops_real``, x 2: counted by
:class:`torch.utils.flop_counter.FlopCounterMode` in a separate untimed run, :mod:`adaptsr.core.cost`), median and
total seconds, peak memory. The rows on the Pareto front (no other configuration at most as costly with a higher
PSNR-Y) are marked per cost axis: ``front_seconds`` and ``front_gflops_real``. Output: ``<json>``, ``.csv`` and
``.png`` (per dataset: PSNR-Y against seconds and against real GFLOPs; the front joined; where a paper's convention
differs from the real count by more than 1%, its point is drawn hollow beside the real one).
"""
import json
import os.path as osp
import shutil
import tempfile

import numpy as np
import torch
import yaml
from basicsr.utils import get_root_logger

from adaptsr.api import build_model as build_quiet
from adaptsr.api import load
from adaptsr.api.flags import model_options, parse_model_args
from adaptsr.api.images import find_hr, list_inputs, read_hr, read_image
from adaptsr.bench.measure import quality, run_configs, summarise
from adaptsr.bench.sizes import run_infer
from adaptsr.core.errors import InferError
from adaptsr.core.options import locate
from adaptsr.core.precision import cpu_bf16_units
from adaptsr.utils.atomic import atomic_write
from adaptsr.utils.report import format_table, save_figure, write_table

SPEC_KEYS = {'scale', 'threads', 'repeats', 'memory', 'datasets', 'models'}
DATASET_KEYS = {'lr', 'hr', 'max_images'}
MODEL_KEYS = {'args', 'sweep'}


def load_spec(path):
    """The compare spec, environment variables expanded, every key checked.

    Raises:
        ValueError: an unknown or missing key (named with its place in the file).
    """
    with open(path) as f:
        spec = yaml.safe_load(f) or {}
    unknown = sorted(set(spec) - SPEC_KEYS)
    missing = sorted({'scale', 'datasets', 'models'} - set(spec))
    if unknown or missing:
        raise ValueError(f'{path}: unknown keys {unknown}, missing {missing} (allowed: {sorted(SPEC_KEYS)})')
    for name, d in spec['datasets'].items():
        bad = sorted(set(d) - DATASET_KEYS)
        if bad or not {'lr', 'hr'} <= set(d):
            raise ValueError(f'{path}: datasets.{name}: keys {sorted(DATASET_KEYS)} (lr and hr required); '
                             f'unknown {bad}')
        for key in ('lr', 'hr'):
            d[key] = locate(f'datasets.{name}.{key}', d[key])
    for label, entry in spec['models'].items():
        bad = sorted(set(entry) - MODEL_KEYS)
        if bad or 'args' not in entry:
            raise ValueError(f'{path}: models.{label}: keys {sorted(MODEL_KEYS)} (args required); unknown {bad}')
        entry['args'] = [str(locate(f'models.{label}.args', str(a))) for a in entry['args']]
        for budget, extra in (entry.get('sweep') or {}).items():
            entry['sweep'][budget] = [str(a) for a in extra]
    return spec


def configurations(spec):
    """``(label, budget, adaptsr-infer model arguments)`` per configuration, in the spec's order."""
    out = []
    for label, entry in spec['models'].items():
        sweep = entry.get('sweep') or {'-': []}
        out += [(label, str(budget), entry['args'] + list(extra)) for budget, extra in sweep.items()]
    return out


def build_model(model_args, scale, threads, out):
    """A model as ``adaptsr-infer`` builds it from its model arguments (checkpoint, knobs); ``out``: a scratch folder
    for its results paths (nothing is written there by the bench).

    Raises:
        adaptsr.core.errors.InferError: bad arguments (named).
    """
    scale_args = [] if '--scale' in model_args else ['--scale', str(scale)]
    args = parse_model_args(scale_args + list(model_args))
    args.output = out
    suffix = osp.splitext(args.model or '')[1].lower()
    if suffix in ('.onnx', '.tflite'):
        return load(args.model, args.scale, threads=threads).model
    return build_quiet(model_options(args))


def load_pairs(dspec, scale):
    """LR/HR pairs of a spec dataset: ``[{'name', 'lr_path', 'lq' (1, 3, h, w), 'gt' (1, 3, h s, w s)}]`` in [0, 1],
    the HR cropped top-left to ``scale`` x the LR (BasicSR's mod-crop).

    Raises:
        ValueError: no LR image.
        adaptsr.core.errors.InferError: no HR image of that name, or an HR of another size (the file is named).
    """
    files = list_inputs([dspec['lr']])[:dspec.get('max_images')]
    if not files:
        raise ValueError(f'{dspec["lr"]}: no LR image')
    pairs = []
    for path in files:
        stem = osp.splitext(osp.basename(path))[0]
        lr = read_image(path)['rgb']
        hr = read_hr(find_hr(dspec['hr'], stem, scale), lr.shape[:2], scale)
        to_t = (lambda a: torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None].float())
        pairs.append({'name': stem, 'lr_path': path, 'lq': to_t(lr), 'gt': to_t(hr)})
    return pairs


def add_pair_args(parser):
    """The flags of a script that scores a model on an LR/HR set: ``--lr``/``--hr`` folders, ``--scale``,
    ``--max-images`` and ``--threads`` (read back by :func:`pairs_from_args`)."""
    parser.add_argument('--lr', required=True, help='LR folder')
    parser.add_argument('--hr', required=True, help='HR folder')
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--max-images', dest='max_images', type=int, default=None)
    parser.add_argument('--threads', type=int, default=2)


def pairs_from_args(args):
    """:func:`load_pairs` of :func:`add_pair_args`' flags, torch's CPU threads set from ``--threads``."""
    torch.set_num_threads(args.threads)
    return load_pairs({'lr': args.lr, 'hr': args.hr, 'max_images': args.max_images}, args.scale)


def pair_quality(scale):
    """``fn(model, item)``: PSNR/SSIM on Y and RGB PSNR (crop_border = ``scale``) of the model's last output against
    the item's HR, the same for every model (their ``val.metrics`` differ)."""
    return lambda model, item: quality(model.output.clamp(0, 1), item['gt'], scale)


def pareto_front(rows, x, y='psnr_y'):
    """Indices of the rows on the Pareto front of (lower ``x``, higher ``y``); rows without a finite ``x`` are left
    out."""
    pts = sorted((r[x], -r[y], i) for i, r in enumerate(rows) if np.isfinite(r.get(x, np.nan)))
    front, best = [], -np.inf
    for cost, neg_y, i in pts:
        if -neg_y > best:
            front.append(i)
            best = -neg_y
    return front


def plot_compare(rows, path, title):
    """Per dataset: PSNR-Y against seconds and against real GFLOPs (log x), one colour per model, the Pareto front
    joined; a paper-convention GFLOPs point that differs from the real count by more than 1% is drawn hollow and
    joined to its real point by a dotted line."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    datasets = list(dict.fromkeys(r['dataset'] for r in rows))
    labels = list(dict.fromkeys(r['model'] for r in rows))
    colours = {m: plt.cm.tab20(i % 20) for i, m in enumerate(labels)}
    fig, axes = plt.subplots(len(datasets), 2, figsize=(13, 5.2 * len(datasets)), squeeze=False)
    for axrow, name in zip(axes, datasets):
        drows = [r for r in rows if r['dataset'] == name]
        for ax, x, xlabel in ((axrow[0], 'sec_median', 'seconds per image (median)'),
                              (axrow[1], 'gflops_real', 'real GFLOPs per image (2 x multiply-adds that ran)')):
            for model in labels:
                pts = sorted((r for r in drows if r['model'] == model and np.isfinite(r.get(x, np.nan))),
                             key=lambda r: r[x])
                if not pts:
                    continue
                ax.plot([r[x] for r in pts], [r['psnr_y'] for r in pts], 'o-', color=colours[model], label=model,
                        markersize=5, linewidth=1)
                for r in pts:
                    if r['budget'] != '-':
                        ax.annotate(r['budget'], (r[x], r['psnr_y']), textcoords='offset points', xytext=(3, 3),
                                    fontsize=7)
                    paper = r.get('gflops', np.nan)
                    if x == 'gflops_real' and np.isfinite(paper) and abs(paper - r[x]) > 0.01 * r[x]:
                        ax.plot([paper], [r['psnr_y']], 'o', mfc='none', color=colours[model], markersize=6)
                        ax.plot([paper, r[x]], [r['psnr_y']] * 2, ':', color=colours[model], linewidth=0.8)
            front = sorted((drows[i] for i in pareto_front(drows, x)), key=lambda r: r[x])
            ax.plot([r[x] for r in front], [r['psnr_y'] for r in front], '-', color='black', linewidth=2,
                    alpha=0.35, label='Pareto front')
            if x == 'gflops_real':  # bicubic costs 0 multiply-adds: linear near 0, logarithmic above
                ax.set_xscale('symlog', linthresh=0.1)
            else:
                ax.set_xscale('log')
            ax.set_xlabel(xlabel + (' (hollow: paper convention)' if x == 'gflops_real' else ''))
            ax.set_ylabel('PSNR-Y (dB)')
            ax.set_title(f'{name}: PSNR-Y vs {"seconds" if x == "sec_median" else "real GFLOPs"}')
            ax.grid(True, which='both', alpha=0.3)
        axrow[0].legend(fontsize=7, loc='lower right')
    fig.suptitle(title)
    return save_figure(fig, path, dpi=100)


def main(args):
    """Run the comparison of ``args.compare`` and write ``args.json`` (+ ``.csv``, ``.png``)."""
    spec = load_spec(args.compare)
    scale = int(spec['scale'])
    threads = args.threads or spec.get('threads', 2)
    repeats = args.repeats if args.repeats > 1 else spec.get('repeats', 1)
    torch.set_num_threads(threads)
    get_root_logger(log_level=40)
    configs = configurations(spec)
    models = []
    scratch = tempfile.mkdtemp(prefix='adaptsr_compare_')
    for label, budget, model_args in configs:
        try:
            models.append(build_model(model_args, scale, threads, scratch))
        except (InferError, ValueError, FileNotFoundError) as err:  # e.g. an unrecognised checkpoint, named
            raise SystemExit(f'{args.compare}: models.{label} ({budget}): {err}') from err
    rows, details = [], {}
    memory = {}
    for name, dspec in spec['datasets'].items():
        if args.max_images:
            dspec = dict(dspec, max_images=args.max_images)
        try:
            pairs = load_pairs(dspec, scale)
        except (InferError, ValueError) as err:
            raise SystemExit(f'{args.compare}: datasets.{name}: {err}') from err
        print(f'{name}: {len(pairs)} images, {len(configs)} configurations, {threads} threads', flush=True)
        per_model = run_configs([(m, None) for m in models], pairs, 'cpu', repeats=repeats,
                                quality=pair_quality(scale))
        for (label, budget, model_args), per in zip(configs, per_model):
            row = dict(dataset=name, model=label, budget=budget, **summarise(per))
            row.setdefault('gflops', float('nan'))
            row.setdefault('gflops_real', float('nan'))
            if spec.get('memory', True):
                key = (label, budget)
                if key not in memory:  # on the largest LR image of the first dataset, in a fresh process
                    big = max(pairs, key=lambda p: p['lq'].numel())
                    scale_args = [] if '--scale' in model_args else ['--scale', str(scale)]
                    found, failure = run_infer([big['lr_path']], model_args + scale_args + ['--no-real-flops'],
                                               threads)
                    memory[key] = float(found[0]['peak_rss_mib']) if found else float('nan')
                    if failure:
                        print(f'  memory probe of {label} {budget} failed: {failure}', flush=True)
                row['peak_rss_mib'] = memory[key]
            details[f'{name}/{label}/{budget}'] = per
            rows.append(row)
            print(f"  {label:>16} {budget:>8}: PSNR-Y {row['psnr_y']:.4f} {row['gflops']:.2f} GFLOPs (real "
                  f"{row['gflops_real']:.2f}) {row['sec_median']:.4f} s", flush=True)
        drows = [r for r in rows if r['dataset'] == name]
        for x in ('sec_median', 'gflops_real'):
            on = set(pareto_front(drows, x))
            for i, r in enumerate(drows):
                r['front_' + ('seconds' if x == 'sec_median' else x)] = i in on
    shutil.rmtree(scratch, ignore_errors=True)
    stem = osp.splitext(args.json)[0]
    info = {'spec': osp.relpath(osp.abspath(args.compare), args.root), 'threads': threads, 'repeats': repeats,
            'torch': torch.__version__, 'cpu_bf16_units': list(cpu_bf16_units()),
            'configurations': [{'model': m, 'budget': b, 'args': a} for m, b, a in configs]}
    with atomic_write(args.json) as tmp, open(tmp, 'w') as f:
        json.dump({'info': info, 'rows': rows, 'per_image': details}, f, indent=2)
    write_table(rows, stem, formats=('csv', ))
    plot_compare(rows, stem + '.png', f'{osp.basename(args.compare)}: x{scale}, {threads} threads, one run')
    cols = ['dataset', 'model', 'budget', 'psnr_y', 'ssim_y', 'gflops', 'gflops_real', 'sec_median', 'peak_rss_mib',
            'front_seconds', 'front_gflops_real']
    print(format_table(rows, [c for c in cols if any(c in r for r in rows)]))
    for name in spec['datasets']:
        for key in ('front_seconds', 'front_gflops_real'):
            on = [f"{r['model']}{'' if r['budget'] == '-' else ' ' + r['budget']}" for r in rows
                  if r['dataset'] == name and r.get(key)]
            print(f'{name}: on the front ({key[6:]}): {", ".join(on)}')
    print(f'written: {args.json}, {stem}.csv, {stem}.png')
