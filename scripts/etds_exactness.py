"""Report how exact the ETDS-family conversions and ONNX exports are, as a table.

    python scripts/etds_exactness.py [--checkpoints a.pth:4 b.pth:2 ...] [--onnx] [--json out.json]

Rows:

* random-weight nets (every ETDS size at x2/x3/x4, in dual-stream, only-residual and only-ET form, plus ECBSR
  training form and ABPN);
* the released ECBSR files and the released ETDS training-form ablations from ``$ADAPTSR_WEIGHTS``, when present;
* any ``--checkpoints`` (``path:scale``, e.g. our own ``experiments/<name>/models/net_g_latest.pth:4``).

Each row gives ``max |clamp(source(x), 0, 1) - plain(x)| x 255`` on ``rand(4, 3, 64, 64)`` and a 37x23 input;
the converter refuses anything at 0.01 or above. With ``--onnx``, every released ETDS plain model and every
converted checkpoint is also exported (to a temporary folder) and compared with onnxruntime.
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import sys
import tempfile

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

import adaptsr  # noqa: E402,F401,I001  (compat shim before basicsr)
import torch  # noqa: E402
from basicsr.utils.registry import ARCH_REGISTRY  # noqa: E402
from adaptsr.core.checkpoint_io import load_checkpoint  # noqa: E402
from adaptsr.methods.etds.etds_arch import ETDSPlain  # noqa: E402
from adaptsr.methods.etds.formats import build_from_state_dict, et_convert  # noqa: E402
from adaptsr.core.checkpoints import checkpoint_state_dict  # noqa: E402
from adaptsr.utils.report import format_table  # noqa: E402
from adaptsr.utils.atomic import atomic_write  # noqa: E402

CONFIGS = [(5, 16), (4, 32), (6, 32), (7, 48)]


def _perturbed(net, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return net


def random_rows():
    from basicsr.archs.ecbsr_arch import ECBSR
    rows = []
    for s in (2, 3, 4):
        for m, c in CONFIGS:
            for arch in ('ETDSNet', 'ETDSAblationResidual', 'ETDSOnlyET'):
                net = _perturbed(ARCH_REGISTRY.get(arch)(upscale=s, num_block=m, num_feat=c), 1000 * s + m)
                rows.append(row(f'random {arch} M{m}C{c}', s, net))
        rows.append(row('random ECBSR (ECB blocks) M4C16', s, _perturbed(ECBSR(3, 3, 4, 16, True, 'prelu', s), s)))
        rows.append(row('random ABPN 28ch', s, _perturbed(ARCH_REGISTRY.get('ABPNNet')(upscale=s), s)))
    return rows


def row(name, scale, net):
    _, info = et_convert(net)
    return {'source': name, 'scale': scale, 'arch': info['source_arch'], 'plain': f"M{info['num_block']}C"
            f"{info['num_feat']} {info['act_type']}", 'max_diff_255': info['max_diff_255']}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--checkpoints', nargs='*', default=[], help='path:scale of training-form checkpoints')
    parser.add_argument('--onnx', action='store_true', help='also export and check with onnxruntime')
    parser.add_argument('--json', default=None)
    parser.add_argument('--overwrite', action='store_true', help='replace an existing --json')
    args = parser.parse_args(argv)
    if args.json and osp.exists(args.json) and not args.overwrite:  # checked before the run, not after it
        parser.error(f'{args.json} exists; pass --overwrite to replace it or choose another --json')
    torch.set_num_threads(min(2, torch.get_num_threads()))
    torch.manual_seed(0)  # BasicSR's ECBSR initialises some tensors from the global generator
    weights = os.environ.get('ADAPTSR_WEIGHTS', osp.join(osp.dirname(__file__), '..', 'weights', 'official'))
    rows = random_rows()
    files = [(f, int(re.search(r'_x(\d)', f).group(1))) for f in sorted(glob.glob(osp.join(weights, 'ECBSR/*.pth')))]
    files += [(f, 4) for f in sorted(glob.glob(osp.join(weights, 'ETDS/ablations/*.pth')))
              if 'advance_residual' not in f]  # not convertible (refused), see the tests
    for spec in args.checkpoints:
        path, scale = spec.rsplit(':', 1)
        files.append((path, int(scale)))
    for path, scale in files:
        net = build_from_state_dict(checkpoint_state_dict(load_checkpoint(path), path), scale, path)
        rows.append(row(osp.relpath(path, weights) if path.startswith(weights) else path, scale, net))
    print(format_table([dict(r, max_diff_255=f"{r['max_diff_255']:.2e}") for r in rows],
                       ['source', 'scale', 'arch', 'plain', 'max_diff_255']))
    print(f"largest max |difference| x 255: {max(r['max_diff_255'] for r in rows):.3g} over {len(rows)} conversions")
    onnx_rows = []
    if args.onnx:
        from adaptsr.deploy.onnx_export import export_onnx
        plain_files = [(f, int(re.search(r'_x(\d)', f).group(1))) for f in sorted(glob.glob(osp.join(weights,
                                                                                                   'ETDS/ETDS_*.pth')))]
        with tempfile.TemporaryDirectory() as tmp:
            for i, (path, scale) in enumerate(plain_files + files[len(files) - len(args.checkpoints):]):
                net = build_from_state_dict(checkpoint_state_dict(load_checkpoint(path), path), scale, path)
                if not isinstance(net, ETDSPlain):
                    net = et_convert(net)[0]
                res = export_onnx(net, osp.join(tmp, f'{i}.onnx'))
                name = osp.relpath(path, weights) if path.startswith(weights) else path
                onnx_rows.append({'model': name, 'scale': scale, 'max_abs_diff': res['max_abs_diff'],
                                  'fp32_error': res['fp32_error']})
        print(format_table([{k: f'{v:.2e}' if isinstance(v, float) else v for k, v in r.items()} for r in onnx_rows],
                           ['model', 'scale', 'max_abs_diff', 'fp32_error']))
        print(f"largest ONNX vs PyTorch difference: {max(r['max_abs_diff'] for r in onnx_rows):.3g}")
    if args.json:
        with atomic_write(args.json) as tmp, open(tmp, 'w') as f:
            json.dump({'conversions': rows, 'onnx': onnx_rows}, f, indent=2)


if __name__ == '__main__':
    main()
