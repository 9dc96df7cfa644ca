"""HR-only dataset with on-the-fly MATLAB-bicubic LR (PCSR training; the PCSR paper, github.com/3587jjh/PCSR)."""
import os.path as osp
import random

import numpy as np
from basicsr.data.data_util import paths_from_lmdb
from basicsr.utils import FileClient, imfrombytes, img2tensor, scandir
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data

from adaptsr.core.data_util import check_dataroot

IMG_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.PNG', '.JPG', '.JPEG', '.BMP')


@DATASET_REGISTRY.register()
class PCSRHRDataset(data.Dataset):
    """HR images (folder or LMDB) -> (LR, HR) pairs with LR made on the fly, as in PCSR's training.

    LR = ``basicsr.utils.matlab_functions.imresize(hr, 1/scale)`` (MATLAB bicubic, antialias), kept in float
    (not quantised to 8 bits).

    Options:
        dataroot_gt (str): HR folder or ``*.lmdb`` (``io_backend.type: lmdb``).
        io_backend (dict): ``{type: disk | lmdb}``.
        scale (int): injected by BasicSR from the top-level ``scale``.
        gt_size (int): train: HR crop size (a multiple of scale); omit to use the whole (mod-cropped) image.
        use_hflip / use_vflip / use_transpose (bool): train: three independent p = 0.5 augmentations.
        phase (str): ``train`` crops and augments; other phases mod-crop the HR to a multiple of the scale.

    Returns (per item): ``lq`` (3, h, w), ``gt`` (3, h*s, w*s) RGB float in [0, 1], ``lq_path``, ``gt_path``.

    Raises:
        FileNotFoundError: ``dataroot_gt`` missing. ValueError: empty folder, gt_size not a multiple of scale,
        or an image smaller than ``gt_size``.
    """

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.scale = int(opt['scale'])
        self.io_backend_opt = dict(opt.get('io_backend') or {'type': 'disk'})
        self.file_client = None
        root = check_dataroot(opt, 'dataroot_gt')
        if self.io_backend_opt['type'] == 'lmdb':
            self.io_backend_opt['db_paths'] = [root]
            self.io_backend_opt['client_keys'] = ['gt']
            self.paths = paths_from_lmdb(root)
        else:
            self.paths = sorted(osp.join(root, p) for p in scandir(root, recursive=True) if p.endswith(IMG_EXTENSIONS))
        if not self.paths:
            raise ValueError(f"dataset {opt.get('name', '?')!r}: no images found in dataroot_gt = {root!r}")
        self.gt_size = opt.get('gt_size')
        if self.gt_size is not None and self.gt_size % self.scale:
            raise ValueError(f"dataset {opt.get('name', '?')!r}: gt_size {self.gt_size} is not a multiple of "
                             f'scale {self.scale}')

    def __len__(self):
        return len(self.paths)

    def _read(self, path):
        if self.file_client is None:
            self.file_client = FileClient(self.io_backend_opt.pop('type'), **self.io_backend_opt)
        img_bytes = self.file_client.get(path, 'gt')
        img = imfrombytes(img_bytes, float32=True)  # BGR, 3 channels even for grayscale files
        if img is None:
            raise ValueError(f"dataset {self.opt.get('name', '?')!r}: cannot decode image {path!r}")
        return img

    def __getitem__(self, index):
        path = self.paths[index]
        img = self._read(path)
        s = self.scale
        if self.opt['phase'] == 'train' and self.gt_size is not None:
            h, w = img.shape[:2]
            if h < self.gt_size or w < self.gt_size:
                raise ValueError(f'image {path!r} ({h}x{w}) is smaller than gt_size {self.gt_size}')
            top, left = random.randint(0, h - self.gt_size), random.randint(0, w - self.gt_size)
            img = img[top:top + self.gt_size, left:left + self.gt_size]
        else:
            h, w = img.shape[:2]
            img = img[:h - h % s, :w - w % s]
        if self.opt['phase'] == 'train':
            if self.opt.get('use_hflip', True) and random.random() < 0.5:
                img = img[::-1]
            if self.opt.get('use_vflip', True) and random.random() < 0.5:
                img = img[:, ::-1]
            if self.opt.get('use_transpose', True) and random.random() < 0.5:
                img = img.transpose(1, 0, 2)
        img = np.ascontiguousarray(img)
        lq = imresize(img, 1 / s)
        gt, lq = img2tensor([img, np.ascontiguousarray(lq, dtype=np.float32)], bgr2rgb=True, float32=True)
        return {'lq': lq, 'gt': gt, 'lq_path': path, 'gt_path': path}
