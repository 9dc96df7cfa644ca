"""Benchmark an adaptive method against its full/original model, side by side, in one run.

    adaptsr-bench -opt options/test/pcsr_carn_x4.yml [--force_yml key:sub=value ...]
        [--budgets 0,1,adaptive] [--threads 2] [--datasets Urban100] [--max_images N] [--repeats K] --json out.json

For every dataset of the test YAML and every budget (default: ``val.budget_sweep``, else the YAML's knob) it
measures, on the same images and threads: the options' ``val.metrics``, computed as ``test.py`` computes them (the
shipped YAMLs: ``psnr_y``/``ssim_y`` on the Y channel and ``psnr_rgb``, crop_border = scale),
GFLOPs per image (spent, and the full model on the same input), seconds per image (each image's time is the fastest
of ``--repeats`` runs, after a warm-up forward; the median and the total over images are reported; the configurations
run interleaved, image by image, so that a drift of the machine's speed weighs on all alike) and peak memory
of one forward on the largest image (MiB above the level before it: the CUDA allocator peak, or on CPU the peak
resident set of a fresh process, which does not reuse memory of earlier runs).
The method's original model (``network_ref`` /
``path.pretrain_network_ref`` in the YAML) and any further models (``network_refs``: label -> network, pretrain,
model_type, val; a ``val.budget_sweep`` sweeps that model too, e.g. the official weights beside one's own) are
measured in the same run, and each row gives its speed-ups against the first of them:
``time_speedup = t_ref / t``, ``flops_speedup = F_ref / F``, and ``realized = (1 - t / t_ref) / (1 - F / F_ref)``, the
fraction of the FLOPs reduction that turned into time, with t the total seconds and F the total FLOPs over the same
images (so a few large images weigh in time as they do in FLOPs).
"""
import argparse
import json
import math
import os
import os.path as osp
import subprocess
import sys

import torch

from adaptsr.cli.errors import int_at_least
import adaptsr  # noqa: F401  (registrations)
from adaptsr.utils.benchmark import (cuda_peak_mib, fresh_process_env, fresh_process_peak_mib, load_test_options,
                                     model_quality, reference_options, summarise, timed_test)
from adaptsr.utils.report import format_table, matched_cost_difference, plot_tradeoff, write_table
from adaptsr.data.data_util import NamedErrorDataset, check_dataset_paths
from adaptsr.options import OptionError
from adaptsr.utils.atomic import atomic_write
from adaptsr.utils.outputs import OutputPlanError, check_plan



def parse_budget(text):
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        return text


def iter_images(dataset_opt, max_images=None):
    """Yield the dataset's first ``max_images`` items as batched tensors, one at a time."""
    from basicsr.data import build_dataset
    dataset = NamedErrorDataset(build_dataset(dataset_opt))
    n = len(dataset) if max_images is None else min(max_images, len(dataset))
    for i in range(n):
        d = dataset[i]
        yield {'lq': d['lq'].unsqueeze(0), 'gt': d['gt'].unsqueeze(0),
               'name': osp.splitext(osp.basename(d['lq_path']))[0]}


def load_images(dataset_opt, max_images=None):
    return list(iter_images(dataset_opt, max_images))


def largest(images):
    """The item with the largest LR image (``images`` may be a generator: one image is held at a time)."""
    return max(images, key=lambda it: it['lq'].numel())


def probe_memory(args, budget, reference):
    """Peak memory (MiB) of one ``test()`` on the largest image, in a fresh process (CPU)."""
    spec = json.dumps({'dataset': args.probe_dataset, 'budget': budget, 'reference': reference})
    cmd = [sys.executable, '-m', 'adaptsr.cli.bench', '-opt', args.opt, '--json', '-', '--probe_memory', spec,
           '--root', args.root]
    if args.force_yml:
        cmd += ['--force_yml'] + args.force_yml
    if args.max_images:
        cmd += ['--max_images', str(args.max_images)]
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    env = fresh_process_env()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f'memory probe {spec} failed:\n{proc.stderr[-2000:]}')
    return float(proc.stdout.strip().splitlines()[-1])


