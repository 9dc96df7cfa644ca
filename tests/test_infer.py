"""``adaptsr-infer`` on the kinds of images users have: every method (and bicubic) from a checkpoint file alone, the
input's form kept (grey, RGBA, 16-bit, JPEG), the network's own output written, the routing maps, the CSV rows,
ground-truth PSNR, and the errors a user meets."""
import csv
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from basicsr.utils.registry import ARCH_REGISTRY

from conftest import BENCHMARK, ROOT, WEIGHTS, require

from adaptsr.cli.infer import finish_image, main, quantize, read_image

# method -> (arch options at the scale, scale, the statistic its rows carry, the map it draws, extra flags)
METHODS = {
    'pcsr': ({'type': 'PCSRNet', 'encoder': 'carn', 'encoder_opt': {'num_feat': 16}, 'heavy_hidden': [16, 16],
              'light_hidden': [8], 'cls_hidden': [8], 'upscale': 4}, 4, 'heavy_ratio', 'classes', ['--k', '0']),
    'ape': ({'type': 'APEECBSR', 'num_block': 4, 'num_feat': 8, 'upscale': 4}, 4, 'mean_exit', 'exits',
            ['--exit-threshold', '0.5', '--tile', '16', '--tile-overlap', '2']),
    'cabm': ({'type': 'CABMNet', 'backbone': {'type': 'ECBSRPlain', 'num_block': 3, 'num_feat': 8, 'upscale': 4},
              'quant_layers': 'body', 'mode': 'cadyq'}, 4, 'fab', 'bits', ['--tile', '24']),
    'smsr': ({'type': 'SMSRNet', 'num_feat': 16, 'upscale': 2}, 2, 'mask_density', 'masks', []),
    'etds': ({'type': 'ETDSPlain', 'num_block': 3, 'num_feat': 16, 'upscale': 3}, 3, None, None, []),
    'bicubic': (None, 4, None, None, ['--scale', '4']),
}


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """A folder with one photograph (scikit-image's astronaut, 40x48 LR) as a colour PNG, a grey PNG, an RGBA PNG
    (alpha: a left-right ramp), a 16-bit PNG and a JPEG."""
    from skimage import data
    root = tmp_path_factory.mktemp('photos')
    bgr = cv2.resize(data.astronaut()[40:240, 150:390, ::-1], (48, 40), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(root / 'color.png'), bgr)
    cv2.imwrite(str(root / 'grey.png'), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    alpha = np.tile(np.linspace(0, 255, 48).round().astype(np.uint8), (40, 1))
    cv2.imwrite(str(root / 'rgba.png'), np.dstack([bgr, alpha]))
    cv2.imwrite(str(root / 'deep.png'), bgr.astype(np.uint16) * 257 + 100)
    cv2.imwrite(str(root / 'photo.jpg'), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return str(root)


def _checkpoint(tmp_path, method):
    """A seeded network of the method saved as a plain BasicSR checkpoint; returns (path or 'bicubic', network)."""
    net_opt = METHODS[method][0]
    if net_opt is None:
        return 'bicubic', ARCH_REGISTRY.get('BicubicSR')(upscale=METHODS[method][1])
    torch.manual_seed(0)
    opt = dict(net_opt)
    net = ARCH_REGISTRY.get(opt.pop('type'))(**opt)
    if method == 'pcsr':  # a classifier that sends about half of the pixels to each branch
        with torch.no_grad():
            net.classifier.imnet.layers[-1].bias.copy_(torch.tensor([0.0, 0.0]))
    path = str(tmp_path / f'{method}.pth')
    torch.save({'params': net.state_dict()}, path)
    return path, net.eval()


def _rows(out):
    with open(osp.join(out, 'adaptsr_infer.csv')) as f:
        return {r['image']: r for r in csv.DictReader(f)}


@pytest.mark.parametrize('method', list(METHODS))
def test_every_method_keeps_each_kind_of_image(tmp_path, photos, method):
    path, net = _checkpoint(tmp_path, method)
    _, scale, stat, map_name, flags = METHODS[method]
    out = str(tmp_path / 'out')
    main([photos, '-o', out, '--model', path, '--maps', '--quiet', '--threads', '1'] + flags)
    rows = _rows(out)
    assert sorted(rows) == ['color.png', 'deep.png', 'grey.png', 'photo.jpg', 'rgba.png']
    h, w = 40 * scale, 48 * scale
    expect = {'color': ((h, w, 3), np.uint8), 'grey': ((h, w), np.uint8), 'rgba': ((h, w, 4), np.uint8),
              'deep': ((h, w, 3), np.uint16), 'photo': ((h, w, 3), np.uint8)}
    for stem, (shape, dtype) in expect.items():
        img = cv2.imread(osp.join(out, stem + '.png'), cv2.IMREAD_UNCHANGED)
        assert img.shape == shape and img.dtype == dtype, stem
        row = rows[[k for k in rows if k.startswith(stem)][0]]
        assert (int(row['sr_h']), int(row['sr_w'])) == (h, w) and float(row['seconds']) > 0
        assert float(row['gflops']) <= float(row['gflops_full']) + 1e-9
        if stat:
            assert row[stat] != '' and np.isfinite(float(row[stat])), (stem, stat)
        if map_name:
            assert row['maps'] == f'{stem}_{map_name}.png' and osp.isfile(osp.join(out, row['maps']))
        else:
            assert row['maps'] == ''
    # the colour PNG's output is what the network computes (rounded to 8 bits); the grey PNG's is the luma of what it
    # makes of the grey image in three channels
    if method in ('etds', 'bicubic', 'smsr'):
        for stem, mode in (('color', 'rgb'), ('grey', 'grey')):
            lq = torch.from_numpy(read_image(osp.join(photos, stem + '.png'))['rgb']).permute(2, 0, 1)[None]
            with torch.no_grad():
                ref = net(lq)
                ref = ref[0] if isinstance(ref, (tuple, list)) else ref
            ref = finish_image(quantize(ref[0], 8), {'mode': mode, 'bits': 8}, scale)
            got = cv2.imread(osp.join(out, stem + '.png'), cv2.IMREAD_UNCHANGED)
            assert got.shape == ref.shape and np.abs(got.astype(int) - ref.astype(int)).max() <= 1, stem
    # the alpha channel is the input's alpha upscaled by bicubic interpolation, separately from the colours
    alpha = cv2.imread(osp.join(out, 'rgba.png'), cv2.IMREAD_UNCHANGED)[:, :, 3]
    ramp = cv2.resize(np.tile(np.linspace(0, 1, 48, dtype=np.float32), (40, 1)), (w, h), interpolation=cv2.INTER_CUBIC)
    assert np.abs(alpha.astype(float) - np.clip(ramp, 0, 1) * 255).max() <= 1.0


def test_sixteen_bit_input_keeps_its_precision(tmp_path, photos):
    """A 16-bit input's SR is written at 16 bits: bicubic of the 16-bit image, not of an 8-bit copy."""
    out = str(tmp_path / 'out')
    main([osp.join(photos, 'deep.png'), '-o', out, '--model', 'bicubic', '--scale', '2', '--quiet'])
    got = cv2.imread(osp.join(out, 'deep.png'), cv2.IMREAD_UNCHANGED)
    assert got.dtype == np.uint16
    assert len(np.unique(got % 257)) > 100  # values between the 8-bit levels (x 257) are used


def test_ground_truth_gives_psnr_and_ssim(tmp_path, photos):
    """``--hr``: PSNR/SSIM on Y against the same stem; bicubic of a bicubic-downscaled image is close to, but not
    equal to, the original."""
    from basicsr.utils.matlab_functions import imresize
    hr_dir, lr_dir = tmp_path / 'hr', tmp_path / 'lr'
    hr_dir.mkdir()
    lr_dir.mkdir()
    hr = cv2.imread(osp.join(photos, 'color.png'))
    cv2.imwrite(str(hr_dir / 'a.png'), hr)
    lr = (np.clip(imresize(hr.astype(np.float32) / 255, 0.5), 0, 1) * 255).round().astype(np.uint8)
    cv2.imwrite(str(lr_dir / 'ax2.png'), lr)
    out = str(tmp_path / 'out')
    main([str(lr_dir), '-o', out, '--model', 'bicubic', '--scale', '2', '--hr', str(hr_dir), '--quiet'])
    row = _rows(out)['ax2.png']
    assert row['hr'] == 'a.png' and 20 < float(row['psnr_y']) < 40 and 0.5 < float(row['ssim_y']) < 1
    # an HR one pixel wider than x2 the LR (no mod-crop) is cropped, as BasicSR's paired datasets; more is an error
    cv2.imwrite(str(hr_dir / 'a.png'), np.concatenate([hr, hr[:, :1]], axis=1))
    main([str(lr_dir), '-o', out, '--model', 'bicubic', '--scale', '2', '--hr', str(hr_dir), '--quiet', '--overwrite'])
    assert _rows(out)['ax2.png']['psnr_y'] == row['psnr_y']
    cv2.imwrite(str(hr_dir / 'a.png'), np.concatenate([hr, hr[:, :2]], axis=1))
    with pytest.raises(SystemExit, match=r'a.png: 50x40 is not x2 of the 24x20 input'):
        main([str(lr_dir), '-o', out, '--model', 'bicubic', '--scale', '2', '--hr', str(hr_dir), '--quiet',
              '--overwrite'])


def test_errors_name_what_is_wrong(tmp_path, photos, capsys):
    path, _ = _checkpoint(tmp_path, 'etds')
    out = str(tmp_path / 'out')

    def fails(args, pattern):
        with pytest.raises(SystemExit) as err:
            main(args + ['--quiet'])
        import re
        assert re.search(pattern, str(err.value)), str(err.value)

    fails([photos, '-o', out, '--model', path, '--k', '0'],
          r'--k is a knob of PCSRModel, but .*etds.pth is a ETDSPlain')
    torch.save({'params': {'foo.weight': torch.zeros(2)}}, str(tmp_path / 'foo.pth'))
    fails([photos, '-o', out, '--model', str(tmp_path / 'foo.pth')], r"foo.pth: not the state_dict of a known arch.*"
          r"supported archs: \[.*'APEECBSR'.*'CABMNet'")
    fails([str(tmp_path / 'nothing'), '-o', out, '--model', path], r'nothing: no image')
    fails([photos, '-o', out, '--model', 'bicubic'], r'--model bicubic needs --scale')
    fails([photos, '-o', out], r'give the model as -opt')
    (tmp_path / 'bad').mkdir()
    (tmp_path / 'bad' / 'x.png').write_bytes(b'not a png')
    fails([str(tmp_path / 'bad'), '-o', out + '_bad', '--model', path],
          r'1 of 1 input.*bad.x.png: cannot be read as an image')
    assert 'x.png: cannot be read as an image' in open(osp.join(out + '_bad', 'adaptsr_infer.csv')).read()
    (tmp_path / 'twins').mkdir()
    for ext in ('png', 'jpg'):
        cv2.imwrite(str(tmp_path / 'twins' / f'a.{ext}'), np.zeros((8, 8, 3), np.uint8))
    fails([str(tmp_path / 'twins'), '-o', out, '--model', path], r'have the same stem; .* a.png')
    # outputs are never replaced without --overwrite, and nothing runs before the refusal
    main([osp.join(photos, 'color.png'), '-o', out, '--model', path, '--quiet'])
    before = open(osp.join(out, 'color.png'), 'rb').read()
    fails([osp.join(photos, 'color.png'), '-o', out, '--model', path], r'color.png, .* already exist; pass --overwrite')
    assert open(osp.join(out, 'color.png'), 'rb').read() == before
    main([osp.join(photos, 'color.png'), '-o', out, '--model', path, '--quiet', '--overwrite'])


def test_runs_from_another_working_directory_as_a_module(tmp_path, photos):
    """``python -m adaptsr.cli.infer`` from a folder that is not the checkout (as the installed ``adaptsr-infer``)."""
    path, _ = _checkpoint(tmp_path, 'etds')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get('PYTHONPATH', '')]))
    proc = subprocess.run([sys.executable, '-m', 'adaptsr.cli.infer', osp.join(photos, 'grey.png'), '-o', 'sr',
                           '--model', path, '--quiet'], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '1 image(s) x3 with ETDSPlain (AdaptiveSRModel)' in proc.stdout
    assert cv2.imread(str(tmp_path / 'sr' / 'grey.png'), cv2.IMREAD_UNCHANGED).shape == (120, 144)


def test_every_console_entry_point_names_a_function():
    """setup.py's console scripts import from the package (they work after ``pip install``, from any directory)."""
    import importlib
    import re
    text = open(osp.join(ROOT, 'setup.py')).read()
    entries = re.findall(r"'(adaptsr-[a-z-]+)=([a-z_.]+):([a-z_]+)'", text)
    assert sorted(e[0] for e in entries) == ['adaptsr-bench', 'adaptsr-cabm-table', 'adaptsr-convert',
                                             'adaptsr-export', 'adaptsr-infer', 'adaptsr-prepare', 'adaptsr-test',
                                             'adaptsr-train', 'adaptsr-weights']
    for _, module, func in entries:
        assert callable(getattr(importlib.import_module(module), func))


@pytest.mark.parametrize('method,rel,knob', [
    ('pcsr', 'PCSR/carn-pcsr-phase1/iter_last.pth', ['--k', '0']),
    ('etds', 'ETDS/ETDS_M6C32_x4.pth', []),
    ('ecbsr', 'ECBSR/ECBSR_M6C40_x4.pth', []),
])
def test_official_files_on_set5_match_their_test_options(tmp_path, method, rel, knob):
    """An official file given alone is recognised and beats bicubic by more than 1 dB on Set5 baby x4 (Y,
    crop_border 4); the CSV's PSNR is the one the written SR file gives."""
    from basicsr.metrics import calculate_psnr
    ckpt = require(osp.join(WEIGHTS, rel))
    lr = require(osp.join(BENCHMARK, 'Set5', 'LR_bicubic', 'X4', 'babyx4.png'))
    hr_dir = osp.join(BENCHMARK, 'Set5', 'HR')
    out = str(tmp_path / 'out')
    main([lr, '-o', out, '--model', ckpt, '--hr', hr_dir, '--quiet'] + knob)
    row = _rows(out)['babyx4.png']
    assert row['hr'] == 'baby.png'
    bic = str(tmp_path / 'bic')
    main([lr, '-o', bic, '--model', 'bicubic', '--scale', '4', '--hr', hr_dir, '--quiet'])
    assert float(row['psnr_y']) > float(_rows(bic)['babyx4.png']['psnr_y']) + 1.0
    sr = cv2.imread(osp.join(out, 'babyx4.png'))
    hr = cv2.imread(osp.join(hr_dir, 'baby.png'))
    assert abs(calculate_psnr(sr, hr, 4, test_y_channel=True) - float(row['psnr_y'])) < 1e-9


def test_large_input_bench_runs_each_model_whole_and_tiled_and_measures_tiling_psnr(tmp_path):
    """``adaptsr-bench --sizes`` on a small spec: a 2x2 mosaic of four photographs, bicubic and a seeded ETDS net
    whole and in tiles (fresh processes: seconds, peak RSS), and the tiling PSNR (crop merge: exactly 0 dB)."""
    import json
    import yaml
    from skimage import data
    from basicsr.utils.matlab_functions import imresize
    from adaptsr.cli.bench import main as bench_main
    src, lr, hr = tmp_path / 'src', tmp_path / 'lr', tmp_path / 'hr'
    for d in (src, lr, hr):
        d.mkdir()
    for i, name in enumerate(('astronaut', 'chelsea', 'coffee', 'rocket')):
        img = getattr(data, name)()[:, :, ::-1]
        img = np.ascontiguousarray(img[:120, :150])
        cv2.imwrite(str(src / f'{i}.png'), img)
        if i < 2:
            cv2.imwrite(str(hr / f'{i}.png'), img)
            small = (np.clip(imresize(img.astype(np.float32) / 255, 1 / 3), 0, 1) * 255).round().astype(np.uint8)
            cv2.imwrite(str(lr / f'{i}x3.png'), small)
    path, _ = _checkpoint(tmp_path, 'etds')
    spec = {'threads': 1, 'mosaic': {'source': str(src), 'size': [160, 120]},
            'tiling_psnr': {'lr': str(lr), 'hr': str(hr)},
            'models': {'bicubic': {'args': ['--model', 'bicubic', '--scale', '3'], 'tile': 64},
                       'etds': {'args': ['--model', path], 'tile': 64, 'tiling_psnr': True}}}
    with open(tmp_path / 'spec.yml', 'w') as f:
        yaml.safe_dump(spec, f)
    out = str(tmp_path / 'large.json')
    bench_main(['--sizes', str(tmp_path / 'spec.yml'), '--json', out])
    result = json.load(open(out))
    assert result['info']['mosaic']['sources'] == ['0.png', '1.png', '2.png', '3.png']
    rows = {(r['model'], r['tiling']): r for r in result['rows']}
    assert sorted(rows) == [('bicubic', 'tiles 64'), ('bicubic', 'whole image'), ('etds', 'tiles 64'),
                            ('etds', 'whole image')]
    for row in rows.values():
        assert row['sr'] == '480x360' and row['seconds'] > 0 and row['peak_rss_mib'] > 100 and 'failure' not in row
    assert rows[('etds', 'tiles 64')]['gflops'] > rows[('etds', 'whole image')]['gflops'] > 0  # overlaps recomputed
    (psnr, ) = result['tiling_psnr']
    assert psnr['model'] == 'etds' and psnr['images'] == 2 and psnr['delta_db'] == 0.0
    with pytest.raises(SystemExit):  # the results are never replaced without --overwrite
        bench_main(['--sizes', str(tmp_path / 'spec.yml'), '--json', out])


def test_int8_onnx_export_runs_and_stays_close_to_fp32(tmp_path, photos):
    """``adaptsr-export --int8``: a QDQ model (QuantizeLinear/DequantizeLinear around every conv, int8 weights) that
    onnxruntime runs through ``adaptsr-infer --model x.onnx``, within a few grey levels of the fp32 export on a
    real photo; an existing INT8 file is refused."""
    import onnx
    from adaptsr.cli.export import main as export_main
    path, _ = _checkpoint(tmp_path, 'etds')
    fp32, int8 = str(tmp_path / 'm.onnx'), str(tmp_path / 'm8.onnx')
    export_main(['--input', path, '--scale', '3', '--output', fp32, '--int8', int8, '--calib', photos, '--calib-lr',
                 '--calib-patch', '32'])
    ops = [n.op_type for n in onnx.load(int8).graph.node]
    assert ops.count('QuantizeLinear') >= 5 and ops.count('DequantizeLinear') >= 10 and 'Conv' in ops
    outs = {}
    for label, model in (('fp32', fp32), ('int8', int8)):
        out = str(tmp_path / label)
        main([osp.join(photos, 'color.png'), '-o', out, '--model', model, '--quiet', '--threads', '1'])
        assert _rows(out)['color.png']['sr_w'] == '144'  # the scale is read off the model
        outs[label] = cv2.imread(osp.join(out, 'color.png')).astype(float)
    mse = ((outs['fp32'] - outs['int8'])**2).mean()
    assert 0 < mse and 10 * np.log10(255**2 / mse) > 30  # quantised, and close
    with pytest.raises(SystemExit):
        export_main(['--input', path, '--scale', '3', '--output', str(tmp_path / 'other.onnx'), '--int8', int8])
