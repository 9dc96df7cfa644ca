"""Deployed models side by side on the benchmark sets: PyTorch checkpoints, ONNX (onnxruntime) and TFLite (LiteRT)
models, Y PSNR (crop_border = scale) and seconds per image on the CPU, the models interleaved image by image (each
image's time the fastest of ``--repeats``, after a warm-up run at that size).

    python scripts/bench_deploy.py --models torch=$ADAPTSR_WEIGHTS/ETDS/ETDS_M6C32_x4.pth fp32=etds_m.onnx \\
        int8=etds_m_int8.onnx tflite=etds_m.tflite tflite_int8=etds_m_int8.tflite --scale 4 \\
        --datasets Set5 B100 Urban100 --threads 2 --repeats 3 --json bench_out/etds_m_deploy.json

Each model is ``label=path``: ``.onnx`` runs in onnxruntime (CPU provider), ``.tflite`` in the LiteRT interpreter
(XNNPACK; by tiles of its fixed input size, :class:`adaptsr.deploy.tflite_export.TFLiteRunner`), ``.pth`` in PyTorch
fp32: an ETDS-family or baseline checkpoint as the converter builds it (``torch_plain=`` label prefix: its
equivalent plain form), a PAMS/CADyQ/CABM checkpoint in its PAMS w8a8 simulation (``pams``). Reads
``${ADAPTSR_BENCHMARK}/<set>/{HR, LR_bicubic/X<scale>}`` (EDSR layout). The first model is the reference of the
``speedup`` (total seconds over the images of a set) and ``delta_db`` columns.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import adaptsr  # noqa: E402,F401
from adaptsr.api import describe  # noqa: E402
from adaptsr.core.options import default_env  # noqa: E402
from adaptsr.utils.atomic import atomic_write, refuse_existing  # noqa: E402
from adaptsr.utils.report import format_table  # noqa: E402


def load_runner(label, path, scale, threads):
    """``fn(x)``: (1, 3, h, w) float32 array in [0, 1] -> (1, 3, h s, w s) float32 array, and a description.

    Raises:
        ValueError: an unknown extension, or an ONNX model of another scale.
    """
    ext = osp.splitext(path)[1].lower()
    if ext == '.onnx':  # the session as adaptsr-infer opens it (one input, the scale checked)
        import onnxruntime as ort
        from adaptsr.api.runtimes import OnnxModel
        model = OnnxModel(path, threads, scale)
        return (lambda x: model.session.run(None, {model.input_name: x})[0]), f'onnxruntime {ort.__version__}'
    if ext == '.tflite':
        from adaptsr.deploy.tflite_export import TFLiteRunner
        runner = TFLiteRunner(path, threads)
        return (lambda x: runner(torch.from_numpy(x)).numpy()), \
            f'LiteRT, tiles of {runner.tile} overlap {runner.overlap}'
    if ext in ('.pth', '.pt'):
        found = describe(path, scale)
        net = found.build()
        what = f'PyTorch fp32 {type(net).__name__}'
        if 'pams' in getattr(net, 'modes', ()):  # a bit-mapped net: its w8a8 simulation
            net.set_mode('pams')
            what = f'PyTorch {type(net).__name__}, PAMS w8a8 simulation'
        elif label.startswith('torch_plain'):
            plain, info = found.deploy(path)
            if info.get('note'):
                net, what = plain, what + f' -> {type(plain).__name__} (its equivalent transformation)'
        net.eval()

        def run(x):
            with torch.no_grad():
                return net(torch.from_numpy(x)).numpy()
        return run, what
    raise ValueError(f'{label}={path}: unknown model extension {ext!r} (.pth, .onnx or .tflite)')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', required=True, help='label=path (.pth, .onnx, .tflite); the first is '
                                                                   'the reference')
    parser.add_argument('--scale', type=int, required=True)
    parser.add_argument('--datasets', nargs='+', default=['Set5', 'B100', 'Urban100'])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--max_images', type=int, default=None)
    parser.add_argument('--json', required=True)
    parser.add_argument('--overwrite', action='store_true')
    args = parser.parse_args(argv)
    if not args.overwrite:
        try:
            refuse_existing([args.json])
        except FileExistsError as err:
            parser.error(str(err))
    from basicsr.metrics import calculate_psnr
    default_env(ROOT)
    torch.set_num_threads(args.threads)
    bench = os.environ['ADAPTSR_BENCHMARK']
    runners, what = {}, {}
    for entry in args.models:
        if '=' not in entry:
            parser.error(f'--models {entry}: expected label=path')
        label, path = entry.split('=', 1)
        try:
            runners[label], what[label] = load_runner(label, path, args.scale, args.threads)
        except ValueError as err:
            parser.error(str(err))
    rows = []
    for name in args.datasets:
        lr_dir = osp.join(bench, name, 'LR_bicubic', f'X{args.scale}')
        files = sorted(f for f in os.listdir(lr_dir) if f.endswith('.png'))[:args.max_images]
        psnr = {k: [] for k in runners}
        secs = {k: [] for k in runners}
        for f in files:
            lr = cv2.imread(osp.join(lr_dir, f))[:, :, ::-1].astype(np.float32) / 255
            hr = cv2.imread(osp.join(bench, name, 'HR', f.replace(f'x{args.scale}.png', '.png')))
            x = np.ascontiguousarray(lr.transpose(2, 0, 1)[None])
            for fn in runners.values():  # warm-up at this size
                fn(x)
            for label, fn in runners.items():
                best = float('inf')
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    y = fn(x)
                    best = min(best, time.perf_counter() - t0)
                secs[label].append(best)
                sr = (np.clip(y[0].transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)[:, :, ::-1]
                psnr[label].append(calculate_psnr(sr, hr[:sr.shape[0], :sr.shape[1]], args.scale, test_y_channel=True))
        ref = next(iter(runners))
        for label in runners:
            rows.append({'dataset': name, 'model': label, 'images': len(files), 'psnr_y': float(np.mean(psnr[label])),
                         'delta_db': float(np.mean(psnr[label]) - np.mean(psnr[ref])),
                         'sec_per_image': float(np.mean(secs[label])),
                         'speedup': float(sum(secs[ref]) / sum(secs[label]))})
    with atomic_write(args.json) as tmp, open(tmp, 'w') as fh:
        json.dump({'models': args.models, 'runtimes': what, 'threads': args.threads, 'repeats': args.repeats,
                   'rows': rows}, fh, indent=2)
    print(format_table(rows, ['dataset', 'model', 'images', 'psnr_y', 'delta_db', 'sec_per_image', 'speedup']))
    for label, desc in what.items():
        print(f'  {label}: {desc}')
    print(f'written: {args.json} ({args.threads} threads)')


if __name__ == '__main__':
    main()
