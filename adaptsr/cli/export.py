"""Export a plain SR model for deployment: ONNX (dynamic N/H/W) or TFLite, fp32 and INT8, each checked.

    adaptsr-export --input $ADAPTSR_WEIGHTS/ETDS/ETDS_M6C32_x4.pth --scale 4 --output etds_m.onnx
    # and an INT8 model (static QDQ by onnxruntime's quantisation tools), calibrated on your photos
    adaptsr-export --input $ADAPTSR_WEIGHTS/ETDS/ETDS_M6C32_x4.pth --scale 4 --output etds_m.onnx \\
        --int8 etds_m_int8.onnx [--calib photos/ [--calib-lr]] [--calib-method percentile|minmax|entropy]
    # TFLite fp32 and full-integer INT8 (litert-torch; fixed input of --input-size LR pixels, run by tiles)
    adaptsr-export --input $ADAPTSR_WEIGHTS/ETDS/ETDS_M6C32_x4.pth --scale 4 --output etds_m.tflite \\
        --int8 etds_m_int8.tflite [--input-size 128] [--calib photos/]
    # a PAMS w8a8 model trained by adaptsr (CABMNet checkpoint), with its learned clips, as QDQ ONNX
    adaptsr-export --input experiments/<cabm run>/models/net_t_pams.pth --scale 4 --output pams_fp32.onnx \\
        --int8 pams_w8a8.onnx [--pams-int8-outputs]

    # fp16 ONNX beside the fp32 one (chaiNNer's and the GPU runtimes' "fp16" models: float16 weights, input, output)
    adaptsr-export -i $ADAPTSR_WEIGHTS/ETDS/ETDS_M6C32_x4.pth --scale 4 -o etds_m.onnx --fp16 etds_m_fp16.onnx
    # the deployable network's weights as safetensors (its metadata names the arch and scale), reloaded and compared
    adaptsr-export --input $ADAPTSR_WEIGHTS/ETDS/ETDS_M6C32_x4.pth --scale 4 --output etds_m.safetensors

The format follows ``--format`` or else ``--output``'s extension (``.onnx``, ``.tflite`` or ``.safetensors``);
``--int8`` writes the INT8 model of the same format, ``--fp16`` an fp16 ONNX model (checked against PyTorch fp32
within one 8-bit level, 1/255). ``--input`` may be any checkpoint the ETDS converter reads: a plain ETDSPlain file
(released or converted), or anything with an equivalent plain form (ETDSNet, ETDS ablations, ECBSR in either form,
ABPN; our own net_g_*.pth), which is first converted to ETDSPlain by the equivalent transformation and verified. The
released baselines without an equivalent transformation (ESPCN, FSRCNN, Plain) are exported as they are. A PAMS /
CADyQ / CABM checkpoint (``<conv>.bitsel.*`` keys) exports its full-precision backbone as the fp32 model and, with
``--int8``, its 8-bit form with the clips it learned (ONNX only). The ONNX export fails when onnxruntime differs
from PyTorch by 1e-5 (or twice PyTorch's own float32 error against float64, where larger) or more on inputs of other
sizes than the traced one (64x64 and an odd 37x53, batch 2); the TFLite export fails at 1e-4. ``adaptsr-infer
--model x.onnx|x.tflite`` runs any of these models on images (seconds, PSNR with ``--hr``).
"""
import os.path as osp
import sys

from adaptsr.core.outputs import OutputPlanError, check_plan
from adaptsr.utils.argtypes import CLIParser, int_at_least


def main(argv=None):
    """``adaptsr-export`` (see the module docstring); a missing optional package (onnx, onnxruntime, litert-torch)
    ends it with one line saying how to install it."""
    try:
        return _main(argv)
    except ImportError as err:
        sys.exit(f'export: {err}')


