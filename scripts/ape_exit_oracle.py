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

The same pass also records the regressor's score of every tile at every exit (the model's own regressor and those
of ``--regressors``: other checkpoints of the same network whose regressors were trained otherwise), and scores
each regressor's threshold rule (a tile leaves at the first exit whose score reaches the threshold, as
``APEBackbone.forward_exit``) on the same recorded tiles, beside the oracle at the same FLOPs: how far a regressor is
from the bound, without a bench run per threshold.

``--probe`` asks what a regressor could reach from the features it reads: the full-depth pass also records each
tile's body feature at each exit, pooled (mean, and mean with standard deviation, over the tile); on the even-numbered
images a ridge regression per feature set learns the log of the squared error a tile would add by leaving at each
exit (against full depth, per pixel); on the odd-numbered images each tile then leaves at the first exit whose
predicted added error is at most ``lam`` times the FLOPs it saves, and the images are scored exactly, beside the
oracle and the model's own regressor on the same held-out images. Beside the pooled features it tries the LR tile's
content (log variance, gradient and Laplacian energy of its Y, and its image's gradient energy: what a head could read
for free before the body runs), each exit with its own weights, and a target weighted as the oracle weighs a tile
(the added error over its image's full-depth error, so that the rule's multiplier is the oracle's). A probe, not a
trained model: it bounds how far a better regressor head on these inputs could move the threshold rule towards the
oracle.

    python scripts/ape_exit_oracle.py --model experiments/ape_ecbsr_m6c40_x4_291/models/net_g_latest.pth \\
        --lr $ADAPTSR_BENCHMARK/Urban100/LR_bicubic/X4 --hr $ADAPTSR_BENCHMARK/Urban100/HR --scale 4 \\
        --json bench_out/ape_oracle.json [--regressors other_regressor_run.pth ...]
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


def exit_forward(net, exit_of, regressors=(), scores=None, feats=None):
    """``fn(tiles)`` for :func:`tiled_forward`: each tile (call order) leaves at ``exit_of(call, row)``.

    ``scores`` (a list, with ``regressors``): receives, per call, a (regressors, exits, tiles) array of each
    regressor's score of each tile at each exit (exits the tile does not reach: NaN). ``feats`` (a list): receives,
    per call, an (exits, tiles, 2 C) array of each tile's body feature at each exit, its mean and its standard
    deviation over the tile (NaN where the tile does not reach the exit)."""
    state = {'call': 0}

    @torch.no_grad()
    def fn(x):
        exits = torch.tensor([exit_of(state['call'], i) for i in range(x.shape[0])])
        state['call'] += 1
        if x.device.type == 'cpu' and net.cpu_channels_last:  # forward_exit's CPU layout
            x = x.contiguous(memory_format=torch.channels_last)
        ctx, res = net.embed(x)
        out = None
        if scores is not None:
            scores.append(np.full((len(regressors), net.num_exits, x.shape[0]), np.nan))
        if feats is not None:
            feats.append(None)
        for i in range(net.num_units):
            res = net.unit(i)(res)
            if not net.is_exit(i):
                continue
            e = i // net.exit_interval
            if scores is not None:
                for r, regressor in enumerate(regressors):
                    scores[-1][r, e] = regressor(res).view(-1).float().numpy()
            if feats is not None:
                pooled = torch.cat([res.mean((2, 3)), res.std((2, 3))], 1).float().numpy()
                if feats[-1] is None:
                    feats[-1] = np.full((net.num_exits, ) + pooled.shape, np.nan)
                feats[-1][e] = pooled
            rows = (exits == e).nonzero().view(-1)
            if len(rows):
                sr = net.reconstruct_exit(ctx[rows], res[rows], e)
                out = sr.new_empty((x.shape[0], ) + sr.shape[1:]) if out is None else out
                out[rows] = sr
            if not bool((exits > e).any()):
                break
        return out
    return fn


def run(net, lq, scale, tile, overlap, batch, exit_of, record=None, regressors=(), scores=None, feats=None):
    """The image with each tile at ``exit_of(call, row)``; ``record`` (a list) receives each call's tile outputs,
    ``scores`` the regressors' scores, ``feats`` the pooled features (:func:`exit_forward`)."""
    boxes = []
    fn = exit_forward(net, exit_of, regressors, scores, feats)
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


def threshold_exit(scores, threshold):
    """APE's rule on recorded scores ((exits, tiles) of one regressor and call): each tile's first exit before the
    last whose score is >= ``threshold``, else the last (``APEBackbone.forward_exit``: ``threshold >= 1`` disables
    exiting, as float32 tanh can round to 1)."""
    n_exits = scores.shape[0]
    if threshold >= 1:
        return np.full(scores.shape[1], n_exits - 1)
    leave = scores[:-1] >= threshold
    return np.where(leave.any(0), leave.argmax(0), n_exits - 1)


def psnr_at(curve, saving):
    """PSNR of a (saving, psnr) curve at ``saving`` (linear interpolation; None outside its range)."""
    curve = sorted(curve)
    xs, ys = [c[0] for c in curve], [c[1] for c in curve]
    if not xs or saving < xs[0] - 1e-12 or saving > xs[-1] + 1e-12:
        return None
    return float(np.interp(saving, xs, ys))


def load_regressor(path, net, scale):
    """The regressor of checkpoint ``path``, after checking that its network is ``net`` apart from the regressor.

    Raises:
        SystemExit: ``path`` is not APE or its exits (any weight outside the regressor) differ from ``net``'s.
    """
    info = recognise_checkpoint(path, scale)
    if info.model_type != 'APEModel':
        sys.exit(f'--regressors {path}: an {info.arch} checkpoint, not APE')
    other = info.build().eval()
    mine, theirs = net.state_dict(), other.state_dict()
    differ = [k for k in mine if not k.startswith('regressor.') and (k not in theirs or not torch.equal(mine[k],
                                                                                                       theirs[k]))]
    if differ or set(theirs) != set(mine):
        sys.exit(f'--regressors {path}: not the same network as --model apart from the regressor '
                 f'(first differing weight: {(differ or sorted(set(theirs) ^ set(mine)))[0]})')
    return other.regressor


def lr_content(item, boxes):
    """Per call and tile box, the LR tile's content: log10 of the variance, the mean squared gradient and the mean
    squared Laplacian of its Y (in [0, 1]), and of its image's mean squared gradient (the image's difficulty, which
    sets its full-depth error). Returns a list (calls) of (tiles, 4) arrays."""
    y = y_of(item['lq']).double().numpy()
    gy, gx = np.gradient(y)
    grad = gx ** 2 + gy ** 2
    lap = (np.gradient(gx, axis=1) + np.gradient(gy, axis=0)) ** 2
    whole = np.log10(grad.mean() + 1e-10)
    out = []
    for call in boxes:
        out.append(np.array([[np.log10(y[t:b, lft:r].var() + 1e-10), np.log10(grad[t:b, lft:r].mean() + 1e-10),
                              np.log10(lap[t:b, lft:r].mean() + 1e-10), whole] for (t, lft, b, r) in call]))
    return out


def probe_rows(images, n_exits, feature, weighted=False):
    """The probe's samples: per tile of ``images`` and exit before the last, ``feature(im, call, row, e)`` (a 1-D
    array) with a one-hot of the exit, and the log10 of the squared error on Y the tile would add by leaving there
    (floored at 1e-10): per pixel of its box, or (``weighted``) over its box times its image's oracle weight (the
    error over the image's full-depth error). Returns ``(X, y, keys, areas)``, ``keys`` = (image, call, row, exit),
    ``areas`` the tile boxes' LR pixels."""
    xs, ys, keys, areas = [], [], [], []
    onehots = np.eye(n_exits - 1)
    for i, im in enumerate(images):
        for call, boxes in enumerate(im['boxes']):
            for row, (t, lft, b, r) in enumerate(boxes):
                area = (b - t) * (r - lft)
                for e in range(n_exits - 1):
                    xs.append(np.concatenate([feature(im, call, row, e), onehots[e]]))
                    added = max(im['err'][e][call][row] - im['err'][-1][call][row], 0.0)
                    ys.append(np.log10((added * im['weight'] if weighted else added / area) + 1e-10))
                    keys.append((i, call, row, e))
                    areas.append(area)
    return np.array(xs), np.array(ys), keys, np.array(areas)


def probe_features(width, n_exits):
    """The probe's feature sets: name -> (``feature(im, call, row, e)``, weighted target)."""
    onehots = np.eye(n_exits - 1)

    def pooled(dims):
        return lambda im, call, row, e: im['feats'][call][e, row, :dims]
    mean = pooled(width)

    def content(im, call, row, e):  # each exit its own weights: the content times the exit's one-hot
        return np.kron(onehots[e], im['lr_content'][call][row])

    def both(im, call, row, e):
        return np.concatenate([mean(im, call, row, e), content(im, call, row, e)])
    return {'mean': (mean, False), 'mean+std': (pooled(2 * width), False),
            'LR content': (content, False), 'LR content, weighted': (content, True),
            'mean + LR content, weighted': (both, True)}


def fit_ridge(x, y, alpha=1.0):
    """Ridge regression ``y ~ x`` (standardised columns, an unpenalised intercept); returns ``predict(x)``."""
    mu, sd = x.mean(0), x.std(0) + 1e-8
    z = np.hstack([(x - mu) / sd, np.ones((len(x), 1))])
    penalty = alpha * np.diag([1.0] * x.shape[1] + [0.0])
    w = np.linalg.solve(z.T @ z + penalty, z.T @ y)
    return lambda x_: np.hstack([(x_ - mu) / sd, np.ones((len(x_), 1))]) @ w


def y_of(img):
    return rgb2ycbcr_pt(img.clamp(0, 1), y_only=True)[0, 0]  # (H, W), BasicSR's Y (the offset cancels in errors)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', required=True, help='an APE checkpoint (adaptsr or official)')
    add_pair_args(parser)
    parser.add_argument('--tile', type=int, default=48, help='LR tile side (APE: 48)')
    parser.add_argument('--overlap', type=int, default=2)
    parser.add_argument('--tile-batch', dest='tile_batch', type=int, default=8,
                        help="tiles per call (the images and exits do not depend on it; forward_exit's CPU pass: 8)")
    parser.add_argument('--max-drop', dest='max_drop', type=float, default=0.15,
                        help='PSNR-Y budget below full depth (dB) for the headline saving')
    parser.add_argument('--regressors', nargs='*', default=[],
                        help="checkpoints of the same network with other regressors: their threshold rules are scored "
                        "beside the model's own")
    parser.add_argument('--thresholds', type=float, nargs='*',
                        default=[0.999, 0.995, 0.99, 0.98, 0.96, 0.93, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
                        help='thresholds of the regressor rules (with nine quantiles of their scores)')
    parser.add_argument('--probe', action='store_true',
                        help='fit a regressor on the pooled exit features of the even-numbered images and score its '
                        'cost-aware exit rule on the odd-numbered ones, beside the oracle and the own regressor')
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
    regressors = {'own': net.regressor}
    regressors.update({path: load_regressor(path, net, args.scale) for path in args.regressors})
    pairs = pairs_from_args(args)
    if args.probe and len(pairs) < 2:
        parser.error(f'--probe fits on half of the images and scores the other half: {len(pairs)} image(s) given')
    print(f'{len(pairs)} images, {n_exits} exits, {args.tile}-pixel tiles (overlap {args.overlap})', flush=True)

    # every tile at every exit: per-tile squared error on Y (in its box, crop_border excluded) and FLOPs
    images = []
    c = args.scale
    for item in pairs:
        hr_y = y_of(item['gt'])
        err, boxes, tiles, scores, feats = [], None, [], [], []
        for e in range(n_exits):
            tiles.append([])
            last = e == n_exits - 1  # the full-depth pass reaches every exit: the regressors score it
            sr, boxes = run(net, item['lq'], args.scale, args.tile, args.overlap, args.tile_batch,
                            lambda call, row, e=e: e, record=tiles[-1], regressors=list(regressors.values()),
                            scores=scores if last else None, feats=feats if last and args.probe else None)
            sq = (y_of(sr) - hr_y) ** 2
            sq[:c], sq[-c:], sq[:, :c], sq[:, -c:] = 0, 0, 0, 0
            err.append([[float(sq[t * c:b * c, lft * c:r * c].sum()) for (t, lft, b, r) in call] for call in boxes])
        flops = [[net.exit_flops_table(b - t, r - lft) for (t, lft, b, r) in call] for call in boxes]
        full_mse = sum(sum(row) for row in err[-1]) / hr_y[c:-c, c:-c].numel()
        images.append({'item': item, 'err': err, 'flops': flops, 'boxes': boxes, 'tiles': tiles, 'scores': scores,
                       'feats': feats,
                       'full_psnr_y': psnr_y(sr.clamp(0, 1), item['gt'], args.scale),
                       'weight': 1.0 / (max(full_mse, 1e-12) * hr_y[c:-c, c:-c].numel())})

    def oracle_exit(lam):
        def pick(im, call, row):
            return int(np.argmin([im['weight'] * im['err'][e][call][row] + lam * im['flops'][call][row][e]
                                  for e in range(n_exits)]))
        return pick

    def rule_exit(r, threshold):
        def pick(im, call, row):
            return int(threshold_exit(im['scores'][call][r], threshold)[row])
        return pick

    def evaluate(lam, pick=None, ims=None):
        pick = pick or oracle_exit(lam)
        ims = images if ims is None else ims
        psnr, flops, full, hist = [], 0.0, 0.0, np.zeros(n_exits, dtype=np.int64)
        for im in ims:
            choice = {}
            for call, boxes in enumerate(im['boxes']):
                for row in range(len(boxes)):
                    e = pick(im, call, row)
                    choice[(call, row)] = e
                    hist[e] += 1
                    flops += im['flops'][call][row][e]
                    full += im['flops'][call][row][-1]
            sr = compose(im['item']['lq'], args.scale, args.tile, args.overlap, args.tile_batch, im['tiles'],
                         lambda call, row: choice[(call, row)])
            psnr.append(psnr_y(sr.clamp(0, 1), im['item']['gt'], args.scale))
        return {'lam': lam, 'psnr_y': float(np.mean(psnr)), 'gflops': flops / len(ims) / 1e9,
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

    # the regressors' threshold rules on the same tiles, against the oracle at the same FLOPs saving
    curve = [(p['saving'], p['psnr_y']) for p in points]
    rules = {}

    def thresholds(r):
        pooled = np.concatenate([call[r, :-1].ravel() for im in images for call in im['scores']])
        quantiles = np.quantile(pooled, np.linspace(0.1, 0.9, 9)).tolist() if pooled.size else []
        return sorted(set(args.thresholds) | {round(q, 6) for q in quantiles}, reverse=True)

    def within(rows, full):
        ok = [p for p in rows if p['psnr_y'] >= full - args.max_drop]
        return max(ok, key=lambda p: p['saving']) if ok else None

    for r, name in enumerate(regressors):
        rows = []
        for t in thresholds(r):
            p = evaluate(None, rule_exit(r, t))
            p.update(threshold=t, oracle_psnr_y=psnr_at(curve, p['saving']))
            p.pop('lam')
            rows.append(p)
        rules[name] = rows
        print(f'\nregressor {name}: threshold rule against the oracle at the same FLOPs saving')
        print(f'{"threshold":>9} {"PSNR-Y":>8} {"vs full":>8} {"saved":>6} {"oracle":>8} {"gap":>7}  exit shares')
        for p in rows:
            gap = '' if p['oracle_psnr_y'] is None else f'{p["psnr_y"] - p["oracle_psnr_y"]:+7.3f}'
            oracle_p = '' if p['oracle_psnr_y'] is None else f'{p["oracle_psnr_y"] - base:+8.3f}'
            print(f'{p["threshold"]:9.4f} {p["psnr_y"]:8.4f} {p["psnr_y"] - base:+8.3f} {p["saving"]:6.1%} '
                  f'{oracle_p:>8} {gap:>7}  {" ".join(f"{v:.2f}" for v in p["exit_share"])}')
        top = within(rows, base)
        print(f'regressor {name}: ' + (f'at most {top["saving"]:.1%} saved within {args.max_drop} dB (threshold '
                                       f'{top["threshold"]:.4f}, {top["psnr_y"] - base:+.3f} dB)' if top else
                                       f'no threshold within {args.max_drop} dB'))
    probe = None
    if args.probe:  # a ridge regression on the pooled features, fitted on the even images, scored on the odd ones
        fit, held = images[0::2], images[1::2]
        held_base = float(np.mean([im['full_psnr_y'] for im in held]))
        probe = {'fit_images': len(fit), 'held_images': len(held), 'held_full_psnr_y': held_base,
                 'oracle': [evaluate(lam, ims=held) for lam in sorted(set(lams))],
                 'own': [dict(evaluate(None, rule_exit(0, t), held), threshold=t) for t in thresholds(0)]}
        for im in images:
            im['lr_content'] = lr_content(im['item'], im['boxes'])
        width = images[0]['feats'][0].shape[-1] // 2
        print(f'\nprobe: regressors fitted on {len(fit)} images, scored on the other {len(held)} (full depth '
              f'{held_base:.4f})')
        summary = [('oracle', probe['oracle'], ''), ('own regressor', probe['own'], '')]
        for name, (feature, weighted) in probe_features(width, n_exits).items():
            x_fit, y_fit = probe_rows(fit, n_exits, feature, weighted)[:2]
            x, y, keys, areas = probe_rows(held, n_exits, feature, weighted)
            # within the targets seen in fitting: a feature outside its fitted range must not extrapolate to an added
            # error of 0 or inf (10 ** v), which would send a tile out at lam = 0 or never
            pred = np.clip(fit_ridge(x_fit, y_fit)(x), y_fit.min(), y_fit.max())
            r2 = float(1 - np.mean((pred - y) ** 2) / np.var(y))
            # (image, call, row) -> per exit, the predicted added error (over the box; weighted) / the FLOPs saved
            ratio = {}
            for (i, call, row, e), v, area in zip(keys, pred, areas):
                fl = held[i]['flops'][call][row]
                added = 10 ** v if weighted else 10 ** v * area
                ratio.setdefault((i, call, row), np.zeros(n_exits - 1))[e] = added / (fl[-1] - fl[e])
            slot = {id(im): i for i, im in enumerate(held)}  # evaluate() hands the pick an image, not its index

            def probe_exit(lam):
                def pick(im, call, row):
                    leave = np.nonzero(ratio[(slot[id(im)], call, row)] <= lam)[0]
                    return int(leave[0]) if len(leave) else n_exits - 1
                return pick
            probe_lams = [0.0] + np.quantile(np.concatenate(list(ratio.values())), np.linspace(0.02, 1, 25)).tolist()
            rows = [evaluate(lam, probe_exit(lam), held) for lam in probe_lams]
            probe[name] = {'r2': r2, 'points': rows}
            summary.append((f'ridge on {name}', rows, f' (held-out R2 of log added error {r2:.2f})'))
        for name, rows, extra in summary:
            top = within(rows, held_base)
            print(f'probe {name}: ' + (f'at most {top["saving"]:.1%} saved within {args.max_drop} dB '
                                       f'({top["psnr_y"] - held_base:+.3f} dB; exits '
                                       f'{"/".join(f"{v:.2f}" for v in top["exit_share"])})' if top else
                                       f'nothing within {args.max_drop} dB') + extra)
    if args.json:
        from adaptsr.utils.atomic import atomic_write
        with atomic_write(args.json) as tmp, open(tmp, 'w') as f:
            json.dump({'model': args.model, 'images': len(images), 'full_psnr_y': base, 'points': points, 'best': best,
                       'regressors': rules, 'probe': probe}, f, indent=1)


if __name__ == '__main__':
    main()
