"""Nothing lost, nothing silent: non-finite losses, non-finite checkpoints, test-time safety and unreadable inputs.

Grouped by case so that a failure names it; interrupted-training cases live in test_training.py / test_cabm.py.
"""
import os
import os.path as osp

import pytest
import torch

from conftest import BENCHMARK, read_rgb, require

TINY_PCSR = {'type': 'PCSRNet', 'encoder': 'carn', 'encoder_opt': {'num_feat': 16}, 'heavy_hidden': [16, 16],
             'light_hidden': [8], 'cls_hidden': [8], 'upscale': 4}
PHASE = {'name': 'heavy', 'iters': 4, 'forward': 'heavy', 'trainable': ['encoder', 'heavy_sampler'],
         'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'losses': {'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}}}


def _train_model(tmp_path, nonfinite=None):
    from basicsr.models import build_model
    from conftest import model_options
    train = {'phases': [dict(PHASE)]}
    if nonfinite is not None:
        train['nonfinite'] = nonfinite
    return build_model(model_options(tmp_path, 'PCSRModel', dict(TINY_PCSR), is_train=True, train=train))


def _batch():
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X4/birdx4.png')))[..., :16, :16]
    gt = read_rgb(osp.join(BENCHMARK, 'Set5/HR/bird.png'))[..., :64, :64]
    return {'lq': lq, 'gt': gt}


def _poisoned():
    batch = _batch()
    batch['lq'] = batch['lq'].clone()
    batch['lq'][..., 3, 3] = float('nan')
    return batch


# --------------------------------------------------------------------------------------------------- NaN / Inf
def test_nonfinite_loss_stops_before_the_step_naming_iteration_term_and_last_checkpoint(tmp_path):
    from adaptsr.core.phased_model import NonFiniteLossError
    model = _train_model(tmp_path)
    model.update_learning_rate(1)
    model.feed_data(_batch())
    model.optimize_parameters(1)
    model.save(0, 1)  # net_g_1.pth + 1.state: the last good checkpoint
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    model.update_learning_rate(2)
    model.feed_data(_poisoned())
    with pytest.raises(NonFiniteLossError) as err:
        model.optimize_parameters(2)
    msg = str(err.value)
    assert "iteration 2 (phase 'heavy')" in msg and 'l_pixel_opt = nan' in msg
    assert str(tmp_path / 'net_g_1.pth') in msg and str(tmp_path / '1.state') in msg
    params = dict(model.net_g.named_parameters())
    assert all(torch.equal(before[k], p) for k, p in params.items())  # no NaN step was taken


def test_nonfinite_skip_policy_skips_the_step_and_trains_on(tmp_path):
    model = _train_model(tmp_path, nonfinite='skip')
    model.update_learning_rate(1)
    model.feed_data(_poisoned())
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    model.optimize_parameters(1)
    assert all(torch.equal(before[k], v) for k, v in model.net_g.state_dict().items())
    model.update_learning_rate(2)
    model.feed_data(_batch())
    model.optimize_parameters(2)
    after = model.net_g.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())


def _nan_checkpoint(tmp_path):
    from adaptsr.methods.pcsr.pcsr_arch import PCSRNet
    net = PCSRNet(**{k: v for k, v in TINY_PCSR.items() if k != 'type'})
    sd = net.state_dict()
    sd['encoder.entry.weight'][0, 0, 0, 0] = float('nan')
    path = tmp_path / 'diverged.pth'
    torch.save({'params': sd}, path)
    return net, str(path)


