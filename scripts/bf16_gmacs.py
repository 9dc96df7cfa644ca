"""How close adaptsr's fastest path comes to the machine: GMAC/s (10^9 multiply-adds per second) of one 3x3
convolution and of whole networks, float32 against bfloat16, on the CPU.

    python scripts/bf16_gmacs.py [--threads 2] [--repeats 20]

Rows: a 64->64 3x3 convolution on a 240x160 map (torch's conv2d, i.e. oneDNN: the machine's reference for a plain
convolution) in float32 (default layout and channels_last) and bfloat16 (channels_last); ETDS-M7C48 x4 and ECBSR-M6C40
x4 (the released files, ``ADAPTSR_WEIGHTS``) on a 240x160 LR input through ``adaptsr.load`` at ``precision`` fp32 and
bf16. Configurations are interleaved, each timed ``--repeats`` times after two warm-up calls; the median is reported.
Multiply-adds: ``torch.utils.flop_counter`` (FLOPs / 2) for the convolution, adaptsr's cost counter for the networks.
"""
import argparse
import os
import os.path as osp
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import adaptsr


def macs(fn):
    with FlopCounterMode(display=False) as mode:
        fn()
    return mode.get_total_flops() / 2


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    weights = os.environ.get('ADAPTSR_WEIGHTS', 'weights/official')
    x = torch.rand(1, 64, 160, 240)
    w = torch.randn(64, 64, 3, 3) * 0.05
    xc, wc = x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
    xb, wb = xc.bfloat16(), wc.bfloat16()
    lr = torch.rand(1, 3, 160, 240)
    runners = {}
    configs = {
        'conv3x3 64->64 fp32': lambda: F.conv2d(x, w, padding=1),
        'conv3x3 64->64 fp32 channels_last': lambda: F.conv2d(xc, wc, padding=1),
        'conv3x3 64->64 bf16 channels_last': lambda: F.conv2d(xb, wb, padding=1),
    }
    for name, file in (('ETDS-M7C48 x4', 'ETDS/ETDS_M7C48_x4.pth'), ('ECBSR-M6C40 x4', 'ECBSR/ECBSR_M6C40_x4.pth')):
        path = osp.join(weights, file)
        if osp.exists(path):
            for precision in ('fp32', 'bf16'):
                runner = adaptsr.load(path, precision=precision)
                configs[f'{name} {precision}'] = (lambda r: lambda: r(lr))(runner)
                runners[f'{name} {precision}'] = runner
    counts = {}
    with torch.no_grad():
        for name, fn in configs.items():
            fn(), fn()
            # a network: the multiply-adds adaptsr's cost counter reports for the call (gflops = 2 x GMACs)
            counts[name] = macs(fn) if name not in runners else runners[name].stats['gflops'] * 1e9 / 2
        times = {name: [] for name in configs}
        for _ in range(args.repeats):
            for name, fn in configs.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    print(f'{"configuration":40s} {"GMACs":>8s} {"ms":>9s} {"GMAC/s":>8s}   ({args.threads} threads, median of '
          f'{args.repeats})')
    for name in configs:
        ms = statistics.median(times[name]) * 1e3
        print(f'{name:40s} {counts[name] / 1e9:8.3f} {ms:9.2f} {counts[name] / 1e9 / (ms / 1e3):8.1f}')


if __name__ == '__main__':
    main()
