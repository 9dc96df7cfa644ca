"""Data preparation: sub-images, bicubic LR and LMDBs from any folder of HR images.

Behind ``adaptsr-prepare`` (:mod:`adaptsr.cli.prepare`: ``demo``, ``lmdb``, ``subimages``, ``pack``) and the
repository's ``scripts/prepare_*.py`` wrappers. BasicSR 1.4.2 on PyPI ships ``LmdbMaker`` and the MATLAB-compatible
``imresize`` but not its ``scripts/``; this module re-implements the sub-image rule and writes LMDBs atomically.
"""
import contextlib
import io
import math
import os
import os.path as osp
import re
import shutil
import tempfile
from functools import reduce
from multiprocessing import Pool

import cv2
import numpy as np
import skimage.data
from basicsr.utils import scandir
from basicsr.utils.lmdb_util import LmdbMaker, make_lmdb_from_imgs
from basicsr.utils.matlab_functions import imresize

from adaptsr.core.data_util import IMG_EXTENSIONS


def list_images(folder, recursive=False):
    """Sorted image paths (relative to ``folder``, sub-folders included when ``recursive``).

    Raises:
        FileNotFoundError: ``folder`` does not exist.
    """
    if not osp.isdir(folder):
        raise FileNotFoundError(f'image folder {folder!r} does not exist')
    return sorted(p for p in scandir(folder, recursive=recursive) if p.lower().endswith(IMG_EXTENSIONS))


def read_hr_uint8(path):
    """An HR training image as uint8 BGR (H, W, 3): grayscale is replicated to 3 channels, an alpha channel dropped.

    Raises:
        ValueError: the file cannot be decoded, or is not 8-bit (a 16-bit image would be silently rescaled).
    """
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f'{path}: cannot be read as an image (empty, truncated or not an image file)')
    if img.dtype != np.uint8:
        raise ValueError(f'{path}: {img.dtype} image; training LMDBs hold 8-bit images, convert it first')
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    elif img.shape[2] == 4:
        img = img[..., :3]
    elif img.shape[2] != 3:
        raise ValueError(f'{path}: {img.shape[2]} channels; expected gray, BGR or BGRA')
    return np.ascontiguousarray(img)


def lmdb_key(relpath):
    """LMDB key of an image at ``relpath``: sub-folders joined by ``_``, characters other than letters, digits,
    ``_`` and ``-`` replaced by ``_`` (BasicSR reads a key up to its first dot)."""
    return re.sub(r'[^A-Za-z0-9_-]', '_', osp.splitext(relpath)[0].replace(os.sep, '_').replace('/', '_'))


class AtomicLmdb:
    """A new BasicSR LMDB written under a temporary name and renamed when :meth:`commit` is called.

    An interrupted or failed run (:meth:`abort`) leaves no LMDB that looks finished. PNG bytes and ``meta_info.txt``
    as BasicSR's ``LmdbMaker`` writes them.

    Args:
        lmdb_path (str): final path, ending with ``.lmdb``.
        compress_level (int): PNG compression level (0-9).

    Raises:
        FileExistsError: ``lmdb_path`` exists (never overwritten). ValueError: the name does not end with ``.lmdb``.
    """

    def __init__(self, lmdb_path, compress_level=1):
        if not lmdb_path.endswith('.lmdb'):
            raise ValueError(f'lmdb path must end with .lmdb, got {lmdb_path!r}')
        if osp.exists(lmdb_path):
            raise FileExistsError(f'{lmdb_path!r} already exists; remove it first (adaptsr never overwrites data)')
        self.path, self.compress_level, self.keys = lmdb_path, compress_level, set()
        self.tmp = lmdb_path[:-len('.lmdb')] + f'.partial-{os.getpid()}.lmdb'
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.makedirs(osp.dirname(osp.abspath(lmdb_path)), exist_ok=True)
        self.maker = LmdbMaker(self.tmp, map_size=1 << 36, compress_level=compress_level)

    def put(self, key, img):
        """Add a uint8 image (H, W, C) under ``key``. Raises ValueError: a dotted or duplicated key."""
        if '.' in key or key in self.keys:
            raise ValueError(f'{self.path}: LMDB key {key!r} is ' + ('duplicated' if key in self.keys else 'dotted'))
        ok, buf = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, self.compress_level])
        if not ok:
            raise ValueError(f'{self.path}: cannot PNG-encode {key!r}')
        self.keys.add(key)
        self.maker.put(buf.tobytes(), key, img.shape if img.ndim == 3 else (*img.shape, 1))

    def commit(self):
        """Close and rename into place; returns the number of images. Raises FileExistsError (nothing replaced)."""
        if osp.exists(self.path):
            self.abort()
            raise FileExistsError(f'{self.path!r} appeared while it was being written; nothing was replaced')
        self.maker.close()
        os.rename(self.tmp, self.path)
        return len(self.keys)

    def abort(self):
        """Drop the temporary LMDB."""
        try:
            self.maker.txt_file.close()
            self.maker.env.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)


