"""Does ``torch.compile`` pay for adaptsr's inference on this CPU? Eager against compiled (inductor,
``dynamic=True``: one graph for every image size), float32 and bfloat16, on real LR images of different sizes.

    python scripts/compile_gain.py [--images ${ADAPTSR_BENCHMARK}/Urban100/LR_bicubic/X4] [--max-images 10]
        [--threads 2] [--json bench_out/compile_gain.json]

Models: the released ETDS-M7C48 x4 and ECBSR-M6C40 x4 (``ADAPTSR_WEIGHTS``), plain convolution stacks, the best
case for a graph compiler (the adaptive methods branch on their data: APE's exits, PCSR's per-pixel routing, SMSR's
masks and CABM's per-patch bits break a graph). Per model and precision: the first compiled call (the compile time),
then per image the eager and the compiled forward interleaved, best of ``--repeats``; seconds per image summed over
the images, the speed-up, and the largest output difference (pixels in [0, 1]).
"""
import argparse
import glob
import json
import os
import os.path as osp
import time

import torch

import adaptsr
from adaptsr.core.data_util import read_image
from adaptsr.core.precision import inference_precision
from adaptsr.utils.atomic import atomic_write

MODELS = {'ETDS-M7C48 x4': 'ETDS/ETDS_M7C48_x4.pth', 'ECBSR-M6C40 x4': 'ECBSR/ECBSR_M6C40_x4.pth'}


def timed(fn, x, repeats):
    best, out = float('inf'), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(x)
        best = min(best, time.perf_counter() - start)
    return best, out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', default=osp.join(os.environ.get('ADAPTSR_BENCHMARK', 'datasets/benchmark'),
                                                     'Urban100/LR_bicubic/X4'), help='a folder of LR x4 images')
    parser.add_argument('--max-images', type=int, default=10)
    parser.add_argument('--repeats', type=int, default=2)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--json', default=None, help='write the rows here')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --json')
    args = parser.parse_args()
    if args.json and osp.exists(args.json) and not args.overwrite:
        parser.error(f'{args.json} exists; pass --overwrite to replace it or choose another --json')
    torch.set_num_threads(args.threads)
    paths = sorted(glob.glob(osp.join(args.images, '*.png')))[:args.max_images]
    if not paths:
        parser.error(f'--images: no .png files in {args.images}')
    images = [read_image(p, '--images') for p in paths]
    weights = os.environ.get('ADAPTSR_WEIGHTS', 'weights/official')
    rows = []
    for name, file in MODELS.items():
        model = adaptsr.load(osp.join(weights, file)).model
        net = model.get_bare_model(model.net_g).eval()
        for precision in ('fp32', 'bf16'):
            layout = torch.channels_last if precision == 'bf16' else torch.contiguous_format
            net = net.to(memory_format=layout)
            compiled = torch.compile(net, dynamic=True)

            def eager_fn(x, run=net):
                with torch.no_grad(), inference_precision(net, precision):
                    return run(x.contiguous(memory_format=layout)).float()

            def compiled_fn(x):
                return eager_fn(x, compiled)

            start = time.perf_counter()
            compiled_fn(images[0])
            compile_s = time.perf_counter() - start
            eager_s = compiled_s = diff = 0.0
            for x in images:
                eager_fn(x)
                t_e, out_e = timed(eager_fn, x, args.repeats)
                t_c, out_c = timed(compiled_fn, x, args.repeats)
                eager_s, compiled_s = eager_s + t_e, compiled_s + t_c
                diff = max(diff, float((out_e - out_c).abs().max()))
            row = {'model': name, 'precision': precision, 'images': len(images), 'compile_s': compile_s,
                   'eager_s_per_image': eager_s / len(images), 'compiled_s_per_image': compiled_s / len(images),
                   'speedup': eager_s / compiled_s, 'max_abs_diff': diff}
            rows.append(row)
            print(f'{name:16s} {precision}: compile {compile_s:6.1f} s; eager {row["eager_s_per_image"]:.4f} s/image, '
                  f'compiled {row["compiled_s_per_image"]:.4f} s/image, {row["speedup"]:.2f}x; max |diff| {diff:.2e}',
                  flush=True)
            torch._dynamo.reset()
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with atomic_write(args.json) as tmp, open(tmp, 'w') as f:
            json.dump({'threads': args.threads, 'torch': torch.__version__, 'images': paths, 'rows': rows}, f,
                      indent=2)


if __name__ == '__main__':
    main()
