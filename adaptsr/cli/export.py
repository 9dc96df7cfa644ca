"""Export a plain SR model for deployment: ONNX (dynamic N/H/W) or TFLite, fp32 and INT8, each checked.

    adaptsr-export --input $ADAPTSR_WEIGHTS/ETDS/ETDS_M6C32_x4.pth --scale 4 --output etds_m.onnx
    # and an INT8 model (static QDQ by onnxruntime's quantisation tools), calibrated on your photos
    adaptsr-export --input $ADAPTSR_WEIGHTS/ETDS/ETDS_M6C32_x4.pth --scale 4 --output etds_m.onnx \
        --int8 etds_m_int8.onnx [--calib photos/ [--calib-lr]] [--calib-method percentile|minmax|entropy]
    # TFLite fp32 and full-integer INT8 (litert-torch; fixed input of --input-size LR pixels, run by tiles)
    adaptsr-export --input $ADAPTSR_WEIGHTS/ETDS/ETDS_M6C32_x4.pth --scale 4 --output etds_m.tflite \
        --int8 etds_m_int8.tflite [--input-size 128] [--calib photos/]
    # a PAMS w8a8 model trained by adaptsr (CABMNet checkpoint), with its learned clips, as QDQ ONNX
    adaptsr-export --input experiments/<cabm run>/models/net_t_pams.pth --scale 4 --output pams_fp32.onnx \
        --int8 pams_w8a8.onnx [--pams-int8-outputs]

    # fp16 ONNX beside the fp32 one (chaiNNer's and the GPU runtimes' "fp16" models: float16 weights, input, output)
    adaptsr-export --input $ADAPTSR_WEIGHTS/ETDS/ETDS_M6C32_x4.pth --scale 4 --output etds_m.onnx --fp16 etds_m_fp16.onnx
    # the deployable network's weights as safetensors (its metadata names the arch and scale), reloaded and compared
    adaptsr-export --input $ADAPTSR_WEIGHTS/ETDS/ETDS_M6C32_x4.pth --scale 4 --output etds_m.safetensors

The format follows ``--format`` or else ``--output``'s extension (``.onnx``, ``.tflite`` or ``.safetensors``);
``--int8`` writes the INT8 model of the same format, ``--fp16`` an fp16 ONNX model (checked against PyTorch fp32
within one 8-bit level, 1/255). ``--input`` may be any checkpoint the ETDS converter reads: a plain ETDSPlain file (released or converted),
or anything with an equivalent plain form (ETDSNet, ETDS ablations, ECBSR in either form, ABPN; our own
net_g_*.pth), which is first converted to ETDSPlain by the equivalent transformation and verified. The released
baselines without an equivalent transformation (ESPCN, FSRCNN, Plain) are exported as they are. A PAMS / CADyQ /
CABM checkpoint (``<conv>.bitsel.*`` keys) exports its full-precision backbone as the fp32 model and, with
``--int8``, its 8-bit form with the clips it learned (ONNX only). The ONNX export fails when onnxruntime differs
from PyTorch by 1e-5 (or twice PyTorch's own float32 error against float64, where larger) or more on inputs of other
sizes than the traced one (64x64 and an odd 37x53, batch 2); the TFLite export fails at 1e-4. ``adaptsr-infer
--model x.onnx|x.tflite`` runs any of these models on images (seconds, PSNR with ``--hr``).
"""
import contextlib
import os
import os.path as osp
import sys

import numpy as np
import torch

from adaptsr.api import describe
from adaptsr.core.checkpoint_io import basicsr_checkpoint, save_checkpoint
from adaptsr.core.outputs import OutputPlanError, check_plan
from adaptsr.deploy.onnx_export import export_onnx
from adaptsr.deploy.onnx_quant import calibration_inputs, quantize_onnx_int8, quantize_pams_qdq
from adaptsr.deploy.tflite_export import export_tflite, quantize_tflite_int8
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
    with _errors_exit():  # not recognised, not exportable, another scale or NaN/Inf weights: the file is named
        found = describe(args.input, args.scale, args.param_key)
        net, info = found.deploy(args.input)
    if info.get('note'):
        print(info['note'])
    if info.get('int8_clips') is not None:
        return _export_with_clips(args, net, info, fmt)
    os.makedirs(osp.dirname(osp.abspath(args.output)), exist_ok=True)
    if fmt == '.tflite':
        return _export_tflite(args, net)
    if fmt == '.safetensors':
        return _export_safetensors(args, net, found)
    res = export_onnx(net, args.output, opset=args.opset, overwrite=args.overwrite)
    _print_onnx(args, net, res)
    if args.fp16:
        with _errors_exit(RuntimeError):
            photos = calibration_inputs(args.calib, args.scale, patch=96, stride=96, downscale=not args.calib_lr)
            # two photograph patches as a batch, and an odd-sized crop of another (the dynamic axes)
            checks = [np.concatenate(photos[:2]), photos[-1][:, :, :37, :53]]
            half = export_onnx(net, args.fp16, opset=args.opset, overwrite=args.overwrite, fp16=True,
                               check_inputs=checks)
        print(f'{args.input} -> {half["path"]} (fp16 weights, input and output): onnxruntime fp16 vs PyTorch fp32 '
              f'max |difference| = {half["max_abs_diff"]:.3g} (limit {half["tol"]:.3g}) on photographs '
              f'{half["shapes"]}')
    if args.int8:
        inputs = _calibration(args, args.calib_patch)
        with _errors_exit():
            q = quantize_onnx_int8(args.output, args.int8, inputs, args.calib_method, overwrite=args.overwrite)
        print(f'{res["path"]} -> {q["path"]}: INT8 QDQ ({q["quantized_convs"]} convs; weights int8 per channel, '
              f'activations uint8, {q["method"]} calibration on {q["calibration_inputs"]} LR patches of '
              f'{args.calib or "scikit-image photographs"})')


