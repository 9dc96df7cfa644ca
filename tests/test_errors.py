"""Bad input gets a clear error or correct handling."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

from adaptsr.archs.pcsr_arch import PCSRNet
from adaptsr.data.pcsr_dataset import PCSRHRDataset
from adaptsr.ops.tiling import tile_boxes, tiled_forward
from conftest import BENCHMARK, WEIGHTS, read_rgb, require


def _model_opt(tmp_path, scale=4, network=None, pretrain=None):
    return {
        'name': 'err', 'model_type': 'PCSRModel', 'scale': scale, 'num_gpu': 0, 'dist': False, 'rank': 0,
        'world_size': 1, 'is_train': False, 'manual_seed': 0,
        'network_g': network or {'type': 'PCSRNet', 'encoder': 'carn', 'upscale': scale},
        'path': {'pretrain_network_g': pretrain, 'strict_load_g': True, 'results_root': str(tmp_path),
                 'visualization': str(tmp_path), 'log': str(tmp_path)},
        'val': {'k': 0, 'metrics': {}},
        'datasets': {},
    }


def test_missing_dataset_path_names_key_and_path(tmp_path):
    opt = {'name': 'mine', 'phase': 'train', 'scale': 4, 'dataroot_gt': str(tmp_path / 'nope'),
           'io_backend': {'type': 'disk'}}
    with pytest.raises(FileNotFoundError, match=r"dataset 'mine': dataroot_gt = .*nope"):
        PCSRHRDataset(opt)
    from adaptsr.data.data_util import check_dataset_paths
    with pytest.raises(FileNotFoundError, match='dataroot_lq'):
        check_dataset_paths({'name': 'Set5', 'dataroot_gt': str(tmp_path), 'dataroot_lq': str(tmp_path / 'X4')})


def test_missing_dataset_path_through_test_py(tmp_path):
    from conftest import ROOT, write_yaml
    import subprocess
    import sys
    opt = _model_opt(tmp_path)
    for k in ('dist', 'rank', 'world_size', 'is_train'):
        opt.pop(k)
    opt['path'] = {'pretrain_network_g': None}
    opt['val'] = {'save_img': False, 'suffix': None}
    opt['datasets'] = {'test_1': {'name': 'Set5', 'type': 'PairedImageDataset', 'dataroot_gt': str(tmp_path / 'HR'),
                                  'dataroot_lq': str(tmp_path / 'LR'), 'io_backend': {'type': 'disk'}}}
    path = write_yaml(tmp_path / 'missing.yml', opt)
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'test.py'), '-opt', path], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "dataset 'Set5': dataroot_gt" in proc.stderr and 'does not exist' in proc.stderr


def test_checkpoint_of_wrong_scale_is_refused(tmp_path):
    from basicsr.models import build_model
    official = require(osp.join(WEIGHTS, 'PCSR/carn-pcsr-phase1/iter_last.pth'))
    opt = _model_opt(tmp_path, scale=2, pretrain=official)
    with pytest.raises(ValueError, match=r'x4 but the options say scale: 2'):
        build_model(opt)
    # the original CARN x4 weights into a x3 CARN: shape mismatch listed
    carn = require(osp.join(WEIGHTS, 'PCSR/carn-x4/iter_last.pth'))
    opt = _model_opt(tmp_path, scale=3, network={'type': 'PCSRCARN', 'upscale': 3}, pretrain=carn)
    opt['model_type'] = 'AdaptiveSRModel'
    opt['val'] = {k: v for k, v in opt['val'].items() if k not in ('k', 'adaptive', 'refine')}  # PCSR's knob
    with pytest.raises((ValueError, RuntimeError), match='x4|shape'):
        build_model(opt)


def test_checkpoint_with_missing_keys_lists_them(tmp_path):
    from basicsr.models import build_model
    sd = PCSRNet(encoder='carn').state_dict()
    del sd['classifier.imnet.layers.0.weight']
    sd['extra.weight'] = torch.zeros(1)
    path = str(tmp_path / 'broken.pth')
    torch.save({'params': sd}, path)
    with pytest.raises(RuntimeError) as err:
        build_model(_model_opt(tmp_path, pretrain=path))
    msg = str(err.value)
    assert 'broken.pth' in msg and 'classifier.imnet.layers.0.weight' in msg and 'extra.weight' in msg
    with pytest.raises(FileNotFoundError, match='does not exist'):
        build_model(_model_opt(tmp_path, pretrain=str(tmp_path / 'absent.pth')))


def test_grayscale_image_is_handled(pcsr_official):
    """Set14 'bridge' is a 1-channel PNG: loaded as 3 equal channels, super-resolved like any image."""
    from basicsr.data import build_dataset
    ds = build_dataset({'name': 'Set14', 'type': 'PairedImageDataset', 'phase': 'test', 'scale': 4,
                        'dataroot_gt': require(osp.join(BENCHMARK, 'Set14/HR')),
                        'dataroot_lq': osp.join(BENCHMARK, 'Set14/LR_bicubic/X4'), 'filename_tmpl': '{}x4',
                        'io_backend': {'type': 'disk'}})
    item = next(ds[i] for i in range(len(ds)) if 'bridge' in ds[i]['lq_path'])
    lq, gt = item['lq'][None], item['gt'][None]
    assert lq.shape[1] == 3 and torch.equal(lq[:, 0], lq[:, 1])
    sr, _ = pcsr_official.infer(lq)
    mse = F.mse_loss(sr.clamp(0, 1)[..., 4:-4, 4:-4], gt[..., 4:-4, 4:-4])
    assert 10 * torch.log10(1 / mse) > 24  # a real reconstruction (bicubic is ~24.4 dB RGB on bridge)


def test_image_smaller_than_a_tile_and_tiling_merge(carn_official):
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X4/birdx4.png')))
    small = lq[..., :20, :30]
    assert tile_boxes(20, 30, 64, 8) == [(0, 0, 20, 30)]
    with torch.no_grad():
        assert torch.equal(tiled_forward(carn_official, small, 4, 64, 8), carn_official(small))
    # overlap averaging reconstructs exactly for a position-independent op (nearest upsampling) ...
    up = tiled_forward(lambda x: F.interpolate(x, scale_factor=4, mode='nearest'), lq, 4, 24, 6)
    assert torch.equal(up, F.interpolate(lq, scale_factor=4, mode='nearest'))
    # ... and closely for a network (borders differ by the receptive field)
    with torch.no_grad():
        tiled, full = tiled_forward(carn_official, lq, 4, 40, 12), carn_official(lq)
    assert (tiled - full).abs().mean() < 2e-3
    with pytest.raises(ValueError, match='tile_overlap'):
        tile_boxes(10, 10, 8, 8)


def test_odd_sizes(pcsr_official):
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X4/birdx4.png')))[..., :37, :29]
    sr, cost = pcsr_official.infer(lq, k=0)
    hmap = cost['trace']['heavy_map']
    assert sr.shape == (1, 3, 148, 116) and hmap.shape == (1, 1, 148, 116)
    sr_all, _ = pcsr_official.infer(lq, k=-25, refine=False)
    with torch.no_grad():
        assert (sr_all - pcsr_official.forward_heavy(lq)).abs().max() < 1e-5
    ds = PCSRHRDataset({'name': 'B100', 'phase': 'val', 'scale': 3, 'io_backend': {'type': 'disk'},
                        'dataroot_gt': require(osp.join(BENCHMARK, 'B100/HR'))})
    item = ds[0]
    assert item['gt'].shape[-1] == item['lq'].shape[-1] * 3 and item['gt'].shape[-2] == item['lq'].shape[-2] * 3


def test_batched_tiles_equal_single_tiles_for_k_rule(pcsr_official):
    """PCSR patch mode (32x32 tiles, stride 28, batches): the k-rule is per pixel, so batching changes nothing;
    ADM clusters each batch jointly (the official patch mode) and stays finite."""
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set14/LR_bicubic/X4/baboonx4.png')))[..., :88, :60]  # 3x2 patches
    costs = []

    def fn(x, **kw):
        out, cost = pcsr_official.infer(x, **kw)
        costs.append(cost['flops'])
        return out

    one = tiled_forward(lambda x: fn(x, k=0.0), lq, 4, 32, 4, tile_batch=1)
    flops_one = sum(costs)
    costs.clear()
    many = tiled_forward(lambda x: fn(x, k=0.0), lq, 4, 32, 4, tile_batch=96)
    assert len(costs) == 1 and costs[0] == pytest.approx(flops_one)
    assert (one - many).abs().max() < 1e-5
    adm = tiled_forward(lambda x: fn(x, adaptive=True), lq, 4, 32, 4, tile_batch=96)
    assert adm.shape == one.shape and torch.isfinite(adm).all()
