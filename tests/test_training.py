"""Multi-phase training: schedule, what each phase trains, resume mid-phase, 2-process CPU DDP."""
import glob
import os
import os.path as osp
import re
import shutil

import cv2
import pytest
import torch

from adaptsr.core.phases import PhaseSchedule
from conftest import BENCHMARK, ROOT, require, run_script, write_yaml

PHASES = [
    {'name': 'heavy', 'iters': 3, 'forward': 'heavy', 'trainable': ['encoder', 'heavy_sampler'],
     'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
     'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [3], 'restart_weights': [1], 'eta_min': 1e-6},
     'losses': {'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}}},
    {'name': 'classifier', 'iters': 3, 'forward': 'mix', 'trainable': ['light_sampler', 'classifier'],
     'frozen_eval': True, 'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
     'scheduler': {'type': 'CosineAnnealingRestartLR', 'periods': [3], 'restart_weights': [1], 'eta_min': 1e-6},
     'losses': {'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1000.0},
                'avg_cost_opt': {'type': 'PCSRAverageCostLoss', 'loss_weight': 3.0}}},
]
NET = {'type': 'PCSRNet', 'encoder': 'carn', 'encoder_opt': {'num_feat': 16}, 'heavy_hidden': [16, 16],
       'light_hidden': [8], 'cls_hidden': [8], 'upscale': 4}


def train_options(name, hr_dir, save_freq=2, phases=PHASES, extra_iters=None):
    return {
        'name': name, 'model_type': 'PCSRModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        'find_unused_parameters': True,
        'datasets': {'train': {'name': 'tiny', 'type': 'PCSRHRDataset', 'dataroot_gt': hr_dir,
                               'io_backend': {'type': 'disk'}, 'gt_size': 64, 'use_hflip': False,
                               'use_vflip': False, 'use_transpose': False, 'num_worker_per_gpu': 0,
                               'batch_size_per_gpu': 1, 'dataset_enlarge_ratio': 2, 'prefetch_mode': None}},
        'network_g': dict(NET),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'ema_decay': 0, 'phases': phases},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': save_freq, 'use_tb_logger': False},
    }


@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    """A temporary repository root (train.py copied there) with one real 64x64 HR image (Set14 baboon crop)."""
    root = tmp_path_factory.mktemp('root')
    shutil.copy(osp.join(ROOT, 'train.py'), root / 'train.py')
    hr_dir = root / 'hr'
    hr_dir.mkdir()
    img = cv2.imread(require(osp.join(BENCHMARK, 'Set14/HR/baboon.png')))
    cv2.imwrite(str(hr_dir / 'baboon_crop.png'), img[100:164, 200:264])
    return root


def env():
    return {'PYTHONPATH': ROOT + os.pathsep + os.environ.get('PYTHONPATH', '')}


def test_phase_schedule_boundaries_and_start_phase():
    sched = PhaseSchedule(PHASES, extra_keys={'forward'})
    assert sched.total_iter == 6
    assert [sched.phase_at(i).name for i in (0, 1, 3, 4, 6, 7)] == ['heavy'] * 3 + ['classifier'] * 3
    alone = PhaseSchedule(PHASES, start_phase='classifier', extra_keys={'forward'})
    assert alone.total_iter == 3 and alone.phase_at(1).name == 'classifier'
    assert sched.phase_at(2).is_trainable('encoder.entry.weight')
    assert not sched.phase_at(2).is_trainable('encoder_x.weight')
    with pytest.raises(ValueError, match='start_phase'):
        PhaseSchedule(PHASES, start_phase='nope', extra_keys={'forward'})
    with pytest.raises(ValueError, match='iters'):
        PhaseSchedule([{'name': 'a', 'iters': 0}])
    with pytest.raises(ValueError, match='unique'):
        PhaseSchedule([PHASES[0], PHASES[0]], extra_keys={'forward'})
    with pytest.raises(ValueError, match=r"phases\[0\] \(heavy\): unknown key\(s\) \['forward'\]"):
        PhaseSchedule(PHASES, extra_keys=())  # a key the model does not read is an error, not silently ignored
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['trainabel'\]"):
        PhaseSchedule([dict(PHASES[0], trainabel=['encoder'])], extra_keys={'forward'})


def _model(tmp_path, hr_dir):
    from basicsr.models import build_model
    opt = train_options('grad_check', hr_dir)
    opt.update(dist=False, rank=0, world_size=1, is_train=True, root_path=str(tmp_path))
    opt['path'].update(experiments_root=str(tmp_path), models=str(tmp_path), training_states=str(tmp_path),
                       log=str(tmp_path), visualization=str(tmp_path))
    opt['datasets']['train'].update(phase='train', scale=4)
    return build_model(opt)


def test_gradients_reach_only_the_phase_modules(tmp_path, tiny_root):
    from adaptsr.methods.pcsr.pcsr_dataset import PCSRHRDataset
    model = _model(tmp_path, str(tiny_root / 'hr'))
    data = PCSRHRDataset(dict(model.opt['datasets']['train']))[0]
    batch = {'lq': data['lq'][None], 'gt': data['gt'][None]}
    net = model.net_g

    def snapshot():
        return {k: v.detach().clone() for k, v in net.state_dict().items()}

    groups = ('encoder', 'heavy_sampler', 'light_sampler', 'classifier')
    model.update_learning_rate(1)
    model.feed_data(batch)
    before = snapshot()
    model.optimize_parameters(1)
    for name, p in net.named_parameters():
        trained = name.startswith(('encoder', 'heavy_sampler'))
        assert (p.grad is not None and p.grad.abs().sum() > 0) == trained, name
    after = snapshot()
    changed = {g for g in groups if any(not torch.equal(before[k], after[k]) for k in before if k.startswith(g))}
    assert changed == {'encoder', 'heavy_sampler'}
    for it in (2, 3, 4):  # iteration 4 enters phase 1
        model.update_learning_rate(it)
        model.feed_data(batch)
        before = snapshot()
        model.optimize_parameters(it)
    assert model.phase.name == 'classifier'
    assert not net.encoder.training and not net.heavy_sampler.training and net.classifier.training
    for name, p in net.named_parameters():
        trained = name.startswith(('light_sampler', 'classifier'))
        assert p.requires_grad == trained
        assert (p.grad is not None and p.grad.abs().sum() > 0) == trained, name
    after = snapshot()
    changed = {g for g in groups if any(not torch.equal(before[k], after[k]) for k in before if k.startswith(g))}
    assert changed == {'light_sampler', 'classifier'}  # BN running stats of the frozen encoder are unchanged too


def test_light_warmup_from_a_phase0_file_trains_only_the_light_sampler(tmp_path, tiny_root):
    """A ``forward: light`` warm-up phase between phase 0 and phase 1, started with train.start_phase from a file
    that holds only the encoder and heavy upsampler: the classifier (trained first by the later phase) may be missing
    too; the warm-up's gradients reach only the light upsampler, its output is the dense light path, and its
    validation runs every pixel light."""
    from adaptsr.methods.pcsr.pcsr_arch import PCSRNet
    from adaptsr.methods.pcsr.pcsr_dataset import PCSRHRDataset
    from basicsr.models import build_model
    net_opt = {k: v for k, v in NET.items() if k != 'type'}
    phase0 = {k: v for k, v in PCSRNet(**net_opt).state_dict().items() if k.startswith(('encoder', 'heavy_sampler'))}
    torch.save({'params': phase0}, tmp_path / 'phase0.pth')
    light = {'name': 'light', 'iters': 2, 'forward': 'light', 'trainable': ['light_sampler'], 'frozen_eval': True,
             'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
             'losses': {'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}}}
    opt = train_options('light_warmup', str(tiny_root / 'hr'), phases=[PHASES[0], light, PHASES[1]])
    opt.update(dist=False, rank=0, world_size=1, is_train=True, root_path=str(tmp_path))
    opt['train']['start_phase'] = 'light'
    opt['path'].update(pretrain_network_g=str(tmp_path / 'phase0.pth'), experiments_root=str(tmp_path),
                       models=str(tmp_path), training_states=str(tmp_path), log=str(tmp_path),
                       visualization=str(tmp_path))
    opt['datasets']['train'].update(phase='train', scale=4)
    model = build_model(opt)
    net = model.net_g
    assert all(torch.equal(net.state_dict()[k], v) for k, v in phase0.items())
    data = PCSRHRDataset(dict(opt['datasets']['train']))[0]
    model.update_learning_rate(1)
    model.feed_data({'lq': data['lq'][None], 'gt': data['gt'][None]})
    model.optimize_parameters(1)
    assert model.phase.name == 'light' and not net.encoder.training and not net.heavy_sampler.training
    for name, p in net.named_parameters():
        assert (p.grad is not None and p.grad.abs().sum() > 0) == name.startswith('light_sampler'), name
    with torch.no_grad():
        dense_light = net(data['lq'][None], mode='light')
        sr, cost = net.infer(data['lq'][None], **model.inference_kwargs(data['lq'][None]))
    assert cost['heavy_px'] == 0 and torch.allclose(sr, dense_light, atol=1e-5)
    with pytest.raises(ValueError, match="'heavy', 'light' or 'mix'"):
        net(data['lq'][None], mode='lite')


def _final_params(root, name):
    return torch.load(root / 'experiments' / name / 'models' / 'net_g_latest.pth', weights_only=True)['params']


@pytest.mark.parametrize('resume_iter', [2, 4])
def test_resume_mid_phase_equals_uninterrupted(tiny_root, resume_iter):
    full = f'full_{resume_iter}'
    part = f'resumed_{resume_iter}'
    opt_full = write_yaml(tiny_root / f'{full}.yml', train_options(full, str(tiny_root / 'hr')))
    run_script([str(tiny_root / 'train.py'), '-opt', opt_full], cwd=tiny_root, env=env())
    # an interrupted run: only what the full run had saved at resume_iter
    src = tiny_root / 'experiments' / full
    dst = tiny_root / 'experiments' / part
    (dst / 'models').mkdir(parents=True)
    (dst / 'training_states').mkdir()
    shutil.copy(src / 'training_states' / f'{resume_iter}.state', dst / 'training_states')
    shutil.copy(src / 'models' / f'net_g_{resume_iter}.pth', dst / 'models')
    state = torch.load(dst / 'training_states' / f'{resume_iter}.state', weights_only=False)
    assert state['phase'] == ('heavy' if resume_iter <= 3 else 'classifier')
    opt_part = write_yaml(tiny_root / f'{part}.yml', train_options(part, str(tiny_root / 'hr')))
    proc = run_script([str(tiny_root / 'train.py'), '-opt', opt_part, '--auto_resume'], cwd=tiny_root, env=env())
    assert re.search(rf'Resuming training from epoch: \d+, iter: {resume_iter}\.', proc.stdout + proc.stderr)
    a, b = _final_params(tiny_root, full), _final_params(tiny_root, part)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize('workers,resume_iter', [(0, 2), (1, 5)], ids=['main-process-iter2', 'one-worker-iter5'])
def test_resume_mid_epoch_equals_uninterrupted(tiny_root, workers, resume_iter):
    """Epochs of 3 batches with random crops and flips: a state saved mid-epoch resumes at the next batch with the
    data pipeline's random states (BasicSR alone restarts the epoch: other crops, other weights)."""
    hr = tiny_root / 'hr96'
    if not hr.exists():
        hr.mkdir()
        img = cv2.imread(require(osp.join(BENCHMARK, 'Set14/HR/baboon.png')))
        cv2.imwrite(str(hr / 'baboon_crop96.png'), img[100:196, 200:296])

    def opts(name):
        opt = train_options(name, str(hr), save_freq=1)
        opt['datasets']['train'].update(use_hflip=True, use_vflip=True, dataset_enlarge_ratio=3,
                                        num_worker_per_gpu=workers)
        return write_yaml(tiny_root / f'{name}.yml', opt)

    full, part = f'epoch_full_{workers}', f'epoch_part_{workers}'
    run_script([str(tiny_root / 'train.py'), '-opt', opts(full)], cwd=tiny_root, env=env())
    src, dst = tiny_root / 'experiments' / full, tiny_root / 'experiments' / part
    (dst / 'models').mkdir(parents=True)
    (dst / 'training_states').mkdir()
    shutil.copy(src / 'training_states' / f'{resume_iter}.state', dst / 'training_states')
    shutil.copy(src / 'models' / f'net_g_{resume_iter}.pth', dst / 'models')
    state = torch.load(dst / 'training_states' / f'{resume_iter}.state', weights_only=False)
    assert state['data']['batches'] == resume_iter % 3  # mid-epoch
    run_script([str(tiny_root / 'train.py'), '-opt', opts(part), '--auto_resume'], cwd=tiny_root, env=env())
    a, b = _final_params(tiny_root, full), _final_params(tiny_root, part)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _interrupted_copy(tiny_root, src_name, dst_name, iters):
    """A new experiment holding only what ``src_name`` had saved at ``iters`` (states and weights)."""
    src, dst = tiny_root / 'experiments' / src_name, tiny_root / 'experiments' / dst_name
    (dst / 'models').mkdir(parents=True)
    (dst / 'training_states').mkdir()
    for it in iters:
        shutil.copy(src / 'training_states' / f'{it}.state', dst / 'training_states')
        shutil.copy(src / 'models' / f'net_g_{it}.pth', dst / 'models')
    return dst


@pytest.mark.parametrize('broken', ['state', 'weights'])
def test_auto_resume_falls_back_past_a_truncated_file(tiny_root, broken):
    """The newest state (iteration 4) or its net_g_4.pth cut in half: --auto_resume warns naming the file and
    resumes from iteration 2; the run still ends with the uninterrupted run's weights."""
    full = 'fallback_full'
    if not (tiny_root / 'experiments' / full).exists():
        run_script([str(tiny_root / 'train.py'), '-opt', write_yaml(tiny_root / f'{full}.yml', train_options(
            full, str(tiny_root / 'hr')))], cwd=tiny_root, env=env())
    part = f'fallback_{broken}'
    dst = _interrupted_copy(tiny_root, full, part, (2, 4))
    bad = dst / ('training_states/4.state' if broken == 'state' else 'models/net_g_4.pth')
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 2])
    opt = write_yaml(tiny_root / f'{part}.yml', train_options(part, str(tiny_root / 'hr')))
    proc = run_script([str(tiny_root / 'train.py'), '-opt', opt, '--auto_resume'], cwd=tiny_root, env=env())
    out = proc.stdout + proc.stderr
    assert str(bad) in out and 'cannot be read' in out
    assert re.search(r'Resuming training from epoch: \d+, iter: 2\.', out)
    a, b = _final_params(tiny_root, full), _final_params(tiny_root, part)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_follows_a_lengthened_phase_and_refuses_a_changed_past(tiny_root):
    """Saved at iteration 4 (phase 'classifier', cosine period 3): a YAML whose last phase now has 5 iterations
    resumes and runs to 8 on the new period (BasicSR's scheduler raised TypeError past its old period); a YAML whose
    finished phase 'heavy' changed is refused with both schedules named."""
    full = 'fallback_full'
    if not (tiny_root / 'experiments' / full).exists():
        run_script([str(tiny_root / 'train.py'), '-opt', write_yaml(tiny_root / f'{full}.yml', train_options(
            full, str(tiny_root / 'hr')))], cwd=tiny_root, env=env())
    longer = [dict(PHASES[0]), dict(PHASES[1], iters=5, scheduler=dict(PHASES[1]['scheduler'], periods=[5]))]
    _interrupted_copy(tiny_root, full, 'lengthened', (4,))
    opt = write_yaml(tiny_root / 'lengthened.yml', train_options('lengthened', str(tiny_root / 'hr'), phases=longer))
    proc = run_script([str(tiny_root / 'train.py'), '-opt', opt, '--auto_resume'], cwd=tiny_root, env=env())
    out = proc.stdout + proc.stderr
    assert "phase 'classifier' now has 5 iterations (saved with 3)" in out
    assert (tiny_root / 'experiments/lengthened/models/net_g_8.pth').exists()
    log = next((tiny_root / 'experiments/lengthened').glob('train_*.log')).read_text()
    # cosine over the new period of 5 steps: step 4 of 5 at iteration 8 (1e-6 + (1e-3 - 1e-6) (1 + cos 4pi/5) / 2)
    assert re.search(r'iter:\s+8, lr:\(9\.640e-05', log)
    changed = [dict(PHASES[0], iters=2), dict(PHASES[1])]
    _interrupted_copy(tiny_root, full, 'changed_past', (4,))
    opt = write_yaml(tiny_root / 'changed_past.yml', train_options('changed_past', str(tiny_root / 'hr'),
                                                                   phases=changed))
    proc = run_script([str(tiny_root / 'train.py'), '-opt', opt, '--auto_resume'], cwd=tiny_root, env=env(),
                      check=False)
    assert proc.returncode != 0
    assert "[['heavy', 3], ['classifier', 3]]" in proc.stderr and "[['heavy', 2], ['classifier', 3]]" in proc.stderr
    assert 'already ran and cannot change' in proc.stderr


def test_two_process_ddp_on_cpu(tiny_root):
    name = 'ddp_cpu'
    opt = write_yaml(tiny_root / f'{name}.yml', train_options(name, str(tiny_root / 'hr'), save_freq=6))
    proc = run_script(['-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_port=29533',
                       str(tiny_root / 'train.py'), '-opt', opt, '--launcher', 'pytorch'], cwd=tiny_root, env=env())
    logs = list((tiny_root / 'experiments' / name).glob('train_*.log'))
    text = logs[0].read_text()
    assert 'World size (gpu number): 2' in text
    assert 'Entering phase 1 "classifier"' in text
    params = _final_params(tiny_root, name)
    assert all(torch.isfinite(v).all() for v in params.values() if v.is_floating_point())
    assert 'World size' in text and proc.returncode == 0


def test_original_baseline_trains_on_paired_lmdb(tmp_path, demo_data):
    """The non-adaptive baseline YAML path (BasicSR's own train keys, paired LMDB) through adaptsr's model."""
    import yaml
    with open(osp.join(ROOT, 'options/train/pcsr_original_carn_x4.yml')) as f:
        opt = yaml.safe_load(f)
    opt['name'] = 'baseline_check'
    opt['num_gpu'] = 0
    opt['network_g']['num_feat'] = 16
    train = opt['datasets']['train']
    train.update(dataroot_gt=osp.join(demo_data, 'train_HR_sub128.lmdb'), gt_size=64, num_worker_per_gpu=0,
                 dataroot_lq=osp.join(demo_data, 'train_LR_bicubic_X4_sub.lmdb'), batch_size_per_gpu=2)
    opt['datasets']['val'] = {'name': 'demo_val', 'type': 'PairedImageDataset', 'filename_tmpl': '{}x4',
                              'dataroot_gt': osp.join(demo_data, 'val/HR'), 'io_backend': {'type': 'disk'},
                              'dataroot_lq': osp.join(demo_data, 'val/LR_bicubic/X4')}
    opt['train'].update(total_iter=4, scheduler={'type': 'CosineAnnealingRestartLR', 'periods': [4],
                                                 'restart_weights': [1], 'eta_min': 1e-7})
    opt['val']['val_freq'] = 4
    opt['logger'].update(print_freq=2, save_checkpoint_freq=4, use_tb_logger=False)
    shutil.copy(osp.join(ROOT, 'train.py'), tmp_path / 'train.py')
    path = write_yaml(tmp_path / 'baseline.yml', opt)
    run_script([str(tmp_path / 'train.py'), '-opt', path], cwd=tmp_path, env=env())
    log = next((tmp_path / 'experiments' / 'baseline_check').glob('train_*.log')).read_text()
    assert 'gflops' in log and 'psnr_rgb' in log
    assert (tmp_path / 'experiments' / 'baseline_check' / 'models' / 'net_g_latest.pth').exists()


def test_a_training_yaml_runs_under_plain_basicsr_train_pipeline(tiny_root, tmp_path):
    """The plugin use the README promises: a plain BasicSR ``train.py`` that imports adaptsr first and calls BasicSR's
    own ``train_pipeline`` (none of adaptsr's pipeline patches) trains a phased YAML to the end."""
    opt = train_options('plain_basicsr', str(tiny_root / 'hr'), save_freq=100)
    opt['train']['total_iter'] = 6  # as the shipped YAMLs carry it: BasicSR reads it before it builds the model
    path = write_yaml(tmp_path / 'plain.yml', opt)
    script = tmp_path / 'plain_train.py'
    script.write_text('import os.path as osp\n'
                      'import adaptsr  # registrations and the torchvision shim only\n'
                      'import basicsr.train as bt\n'
                      'from basicsr.utils.options import parse_options\n'
                      'assert bt.parse_options is parse_options, "pipeline patched"\n'
                      'assert bt.load_resume_state.__module__ == "basicsr.train", "pipeline patched"\n'
                      'bt.train_pipeline(osp.dirname(osp.abspath(__file__)))\n')
    run_script([str(script), '-opt', path], cwd=str(tmp_path), env=env())
    exp = tmp_path / 'experiments' / 'plain_basicsr'
    log = open(next(str(p) for p in exp.glob('train_plain_basicsr_*.log'))).read()
    assert 'Entering phase 0 "heavy"' in log and 'Entering phase 1 "classifier"' in log
    assert 'End of training' in log and (exp / 'models' / 'net_g_latest.pth').exists()


def test_phase1_from_the_phase0_part_of_the_official_file(tmp_path, weights):
    """PCSR phase 1 from any file: --keep encoder,heavy_sampler of the official phase-1 file is a phase-0 checkpoint;
    with train.start_phase: classifier it loads (encoder/heavy equal the file's, light/classifier newly initialised
    and named in the log); a full strict load of it, or a file that also lacks a key no phase from start_phase on
    trains for the first time, fails naming the missing keys."""
    from basicsr.models import build_model
    official = require(osp.join(weights, 'PCSR/carn-pcsr-phase1/iter_last.pth'))
    phase0 = tmp_path / 'phase0.pth'
    proc = run_script(['scripts/convert_official.py', '--method', 'pcsr', '--keep', 'encoder,heavy_sampler',
                       '--input', official, '--output', str(phase0)])
    assert '102 tensors kept, 14 left out ([\'classifier\', \'light_sampler\'])' in proc.stdout
    sd0 = torch.load(phase0, weights_only=True)['params']
    assert {k.split('.')[0] for k in sd0} == {'encoder', 'heavy_sampler'}

    def build(start_phase):
        opt = train_options('phase0_load', str(tmp_path))
        net = {'type': 'PCSRNet', 'encoder': 'carn', 'encoder_opt': {'num_feat': 52}, 'upscale': 4,
               'heavy_hidden': [74, 74, 74, 74], 'light_hidden': [20, 20, 20], 'cls_hidden': [10, 10],
               'rgb_mean': [0.4488, 0.4371, 0.4040]}
        opt.update(network_g=net, dist=False, rank=0, world_size=1, is_train=True, root_path=str(tmp_path))
        opt['train']['start_phase'] = start_phase
        opt['path'].update(pretrain_network_g=str(phase0), experiments_root=str(tmp_path), models=str(tmp_path),
                           training_states=str(tmp_path), log=str(tmp_path), visualization=str(tmp_path))
        return build_model(opt)

    import logging
    records = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())
    logger = logging.getLogger('basicsr')
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        model = build('classifier')
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    sd = model.net_g.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in sd0.items())
    loaded = next(r for r in records if r.startswith('Loaded PCSRNet'))
    assert 'newly initialised' in loaded and 'classifier.imnet.layers.0.weight' in loaded and 'encoder' not in \
        loaded.split('newly initialised')[1]
    assert model.phase.name == 'classifier'
    with pytest.raises(RuntimeError, match=r'missing keys \(14\).*classifier.imnet'):
        build(None)
    # from phase 0 on, the light upsampler and classifier keep their initialisation until phase 1 trains them
    assert build('heavy').phase.name == 'heavy'
    # a key that no phase from start_phase on trains for the first time is still an error
    first = sorted(sd0)[0]
    torch.save({'params': {k: v for k, v in sd0.items() if k != first}}, phase0)
    with pytest.raises(RuntimeError, match=rf'missing keys \(1\).*{re.escape(first)}'):
        build('classifier')


