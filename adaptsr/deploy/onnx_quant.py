"""INT8 ONNX of an exported plain model: static QDQ quantisation by onnxruntime's quantisation tools.

Weights int8 per output channel, activations uint8 per tensor, calibrated on LR patches of photographs the user
names (default: scikit-image's photographs, the demo photos of the quick start). Source of the deployment flow: the
ETDS paper (INT8 mobile deployment; its INT8 procedure is unpublished, github.com/ECNUSR/ETDS issue #5).
"""
import os
import os.path as osp

import numpy as np
from basicsr.utils.matlab_functions import imresize

from adaptsr.core.data_util import IMG_EXTENSIONS
from adaptsr.deploy.onnx_export import require_onnx
from adaptsr.utils.atomic import atomic_write

#: onnxruntime calibration methods by name
CALIBRATION_METHODS = ('minmax', 'percentile', 'entropy')


def _static_options(method, inputs, input_name):
    """``quantize_static``'s calibration arguments for a ``method`` of :data:`CALIBRATION_METHODS` (the callers
    check it): ``(data reader over inputs, CalibrationMethod, extra_options)``."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{input_name: x} for x in inputs])

        def get_next(self):
            return next(self.items, None)

    calibrator = {'minmax': CalibrationMethod.MinMax, 'percentile': CalibrationMethod.Percentile,
                  'entropy': CalibrationMethod.Entropy}[method]
    return Reader(), calibrator, ({'CalibPercentile': 99.999} if method == 'percentile' else {})


def _photos(paths):
    import cv2
    if not paths:
        from skimage import data
        for name in ('astronaut', 'chelsea', 'coffee', 'rocket', 'camera'):
            img = getattr(data, name)()
            yield f'skimage:{name}', (np.stack([img] * 3, -1) if img.ndim == 2 else img[:, :, :3])
        return
    files = []
    for p in paths:
        files += sorted(osp.join(p, f) for f in os.listdir(p) if f.lower().endswith(IMG_EXTENSIONS)) \
            if osp.isdir(p) else [p]
    if not files:
        raise ValueError(f'calibration images {list(paths)}: no image found')
    for f in files:
        img = cv2.imread(f, cv2.IMREAD_COLOR)
        if img is None:
            raise ValueError(f'calibration image {f}: cannot be read')
        yield f, img[:, :, ::-1]


def calibration_inputs(paths=None, scale=4, patch=64, stride=48, downscale=True):
    """LR patches for calibration: each photo downscaled by ``1 / scale`` (MATLAB-style bicubic, as the training
    LR) unless ``downscale`` is False (the files are LR already), then cut into ``patch`` x ``patch`` tiles at
    ``stride`` (equal shapes, which the histogram calibrators need).

    Args:
        paths (list[str] | None): image files or folders; None: scikit-image's photographs.
        scale (int): the model's scale. patch (int), stride (int): LR pixels.
        downscale (bool): whether the images are HR (downscaled here) or LR.

    Returns:
        list[ndarray]: (1, 3, patch, patch) float32 RGB in [0, 1].

    Raises:
        ValueError: no image, an unreadable file, or no image at least ``patch`` pixels a side after downscaling.
    """
    out = []
    for _, rgb in _photos(paths):
        img = rgb.astype(np.float32) / 255.0
        if downscale:
            img = np.clip(imresize(img, 1 / scale), 0, 1)
        chw = img.transpose(2, 0, 1).astype(np.float32)
        for y in range(0, chw.shape[1] - patch + 1, stride):
            for x in range(0, chw.shape[2] - patch + 1, stride):
                out.append(np.ascontiguousarray(chw[None, :, y:y + patch, x:x + patch]))
    if not out:
        raise ValueError(f'calibration images {paths}: none is {patch} LR pixels a side (after x1/{scale})')
    return out


def quantize_onnx_int8(fp32_path, out_path, inputs, method='percentile', overwrite=False):
    """Static INT8 (QDQ) quantisation of an ONNX model with onnxruntime (``quantize_static``).

    Args:
        fp32_path (str): the float model (one input, e.g. :func:`adaptsr.deploy.onnx_export.export_onnx`'s).
        out_path (str): the INT8 model to write (atomically).
        inputs (list[ndarray]): calibration inputs (:func:`calibration_inputs`).
        method (str): ``minmax``, ``percentile`` (99.999) or ``entropy``.
        overwrite (bool): replace an existing ``out_path``.

    Returns:
        dict: ``{'path', 'method', 'calibration_inputs', 'quantized_convs'}``.

    Raises:
        FileExistsError: ``out_path`` exists and not ``overwrite``. ValueError: an unknown method.
    """
    onnx, ort = require_onnx()
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    if method not in CALIBRATION_METHODS:
        raise ValueError(f'calibration method must be one of {CALIBRATION_METHODS}, got {method!r}')
    if osp.exists(out_path) and not overwrite:
        raise FileExistsError(f'{out_path!r} exists; choose another name or pass --overwrite')
    name = ort.InferenceSession(fp32_path, providers=['CPUExecutionProvider']).get_inputs()[0].name
    reader, calib, extra = _static_options(method, inputs, name)
    with atomic_write(out_path) as tmp:
        quantize_static(fp32_path, tmp, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=calib,
                        extra_options=extra)
    graph = onnx.load(out_path).graph
    return {'path': out_path, 'method': method, 'calibration_inputs': len(inputs),
            'quantized_convs': sum(1 for n in graph.node if n.op_type == 'Conv')}


def quantize_pams_qdq(fp32_path, out_path, clips, inputs, int8_outputs=False, method='percentile', overwrite=False):
    """The PAMS w8a8 network as a QDQ ONNX model: the quantisation adaptsr trained, run by onnxruntime.

    Each quantised convolution (PAMS: Li et al., ECCV 2020, Sec. 3.2; github.com/colorjam/PAMS) gets its input
    quantised with its learned clip: ``scale = alpha / 127`` on PAMS' grid (uint8, zero point 128: the signed
    levels -127..127 shifted), and its weight int8 per tensor with ``scale = max|W| / 127`` (PAMS' max-abs weight
    quantiser); bias int32. The other convolutions (PAMS keeps the first and last in full precision) stay fp32.

    By default the convs' outputs stay float, as in PAMS: the model computes adaptsr's PAMS simulation (a rounding
    tie may flip one level), but onnxruntime then dequantises and runs float convolutions, no faster than fp32. With
    ``int8_outputs`` the outputs are quantised too (uint8, calibrated on ``inputs`` by ``method``), so that
    onnxruntime fuses each conv into an integer convolution (QLinearConv): faster, at a small PSNR cost that PAMS'
    training did not see.

    Args:
        fp32_path (str): the backbone's fp32 ONNX model (:func:`adaptsr.deploy.onnx_export.export_onnx` of
            :func:`pams_backbone`'s network), whose Conv weights keep the backbone's parameter names.
        out_path (str): the QDQ model to write (atomically).
        clips (dict): :func:`pams_backbone`'s ``{conv name: (bits, alpha)}``; only 8 bits are exported.
        inputs (list[ndarray]): calibration inputs for the output ranges (:func:`calibration_inputs`).
        int8_outputs (bool): quantise the convs' outputs too (see above).
        method (str): the outputs' calibration, as :func:`quantize_onnx_int8`'s.
        overwrite (bool): replace an existing ``out_path``.

    Returns:
        dict: ``{'path', 'quantized_convs', 'int8_outputs', 'clips'}``.

    Raises:
        FileExistsError: ``out_path`` exists and not ``overwrite``. ValueError: a clip is not 8-bit, or a quantised
            conv has no Conv node in the ONNX model, or an unknown method.
    """
    onnx, _ = require_onnx()
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    if osp.exists(out_path) and not overwrite:
        raise FileExistsError(f'{out_path!r} exists; choose another name or pass --overwrite')
    graph = onnx.load(fp32_path).graph
    name = graph.input[0].name
    nodes, overrides = [], {}
    for conv, (bits, alpha) in clips.items():
        if bits != 8:
            raise ValueError(f'{conv}: only 8-bit activations export as QDQ, got {bits} bits')
        weights = (f'{conv}.weight', f'inner.{conv}.weight')  # export_onnx wraps the network as ``inner``
        node = next((n for n in graph.node if n.op_type == 'Conv' and n.input[1] in weights), None)
        if node is None:
            raise ValueError(f'{fp32_path}: no Conv with weight {conv}.weight')
        nodes.append(node.name)
        overrides[node.input[0]] = [{'scale': np.array(alpha / 127, np.float32), 'zero_point': np.array(128, np.uint8)}]

    if method not in CALIBRATION_METHODS:
        raise ValueError(f'calibration method must be one of {CALIBRATION_METHODS}, got {method!r}')
    reader, calib, extra = _static_options(method, inputs, name)
    extra.update(TensorQuantOverrides=overrides, WeightSymmetric=True, ActivationSymmetric=False)
    if not int8_outputs:
        extra['OpTypesToExcludeOutputQuantization'] = ['Conv']
    with atomic_write(out_path) as tmp:
        quantize_static(fp32_path, tmp, reader, quant_format=QuantFormat.QDQ, per_channel=False,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_quantize=nodes,
                        calibrate_method=calib, extra_options=extra)
    return {'path': out_path, 'quantized_convs': len(nodes), 'int8_outputs': int8_outputs, 'method': method,
            'clips': dict(clips)}


__all__ = ['calibration_inputs', 'quantize_onnx_int8', 'quantize_pams_qdq', 'CALIBRATION_METHODS']
