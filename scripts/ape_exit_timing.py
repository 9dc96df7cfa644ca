"""Seconds against FLOPs of APE's early exits: each tile sent to an exit drawn from a given histogram, timed.

APE (Wang et al., "Adaptive Patch Exiting for Scalable Single Image Super-Resolution", ECCV 2022, section 3;
github.com/littlepure2333/APE) saves FLOPs by stopping tiles early; whether it saves seconds depends on how the work
that remains (the shared reconstruction on every tile, the batch split at each exit) runs. This script isolates that
from the regressor: for each exit histogram (e.g. a threshold's, read from a bench), every tile of every image gets an
exit drawn from it (seeded, the same draws for every path), a stand-in regressor sends it there, and the image runs
through ``forward_exit``'s code with APE's tiling (48/46, overlap averaging). Per histogram and path: FLOPs saved
against full depth (the exit FLOPs table, exact), seconds saved (median over ``--repeats`` of each image's time,
summed), and ``realized`` = seconds saved / FLOPs saved. Paths: ``batch`` (the official test: the tile batch in one
pass, default layout) and ``cpu`` (``forward_exit`` on the CPU: passes of ``cpu_chunk`` tiles in channels_last,
regrouped after each exit).
Interleaved image by image; the network's weights do not change its time (``--model`` optional, default a
freshly initialised EDSR-baseline x4 with an exit every 4 blocks).

    python scripts/ape_exit_timing.py --lr $ADAPTSR_BENCHMARK/Urban100/LR_bicubic/X4 \\
        --hr $ADAPTSR_BENCHMARK/Urban100/HR --max-images 10 --exits 0,0.8,0.16,0.04 0.74,0.25,0.01,0
"""
import argparse
import os.path as osp
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from adaptsr.bench.compare import add_pair_args, pairs_from_args  # noqa: E402
from adaptsr.core.checkpoints import recognise_checkpoint  # noqa: E402
from adaptsr.core.tiling import tiled_forward  # noqa: E402
from adaptsr.methods.ape.ape_arch import APEEDSR  # noqa: E402


class PlannedExits(nn.Module):
    """A regressor stand-in: :meth:`reset` gives each tile's exit (``plan``, (tiles,) long); ``forward_exit`` calls it
    at each exit on the tiles still running, in order (in one call or in passes), and it scores 1 for those whose exit
    this is, else 0."""

    def __init__(self):
        super().__init__()
        self.reset(torch.zeros(0, dtype=torch.long))

    def reset(self, plan):
        self.plan, self.exit_id, self.queue = plan, -1, plan[:0]

    def forward(self, feats):
        if not len(self.queue):  # the previous exit's tiles are all scored: the next exit, on the tiles reaching it
            self.exit_id += 1
            self.queue = self.plan[self.plan >= self.exit_id]
        mine, self.queue = self.queue[:feats.shape[0]], self.queue[feats.shape[0]:]
        return (mine == self.exit_id).float().view(-1, 1)


def run_image(net, lq, scale, plan_of, path, tile_batch):
    """One image through APE's tiling with every tile at its planned exit; ``path``: ``'batch'`` (each call's tiles
    in one pass, default layout: the official test) or ``'cpu'`` (``forward_exit`` as it runs on the CPU).

    Raises:
        RuntimeError: a tile left at another exit than planned.
    """
    state = {'call': 0}

    def fn(x):
        plan = plan_of(state['call'], x.shape[0])
        state['call'] += 1
        net.regressor.reset(plan)
        sr, ids = net.forward_exit(x, 0.5) if path == 'cpu' else net._forward_exit(x, 0.5)
        if not torch.equal(ids, plan):
            raise RuntimeError(f'tiles left at exits {ids.tolist()}, planned {plan.tolist()}')
        return sr

    with torch.no_grad():
        return tiled_forward(fn, lq, scale, 48, 2, tile_batch=tile_batch)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default=None, help='an APE checkpoint (default: a fresh EDSR-baseline x4)')
    add_pair_args(parser)
    parser.add_argument('--exits', nargs='+', required=True,
                        help='exit histograms, one per configuration: shares per exit, comma-separated')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--tile-batch', dest='tile_batch', type=int, default=500, help='tiles per call (APE: 500)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.model:
        net = recognise_checkpoint(args.model, args.scale).build().eval()
    else:
        torch.manual_seed(args.seed)
        net = APEEDSR(num_feat=64, num_block=16, res_scale=1.0, upscale=args.scale, exit_interval=4).eval()
    net.regressor = PlannedExits()
    n_exits = net.num_exits
    hists = {'full': np.eye(n_exits)[-1]}
    for text in args.exits:
        try:
            h = np.array([float(v) for v in text.split(',')])
        except ValueError:
            parser.error(f'--exits {text!r}: not comma-separated numbers')
        if len(h) != n_exits or (h < 0).any() or h.sum() <= 0:
            parser.error(f'--exits {text!r}: needs {n_exits} shares >= 0, not all 0')
        hists[text] = h / h.sum()
    pairs = pairs_from_args(args)
    rng = np.random.default_rng(args.seed)
    plans = {}  # (image, call) -> {config: exits}, drawn once so every path runs the same exits
    paths = ('batch', 'cpu')
    times = {(c, p): [] for c in hists for p in paths}
    flops = {c: 0.0 for c in hists}
    table = net.exit_flops_table(48, 48)
    print(f'{len(pairs)} images, {n_exits} exits, 48/46 tiles, {args.repeats} repeats, paths {paths}', flush=True)
    for i, item in enumerate(pairs):
        def plan_of(config, i=i):
            def get(call, n):
                key = (i, call)
                if key not in plans:
                    plans[key] = {c: torch.from_numpy(rng.choice(n_exits, size=n, p=h)).long()
                                  for c, h in hists.items()}
                return plans[key][config]
            return get

        per = {key: [] for key in times}
        for _ in range(args.repeats):
            for c in hists:
                for p in paths:
                    start = time.perf_counter()
                    run_image(net, item['lq'], args.scale, plan_of(c), p, args.tile_batch)
                    per[(c, p)].append(time.perf_counter() - start)
        for key, v in per.items():
            times[key].append(statistics.median(v))
    for plan in plans.values():  # FLOPs of the drawn exits (border tiles at 48x48: APE shifts them inside the image)
        for c in hists:
            flops[c] += sum(table[e] for e in plan[c].tolist())
    print(f'{"exit shares":>24} {"FLOPs saved":>11} ' + ' '.join(f'{p + " s/image":>15} {"saved":>6} {"realized":>8}'
                                                                 for p in paths))
    for c, h in hists.items():
        saved = 1 - flops[c] / flops['full']
        cells = []
        for p in paths:
            t, full = sum(times[(c, p)]), sum(times[('full', p)])
            t_saved = 1 - t / full
            cells.append(f'{t / len(pairs):15.3f} {t_saved:6.1%} '
                         f'{(t_saved / saved if saved > 0.01 else float("nan")):8.2f}')
        print(f'{"/".join(f"{v:.2f}" for v in h):>24} {saved:11.1%} ' + ' '.join(cells))
    print('speed-up of the cpu path over the batch path at full depth: '
          f'{sum(times[("full", "batch")]) / sum(times[("full", "cpu")]):.2f}x')


if __name__ == '__main__':
    main()
