"""The options-file protocol of ``adaptsr-bench -opt``: a test YAML's model at each budget, beside its reference
models, on the YAML's datasets (see :mod:`adaptsr.cli.bench` for what is measured and reported)."""
import json
import math
import os.path as osp
import subprocess
import sys
from copy import deepcopy

import torch
from basicsr.data import build_dataset
from basicsr.utils.registry import MODEL_REGISTRY

from adaptsr.api import build_model
from adaptsr.bench.measure import (add_speedups, fresh_process_env, fresh_process_peak_mib, largest, peak_memory,
                                   run_configs, summarise)
from adaptsr.core.data_util import NamedErrorDataset, check_dataset_paths
from adaptsr.core.declarations import declared
from adaptsr.core.options import OptionError, load_test_options, locate
from adaptsr.core.precision import cpu_bf16_units
from adaptsr.utils.atomic import atomic_write
from adaptsr.utils.report import format_table, matched_cost_difference, plot_tradeoff, write_table


def parse_budget(text):
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        return text


def iter_images(dataset_opt, max_images=None):
    """Yield the dataset's first ``max_images`` items by file name (or LMDB key) as batched tensors, one at a time.

    BasicSR lists a folder in the file system's order, which differs between machines: sorted, the first N images
    are the same everywhere (and the same as ``adaptsr-bench --compare``'s and ``adaptsr-infer``'s)."""
    dataset = NamedErrorDataset(build_dataset(dataset_opt))
    order = list(range(len(dataset)))
    paths = getattr(dataset, 'paths', None)  # BasicSR's paired datasets: [{'lq_path': ..., 'gt_path': ...}, ...]
    if isinstance(paths, list) and paths and isinstance(paths[0], dict) and 'lq_path' in paths[0]:
        order.sort(key=lambda i: paths[i]['lq_path'])
    for i in order[:max_images]:
        d = dataset[i]
        yield {'lq': d['lq'].unsqueeze(0), 'gt': d['gt'].unsqueeze(0),
               'name': osp.splitext(osp.basename(d['lq_path']))[0]}


def load_images(dataset_opt, max_images=None):
    return list(iter_images(dataset_opt, max_images))


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
        pretrain = locate(f'network_refs.{label}.pretrain', pretrain)
        unknown = sorted(set(entry) - {'network', 'pretrain', 'model_type', 'val', 'allow_random_weights'})
        if unknown:
            raise ValueError(f'network_refs.{label}: unknown key(s) {unknown}; known: network, pretrain, model_type, '
                             'val, allow_random_weights')
        refs.append((label, _reference(opt, entry['network'], pretrain, entry.get('model_type', 'AdaptiveSRModel'),
                                       entry.get('val'), bool(entry.get('allow_random_weights')))))
    return refs


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


def memory_probe_main(args, opt):
    """``--probe_memory``: build one model, run one test() on the largest image, print its peak MiB."""
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


def run(args):
    """Measure the model of ``args.opt`` against its references on its datasets and write the tables and the plot
    (the options-file protocol of ``adaptsr-bench``; see :mod:`adaptsr.cli.bench` for the figures).

    Raises:
        OptionError: an unknown ``--datasets`` / ``--references`` name or a bad ``--budgets`` value (named).
    """
    if args.threads:
        torch.set_num_threads(args.threads)

    opt = load_test_options(args.opt, args.root, args.force_yml)
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
        per_config = run_configs([(m, b) for _, m, b in configs], images, device, repeats=args.repeats,
                                 count_real=args.real_flops)
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
            'device': str(device), 'torch': torch.__version__, 'cpu_bf16_units': list(cpu_bf16_units()),
            'force_yml': args.force_yml}
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