def test_a_nonfinite_checkpoint_is_refused_by_load_convert_and_export(tmp_path):
    from adaptsr.core.checkpoint_io import check_finite, save_checkpoint
    from adaptsr.deploy.onnx_export import export_onnx
    from adaptsr.core.checkpoints import load_into
    net, path = _nan_checkpoint(tmp_path)
    with pytest.raises(ValueError, match=r'diverged\.pth \[params\]: 1 tensor\(s\) hold NaN or Inf '
                                         r'\(encoder\.entry\.weight\)'):
        load_into(net, path)
    ckpt = torch.load(path, weights_only=True)
    with pytest.raises(ValueError, match=r'refusing to save .*out.pth: 1 tensor.*\(params.encoder.entry.weight\)'):
        save_checkpoint(ckpt, str(tmp_path / 'out.pth'))
    assert not (tmp_path / 'out.pth').exists()
    net.load_state_dict(ckpt['params'])
    with pytest.raises(ValueError, match='refusing to export PCSRNet'):
        export_onnx(net, str(tmp_path / 'out.onnx'))
    assert not (tmp_path / 'out.onnx').exists()
    check_finite({'a': torch.ones(2), 'b': [torch.arange(3)]}, 'fine')  # finite and integer tensors pass


def test_convert_script_refuses_a_nonfinite_checkpoint(tmp_path):
    from conftest import run_script
    _, path = _nan_checkpoint(tmp_path)
    proc = run_script(['scripts/convert_official.py', '--method', 'pcsr', '--input', path, '--output',
                       str(tmp_path / 'converted.pth')], check=False)
    assert proc.returncode != 0
    assert 'NaN or Inf' in proc.stderr and 'encoder.entry.weight' in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / 'converted.pth').exists()


# ------------------------------------------------------------------------------------------------- test-time safety
def _test_model(tmp_path, model_type, network, val=None, **extra):
    from basicsr.models import build_model
    from conftest import model_options
    opt = model_options(tmp_path, model_type, network, val=val)
    opt.pop('allow_random_weights', None)
    opt.update(extra)
    return build_model(opt)


def test_random_weights_are_refused_at_test_time_unless_allowed(tmp_path):
    from adaptsr.core.options import OptionError
    with pytest.raises(OptionError, match='path.pretrain_network_g is not set: PCSRNet would be tested with random'):
        _test_model(tmp_path, 'PCSRModel', dict(TINY_PCSR))
    _test_model(tmp_path, 'PCSRModel', dict(TINY_PCSR), allow_random_weights=True)
    _test_model(tmp_path, 'AdaptiveSRModel', {'type': 'BicubicSR', 'upscale': 4})  # no weights to load


def test_misspelt_keys_are_named(tmp_path):
    from adaptsr.core.options import OptionError, check_options
    from conftest import model_options
    opt = model_options(tmp_path, 'PCSRModel', dict(TINY_PCSR))
    opt['path']['pretrian_network_g'] = 'x.pth'
    with pytest.raises(OptionError, match=r"path \(PCSRModel\): unknown key\(s\) 'pretrian_network_g'"):
        check_options(opt)
    opt = model_options(tmp_path, 'PCSRModel', dict(TINY_PCSR))
    opt['vall'] = {}
    with pytest.raises(OptionError, match=r"top level \(PCSRModel\): unknown key\(s\) 'vall' \(did you mean 'val'"):
        check_options(opt)


def test_a_missing_required_top_level_key_is_named_by_test_py(tmp_path):
    from conftest import run_script, write_yaml
    opt = {'nmae': 'x', 'model_type': 'AdaptiveSRModel', 'scale': 4, 'datasets': {},
           'network_g': {'type': 'BicubicSR', 'upscale': 4}, 'path': {}}
    path = write_yaml(tmp_path / 'typo.yml', opt)
    proc = run_script(['test.py', '-opt', path], check=False)
    assert proc.returncode != 0
    assert 'typo.yml: required key' in proc.stderr and "'num_gpu'" in proc.stderr or "'name'" in proc.stderr


@pytest.mark.parametrize('model_type,network,key,value', [
    ('PCSRModel', TINY_PCSR, 'k', float('nan')),
    ('APEModel', {'type': 'APEECBSR', 'upscale': 4, 'num_block': 4, 'num_feat': 16}, 'exit_threshold', -1),
    ('AdaptiveSRModel', {'type': 'BicubicSR', 'upscale': 4}, 'tile_size', 0),
    ('CABMModel', {'type': 'CABMEDSR', 'upscale': 4, 'num_block': 2, 'mode': 'fp'}, 'calibration', float('nan')),
], ids=['pcsr-k-nan', 'ape-threshold-negative', 'tile-size-zero', 'cabm-calibration-nan'])
def test_knobs_outside_their_range_are_refused(tmp_path, model_type, network, key, value):
    from adaptsr.core.options import OptionError
    with pytest.raises(OptionError, match=rf'val\.{key} = '):
        _test_model(tmp_path, model_type, dict(network), val={'metrics': {}, key: value}, allow_random_weights=True)


