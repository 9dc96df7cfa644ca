"""End to end: test.py budget sweep outputs, benchmark script, demo data, options files, registry."""
import json
import os
import os.path as osp
import subprocess
import sys

import lmdb
import pytest
import yaml

from conftest import BENCHMARK, ROOT, WEIGHTS, require, run_script, write_yaml


def _set5_options(tmp_path):
    with open(osp.join(ROOT, 'options/test/pcsr_carn_x4.yml')) as f:
        opt = yaml.safe_load(f)
    opt['name'] = 'pcsr_carn_x4_set5_check'
    opt['datasets'] = {'test_1': opt['datasets']['test_1']}
    opt['val']['budget_sweep'] = [0, 'adaptive']
    return opt


def test_budget_sweep_writes_table_images_and_plot(tmp_path):
    require(osp.join(WEIGHTS, 'PCSR/carn-pcsr-phase1/iter_last.pth'))
    require(osp.join(BENCHMARK, 'Set5'))
    path = write_yaml(tmp_path / 'set5.yml', _set5_options(tmp_path))
    root = tmp_path / 'root'
    root.mkdir()
    os.symlink(osp.join(ROOT, 'test.py'), root / 'test.py')
    proc = run_script([osp.join(ROOT, 'test.py'), '-opt', path], cwd=root)
    res = osp.join(ROOT, 'results', 'pcsr_carn_x4_set5_check')
    try:
        rows = json.load(open(osp.join(res, 'Set5_sweep.json')))
        assert [r['budget'] for r in rows] == ['k=0', 'adaptive']
        for r in rows:
            assert 29 < r['psnr_rgb'] < 31 and 31 < r['psnr_y'] < 32.5 and 0.85 < r['ssim_y'] < 0.95
            assert 0 < r['gflops'] < r['gflops_full'] * 1.05 and 0 < r['heavy_ratio'] < 1
        assert osp.getsize(osp.join(res, 'Set5_sweep.png')) > 1000
        assert osp.exists(osp.join(res, 'Set5_sweep.csv'))
        saved = os.listdir(osp.join(res, 'visualization', 'Set5'))
        # one SR image per image and budget, and beside each its classification map (heavy pixels in red)
        maps = [n for n in saved if n.endswith('_classes.png')]
        assert len(saved) == 20 and len(maps) == 10 and any(n.endswith('_adaptive.png') for n in saved)
        assert all(n.replace('_classes.png', '.png') in saved for n in maps)
        assert 'Budget sweep on Set5' in proc.stdout + proc.stderr
    finally:
        import shutil
        shutil.rmtree(res, ignore_errors=True)


def test_benchmark_script_side_by_side(tmp_path):
    require(osp.join(WEIGHTS, 'PCSR/carn-x4/iter_last.pth'))
    out = tmp_path / 'bench.json'
    run_script([osp.join(ROOT, 'scripts/benchmark.py'), '-opt', osp.join(ROOT, 'options/test/pcsr_carn_x4.yml'),
                '--datasets', 'Set5', '--max_images', '2', '--budgets', '0,adaptive', '--threads', '2',
                '--json', str(out)])
    data = json.load(open(out))
    rows = {r['budget']: r for r in data['rows']}
    assert set(rows) == {'-', 'k=0', 'adaptive'}
    ref = rows['-']
    assert ref['config'] == 'reference' and ref['gflops'] > rows['k=0']['gflops'] > 0
    for r in rows.values():
        assert r['sec_median'] > 0 and r['peak_mem_mib'] >= 0 and r['images'] == 2
    assert rows['k=0']['flops_speedup'] == pytest.approx(ref['gflops'] / rows['k=0']['gflops'])
    assert osp.exists(tmp_path / 'bench.csv') and osp.exists(tmp_path / 'bench.png')


