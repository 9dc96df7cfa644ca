"""Nothing overwritten, nothing silent (round 2): one test per case, on the smallest input that shows it.

Output plans (inputs and other outputs never replaced), folder runs that go on past a bad file, divergence, option
and knob checks outside the options parser, BasicSR assertions a user's folder can trigger, and one-line errors.
"""
import hashlib
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import BENCHMARK, ROOT, model_options, require, write_yaml

TINY_PCSR = {'type': 'PCSRNet', 'encoder': 'carn', 'encoder_opt': {'num_feat': 16}, 'heavy_hidden': [16, 16],
             'light_hidden': [8], 'cls_hidden': [8], 'upscale': 4}


def md5(path):
    with open(path, 'rb') as f:
        return hashlib.md5(f.read()).hexdigest()


@pytest.fixture(scope='module')
def pcsr_ckpt(tmp_path_factory):
    """A small seeded PCSR network saved as a BasicSR checkpoint (the maps make it the interesting case)."""
    from basicsr.utils.registry import ARCH_REGISTRY
    torch.manual_seed(0)
    opt = dict(TINY_PCSR)
    net = ARCH_REGISTRY.get(opt.pop('type'))(**opt)
    path = str(tmp_path_factory.mktemp('ckpt') / 'pcsr.pth')
    torch.save({'params': net.state_dict()}, path)
    return path


def _photo(path, size=(40, 32)):
    from skimage import data
    cv2.imwrite(str(path), cv2.resize(data.chelsea()[:, :, ::-1], size, interpolation=cv2.INTER_AREA))
    return str(path)


def _infer(args):
    from adaptsr.cli.infer import main
    with pytest.raises(SystemExit) as err:
        main(args + ['--quiet'])
    return str(err.value)


# ------------------------------------------------------------------------------------------------ adaptsr-infer plans
def test_a_map_output_never_replaces_an_existing_file(tmp_path, pcsr_ckpt):
    (tmp_path / 'one').mkdir()
    (tmp_path / 'out').mkdir()
    _photo(tmp_path / 'one' / 'photo.png')
    mine = _photo(tmp_path / 'out' / 'photo_classes.png', (10, 10))
    before = md5(mine)
    msg = _infer([str(tmp_path / 'one'), '-o', str(tmp_path / 'out'), '--model', pcsr_ckpt, '--maps'])
    assert 'photo_classes.png: already exists; pass --overwrite' in msg
    assert md5(mine) == before and sorted(os.listdir(tmp_path / 'out')) == ['photo_classes.png']


def test_an_input_is_never_replaced_even_with_overwrite(tmp_path, pcsr_ckpt):
    photo = _photo(tmp_path / 'photo.png')
    before = md5(photo)
    for extra in ([], ['--overwrite']):
        msg = _infer([str(tmp_path), '-o', str(tmp_path), '--model', pcsr_ckpt] + extra)
        assert 'would replace the input' in msg and 'photo.png' in msg and 'refused even with --overwrite' in msg
    assert md5(photo) == before and sorted(os.listdir(tmp_path)) == ['photo.png']


def test_output_names_are_unique_across_images_and_maps_before_anything_runs(tmp_path, pcsr_ckpt):
    (tmp_path / 'in').mkdir()
    _photo(tmp_path / 'in' / 'photo.png')
    _photo(tmp_path / 'in' / 'photo_classes.png')
    msg = _infer([str(tmp_path / 'in'), '-o', str(tmp_path / 'out'), '--model', pcsr_ckpt, '--maps'])
    assert 'photo_classes.png: both the classes map of' in msg and 'SR image of' in msg
    assert not (tmp_path / 'out').exists()  # nothing written, not even the folder


