"""ONNX models side by side on the benchmark sets (onnxruntime, CPU): Y PSNR (crop_border = scale) and seconds per
image, the models interleaved image by image (each image's time the fastest of ``--repeats``, after a warm-up run).

    python scripts/bench_onnx.py --models fp32=etds_m.onnx int8=etds_m_int8.onnx --scale 4 \\
        --datasets Set5 B100 Urban100 --threads 2 --repeats 3 --json bench_out/etds_m_int8.json

Reads ``${ADAPTSR_BENCHMARK}/<set>/{HR, LR_bicubic/X<scale>}`` (EDSR layout). The first model is the reference of
the ``speedup`` (total seconds over the images of a set) and ``delta_db`` columns.
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

import adaptsr  # noqa: E402,F401
from adaptsr.options import default_env  # noqa: E402
from adaptsr.utils.atomic import atomic_write, refuse_existing  # noqa: E402
from adaptsr.utils.report import format_table  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', required=True, help='label=path.onnx, the first is the reference')
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
    import onnxruntime as ort
    from basicsr.metrics import calculate_psnr
    default_env(ROOT)
    bench = os.environ['ADAPTSR_BENCHMARK']
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    sessions = {}
    for entry in args.models:
        label, path = entry.split('=', 1)
        sessions[label] = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    rows = []
    for name in args.datasets:
        lr_dir = osp.join(bench, name, 'LR_bicubic', f'X{args.scale}')
        files = sorted(f for f in os.listdir(lr_dir) if f.endswith('.png'))[:args.max_images]
        psnr = {k: [] for k in sessions}
        secs = {k: [] for k in sessions}
        for f in files:
            lr = cv2.imread(osp.join(lr_dir, f))[:, :, ::-1].astype(np.float32) / 255
            hr = cv2.imread(osp.join(bench, name, 'HR', f.replace(f'x{args.scale}.png', '.png')))
            x = np.ascontiguousarray(lr.transpose(2, 0, 1)[None])
            for label, sess in sessions.items():  # warm-up at this size
                sess.run(None, {sess.get_inputs()[0].name: x})
            for label, sess in sessions.items():
                best = float('inf')
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
                    best = min(best, time.perf_counter() - t0)
                secs[label].append(best)
                sr = (np.clip(y[0].transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)[:, :, ::-1]
                psnr[label].append(calculate_psnr(sr, hr[:sr.shape[0], :sr.shape[1]], args.scale, test_y_channel=True))
        ref = next(iter(sessions))
        for label in sessions:
            rows.append({'dataset': name, 'model': label, 'images': len(files), 'psnr_y': float(np.mean(psnr[label])),
                         'delta_db': float(np.mean(psnr[label]) - np.mean(psnr[ref])),
                         'sec_per_image': float(np.mean(secs[label])),
                         'speedup': float(sum(secs[ref]) / sum(secs[label]))})
    with atomic_write(args.json) as tmp, open(tmp, 'w') as fh:
        json.dump({'models': args.models, 'threads': args.threads, 'repeats': args.repeats, 'rows': rows}, fh, indent=2)
    print(format_table(rows, ['dataset', 'model', 'images', 'psnr_y', 'delta_db', 'sec_per_image', 'speedup']))
    print(f'written: {args.json} ({args.threads} threads, onnxruntime {ort.__version__})')


if __name__ == '__main__':
    main()
