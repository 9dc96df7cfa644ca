"""Long checks (-m slow): shortened versions of the *_291 recipes on a part of the shared 291 set.

Each trains the shipped ``options/train/*_291.yml`` for a few hundred iterations on 30 of the BSD200 images, then
scores it with its shipped bench options, and asserts the direction of the full run's result (README, "Training on
the 291 set"), not a copy of its figures.
"""
import json
import os
import os.path as osp
import shutil

import pytest
import yaml

from conftest import BENCHMARK, DATA, ROOT, WEIGHTS, require, run_script, write_yaml

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    """``${ADAPTSR_DATA}`` of the shortened runs: ``train291/`` LMDBs built by prepare_data.py from 30 BSD200 images."""
    src = require(osp.join(DATA, 'train291', 'BSD200'))
    root = tmp_path_factory.mktemp('data')
    part = root / 'part'
    part.mkdir()
    for name in sorted(os.listdir(src))[:30]:
        os.symlink(osp.join(src, name), part / name)
    proc = run_script(['scripts/prepare_data.py', '--input', str(part), '--output', str(root / 'train291')])
    assert '30 images (0 smaller than 144 px, skipped) -> 540 sub-images per LMDB, 4 LMDBs' in proc.stdout
    return root


def train_291(tmp_path, data_root, yml, edit):
    """Run train.py on ``options/train/<yml>`` in ``tmp_path`` with ``ADAPTSR_DATA=data_root``; ``edit(opt)`` shortens
    it. Returns the experiment folder."""
    with open(osp.join(ROOT, 'options/train', yml)) as f:
        opt = yaml.safe_load(f)
    opt['logger'].update(use_tb_logger=False, print_freq=50)
    edit(opt)
    shutil.copy(osp.join(ROOT, 'train.py'), tmp_path / 'train.py')
    env = {'PYTHONPATH': ROOT, 'OMP_NUM_THREADS': '2', 'ADAPTSR_DATA': str(data_root), 'ADAPTSR_WEIGHTS': WEIGHTS,
           'ADAPTSR_BENCHMARK': BENCHMARK}
    run_script([str(tmp_path / 'train.py'), '-opt', write_yaml(tmp_path / 'run.yml', opt)], cwd=tmp_path, env=env,
               timeout=3600)
    return tmp_path / 'experiments' / opt['name']


