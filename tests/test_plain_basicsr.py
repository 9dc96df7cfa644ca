"""The shipped YAMLs under BasicSR's own pipelines (after ``import adaptsr``, no adaptsr script or patch): their
paths are the documented default layout (``datasets/benchmark/``, ``weights/official/``), which a working directory
provides, here by links to the shared benchmark sets and weights."""
import os
import os.path as osp
import subprocess
import sys

import yaml

from conftest import BENCHMARK, ROOT, WEIGHTS, require

SCRIPT = '''import os.path as osp, sys
import adaptsr  # registrations and the torchvision shim only
import basicsr.{kind} as pipeline
from basicsr.utils.options import parse_options
assert pipeline.parse_options is parse_options, "pipeline patched"
pipeline.{kind}_pipeline(osp.abspath('.'))
'''


def _layout(tmp_path):
    (tmp_path / 'datasets').mkdir()
    (tmp_path / 'weights').mkdir()
    os.symlink(require(BENCHMARK), tmp_path / 'datasets' / 'benchmark')
    os.symlink(require(WEIGHTS), tmp_path / 'weights' / 'official')
    env = {k: v for k, v in os.environ.items() if not k.startswith('ADAPTSR_')}  # nothing relocates the layout
    env['PYTHONPATH'] = os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p)
    return env


def test_basicsr_test_pipeline_runs_a_shipped_test_yaml(tmp_path):
    env = _layout(tmp_path)
    (tmp_path / 'run_test.py').write_text(SCRIPT.format(kind='test'))
    opt = osp.join(ROOT, 'options/test/etds_m6c32_x4.yml')
    proc = subprocess.run([sys.executable, 'run_test.py', '-opt', opt], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = open(next((tmp_path / 'results' / 'etds_m6c32_x4').glob('test_etds_m6c32_x4_*.log'))).read()
    assert 'Validation Set5\n\t # psnr: 31.4228' in log and 'Validation B100\n\t # psnr: 27.2689' in log


def test_basicsr_train_pipeline_runs_a_shortened_shipped_training_yaml(tmp_path, demo_data):
    """ETDS's demo recipe (two phases: dual-stream training, then the plain form saved) with 4 + 4 iterations."""
    env = _layout(tmp_path)
    os.symlink(demo_data, tmp_path / 'datasets' / 'demo')
    with open(osp.join(ROOT, 'options/train/etds_m4c32_x4_demo.yml')) as f:
        opt = yaml.safe_load(f)
    for phase in opt['train']['phases']:
        phase['iters'] = 4
    opt['train']['total_iter'] = 4 * len(opt['train']['phases'])
    opt['logger'].update(print_freq=2, save_checkpoint_freq=opt['train']['total_iter'], use_tb_logger=False)
    opt['val']['val_freq'] = opt['train']['total_iter']
    (tmp_path / 'short.yml').write_text(yaml.safe_dump(opt))
    (tmp_path / 'run_train.py').write_text(SCRIPT.format(kind='train'))
    proc = subprocess.run([sys.executable, 'run_train.py', '-opt', 'short.yml'], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    exp = tmp_path / 'experiments' / opt['name']
    log = open(next(exp.glob(f'train_{opt["name"]}_*.log'))).read()
    assert 'End of training' in log and 'Validation demo' in log
    assert (exp / 'models' / 'net_g_latest.pth').exists()