def test_an_existing_file_as_the_output_folder_and_an_unwritable_parent_are_named(tmp_path, pcsr_ckpt, monkeypatch):
    photo = _photo(tmp_path / 'photo.png')
    afile = tmp_path / 'notes.txt'
    afile.write_text('mine')
    msg = _infer([photo, '-o', str(afile), '--model', pcsr_ckpt])
    assert f'{afile} is a file' in msg and afile.read_text() == 'mine'
    locked = tmp_path / 'locked'
    locked.mkdir()
    real_access = os.access  # as root, chmod alone does not lock a folder: say it is read-only
    monkeypatch.setattr(os, 'access', lambda p, m: False if str(p) == str(locked) else real_access(p, m))
    msg = _infer([photo, '-o', str(locked / 'sr'), '--model', pcsr_ckpt])
    assert f'{locked} (the parent of the output folder' in msg and 'not writable' in msg


def test_flags_the_model_would_ignore_are_refused(tmp_path, pcsr_ckpt):
    photo = _photo(tmp_path / 'photo.png')
    msg = _infer([photo, '-o', str(tmp_path / 'out'), '--model', pcsr_ckpt, '--cabm-lut', photo])
    assert msg.startswith('adaptsr-infer: a CABM table is read by CABMModel, but') and 'PCSRNet' in msg
    msg = _infer([photo, '-o', str(tmp_path / 'out'), '--model', pcsr_ckpt, '--tile-overlap', '8'])
    assert '--tile-overlap / --tile-merge need tiles' in msg
    assert not (tmp_path / 'out').exists()


def test_a_folder_as_the_model_is_named(tmp_path):
    photo = _photo(tmp_path / 'photo.png')
    (tmp_path / 'run').mkdir()
    msg = _infer([photo, '-o', str(tmp_path / 'out'), '--model', str(tmp_path / 'run')])
    assert 'is a folder; name the .pth file in it' in msg


def test_a_folder_run_goes_on_past_an_unreadable_image_and_writes_its_table(tmp_path, pcsr_ckpt):
    (tmp_path / 'in').mkdir()
    _photo(tmp_path / 'in' / 'a.png')
    (tmp_path / 'in' / 'b.png').write_bytes(b'')
    _photo(tmp_path / 'in' / 'c.png')
    out = tmp_path / 'out'
    msg = _infer([str(tmp_path / 'in'), '-o', str(out), '--model', pcsr_ckpt])
    assert '1 of 3 input(s) failed' in msg and 'b.png: cannot be read as an image' in msg
    assert (out / 'a.png').exists() and (out / 'c.png').exists() and not (out / 'b.png').exists()
    import csv
    rows = list(csv.DictReader(open(out / 'adaptsr_infer.csv')))
    assert [r['image'] for r in rows] == ['a.png', 'b.png', 'c.png']
    assert rows[1]['error'] and not rows[0]['error'] and float(rows[2]['gflops']) > 0


# ------------------------------------------------------------------------------------------------ checkpoints, options
def test_a_misspelt_param_key_is_refused_not_replaced_by_params(tmp_path, pcsr_ckpt):
    from basicsr.models import build_model
    from adaptsr.core.checkpoint_io import CheckpointError
    opt = model_options(tmp_path, 'PCSRModel', dict(TINY_PCSR), pretrain=pcsr_ckpt, val={'metrics': {}})
    opt['path']['param_key_g'] = 'parms'
    with pytest.raises(CheckpointError, match=r"pcsr.pth: no 'parms' in the checkpoint .* under \['params'\]"):
        build_model(opt)
    opt['path']['param_key_g'] = 'params_ema'  # BasicSR's rule: an EMA network loads params when there is no EMA
    build_model(opt)


def test_basicsr_srmodel_with_a_method_arch_is_refused_naming_the_model(tmp_path):
    from adaptsr.core.options import OptionError, check_options
    opt = model_options(tmp_path, 'SRModel', dict(TINY_PCSR))
    with pytest.raises(OptionError, match='model_type: SRModel cannot run network_g PCSRNet .* set model_type: '
                                          'PCSRModel'):
        check_options(opt)


