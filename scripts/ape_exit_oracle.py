"""What any exit decision could save: the oracle bound of an APE network's exits on a benchmark set.

APE (Wang et al., "Adaptive Patch Exiting for Scalable Single Image Super-Resolution", ECCV 2022, section 3;
github.com/littlepure2333/APE) sends each LR tile out at one of its exits; its IC regressor guesses where. This script
asks what the best possible guess would give: it runs every tile of every image at every exit (APE's own tiling,
overlap averaging), measures each tile's squared error at each exit against the HR, and, for a sweep of the
Lagrange multiplier ``lam``, lets every tile take the exit that minimises ``error weight + lam * FLOPs``. The error
weight of a tile is its squared error on Y divided by its image's full-depth MSE and pixel count (a change in the
mean PSNR-Y over the set, to first order). Each point's images are then rebuilt with those exits (from the tile
outputs the first pass recorded, merged by the same overlap averaging: what a run with those exits gives) and scored
exactly (PSNR-Y, crop_border = scale), so the figures are real outputs, not the linearisation.

The result bounds every exit policy that decides per tile (the regressor included) with these exits: if the oracle
cannot save a FLOPs fraction within a PSNR budget, no threshold can.

    python scripts/ape_exit_oracle.py --model experiments/ape_ecbsr_m6c40_x4_291/models/net_g_latest.pth \\
        --lr $ADAPTSR_BENCHMARK/Urban100/LR_bicubic/X4 --hr $ADAPTSR_BENCHMARK/Urban100/HR --scale 4 \\
        --json bench_out/ape_oracle.json
"""
import argparse
import json
import os.path as osp
import sys

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import adaptsr  # noqa: E402,F401  (registrations)
from adaptsr.bench.compare import add_pair_args, pairs_from_args  # noqa: E402
from adaptsr.bench.measure import psnr_y  # noqa: E402
from adaptsr.core.checkpoints import recognise_checkpoint  # noqa: E402
from adaptsr.core.tiling import tiled_forward  # noqa: E402
from basicsr.utils.color_util import rgb2ycbcr_pt  # noqa: E402


def exit_forward(net, exit_of):
    """``fn(tiles)`` for :func:`tiled_forward`: each tile (call order) leaves at ``exit_of(call, row)``."""
    state = {'call': 0}

    @torch.no_grad()
    def fn(x):
        exits = torch.tensor([exit_of(state['call'], i) for i in range(x.shape[0])])
        state['call'] += 1
        ctx, res = net.embed(x)
        out = None
        for i in range(net.num_units):
            res = net.unit(i)(res)
            if not net.is_exit(i):
                continue
            e = i // net.exit_interval
            rows = (exits == e).nonzero().view(-1)
            if len(rows):
                sr = net.reconstruct_exit(ctx[rows], res[rows], e)
                out = sr.new_empty((x.shape[0], ) + sr.shape[1:]) if out is None else out
                out[rows] = sr
            if not bool((exits > e).any()):
                break
        return out
    return fn


def run(net, lq, scale, tile, overlap, batch, exit_of, record=None):
    """The image with each tile at ``exit_of(call, row)``; ``record`` (a list) receives each call's tile outputs."""
    boxes = []
    fn = exit_forward(net, exit_of)
    if record is not None:
        inner = fn

        def fn(x):
            out = inner(x)
            record.append(out)
            return out
    sr = tiled_forward(fn, lq, scale, tile, overlap, tile_batch=batch, boxes_out=boxes)
    return sr, boxes


def compose(lq, scale, tile, overlap, batch, tiles, exit_of):
    """The image :func:`run` would give, from the recorded tile outputs ``tiles[exit][call]`` (no network: the same
    tiling and overlap averaging)."""
    state = {'call': 0}

    def fn(x):
        call = state['call']
        state['call'] += 1
        return torch.stack([tiles[exit_of(call, row)][call][row] for row in range(x.shape[0])])
    return tiled_forward(fn, lq, scale, tile, overlap, tile_batch=batch)


