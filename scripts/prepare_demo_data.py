"""Build the embedded demo data set from real photographs shipped with scikit-image (no download).

Layout written under ``--root`` (default ``datasets/demo``)::

    train/HR/<name>.png                     full training photographs
    train/HR_sub128/<name>_s###.png         128x128 HR sub-images, step 64 (PCSR's training crops)
    train/LR_bicubic_sub/X{2,3,4}/...       their bicubic LR (uint8), for paired-data baselines
    train_HR_sub128.lmdb                    LMDB of the HR sub-images (meta_info.txt inside)
    train_LR_bicubic_X{2,3,4}_sub.lmdb      LMDB of the paired LR sub-images
    val/HR/<name>.png, val/LR_bicubic/X{s}/<name>x{s}.png   validation pairs (EDSR layout)

LR images are made with BasicSR's MATLAB-compatible ``imresize`` (bicubic, antialias) and rounded to uint8.
Existing outputs are kept (never overwritten); pass ``--force`` to rebuild a missing part only after deleting it.
"""
import argparse
import os
import os.path as osp
import sys

import cv2
import numpy as np

os.environ.setdefault('TQDM_DISABLE', '1')  # make_lmdb_from_imgs prints a bar per image
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

from adaptsr.core.data_prep import bicubic_downscale, create_lmdb, extract_subimages, write_png  # noqa: E402

TRAIN = ['astronaut', 'rocket', 'motorcycle_left', 'hubble_deep_field', 'immunohistochemistry']
VAL = ['chelsea', 'coffee']
SCALES = (2, 3, 4)


def load_skimage(name):
    import skimage.data
    if name == 'motorcycle_left':
        img = skimage.data.stereo_motorcycle()[0]
    else:
        img = getattr(skimage.data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return cv2.cvtColor(img[..., :3].astype(np.uint8), cv2.COLOR_RGB2BGR)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default=osp.join(osp.dirname(__file__), '..', 'datasets', 'demo'))
    parser.add_argument('--crop', type=int, default=128, help='HR sub-image size')
    parser.add_argument('--step', type=int, default=64, help='HR sub-image step')
    args = parser.parse_args()
    root = osp.abspath(args.root)
    done_flag = osp.join(root, '.complete')
    if osp.exists(done_flag):
        print(f'Demo data already prepared in {root} (delete the folder to rebuild).')
        return
    if osp.exists(root) and os.listdir(root):
        sys.exit(f'{root} exists but is incomplete; delete it and run again (nothing is overwritten).')
    n_sub = 0
    for name in TRAIN:
        img = load_skimage(name)
        write_png(osp.join(root, 'train', 'HR', f'{name}.png'), img)
        for i, sub in enumerate(extract_subimages(img, args.crop, args.step, thresh_size=args.crop // 2)):
            write_png(osp.join(root, 'train', 'HR_sub128', f'{name}_s{i + 1:03d}.png'), sub)
            for s in SCALES:
                _, lr = bicubic_downscale(sub, s)
                write_png(osp.join(root, 'train', 'LR_bicubic_sub', f'X{s}', f'{name}_s{i + 1:03d}.png'), lr)
            n_sub += 1
    for name in VAL:
        img = load_skimage(name)
        write_png(osp.join(root, 'val', 'HR', f'{name}.png'), img)
        for s in SCALES:
            _, lr = bicubic_downscale(img, s)
            write_png(osp.join(root, 'val', 'LR_bicubic', f'X{s}', f'{name}x{s}.png'), lr)
    create_lmdb(osp.join(root, 'train', 'HR_sub128'), osp.join(root, 'train_HR_sub128.lmdb'))
    for s in SCALES:
        create_lmdb(osp.join(root, 'train', 'LR_bicubic_sub', f'X{s}'),
                    osp.join(root, f'train_LR_bicubic_X{s}_sub.lmdb'))
    open(done_flag, 'w').close()
    print(f'Demo data ready in {root}: {len(TRAIN)} training photos -> {n_sub} HR sub-images '
          f'({args.crop}px, step {args.step}), {len(VAL)} validation photos, LR x{SCALES}.')


if __name__ == '__main__':
    main()