def prepare_hr_folder(input_dir, output_dir, crop_size=144, step=72, thresh_size=36, scales=(2, 3, 4),
                      augment_scales=None, compress_level=1, log=print):
    """Any folder of HR images -> HR sub-image LMDB plus bicubic LR x``s`` sub-image LMDBs (paired, same keys).

    Every image (sub-folders included; PNG, WebP, BMP, JPEG, TIFF) is read and checked first, so an unreadable file
    stops the run before anything is written. Each HR image (optionally resized by each factor of
    ``augment_scales``, MATLAB bicubic) is mod-cropped to the LCM of ``scales``; its LR x``s`` is BasicSR's
    MATLAB-compatible bicubic ``imresize`` of the whole image, rounded to uint8 (as the EDSR/DIV2K files). Sub-images
    follow BasicSR's ``extract_subimages`` rule (``crop_size``/``step``, a last crop flush with the border when the
    remainder exceeds ``thresh_size``); the LR ones are the same windows divided by ``s``. An image smaller than
    ``crop_size`` contributes nothing and is counted.

    Output (``output_dir``): ``HR_sub{crop}.lmdb`` and ``LR_bicubic_X{s}_sub{crop}.lmdb``; keys
    ``<sub-folder>_<stem>[_s<factor>]_s###``.

    Returns:
        dict: ``images``, ``skipped`` (smaller than the crop), ``sub_images`` and the written LMDB paths.

    Raises:
        FileNotFoundError: no input folder. FileExistsError: an output LMDB exists. ValueError: no images, an
        unreadable image, or ``crop_size``/``step`` not multiples of every scale.
    """
    scales = tuple(int(s) for s in scales)
    mult = reduce(lambda a, b: a * b // math.gcd(a, b), scales, 1)
    if crop_size % mult or step % mult:
        raise ValueError(f'crop_size {crop_size} and step {step} must be multiples of {mult} (LCM of scales {scales})')
    names = list_images(input_dir, recursive=True)
    if not names:
        raise ValueError(f'no images ({", ".join(IMG_EXTENSIONS)}) in {input_dir!r}')
    outputs = {'HR': osp.join(output_dir, f'HR_sub{crop_size}.lmdb')}
    outputs.update({f'X{s}': osp.join(output_dir, f'LR_bicubic_X{s}_sub{crop_size}.lmdb') for s in scales})
    for path in outputs.values():
        if osp.exists(path):
            raise FileExistsError(f'{path!r} already exists; remove it first (adaptsr never overwrites data)')
    for n in names:  # every file is checked before anything is written
        read_hr_uint8(osp.join(input_dir, n))
    augment_scales = [float(f) for f in augment_scales] if augment_scales else None
    stats = {'images': len(names), 'skipped': 0, 'sub_images': 0}
    writers, committed = {}, []
    try:
        for part, path in outputs.items():
            writers[part] = AtomicLmdb(path, compress_level)
        for name in names:
            img, key, n_sub = read_hr_uint8(osp.join(input_dir, name)), lmdb_key(name), 0
            for label, src in augmented_copies(img, augment_scales):
                tag = f'_{label}' if label else ''
                h, w = src.shape[0] - src.shape[0] % mult, src.shape[1] - src.shape[1] % mult
                if h < crop_size or w < crop_size:
                    continue
                src = src[:h, :w]
                lrs = {s: bicubic_downscale(src, s)[1] for s in scales}
                for i, (y, x) in enumerate([(y, x) for y in crop_positions(h, crop_size, step, thresh_size)
                                            for x in crop_positions(w, crop_size, step, thresh_size)]):
                    sub_key = f'{key}{tag}_s{i + 1:03d}'
                    writers['HR'].put(sub_key, src[y:y + crop_size, x:x + crop_size])
                    for s in scales:
                        writers[f'X{s}'].put(sub_key, lrs[s][y // s:(y + crop_size) // s, x // s:(x + crop_size) // s])
                    n_sub += 1
            stats['sub_images'] += n_sub
            stats['skipped'] += n_sub == 0
        if not stats['sub_images']:
            raise ValueError(f'no image in {input_dir!r} is at least {crop_size} pixels on both sides')
        for writer in writers.values():
            writer.commit()
            committed.append(writer.path)
    except BaseException:  # all or nothing: no half-built set of paired LMDBs is left behind
        for writer in writers.values():
            if osp.exists(writer.tmp):
                writer.abort()
        for path in committed:
            shutil.rmtree(path, ignore_errors=True)
        raise
    for part, path in outputs.items():
        size = crop_size // (1 if part == 'HR' else int(part[1:]))
        log(f'{path}: {stats["sub_images"]} {"HR" if part == "HR" else "LR " + part.lower()} sub-images {size}x{size}')
    stats['outputs'] = outputs
    return stats


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


def augmented_copies(img, factors=None):
    """``(label, image)`` for each HR resize factor of a multi-scale augmentation (PCSR's 1, 0.9, ..., MATLAB
    bicubic; label ``s090`` for 0.9, the image itself for 1), or ``('', img)`` alone without ``factors``; the callers
    put the label in their names (a dot would break LMDB keys)."""
    if not factors:
        yield '', img
        return
    for factor in (float(f) for f in factors):
        yield f's{int(round(factor * 100)):03d}', img if factor == 1 else resize_uint8(img, factor)


def resize_uint8(img_uint8, factor):
    """BasicSR's MATLAB-compatible bicubic (antialias) ``imresize`` of a uint8 image (H, W, C) by ``factor``,
    rounded back to uint8."""
    out = imresize(img_uint8.astype(np.float32) / 255.0, factor)
    return np.clip(np.round(out * 255.0), 0, 255).astype(np.uint8)


def bicubic_downscale(img_uint8, scale):
    """MATLAB-compatible bicubic (antialias) LR of an HR uint8 image (H, W, C) mod-cropped to ``scale``; uint8."""
    h, w = img_uint8.shape[:2]
    hr = img_uint8[:h - h % scale, :w - w % scale]
    return hr, resize_uint8(hr, 1 / scale)


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
    for name in names:  # every image decodes before anything is written (BasicSR's writer stops mid-way otherwise)
        path = osp.join(folder, name)
        if osp.getsize(path) == 0 or cv2.imread(path, cv2.IMREAD_UNCHANGED) is None:
            why = 'empty file' if osp.getsize(path) == 0 else 'cv2 cannot decode it'
            raise ValueError(f'{path}: not a readable image ({why}); fix or remove it, no LMDB was written')
    # written under a temporary name and renamed when complete: an interrupted run leaves no LMDB that looks usable
    partial = osp.join(osp.dirname(osp.abspath(lmdb_path)), f'.{osp.basename(lmdb_path)[:-5]}.partial.lmdb')
    if osp.exists(partial):
        shutil.rmtree(partial)  # this function's own leftover of an interrupted run
    try:
        # BasicSR sizes the map from the first image (x 10 x count), too small for tiny images (MDB_MAP_FULL); the
        # map is virtual address space, as AtomicLmdb's
        # BasicSR's writer prints a line and a progress bar per image; the callers print one summary line instead
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            make_lmdb_from_imgs(folder, partial, names, keys, n_thread=n_thread, multiprocessing_read=False,
                                map_size=1 << 36)
        os.replace(partial, lmdb_path)
    finally:
        if osp.exists(partial):
            shutil.rmtree(partial)
    return lmdb_path


def _subimages_of_file(job):
    """Sub-images of one file into ``out_dir`` (:func:`extract_subimage_folder`'s worker); returns their count."""
    path, out_dir, crop_size, step, thresh_size, compress_level, strip_suffix, augment_scales = job
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f'cannot read image {path!r}')
    stem = osp.splitext(osp.basename(path))[0]
    if strip_suffix and stem.endswith(strip_suffix):
        stem = stem[:-len(strip_suffix)]
    n = 0
    for label, src in augmented_copies(img, augment_scales):
        prefix = f'{label}_' if label else ''
        for i, sub in enumerate(extract_subimages(src, crop_size, step, thresh_size)):
            write_png(osp.join(out_dir, f'{prefix}{stem}_s{i + 1:03d}.png'), sub, compress_level)
            n += 1
    return n


def extract_subimage_folder(input_dir, output_dir, crop_size=480, step=240, thresh_size=0, compress_level=3,
                            strip_suffix=None, augment_scales=None, n_thread=2):
    """Crop every image of a folder into sub-images (BasicSR's ``extract_subimages`` rule), all or nothing.

    Names are ``<stem>_s###.png``; with ``augment_scales`` (PCSR's multi-scale HR, MATLAB bicubic) the factor is
    prefixed as ``s090_<stem>_s###.png`` (a dot in a name would break LMDB keys).

    Args:
        input_dir (str): images (PNG, WebP, BMP, JPEG, TIFF; uint8 or uint16).
        output_dir (str): the folder to create; it must not exist (never overwritten).
        crop_size, step, thresh_size (int): the sub-image size, stride and the border remainder (pixels) that gets
            its own flush crop.
        compress_level (int): PNG compression 0-9.
        strip_suffix (str | None): removed from stems (e.g. ``x4``) so GT and LQ names match.
        augment_scales (list[float] | None): HR resize factors, e.g. ``[1, 0.9, 0.8, 0.7, 0.6]``.
        n_thread (int): worker processes.

    Returns:
        tuple[int, int]: the images read and the sub-images written.

    Raises:
        FileExistsError: ``output_dir`` exists. ValueError: no images, or one that cannot be decoded (every image is
            checked before anything is written; an interrupted run leaves no partial ``output_dir``).
    """
    names = list_images(input_dir)
    if not names:
        raise ValueError(f'no images in {input_dir!r}')
    if osp.exists(output_dir):
        raise FileExistsError(f'{output_dir!r} already exists; remove it first (adaptsr never overwrites data)')
    for n in names:
        if cv2.imread(osp.join(input_dir, n), cv2.IMREAD_UNCHANGED) is None:
            raise ValueError(f'{osp.join(input_dir, n)}: cannot be read as an image (empty, truncated or not an image '
                             'file); nothing was written')
    out = osp.abspath(output_dir)
    partial = tempfile.mkdtemp(prefix=f'.{osp.basename(out)}.', suffix='.partial', dir=osp.dirname(out))
    try:
        jobs = [(osp.join(input_dir, n), partial, crop_size, step, thresh_size, compress_level, strip_suffix,
                 augment_scales) for n in names]
        if n_thread > 1:
            with Pool(n_thread) as pool:
                counts = pool.map(_subimages_of_file, jobs)
        else:
            counts = [_subimages_of_file(j) for j in jobs]
        os.rename(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return len(names), sum(counts)


#: the demo set's photographs, from scikit-image's bundled data (no download): training and validation
DEMO_TRAIN = ('astronaut', 'rocket', 'motorcycle_left', 'hubble_deep_field', 'immunohistochemistry')
DEMO_VAL = ('chelsea', 'coffee')
DEMO_SCALES = (2, 3, 4)


def _skimage_photo(name):
    """A photograph bundled with scikit-image, as uint8 BGR (H, W, 3)."""
    img = skimage.data.stereo_motorcycle()[0] if name == 'motorcycle_left' else getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return cv2.cvtColor(img[..., :3].astype(np.uint8), cv2.COLOR_RGB2BGR)


def build_demo_data(root, crop=128, step=64):
    """Build the embedded demo data set from photographs bundled with scikit-image (installed with adaptsr).

    Layout under ``root`` (the shipped ``*_demo.yml`` options read ``datasets/demo`` in the working directory)::

        train/HR/<name>.png                     full training photographs
        train/HR_sub128/<name>_s###.png         HR sub-images (crop x crop, stride step): PCSR's training crops
        train/LR_bicubic_sub/X{2,3,4}/...       their bicubic LR (uint8), for paired-data baselines
        train_HR_sub128.lmdb                    LMDB of the HR sub-images (meta_info.txt inside)
        train_LR_bicubic_X{2,3,4}_sub.lmdb      LMDBs of the paired LR sub-images
        val/HR/<name>.png, val/LR_bicubic/X{s}/<name>x{s}.png   validation pairs (EDSR layout)

    LR images are BasicSR's MATLAB-compatible bicubic ``imresize`` rounded to uint8. A finished set (``.complete``
    inside) is kept as it is.

    Args:
        root (str): the folder to build.
        crop, step (int): HR sub-image size and stride in pixels.

    Returns:
        dict | None: ``train``, ``val`` (photo counts) and ``sub_images``; None when ``root`` is already complete.

    Raises:
        FileExistsError: ``root`` exists, is not empty and is not a finished demo set (nothing is overwritten).
    """
    root = osp.abspath(root)
    if osp.exists(osp.join(root, '.complete')):
        return None
    if osp.exists(root) and os.listdir(root):
        raise FileExistsError(f'{root} exists but is not a finished demo set; delete it and run again (nothing is '
                              'overwritten)')
    n_sub = 0
    for name in DEMO_TRAIN:
        img = _skimage_photo(name)
        write_png(osp.join(root, 'train', 'HR', f'{name}.png'), img)
        for i, sub in enumerate(extract_subimages(img, crop, step, thresh_size=crop // 2)):
            write_png(osp.join(root, 'train', 'HR_sub128', f'{name}_s{i + 1:03d}.png'), sub)
            for s in DEMO_SCALES:
                _, lr = bicubic_downscale(sub, s)
                write_png(osp.join(root, 'train', 'LR_bicubic_sub', f'X{s}', f'{name}_s{i + 1:03d}.png'), lr)
            n_sub += 1
    for name in DEMO_VAL:
        img = _skimage_photo(name)
        write_png(osp.join(root, 'val', 'HR', f'{name}.png'), img)
        for s in DEMO_SCALES:
            _, lr = bicubic_downscale(img, s)
            write_png(osp.join(root, 'val', 'LR_bicubic', f'X{s}', f'{name}x{s}.png'), lr)
    create_lmdb(osp.join(root, 'train', 'HR_sub128'), osp.join(root, 'train_HR_sub128.lmdb'))
    for s in DEMO_SCALES:
        create_lmdb(osp.join(root, 'train', 'LR_bicubic_sub', f'X{s}'),
                    osp.join(root, f'train_LR_bicubic_X{s}_sub.lmdb'))
    open(osp.join(root, '.complete'), 'w').close()
    return {'train': len(DEMO_TRAIN), 'val': len(DEMO_VAL), 'sub_images': n_sub}
