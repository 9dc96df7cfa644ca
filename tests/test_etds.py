"""ETDS: released weights, reference metrics, exact equivalent transformation, training phases, export, bad input."""
import os.path as osp
import re

import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY

from adaptsr.core.checkpoint_io import load_checkpoint
from adaptsr.methods.etds.formats import build_from_state_dict, convert_etds, et_convert, infer_arch
from adaptsr.core.reparam import ConversionError, probe_inputs
from conftest import BENCHMARK, ROOT, WEIGHTS, read_rgb, require, run_script

CONFIGS = [(5, 16), (4, 32), (6, 32), (7, 48)]
SCALES = (2, 3, 4)
PARAMS = {(5, 16): (13944, 16920, 21360), (4, 32): (41512, 46792, 54112), (6, 32): (60008, 65288, 72608),
          (7, 48): (152184, 159768, 169968)}
GMACS_360x640 = {(5, 16): (3.19, 3.86, 4.88), (4, 32): (9.52, 10.73, 12.41), (6, 32): (13.77, 14.98, 16.66),
                 (7, 48): (34.97, 36.71, 39.05)}
# reference values (the released weights, measured): Y PSNR on ../shared/benchmark with the provided LR, and Set5
# with the mod-12 regenerated LR
REF_SET5 = {(5, 16, 2): 37.1843, (4, 32, 2): 37.3877, (6, 32, 2): 37.5560, (7, 48, 2): 37.6593,
            (5, 16, 3): 33.1407, (4, 32, 3): 33.4868, (6, 32, 3): 33.6483, (7, 48, 3): 33.8737,
            (5, 16, 4): 30.8873, (4, 32, 4): 31.2093, (6, 32, 4): 31.4228, (7, 48, 4): 31.7058}
REF_SET5_MOD12 = {(5, 16, 2): 37.1810, (4, 32, 2): 37.3765, (6, 32, 2): 37.5409, (7, 48, 2): 37.6349,
                  (5, 16, 3): 33.1382, (4, 32, 3): 33.4866, (6, 32, 3): 33.6457, (7, 48, 3): 33.8775,
                  (5, 16, 4): 30.8712, (4, 32, 4): 31.1895, (6, 32, 4): 31.4053, (7, 48, 4): 31.6888}
# ETDS-M x4 ablations (training-form files), Set5 with the mod-12 protocol (the authors' test logs,
# github.com/ECNUSR/ETDS)
ABLATIONS = {'normal_loss': ('ETDSNet', 31.3525), 'only_ET': ('ETDSOnlyET', 31.3617),
             'only_residual': ('ETDSAblationResidual', 31.3646),
             'advance_residual': ('ETDSAblationAdvancedResidual', 31.3764)}
ECBSR_SET5 = {(4, 16, 2): 37.1728, (4, 16, 3): 33.0657, (4, 16, 4): 30.8875, (4, 32, 2): 37.4037,
              (4, 32, 3): 33.5614, (4, 32, 4): 31.2543, (6, 40, 2): 37.6319, (6, 40, 3): 33.6718,
              (6, 40, 4): 31.4215}


def etds_file(m, c, s):
    return require(osp.join(WEIGHTS, f'ETDS/ETDS_M{m}C{c}_x{s}.pth'))


def released(m, c, s):
    net = ARCH_REGISTRY.get('ETDSPlain')(upscale=s, num_block=m, num_feat=c)
    net.load_state_dict(load_checkpoint(etds_file(m, c, s)), strict=True)
    return net.eval()


