"""ETDS training/test data: BasicSR paired data plus RGB channel shuffle, LR patch size, and the mod-12 protocol.

Source: Chao et al., CVPR 2023, github.com/ECNUSR/ETDS: the training augmentation, and the official test's
``GTmod12`` crop.
"""
import os.path as osp
import random
from copy import deepcopy

import numpy as np
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.data.transforms import augment, paired_random_crop
from basicsr.utils import FileClient, imfrombytes, img2tensor, scandir
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import DATASET_REGISTRY

from adaptsr.core.data_util import check_dataroot

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.PNG', '.JPG', '.JPEG', '.BMP')


@DATASET_REGISTRY.register()
class ETDSPairedDataset(PairedImageDataset):
    """BasicSR's ``PairedImageDataset`` with the ETDS recipe's extras.

    Options added to ``PairedImageDataset``'s:

    * ``lq_size`` (int): LR training patch (64 in the paper); sets ``gt_size = lq_size * scale``. A training HR
      that is not a multiple of the scale (less than ``scale`` pixels larger than ``LR * scale``) is cropped
      top-left to ``LR * scale`` first, the part its LR was made from.
    * ``use_channels_shuffle`` (bool, default true in training): the same random permutation of the RGB channels
      for LR and GT, every sample. Flips: ``use_hflip``; ``use_rot`` = vertical flip and transpose, each p = 0.5,
      as the official hflip/vflip/transpose.
    * ``regenerate_lq`` (bool, test only) with ``gt_mod`` (int, 12): the published protocol (``GTmod12``): HR cropped
      top-left to a multiple of ``gt_mod``, LR regenerated from the crop with BasicSR's MATLAB-style
      ``imresize(hr, 1 / scale)`` and rounded to 8 bits. Only ``dataroot_gt`` (a folder) is read.

    Items: ``{'lq': (3, h, w), 'gt': (3, h * scale, w * scale), 'lq_path', 'gt_path'}``, RGB in [0, 1].

    Raises:
        ValueError: ``lq_size`` and ``gt_size`` disagree, ``mean``/``std``/``color`` given, ``regenerate_lq`` in
            training or with LMDB, no images; at load time, a pair whose sizes do not match the scale (named).
        FileNotFoundError / KeyError: a missing folder or option (named).
    """

    def __init__(self, opt):
        opt = deepcopy(opt)  # BasicSR pops keys of io_backend: never mutate the caller's options
        name = opt.get('name', '?')
        scale = int(opt['scale'])
        if opt.get('lq_size') is not None:
            gt_size = int(opt['lq_size']) * scale
            if opt.get('gt_size') not in (None, gt_size):
                raise ValueError(f'dataset {name!r}: lq_size {opt["lq_size"]} x scale {scale} = {gt_size} '
                                 f'disagrees with gt_size {opt["gt_size"]}')
            opt['gt_size'] = gt_size
        for key in ('mean', 'std', 'color'):
            if opt.get(key) is not None:
                raise ValueError(f'dataset {name!r}: {key!r} is not supported; ETDS needs RGB in [0, 1] without '
                                 'normalisation (its identity stream and embedded clamp rely on it)')
        self.regenerate = bool(opt.get('regenerate_lq', False))
        if not self.regenerate:
            super().__init__(opt)
            return
        if opt['phase'] == 'train':
            raise ValueError(f'dataset {name!r}: regenerate_lq is a test protocol; train on paired LMDBs')
        if (opt.get('io_backend') or {'type': 'disk'})['type'] != 'disk':
            raise ValueError(f'dataset {name!r}: regenerate_lq reads an HR folder (io_backend type: disk)')
        self.opt = opt
        self.mod = int(opt.get('gt_mod', 12))
        if self.mod % scale:
            raise ValueError(f'dataset {name!r}: gt_mod {self.mod} is not a multiple of scale {scale}')
        root = check_dataroot(opt, 'dataroot_gt')
        self.paths = [{'gt_path': osp.join(root, p), 'lq_path': osp.join(root, p)}
                      for p in sorted(scandir(root)) if p.endswith(IMG_EXTENSIONS)]
        if not self.paths:
            raise ValueError(f'dataset {name!r}: no images in dataroot_gt = {root!r}')

    def __getitem__(self, index):
        if self.regenerate:
            return self._regenerated(index)
        if self.opt['phase'] != 'train':
            return super().__getitem__(index)
        return self._train_item(index)

    def _train_item(self, index):
        if self.file_client is None:
            self.file_client = FileClient(self.io_backend_opt.pop('type'), **self.io_backend_opt)
        s = self.opt['scale']
        gt_path, lq_path = self.paths[index]['gt_path'], self.paths[index]['lq_path']
        gt = imfrombytes(self.file_client.get(gt_path, 'gt'), float32=True)
        lq = imfrombytes(self.file_client.get(lq_path, 'lq'), float32=True)
        h, w = lq.shape[:2]
        if 0 <= gt.shape[0] - h * s < s and 0 <= gt.shape[1] - w * s < s:
            gt = gt[:h * s, :w * s]  # HR not a multiple of the scale: the part its LR was made from (mod crop)
        try:
            gt, lq = paired_random_crop(gt, lq, self.opt['gt_size'], s, gt_path)
        except ValueError as err:
            raise ValueError(f'dataset {self.opt.get("name", "?")!r}: pair {gt_path} / {lq_path}: '
                             f'{" ".join(map(str, err.args))}') from None
        gt, lq = augment([gt, lq], self.opt.get('use_hflip', True), self.opt.get('use_rot', True))
        gt, lq = img2tensor([gt, lq], bgr2rgb=True, float32=True)
        if self.opt.get('use_channels_shuffle', True):
            perm = random.sample(range(3), 3)  # python's RNG: seeded per worker by BasicSR
            gt, lq = gt[perm], lq[perm]
        return {'lq': lq, 'gt': gt, 'lq_path': lq_path, 'gt_path': gt_path}

    def _regenerated(self, index):
        path = self.paths[index]['gt_path']
        with open(path, 'rb') as f:
            hr = imfrombytes(f.read(), float32=False)  # uint8 BGR, 3 channels even for grayscale files
        h, w = hr.shape[:2]
        hr = hr[:h - h % self.mod, :w - w % self.mod]
        hr = hr.astype(np.float32) / 255.
        lq = imresize(hr, 1 / self.opt['scale'])
        lq = np.clip(np.round(lq * 255.), 0, 255).astype(np.float32) / 255.
        gt, lq = img2tensor([np.ascontiguousarray(hr), np.ascontiguousarray(lq)], bgr2rgb=True, float32=True)
        return {'lq': lq, 'gt': gt, 'lq_path': path, 'gt_path': path}