def test_a_scale_the_network_contradicts_is_refused(tmp_path):
    from adaptsr.core.options import OptionError
    from basicsr.models import build_model
    from conftest import model_options
    opt = model_options(tmp_path, 'SMSRModel', {'type': 'SMSRNet', 'upscale': 2}, scale=3)
    with pytest.raises(OptionError, match=r'scale: 3 but network_g \(SMSRNet\) upscales x2'):
        build_model(opt)


def _pair_folder(tmp_path, name, lr_scale, size=64, scale=4, tiny=False):
    """HR crops of Set5 and their bicubic LR (x``lr_scale``) in the EDSR layout."""
    import cv2
    hr_dir, lr_dir = tmp_path / name / 'HR', tmp_path / name / 'LR'
    hr_dir.mkdir(parents=True)
    lr_dir.mkdir()
    for img_name in ('baby', 'bird'):
        hr = cv2.imread(require(osp.join(BENCHMARK, f'Set5/HR/{img_name}.png')))[:size, :size]
        cv2.imwrite(str(hr_dir / f'{img_name}.png'), hr)
        lr = cv2.resize(hr, (size // lr_scale, size // lr_scale), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(lr_dir / f'{img_name}.png'), lr)
    if tiny:
        hr = cv2.imread(osp.join(BENCHMARK, 'Set5/HR/head.png'))[:8, :12]  # SR 8x12: nothing left after crop_border 4
        cv2.imwrite(str(hr_dir / 'tiny.png'), hr)
        cv2.imwrite(str(lr_dir / 'tiny.png'), cv2.resize(hr, (3, 2), interpolation=cv2.INTER_CUBIC))
    return {'name': name, 'type': 'PairedImageDataset', 'dataroot_gt': str(hr_dir), 'dataroot_lq': str(lr_dir),
            'io_backend': {'type': 'disk'}, 'phase': 'test', 'scale': scale}


def _validate(model, dataset_opt):
    from basicsr.data import build_dataloader, build_dataset
    loader = build_dataloader(build_dataset(dataset_opt), dataset_opt, num_gpu=0, dist=False, sampler=None)
    model.validation(loader, 0, None, False)
    return model.metric_results


PSNR = {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True}}


def test_wrong_scale_pairs_are_refused_naming_both_files(tmp_path):
    model = _test_model(tmp_path, 'AdaptiveSRModel', {'type': 'BicubicSR', 'upscale': 4}, val={'metrics': PSNR})
    assert _validate(model, _pair_folder(tmp_path, 'x4', 4))['psnr'] > 20
    with pytest.raises(ValueError, match=r'LR .*LR/baby.png \(32x32\) and HR .*HR/baby.png \(64x64\) are not a x4 '
                                         r'pair \(HR/LR = 2 x 2\)'):
        _validate(model, _pair_folder(tmp_path, 'x2', 2))


@pytest.fixture
def log():
    """The text BasicSR's root logger writes during the test (it does not propagate to caplog)."""
    import io
    import logging
    from basicsr.utils import get_root_logger
    logger = get_root_logger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)  # as train.py / test.py set it (with a log file)

    class Text:
        @property
        def text(self):
            return stream.getvalue()

    yield Text()
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_tiny_images_are_reported_and_kept_out_of_the_means(tmp_path, log):
    model = _test_model(tmp_path, 'AdaptiveSRModel', {'type': 'BicubicSR', 'upscale': 4}, val={'metrics': PSNR})
    normal = _validate(model, _pair_folder(tmp_path, 'normal', 4))['psnr']
    mixed = _validate(model, _pair_folder(tmp_path, 'mixed', 4, tiny=True))['psnr']
    assert mixed == pytest.approx(normal) and 'tiny (8x12 SR): psnr = ' in log.text
    only = _pair_folder(tmp_path, 'only', 4, tiny=True)
    for name in ('baby', 'bird'):
        os.remove(osp.join(only['dataroot_gt'], f'{name}.png'))
        os.remove(osp.join(only['dataroot_lq'], f'{name}.png'))
    with pytest.raises(ValueError, match='only: no image gave a finite psnr'):
        _validate(model, only)