def evaluate(net, name, scale, regenerate=False, run=None):
    """Mean Y PSNR / SSIM (crop_border = scale) of ``net`` on benchmark set ``name`` (BasicSR metrics)."""
    from adaptsr.methods.etds.etds_dataset import ETDSPairedDataset
    from adaptsr.bench.measure import quality
    opt = {'name': name, 'phase': 'test', 'scale': scale, 'io_backend': {'type': 'disk'},
           'dataroot_gt': require(osp.join(BENCHMARK, name, 'HR'))}
    if regenerate:
        opt.update(regenerate_lq=True, gt_mod=12)
    else:
        opt.update(dataroot_lq=require(osp.join(BENCHMARK, name, f'LR_bicubic/X{scale}')),
                   filename_tmpl=f'{{}}x{scale}')
    psnr, ssim = [], []
    for item in ETDSPairedDataset(opt):
        with torch.no_grad():
            out = (run or net)(item['lq'][None])
        out = out[0] if isinstance(out, tuple) else out
        q = quality(out, item['gt'][None], scale)
        psnr.append(q['psnr_y'])
        ssim.append(q['ssim_y'])
    return sum(psnr) / len(psnr), sum(ssim) / len(ssim)


# ------------------------------------------------------------------------------------------- released weights
@pytest.mark.parametrize('s', SCALES, ids=lambda s: f'x{s}')
@pytest.mark.parametrize('m,c', CONFIGS, ids=lambda v: str(v))
def test_released_plain_models_load_strictly(m, c, s):
    sd = load_checkpoint(etds_file(m, c, s))
    net = ARCH_REGISTRY.get('ETDSPlain')(upscale=s, num_block=m, num_feat=c)
    net.load_state_dict(sd, strict=True)
    assert sum(v.numel() for v in sd.values()) == PARAMS[(m, c)][SCALES.index(s)]
    k = sd['conv_clip.weight'].shape[0]
    assert torch.allclose(sd['conv_clip.weight'].view(k, k), -torch.eye(k), atol=1e-6)  # the embedded clamp
    assert torch.allclose(sd['conv_clip.bias'], torch.ones(k), atol=1e-6)
    assert infer_arch(sd, s) == ('ETDSPlain', {'num_block': m, 'num_feat': c, 'upscale': s})


def test_mac_counter_matches_paper_table():
    from adaptsr.methods.etds.etds_arch import etds_macs_per_pixel
    from adaptsr.core.cost import count_flops
    assert etds_macs_per_pixel(6, 32, 4) == 72288
    for (m, c), gmacs in GMACS_360x640.items():
        for s, g in zip(SCALES, gmacs):
            assert round(etds_macs_per_pixel(m, c, s) * 360 * 640 / 1e9, 2) == g
    net = ARCH_REGISTRY.get('ETDSPlain')(upscale=3, num_block=5, num_feat=16)  # hooks agree with the formula
    assert count_flops(net, torch.zeros(1, 3, 20, 30)) == 2 * etds_macs_per_pixel(5, 16, 3) * 600


@pytest.mark.parametrize('s', SCALES, ids=lambda s: f'x{s}')
@pytest.mark.parametrize('m,c', CONFIGS, ids=lambda v: str(v))
def test_set5_reference_values(m, c, s):
    """Y PSNR on the provided LR equals the reference table, and the mod-12 protocol reproduces the authors' logs."""
    net = released(m, c, s)
    psnr, _ = evaluate(net, 'Set5', s)
    assert abs(psnr - REF_SET5[(m, c, s)]) <= 0.001, (m, c, s, psnr)
    psnr12, _ = evaluate(net, 'Set5', s, regenerate=True)
    assert abs(psnr12 - REF_SET5_MOD12[(m, c, s)]) <= 0.001, (m, c, s, psnr12)


@pytest.mark.parametrize('s', SCALES, ids=lambda s: f'x{s}')
@pytest.mark.parametrize('m,c', [(4, 16), (4, 32), (6, 40)], ids=lambda v: str(v))
def test_released_ecbsr_loads_strictly_and_reproduces_set5(m, c, s):
    path = require(osp.join(WEIGHTS, f'ECBSR/ECBSR_M{m}C{c}_x{s}.pth'))
    net = ARCH_REGISTRY.get('ECBSRPlain')(upscale=s, num_block=m, num_feat=c)
    net.load_state_dict(load_checkpoint(path), strict=True)
    psnr, _ = evaluate(net.eval(), 'Set5', s)
    assert abs(psnr - ECBSR_SET5[(m, c, s)]) <= 0.001, (m, c, s, psnr)