def test_a_number_yaml_reads_as_a_string_is_explained(tmp_path):
    import yaml
    from adaptsr.core.options import OptionError, check_options
    val = yaml.safe_load('k: 1e9\nmetrics: {}')
    assert val['k'] == '1e9'  # YAML 1.1
    with pytest.raises(OptionError, match=r"val.k = '1e9': YAML read this as a string.* write 1.0e\+9"):
        check_options(model_options(tmp_path, 'PCSRModel', dict(TINY_PCSR), val=val))


def test_num_gpu_without_cuda_is_named(monkeypatch):
    from adaptsr.core.options import OptionError, check_device
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(OptionError, match=r'num_gpu = 1, but torch sees 0 CUDA device\(s\); set num_gpu: 0'):
        check_device({'num_gpu': 1})
    check_device({'num_gpu': 0})
    check_device({'num_gpu': 'auto'})


# ------------------------------------------------------------------------------------------------ divergence
def _etds_train(tmp_path, lr, divergence=None):
    from basicsr.models import build_model
    phase = {'name': 'all', 'iters': 50, 'optim_g': {'type': 'Adam', 'lr': lr},
             'losses': {'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}}}
    train = {'phases': [phase]}
    if divergence is not None:
        train['divergence'] = divergence
    return build_model(model_options(tmp_path, 'ETDSModel', {'type': 'ETDSNet', 'num_in_ch': 3, 'num_out_ch': 3,
                                                             'upscale': 4, 'num_block': 2, 'num_feat': 8,
                                                             'num_residual_feat': 3}, is_train=True, train=train))


def _batch():
    lq = torch.from_numpy(cv2.imread(require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X4/birdx4.png')))[:24, :24, ::-1]
                          .copy()).permute(2, 0, 1)[None].float() / 255
    gt = torch.from_numpy(cv2.imread(osp.join(BENCHMARK, 'Set5/HR/bird.png'))[:96, :96, ::-1].copy()
                          ).permute(2, 0, 1)[None].float() / 255
    return {'lq': lq, 'gt': gt}


def test_a_diverging_finite_loss_stops_the_run_naming_iteration_and_checkpoint(tmp_path):
    from adaptsr.core.phased_model import DivergedLossError
    model = _etds_train(tmp_path, 1e3)
    batch = _batch()
    with pytest.raises(DivergedLossError) as err:
        for it in range(1, 20):
            model.update_learning_rate(it)
            model.feed_data(batch)
            model.optimize_parameters(it)
            assert it < 10, 'the loss should have diverged within a few steps at lr 1e3'
    msg = str(err.value)
    assert 'the loss diverged' in msg and 'train.divergence.factor = 1000' in msg and "(phase 'all')" in msg
    assert 'Last good checkpoint: none saved yet' in msg
    # factor: ~ turns the check off (the same run trains on)
    model = _etds_train(tmp_path, 1e3, {'factor': None})
    for it in range(1, 4):
        model.update_learning_rate(it)
        model.feed_data(batch)
        model.optimize_parameters(it)


def test_a_normal_run_never_trips_the_divergence_bound(tmp_path):
    model = _etds_train(tmp_path, 2e-3, {'factor': 2.0, 'window': 5})  # even a tight bound
    batch = _batch()
    for it in range(1, 31):
        model.update_learning_rate(it)
        model.feed_data(batch)
        model.optimize_parameters(it)
    assert len(model._loss_history) == 5


def test_divergence_options_are_checked(tmp_path):
    from adaptsr.core.options import OptionError, check_options
    for bad, pattern in (({'factor': 0.5}, 'factor = 0.5: must be a number > 1'), ({'windw': 3}, "'windw'"),
                         ({'window': 0}, 'window = 0: must be an integer >= 1')):
        opt = model_options(tmp_path, 'PCSRModel', dict(TINY_PCSR), is_train=True,
                            train={'phases': [{'name': 'a', 'iters': 1, 'losses': {}}], 'divergence': bad})
        with pytest.raises(OptionError, match=pattern):
            check_options(opt)


# ------------------------------------------------------------------------------------------------ CABM
CABM_NET = {'type': 'CABMEDSR', 'upscale': 4, 'num_block': 2, 'num_feat': 16, 'mode': 'lut'}


def test_a_given_table_with_a_recipe_that_builds_its_own_is_refused_naming_both(tmp_path):
    from basicsr.models import build_model
    from adaptsr.core.options import OptionError
    phases = [{'name': 'cadyq', 'iters': 1, 'cabm_mode': 'cadyq', 'on_end': 'build_lut',
               'losses': {'pixel_opt': {'type': 'L1Loss'}}},
              {'name': 'lut', 'iters': 1, 'cabm_mode': 'lut', 'losses': {'pixel_opt': {'type': 'L1Loss'}}}]
    opt = model_options(tmp_path, 'CABMModel', dict(CABM_NET), is_train=True, train={'phases': phases},
                        path={'cabm_lut': str(tmp_path / 'other_run' / 'cabm_lut.json')})
    with pytest.raises(OptionError, match=r"path.cabm_lut = '.*other_run/cabm_lut.json', but phase 'cadyq' builds"):
        build_model(opt)


def test_a_table_file_that_is_not_json_is_named(tmp_path):
    from basicsr.models import build_model
    text = tmp_path / 'notes.txt'
    text.write_text('my notes\n')
    opt = model_options(tmp_path, 'CABMModel', dict(CABM_NET), path={'cabm_lut': str(text)},
                        val={'metrics': {}})
    with pytest.raises(ValueError, match=r'notes.txt: not an adaptsr-cabm-lut file \(not JSON'):
        build_model(opt)


def test_a_table_from_too_few_tiles_is_refused_naming_the_count(tmp_path):
    from adaptsr.methods.cabm.cabm_arch import CABMEDSR
    from adaptsr.methods.cabm.bitmap import build_table
    cv2.imwrite(str(tmp_path / 'dot.png'), np.full((1, 1, 3), 128, np.uint8))
    net = CABMEDSR(upscale=4, num_block=2, num_feat=16, mode='lut')
    with pytest.raises(ValueError, match=r'dot.png|1x1 pixels'):
        build_table(net, str(tmp_path), tile_size=48, step=46)
    os.remove(tmp_path / 'dot.png')
    _photo(tmp_path / 'small.png', (60, 50))  # 2 x 2 tiles of 48
    with pytest.raises(ValueError, match=r'4 tile\(s\) of 48 LR pixels from 1 image\(s\) .* at least 100 tiles'):
        build_table(net, str(tmp_path), tile_size=48, step=46)
    assert build_table(net, str(tmp_path), tile_size=48, step=46, min_tiles=4).meta['tiles'] == 4


# ------------------------------------------------------------------------------------------------ adaptsr-bench knobs
@pytest.mark.parametrize('budget,pattern', [
    (-5.0, r"--budgets -5.0: val.calibration = -5.0: must be in \[0.0, inf\]"),
    (float('nan'), r'--budgets nan: val.calibration = nan: must be a number'),
    ('abc', r"--budgets 'abc': val.calibration \(CABMModel's knob\) takes a number, got 'abc'"),
])
def test_bench_budgets_are_checked_as_the_options_are(tmp_path, budget, pattern):
    from basicsr.models import build_model
    from adaptsr.bench.options_file import check_budgets, parse_budget
    from adaptsr.core.options import OptionError
    model = build_model(model_options(tmp_path, 'CABMModel', dict(CABM_NET, mode='fp'), val={'metrics': {}}))
    check_budgets(model, [100.0, 0.0, 1e9])
    with pytest.raises(OptionError, match=pattern):
        check_budgets(model, [100.0, parse_budget(str(budget)) if isinstance(budget, str) else budget])
    assert model.val_opt['calibration'] == 100.0  # the model's own knob is kept


def test_bench_budgets_from_the_command_line_end_in_one_line(tmp_path):
    opt = require(osp.join(ROOT, 'options/test/etds_m4c32_x3.yml'))
    require(osp.join(BENCHMARK, 'Set5/HR'))
    from adaptsr.cli.bench import main
    with pytest.raises(SystemExit) as err:
        main(['-opt', opt, '--json', str(tmp_path / 'b.json'), '--budgets', '0.5', '--datasets', 'Set5',
              '--max_images', '1', '--no_memory'], root=str(tmp_path))
    assert str(err.value).startswith('adaptsr-bench: --budgets 0.5: model_type ETDSModel has no budget knob')
    with pytest.raises(SystemExit) as err:
        main(['-opt', opt, '--json', str(tmp_path / 'b.json'), '--datasets', 'Set55', '--no_memory'],
             root=str(tmp_path))
    assert str(err.value).startswith('adaptsr-bench: --datasets Set55: not in') and 'Set5, Set14' in str(err.value)
    assert not (tmp_path / 'b.json').exists()


# ------------------------------------------------------------------------------------------------ paired folders
def _pairs(tmp_path, n=2):
    hr, lr = tmp_path / 'HR', tmp_path / 'LR'
    hr.mkdir()
    lr.mkdir()
    for i in range(n):
        img = cv2.imread(require(osp.join(BENCHMARK, 'Set5/HR/baby.png')))[i * 16:i * 16 + 32, :32]
        cv2.imwrite(str(hr / f'im{i}.png'), img)
        cv2.imwrite(str(lr / f'im{i}x4.png'), cv2.resize(img, (8, 8), interpolation=cv2.INTER_AREA))
    return {'name': 'mine', 'type': 'PairedImageDataset', 'dataroot_gt': str(hr), 'dataroot_lq': str(lr),
            'filename_tmpl': '{}x4', 'io_backend': {'type': 'disk'}}


def test_paired_folders_that_do_not_pair_are_named_before_basicsr_asserts(tmp_path):
    from adaptsr.core.data_util import check_dataset_paths
    opt = _pairs(tmp_path)
    check_dataset_paths(opt)
    (tmp_path / 'HR' / 'notes.txt').write_text('x')
    with pytest.raises(ValueError, match=r"dataset 'mine': dataroot_gt = .*HR' holds 1 file\(s\) that are not images "
                                         r'\(notes.txt\)'):
        check_dataset_paths(opt)
    os.remove(tmp_path / 'HR' / 'notes.txt')
    with pytest.raises(ValueError, match=r"filename_tmpl '\{\}_x4'.* 2 HR file\(s\) of .* have no LR .*im0.png "
                                         r'\(expects im0_x4.png\)'):
        check_dataset_paths(dict(opt, filename_tmpl='{}_x4'))
    cv2.imwrite(str(tmp_path / 'HR' / 'extra.png'), np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match=r'1 HR file\(s\) of .*HR have no LR in .*LR: extra.png \(expects extrax4.png'):
        check_dataset_paths(opt)


def test_paired_lmdbs_with_other_keys_are_named(tmp_path):
    from adaptsr.core.data_util import check_dataset_paths
    from adaptsr.core.data_prep import create_lmdb
    opt = _pairs(tmp_path)
    os.remove(tmp_path / 'LR' / 'im1x4.png')
    create_lmdb(str(tmp_path / 'HR'), str(tmp_path / 'hr.lmdb'))
    create_lmdb(str(tmp_path / 'LR'), str(tmp_path / 'lr.lmdb'), suffix_to_strip='x4')
    lmdb_opt = dict(opt, dataroot_gt=str(tmp_path / 'hr.lmdb'), dataroot_lq=str(tmp_path / 'lr.lmdb'),
                    io_backend={'type': 'lmdb'})
    with pytest.raises(ValueError, match=r"dataset 'mine': the LMDBs do not pair: 1 key\(s\) only in dataroot_gt "
                                         r'.*hr.lmdb \(im1\), 0 only in dataroot_lq'):
        check_dataset_paths(lmdb_opt)


def test_an_input_that_a_crop_mode_empties_is_named(tmp_path):
    from basicsr.data import build_dataloader, build_dataset
    from basicsr.models import build_model
    (tmp_path / 'HR').mkdir()
    (tmp_path / 'LR').mkdir()
    cv2.imwrite(str(tmp_path / 'HR' / 'dot.png'), np.full((2, 2, 3), 128, np.uint8))
    cv2.imwrite(str(tmp_path / 'LR' / 'dot.png'), np.full((1, 1, 3), 128, np.uint8))
    model = build_model(model_options(tmp_path, 'SMSRModel', {'type': 'SMSRNet', 'upscale': 2},
                                      val={'metrics': {}, 'crop_mode': 'even'}))
    dopt = {'name': 'tiny', 'type': 'PairedImageDataset', 'dataroot_gt': str(tmp_path / 'HR'), 'phase': 'test',
            'dataroot_lq': str(tmp_path / 'LR'), 'io_backend': {'type': 'disk'}, 'scale': 2}
    loader = build_dataloader(build_dataset(dopt), dopt, num_gpu=0, dist=False, sampler=None)
    with pytest.raises(ValueError, match=r"dataset 'tiny', image .*dot.png: a 1x1 LR input leaves 0x0 pixels after "
                                         r"val.crop_mode 'even'"):
        model.validation(loader, 0, None, False)


def test_test_py_ends_a_bad_input_in_one_line(tmp_path):
    """The same case through ``test.py``: one line naming the image, no traceback, no results folder left behind
    beyond BasicSR's."""
    (tmp_path / 'HR').mkdir()
    (tmp_path / 'LR').mkdir()
    cv2.imwrite(str(tmp_path / 'HR' / 'dot.png'), np.full((2, 2, 3), 128, np.uint8))
    cv2.imwrite(str(tmp_path / 'LR' / 'dot.png'), np.full((1, 1, 3), 128, np.uint8))
    opt = {'name': 'one_line', 'model_type': 'SMSRModel', 'scale': 2, 'num_gpu': 0, 'allow_random_weights': True,
           'datasets': {'test_1': {'name': 'tiny', 'type': 'PairedImageDataset', 'dataroot_gt': str(tmp_path / 'HR'),
                                   'dataroot_lq': str(tmp_path / 'LR'), 'io_backend': {'type': 'disk'}}},
           'network_g': {'type': 'SMSRNet', 'upscale': 2}, 'path': {'pretrain_network_g': None},
           'val': {'save_img': False, 'crop_mode': 'even', 'metrics': {}}}
    path = write_yaml(tmp_path / 'tiny.yml', opt)
    proc = subprocess.run([sys.executable, '-m', 'adaptsr.cli.test', '-opt', path], cwd=tmp_path, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("adaptsr-test: dataset 'tiny', image ")


# ------------------------------------------------------------------------------------------------ export, data
def test_export_refuses_the_int8_model_on_the_fp32_path_before_writing(tmp_path):
    from adaptsr.cli.export import main
    etds = require(osp.join(os.environ.get('ADAPTSR_WEIGHTS', osp.join(ROOT, 'weights/official')),
                            'ETDS/ETDS_M4C32_x4.pth'))
    out = str(tmp_path / 'e.onnx')
    with pytest.raises(SystemExit):
        main(['--input', etds, '--scale', '4', '--output', out, '--int8', out, '--overwrite'])
    assert not osp.exists(out)  # refused before the fp32 model was written


def test_extract_subimages_leaves_nothing_when_an_image_is_corrupt(tmp_path):
    (tmp_path / 'in').mkdir()
    _photo(tmp_path / 'in' / 'a.png', (200, 160))
    (tmp_path / 'in' / 'b.png').write_bytes(b'\x89PNG\r\n\x1a\n')  # a truncated PNG
    proc = subprocess.run([sys.executable, osp.join(ROOT, 'scripts/extract_subimages.py'), '--input',
                           str(tmp_path / 'in'), '--output', str(tmp_path / 'sub_in'), '--crop_size', '64', '--step',
                           '32', '--n_thread', '1'], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and 'b.png: cannot be read as an image' in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ['in']