def shorten(opt, iters, val_freq=None):
    """One phase's schedule cut to ``iters`` (MultiStep milestones and cosine periods scaled alike)."""
    (phase, ) = [p for p in opt['train']['phases'] if p['name'] == opt['train'].get('start_phase', p['name'])]
    old = phase['iters']
    phase['iters'] = iters
    for holder in (phase, opt['train']):
        sched = holder.get('scheduler')
        if sched and 'periods' in sched:
            sched['periods'] = [iters]
        if sched and 'milestones' in sched:
            sched['milestones'] = [max(1, m * iters // old) for m in sched['milestones']]
    opt['train']['total_iter'] = iters
    opt['val']['val_freq'] = val_freq or iters
    opt['logger']['save_checkpoint_freq'] = iters


def bench(tmp_path, yml, pretrain, *extra, force=()):
    """scripts/benchmark.py on ``options/test/<yml>`` with ``path.pretrain_network_g`` = ``pretrain`` and the
    further ``--force_yml`` entries ``force``; rows."""
    out = tmp_path / 'bench.json'
    run_script(['scripts/benchmark.py', '-opt', osp.join('options/test', yml), '--threads', '2', *extra,
                '--force_yml', f'path:pretrain_network_g={pretrain}', *force, '--json', str(out)], timeout=3600)
    return json.load(open(out))['rows']


def test_pcsr_phase1_from_the_official_phase0_part(tmp_path, data_root):
    """PCSR phase 1 (light upsampler + classifier from scratch, encoder and heavy upsampler of the official file),
    200 iterations, then the bench on 3 Urban100 images. Direction of the full run: the heavy end of the curve is the
    official one (frozen parts bit-exact), k orders the routing, and the adaptive (ADM) point approaches the
    official one (within 1 dB after 200 iterations; -0.04 dB after the full 4,000)."""
    import torch
    phase0 = tmp_path / 'phase0.pth'
    run_script(['scripts/convert_official.py', '--method', 'pcsr', '--keep', 'encoder,heavy_sampler', '--input',
                require(osp.join(WEIGHTS, 'PCSR/carn-pcsr-phase1/iter_last.pth')), '--output', str(phase0)])

    def edit(opt):
        shorten(opt, 200)
        opt['path']['pretrain_network_g'] = str(phase0)
        opt['datasets']['train']['batch_size_per_gpu'] = 8

    exp = train_291(tmp_path, data_root, 'pcsr_carn_x4_291.yml', edit)
    trained = torch.load(exp / 'models' / 'net_g_latest.pth', weights_only=True)['params']
    start = torch.load(phase0, weights_only=True)['params']
    assert all(torch.equal(trained[k], v) for k, v in start.items())  # frozen (BatchNorm statistics included)
    assert {k.split('.')[0] for k in set(trained) - set(start)} == {'light_sampler', 'classifier'}
    rows = bench(tmp_path, 'pcsr_carn_x4_291_bench.yml', exp / 'models' / 'net_g_latest.pth', '--max_images', '3',
                 '--references', 'official', '--budgets=-1,0,1,adaptive')
    ours = {r['budget']: r for r in rows if r['config'] == 'PCSRNet'}
    official = {r['budget']: r for r in rows if r['config'] == 'official'}
    assert ours['k=-1']['heavy_ratio'] >= ours['k=0']['heavy_ratio'] >= ours['k=1']['heavy_ratio']
    assert abs(ours['k=-1']['psnr_rgb'] - official['k=-1']['psnr_rgb']) < 0.05
    assert ours['adaptive']['psnr_rgb'] > official['adaptive']['psnr_rgb'] - 1.0


def test_cabm_recipe_on_a_part_of_the_291_set(tmp_path, data_root):
    """The CABM ECBSR M6C40 recipe's two steps shortened (PAMS 300 iterations; then from its files CADyQ 200 and CABM
    100), then the bench on 3 Urban100 images. Direction of the full run: PAMS w8a8 stays near the full-precision
    network, the table lowers the average bits below 8, lowering the calibration lowers them further, and CABM stays
    near PAMS."""
    def edit(opt, iters):
        for phase in opt['train']['phases']:
            phase['iters'] = iters.get(phase['name'], phase['iters'])
        opt['train']['total_iter'] = sum(iters.values())
        opt['train']['cabm']['iters_per_epoch'] = 20
        opt['val']['val_freq'] = sum(iters.values())
        opt['logger']['save_checkpoint_freq'] = sum(iters.values())
        opt['datasets']['train']['batch_size_per_gpu'] = 8

    step1 = train_291(tmp_path, data_root, 'cabm_ecbsr_m6c40_x4_291_pams.yml', lambda opt: edit(opt, {'pams': 300}))
    assert {'net_g_latest.pth', 'net_t_pams.pth'} <= set(os.listdir(step1 / 'models'))
    # step 2 reads step 1's files at the shipped relative paths (experiments/..._pams/models/ under the same folder)
    exp = train_291(tmp_path, data_root, 'cabm_ecbsr_m6c40_x4_291.yml',
                    lambda opt: edit(opt, {'cadyq': 200, 'cabm': 100}))
    models = exp / 'models'
    rows = bench(tmp_path, 'cabm_ecbsr_m6c40_x4_291_bench.yml', models / 'net_g_latest.pth', '--max_images', '3',
                 '--datasets', 'Urban100', '--budgets', '100,6.6',
                 force=(f'path:cabm_lut={models / "cabm_lut.json"}',
                        f'network_refs:pams_w8a8:pretrain={step1 / "models" / "net_t_pams.pth"}',
                        f'network_refs:cadyq:pretrain={models / "net_g_cadyq.pth"}'))
    by = {(r['config'], r['budget']): r for r in rows}
    fp, pams, cadyq = by[('fp', '-')], by[('pams_w8a8', '-')], by[('cadyq', '-')]
    cabm, low = by[('CABMNet', 'cal100')], by[('CABMNet', 'cal6.6')]
    assert pams['psnr_y'] > fp['psnr_y'] - 0.3 and pams['fab'] == 8
    assert cabm['fab'] < 8 and low['fab'] < cabm['fab'] and cadyq['fab'] < 8
    assert cabm['psnr_y'] > pams['psnr_y'] - 0.5


def test_ape_separate_exit_tails_on_a_part_of_the_291_set(tmp_path, data_root):
    """The APE-ECBSR recipe (frozen released backbone, separate exit tails and the regressor train) shortened to 300
    iterations, then the bench on 3 Urban100 images. Direction of the full run: threshold 1 is the released ECBSR
    bit for bit (the backbone stays frozen), and lowering the threshold lowers FLOPs and PSNR together."""
    import torch
    from adaptsr.core.checkpoint_io import load_checkpoint
    from adaptsr.core.checkpoints import checkpoint_state_dict

    def edit(opt):
        shorten(opt, 300)
        opt['datasets']['train']['batch_size_per_gpu'] = 8

    exp = train_291(tmp_path, data_root, 'ape_ecbsr_m6c40_x4_291.yml', edit)
    trained = torch.load(exp / 'models' / 'net_g_latest.pth', weights_only=True)['params']
    path = require(osp.join(WEIGHTS, 'ECBSR/ECBSR_M6C40_x4.pth'))
    released = checkpoint_state_dict(load_checkpoint(path), path)
    assert all(torch.equal(trained[k], v) for k, v in released.items())
    assert not torch.equal(trained['exit_tails.0.weight'], released['backbone.7.0.weight'])  # the exit tails trained
    rows = bench(tmp_path, 'ape_ecbsr_m6c40_x4_291_bench.yml', exp / 'models' / 'net_g_latest.pth', '--max_images',
                 '3', '--datasets', 'Urban100', '--references', 'ecbsr_tiled', '--budgets', '1,0.1,0.01')
    by = {(r['config'], r['budget']): r for r in rows}
    ref, full = by[('ecbsr_tiled', '-')], by[('APEECBSR', 'thr1')]
    # after 300 iterations the regressor predicts under 0.2 on Urban100's first three images (by name): the thresholds
    # that move them are 0.1 and 0.01 (12.55 / 11.64 / 7.69 GFLOPs at 1 / 0.1 / 0.01 in the run that set them)
    mid, low = by[('APEECBSR', 'thr0.1')], by[('APEECBSR', 'thr0.01')]
    # the same network: APE's forward_exit runs channels_last on the CPU, so float32 rounding may move a pixel by one
    # 8-bit level against the plain layout
    assert abs(full['psnr_y'] - ref['psnr_y']) < 1e-4
    assert full['gflops'] >= mid['gflops'] >= low['gflops'] and full['gflops'] > low['gflops']
    assert full['psnr_y'] >= mid['psnr_y'] - 0.01 and mid['psnr_y'] >= low['psnr_y'] - 0.01


def test_ape_edsr_baseline_three_phases_on_a_part_of_the_291_set(tmp_path, data_root):
    """The APE-EDSR-baseline recipe from scratch, its three phases shortened to 60 / 30 / 30 iterations at batch 8
    and HR patch 96, then the bench on 2 Urban100 images. What each phase trains: the backbone phase head, body and
    tail (the regressor untouched), the exit phase the same, the regressor phase only the regressor; the saved file
    rebuilds itself (meta.trained_with); lowering the threshold never adds FLOPs."""
    import torch

    import adaptsr

    def edit(opt):
        for phase, iters in zip(opt['train']['phases'], (60, 30, 30)):
            phase['iters'] = iters
            if 'scheduler' in phase:
                phase['scheduler']['periods'] = [iters]
            phase.pop('warmup_iter', None)
        opt['train']['total_iter'] = 120
        opt['datasets']['train'].update(batch_size_per_gpu=8, gt_size=96)
        opt['val']['val_freq'] = 120
        opt['logger']['save_checkpoint_freq'] = 30

    exp = train_291(tmp_path, data_root, 'ape_edsr_baseline_x4_291.yml', edit)
    nets = {i: torch.load(exp / 'models' / f'net_g_{i}.pth', weights_only=True)['params'] for i in (30, 60, 90, 120)}

    def moved(a, b):
        return {k.split('.')[0] for k in nets[a] if not torch.equal(nets[a][k], nets[b][k])}
    assert moved(30, 60) == {'head', 'body', 'tail'}  # the backbone phase
    assert moved(60, 90) == {'head', 'body', 'tail'}  # the exits
    assert moved(90, 120) == {'regressor'}
    runner = adaptsr.load(str(exp / 'models' / 'net_g_latest.pth'))  # rebuilt from the file alone
    assert runner.opt['network_g']['type'] == 'APEEDSR' and runner.opt['network_g']['exit_interval'] == 4
    rows = bench(tmp_path, 'ape_edsr_baseline_x4_291_bench.yml', exp / 'models' / 'net_g_latest.pth', '--max_images',
                 '2', '--datasets', 'Urban100', '--references', 'edsr_tiled', '--budgets', '1,0.5,0',
                 force=[f'network_refs:edsr_tiled:pretrain={exp / "models" / "net_g_60.pth"}'])
    by = {(r['config'], r['budget']): r for r in rows}
    full, mid, low = by[('APEEDSR', 'thr1')], by[('APEEDSR', 'thr0.5')], by[('APEEDSR', 'thr0')]
    assert full['gflops'] >= mid['gflops'] >= low['gflops'] and full['exit_hist_3'] == 1.0
    assert by[('edsr_tiled', '-')]['psnr_y'] > 0  # the backbone-phase file ran beside it as the reference


def test_smsr_sparse_finetune_on_a_part_of_the_291_set(tmp_path, data_root):
    """The SMSR x2 recipe (official file, lambda0 0.1, tau annealed) shortened to 40 iterations at batch 4, then the
    bench on 5 B100 images against the official file. Direction of the full run: the masks stay alive (eta well
    above 0) and no denser than the official ones, at the official PSNR."""
    def edit(opt):
        shorten(opt, 40)
        opt['train']['smsr']['tau_epochs'] = 20
        opt['datasets']['train']['batch_size_per_gpu'] = 4

    exp = train_291(tmp_path, data_root, 'smsr_x2_291.yml', edit)
    rows = bench(tmp_path, 'smsr_x2_291_bench.yml', exp / 'models' / 'net_g_latest.pth', '--max_images', '5')
    ours = next(r for r in rows if r['config'] == 'SMSRNet')
    official = next(r for r in rows if r['config'] == 'official')
    assert 0.2 < ours['eta'] <= official['eta'] + 0.01
    assert abs(ours['psnr_y'] - official['psnr_y']) < 0.1
