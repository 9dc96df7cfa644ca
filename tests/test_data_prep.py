"""scripts/prepare_data.py: any HR folder -> paired HR/LR sub-image LMDBs that BasicSR's datasets read."""
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest

from adaptsr.core.data_prep import crop_positions, prepare_hr_folder, read_hr_uint8
from conftest import DATA, ROOT, require, run_script


def photos():
    """Real photographs from scikit-image (no download): name -> uint8 BGR."""
    import skimage.data
    return {'chelsea': skimage.data.chelsea(), 'coffee': skimage.data.coffee(), 'camera': skimage.data.camera()}


@pytest.fixture
def hr_folder(tmp_path):
    """Mixed formats and a sub-folder: chelsea.webp, coffee.png, sub/camera.jpg (grayscale), tiny.bmp (too small)."""
    root = tmp_path / 'hr'
    (root / 'sub').mkdir(parents=True)
    imgs = photos()
    cv2.imwrite(str(root / 'chelsea.webp'), cv2.cvtColor(imgs['chelsea'], cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_WEBP_QUALITY, 101])  # > 100: lossless
    cv2.imwrite(str(root / 'coffee.png'), cv2.cvtColor(imgs['coffee'], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(root / 'sub' / 'camera.jpg'), imgs['camera'])
    cv2.imwrite(str(root / 'tiny.bmp'), cv2.cvtColor(imgs['coffee'][:60, :80], cv2.COLOR_RGB2BGR))
    return root


def expected_subimages(h, w, crop, step, thresh, mult=12):
    h, w = h - h % mult, w - w % mult
    if h < crop or w < crop:
        return 0
    return len(crop_positions(h, crop, step, thresh)) * len(crop_positions(w, crop, step, thresh))


def lmdb_keys(path):
    with open(osp.join(path, 'meta_info.txt')) as f:
        return [line.split('.')[0] for line in f]


def test_prepare_data_builds_paired_lmdbs_that_basicsr_reads(hr_folder, tmp_path):
    from basicsr.data.paired_image_dataset import PairedImageDataset
    out = tmp_path / 'out'
    proc = run_script(['scripts/prepare_data.py', '--input', str(hr_folder), '--output', str(out),
                       '--crop_size', '96', '--step', '48', '--thresh_size', '24'])
    imgs = photos()
    want = sum(expected_subimages(*imgs[n].shape[:2], 96, 48, 24) for n in imgs)
    assert f'4 images (1 smaller than 96 px, skipped) -> {want} sub-images per LMDB, 4 LMDBs' in proc.stdout
    keys = lmdb_keys(out / 'HR_sub96.lmdb')
    assert len(keys) == want and any(k.startswith('sub_camera_s') for k in keys)
    for s in (2, 3, 4):
        assert lmdb_keys(out / f'LR_bicubic_X{s}_sub96.lmdb') == keys
        ds = PairedImageDataset({'dataroot_gt': str(out / 'HR_sub96.lmdb'), 'scale': s, 'phase': 'train',
                                 'dataroot_lq': str(out / f'LR_bicubic_X{s}_sub96.lmdb'), 'gt_size': 96,
                                 'io_backend': {'type': 'lmdb'}, 'use_hflip': False, 'use_rot': False})
        item = ds[0]
        assert tuple(item['gt'].shape) == (3, 96, 96) and tuple(item['lq'].shape) == (3, 96 // s, 96 // s)
        # the LR sub-image is the bicubic LR of its HR window (away from the window border, where the whole-image
        # LR sees the neighbouring pixels)
        from basicsr.utils.matlab_functions import imresize
        lr_ref = imresize(item['gt'].permute(1, 2, 0).numpy(), 1 / s)
        m = 4
        diff = item['lq'].permute(1, 2, 0).numpy()[m:-m, m:-m] - lr_ref[m:-m, m:-m]
        assert 10 * np.log10(1 / np.mean(diff ** 2)) > 45, f'x{s}'


def test_prepare_data_checks_every_file_first_and_writes_nothing_on_error(hr_folder, tmp_path):
    (hr_folder / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    out = tmp_path / 'out'
    with pytest.raises(ValueError, match='broken.png: cannot be read as an image'):
        prepare_hr_folder(str(hr_folder), str(out), 96, 48, 24, log=lambda *_: None)
    assert not out.exists() or not os.listdir(out)


def test_prepare_data_never_overwrites_and_leaves_no_partial_lmdb(hr_folder, tmp_path, monkeypatch):
    out = tmp_path / 'out'
    (out / 'LR_bicubic_X3_sub96.lmdb').mkdir(parents=True)
    (out / 'LR_bicubic_X3_sub96.lmdb' / 'mine.txt').write_text('user data')
    with pytest.raises(FileExistsError, match='LR_bicubic_X3_sub96.lmdb'):
        prepare_hr_folder(str(hr_folder), str(out), 96, 48, 24, log=lambda *_: None)
    assert (out / 'LR_bicubic_X3_sub96.lmdb' / 'mine.txt').read_text() == 'user data'
    shutil.rmtree(out)

    from adaptsr.core import data_prep
    calls = {'n': 0}
    real_put = data_prep.AtomicLmdb.put

    def failing_put(self, key, img):
        calls['n'] += 1
        if calls['n'] == 50:
            raise KeyboardInterrupt  # an interrupted run
        return real_put(self, key, img)

    monkeypatch.setattr(data_prep.AtomicLmdb, 'put', failing_put)
    with pytest.raises(KeyboardInterrupt):
        prepare_hr_folder(str(hr_folder), str(out), 96, 48, 24, log=lambda *_: None)
    assert not out.exists() or not os.listdir(out), os.listdir(out)


def test_prepare_data_rejects_crops_that_are_not_multiples_of_the_scales(hr_folder, tmp_path):
    with pytest.raises(ValueError, match='multiples of 12'):
        prepare_hr_folder(str(hr_folder), str(tmp_path / 'out'), 128, 64, 32, log=lambda *_: None)


def test_train291_images_read_losslessly_as_the_manifest_says():
    """The shared 291 set's WebP files decode to the pixels its MANIFEST.tsv hashes (lossless)."""
    import hashlib
    root = require(osp.join(DATA, 'train291'))
    with open(osp.join(root, 'MANIFEST.tsv')) as f:
        rows = [line.rstrip('\n').split('\t') for line in f][1:]
    assert len(rows) == 291
    for name, size, digest in rows[::29]:
        img = read_hr_uint8(osp.join(root, name))
        assert f'{img.shape[1]}x{img.shape[0]}' == size, name
        assert hashlib.sha256(np.ascontiguousarray(img).tobytes()).hexdigest()[:16] == digest, name


def test_shipped_291_options_read_the_data_root():
    """Every *_291 training YAML reads its LMDBs from datasets/train291, the default layout (relocated by ADAPTSR_DATA,
    where prepare_data.py writes them)."""
    import glob
    import yaml
    files = sorted(glob.glob(osp.join(ROOT, 'options/train/*_291*.yml')))
    assert files
    for path in files:
        with open(path) as f:
            opt = yaml.safe_load(f)
        for key in ('dataroot_gt', 'dataroot_lq'):
            value = opt['datasets']['train'].get(key)
            if value is not None:
                assert value.startswith('datasets/train291/') and value.endswith('_sub144.lmdb'), (path, key)
