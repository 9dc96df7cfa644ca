"""A sixth method needs one room: ``tests/toy_method/`` (bicubic plus a learned residual whose weight is the knob
``strength``) registers from its own folder, and checkpoint recognition, ``adaptsr.load``, ``adaptsr-infer`` with its
flag, ``adaptsr-bench`` and the option checks take it as they take the five methods, with no file outside the
folder changed. Every step runs in a fresh process that loads the plugin (``ADAPTSR_METHODS=toy_method``), so the
toy never joins this session's registries."""
import csv
import glob
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml
from conftest import ROOT

TESTS = osp.join(ROOT, 'tests')
ENV = dict(os.environ, ADAPTSR_METHODS='toy_method',
           PYTHONPATH=os.pathsep.join(p for p in (TESTS, ROOT, os.environ.get('PYTHONPATH')) if p))

# fit the residual to one real image pair, save the checkpoint, then go through the Python API
SETUP = r'''
import json, sys
import cv2, numpy as np, torch
import adaptsr
from adaptsr.api import describe
from adaptsr.core.errors import LoadError, OptionError
from basicsr.utils.registry import ARCH_REGISTRY
lr_path, hr_path, ckpt = sys.argv[1:4]
to_t = lambda p: torch.from_numpy(cv2.imread(p)[:, :, ::-1].transpose(2, 0, 1).copy())[None].float() / 255
lq, gt = to_t(lr_path), to_t(hr_path)
torch.manual_seed(0)
net = ARCH_REGISTRY.get('ToyResidualSR')(upscale=2, num_feat=8)
opt = torch.optim.Adam(net.parameters(), 1e-3)
for _ in range(150):
    opt.zero_grad()
    loss = (net(lq) - gt).abs().mean()
    loss.backward()
    opt.step()
torch.save({'params': net.state_dict()}, ckpt)
found = describe(ckpt)
sr = adaptsr.load(ckpt)
full = sr(lq)
full_stats = dict(sr.stats)
half = sr(lq, strength=0.5)
zero = sr(lq, strength=0)
zero_stats = dict(sr.stats)
bicubic = torch.nn.functional.interpolate(lq, scale_factor=2, mode='bicubic', align_corners=False)
errors = {}
for name, kwargs in (('range', {'strength': 3.0}), ('unknown', {'k': 1.0})):
    try:
        adaptsr.load(ckpt, **kwargs)
    except (LoadError, OptionError) as err:
        errors[name] = str(err)
with torch.no_grad():
    built = float((found.build()(lq) - net(lq)).abs().max())
print(json.dumps({'built_equal': built, 'arch': found.arch, 'method': found.method, 'scale': found.scale,
                  'model_type': found.model_type,
                  'knobs': found.knobs, 'zero_is_bicubic': float((zero - bicubic).abs().max()),
                  'half_is_midway': float((half - (full + zero) / 2).abs().max()),
                  'full_stats': full_stats, 'zero_stats': zero_stats, 'errors': errors}))
'''


def _run(args, cwd, check=True):
    proc = subprocess.run([sys.executable] + list(args), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args[:3]} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}')
    return proc


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    """A real photo pair (scikit-image's astronaut, 96x96 HR, bicubic x2 LR), the fitted toy checkpoint and what the
    API said of it."""
    from basicsr.utils.matlab_functions import imresize
    from skimage import data
    tmp = tmp_path_factory.mktemp('toy')
    hr = np.ascontiguousarray(data.astronaut()[120:216, 180:276, ::-1])  # BGR, a face: edges and smooth skin
    lr = np.clip(np.round(imresize(hr.astype(np.float64) / 255, 0.5) * 255), 0, 255).astype(np.uint8)
    for sub, img in (('hr', hr), ('lr', lr)):
        os.makedirs(tmp / sub)
        cv2.imwrite(str(tmp / sub / 'face.png'), img)
    ckpt = str(tmp / 'toy_x2.pth')
    proc = _run(['-c', SETUP, str(tmp / 'lr' / 'face.png'), str(tmp / 'hr' / 'face.png'), ckpt], tmp)
    return {'dir': tmp, 'ckpt': ckpt, 'api': json.loads(proc.stdout.strip().splitlines()[-1])}


def test_the_checkpoint_is_recognised_and_the_api_runs_the_knob(toy):
    api = toy['api']
    assert (api['arch'], api['method'], api['scale'], api['model_type']) == \
        ('ToyResidualSR', 'toy_method', 2, 'ToyResidualModel')
    assert api['knobs']['strength'] == 1.0
    assert api['built_equal'] == 0.0  # the descriptor builds the same network from the file alone
    assert api['zero_is_bicubic'] == 0.0  # strength 0: the residual is not computed at all
    assert api['half_is_midway'] < 1e-6
    assert api['full_stats']['residual_ratio'] == 1.0 and api['full_stats']['gflops'] > 0
    assert api['zero_stats']['residual_ratio'] == 0.0 and api['zero_stats']['gflops'] == 0.0
    assert api['errors']['range'] == 'val.strength = 3.0: must be in [0.0, 2.0]'
    assert 'has no knob k; its knobs:' in api['errors']['unknown'] and 'strength' in api['errors']['unknown']


