"""Deployed models side by side on the benchmark sets: PyTorch checkpoints, ONNX (onnxruntime) and TFLite (LiteRT)
models, Y PSNR (crop_border = scale) and seconds per image on the CPU, the models interleaved image by image (each
image's time the fastest of ``--repeats``, after a warm-up run at that size).

    python scripts/bench_deploy.py --models torch=$ADAPTSR_WEIGHTS/ETDS/ETDS_M6C32_x4.pth fp32=etds_m.onnx \\
        int8=etds_m_int8.onnx tflite=etds_m.tflite tflite_int8=etds_m_int8.tflite --scale 4 \\
        --datasets Set5 B100 Urban100 --threads 2 --repeats 3 --json bench_out/etds_m_deploy.json

Each model is ``label=path``: ``.onnx`` runs in onnxruntime (CPU provider), ``.tflite`` in the LiteRT interpreter
(XNNPACK; by tiles of its fixed input size), ``.pth`` in PyTorch fp32 (``torch_plain=`` label prefix: its exported
plain form; a PAMS/CADyQ/CABM checkpoint: its PAMS w8a8 simulation). The protocol and its loop are the bench's
(:mod:`adaptsr.bench.deployed`); this script is its command line.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

from adaptsr.bench.deployed import run  # noqa: E402
from adaptsr.cli.errors import one_line_errors  # noqa: E402
from adaptsr.core.options import default_env  # noqa: E402
from adaptsr.core.outputs import OutputPlanError, check_plan  # noqa: E402


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
    try:
        check_plan([(args.json, 'results table')], [m.split('=', 1)[-1] for m in args.models], args.overwrite)
    except OutputPlanError as err:
        parser.error(str(err))
    default_env(ROOT)
    with one_line_errors('bench_deploy'):
        run(args.models, args.scale, args.datasets, args.threads, args.repeats, args.max_images, args.json)
    print(f'written: {args.json} ({args.threads} threads)')


if __name__ == '__main__':
    main()
