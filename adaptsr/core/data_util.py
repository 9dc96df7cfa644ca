"""Checks shared by adaptsr datasets and the pipeline patches (not a ``*_dataset.py`` module)."""
import os.path as osp

import cv2
import numpy as np
from basicsr.data.data_util import paths_from_lmdb
from basicsr.utils import FileClient, img2tensor

from adaptsr.core.errors import DataReadError  # noqa: F401  (importable from here too)
from adaptsr.core.options import locate

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
    path = opt[key] = locate(f"datasets.{opt.get('name', '?')}.{key}", path)  # also under plain BasicSR
    if not osp.exists(path):
        raise FileNotFoundError(f"dataset {opt.get('name', '?')!r}: {key} = {path!r} does not exist "
                                '(adaptsr-prepare demo builds datasets/demo, adaptsr-prepare lmdb the training LMDBs '
                                'of any HR folder; ADAPTSR_BENCHMARK / ADAPTSR_DATA relocate datasets/benchmark/ '
                                'and datasets/)')
    return path


def check_dataset_paths(opt):
    """Check every ``dataroot_*`` / ``meta_info_file`` entry of one dataset's options; an LMDB root must also pass
    :func:`check_lmdb` (not truncated, every listed key present), and paired folders :func:`check_paired_folders`.

    Raises:
        KeyError, FileNotFoundError: see :func:`check_dataroot`. ValueError: a damaged LMDB, or folders that do not
        pair (named).
    """
    for key in opt:
        if (key.startswith('dataroot') or key == 'meta_info_file') and opt[key] is not None:
            path = check_dataroot(opt, key)
            if key.startswith('dataroot') and (opt.get('io_backend') or {}).get('type') == 'lmdb':
                try:
                    check_lmdb(path)
                except ValueError as err:
                    raise ValueError(f"dataset {opt.get('name', '?')!r}: {key}: {err}") from err
    check_paired_folders(opt)


def _folder_files(folder):
    """The names BasicSR's ``scandir`` lists in a folder (files, not hidden, not recursive), sorted."""
    import os
    return sorted(e.name for e in os.scandir(folder) if e.is_file() and not e.name.startswith('.'))


def _lmdb_keys(root):
    with open(osp.join(root, 'meta_info.txt')) as f:
        return {line.split('.')[0] for line in f if line.strip()}  # as BasicSR's paired_paths_from_lmdb


def _check_paired_lmdbs(name, gt_root, lq_root):
    """The two LMDBs of a paired dataset list the same keys (BasicSR: "Keys in lq_folder and gt_folder are
    different.", naming neither the LMDBs nor a key)."""
    if not all(osp.isfile(osp.join(r, 'meta_info.txt')) for r in (gt_root, lq_root)):
        return  # check_lmdb names a root that is not a BasicSR LMDB
    gt_keys, lq_keys = _lmdb_keys(gt_root), _lmdb_keys(lq_root)
    if gt_keys != lq_keys:
        only_gt, only_lq = sorted(gt_keys - lq_keys), sorted(lq_keys - gt_keys)
        raise ValueError(f'dataset {name!r}: the LMDBs do not pair: {len(only_gt)} key(s) only in dataroot_gt '
                         f'{gt_root} ({", ".join(only_gt[:3])}{", ..." if len(only_gt) > 3 else ""}), '
                         f'{len(only_lq)} only in dataroot_lq {lq_root} ({", ".join(only_lq[:3])}'
                         f'{", ..." if len(only_lq) > 3 else ""}); build both from the same images')


