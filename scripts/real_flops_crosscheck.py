"""Cross-check of the real-cost counter on the released dense models: ``flops_real`` (torch's FlopCounterMode around
the inference call, :mod:`adaptsr.core.cost`) against adaptsr's hook counter in plain 2 x MAC mode (convolutions,
transposed ones per input pixel, matrix products) on one Urban100 x4 image.

    python scripts/real_flops_crosscheck.py [--image ${ADAPTSR_BENCHMARK}/Urban100/LR_bicubic/X4/img_004x4.png]

Reads ``${ADAPTSR_WEIGHTS}`` (README, "Official weights"). PCSR's dense forward is its reference all-heavy forward
(every layer as a module); its deployed all-heavy path computes the first MLP layer's feature term per LR pixel and is
cheaper (printed too).
"""
import argparse
import os
import os.path as osp
import sys

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import adaptsr  # noqa: E402,F401
from adaptsr.core.options import default_env  # noqa: E402

MODELS = [('ESPCN', 'ETDS/baselines/ESPCN_x4.pth'), ('FSRCNN', 'ETDS/baselines/FSRCNN_x4.pth'),
          ('Plain-M6C32', 'ETDS/baselines/Plain_M6C32_x4.pth'), ('ECBSR-M6C40', 'ECBSR/ECBSR_M6C40_x4.pth'),
          ('ABPN-M4C28', 'ABPN/ABPN_M4C28_x4.pth'), ('ETDS-M6C32', 'ETDS/ETDS_M6C32_x4.pth'),
          ('CARN', 'PCSR/carn-x4/iter_last.pth'), ('CARN-PCSR', 'PCSR/carn-pcsr-phase1/iter_last.pth')]


def main(argv=None):
    from basicsr.utils.registry import ARCH_REGISTRY
    from adaptsr.core.checkpoint_io import load_checkpoint
    from adaptsr.core.checkpoints import checkpoint_state_dict, recognise_checkpoint
    from adaptsr.core.cost import FlopCounter, run_inference, torch_flop_counter
    default_env(ROOT)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--image', default=osp.join(os.environ['ADAPTSR_BENCHMARK'], 'Urban100/LR_bicubic/X4/'
                                                    'img_004x4.png'))
    args = parser.parse_args(argv)
    lr = cv2.imread(args.image)
    if lr is None:
        sys.exit(f'{args.image}: cannot be read')
    x = torch.from_numpy(np.ascontiguousarray(lr[:, :, ::-1].transpose(2, 0, 1)))[None].float() / 255
    worst = 0.0
    for name, rel in MODELS:
        path = osp.join(os.environ['ADAPTSR_WEIGHTS'], rel)
        found = recognise_checkpoint(path, 4)
        net = ARCH_REGISTRY.get(found.arch)(**found.kwargs)
        sd = checkpoint_state_dict(load_checkpoint(path), path, found.param_key)
        if hasattr(net, 'adapt_state_dict'):
            sd = net.adapt_state_dict(sd, path)
        net.load_state_dict(sd, strict=True)
        net.eval()
        with torch.no_grad():
            if hasattr(net, 'forward_reference'):  # PCSR: the dense all-heavy forward
                with torch_flop_counter() as mode:
                    net.forward_reference(x, 'heavy')
                with FlopCounter(net, norm_layers=False, transposed='input') as hooks:
                    net.forward_reference(x, 'heavy')
                real, hook = mode.get_total_flops(), hooks.total
                deployed = run_inference(net, x, heavy_only=True)[1]['flops_real']
            else:
                real = run_inference(net, x)[1]['flops_real']
                with FlopCounter(net, norm_layers=False, transposed='input') as hooks:
                    net(x)
                hook, deployed = hooks.total, None
        diff = 100 * (real - hook) / hook
        worst = max(worst, abs(diff))
        print(f'{name:>12} ({found.arch}): FlopCounterMode {real / 1e9:.4f} GFLOPs, hook counter {hook / 1e9:.4f}, '
              f'difference {diff:+.3f}%' + (f'; deployed all-heavy path {deployed / 1e9:.4f}' if deployed else ''))
    print(f'largest difference: {worst:.3f}% on {lr.shape[1]}x{lr.shape[0]} ({args.image})')


if __name__ == '__main__':
    main()
