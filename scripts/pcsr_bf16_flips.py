"""How many of PCSR's per-pixel decisions (light or heavy upsampler) flip when the network runs in bf16.

PCSR (Jeong et al., "Accelerating Image Super-Resolution Networks with Pixel-Level Classification", ECCV 2024,
Sec. 3.2; github.com/3587jjh/PCSR) sends each HR pixel to its light or heavy upsampler by the classifier's
probabilities (``k``: the threshold offset; ADM: a per-image threshold). Under ``precision: bf16`` the encoder and
the upsamplers run in bfloat16 and the classifier's decision in float32 (``PCSRNet.heavy_logit``), on features that
are no longer float32's. This script runs the same images in fp32 and bf16 and counts, per setting, the HR pixels
whose route differs, and the PSNR-Y of both.

    python scripts/pcsr_bf16_flips.py --model $ADAPTSR_WEIGHTS/PCSR/carn-pcsr-phase1/iter_last.pth \\
        --lr $ADAPTSR_BENCHMARK/Urban100/LR_bicubic/X4 --hr $ADAPTSR_BENCHMARK/Urban100/HR --max-images 30
"""
import argparse
import os.path as osp
import sys

import numpy as np
import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import adaptsr  # noqa: E402
from adaptsr.bench.compare import add_pair_args, pairs_from_args  # noqa: E402
from adaptsr.bench.measure import psnr_y  # noqa: E402

SETTINGS = {'k=0': {'k': 0.0}, 'k=1': {'k': 1.0}, 'ADM': {'adaptive': True}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', required=True, help='a PCSR checkpoint (official or adaptsr)')
    add_pair_args(parser)
    args = parser.parse_args(argv)
    pairs = pairs_from_args(args)
    runners = {p: adaptsr.load(args.model, scale=args.scale, precision=p) for p in ('fp32', 'bf16')}
    print(f'{len(pairs)} images; HR pixels whose route (light/heavy) differs between fp32 and bf16')
    print(f'{"setting":>8} {"flipped":>9} {"of pixels":>10} {"heavy fp32":>10} {"heavy bf16":>10} {"PSNR-Y fp32":>11} '
          f'{"bf16":>8}')
    for name, knobs in SETTINGS.items():
        flipped = pixels = heavy32 = heavy16 = 0
        psnr = {'fp32': [], 'bf16': []}
        for item in pairs:
            maps = {}
            for prec, runner in runners.items():
                with torch.no_grad():
                    sr = runner(item['lq'], **knobs)
                psnr[prec].append(psnr_y(sr.float().clamp(0, 1), item['gt'], args.scale))
                maps[prec] = runner.model.heavy_map()
            a, b = maps['fp32'] > 0.5, maps['bf16'] > 0.5
            flipped += int((a != b).sum())
            pixels += a.size
            heavy32 += int(a.sum())
            heavy16 += int(b.sum())
        print(f'{name:>8} {flipped:9d} {flipped / pixels:10.4%} {heavy32 / pixels:10.2%} {heavy16 / pixels:10.2%} '
              f'{np.mean(psnr["fp32"]):11.4f} {np.mean(psnr["bf16"]):8.4f}', flush=True)


if __name__ == '__main__':
    main()