def check_paired_folders(opt):
    """Check, before BasicSR pairs them (``paired_paths_from_folder``: every file of both folders, the LR name being
    ``filename_tmpl.format(<HR stem>)`` + the HR's extension), that the ``dataroot_lq`` and ``dataroot_gt`` folders
    of a paired dataset hold images only and pair one to one; BasicSR's own checks are bare assertions ("different
    number of images: 1, 2", "x.png is not in lq_paths") that name no folder or template.

    Applies to a disk dataset with both folders and no ``meta_info_file`` (a dataset that regenerates its LR,
    ``regenerate_lq``, reads the HR folder only); two LMDBs must list the same keys.

    Raises:
        ValueError: a file that is not an image, an HR without its LR or an LR without its HR (the dataset, the
            folders, the files and ``filename_tmpl`` are named).
    """
    gt_root, lq_root = opt.get('dataroot_gt'), opt.get('dataroot_lq')
    if (opt.get('io_backend') or {}).get('type') == 'lmdb' and isinstance(gt_root, str) and \
            isinstance(lq_root, str):
        _check_paired_lmdbs(opt.get('name', '?'), gt_root, lq_root)
        return
    if not (isinstance(gt_root, str) and isinstance(lq_root, str) and osp.isdir(gt_root) and osp.isdir(lq_root)) or \
            opt.get('meta_info_file') or opt.get('regenerate_lq') or \
            (opt.get('io_backend') or {}).get('type', 'disk') != 'disk':
        return
    name = opt.get('name', '?')
    tmpl = opt.get('filename_tmpl', '{}')
    gt_files, lq_files = _folder_files(gt_root), _folder_files(lq_root)
    for key, root, files in (('dataroot_gt', gt_root, gt_files), ('dataroot_lq', lq_root, lq_files)):
        stray = [f for f in files if not f.lower().endswith(IMG_EXTENSIONS)]
        if stray:
            raise ValueError(f'dataset {name!r}: {key} = {root!r} holds {len(stray)} file(s) that are not images '
                             f'({", ".join(stray[:3])}{", ..." if len(stray) > 3 else ""}); BasicSR pairs every file '
                             'of the two folders: move them out')
    expected = {}
    for f in gt_files:
        stem, ext = osp.splitext(f)
        expected[f'{tmpl.format(stem)}{ext}'] = f
    lq_set = set(lq_files)
    no_lr = [f'{gt} (expects {lr})' for lr, gt in expected.items() if lr not in lq_set]
    no_hr = [f for f in lq_files if f not in expected]
    if no_lr or no_hr:
        parts = []
        if no_lr:
            parts.append(f'{len(no_lr)} HR file(s) of {gt_root} have no LR in {lq_root}: '
                         f'{", ".join(no_lr[:3])}{", ..." if len(no_lr) > 3 else ""}')
        if no_hr:
            parts.append(f'{len(no_hr)} LR file(s) of {lq_root} have no HR: '
                         f'{", ".join(no_hr[:3])}{", ..." if len(no_hr) > 3 else ""}')
        raise ValueError(f'dataset {name!r}: the LR name of an HR file is filename_tmpl {tmpl!r} + its extension; '
                         + '; '.join(parts) + ' (a wrong filename_tmpl, or a file missing from one folder)')


def read_image(path, what='image'):
    """An image file -> (1, 3, H, W) float32 RGB in [0, 1] (a grayscale file gives 3 equal channels, as BasicSR's
    datasets read it; 16-bit files are scaled by 65535).

    Raises:
        ValueError: the file is missing or not a readable image (``what`` and the path are named).
    """
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


def image_size(path):
    """(height, width) of an image file: read from the header of a PNG, else by decoding it.

    Raises:
        ValueError: not a readable image (the path is named).
    """
    with open(path, 'rb') as f:
        head = f.read(24)
    if head[:8] == b'\x89PNG\r\n\x1a\n' and head[12:16] == b'IHDR':
        return int.from_bytes(head[20:24], 'big'), int.from_bytes(head[16:20], 'big')
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f'cannot read {path!r} as an image')
    return img.shape[:2]


