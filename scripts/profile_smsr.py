"""Where SMSR's inference time goes on this machine: per sparse mask module, the sparse path through the compiled
kernel (``adaptsr.methods.smsr.sparse_conv``) and through torch's row gathers + GEMMs, the dense-split path (two
convolutions per layer, masked) and the network without masks, against the module's spatial mask density; then
torch.profiler's per-operator totals of whole forwards (the kernel's calls as ``adaptsr::sparse_conv``). With
``--bf16``, also the kernel's bfloat16 path (AVX512-BF16 dot products) and the dense paths under bf16 autocast, on the
same inputs and masks: the bf16 kernel against the float32 kernel and against dense bf16, and its crossover density.

    python scripts/profile_smsr.py --threads 2 --images ${ADAPTSR_BENCHMARK}/B100/LR_bicubic/X2/3096x2.png ...
        [--weights ${ADAPTSR_WEIGHTS}/SMSR/SMSR_x2_model_1000.pt] [--bf16] [--json bench_out/smsr_profile.json]

The per-module figures are what ``SMSRNet(sparse_max_density=...)`` trades: above the density where the sparse
path stops beating the dense-split one, a module is better computed densely (exactly, with the same masks). The
last lines give that crossover for each sparse path, and the kernel's build (or cache load) time.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

import adaptsr  # noqa: E402,F401
from adaptsr.core.checkpoint_io import load_checkpoint  # noqa: E402
from adaptsr.core.checkpoints import checkpoint_state_dict  # noqa: E402
from adaptsr.methods.smsr.smsr_arch import SMSRNet  # noqa: E402
from adaptsr.methods.smsr.sparse_conv import PixelSet, kernel_build_seconds, kernel_has_bf16, load_kernel  # noqa: E402
from adaptsr.utils.atomic import atomic_write  # noqa: E402


def read(path):
    """The LR image cropped to even height and width (SMSR's test protocol)."""
    from adaptsr.core.data_util import read_image
    x = read_image(path, '--image')
    return x[..., :x.shape[2] // 2 * 2, :x.shape[3] // 2 * 2]


@torch.no_grad()
def module_rows(net, x, name, kernel, bf16, densities=()):
    """Per sparse mask module: its spatial density and the time of each path on the module's float32 input (the
    masks of the float32 forward); with ``bf16``, also the bfloat16 kernel, dense-split and no-mask paths on the
    same input rounded to bfloat16, under bf16 autocast (as ``val.precision: bf16`` runs them). ``densities``:
    also, per module, random spatial masks of these densities (seeded; the module's own channel masks), to find
    the crossover above the densities real images give."""
    inputs = []
    hooks = [m.spa_mask.register_forward_pre_hook(lambda mod, a: inputs.append(a[0])) for m in net.body]
    net(x)
    for h in hooks:
        h.remove()
    rows = []
    generator = torch.Generator().manual_seed(0)
    for k, (module, cur) in enumerate(zip(net.body, inputs)):
        logits = module.spatial_logits(cur)
        real = (logits[:, 1:] > logits[:, :1]).to(cur.dtype)
        for forced in (None,) + tuple(densities):
            spa = real if forced is None else (torch.rand(real.shape, generator=generator) < forced).to(cur.dtype)
            rows.append(_paths_row(module.body, cur, spa, kernel, bf16, name, k, forced is not None))
    return rows


def _paths_row(body, cur, spa, kernel, bf16, name, k, forced):
    """One row of :func:`module_rows`: the times of every path of one block on one input and spatial mask."""
    cd, cs = body.hard_channel_masks()
    row = {'image': name, 'module': k, 'density': float(spa.mean()), 'random_mask': forced}
    paths = {'split_ms': lambda: body.forward_split(cur, spa, cd, cs), 'no_masks_ms': lambda: body.forward_dense(cur)}
    if not forced:  # the torch gathers (the fallback path) only on the real masks: seconds per call at high density
        paths['gathers_ms'] = lambda: body.forward_sparse(cur, PixelSet(spa[0, 0] > 0), cd, cs)
    if kernel is not None:
        paths['kernel_ms'] = lambda: body.forward_kernel(cur, PixelSet(spa[0, 0] > 0), cd, cs, kernel)
    if bf16:
        low = cur.to(torch.bfloat16)

        def autocast(fn):
            def run():
                with torch.autocast('cpu', dtype=torch.bfloat16):
                    return fn()
            return run

        if kernel is not None and kernel_has_bf16(kernel):
            paths['kernel_bf16_ms'] = autocast(lambda: body.forward_kernel(low, PixelSet(spa[0, 0] > 0), cd, cs,
                                                                           kernel))
        paths['split_bf16_ms'] = autocast(lambda: body.forward_split(low, spa.to(low.dtype), cd, cs))
        paths['no_masks_bf16_ms'] = autocast(lambda: body.forward_dense(low))
    row.update(best_of_interleaved(paths))
    return row


def best_of_interleaved(paths, repeat=3):
    """{key: best of ``repeat`` times in ms} of each callable, one warm-up each, the paths interleaved per round."""
    for fn in paths.values():
        fn()
    best = {key: float('inf') for key in paths}
    for _ in range(repeat):
        for key, fn in paths.items():
            start = time.perf_counter()
            fn()
            best[key] = min(best[key], 1e3 * (time.perf_counter() - start))
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', nargs='+', required=True, help='LR images (x2)')
    parser.add_argument('--weights', default=osp.join(os.environ.get('ADAPTSR_WEIGHTS', 'weights/official'),
                                                      'SMSR/SMSR_x2_model_1000.pt'))
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--densities', nargs='*', type=float, default=[],
                        help='also random spatial masks of these densities per module (the crossover above real ones)')
    parser.add_argument('--bf16', action='store_true',
                        help='also time the bfloat16 kernel and the dense paths in bf16 (crossover against dense bf16)')
    parser.add_argument('--json', default=None, help='write the rows and operator totals here')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --json')
    args = parser.parse_args()
    if args.json and osp.exists(args.json) and not args.overwrite:  # checked before the run, not after it
        parser.error(f'{args.json} exists; pass --overwrite to replace it or choose another --json')
    torch.set_num_threads(args.threads)
    sd = checkpoint_state_dict(load_checkpoint(args.weights), args.weights)
    kernel = load_kernel()
    nets = {}
    for label, kwargs in (('sparse', {}), ('gathers', {'sparse_kernel': False, 'sparse_max_density': 1.0}),
                          ('split', {'sparse_max_density': 0.0}), ('no_masks', {'use_masks': False})):
        nets[label] = SMSRNet(upscale=2, **kwargs)
        nets[label].load_state_dict(sd, strict=True)
        nets[label].eval()
    rows, ops = [], {}
    for path in args.images:
        x = read(path)
        name = osp.splitext(osp.basename(path))[0]
        rows += module_rows(nets['sparse'], x, name, kernel, args.bf16, args.densities)
        for label, net in nets.items():
            with torch.no_grad():
                net(x)
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                    net(x)
            for ev in prof.key_averages():
                ops.setdefault(label, {}).setdefault(ev.key, 0.0)
                ops[label][ev.key] += ev.self_cpu_time_total / 1e3
    columns = [key for key in ('kernel_ms', 'kernel_bf16_ms', 'gathers_ms', 'split_ms', 'split_bf16_ms',
                               'no_masks_ms', 'no_masks_bf16_ms') if any(key in r for r in rows)]
    print('(density r: a random mask of that density)')
    print(f'{"image":>10} {"module":>6} {"density":>8}  ' + ' '.join(f'{c[:-3].replace("_", "-"):>14}' for c in columns)
          + '   (ms)')
    for r in rows:
        print(f'{r["image"]:>10} {r["module"]:>6} {r["density"]:8.3f}{"r" if r["random_mask"] else " "}'
              + ' '.join(f'{r.get(c, float("nan")):14.1f}' for c in columns))
    crossover = {}
    for path, dense in (('kernel', 'split'), ('gathers', 'split'), ('kernel_bf16', 'split_bf16')):
        losing = [r['density'] for r in rows if f'{path}_ms' in r and r[f'{path}_ms'] > r[f'{dense}_ms']]
        winning = [r['density'] for r in rows if f'{path}_ms' in r and r[f'{path}_ms'] <= r[f'{dense}_ms']]
        if winning or losing:
            crossover[path] = {'against': dense, 'lowest_density_slower': min(losing) if losing else None,
                               'highest_density_faster': max(winning) if winning else None}
            print(f'{path}: slower than {dense} from density {crossover[path]["lowest_density_slower"]}'
                  f'; faster up to {crossover[path]["highest_density_faster"]}')
    for fast, slow in (('kernel_bf16', 'kernel'), ('kernel_bf16', 'split_bf16'), ('kernel_bf16', 'no_masks_bf16')):
        pairs = [(r[f'{slow}_ms'], r[f'{fast}_ms']) for r in rows if f'{fast}_ms' in r and f'{slow}_ms' in r]
        if pairs:
            print(f'{slow} / {fast}: {sum(a for a, _ in pairs) / sum(b for _, b in pairs):.2f}x over all modules')
    build = kernel_build_seconds()
    print('kernel: ' + (f'built or loaded in {build:.1f} s' if kernel is not None else 'not available'))
    for label, table in ops.items():
        total = sum(table.values())
        top = sorted(table.items(), key=lambda kv: -kv[1])[:8]
        print(f'\n{label}: {total:.0f} ms of operator self time over {len(args.images)} images')
        for key, ms in top:
            print(f'  {key:<32} {ms:8.1f} ms  {100 * ms / total:5.1f}%')
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with atomic_write(args.json) as tmp, open(tmp, 'w') as f:
            json.dump({'threads': args.threads, 'torch': torch.__version__, 'kernel_load_s': build,
                       'crossover': crossover, 'modules': rows, 'operators_ms': ops}, f, indent=2)


if __name__ == '__main__':
    main()
