"""Export a plain SR model to ONNX (dynamic N/H/W) and check it against onnxruntime.

    adaptsr-export --input experiments/etds_m4c32_x4_demo/models/net_g_plain_latest.pth \
        --scale 4 --output deploy/etds_m4c32_x4.onnx [--opset 13]
    adaptsr-export --input $ADAPTSR_WEIGHTS/ETDS/ETDS_M6C32_x4.pth --scale 4 --output etds_m.onnx
    # and an INT8 model (static QDQ by onnxruntime's quantisation tools), calibrated on your photos
    adaptsr-export --input $ADAPTSR_WEIGHTS/ETDS/ETDS_M6C32_x4.pth --scale 4 --output etds_m.onnx \
        --int8 etds_m_int8.onnx [--calib photos/ [--calib-lr]] [--calib-method percentile|minmax|entropy]

``--input`` may be any checkpoint the ETDS converter reads: a plain ETDSPlain file (released or converted), or
anything with an equivalent plain form (ETDSNet, ETDS ablations, ECBSR in either form, ABPN; our own net_g_*.pth),
which is first converted to ETDSPlain by the equivalent transformation and verified. The export fails when
onnxruntime differs from PyTorch by 1e-5 (or twice PyTorch's own float32 error against float64, where larger) or
more on inputs of other sizes than the traced one (64x64 and an odd 37x53, batch 2). The released baselines without
an equivalent transformation (ESPCN, FSRCNN, Plain) are exported as they are. ``adaptsr-infer --model x.onnx`` runs
either model on images (seconds, PSNR with ``--hr``).
"""
import argparse
import os
import os.path as osp
import sys

import adaptsr  # noqa: F401  (registrations)
from adaptsr.convert import check_finite, load_checkpoint
from adaptsr.archs.etds_arch import ETDSAblationPlain, ETDSPlain
from adaptsr.archs.etds_baselines_arch import ESPCN, FSRCNN
from adaptsr.convert.etds import build_from_state_dict, et_convert
from adaptsr.convert.onnx_export import export_onnx
from adaptsr.convert.registry import checkpoint_state_dict

#: networks exported as they are (already plain, or without an equivalent transformation: the released baselines)
PLAIN_ARCHS = (ETDSPlain, ETDSAblationPlain, ESPCN, FSRCNN)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='adaptsr-export', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='checkpoint (.pth)')
    parser.add_argument('--scale', type=int, required=True)
    parser.add_argument('--output', required=True, help='.onnx file to write')
    parser.add_argument('--opset', type=int, default=13)
    parser.add_argument('--param_key', default='auto', help='params, params_ema or auto (params_ema if present)')
    parser.add_argument('--overwrite', action='store_true')
    parser.add_argument('--int8', default=None,
                        help='also write an INT8 ONNX model here (static QDQ: int8 per-channel weights, uint8 '
                             'activations calibrated on --calib; onnxruntime quantisation tools)')
    parser.add_argument('--calib', nargs='+', default=None,
                        help='calibration photos (files or folders of HR images, downscaled x1/scale here; default: '
                             "scikit-image's photographs, the quick start's demo photos)")
    parser.add_argument('--calib-lr', dest='calib_lr', action='store_true', help='the --calib images are LR already')
    parser.add_argument('--calib-method', dest='calib_method', default='percentile',
                        choices=('minmax', 'percentile', 'entropy'))
    parser.add_argument('--calib-patch', dest='calib_patch', type=int, default=64,
                        help='calibration patch side in LR pixels (equal shapes: the histogram calibrators need them)')
    args = parser.parse_args(argv)
    for out in (args.output, args.int8):
        if out and osp.exists(out) and not args.overwrite:
            parser.error(f'{out} exists; choose another name or pass --overwrite')
    try:
        sd = checkpoint_state_dict(load_checkpoint(args.input), args.input, args.param_key)
        check_finite(sd, args.input)  # a diverged training's weights are refused, not exported
    except ValueError as err:
        sys.exit(f'export_onnx: {err}')
    net = build_from_state_dict(sd, args.scale, args.input)
    if not isinstance(net, PLAIN_ARCHS):  # deploy the ET form: plain conv + activation, clamp embedded
        net, info = et_convert(net)
        print(f'converted {info["source_arch"]} -> ETDSPlain: max |difference| x 255 = {info["max_diff_255"]:.3g}')
    os.makedirs(osp.dirname(osp.abspath(args.output)), exist_ok=True)
    res = export_onnx(net, args.output, opset=args.opset, overwrite=args.overwrite)
    print(f'{args.input} -> {res["path"]} ({type(net).__name__}, opset {res["opset"]}, dynamic N/H/W): '
          f'onnxruntime vs PyTorch max |difference| = {res["max_abs_diff"]:.3g} (limit {res["tol"]:.3g}; PyTorch fp32 '
          f'vs fp64 {res["fp32_error"]:.3g}) on inputs {res["shapes"]}')
    if args.int8:
        from adaptsr.convert.onnx_quant import calibration_inputs, quantize_onnx_int8
        try:
            inputs = calibration_inputs(args.calib, args.scale, patch=args.calib_patch,
                                        stride=max(1, args.calib_patch * 3 // 4), downscale=not args.calib_lr)
            q = quantize_onnx_int8(args.output, args.int8, inputs, args.calib_method, overwrite=args.overwrite)
        except (ValueError, FileExistsError) as err:
            sys.exit(f'export_onnx: {err}')
        print(f'{res["path"]} -> {q["path"]}: INT8 QDQ ({q["quantized_convs"]} convs; weights int8 per channel, '
              f'activations uint8, {q["method"]} calibration on {q["calibration_inputs"]} LR patches of '
              f'{args.calib or "scikit-image photographs"})')


if __name__ == '__main__':
    main()