def check_pair_scale(lq_path, gt_path, scale):
    """Check that an LR/HR pair of files is a x``scale`` pair: ``scale * lr <= hr < scale * (lr + 1)`` in height
    and width (the HR of the EDSR layout may exceed ``scale * lr`` by less than ``scale``; BasicSR crops it).
    BasicSR's test datasets crop a larger HR silently to ``scale * lr``, so a pair of another scale would be scored
    against a corner of its HR.

    Raises:
        ValueError: the sizes say another scale (both files, their sizes and the ratio are named).
    """
    (lh, lw), (gh, gw) = image_size(lq_path), image_size(gt_path)
    if not (scale * lh <= gh < scale * (lh + 1) and scale * lw <= gw < scale * (lw + 1)):
        raise ValueError(f'LR {lq_path} ({lh}x{lw}) and HR {gt_path} ({gh}x{gw}) are not a x{scale} pair (HR/LR = '
                         f'{gh / max(lh, 1):.3g} x {gw / max(lw, 1):.3g}); check the scale option and the LR folder')


def check_lmdb(path):
    """Check a BasicSR LMDB before training reads it: the data file is as long as its last page says (a copy cut
    short ends in a bus error, not a Python error, when a page past its end is read) and every key of
    ``meta_info.txt`` is in the database.

    Raises:
        ValueError: truncated data file, or keys listed but absent (the LMDB and up to 5 keys are named).
    """
    import lmdb
    data = osp.join(path, 'data.mdb')
    if not osp.isfile(data):
        raise ValueError(f'LMDB {path}: no data.mdb')
    try:
        env = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False)
    except lmdb.Error as err:
        raise ValueError(f'LMDB {path} cannot be opened: {err}') from err
    try:
        need = (env.info()['last_pgno'] + 1) * env.stat()['psize']
        have = osp.getsize(data)
        if have < need:
            raise ValueError(f'LMDB {path}: data.mdb has {have} bytes but its pages need {need}: the file is '
                             'truncated (an interrupted copy or write); rebuild it (adaptsr-prepare pack or lmdb)')
        meta = osp.join(path, 'meta_info.txt')
        if osp.isfile(meta):
            with open(meta) as f:
                keys = [line.split('.')[0] for line in f if line.strip()]  # as BasicSR's paths_from_lmdb
            with env.begin() as txn:
                absent = [k for k in keys if txn.get(k.encode('ascii')) is None]
            if absent:
                raise ValueError(f'LMDB {path}: {len(absent)} key(s) listed in meta_info.txt are not in the database '
                                 f'({", ".join(absent[:5])}{", ..." if len(absent) > 5 else ""})')
    finally:
        env.close()


class NamedErrorDataset:
    """Wraps a dataset so that a sample it cannot read (missing/empty/truncated image, non-image file, LMDB key
    absent from the database) raises :class:`DataReadError` naming the dataset, the sample and its files or keys,
    instead of a bare cv2 assertion or ``'NoneType' object has no attribute 'astype'``. Every other attribute is the
    wrapped dataset's (``opt``, ``paths``...). Installed around BasicSR's ``build_dataset`` by
    :func:`adaptsr.compat.patch_pipelines`.

    Args:
        dataset (torch.utils.data.Dataset): the dataset built from the options.
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def __getattr__(self, name):
        if name == 'dataset':  # not set yet (unpickling in a DataLoader worker)
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        try:
            return self.dataset[index]
        except Exception as err:
            paths = getattr(self.dataset, 'paths', None)
            where = ''
            if paths is not None and len(paths):
                item = paths[index % len(paths)]
                where = ', '.join(f'{k} {v}' for k, v in item.items()) if isinstance(item, dict) else str(item)
            opt = getattr(self.dataset, 'opt', None) or {}
            backend = (opt.get('io_backend') or {}).get('type', 'disk')
            raise DataReadError(f"dataset {opt.get('name', type(self.dataset).__name__)!r} ({backend}): sample {index}"
                                f"{' (' + where + ')' if where else ''} cannot be read: {type(err).__name__}: "
                                f'{err}') from err