@pytest.mark.parametrize('case', ['existing_json', 'existing_png', 'csv_name'])
def test_benchmark_never_replaces_results_without_overwrite(tmp_path, case):
    """Checked before the run: an existing JSON/CSV/PNG output is refused (named, with --overwrite as the way out)
    and left untouched; ``--json out.csv`` would have written the CSV over the JSON, and is refused too."""
    import subprocess
    import sys
    out = tmp_path / ('bench.csv' if case == 'csv_name' else 'bench.json')
    kept = tmp_path / ('bench.png' if case == 'existing_png' else 'bench.json')
    if case != 'csv_name':
        kept.write_text('earlier results')
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'scripts/benchmark.py'), '-opt',
                           osp.join(ROOT, 'options/test/pcsr_carn_x4.yml'), '--json', str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    if case == 'csv_name':
        assert f'--json {out}: must name a .json file' in proc.stderr
        assert not out.exists()
    else:
        assert f'{kept}: already exists; pass --overwrite to replace it' in proc.stderr
        assert kept.read_text() == 'earlier results'


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    from adaptsr.utils.atomic import atomic_write
    path = tmp_path / 'table.csv'
    path.write_text('old')
    with pytest.raises(RuntimeError, match='writer died'):
        with atomic_write(str(path)) as tmp:
            assert tmp.endswith('.csv') and osp.dirname(tmp) == str(tmp_path)
            with open(tmp, 'w') as f:
                f.write('half a ta')
            raise RuntimeError('writer died')
    assert path.read_text() == 'old' and sorted(p.name for p in tmp_path.iterdir()) == ['table.csv']
    with atomic_write(str(path)) as tmp:
        with open(tmp, 'w') as f:
            f.write('new')
    assert path.read_text() == 'new' and sorted(p.name for p in tmp_path.iterdir()) == ['table.csv']


def test_benchmark_sweeps_a_reference_model_and_compares_curves_at_matched_cost(tmp_path):
    """A network_refs entry with its own val.budget_sweep (the official file beside one's own) is swept too, and
    the bench prints each point's PSNR against that curve at the same GFLOPs: 0 dB for the same weights."""
    require(osp.join(WEIGHTS, 'PCSR/carn-pcsr-phase1/iter_last.pth'))
    out = tmp_path / 'bench.json'
    proc = run_script([osp.join(ROOT, 'scripts/benchmark.py'), '-opt',
                       osp.join(ROOT, 'options/test/pcsr_carn_x4_291_bench.yml'), '--max_images', '1',
                       '--force_yml', 'path:pretrain_network_g=${ADAPTSR_WEIGHTS}/PCSR/carn-pcsr-phase1/iter_last.pth',
                       'datasets:test_1:name=Set5', 'datasets:test_1:dataroot_gt=${ADAPTSR_BENCHMARK}/Set5/HR',
                       'datasets:test_1:dataroot_lq=${ADAPTSR_BENCHMARK}/Set5/LR_bicubic/X4',
                       '--budgets=-1,0,1', '--references', 'official', '--threads', '2', '--json', str(out)])
    rows = json.load(open(out))['rows']
    assert [(r['config'], r['budget']) for r in rows] == \
        [('official', b) for b in ('k=-1', 'k=-0.5', 'k=0', 'k=0.5', 'k=1', 'adaptive')] + \
        [('PCSRNet', b) for b in ('k=-1', 'k=0', 'k=1')]
    official = {r['budget']: r for r in rows if r['config'] == 'official'}
    assert official['k=-1']['gflops'] > official['k=0']['gflops'] > official['k=1']['gflops']
    for r in rows[-3:]:
        assert r['psnr_rgb'] == official[r['budget']]['psnr_rgb'] and r['gflops'] == official[r['budget']]['gflops']
    assert 'PCSRNet against the official sweep at the same GFLOPs (psnr_rgb, linear interpolation along its ' \
           'curve): k=-1 +0.0000 dB, k=0 +0.0000 dB, k=1 +0.0000 dB' in proc.stdout


