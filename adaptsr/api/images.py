"""Images in and out of a model: reading (8/16-bit, grey, alpha), the HR of an input, writing and quality.

Used by ``adaptsr-infer`` and the bench's comparison protocol; errors are :class:`~adaptsr.core.errors.InferError`
naming the file.
"""
import glob
import math
import os
import os.path as osp

import cv2
import numpy as np
from basicsr.metrics import calculate_psnr, calculate_ssim

from adaptsr.core.data_util import IMG_EXTENSIONS as IMAGE_EXTENSIONS
from adaptsr.core.errors import InferError


# ------------------------------------------------------------------------------------------------ images
def list_inputs(specs):
    """Image files named by ``specs``: files, folders (their images, sorted, not recursive) or glob patterns.

    Raises:
        InferError: a spec that names no image, or two inputs with the same stem (their outputs would collide).
    """
    files = []
    for spec in specs:
        if osp.isdir(spec):
            found = sorted(osp.join(spec, f) for f in os.listdir(spec) if f.lower().endswith(IMAGE_EXTENSIONS))
        elif osp.isfile(spec):
            found = [spec]
        else:
            found = sorted(f for f in glob.glob(spec) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not found:
            raise InferError(f'{spec}: no image (not a file, a folder with images or a glob matching any; '
                             f'extensions {", ".join(IMAGE_EXTENSIONS)})')
        files += found
    stems = {}
    for f in files:
        stem = osp.splitext(osp.basename(f))[0]
        if stem in stems and osp.abspath(stems[stem]) != osp.abspath(f):
            raise InferError(f'{stems[stem]} and {f} have the same stem; their SR images would both be {stem}.png')
        stems[stem] = f
    return list(dict.fromkeys(stems.values()))


def read_image(path):
    """An input image as the network's RGB input and what is needed to write it back like the input.

    Returns:
        dict: ``rgb`` (H, W, 3) float32 RGB in [0, 1]; ``alpha`` (H, W) float32 in [0, 1] or None; ``mode``
        ('grey', 'rgb' or 'rgba'); ``bits`` (8 or 16).

    Raises:
        InferError: unreadable file, or an unsupported depth/channel count.
    """
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InferError(f'{path}: cannot be read as an image')
    if img.dtype == np.uint8:
        bits, img = 8, img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        bits, img = 16, img.astype(np.float32) / 65535.0
    else:
        raise InferError(f'{path}: {img.dtype} pixels are not supported (8- or 16-bit integers)')
    alpha = None
    if img.ndim == 2 or img.shape[2] == 1:
        mode, bgr = 'grey', np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2)
    elif img.shape[2] == 3:
        mode, bgr = 'rgb', img
    elif img.shape[2] == 4:
        mode, bgr, alpha = 'rgba', img[:, :, :3], img[:, :, 3]
    else:
        raise InferError(f'{path}: {img.shape[2]} channels are not supported (1, 3 or 4)')
    return {'rgb': np.ascontiguousarray(bgr[:, :, ::-1]), 'alpha': alpha, 'mode': mode, 'bits': bits}


def quantize(output, bits):
    """The network's output as an image: (3, H, W) float RGB tensor -> (H, W, 3) uint8/uint16 BGR array, clipped to
    [0, 1] and rounded (one float temporary, so that an 8K output is not held several times over)."""
    peak = 65535.0 if bits == 16 else 255.0
    q = output.detach().clamp(0, 1).mul_(peak).round_()
    out = q.permute(1, 2, 0).cpu().numpy().astype(np.uint16 if bits == 16 else np.uint8)
    del q
    return np.ascontiguousarray(out[:, :, ::-1])


def finish_image(sr_bgr, image, scale):
    """The SR image in the input's form: grey -> its luma, RGBA -> the bicubic-upscaled alpha appended.

    Args:
        sr_bgr (ndarray): (H, W, 3) BGR of the input's depth (:func:`quantize`). image (dict): :func:`read_image`'s.
        scale (int): the scale (for the alpha).

    Returns:
        ndarray: (H, W) or (H, W, 3|4) uint8/uint16 in OpenCV's channel order, ready for ``cv2.imwrite``.
    """
    if image['mode'] == 'grey':
        return cv2.cvtColor(sr_bgr, cv2.COLOR_BGR2GRAY)
    if image['mode'] == 'rgba':
        h, w = sr_bgr.shape[:2]
        peak = np.iinfo(sr_bgr.dtype).max
        alpha = np.clip(cv2.resize(image['alpha'], (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)
        return np.concatenate([sr_bgr, (alpha * peak).round().astype(sr_bgr.dtype)[:, :, None]], axis=2)
    return sr_bgr


def find_hr(hr_dir, stem, scale):
    """The ground truth of ``stem`` in ``hr_dir``: same stem, or the stem without an ``x<scale>`` suffix (the EDSR
    LR naming, ``img_001x4`` -> ``img_001``), any image extension.

    Raises:
        InferError: none found (the names tried are listed).
    """
    names = [stem] + ([stem[:-len(f'x{scale}')]] if stem.endswith(f'x{scale}') else [])
    for name in names:
        for ext in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS):
            path = osp.join(hr_dir, name + ext)
            if osp.isfile(path):
                return path
    raise InferError(f'--hr {hr_dir}: no ground truth for {stem} (tried {", ".join(n + ".*" for n in names)})')


def read_hr(hr_path, lr_shape, scale):
    """The HR image of an LR input: RGB (H, W, 3) float32 in [0, 1] with H, W = ``scale`` x ``lr_shape`` (h, w). An
    HR image up to ``scale - 1`` pixels larger (an LR made from it without a mod-crop) is cropped top-left, as
    BasicSR's paired datasets do.

    Raises:
        InferError: the HR size does not match ``scale`` x the LR size (the file is named).
    """
    rgb = read_image(hr_path)['rgb']
    h, w = rgb.shape[:2]
    if (h // scale, w // scale) != tuple(lr_shape):
        raise InferError(f'HR {hr_path}: {w}x{h} is not x{scale} of the {lr_shape[1]}x{lr_shape[0]} input')
    return rgb[:lr_shape[0] * scale, :lr_shape[1] * scale]


def quality(sr_u8, hr_rgb, scale):
    """PSNR/SSIM (Y, crop_border = scale) of an 8-bit SR image against its HR image, as ``test.py`` computes them.

    Args:
        sr_u8 (ndarray): (H, W, 3) uint8 BGR. hr_rgb (ndarray): (H, W, 3) float32 RGB in [0, 1] (:func:`read_hr`).
        scale (int): the scale (crop_border).
    """
    hr_u8 = (np.clip(hr_rgb[:, :, ::-1], 0, 1) * 255).round().astype(np.uint8)
    psnr = calculate_psnr(sr_u8, hr_u8, crop_border=scale, test_y_channel=True)
    ssim = calculate_ssim(sr_u8, hr_u8, crop_border=scale, test_y_channel=True) if min(sr_u8.shape[:2]) > \
        2 * scale + 11 else math.nan
    return psnr, ssim
