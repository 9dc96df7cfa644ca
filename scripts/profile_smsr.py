"""Where SMSR's inference time goes on this machine: per sparse mask module, the sparse path through the compiled
kernel (``adaptsr.methods.smsr.sparse_conv``) and through torch's row gathers + GEMMs, the dense-split path (two
convolutions per layer, masked) and the network without masks, against the module's spatial mask density; then
torch.profiler's per-operator totals of whole forwards (the kernel's calls as ``adaptsr::sparse_conv``).

    python scripts/profile_smsr.py --threads 2 --images ${ADAPTSR_BENCHMARK}/B100/LR_bicubic/X2/3096x2.png ...
        [--weights ${ADAPTSR_WEIGHTS}/SMSR/SMSR_x2_model_1000.pt] [--json bench_out/smsr_profile.json]

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
from adaptsr.methods.smsr.smsr_arch import SMSRNet  # noqa: E402
from adaptsr.core.checkpoint_io import load_checkpoint  # noqa: E402
from adaptsr.core.checkpoints import checkpoint_state_dict  # noqa: E402
from adaptsr.methods.smsr.sparse_conv import PixelSet, kernel_build_seconds, load_kernel  # noqa: E402
from adaptsr.utils.atomic import atomic_write  # noqa: E402


def best_of(fn, repeat=3):
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def read(path):
    """The LR image cropped to even height and width (SMSR's test protocol)."""
    from adaptsr.core.data_util import read_image
    x = read_image(path, '--image')
    return x[..., :x.shape[2] // 2 * 2, :x.shape[3] // 2 * 2]


@torch.no_grad()
def module_rows(net, x, name, kernel):
    inputs = []
    hooks = [m.spa_mask.register_forward_pre_hook(lambda mod, a: inputs.append(a[0])) for m in net.body]
    net(x)
    for h in hooks:
        h.remove()
    rows = []
    for k, (module, cur) in enumerate(zip(net.body, inputs)):
        logits = module.spatial_logits(cur)
        spa = (logits[:, 1:] > logits[:, :1]).to(cur.dtype)
        cd, cs = module.body.hard_channel_masks()
        row = {'image': name, 'module': k, 'density': float(spa.mean())}
        if kernel is not None:
            row['kernel_ms'] = 1e3 * best_of(lambda: module.body.forward_kernel(cur, PixelSet(spa[0, 0] > 0), cd, cs,
                                                                                kernel))
        row.update({
            'gathers_ms': 1e3 * best_of(lambda: module.body.forward_sparse(cur, PixelSet(spa[0, 0] > 0), cd, cs)),
            'split_ms': 1e3 * best_of(lambda: module.body.forward_split(cur, spa, cd, cs)),
            'no_masks_ms': 1e3 * best_of(lambda: module.body.forward_dense(cur))})
        rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', nargs='+', required=True, help='LR images (x2)')
    parser.add_argument('--weights', default=osp.join(os.environ.get('ADAPTSR_WEIGHTS', 'weights/official'),
                                                      'SMSR/SMSR_x2_model_1000.pt'))
    parser.add_argument('--threads', type=int, default=2)
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
        rows += module_rows(nets['sparse'], x, name, kernel)
        for label, net in nets.items():
            with torch.no_grad():
                net(x)
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                    net(x)
            for ev in prof.key_averages():
                ops.setdefault(label, {}).setdefault(ev.key, 0.0)
                ops[label][ev.key] += ev.self_cpu_time_total / 1e3
    print(f'{"image":>10} {"module":>6} {"density":>8} {"kernel ms":>10} {"gathers ms":>10} {"split ms":>9} '
          f'{"no-mask ms":>10}')
    for r in rows:
        print(f'{r["image"]:>10} {r["module"]:>6} {r["density"]:8.3f} {r.get("kernel_ms", float("nan")):10.1f} '
              f'{r["gathers_ms"]:10.1f} {r["split_ms"]:9.1f} {r["no_masks_ms"]:10.1f}')
    crossover = {}
    for path in ('kernel', 'gathers'):
        losing = [r['density'] for r in rows if f'{path}_ms' in r and r[f'{path}_ms'] > r['split_ms']]
        winning = [r['density'] for r in rows if f'{path}_ms' in r and r[f'{path}_ms'] <= r['split_ms']]
        if winning or losing:
            crossover[path] = {'lowest_density_slower_than_split': min(losing) if losing else None,
                               'highest_density_faster_than_split': max(winning) if winning else None}
            print(f'{path}: slower than dense-split from density {crossover[path]["lowest_density_slower_than_split"]}'
                  f'; faster up to {crossover[path]["highest_density_faster_than_split"]}')
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