def _rows(out):
    with open(osp.join(out, 'adaptsr_infer.csv')) as f:
        return list(csv.DictReader(f))


def test_adaptsr_infer_offers_the_knob_flag(toy):
    d = toy['dir']
    psnr = {}
    for strength in ('0', '1'):
        out = str(d / f'infer_{strength}')
        proc = _run(['-m', 'adaptsr.cli.infer', str(d / 'lr'), '-o', out, '--model', toy['ckpt'], '--strength',
                     strength, '--hr', str(d / 'hr'), '--quiet'], d)
        assert 'ToyResidualSR (ToyResidualModel)' in proc.stdout
        row = _rows(out)[0]
        psnr[strength] = float(row['psnr_y'])
        assert float(row['residual_ratio']) == float(strength)  # the model's statistic is a column
    assert psnr['1'] > psnr['0'] + 0.1, psnr  # the fitted residual improves on bicubic
    help_text = _run(['-m', 'adaptsr.cli.infer', '--help'], d).stdout
    assert '--strength' in help_text and 'weight of the learned residual' in help_text
    proc = _run(['-m', 'adaptsr.cli.infer', str(d / 'lr'), '-o', str(d / 'bad'), '--model', 'bicubic', '--scale', '2',
                 '--strength', '1'], d, check=False)
    assert proc.returncode != 0 and '--strength is a knob of ToyResidualModel' in proc.stderr


def _options(toy, **val):
    d = toy['dir']
    return {'name': 'toy_x2', 'model_type': 'ToyResidualModel', 'scale': 2, 'num_gpu': 0,
            'datasets': {'test_1': {'name': 'face', 'type': 'PairedImageDataset', 'dataroot_gt': str(d / 'hr'),
                                    'dataroot_lq': str(d / 'lr'), 'io_backend': {'type': 'disk'}}},
            'network_g': {'type': 'ToyResidualSR', 'upscale': 2, 'num_feat': 8},
            'path': {'pretrain_network_g': toy['ckpt'], 'strict_load_g': True},
            'val': dict({'metrics': {'psnr_y': {'type': 'calculate_psnr', 'crop_border': 2, 'test_y_channel': True}}},
                        **val)}


def test_adaptsr_bench_sweeps_the_knob(toy):
    d = toy['dir']
    opt_path = d / 'toy_bench.yml'
    opt_path.write_text(yaml.safe_dump(_options(toy, budget_sweep=[0.0, 0.5, 1.0])))
    out = str(d / 'bench.json')
    _run(['-m', 'adaptsr.cli.bench', '-opt', str(opt_path), '--json', out, '--no_memory'], d)
    rows = {r['budget']: r for r in json.load(open(out))['rows']}
    assert sorted(rows) == ['s0', 's0.5', 's1']
    assert rows['s1']['psnr_y'] > rows['s0']['psnr_y'] + 0.1
    assert rows['s0']['gflops'] == 0.0 and rows['s1']['gflops'] > 0
    assert rows['s1']['residual_ratio'] == 1.0


@pytest.mark.parametrize('val,message', [({'strenght': 1.0}, 'strenght'), ({'strength': 5.0}, 'strength')])
def test_option_checks_name_the_toy_keys(toy, val, message):
    d = toy['dir']
    opt_path = d / f'toy_bad_{message}.yml'
    opt_path.write_text(yaml.safe_dump(_options(toy, **val)))
    proc = _run(['-m', 'adaptsr.cli.bench', '-opt', str(opt_path), '--json', str(d / f'bad_{message}.json'),
                 '--no_memory'], d, check=False)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert message in last and 'Traceback' not in proc.stderr, proc.stderr[-1500:]


def test_nothing_outside_the_toy_folder_knows_it():
    """The toy is only in its folder (and this test): no file of the package names it."""
    for path in glob.glob(osp.join(ROOT, 'adaptsr', '**', '*.*'), recursive=True):
        if path.endswith(('.py', '.cpp', '.md', '.yml')):
            with open(path) as f:
                assert 'toy' not in f.read().lower(), path
    assert sorted(osp.basename(p) for p in glob.glob(osp.join(TESTS, 'toy_method', '*.py'))) == \
        ['__init__.py', 'formats.py', 'toy_arch.py', 'toy_model.py']