def add_speedups(row, base):
    """Speed-ups of ``row`` against ``base`` (the first reference): time, FLOPs, and the realised fraction."""
    row['time_speedup'] = base['sec_total'] / row['sec_total']
    if base['gflops'] > 0 and row['gflops'] > 0:
        row['flops_speedup'] = base['gflops'] / row['gflops']
        flops_cut = 1 - row['gflops'] / base['gflops']
        time_cut = 1 - row['sec_total'] / base['sec_total']
        row['realized'] = time_cut / flops_cut if flops_cut > 0 else float('nan')


def primary_metric(metrics_opt):
    """The metric a trade-off is drawn and compared with: the first PSNR on Y of ``val.metrics``, else the first PSNR,
    else the first metric (None without metrics)."""
    metrics_opt = metrics_opt or {}
    psnr = [n for n, m in metrics_opt.items() if 'psnr' in str(m.get('type', '')).lower()]
    on_y = [n for n in psnr if metrics_opt[n].get('test_y_channel')]
    return next(iter(on_y + psnr + list(metrics_opt)), None)


def report(row, metric_names):
    """One progress line: the row's ``val.metrics`` under their YAML names, GFLOPs and median seconds."""
    quality = ' '.join(f'{name} {row[name]:.4f}' for name in metric_names if name in row)
    print(f"{row['dataset']:>10} {row['config']:>24} {row['budget']:>10}: {quality} {row.get('gflops', math.nan):.2f} "
          f"GFLOPs {row['sec_median']:.3f} s", flush=True)


def check_budgets(model, budgets):
    """Set each budget on ``model`` and check it as the options parser checks the knob (``val_ranges``), before
    anything is measured; the model's own knob is restored.

    Raises:
        OptionError: a budget the model has no knob for, or that is not a number / out of the knob's range (named).
    """
    with model.kept_val_options():
        for budget in budgets:
            if budget is None:
                continue
            try:
                model.apply_budget(budget)
                model.check_val_ranges()
            except (ValueError, TypeError, NotImplementedError) as err:
                raise OptionError(f'--budgets {budget!r}: {err}') from None


