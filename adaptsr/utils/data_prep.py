"""Data preparation shared by ``scripts/prepare_demo_data.py``, ``extract_subimages.py`` and ``create_lmdb.py``.

BasicSR 1.4.2 on PyPI ships ``make_lmdb_from_imgs`` and the MATLAB-compatible ``imresize`` but not its
``scripts/``; this module re-implements the sub-image rule and wraps the LMDB writer with safe checks.
"""
import os
import os.path as osp

import cv2
import numpy as np
from basicsr.utils import scandir
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from basicsr.utils.matlab_functions import imresize

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp')


def list_images(folder):
    """Sorted image file names (relative) in ``folder``; FileNotFoundError if it does not exist."""
    if not osp.isdir(folder):
        raise FileNotFoundError(f'image folder {folder!r} does not exist')
    return sorted(p for p in scandir(folder, recursive=False) if p.lower().endswith(IMG_EXTENSIONS))


def crop_positions(n, crop_size, step, thresh_size):
    """BasicSR's ``extract_subimages`` rule: starts every ``step``, plus a last one flush with the border when the
    remainder exceeds ``thresh_size``."""
    pos = list(range(0, n - crop_size + 1, step))
    if pos and n - (pos[-1] + crop_size) > thresh_size:
        pos.append(n - crop_size)
    return pos


def extract_subimages(img, crop_size, step, thresh_size=0):
    """Sub-images of ``img`` (H, W, C) as a list of arrays, in row-major order (BasicSR's rule)."""
    h, w = img.shape[:2]
    if h < crop_size or w < crop_size:
        return []
    return [img[y:y + crop_size, x:x + crop_size] for y in crop_positions(h, crop_size, step, thresh_size)
            for x in crop_positions(w, crop_size, step, thresh_size)]


def bicubic_downscale(img_uint8, scale):
    """MATLAB-compatible bicubic (antialias) LR of an HR uint8 image (H, W, C) mod-cropped to ``scale``; uint8."""
    h, w = img_uint8.shape[:2]
    hr = img_uint8[:h - h % scale, :w - w % scale]
    lr = imresize(hr.astype(np.float32) / 255.0, 1 / scale)
    return hr, np.clip(np.round(lr * 255.0), 0, 255).astype(np.uint8)


def write_png(path, img, compress_level=3):
    os.makedirs(osp.dirname(path), exist_ok=True)
    if not cv2.imwrite(path, img, [cv2.IMWRITE_PNG_COMPRESSION, compress_level]):
        raise OSError(f'could not write {path!r}')


def create_lmdb(folder, lmdb_path, suffix_to_strip=None, n_thread=2):
    """LMDB of every image in ``folder`` (keys = file stems, ``meta_info.txt`` included).

    Args:
        folder (str): images.
        lmdb_path (str): output, must end with ``.lmdb`` and must not exist (never overwritten).
        suffix_to_strip (str, optional): removed from keys (e.g. ``x4``) so GT and LQ keys match.

    Raises:
        FileExistsError: ``lmdb_path`` exists. ValueError: bad name, key with a dot, or no images.
    """
    if not lmdb_path.endswith('.lmdb'):
        raise ValueError(f'lmdb path must end with .lmdb, got {lmdb_path!r}')
    if osp.exists(lmdb_path):
        raise FileExistsError(f'{lmdb_path!r} already exists; remove it first (adaptsr never overwrites data)')
    names = list_images(folder)
    if not names:
        raise ValueError(f'no images in {folder!r}')
    keys = []
    for name in names:
        key = osp.splitext(name)[0]
        if suffix_to_strip and key.endswith(suffix_to_strip):
            key = key[:-len(suffix_to_strip)]
        if '.' in key:
            raise ValueError(f'LMDB key {key!r} (from {name!r}) contains a dot, which BasicSR cannot read back; '
                             'rename the file (e.g. 0.9_0001 -> s090_0001)')
        keys.append(key)
    make_lmdb_from_imgs(folder, lmdb_path, names, keys, n_thread=n_thread, multiprocessing_read=False)
    return lmdb_path
