"""The work of ``adaptsr-export`` (:mod:`adaptsr.cli.export` parses and checks the command line, then calls
:func:`run`): recognise the checkpoint, take its deployable form, write and check each requested file."""
import contextlib
import os
import os.path as osp
import sys

import numpy as np
import torch

from adaptsr.api import describe
from adaptsr.core.checkpoint_io import basicsr_checkpoint, save_checkpoint
from adaptsr.deploy.onnx_export import export_onnx
from adaptsr.deploy.onnx_quant import calibration_inputs, quantize_onnx_int8, quantize_pams_qdq
from adaptsr.deploy.tflite_export import export_tflite, quantize_tflite_int8


def run(args, fmt):
    """Export ``args.input`` (parsed and checked by :mod:`adaptsr.cli.export`) to ``fmt`` (``.onnx``, ``.tflite`` or
    ``.safetensors``), with the ``--int8`` / ``--fp16`` files it asks for; each is checked against PyTorch."""
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
