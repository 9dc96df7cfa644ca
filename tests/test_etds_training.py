"""ETDS training: residual-stream freeze by iteration, one optimizer across phases, resume, the final plain model."""
import os.path as osp
import re
import shutil

import pytest
import torch

from conftest import BENCHMARK, ROOT, require, run_script, train_demo, write_yaml

RESIDUAL = ('conv_residual_first', 'residual_convs', 'add_residual_convs', 'conv_residual_last')
LOSSES = {'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
          'interpolation_opt': {'type': 'ETDSResidualL1Loss', 'loss_weight': 0.5}}


def phases(fixed=3, joint=3):
    return [{'name': 'fixed_residual', 'iters': fixed, 'trainable': ['conv_first', 'backbone_convs', 'conv_last'],
             'optimize': 'all', 'losses': LOSSES},
            {'name': 'joint', 'iters': joint, 'optimize': 'all', 'keep_optimizer': True, 'losses': LOSSES,
             'on_end': 'save_plain_model'}]


def train_options(name, train_set, val_set=None, fixed=3, joint=3, ema=0.999, save_freq=2):
    opt = {'name': name, 'model_type': 'ETDSModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
           'datasets': {'train': dict(train_set, name='train', type='ETDSPairedDataset', lq_size=16, use_hflip=True,
                                      use_rot=True, use_channels_shuffle=True, num_worker_per_gpu=0,
                                      batch_size_per_gpu=2, dataset_enlarge_ratio=2, prefetch_mode=None)},
           'network_g': {'type': 'ETDSNet', 'upscale': 4, 'num_block': 2, 'num_feat': 8},
           'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
           'train': {'ema_decay': ema, 'optim_g': {'type': 'Adam', 'lr': 5e-4, 'betas': [0.9, 0.99]},
                     'scheduler': {'type': 'MultiStepLR', 'milestones': [fixed + joint], 'gamma': 0.5},
                     'phases': phases(fixed, joint)},
           'logger': {'print_freq': 1, 'save_checkpoint_freq': save_freq, 'use_tb_logger': False}}
    if val_set is not None:
        opt['datasets']['val'] = dict(val_set, name='val', type='ETDSPairedDataset')
        opt['val'] = {'val_freq': fixed + joint, 'save_img': False,
                      'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True}}}
    return opt


def set5_x4():
    return {'dataroot_gt': require(osp.join(BENCHMARK, 'Set5/HR')), 'filename_tmpl': '{}x4',
            'dataroot_lq': require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X4')), 'io_backend': {'type': 'disk'}}


def _model(tmp_path):
    from basicsr.models import build_model
    opt = train_options('freeze_check', set5_x4())
    opt.update(dist=False, rank=0, world_size=1, is_train=True, root_path=str(tmp_path))
    opt['path'].update(experiments_root=str(tmp_path), models=str(tmp_path), training_states=str(tmp_path),
                       log=str(tmp_path), visualization=str(tmp_path))
    opt['datasets']['train'].update(phase='train', scale=4)
    return build_model(opt)


def test_residual_stream_frozen_by_iteration_with_one_optimizer(tmp_path):
    from adaptsr.methods.etds.etds_dataset import ETDSPairedDataset
    model = _model(tmp_path)
    ds = ETDSPairedDataset(model.opt['datasets']['train'])
    net = model.net_g
    init = {k: v.detach().clone() for k, v in net.state_dict().items()}
    optimizer = model.optimizer_g
    assert len(optimizer.param_groups[0]['params']) == len(list(net.parameters()))  # optimize: all
    for it in range(1, 5):
        model.update_learning_rate(it)
        item = ds[it]
        model.feed_data({'lq': item['lq'][None], 'gt': item['gt'][None]})
        model.optimize_parameters(it)
        frozen = it <= 3
        for name, p in net.named_parameters():
            residual = name.startswith(RESIDUAL)
            assert p.requires_grad == (not (frozen and residual)), (it, name)
            if residual and frozen:
                assert p.grad is None and torch.equal(p.detach(), init[name]), (it, name)
            else:
                assert p.grad is not None and p.grad.abs().sum() > 0, (it, name)
        assert set(model.log_dict) == {'l_pixel_opt', 'l_interpolation_opt'}
        if frozen:  # Eq. 15's second term on LF, which is still nearest upsampling while the stream is frozen
            nearest = torch.nn.functional.interpolate(model.lq, scale_factor=4, mode='nearest')
            expected = 0.5 * (nearest - model.gt).abs().mean()
            assert abs(float(model.log_dict['l_interpolation_opt']) - float(expected)) < 1e-6
    assert model.phase.name == 'joint' and model.optimizer_g is optimizer  # kept across the phase boundary
    changed = {n for n, p in net.named_parameters() if not torch.equal(p.detach(), init[n])}
    assert {n for n in changed if n.startswith(RESIDUAL)}  # iteration 4 trained the residual stream
    state = optimizer.state[net.conv_first.weight]
    assert int(state['step']) == 4  # Adam state continued through the boundary, not rebuilt
    assert int(optimizer.state[net.conv_residual_first.weight]['step']) == 1


def tiny_pair(root):
    """One real 64x64 HR / 16x16 LR pair (Set14 baboon, provided x4 LR): deterministic crops for exact resume."""
    import cv2
    hr = cv2.imread(require(osp.join(BENCHMARK, 'Set14/HR/baboon.png')))[100:164, 200:264]
    lr = cv2.imread(require(osp.join(BENCHMARK, 'Set14/LR_bicubic/X4/baboonx4.png')))[25:41, 50:66]
    for sub, img in (('hr', hr), ('lr', lr)):
        (root / sub).mkdir(exist_ok=True)
        cv2.imwrite(str(root / sub / 'baboon.png'), img)
    return {'dataroot_gt': str(root / 'hr'), 'dataroot_lq': str(root / 'lr'), 'filename_tmpl': '{}',
            'io_backend': {'type': 'disk'}}


def _final(root, name, key='params_ema'):
    return torch.load(root / 'experiments' / name / 'models' / 'net_g_latest.pth', weights_only=True)[key]


def test_resume_in_the_frozen_phase_refreezes_and_equals_uninterrupted(tmp_path):
    shutil.copy(osp.join(ROOT, 'train.py'), tmp_path / 'train.py')
    env = {'PYTHONPATH': ROOT}
    data = tiny_pair(tmp_path)

    def options(name):  # no random augmentation and 2 iterations per epoch: BasicSR resumes exactly at an epoch end
        opt = train_options(name, data)
        opt['datasets']['train'].update(use_hflip=False, use_rot=False, use_channels_shuffle=False,
                                        batch_size_per_gpu=1)
        return opt

    full = write_yaml(tmp_path / 'full.yml', options('full'))
    run_script([str(tmp_path / 'train.py'), '-opt', full], cwd=tmp_path, env=env)
    src, dst = tmp_path / 'experiments' / 'full', tmp_path / 'experiments' / 'part'
    (dst / 'models').mkdir(parents=True)
    (dst / 'training_states').mkdir()
    shutil.copy(src / 'training_states' / '2.state', dst / 'training_states')
    shutil.copy(src / 'models' / 'net_g_2.pth', dst / 'models')
    part = write_yaml(tmp_path / 'part.yml', options('part'))
    proc = run_script([str(tmp_path / 'train.py'), '-opt', part, '--auto_resume'], cwd=tmp_path, env=env)
    assert re.search(r'Resuming training from epoch: \d+, iter: 2\.', proc.stdout + proc.stderr)
    assert 'CPU subnormal floats: flushed to zero' in proc.stdout + proc.stderr  # adaptsr.cli.train
    for key in ('params', 'params_ema'):
        a, b = _final(tmp_path, 'full', key), _final(tmp_path, 'part', key)
        assert all(torch.equal(a[k], b[k]) for k in a), key
    # the plain model written at the end is the exact conversion of the EMA network
    from basicsr.utils.registry import ARCH_REGISTRY
    plain_ckpt = torch.load(src / 'models' / 'net_g_plain_latest.pth', weights_only=True)
    assert plain_ckpt['meta']['arch'] == 'ETDSPlain' and plain_ckpt['meta']['max_diff_255'] < 0.01
    plain = ARCH_REGISTRY.get('ETDSPlain')(upscale=4, num_block=2, num_feat=8)
    plain.load_state_dict(plain_ckpt['params'], strict=True)
    dual = ARCH_REGISTRY.get('ETDSNet')(upscale=4, num_block=2, num_feat=8)
    dual.load_state_dict(_final(tmp_path, 'full'), strict=True)
    x = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        assert (dual.eval()(x)[0].clamp(0, 1) - plain(x)).abs().max() * 255 < 0.01


@pytest.mark.slow
def test_demo_training_converted_model_beats_bicubic(tmp_path, demo_data):
    """The demo recipe (options/train/etds_m4c32_x4_demo.yml, both phases) -> plain model above bicubic."""
    opt, exp = train_demo(tmp_path, demo_data, 'etds_m4c32_x4_demo.yml')
    models = exp / 'models'
    from adaptsr.bench.measure import quality
    from basicsr.utils.registry import ARCH_REGISTRY
    from conftest import read_rgb
    plain = ARCH_REGISTRY.get('ETDSPlain')(upscale=4, num_block=4, num_feat=32)
    plain.load_state_dict(torch.load(models / 'net_g_plain_latest.pth', weights_only=True)['params'], strict=True)
    bicubic = ARCH_REGISTRY.get('BicubicSR')(upscale=4)
    gain = []
    for name in ('chelsea', 'coffee'):
        lq = read_rgb(osp.join(demo_data, f'val/LR_bicubic/X4/{name}x4.png'))
        gt = read_rgb(osp.join(demo_data, f'val/HR/{name}.png'))[..., :lq.shape[2] * 4, :lq.shape[3] * 4]
        with torch.no_grad():
            gain.append(quality(plain(lq), gt, 4)['psnr_y'] - quality(bicubic(lq), gt, 4)['psnr_y'])
    assert min(gain) > 0.3, gain


@pytest.mark.parametrize('network', [
    {'type': 'ECBSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_block': 2, 'num_channel': 8, 'with_idt': True,
     'act_type': 'prelu', 'scale': 4},
    {'type': 'ABPNNet', 'upscale': 4, 'num_block': 2, 'num_feat': 8}])
def test_baselines_train_and_end_with_an_exact_plain_model(tmp_path, network):
    """ECBSR (BasicSR's ECB blocks; their fixed Sobel/Laplacian masks must stay fixed) and ABPN, one phase."""
    from basicsr.models import build_model
    opt = train_options('baseline', set5_x4())
    opt['network_g'] = network
    opt['train']['phases'] = [{'name': 'train', 'iters': 3, 'losses': {'pixel_opt': LOSSES['pixel_opt']},
                               'on_end': 'save_plain_model'}]
    opt.update(dist=False, rank=0, world_size=1, is_train=True, root_path=str(tmp_path))
    opt['path'].update(experiments_root=str(tmp_path), models=str(tmp_path), training_states=str(tmp_path),
                       log=str(tmp_path), visualization=str(tmp_path))
    opt['datasets']['train'].update(phase='train', scale=4)
    model = build_model(opt)
    from adaptsr.methods.etds.etds_dataset import ETDSPairedDataset
    ds = ETDSPairedDataset(opt['datasets']['train'])
    net = model.net_g
    fixed = {n: p.detach().clone() for n, p in net.named_parameters() if n.endswith('.mask')}
    assert bool(fixed) == (network['type'] == 'ECBSR')
    init = {n: p.detach().clone() for n, p in net.named_parameters()}
    for it in (1, 2, 3):
        model.update_learning_rate(it)
        item = ds[it]
        model.feed_data({'lq': item['lq'][None], 'gt': item['gt'][None]})
        model.optimize_parameters(it)
    for n, p in net.named_parameters():
        if n in fixed:
            assert not p.requires_grad and torch.equal(p.detach(), fixed[n]), n
    assert any(not torch.equal(p.detach(), init[n]) for n, p in net.named_parameters() if n not in fixed)
    model.feed_data({'lq': ds[0]['lq'][None], 'gt': ds[0]['gt'][None]})
    model.test()  # cost of the network as deployed (ECBSR: its re-parameterised form, which hooks can see)
    from adaptsr.methods.etds.formats import ecbsr_train_to_plain
    from adaptsr.core.cost import count_flops
    deployed = ecbsr_train_to_plain(net) if network['type'] == 'ECBSR' else net
    assert model.cost['flops'] == count_flops(deployed, model.lq) > 0
    model.save(-1, -1)  # the final save runs the last phase's on_end: the plain (ET) model
    ckpt = torch.load(tmp_path / 'net_g_plain_latest.pth', weights_only=True)
    assert ckpt['meta']['arch'] == 'ETDSPlain' and ckpt['meta']['max_diff_255'] < 0.01
    assert ckpt['meta']['source_arch'] == network['type']