def _main(argv=None):
    parser = CLIParser(prog='adaptsr-export', description=__doc__)
    parser.add_argument('-i', '--input', required=True, help='checkpoint (.pth or .safetensors)')
    parser.add_argument('--scale', type=int_at_least(1), required=True)
    parser.add_argument('-o', '--output', required=True, help='.onnx, .tflite or .safetensors file to write')
    parser.add_argument('--format', choices=('onnx', 'tflite', 'safetensors'), default=None,
                        help="the output's format (default: --output's extension)")
    parser.add_argument('--fp16', default=None, help='also write an fp16 ONNX model here')
    parser.add_argument('--opset', type=int_at_least(7), default=13)
    parser.add_argument('--param-key', default='auto', help='params, params_ema or auto (params_ema if present)')
    parser.add_argument('--overwrite', action='store_true')
    parser.add_argument('--int8', default=None,
                        help='also write an INT8 model of the same format here (ONNX: static QDQ, int8 per-channel '
                             'weights, uint8 activations calibrated on --calib, onnxruntime quantisation tools; PAMS '
                             'checkpoints: the learned clips; TFLite: full-integer int8, PT2E static quantisation)')
    parser.add_argument('--calib', nargs='+', default=None,
                        help='calibration photos (files or folders of HR images, downscaled x1/scale here; default: '
                             "scikit-image's photographs, the quick start's demo photos)")
    parser.add_argument('--calib-lr', dest='calib_lr', action='store_true', help='the --calib images are LR already')
    parser.add_argument('--calib-method', dest='calib_method', default='percentile',
                        choices=('minmax', 'percentile', 'entropy'))
    parser.add_argument('--calib-patch', dest='calib_patch', type=int_at_least(8), default=64,
                        help='calibration patch side in LR pixels (equal shapes: the histogram calibrators need them)')
    parser.add_argument('--input-size', dest='input_size', type=int_at_least(8), default=128,
                        help='TFLite: the fixed LR input side in pixels (adaptsr-infer runs larger images by tiles)')
    parser.add_argument('--pams-int8-outputs', dest='pams_int8_outputs', action='store_true',
                        help="PAMS: quantise the quantised convs' outputs too (calibrated by --calib-method on "
                             '--calib), so that they run as integer convolutions: faster, but no longer exactly '
                             "PAMS' function (by default the outputs stay float, as PAMS trains them)")
    args = parser.parse_args(argv)
    fmt = f'.{args.format}' if args.format else osp.splitext(args.output)[1].lower()
    if fmt not in ('.onnx', '.tflite', '.safetensors'):
        parser.error(f'--output {args.output}: the extension must be .onnx, .tflite or .safetensors (or give --format)')
    if args.int8 and (fmt == '.safetensors' or osp.splitext(args.int8)[1].lower() != fmt):
        parser.error(f'--int8 {args.int8}: must be a {fmt} file, as --output' if fmt != '.safetensors' else
                     '--int8: a safetensors export holds the float weights only; use --output x.onnx or x.tflite')
    if args.fp16 and (fmt != '.onnx' or not args.fp16.lower().endswith('.onnx')):
        parser.error(f'--fp16 {args.fp16}: an fp16 model is exported to ONNX only (--output x.onnx --fp16 '
                     'x_fp16.onnx)')
    plan = [(args.output, f'{fmt[1:].upper()} fp32 model')] + \
        ([(args.int8, f'{fmt[1:].upper()} INT8 model')] if args.int8 else []) + \
        ([(args.fp16, 'ONNX fp16 model')] if args.fp16 else [])
    try:  # before any work: the INT8 model never replaces the fp32 one, nor an output the checkpoint
        check_plan(plan, [args.input] + [c for c in args.calib or () if osp.isfile(c)], args.overwrite)
    except OutputPlanError as err:
        parser.error(str(err))
    # imported after the command line is checked: the export imports torch (seconds), --help needs none of it
    from adaptsr.cli.export_run import run
    return run(args, fmt)


if __name__ == '__main__':
    main()
