"""Crop DIV2K-style images into sub-images (BasicSR's rule), optionally with PCSR's multi-scale HR augmentation.

Examples (DIV2K layout, see datasets/README.md)::

    # HR 480/240 and LR x4 120/60 sub-images for paired training (EDSR/BasicSR convention)
    python scripts/extract_subimages.py --input datasets/DIV2K/DIV2K_train_HR \
        --output datasets/DIV2K/DIV2K_train_HR_sub --crop_size 480 --step 240
    python scripts/extract_subimages.py --input datasets/DIV2K/DIV2K_train_LR_bicubic/X4 \
        --output datasets/DIV2K/DIV2K_train_LR_bicubic/X4_sub --crop_size 120 --step 60 --strip_suffix x4
    # PCSR: HR resized by {1, 0.9, 0.8, 0.7, 0.6} (MATLAB bicubic), 128/64 sub-images, thresh 48
    python scripts/extract_subimages.py --input datasets/DIV2K/DIV2K_train_HR \
        --output datasets/DIV2K/HR_aug_sub128 --crop_size 128 --step 64 --thresh_size 48 \
        --augment_scales 1,0.9,0.8,0.7,0.6

Names: ``<stem>_s###.png``; with ``--augment_scales`` the scale is prefixed as ``s090_<stem>_s###.png`` (a dot
in a name would break LMDB keys). Existing output folders are never overwritten; every image is checked first, and
an interrupted run leaves no partial output folder.
"""
import argparse
import os
import os.path as osp
import shutil
import sys
import tempfile
from multiprocessing import Pool

import cv2

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

from adaptsr.core.data_prep import extract_subimages, list_images, resize_uint8, write_png  # noqa: E402


def process(job):
    path, out_dir, args = job
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f'cannot read image {path!r}')
    stem = osp.splitext(osp.basename(path))[0]
    if args.strip_suffix and stem.endswith(args.strip_suffix):
        stem = stem[:-len(args.strip_suffix)]
    scales = [float(s) for s in args.augment_scales.split(',')] if args.augment_scales else [None]
    n = 0
    for scale in scales:
        src, prefix = img, ''
        if scale is not None:
            prefix = f's{int(round(scale * 100)):03d}_'
            if scale != 1:
                src = resize_uint8(img, scale)
        for i, sub in enumerate(extract_subimages(src, args.crop_size, args.step, args.thresh_size)):
            write_png(osp.join(out_dir, f'{prefix}{stem}_s{i + 1:03d}.png'), sub, args.compression_level)
            n += 1
    return n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True)
    parser.add_argument('--output', required=True)
    parser.add_argument('--crop_size', type=int, default=480)
    parser.add_argument('--step', type=int, default=240)
    parser.add_argument('--thresh_size', type=int, default=0)
    parser.add_argument('--compression_level', type=int, default=3)
    parser.add_argument('--strip_suffix', default=None, help='remove this from file stems (e.g. x4)')
    parser.add_argument('--augment_scales', default=None, help='comma-separated HR resize factors (PCSR: 1,0.9,...)')
    parser.add_argument('--n_thread', type=int, default=2)
    args = parser.parse_args(argv)
    names = list_images(args.input)
    if not names:
        sys.exit(f'no images in {args.input}')
    if osp.exists(args.output):
        sys.exit(f'{args.output} already exists; remove it first (nothing is overwritten)')
    for n in names:  # every image is checked before anything is written
        if cv2.imread(osp.join(args.input, n), cv2.IMREAD_UNCHANGED) is None:
            sys.exit(f'extract_subimages: {osp.join(args.input, n)}: cannot be read as an image (empty, truncated or '
                     'not an image file); nothing was written')
    # all or nothing: the sub-images go to a hidden folder beside the output, renamed to it when every one is written
    out = osp.abspath(args.output)
    partial = tempfile.mkdtemp(prefix=f'.{osp.basename(out)}.', suffix='.partial', dir=osp.dirname(out))
    try:
        jobs = [(osp.join(args.input, n), partial, args) for n in names]
        if args.n_thread > 1:
            with Pool(args.n_thread) as pool:
                counts = pool.map(process, jobs)
        else:
            counts = [process(j) for j in jobs]
        os.rename(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    print(f'{len(names)} images -> {sum(counts)} sub-images in {args.output}')


if __name__ == '__main__':
    main()