@pytest.mark.parametrize('name', sorted(ABLATIONS))
def test_ablation_forms_load_and_reproduce_logged_set5(name):
    arch, logged = ABLATIONS[name]
    sd = load_checkpoint(require(osp.join(WEIGHTS, f'ETDS/ablations/ETDS_M6C32_x4_{name}.pth')))
    net = ARCH_REGISTRY.get(arch)(upscale=4, num_block=6, num_feat=32)
    net.load_state_dict(sd, strict=True)
    assert infer_arch(sd, 4)[0] == arch
    psnr, _ = evaluate(net.eval(), 'Set5', 4, regenerate=True)
    assert abs(psnr - logged) <= 0.001, (name, psnr)


# ------------------------------------------------------------------------------------------- conversion
def test_converter_on_the_released_training_form_file():
    sd = load_checkpoint(require(osp.join(WEIGHTS, 'ETDS/ablations/ETDS_M6C32_x4_normal_loss.pth')))
    assert len(sd) == 44 and sum(v.numel() for v in sd.values()) == 65780
    plain_sd, info = convert_etds(sd, scale=4)
    assert info['max_diff_255'] < 0.01 and info['source_arch'] == 'ETDSNet'
    plain = ARCH_REGISTRY.get('ETDSPlain')(upscale=4, num_block=6, num_feat=32)
    plain.load_state_dict(plain_sd, strict=True)
    train = build_from_state_dict(sd, 4).eval()
    img = read_rgb(require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X4/birdx4.png')))  # a real image too
    with torch.no_grad():
        assert ((train(img)[0].clamp(0, 1) - plain(img)).abs().max() * 255) < 0.01


@pytest.mark.parametrize('s', SCALES)
def test_conversion_is_exact_for_random_nets_of_every_size(s):
    torch.manual_seed(s)
    for m, c in CONFIGS:
        for arch in ('ETDSNet', 'ETDSAblationResidual', 'ETDSOnlyET'):
            net = ARCH_REGISTRY.get(arch)(upscale=s, num_block=m, num_feat=c)
            with torch.no_grad():  # move off the identity init, so every block of the ET matters
                for p in net.parameters():
                    p.add_(0.05 * torch.randn_like(p))
            plain, info = et_convert(net)
            assert info['max_diff_255'] < 0.01, (arch, m, c, s, info)
            assert (info['num_block'], info['num_feat']) == (m, c)
            assert plain.conv_last.out_channels == (28 if s == 3 else 3 * s * s)


@pytest.mark.parametrize('s', SCALES)
def test_ecbsr_and_abpn_conversions_are_exact(s):
    from basicsr.archs.ecbsr_arch import ECBSR
    torch.manual_seed(10 + s)
    ecb = ECBSR(3, 3, 4, 16, True, 'prelu', s)  # training form: edge-oriented conv blocks
    with torch.no_grad():
        for name, p in ecb.named_parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    _, info = et_convert(ecb)  # multi-branch forward -> ECBSRPlain -> ETDSPlain (C + 4 channels, PReLU)
    assert info['max_diff_255'] < 0.01 and info['num_feat'] == 20 and info['act_type'] == 'prelu'
    released_ecbsr = build_from_state_dict(load_checkpoint(require(osp.join(WEIGHTS, f'ECBSR/ECBSR_M4C32_x{s}.pth'))),
                                           s)
    _, info = et_convert(released_ecbsr)
    assert info['max_diff_255'] < 0.01 and info['num_feat'] == 36
    abpn = ARCH_REGISTRY.get('ABPNNet')(upscale=s)
    _, info = et_convert(abpn)
    assert info['max_diff_255'] < 0.01 and info['num_feat'] == 32 and info['tail_feat'] == 3 * s * s + 3 + (s != 3)


def test_init_is_nearest_upsampling_and_odd_sizes_work():
    net = ARCH_REGISTRY.get('ETDSNet')(upscale=3, num_block=5, num_feat=16)
    img = read_rgb(require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X3/babyx3.png')))[..., :37, :23]  # odd size
    with torch.no_grad():
        out, lf = net(img)
    assert torch.equal(lf, torch.nn.functional.interpolate(img, scale_factor=3, mode='nearest'))
    assert out.shape == (1, 3, 111, 69)
    plain, info = et_convert(net, inputs=[img])
    assert plain(img).shape == (1, 3, 111, 69) and info['max_diff_255'] < 0.01


def test_non_convertible_and_wrong_inputs_are_refused():
    adv = load_checkpoint(require(osp.join(WEIGHTS, 'ETDS/ablations/ETDS_M6C32_x4_advance_residual.pth')))
    with pytest.raises(ConversionError, match='not convertible'):
        convert_etds(adv, scale=4)
    with pytest.raises(ConversionError, match='already a plain'):
        et_convert(released(6, 32, 4))
    with pytest.raises(ConversionError, match=r'x2 needs 12; is this a checkpoint of another scale'):
        convert_etds(load_checkpoint(require(osp.join(WEIGHTS, 'ETDS/ablations/ETDS_M6C32_x4_normal_loss.pth'))), 2)
    with pytest.raises(ConversionError, match='not an ETDS/ECBSR/ABPN state_dict'):
        infer_arch({'foo.weight': torch.zeros(1)}, 4)
    broken = {k: v for k, v in load_checkpoint(etds_file(5, 16, 4)).items() if k != 'backbone_convs.2.bias'}
    with pytest.raises(ConversionError, match=r'(?s)does not load strictly .*backbone_convs\.2\.bias'):
        build_from_state_dict(broken, 4, 'broken.pth')
    gray = torch.rand(1, 1, 16, 16)
    for net in (released(5, 16, 4), ARCH_REGISTRY.get('ETDSNet')(upscale=4)):
        with pytest.raises(ValueError, match=r'expects RGB input \(N, 3, H, W\), got shape \(1, 1, 16, 16\)'):
            net(gray)


def test_model_refuses_checkpoints_of_another_config_or_scale(tmp_path):
    from basicsr.models import build_model
    opt = _test_options(tmp_path, {'type': 'ETDSPlain', 'upscale': 4, 'num_block': 6, 'num_feat': 32},
                        etds_file(5, 16, 4))
    with pytest.raises(RuntimeError, match=r"into ETDSPlain \(strict=True\); the file holds ETDSPlain\("
                                           r"{'num_block': 5, 'num_feat': 16, 'upscale': 4}\):\nshape mismatches"):
        build_model(opt)
    opt = _test_options(tmp_path, {'type': 'ETDSPlain', 'upscale': 4, 'num_block': 6, 'num_feat': 32},
                        etds_file(6, 32, 2))
    with pytest.raises(ConversionError, match='12 channels, but x4 needs 48; is this a checkpoint of another scale'):
        build_model(opt)
    # a training-form file into the plain net is converted on load; of another size it is refused
    nl = require(osp.join(WEIGHTS, 'ETDS/ablations/ETDS_M6C32_x4_normal_loss.pth'))
    model = build_model(_test_options(tmp_path, {'type': 'ETDSPlain', 'upscale': 4, 'num_block': 6,
                                                 'num_feat': 32}, nl))
    ref = build_from_state_dict(load_checkpoint(nl), 4).eval()
    x = probe_inputs()[1]
    with torch.no_grad():
        assert (model.net_g(x) - ref(x)[0].clamp(0, 1)).abs().max() * 255 < 0.01
    with pytest.raises(RuntimeError, match=r'converts to ETDSPlain\(num_block=6, num_feat=32'):
        build_model(_test_options(tmp_path, {'type': 'ETDSPlain', 'upscale': 4, 'num_block': 4, 'num_feat': 32},
                                  nl))


def _test_options(tmp_path, network, pretrain):
    from conftest import model_options
    return model_options(tmp_path, 'ETDSModel', network, pretrain=pretrain)


# ------------------------------------------------------------------------------------------- scripts
def test_convert_script_writes_verified_checkpoints_and_never_overwrites(tmp_path):
    nl = require(osp.join(WEIGHTS, 'ETDS/ablations/ETDS_M6C32_x4_normal_loss.pth'))
    out = tmp_path / 'plain.pth'
    proc = run_script([osp.join(ROOT, 'scripts/convert_official.py'), '--method', 'etds', '--scale', '4', '--input',
                       nl, '--output', str(out)])
    diff = float(re.search(r'max \|difference\| x 255 = ([0-9.e+-]+)', proc.stdout).group(1))
    assert 0 < diff < 0.01
    ckpt = torch.load(out, weights_only=True)
    assert ckpt['meta']['arch'] == 'ETDSPlain' and ckpt['meta']['scale'] == 4
    stamp = out.stat().st_mtime_ns
    with pytest.raises(AssertionError, match='already exists; pass --overwrite'):
        run_script([osp.join(ROOT, 'scripts/convert_official.py'), '--method', 'etds', '--scale', '4', '--input',
                    nl, '--output', str(out)])
    assert out.stat().st_mtime_ns == stamp
    ecb = tmp_path / 'ecbsr_et.pth'
    run_script([osp.join(ROOT, 'scripts/convert_official.py'), '--method', 'ecbsr', '--et', '--scale', '3',
                '--input', require(osp.join(WEIGHTS, 'ECBSR/ECBSR_M4C16_x3.pth')), '--output', str(ecb)])
    ckpt = torch.load(ecb, weights_only=True)
    assert ckpt['meta']['arch'] == 'ETDSPlain' and ckpt['params']['conv_last.weight'].shape[0] == 28
    with pytest.raises(AssertionError, match='adaptsr-convert: ETDSAblationAdvancedResidual is not convertible'):
        run_script([osp.join(ROOT, 'scripts/convert_official.py'), '--method', 'etds', '--scale', '4', '--input',
                    require(osp.join(WEIGHTS, 'ETDS/ablations/ETDS_M6C32_x4_advance_residual.pth')),
                    '--output', str(tmp_path / 'adv.pth')])
    assert not (tmp_path / 'adv.pth').exists()


def test_onnx_export_matches_pytorch(tmp_path):
    pytest.importorskip('onnxruntime')
    from adaptsr.deploy.onnx_export import export_onnx
    for m, c, s in [(6, 32, 4), (5, 16, 3)]:
        res = export_onnx(released(m, c, s), str(tmp_path / f'm{m}c{c}x{s}.onnx'))
        assert res['max_abs_diff'] < 1e-5 and res['tol'] == 1e-5, res
    with pytest.raises(FileExistsError):
        export_onnx(released(5, 16, 3), str(tmp_path / 'm5c16x3.onnx'))
    proc = run_script([osp.join(ROOT, 'scripts/export_onnx.py'), '--input',
                       require(osp.join(WEIGHTS, 'ETDS/ablations/ETDS_M6C32_x4_only_ET.pth')), '--scale', '4',
                       '--output', str(tmp_path / 'only_et.onnx')])
    assert 'converted ETDSOnlyET -> ETDSPlain' in proc.stdout and (tmp_path / 'only_et.onnx').exists()


# ------------------------------------------------------------------------------------------- data
def test_dataset_channel_shuffle_patch_size_and_mod12(demo_data):
    import random
    from adaptsr.methods.etds.etds_dataset import ETDSPairedDataset
    opt = {'name': 'demo', 'phase': 'train', 'scale': 4, 'io_backend': {'type': 'lmdb'}, 'lq_size': 16,
           'dataroot_gt': osp.join(demo_data, 'train_HR_sub128.lmdb'), 'use_hflip': False, 'use_rot': False,
           'dataroot_lq': osp.join(demo_data, 'train_LR_bicubic_X4_sub.lmdb'), 'use_channels_shuffle': True}
    ds = ETDSPairedDataset(opt)  # one dataset: an LMDB opens once per process
    perms = set()
    for seed in range(12):
        ds.opt['use_channels_shuffle'] = True
        random.seed(seed)
        a = ds[3]
        ds.opt['use_channels_shuffle'] = False
        random.seed(seed)
        b = ds[3]
        assert a['lq'].shape == (3, 16, 16) and a['gt'].shape == (3, 64, 64)
        perm = [next(j for j in range(3) if torch.equal(a['gt'][i], b['gt'][j])) for i in range(3)]
        assert all(torch.equal(a['lq'][i], b['lq'][perm[i]]) for i in range(3))  # the same permutation for LR
        perms.add(tuple(perm))
    assert len(perms) > 1
    with pytest.raises(ValueError, match='lq_size 16 x scale 4 = 64 disagrees with gt_size 96'):
        ETDSPairedDataset(dict(opt, gt_size=96))
    test = ETDSPairedDataset({'name': 'Set5', 'phase': 'test', 'scale': 3, 'regenerate_lq': True, 'gt_mod': 12,
                              'dataroot_gt': require(osp.join(BENCHMARK, 'Set5/HR')), 'io_backend': {'type': 'disk'}})
    item = next(it for it in test if 'woman' in it['gt_path'])  # HR 344 x 228 (H x W)
    assert item['gt'].shape == (3, 336, 228) and item['lq'].shape == (3, 112, 76)
    assert torch.equal(item['lq'], (item['lq'] * 255).round() / 255)  # 8-bit LR, as the authors' files


# reference values (the released weights, measured) on ../shared/benchmark (Y PSNR / SSIM): Set14, B100, and Urban100
# at x4
REF_FULL = {
    (5, 16, 2): {'Set14': (32.7751, 0.9102), 'B100': (31.6088, 0.8922)},
    (4, 32, 2): {'Set14': (32.9758, 0.9122), 'B100': (31.7652, 0.8943)},
    (6, 32, 2): {'Set14': (33.1026, 0.9132), 'B100': (31.8495, 0.8954)},
    (7, 48, 2): {'Set14': (33.2527, 0.9144), 'B100': (31.9681, 0.8969)},
    (5, 16, 3): {'Set14': (29.5346, 0.8271), 'B100': (28.5461, 0.7907)},
    (4, 32, 3): {'Set14': (29.7643, 0.8310), 'B100': (28.7078, 0.7948)},
    (6, 32, 3): {'Set14': (29.8643, 0.8329), 'B100': (28.7843, 0.7968)},
    (7, 48, 3): {'Set14': (30.0130, 0.8355), 'B100': (28.8978, 0.7996)},
    (5, 16, 4): {'Set14': (27.7648, 0.7615), 'B100': (27.0486, 0.7180), 'Urban100': (24.7141, 0.7351)},
    (4, 32, 4): {'Set14': (28.0268, 0.7675), 'B100': (27.1883, 0.7226), 'Urban100': (25.0389, 0.7480)},
    (6, 32, 4): {'Set14': (28.1441, 0.7703), 'B100': (27.2689, 0.7251), 'Urban100': (25.2104, 0.7545)},
    (7, 48, 4): {'Set14': (28.3289, 0.7748), 'B100': (27.3748, 0.7287), 'Urban100': (25.4782, 0.7644)},
}
ECBSR_FULL = {(4, 16, 2): (32.8001, 31.6003), (4, 16, 3): (29.5405, 28.5703), (4, 16, 4): (27.8104, 27.0602),
              (4, 32, 2): (33.0443, 31.7868), (4, 32, 3): (29.7927, 28.7271), (4, 32, 4): (28.0573, 27.2171),
              (6, 40, 2): (33.1938, 31.9299), (6, 40, 3): (29.9245, 28.8505), (6, 40, 4): (28.2110, 27.3275)}


@pytest.mark.slow
@pytest.mark.parametrize('key', sorted(REF_FULL))
def test_full_reference_table(key):
    m, c, s = key
    net = released(m, c, s)
    for name, (psnr_ref, ssim_ref) in REF_FULL[key].items():
        psnr, ssim = evaluate(net, name, s)
        assert abs(psnr - psnr_ref) <= 0.001 and abs(ssim - ssim_ref) <= 0.0001, (key, name, psnr, ssim)


@pytest.mark.slow
@pytest.mark.parametrize('key', sorted(ECBSR_FULL))
def test_full_ecbsr_reference_table(key):
    m, c, s = key
    net = ARCH_REGISTRY.get('ECBSRPlain')(upscale=s, num_block=m, num_feat=c)
    net.load_state_dict(load_checkpoint(require(osp.join(WEIGHTS, f'ECBSR/ECBSR_M{m}C{c}_x{s}.pth'))), strict=True)
    for name, ref in zip(('Set14', 'B100'), ECBSR_FULL[key]):
        psnr, _ = evaluate(net.eval(), name, s)
        assert abs(psnr - ref) <= 0.001, (key, name, psnr)


def test_training_pairs_whose_hr_is_not_a_multiple_of_the_scale(tmp_path):
    """HR 128 with its x3 LR 42 (made from the top-left 126): trained on the matching 126 crop, as the demo data."""
    import cv2
    from adaptsr.methods.etds.etds_dataset import ETDSPairedDataset
    from adaptsr.core.data_prep import bicubic_downscale
    hr = cv2.imread(require(osp.join(BENCHMARK, 'Set14/HR/baboon.png')))[:128, :128]
    hr_used, lr = bicubic_downscale(hr, 3)
    assert hr_used.shape[:2] == (126, 126) and lr.shape[:2] == (42, 42)
    for sub, img in (('hr', hr), ('lr', lr)):
        (tmp_path / sub).mkdir()
        cv2.imwrite(str(tmp_path / sub / 'baboon.png'), img)
    opt = {'name': 'x3', 'phase': 'train', 'scale': 3, 'io_backend': {'type': 'disk'}, 'lq_size': 42,
           'dataroot_gt': str(tmp_path / 'hr'), 'dataroot_lq': str(tmp_path / 'lr'), 'filename_tmpl': '{}',
           'use_hflip': False, 'use_rot': False, 'use_channels_shuffle': False}
    item = ETDSPairedDataset(opt)[0]
    expected = torch.from_numpy(hr_used[:, :, ::-1].astype('float32') / 255).permute(2, 0, 1)
    assert item['gt'].shape == (3, 126, 126) and torch.equal(item['gt'], expected)
    cv2.imwrite(str(tmp_path / 'hr' / 'baboon.png'), hr[:100])  # a real mismatch is still an error naming the file
    with pytest.raises(ValueError, match=r"'x3': pair .*hr/baboon.png / .*lr/baboon.png: Scale mismatches"):
        ETDSPairedDataset(opt)[0]
    with pytest.raises(ValueError, match="'mean' is not supported; ETDS needs RGB in \\[0, 1\\]"):
        ETDSPairedDataset(dict(opt, mean=[0.5, 0.5, 0.5]))


# ------------------------------------------------------------------------------------------- ABPN as released
# Set5 / Set14 Y PSNR of the released ABPN_M4C28 files in the authors' test logs (github.com/ECNUSR/ETDS), mod-12
ABPN_LOGS = {2: (37.3635, 32.9569), 3: (33.5293, 29.7812), 4: (31.3223, 28.0995)}


@pytest.mark.parametrize('s', SCALES, ids=lambda s: f'x{s}')
def test_released_abpn_loads_strictly_and_reproduces_the_authors_logs(s):
    sd = load_checkpoint(require(osp.join(WEIGHTS, f'ABPN/ABPN_M4C28_x{s}.pth')))
    assert infer_arch(sd, s) == ('ABPNNet', {'num_block': 4, 'num_feat': 28, 'upscale': s})
    net = ARCH_REGISTRY.get('ABPNNet')(upscale=s, num_block=4, num_feat=28)
    net.load_state_dict(sd, strict=True)
    for name, logged in zip(('Set5', 'Set14'), ABPN_LOGS[s]):
        psnr, _ = evaluate(net.eval(), name, s, regenerate=True)
        assert abs(psnr - logged) <= 0.01, (s, name, psnr, logged)


@pytest.mark.parametrize('s', SCALES, ids=lambda s: f'x{s}')
def test_abpn_et_is_exact_and_equals_the_official_et_file(s):
    """Our ET of the released ABPN has the official ``ABPN_ET_M4C28`` file's sizes and computes what it computes
    (the official file loads into ETDSPlain under its own names)."""
    from adaptsr.methods.etds.formats import abpn_et_to_plain_sd
    net = build_from_state_dict(load_checkpoint(require(osp.join(WEIGHTS, f'ABPN/ABPN_M4C28_x{s}.pth'))), s).eval()
    plain, info = et_convert(net)
    assert info['max_diff_255'] < 0.01 and info['num_block'] == 5 and info['num_feat'] == 32
    official_sd = load_checkpoint(require(osp.join(WEIGHTS, f'ABPN/ABPN_ET_M4C28_x{s}.pth')))
    official = build_from_state_dict(official_sd, s).eval()  # recognised as ETDSPlain, loaded strictly
    assert type(official).__name__ == 'ETDSPlain'
    assert {k: v.shape for k, v in official.state_dict().items()} == {k: v.shape for k, v in plain.state_dict().items()}
    img = read_rgb(require(osp.join(BENCHMARK, f'Set5/LR_bicubic/X{s}/birdx{s}.png')))
    with torch.no_grad():
        ours, theirs, source = plain(img), official(img), net(img)
    assert (ours - theirs).abs().max() * 255 < 1e-3
    assert (source - theirs).abs().max() * 255 < 0.01
    assert set(abpn_et_to_plain_sd(official_sd)) == set(plain.state_dict())


def test_an_abpn_file_of_another_scale_is_refused_naming_the_file():
    path = require(osp.join(WEIGHTS, 'ABPN/ABPN_M4C28_x2.pth'))
    with pytest.raises(ConversionError, match=r'ABPN_M4C28_x2.pth: ABPNNet output conv has 12 channels, but x4 '
                                              r'needs 48; is this a checkpoint of another scale'):
        infer_arch(load_checkpoint(path), 4, path)


# the ETDS repository's other baselines: Set5 / Set14 Y PSNR in the authors' test logs (mod-12 protocol)
BASELINE_LOGS = {('ESPCN', 2): (36.8565, 32.6197), ('ESPCN', 3): (32.8478, 29.4126),
                 ('ESPCN', 4): (30.6581, 27.6598), ('FSRCNN', 2): (36.9971, 32.6791),
                 ('FSRCNN', 3): (33.0111, 29.5160), ('FSRCNN', 4): (30.7606, 27.7356),
                 ('Plain_M6C32', 4): (31.3246, 28.0912)}


@pytest.mark.parametrize('name,s', sorted(BASELINE_LOGS), ids=lambda v: str(v))
def test_released_baselines_load_strictly_and_reproduce_the_authors_logs(name, s):
    path = require(osp.join(WEIGHTS, f'ETDS/baselines/{name}_x{s}.pth'))
    sd = load_checkpoint(path)
    arch = {'ESPCN': 'ESPCN', 'FSRCNN': 'FSRCNN', 'Plain_M6C32': 'ETDSAblationPlain'}[name]
    found, kwargs = infer_arch(sd, s, path)
    assert found == arch
    net = ARCH_REGISTRY.get(arch)(**kwargs)
    net.load_state_dict(sd, strict=True)
    for dataset, logged in zip(('Set5', 'Set14'), BASELINE_LOGS[(name, s)]):
        psnr, _ = evaluate(net.eval(), dataset, s, regenerate=True)
        assert abs(psnr - logged) <= 0.01, (name, s, dataset, psnr, logged)


def test_a_baseline_of_another_scale_is_refused_naming_the_file():
    path = require(osp.join(WEIGHTS, 'ETDS/baselines/ESPCN_x2.pth'))
    with pytest.raises(ConversionError, match=r'ESPCN_x2.pth: ESPCN output conv has 12 channels, but x4 needs '
                                              r'48'):
        infer_arch(load_checkpoint(path), 4, path)
