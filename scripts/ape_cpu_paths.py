"""APE's CPU path against one pass of the tile batch, in float32 and bf16: milliseconds per 48-pixel tile.

``APEBackbone.forward_exit`` runs a tile batch on the CPU in passes of ``cpu_chunk`` tiles in channels_last
(adaptsr's CPU path); the official APE test (Wang et al., ECCV 2022; github.com/littlepure2333/APE) runs the batch in
one pass. This script times both at threshold 1 (every tile to the full depth) on APE's tiles (48 pixels, stride
46, the last shifted to the border) of real LR images, in float32 and under adaptsr's bf16 inference precision,
interleaved, median of ``--repeats``. The weights are freshly initialised (the time does not depend on them);
``--arch`` picks EDSR-baseline x4 or ECBSR M6C40 x4.

    python scripts/ape_cpu_paths.py --lr $ADAPTSR_BENCHMARK/Urban100/LR_bicubic/X4 --max-images 5
"""
import argparse
import glob
import os.path as osp
import statistics
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from adaptsr.api.images import read_image  # noqa: E402
from adaptsr.core.precision import inference_precision  # noqa: E402
from adaptsr.core.tiling import tile_boxes  # noqa: E402
from adaptsr.methods.ape.ape_arch import APEECBSR, APEEDSR  # noqa: E402

ARCHS = {'edsr-baseline': lambda: APEEDSR(num_feat=64, num_block=16, res_scale=1.0, upscale=4, exit_interval=4),
         'ecbsr-m6c40': lambda: APEECBSR(upscale=4, num_block=6, num_feat=40)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--lr', required=True, help='folder of LR images')
    parser.add_argument('--max-images', dest='max_images', type=int, default=5)
    parser.add_argument('--arch', choices=sorted(ARCHS), default='edsr-baseline')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args(argv)
    files = sorted(glob.glob(osp.join(args.lr, '*.png')))[:args.max_images]
    if not files:
        parser.error(f'--lr {args.lr}: no .png images')
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = ARCHS[args.arch]().eval()
    batches = []
    for f in files:
        x = torch.from_numpy(read_image(f)['rgb']).permute(2, 0, 1).contiguous()  # (3, H, W) in [0, 1]
        batches.append(torch.stack([x[:, t:b, lft:r] for t, lft, b, r in tile_boxes(*x.shape[1:], 48, 2)]))
    n = sum(b.shape[0] for b in batches)

    def run(precision, path):
        net.to(memory_format=torch.channels_last if precision == 'bf16' else torch.contiguous_format)
        with torch.no_grad(), inference_precision(net, precision):
            for b in batches:
                if precision == 'bf16':
                    b = b.contiguous(memory_format=torch.channels_last)
                if path == 'one pass':
                    net._forward_exit(b, 1.0)
                else:
                    net.forward_exit(b, 1.0)

    configs = [(p, q) for p in ('fp32', 'bf16') for q in ('one pass', 'cpu path')]
    times = {c: [] for c in configs}
    for _ in range(args.repeats):
        for c in configs:
            start = time.perf_counter()
            run(*c)
            times[c].append(time.perf_counter() - start)
    print(f'{args.arch}, {n} tiles of {len(files)} images, {args.threads} threads, median of {args.repeats}')
    for (precision, path), v in times.items():
        print(f'{precision:5s} {path:9s} {statistics.median(v) / n * 1e3:8.2f} ms per tile')


if __name__ == '__main__':
    main()