def test_benchmark_labels_a_model_without_budget_knob_and_its_references(tmp_path):
    """A model run at its own options (SMSR has no budget knob) is labelled 'default', a reference '-' (a star in
    the plot); the per-image details are keyed dataset/budget and dataset/label."""
    require(osp.join(WEIGHTS, 'SMSR/SMSR_x2_model_1000.pt'))
    out = tmp_path / 'bench.json'
    run_script([osp.join(ROOT, 'scripts/benchmark.py'), '-opt', osp.join(ROOT, 'options/test/smsr_x2_291_bench.yml'),
                '--force_yml', 'path:pretrain_network_g=${ADAPTSR_WEIGHTS}/SMSR/SMSR_x2_model_1000.pt',
                '--max_images', '1', '--threads', '2', '--json', str(out)])
    data = json.load(open(out))
    assert [(r['config'], r['budget']) for r in data['rows']] == [('official', '-'), ('SMSRNet', 'default')]
    assert sorted(data['per_image']) == ['B100/default', 'B100/official']


def test_matched_cost_difference_interpolates_and_never_extrapolates():
    from adaptsr.utils.report import matched_cost_difference
    ref = [{'gflops': 10, 'psnr_rgb': 26.0}, {'gflops': 20, 'psnr_rgb': 27.0}]
    mine = [{'budget': 'a', 'gflops': 15, 'psnr_rgb': 26.4}, {'budget': 'b', 'gflops': 25, 'psnr_rgb': 28.0}]
    (m, ) = matched_cost_difference(mine, ref)
    assert m['budget'] == 'a' and m['y_ref'] == pytest.approx(26.5) and m['diff'] == pytest.approx(-0.1)


def test_demo_data_layout(demo_data):
    root = demo_data
    env = lmdb.open(osp.join(root, 'train_HR_sub128.lmdb'), readonly=True, lock=False)
    meta = open(osp.join(root, 'train_HR_sub128.lmdb', 'meta_info.txt')).read().split('\n')
    assert env.stat()['entries'] == len([m for m in meta if m]) > 100
    lr_meta = open(osp.join(root, 'train_LR_bicubic_X4_sub.lmdb', 'meta_info.txt')).read().split('\n')
    assert [m.split(' ')[0] for m in lr_meta] == [m.split(' ')[0] for m in meta]
    assert '(32,32,3)' in lr_meta[0] and '(128,128,3)' in meta[0]
    for s in (2, 3, 4):
        assert sorted(os.listdir(osp.join(root, 'val', 'LR_bicubic', f'X{s}'))) == ['chelseax%d.png' % s,
                                                                                  'coffeex%d.png' % s]


def test_data_tools_never_overwrite(tmp_path, demo_data):
    from adaptsr.core.data_prep import create_lmdb, crop_positions
    assert crop_positions(500, 128, 64, 48) == [0, 64, 128, 192, 256, 320, 372]
    assert crop_positions(450, 128, 64, 48) == [0, 64, 128, 192, 256, 320]
    target = tmp_path / 'x.lmdb'
    create_lmdb(osp.join(demo_data, 'val', 'HR'), str(target))
    with pytest.raises(FileExistsError):
        create_lmdb(osp.join(demo_data, 'val', 'HR'), str(target))
    dotted = tmp_path / 'dotted'
    dotted.mkdir()
    import shutil
    shutil.copy(osp.join(demo_data, 'val', 'HR', 'coffee.png'), dotted / '0.9_coffee.png')
    with pytest.raises(ValueError, match='dot'):
        create_lmdb(str(dotted), str(tmp_path / 'd.lmdb'))
    out = tmp_path / 'subs'
    run_script([osp.join(ROOT, 'scripts/extract_subimages.py'), '--input', osp.join(demo_data, 'val', 'HR'),
                '--output', str(out), '--crop_size', '128', '--step', '64', '--thresh_size', '48',
                '--augment_scales', '1,0.9', '--n_thread', '1'])
    names = sorted(os.listdir(out))
    assert names[0].startswith('s090_chelsea_s') and any(n.startswith('s100_coffee_s') for n in names)


@pytest.mark.parametrize('path', sorted(
    osp.join(d, f) for d in ('options/train', 'options/test') for f in os.listdir(osp.join(ROOT, d))))