@pytest.mark.slow
def test_kill_resume_loop_ends_with_the_uninterrupted_files(demo_data, tmp_path):
    """scripts/kill_resume_loop.py on the CABM demo recipe (shortened): 6 kills, half of them while a checkpoint or
    state is written; every file of models/ equals the uninterrupted run's."""
    import json
    demo = osp.relpath(demo_data, ROOT) if demo_data.startswith(ROOT) else demo_data
    report = tmp_path / 'kill.json'
    name = f'kill_loop_test_{os.getpid()}'
    try:
        run_script(['scripts/kill_resume_loop.py', '-opt', 'options/train/cabm_edsr_baseline_x4_demo.yml',
                    '--kills', '6', '--min_delay', '4', '--json', str(report), '--set', f'name={name}',
                    'network_g.num_feat=16', 'network_g.num_block=2', 'train.phases.*.iters=12',
                    'logger.save_checkpoint_freq=2', 'datasets.train.batch_size_per_gpu=2',
                    'train.cabm.iters_per_epoch=4', 'train.cabm.alpha_init_iters=2',
                    f'datasets.train.dataroot_gt={demo}/train_HR_sub128.lmdb',
                    f'datasets.train.dataroot_lq={demo}/train_LR_bicubic_X4_sub.lmdb',
                    f'train.cabm.lut_dataroot={demo}/train/LR_bicubic_sub/X4', '--unset', 'val', 'datasets.val'],
                   timeout=3600)
        result = json.loads(report.read_text())
        assert result['equal'] and set(result['files']) >= {'net_g_latest.pth', 'net_g_fp.pth', 'cabm_lut.json'}
        assert sum(e['how'] != 'finished' for e in result['events']) >= 3
    finally:
        for path in [osp.join(ROOT, 'experiments', f'{name}_{k}') for k in ('ref', 'kill')]:
            for folder in [path] + glob.glob(path + '_archived_*'):
                shutil.rmtree(folder, ignore_errors=True)
            yml = osp.join(ROOT, 'experiments', f'.{osp.basename(path)}.yml')
            if osp.exists(yml):
                os.remove(yml)