def test_a_crop_mode_crop_is_reported(tmp_path, log):
    model = _test_model(tmp_path, 'AdaptiveSRModel', {'type': 'BicubicSR', 'upscale': 4},
                        val={'metrics': PSNR, 'crop_mode': 'pcsr'})
    _validate(model, _pair_folder(tmp_path, 'crop', 4, size=160))
    assert "crop: val.crop_mode 'pcsr' cropped 2 of 2 LR image(s)" in log.text and '40x40 -> 32x32' in log.text


# ------------------------------------------------------------------------------------------------- unreadable input
@pytest.mark.parametrize('damage', ['empty', 'truncated', 'not-an-image'])
def test_an_unreadable_image_is_named(tmp_path, damage):
    from basicsr.data import build_dataset
    from adaptsr.core.data_util import DataReadError, NamedErrorDataset
    opt = _pair_folder(tmp_path, 'bad', 4)
    bad = osp.join(opt['dataroot_lq'], 'bird.png')
    data = open(bad, 'rb').read()
    with open(bad, 'wb') as f:
        f.write({'empty': b'', 'truncated': data[:len(data) // 3], 'not-an-image': b'hello, not a PNG'}[damage])
    dataset = NamedErrorDataset(build_dataset(opt))
    assert dataset[0]['lq'].shape == (3, 16, 16)  # baby is fine
    with pytest.raises(DataReadError, match=rf"dataset 'bad' \(disk\): sample 1 \(.*lq_path {bad}"):
        dataset[1]


def _lmdb(tmp_path):
    from adaptsr.core.data_prep import create_lmdb
    opt = _pair_folder(tmp_path, 'lmdbsrc', 4)
    return create_lmdb(opt['dataroot_gt'], str(tmp_path / 'hr.lmdb'))


def test_a_damaged_lmdb_is_detected_before_training(tmp_path):
    from adaptsr.core.data_util import check_dataset_paths, check_lmdb
    path = _lmdb(tmp_path)
    check_lmdb(path)
    with open(osp.join(path, 'meta_info.txt'), 'a') as f:
        f.write('ghost.png (64,64,3) 1\n')
    with pytest.raises(ValueError, match=r'hr.lmdb: 1 key\(s\) listed in meta_info.txt are not in the database '
                                         r'\(ghost\)'):
        check_dataset_paths({'name': 'train', 'dataroot_gt': path, 'io_backend': {'type': 'lmdb'}})
    path2 = _lmdb(tmp_path / 'b')
    data = osp.join(path2, 'data.mdb')
    size = osp.getsize(data)
    with open(data, 'r+b') as f:
        f.truncate(size // 2)
    with pytest.raises(ValueError, match='data.mdb has .* bytes but its pages need .*: the file is truncated'):
        check_lmdb(path2)


def test_create_lmdb_checks_every_image_first_and_leaves_no_partial_output(tmp_path):
    from adaptsr.core.data_prep import create_lmdb
    opt = _pair_folder(tmp_path, 'src', 4)
    bad = osp.join(opt['dataroot_gt'], 'zz_broken.png')
    open(bad, 'wb').close()
    with pytest.raises(ValueError, match=rf'{bad}: not a readable image \(empty file\)'):
        create_lmdb(opt['dataroot_gt'], str(tmp_path / 'out.lmdb'))
    assert sorted(os.listdir(tmp_path)) == ['src']  # neither out.lmdb nor a partial one
    os.remove(bad)
    create_lmdb(opt['dataroot_gt'], str(tmp_path / 'out.lmdb'))
    assert sorted(os.listdir(tmp_path)) == ['out.lmdb', 'src']