@contextlib.contextmanager
def _errors_exit(*more):
    """Bad input (ValueError), an existing output (FileExistsError) and ``more`` end the command with their one-line
    message (it names the file), not a traceback."""
    try:
        yield
    except (ValueError, FileExistsError) + more as err:
        sys.exit(f'export: {err}')


def _print_onnx(args, net, res):
    print(f'{args.input} -> {res["path"]} ({type(net).__name__}, opset {res["opset"]}, dynamic N/H/W): '
          f'onnxruntime vs PyTorch max |difference| = {res["max_abs_diff"]:.3g} (limit {res["tol"]:.3g}; PyTorch fp32 '
          f'vs fp64 {res["fp32_error"]:.3g}) on inputs {res["shapes"]}')


def _export_safetensors(args, net, found):
    """The deployable network's state_dict as safetensors (meta: arch, scale, method, source), then reloaded by
    :func:`adaptsr.api.describe` and compared with ``net`` on a photograph: the difference must be 0."""
    ckpt = basicsr_checkpoint(net.state_dict(), found.method, type(net).__name__, args.scale, args.input)
    with _errors_exit():
        save_checkpoint(ckpt, args.output, overwrite=args.overwrite)
    x = torch.from_numpy(calibration_inputs(None, args.scale, patch=48, stride=48)[0])
    with torch.no_grad(), _errors_exit():
        diff = float((describe(args.output, args.scale).build()(x) - net.eval()(x)).abs().max())
    if diff != 0:
        sys.exit(f'export: {args.output} reloads to a network that differs by {diff:.3g}; the file was kept for '
                 'inspection')
    print(f'{args.input} -> {args.output} ({type(net).__name__} x{args.scale}, {len(ckpt["params"])} tensors, '
          'safetensors): reloaded, identical output on a photograph (max |difference| 0)')


def _calibration(args, patch):
    with _errors_exit():
        return calibration_inputs(args.calib, args.scale, patch=patch, stride=max(1, patch * 3 // 4),
                                  downscale=not args.calib_lr)


def _export_tflite(args, net):
    with _errors_exit(RuntimeError, ImportError):  # litert-torch missing, or a conversion it refuses
        res = export_tflite(net, args.output, args.input_size, overwrite=args.overwrite)
    print(f'{args.input} -> {res["path"]} ({type(net).__name__}, TFLite fp32, input 1x3x{res["input_size"]}x'
          f'{res["input_size"]}, x{res["scale"]}): TFLite vs PyTorch max |difference| = {res["max_abs_diff"]:.3g} '
          '(limit 1e-4)')
    if args.int8:
        inputs = _calibration(args, args.calib_patch)
        with _errors_exit():
            q = quantize_tflite_int8(net, args.int8, inputs, args.input_size, overwrite=args.overwrite)
        print(f'{res["path"]} -> {q["path"]}: TFLite full-integer INT8 (weights int8 per channel, activations int8, '
              f'input/output int8 at scale {q["input_quantization"][0]:.6g} zero point {q["input_quantization"][1]}; '
              f'calibrated on {q["calibration_inputs"]} LR patches of {args.calib or "scikit-image photographs"})')


def _export_with_clips(args, net, info, fmt):
    """A network whose method learned its activation clips (``info['int8_clips']``): fp32 ONNX of its full-precision
    network and, with ``--int8``, the QDQ model on those clips."""
    clips = info['int8_clips']
    if fmt != '.onnx':
        sys.exit(f'export: {args.input} is {info.get("onnx_only", "a checkpoint with learned clips")}; it exports to '
                 'ONNX only (--output x.onnx)')
    os.makedirs(osp.dirname(osp.abspath(args.output)), exist_ok=True)
    res = export_onnx(net, args.output, opset=args.opset, overwrite=args.overwrite)
    _print_onnx(args, net, res)
    if args.int8:
        inputs = _calibration(args, args.calib_patch)
        with _errors_exit():
            q = quantize_pams_qdq(args.output, args.int8, clips, inputs, int8_outputs=args.pams_int8_outputs,
                                  method=args.calib_method, overwrite=args.overwrite)
        alphas = ', '.join(f'{k} {a:.4g}' for k, (_, a) in clips.items())
        print(f'{res["path"]} -> {q["path"]}: PAMS w8a8 QDQ ({q["quantized_convs"]} convs; weights int8 per tensor '
              f'(max-abs), inputs uint8 on the learned clips [{alphas}]; outputs '
              + (f'uint8, {q["method"]} calibration on {len(inputs)} LR patches: integer convolutions)'
                 if q['int8_outputs'] else "float, as PAMS'; not faster than fp32)"))

if __name__ == '__main__':
    main()