def run_configs(configs, images, device, warmup=1, repeats=1, quality=None):
    """Per-image quality, cost and time of ``model.test()`` for every configuration, interleaved: each image runs
    through all configurations in turn, so a drift of the machine's speed during the run weighs on all of them alike.
    The timed runs do not count the real multiply-adds (``gflops_real``); an untimed run does, where the count is not
    known already (a plain network's is cached per input shape).

    Args:
        configs (list): ``(model, budget)`` pairs; ``budget`` (None: unchanged) is applied before each of its runs.
        repeats (int): each image is timed this many times per configuration, the fastest kept.
        quality (callable, optional): ``fn(model, item) -> dict`` of quality metrics; default the options'
            ``val.metrics`` (:func:`adaptsr.utils.benchmark.model_quality`).

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
            seconds = timed_test(model, device, repeats)
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


def memory_probe_main(args, opt):
    """``--probe_memory``: build one model, run one test() on the largest image, print its peak MiB."""
    from basicsr.models import build_model
    spec = json.loads(args.probe_memory)
    if spec['reference']:
        opt = dict(reference_options(opt))[spec['reference']]
    model = build_model(opt)
    if spec['budget'] is not None:
        model.apply_budget(spec['budget'])
    dopt = next(d for d in opt['datasets'].values() if d['name'] == spec['dataset'])
    big = largest(iter_images(dopt, args.max_images))
    model.feed_data({'lq': big['lq'], 'gt': big['gt']})
    print(fresh_process_peak_mib(model.test))


def main(argv=None, root=None):
    """``adaptsr-bench`` (see the module docstring); ``root``: where ``results/`` goes and relative option paths are
    reported from (default: the working directory; ``scripts/benchmark.py`` passes the checkout)."""
    parser = argparse.ArgumentParser(prog='adaptsr-bench', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', default=None, help='test options YAML')
    parser.add_argument('--sizes', default=None,
                        help='large-input mode: a spec YAML (e.g. options/bench/large_x4.yml; adaptsr.cli.bench_sizes)')
    parser.add_argument('--compare', default=None,
                        help='cross-method mode: a spec YAML (e.g. options/compare/x4.yml; adaptsr.cli.bench_compare)')
    parser.add_argument('--force_yml', nargs='+', default=[], help='override options: key:sub=value')
    parser.add_argument('--budgets', default=None, help='comma-separated knob values (e.g. 0,1,adaptive)')
    parser.add_argument('--base', choices=('reference', 'budget'), default='reference',
                        help="speed-ups of the budgets against the first reference model (default) or against the "
                             "method's own first budget (e.g. APE at threshold 1: same tiles, no exits)")
    parser.add_argument('--threads', type=int_at_least(1), default=None,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--datasets', default=None, help='comma-separated dataset names to run (default: all)')
    parser.add_argument('--max_images', type=int_at_least(1), default=None, help='first N images of each dataset')
    parser.add_argument('--no_reference', action='store_true', help='skip the reference models')
    parser.add_argument('--references', default=None,
                        help='comma-separated labels of the reference models to run (reference, network_refs labels)')
    parser.add_argument('--no_memory', action='store_true',
                        help='skip the peak-memory probe (on CPU a fresh process per configuration)')
    parser.add_argument('--repeats', type=int_at_least(1), default=1,
                        help='time each image K times and keep the fastest')
    parser.add_argument('--json', required=True, help='output JSON (a CSV and a PNG plot are written beside it)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing output files (refused otherwise)')
    parser.add_argument('--probe_memory', default=None, help=argparse.SUPPRESS)  # internal: fresh-process probe
    parser.add_argument('--root', default=None, help=argparse.SUPPRESS)  # internal: the probe's root
    args = parser.parse_args(argv)
    args.root = osp.abspath(args.root or root or os.getcwd())
    if sum(bool(a) for a in (args.opt, args.sizes, args.compare)) != 1:
        parser.error('give one of -opt <test options>, --sizes <large-input spec>, --compare <comparison spec>')

    if not args.probe_memory:  # before the run: a long bench must not end by replacing a user's results
        if not args.json.lower().endswith('.json'):
            parser.error(f'--json {args.json}: must name a .json file (the CSV and the PNG are written beside it)')
        stem = osp.splitext(args.json)[0]
        try:
            plan = [(args.json, 'results table'), (stem + '.csv', 'results table (CSV)')]
            plan += [(stem + '_tiling_psnr.csv', 'tiling PSNR table')] if args.sizes else \
                [(stem + '.png', 'trade-off plot')]
            check_plan(plan, [p for p in (args.opt, args.sizes, args.compare) if p], args.overwrite)
        except OutputPlanError as err:
            parser.error(str(err))
    from adaptsr.cli.errors import one_line_errors
    with one_line_errors('adaptsr-bench'):
        _run(args)


def _run(args):
    if args.sizes:
        from adaptsr.cli.bench_sizes import main as sizes_main
        sizes_main(args)
        return
    if args.compare:
        from adaptsr.cli.bench_compare import main as compare_main
        compare_main(args)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    from basicsr.models import build_model
    from basicsr.utils import get_root_logger

    opt = load_test_options(args.opt, args.root, args.force_yml)
    get_root_logger(log_level=40)  # the bench prints its own table; keep BasicSR's INFO lines out of it
    if args.probe_memory:
        memory_probe_main(args, opt)
        return
    budgets = ([parse_budget(b) for b in args.budgets.split(',')] if args.budgets else
               opt['val'].get('budget_sweep') or [None])
    model = build_model(opt)
    check_budgets(model, budgets)
    metric_names = list(model.val_opt.get('metrics') or {})
    y_key = primary_metric(model.val_opt.get('metrics'))
    ref_opts = reference_options(opt)
    if args.references:
        wanted_refs = args.references.split(',')
        unknown = sorted(set(wanted_refs) - {label for label, _ in ref_opts})
        if unknown:
            raise OptionError(f'--references {unknown}: not in {[label for label, _ in ref_opts]}')
        ref_opts = [(label, o) for label, o in ref_opts if label in wanted_refs]
    refs = [] if args.no_reference else [(label, build_model(o)) for label, o in ref_opts]
    device = model.device
    model_label = opt['network_g']['type']
    wanted = set(args.datasets.split(',')) if args.datasets else None
    names = [d['name'] for d in opt['datasets'].values()]
    if wanted and wanted - set(names):
        raise OptionError(f'--datasets {",".join(sorted(wanted - set(names)))}: not in {args.opt} (its datasets: '
                          f'{", ".join(names)})')

    rows, details = [], {}
    for _, dopt in sorted(opt['datasets'].items()):
        if wanted and dopt['name'] not in wanted:
            continue
        check_dataset_paths(dopt)
        images = load_images(dopt, args.max_images)
        args.probe_dataset = dopt['name']
        configs = [(label, ref_model, budget) for label, ref_model in refs
                   for budget in (ref_model.val_opt.get('budget_sweep') or [None])]
        configs += [(None, model, budget) for budget in budgets]
        per_config = run_configs([(m, b) for _, m, b in configs], images, device, repeats=args.repeats)
        base = None
        for (label, cfg_model, budget), per in zip(configs, per_config):
            row = summarise(per)
            if budget is not None:
                cfg_model.apply_budget(budget)
            if not args.no_memory:
                row['peak_mem_mib'] = peak_memory(cfg_model, images, device,
                                                  lambda b=budget, lb=label: probe_memory(args, b, lb))
            # a reference at its own options is '-' (a star in the plot); a budget point carries its label
            row.update(dataset=dopt['name'], config=label or model_label,
                       budget='-' if label is not None and budget is None else cfg_model.budget_label(),
                       network=cfg_model.opt['network_g']['type'])
            if label is not None:
                base = base or row
            elif args.base == 'budget' and budget is budgets[0]:
                base = row  # the method's first budget is the baseline of the others
            if base is not None:
                add_speedups(row, base)
            key = [dopt['name']] + ([label] if label is not None else [])
            details['/'.join(key + ([row['budget']] if row['budget'] != '-' else []))] = per
            rows.append(row)
            report(row, metric_names)

    info = {'options': osp.relpath(osp.abspath(args.opt), args.root), 'threads': torch.get_num_threads(),
            'device': str(device), 'torch': torch.__version__, 'force_yml': args.force_yml}
    with atomic_write(args.json) as tmp, open(tmp, 'w') as f:
        json.dump({'info': info, 'rows': rows, 'per_image': details}, f, indent=2)
    stem = osp.splitext(args.json)[0]
    write_table(rows, stem, formats=('csv', ))
    plot_tradeoff([r for r in rows if r['budget'] != '-'], stem + '.png', x='gflops', y=y_key, series='config',
                  refs=[dict(r, budget='original model' if r['config'] == 'reference' else r['config'])
                        for r in rows if r['budget'] == '-'],
                  title=f"{opt['name']}: {y_key} vs GFLOPs per image")
    stats = list(getattr(model, 'summary_stats', ()))
    cols = ['dataset', 'config', 'budget'] + metric_names + ['gflops', 'gflops_real', 'gflops_full'] + stats + \
        ['sec_median', 'peak_mem_mib', 'flops_speedup', 'time_speedup', 'realized']
    print(format_table(rows, cols))
    # the curves are compared on RGB PSNR where the YAML scores it (PCSR's papers report it), else on the plot's metric
    match_key = next((k for k in ('psnr_rgb', 'psnr_y', 'psnr') if k in metric_names), y_key)
    for dataset in dict.fromkeys(r['dataset'] for r in rows):
        mine = [r for r in rows if r['dataset'] == dataset and r['budget'] != '-' and r['config'] == model_label]
        for label in dict.fromkeys(r['config'] for r in rows if r['dataset'] == dataset and r['config'] != model_label
                                   and r['budget'] != '-'):
            theirs = [r for r in rows if r['dataset'] == dataset and r['config'] == label]
            matched = matched_cost_difference(mine, theirs, 'gflops', match_key)
            if matched:
                print(f'{dataset}: {model_label} against the {label} sweep at the same GFLOPs ({match_key}, linear '
                      'interpolation along its curve): ' +
                      ', '.join(f"{m['budget']} {m['diff']:+.4f} dB" for m in matched))
    print(f'written: {args.json}, {stem}.csv, {stem}.png ({info["threads"]} threads, {info["device"]})')


if __name__ == '__main__':
    main()