def test_options_files_build(path):
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY
    from adaptsr.core.phases import PhaseSchedule
    from adaptsr.core.options import check_options
    with open(osp.join(ROOT, path)) as f:
        opt = yaml.safe_load(f)
    assert opt['model_type'] in MODEL_REGISTRY
    for dopt in opt['datasets'].values():
        assert dopt['type'] in DATASET_REGISTRY
    for key in ('network_g', 'network_ref'):
        if key in opt:
            net_opt = dict(opt[key])
            ARCH_REGISTRY.get(net_opt.pop('type'))(**net_opt)
    check_options(opt)  # every key of val / train / train.<method> / phases / network_g is one the model reads
    if opt.get('train', {}).get('phases'):
        sched = PhaseSchedule.from_options(opt['train'])
        # a plain BasicSR train.py reads total_iter before it builds the model; from train.start_phase on
        first = sched.phases[0].index
        assert opt['train']['total_iter'] == sched.total_iter == sum(p['iters'] for p in opt['train']['phases'][first:])
    if 'test' in path:
        assert 'val' in opt and 'save_img' in opt['val']
    # a method's own test-time defaults (APE's and CABM's tiles) are written out in the YAML
    model_cls = MODEL_REGISTRY.get(opt['model_type'])
    if model_cls is not MODEL_REGISTRY.get('AdaptiveSRModel'):
        for key in ('tile_size', 'tile_overlap', 'tile_batch'):
            if key in model_cls.__dict__.get('val_options', {}):
                assert key in opt['val'], key


def test_plugin_registers_without_clashes():
    """Another BasicSR project (whose stack already imports basicsr) then imports adaptsr.archs etc."""
    code = ('import sys, types, torchvision.transforms.functional as F\n'
            'm = types.ModuleType("torchvision.transforms.functional_tensor")\n'
            'm.rgb_to_grayscale = F.rgb_to_grayscale\n'
            'sys.modules[m.__name__] = m  # that project\'s own fix for torchvision >= 0.17\n'
            'import basicsr, basicsr.train\n'
            'import adaptsr.archs, adaptsr.models, adaptsr.losses, adaptsr.data\n'
            'from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY, LOSS_REGISTRY, DATASET_REGISTRY\n'
            'ours = {r._name: [k for k, v in r._obj_map.items() if v.__module__.startswith("adaptsr")] for r in '
            '(ARCH_REGISTRY, MODEL_REGISTRY, LOSS_REGISTRY, DATASET_REGISTRY)}\n'
            'print(ours)')
    proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, check=True)
    ours = eval(proc.stdout.strip().splitlines()[-1])
    assert {'PCSRNet', 'PCSRCARN', 'PCSRFSRCNN', 'BicubicSR', 'ETDSNet', 'ETDSPlain', 'ETDSOnlyET',
            'ETDSAblationResidual', 'ETDSAblationAdvancedResidual', 'ETDSAblationPlain', 'ECBSRPlain',
            'ABPNNet', 'SMSRNet', 'APEEDSR', 'APERCAN', 'APEVDSR', 'APEECBSR', 'CABMEDSR'} <= set(ours['arch'])
    assert {'PCSRModel', 'AdaptiveSRModel', 'ETDSModel', 'SMSRModel', 'APEModel', 'CABMModel'} <= set(ours['model'])
    assert sorted(ours['loss']) == ['APEExitL1Loss', 'APEICLoss', 'CABMBitLoss', 'CABMDistillLoss',
                                    'CABMOutputDistillLoss', 'ETDSResidualL1Loss', 'PCSRAverageCostLoss',
                                    'SMSRSparsityLoss']
    assert sorted(ours['dataset']) == ['ETDSPairedDataset', 'PCSRHRDataset']
    basicsr_names = {'ECBSR', 'EDSR', 'MSRResNet', 'RCAN', 'SRModel', 'PairedImageDataset', 'L1Loss'}
    assert not basicsr_names & {n for names in ours.values() for n in names}


def test_fresh_process_peak_memory_sees_a_known_allocation():
    code = ('import torch\nfrom adaptsr.bench.measure import fresh_process_peak_mib\n'
            'big = torch.ones(1)\n'
            'def fn():\n    x = torch.ones(100 * 2**20 // 4)\n    return float(x.sum())\n'
            'print(fresh_process_peak_mib(fn))')
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='131072', PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert 95 <= float(out.stdout.strip().splitlines()[-1]) <= 140