def y_of(img):
    return rgb2ycbcr_pt(img.clamp(0, 1), y_only=True)[0, 0]  # (H, W), BasicSR's Y (the offset cancels in errors)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', required=True, help='an APE checkpoint (adaptsr or official)')
    add_pair_args(parser)
    parser.add_argument('--tile', type=int, default=48, help='LR tile side (APE: 48)')
    parser.add_argument('--overlap', type=int, default=2)
    parser.add_argument('--tile-batch', dest='tile_batch', type=int, default=500)
    parser.add_argument('--max-drop', dest='max_drop', type=float, default=0.15,
                        help='PSNR-Y budget below full depth (dB) for the headline saving')
    parser.add_argument('--json', default=None, help='write every sweep point here')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --json')
    args = parser.parse_args(argv)
    if args.json:  # checked before the sweep, not after it
        from adaptsr.core.outputs import OutputPlanError, check_plan
        try:
            check_plan([(args.json, 'oracle sweep')], [args.model], args.overwrite)
        except OutputPlanError as err:
            parser.error(str(err))
    info = recognise_checkpoint(args.model, args.scale)
    if info.model_type != 'APEModel':
        sys.exit(f'{args.model}: an {info.arch} checkpoint, not APE')
    net = info.build().eval()
    n_exits = net.num_exits
    pairs = pairs_from_args(args)
    print(f'{len(pairs)} images, {n_exits} exits, {args.tile}-pixel tiles (overlap {args.overlap})', flush=True)

    # every tile at every exit: per-tile squared error on Y (in its box, crop_border excluded) and FLOPs
    images = []
    c = args.scale
    for item in pairs:
        hr_y = y_of(item['gt'])
        err, boxes, tiles = [], None, []
        for e in range(n_exits):
            tiles.append([])
            sr, boxes = run(net, item['lq'], args.scale, args.tile, args.overlap, args.tile_batch,
                            lambda call, row, e=e: e, record=tiles[-1])
            sq = (y_of(sr) - hr_y) ** 2
            sq[:c], sq[-c:], sq[:, :c], sq[:, -c:] = 0, 0, 0, 0
            err.append([[float(sq[t * c:b * c, lft * c:r * c].sum()) for (t, lft, b, r) in call] for call in boxes])
        flops = [[net.exit_flops_table(b - t, r - lft) for (t, lft, b, r) in call] for call in boxes]
        full_mse = sum(sum(row) for row in err[-1]) / hr_y[c:-c, c:-c].numel()
        images.append({'item': item, 'err': err, 'flops': flops, 'boxes': boxes, 'tiles': tiles,
                       'full_psnr_y': psnr_y(sr.clamp(0, 1), item['gt'], args.scale),
                       'weight': 1.0 / (max(full_mse, 1e-12) * hr_y[c:-c, c:-c].numel())})

    def evaluate(lam):
        psnr, flops, full, hist = [], 0.0, 0.0, np.zeros(n_exits, dtype=np.int64)
        for im in images:
            choice = {}
            for call, boxes in enumerate(im['boxes']):
                for row in range(len(boxes)):
                    cost = [im['weight'] * im['err'][e][call][row] + lam * im['flops'][call][row][e]
                            for e in range(n_exits)]
                    e = int(np.argmin(cost))
                    choice[(call, row)] = e
                    hist[e] += 1
                    flops += im['flops'][call][row][e]
                    full += im['flops'][call][row][-1]
            sr = compose(im['item']['lq'], args.scale, args.tile, args.overlap, args.tile_batch, im['tiles'],
                         lambda call, row: choice[(call, row)])
            psnr.append(psnr_y(sr.clamp(0, 1), im['item']['gt'], args.scale))
        return {'lam': lam, 'psnr_y': float(np.mean(psnr)), 'gflops': flops / len(images) / 1e9,
                'saving': 1 - flops / full, 'exit_share': (hist / hist.sum()).tolist()}

    base = float(np.mean([im['full_psnr_y'] for im in images]))  # every tile at the last exit
    print(f'full depth: PSNR-Y {base:.4f}', flush=True)
    # the multipliers where a tile trades one exit for a cheaper one: the sweep runs through their quantiles, from
    # each tile at its most accurate exit (0) to every tile at exit 0 (above the largest)
    to_last, largest = [], 0.0
    for im in images:
        for call, boxes in enumerate(im['boxes']):
            for row in range(len(boxes)):
                se = [im['weight'] * im['err'][e][call][row] for e in range(n_exits)]
                fl = im['flops'][call][row]
                pairs_ = [(se[a] - se[b]) / (fl[b] - fl[a]) for a in range(n_exits) for b in range(a + 1, n_exits)]
                largest = max([largest] + pairs_)
                to_last += [v for v in ((se[a] - se[-1]) / (fl[-1] - fl[a]) for a in range(n_exits - 1)) if v > 0]
    lams = [0.0] + [float(v) for v in np.quantile(to_last, np.linspace(0.02, 1, 25))] + [largest * 1.01 + 1e-30]
    points = [evaluate(lam) for lam in sorted(set(lams))]
    print(f'{"lam":>10} {"PSNR-Y":>8} {"vs full":>8} {"GFLOPs":>7} {"saved":>6}  exit shares')
    for p in points:
        shares = ' '.join(f'{s:.2f}' for s in p['exit_share'])
        print(f'{p["lam"]:10.3g} {p["psnr_y"]:8.4f} {p["psnr_y"] - base:+8.3f} {p["gflops"]:7.2f} '
              f'{p["saving"]:6.1%}  {shares}')
    ok = [p for p in points if p['psnr_y'] >= base - args.max_drop]
    best = max(ok, key=lambda p: p['saving'])
    print(f'oracle: at most {best["saving"]:.1%} of the FLOPs saved within {args.max_drop} dB of full depth '
          f'({best["psnr_y"] - base:+.3f} dB; largest exit share {max(best["exit_share"]):.0%})')
    if args.json:
        from adaptsr.utils.atomic import atomic_write
        with atomic_write(args.json) as tmp, open(tmp, 'w') as f:
            json.dump({'model': args.model, 'images': len(images), 'full_psnr_y': base, 'points': points, 'best': best},
                  f, indent=1)


if __name__ == '__main__':
    main()
