"""Checks shared by adaptsr datasets and the pipeline patches (not a ``*_dataset.py`` module)."""
import os.path as osp

import cv2
import numpy as np

#: image file types adaptsr reads from folders (cv2 decodes them all)
IMG_EXTENSIONS = ('.png', '.webp', '.bmp', '.jpg', '.jpeg', '.tif', '.tiff')


def check_dataroot(opt, key):
    """The dataset path ``opt[key]``, or an error naming the dataset, the key and the path.

    Raises:
        KeyError: the key is absent. FileNotFoundError: the path does not exist.
    """
    path = opt.get(key)
    if path is None:
        raise KeyError(f"dataset {opt.get('name', '?')!r}: option {key!r} is required")
    if not osp.exists(path):
        raise FileNotFoundError(f"dataset {opt.get('name', '?')!r}: {key} = {path!r} does not exist "
                                '(see datasets/README.md for the expected layouts)')
    return path


def check_dataset_paths(opt):
    """Check every ``dataroot_*`` / ``meta_info_file`` entry of one dataset's options."""
    for key in opt:
        if (key.startswith('dataroot') or key == 'meta_info_file') and opt[key] is not None:
            check_dataroot(opt, key)


def read_image(path, what='image'):
    """An image file -> (1, 3, H, W) float32 RGB in [0, 1] (a grayscale file gives 3 equal channels, as BasicSR's
    datasets read it; 16-bit files are scaled by 65535).

    Raises:
        ValueError: the file is missing or not a readable image (``what`` and the path are named).
    """
    from basicsr.utils import img2tensor
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED) if osp.isfile(path) else None
    if img is None:
        raise ValueError(f'{what}: cannot read {path!r} as an image')
    scale = 65535. if img.dtype == np.uint16 else 255.
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3]
    return img2tensor(img.astype(np.float32) / scale, bgr2rgb=True, float32=True).unsqueeze(0)


def iter_images(root, what='images'):
    """``(name, (1, 3, H, W) float32 RGB in [0, 1])`` for every image of a folder (:data:`IMG_EXTENSIONS`, sorted)
    or of a BasicSR LMDB (``*.lmdb``, in ``meta_info.txt`` order, read through BasicSR's lmdb file client), one at a
    time.

    Raises:
        FileNotFoundError: ``root`` is neither, or holds no image. ValueError: an image or LMDB record that cannot be
        decoded (``what``, the file and the key are named).
    """
    import os
    from basicsr.data.data_util import paths_from_lmdb
    from basicsr.utils import FileClient, img2tensor
    if root.rstrip('/').endswith('.lmdb'):
        root = root.rstrip('/')
        if not osp.isfile(osp.join(root, 'meta_info.txt')):
            raise FileNotFoundError(f'{what}: {root!r} has no meta_info.txt (not a BasicSR LMDB)')
        keys = paths_from_lmdb(root)
        if not keys:
            raise FileNotFoundError(f'{what}: LMDB {root!r} lists no image')
        client = FileClient('lmdb', db_paths=[root], client_keys=['images'])
        for key in keys:
            buf = client.get(key, 'images')
            img = None if buf is None else cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise ValueError(f'{what}: LMDB {root!r} key {key!r} is ' +
                                 ('absent' if buf is None else 'not a decodable image'))
            yield key, img2tensor(img.astype(np.float32) / 255., bgr2rgb=True, float32=True).unsqueeze(0)
        return
    if not osp.isdir(root):
        raise FileNotFoundError(f'{what}: {root!r} is neither a folder of images nor a BasicSR LMDB')
    names = sorted(n for n in os.listdir(root) if n.lower().endswith(IMG_EXTENSIONS))
    if not names:
        raise FileNotFoundError(f'{what}: no image in {root!r}')
    for name in names:
        yield osp.splitext(name)[0], read_image(osp.join(root, name), what)
