"""Which convolutions of a backbone can PAMS w8a8 quantise cheaply? Post-training w8a8, one conv at a time.

    python scripts/cabm_layer_sensitivity.py --opt options/train/cabm_ecbsr_m6c40_x4_demo.yml \\
        [--dataset ${ADAPTSR_BENCHMARK}/Urban100] [--max_images 20] [--calib_root <LR folder>] [--json out.json]

For every ``nn.Conv2d`` of ``network_g.backbone`` (a :class:`~adaptsr.methods.cabm.cabm_arch.CABMNet` YAML), and for the
YAML's own ``quant_layers`` together, the released full-precision weights (``path.pretrain_network_g``) get 8-bit
weights and an 8-bit input quantiser whose clip is PAMS' data initialisation (batch mean of the per-sample max|x|)
on one batch of 64 random 24 x 24 crops of ``--calib_root`` (default ``train.cabm.lut_dataroot``). The Y PSNR
(crop = scale) of whole images is compared with the full-precision network's. No training: the QAT steps of the
recipe recover part of each loss, but the ranking tells which layer to keep in full precision (EDSR-baseline keeps
its head, ``body.16`` and upsampler in FP in the paper). Prints a table; ``--json`` writes it.
"""
import argparse
import json
import os
import os.path as osp
import sys

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from torch import nn  # noqa: E402

import adaptsr  # noqa: E402,F401  (first: installs the compatibility shim basicsr needs)
from adaptsr.methods.cabm.cabm_arch import CABMNet  # noqa: E402
from adaptsr.core.checkpoint_io import load_checkpoint  # noqa: E402
from adaptsr.core.checkpoints import checkpoint_state_dict  # noqa: E402
from adaptsr.bench.measure import quality  # noqa: E402
from adaptsr.core.data_util import read_image  # noqa: E402
from adaptsr.core.options import locate  # noqa: E402
from adaptsr.core.data_prep import list_images  # noqa: E402
from adaptsr.utils.atomic import atomic_write  # noqa: E402


def _path(value, what):
    path = locate(what, str(value))
    if not osp.exists(path):
        raise FileNotFoundError(f'{what}: {value!r} -> {path!r} does not exist (set ADAPTSR_WEIGHTS / '
                                'ADAPTSR_BENCHMARK?)')
    return path


def _read(path, what):
    """An image file -> (3, H, W) RGB float in [0, 1]; ValueError naming ``what`` and the file if unreadable."""
    return read_image(path, what)[0]


def calibration_batch(root, n=64, size=24, seed=0):
    """``n`` random ``size`` x ``size`` crops of the LR images in ``root``: (n, 3, size, size) in [0, 1]."""
    files = [osp.join(root, f) for f in list_images(root)]
    if not files:
        raise FileNotFoundError(f'--calib_root {root}: no images')
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(n):
        path = files[rng.integers(len(files))]
        img = _read(path, '--calib_root')
        h, w = img.shape[1:]
        if h < size or w < size:
            raise ValueError(f'--calib_root {root}: {path} is smaller than {size} x {size}')
        y, x = rng.integers(h - size + 1), rng.integers(w - size + 1)
        crops.append(img[:, y:y + size, x:x + size])
    return torch.stack(crops)


def load_fp(net, state):
    """Load a full-precision backbone checkpoint strictly, the quantiser keys at their initial values."""
    net.load_state_dict(net.complete_fp_state_dict(state)[0], strict=True)
    return net


def ptq(backbone, layers, state, calib):
    """A :class:`CABMNet` with ``layers`` quantised w8a8 (PAMS), clips initialised on ``calib``; eval mode."""
    net = load_fp(CABMNet(backbone, quant_layers=layers, mode='fp'), state)
    net.set_mode('pams')
    net.train()
    net.set_alpha_init(True)
    with torch.no_grad():
        net(calib)
    net.set_alpha_init(False)
    return net.eval()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--opt', required=True, help='a CABMNet training YAML (network_g, path.pretrain_network_g)')
    parser.add_argument('--dataset', default='${ADAPTSR_BENCHMARK}/Urban100', help='folder with HR/ and LR_bicubic/')
    parser.add_argument('--max_images', type=int, default=20)
    parser.add_argument('--calib_root', default=None, help='LR images for the clips (default train.cabm.lut_dataroot)')
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--json', default=None, help='write the rows here (must not exist)')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --json')
    args = parser.parse_args(argv)
    if args.json and osp.exists(args.json) and not args.overwrite:
        parser.error(f'{args.json} exists; pass --overwrite to replace it or choose another --json')
    if args.threads:
        torch.set_num_threads(args.threads)
    with open(args.opt) as f:
        opt = yaml.safe_load(f) or {}
    network = opt.get('network_g') or {}
    if network.get('type') != 'CABMNet' or 'backbone' not in network:
        parser.error(f'{args.opt}: network_g must be a CABMNet with a backbone')
    weights = _path((opt.get('path') or {}).get('pretrain_network_g'), f'{args.opt} path.pretrain_network_g')
    state = checkpoint_state_dict(load_checkpoint(weights), weights)
    calib_root = _path(args.calib_root or ((opt.get('train') or {}).get('cabm') or {}).get('lut_dataroot'),
                       '--calib_root')
    calib = calibration_batch(calib_root)
    scale = int(opt.get('scale', 4))
    dataset = _path(args.dataset, '--dataset')
    hr_files = [osp.join(dataset, 'HR', f) for f in list_images(osp.join(dataset, 'HR'))][:args.max_images]
    pairs = []  # sorted by name, so "the first N images" is the same set on every file system
    for hr in hr_files:
        stem = osp.splitext(osp.basename(hr))[0]
        lr = _path(osp.join(dataset, 'LR_bicubic', f'X{scale}', f'{stem}x{scale}.png'), 'LR image')
        pairs.append((_read(lr, '--dataset')[None], _read(hr, '--dataset')[None]))

    def psnr(net):
        with torch.no_grad():
            return float(np.mean([quality(net(lq).clamp(0, 1), gt, scale)['psnr_y'] for lq, gt in pairs]))

    fp = load_fp(CABMNet(network['backbone'], quant_layers=network.get('quant_layers', 'body'), mode='fp'), state)
    base = psnr(fp.eval())
    convs = [n for n, m in fp.named_modules() if isinstance(m, nn.Conv2d)]
    rows = []
    for layers in [[n] for n in convs] + [network.get('quant_layers', 'body')]:
        value = psnr(ptq(network['backbone'], layers, state, calib))
        rows.append({'layers': layers if isinstance(layers, str) else ','.join(layers), 'psnr_y': value,
                     'delta_db': value - base})
        print(f'{rows[-1]["layers"]:40s} {value:.4f}  {value - base:+.4f} dB', flush=True)
    print(f'{"full precision":40s} {base:.4f}  ({len(pairs)} images of {dataset}, x{scale})')
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with atomic_write(args.json) as tmp, open(tmp, 'w') as f:
            json.dump({'fp_psnr_y': base, 'images': len(pairs), 'dataset': dataset, 'rows': rows}, f, indent=1)


if __name__ == '__main__':
    main()
