"""Benchmark an adaptive method against its full/original model, side by side, in one run.

    adaptsr-bench -opt pcsr_carn_x4 [--force-yml key:sub=value ...] [--budgets 0,1,adaptive] [--threads 2]
        [--datasets Urban100] [--max-images N] [--repeats K] -o out.json

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
import os
import os.path as osp

from adaptsr.cli.errors import one_line_errors
from adaptsr.core.outputs import OutputPlanError, check_plan
from adaptsr.utils.argtypes import CLIParser, int_at_least


def main(argv=None, root=None):
    """``adaptsr-bench`` (see the module docstring); ``root``: where ``results/`` goes and relative option paths are
    reported from (default: the working directory; ``scripts/benchmark.py`` passes the checkout)."""
    parser = CLIParser(prog='adaptsr-bench', description=__doc__)
    parser.add_argument('-opt', default=None, help='test options YAML: a path, or the name of a shipped one '
                        '(e.g. pcsr_carn_x4)')
    parser.add_argument('--sizes', default=None,
                        help='large-input mode: a spec YAML (e.g. options/bench/large_x4.yml; adaptsr.bench.sizes)')
    parser.add_argument('--compare', default=None,
                        help='cross-method mode: a spec YAML (e.g. options/compare/x4.yml; adaptsr.bench.compare)')
    parser.add_argument('--force-yml', nargs='+', default=[], help='override options: key:sub=value')
    parser.add_argument('--budgets', default=None, help='comma-separated knob values (e.g. 0,1,adaptive)')
    parser.add_argument('--base', choices=('reference', 'budget'), default='reference',
                        help="speed-ups of the budgets against the first reference model (default) or against the "
                             "method's own first budget (e.g. an early-exit method at the threshold that never exits: "
                             "the same tiles)")
    parser.add_argument('--threads', type=int_at_least(1), default=None,
                        help='torch CPU threads (default: torch default)')
    parser.add_argument('--datasets', default=None, help='comma-separated dataset names to run (default: all)')
    parser.add_argument('--max-images', type=int_at_least(1), default=None,
                        help='first N images of each dataset, by file name')
    parser.add_argument('--no-reference', action='store_true', help='skip the reference models')
    parser.add_argument('--references', default=None,
                        help='comma-separated labels of the reference models to run (reference, network_refs labels)')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the peak-memory probe (on CPU a fresh process per configuration)')
    parser.add_argument('--repeats', type=int_at_least(1), default=1,
                        help='time each image K times and keep the fastest')
    parser.add_argument('--no-real-flops', dest='real_flops', action='store_false',
                        help='skip gflops_real (the multiply-adds that actually ran, x 2), which an adaptive model '
                             'counts in a second, untimed run of each image (the paper-convention gflops stay)')
    parser.add_argument('-o', '--output', '--json', dest='json', required=True,
                        help='output JSON (a CSV and a PNG plot are written beside it)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing output files (refused otherwise)')
    parser.add_argument('--probe-memory', default=None, help=argparse.SUPPRESS)  # internal: fresh-process probe
    parser.add_argument('--root', default=None, help=argparse.SUPPRESS)  # internal: the probe's root
    args = parser.parse_args(argv)
    args.root = osp.abspath(args.root or root or os.getcwd())
    if sum(bool(a) for a in (args.opt, args.sizes, args.compare)) != 1:
        parser.error('give one of -opt <test options>, --sizes <large-input spec>, --compare <comparison spec>')
    from adaptsr.bench import compare, options_file, sizes  # after parsing: --help imports no torch
    from adaptsr.core.options import find_options

    try:  # a shipped file by name: -opt pcsr_carn_x4, --compare x4, --sizes large_x4
        for attr, kind in (('opt', 'test'), ('compare', 'compare'), ('sizes', 'bench')):
            if getattr(args, attr):
                setattr(args, attr, find_options(getattr(args, attr), kind))
    except FileNotFoundError as err:
        parser.error(str(err))
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
    with one_line_errors('adaptsr-bench'):
        if args.sizes:
            sizes.main(args)
        elif args.compare:
            compare.main(args)
        else:
            options_file.run(args)


if __name__ == '__main__':
    main()
