"""Bad input gets a clear error or correct handling."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

from adaptsr.methods.pcsr.pcsr_arch import PCSRNet
from adaptsr.methods.pcsr.pcsr_dataset import PCSRHRDataset
from conftest import BENCHMARK, WEIGHTS, read_rgb, require


def _model_opt(tmp_path, scale=4, network=None, pretrain=None):
    from conftest import model_options
    return model_options(tmp_path, 'PCSRModel', network or {'type': 'PCSRNet', 'encoder': 'carn', 'upscale': scale},
                         scale=scale, pretrain=pretrain, val={'k': 0, 'metrics': {}})


def test_missing_dataset_path_names_key_and_path(tmp_path):
    opt = {'name': 'mine', 'phase': 'train', 'scale': 4, 'dataroot_gt': str(tmp_path / 'nope'),
           'io_backend': {'type': 'disk'}}
    with pytest.raises(FileNotFoundError, match=r"dataset 'mine': dataroot_gt = .*nope"):
        PCSRHRDataset(opt)
    from adaptsr.core.data_util import check_dataset_paths
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


@pytest.mark.parametrize('is_train', [False, True])
def test_file_valued_path_options_are_not_made_directories(tmp_path, is_train):
    """BasicSR's make_exp_dirs makes a directory at every path.* value: path.cabm_lut (a table file) is left as it
    is, whether it exists or not yet, and a file where BasicSR wants a directory is an error naming the key."""
    import basicsr.test
    import basicsr.train
    from adaptsr.compat import patch_pipelines
    from adaptsr.core.options import OptionError
    patch_pipelines()
    make_exp_dirs = (basicsr.train if is_train else basicsr.test).make_exp_dirs
    root = 'experiments_root' if is_train else 'results_root'
    lut = tmp_path / 'cabm_lut.json'
    lut.write_text('{"table": "kept"}')
    opt = {'is_train': is_train, 'path': {root: str(tmp_path / 'run'), 'log': str(tmp_path / 'run'),
                                          'visualization': str(tmp_path / 'run' / 'vis'), 'cabm_lut': str(lut),
                                          'pretrain_network_g': str(tmp_path / 'w.pth'), 'strict_load_g': True}}
    make_exp_dirs(opt)
    assert lut.read_text() == '{"table": "kept"}' and (tmp_path / 'run' / 'vis').is_dir()
    assert opt['path']['cabm_lut'] == str(lut)
    later = tmp_path / 'later' / 'cabm_lut.json'
    opt['path'].update({'cabm_lut': str(later), root: str(tmp_path / 'run2')})
    make_exp_dirs(opt)
    assert not later.exists()
    opt['path'].update({'visualization': str(lut), root: str(tmp_path / 'run3')})
    with pytest.raises(OptionError, match=r"path.visualization: '.*cabm_lut.json' is a file"):
        make_exp_dirs(opt)
