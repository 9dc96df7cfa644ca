"""INT8 ONNX of an exported plain model: static QDQ quantisation by onnxruntime's quantisation tools.

Weights int8 per output channel, activations uint8 per tensor, calibrated on LR patches of photographs the user
names (default: scikit-image's photographs, the demo photos of the quick start). Source of the deployment flow: the
ETDS paper (INT8 mobile deployment; its INT8 procedure is unpublished, github.com/ECNUSR/ETDS issue #5).
"""
import os
import os.path as osp

import numpy as np

from adaptsr.data.data_util import IMG_EXTENSIONS

#: onnxruntime calibration methods by name
CALIBRATION_METHODS = ('minmax', 'percentile', 'entropy')


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
    from basicsr.utils.matlab_functions import imresize
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
        fp32_path (str): the float model (one input, e.g. :func:`adaptsr.convert.onnx_export.export_onnx`'s).
        out_path (str): the INT8 model to write (atomically).
        inputs (list[ndarray]): calibration inputs (:func:`calibration_inputs`).
        method (str): ``minmax``, ``percentile`` (99.999) or ``entropy``.
        overwrite (bool): replace an existing ``out_path``.

    Returns:
        dict: ``{'path', 'method', 'calibration_inputs', 'quantized_convs'}``.

    Raises:
        FileExistsError: ``out_path`` exists and not ``overwrite``. ValueError: an unknown method.
    """
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from adaptsr.utils.atomic import atomic_write
    if method not in CALIBRATION_METHODS:
        raise ValueError(f'calibration method must be one of {CALIBRATION_METHODS}, got {method!r}')
    if osp.exists(out_path) and not overwrite:
        raise FileExistsError(f'{out_path!r} exists; choose another name or pass --overwrite')
    name = ort.InferenceSession(fp32_path, providers=['CPUExecutionProvider']).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{name: x} for x in inputs])

        def get_next(self):
            return next(self.items, None)

    calib = {'minmax': CalibrationMethod.MinMax, 'percentile': CalibrationMethod.Percentile,
             'entropy': CalibrationMethod.Entropy}[method]
    extra = {'CalibPercentile': 99.999} if method == 'percentile' else {}
    with atomic_write(out_path) as tmp:
        quantize_static(fp32_path, tmp, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=calib,
                        extra_options=extra)
    graph = onnx.load(out_path).graph
    return {'path': out_path, 'method': method, 'calibration_inputs': len(inputs),
            'quantized_convs': sum(1 for n in graph.node if n.op_type == 'Conv')}


__all__ = ['calibration_inputs', 'quantize_onnx_int8', 'CALIBRATION_METHODS']
