"""Shared fixtures: repository paths, official weights / benchmark locations, small real images."""
import os
import os.path as osp
import subprocess
import sys
import time

import pytest
import torch

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
sys.path.insert(0, ROOT)

import adaptsr  # noqa: E402,F401

torch.set_num_threads(2)


def _shared(var, default):
    return os.environ.get(var) or osp.abspath(osp.join(ROOT, default))


WEIGHTS = _shared('ADAPTSR_WEIGHTS', 'weights/official')
BENCHMARK = _shared('ADAPTSR_BENCHMARK', 'datasets/benchmark')
DATA = _shared('ADAPTSR_DATA', 'datasets')


def _deadline():
    """``ADAPTSR_TEST_DEADLINE``: a Unix time after which the tests not yet started are skipped, each saying why
    (.ci/run sets it for the slow suite so that CI ends within its limit on a slow machine); unset or empty: none."""
    value = os.environ.get('ADAPTSR_TEST_DEADLINE', '')
    try:
        return float(value) if value else None
    except ValueError:
        raise pytest.UsageError(f'ADAPTSR_TEST_DEADLINE={value!r}: expected a Unix time in seconds') from None


DEADLINE = _deadline()


def pytest_runtest_setup(item):
    if DEADLINE is not None and time.time() > DEADLINE:
        pytest.skip('ADAPTSR_TEST_DEADLINE passed at '
                    f'{time.strftime("%H:%M:%S", time.localtime(DEADLINE))}: not started (CI time budget spent)')


def require(path):
    """Skip when a shared file is absent, unless ADAPTSR_REQUIRE_SHARED=1 (CI), where it is a failure."""
    if not osp.exists(path):
        if os.environ.get('ADAPTSR_REQUIRE_SHARED') == '1':
            pytest.fail(f'required shared file missing: {path}')
        pytest.skip(f'not found: {path} (set ADAPTSR_WEIGHTS / ADAPTSR_BENCHMARK / ADAPTSR_DATA, see README)')
    return path


def read_rgb(path):
    """Image file -> (1, 3, H, W) float RGB in [0, 1] (grayscale becomes 3 equal channels, as in BasicSR)."""
    from adaptsr.core.data_util import read_image
    return read_image(path)


@pytest.fixture(scope='session')
def weights():
    return WEIGHTS


@pytest.fixture(scope='session')
def benchmark_root():
    return BENCHMARK


@pytest.fixture(scope='session')
def pcsr_official():
    """Official CARN-PCSR x4 (phase 1) in eval mode."""
    from adaptsr.methods.pcsr.pcsr_arch import PCSRNet
    from adaptsr.core.checkpoint_io import load_checkpoint
    from adaptsr.methods.pcsr.formats import convert_pcsr
    ckpt = convert_pcsr(load_checkpoint(require(osp.join(WEIGHTS, 'PCSR/carn-pcsr-phase1/iter_last.pth'))))
    net = PCSRNet(encoder='carn')
    net.load_state_dict(ckpt['params'], strict=True)
    return net.eval()


@pytest.fixture(scope='session')
def carn_official():
    """Official original CARN x4 of PCSR (``carn-x4``) in eval mode."""
    from adaptsr.methods.baselines.carn_arch import PCSRCARN
    from adaptsr.core.checkpoint_io import load_checkpoint
    from adaptsr.methods.pcsr.formats import convert_pcsr
    ckpt = convert_pcsr(load_checkpoint(require(osp.join(WEIGHTS, 'PCSR/carn-x4/iter_last.pth'))))
    net = PCSRCARN()
    net.load_state_dict(ckpt['params'], strict=True)
    return net.eval()


@pytest.fixture(scope='session')
def demo_data(tmp_path_factory):
    """The embedded demo data set, built once per session (datasets/demo if already there)."""
    root = osp.join(ROOT, 'datasets', 'demo')
    if osp.exists(osp.join(root, '.complete')):
        return root
    root = str(tmp_path_factory.mktemp('demo'))
    os.rmdir(root)
    subprocess.run([sys.executable, osp.join(ROOT, 'scripts', 'prepare_demo_data.py'), '--root', root], check=True,
                   capture_output=True)
    return root


def model_options(tmp_path, model_type, network_g, scale=None, is_train=False, pretrain=None, train=None, val=None,
                  path=None, name='check'):
    """Options as BasicSR's ``parse_options`` gives them, for building a model directly in a test: every output
    folder in ``tmp_path``, CPU, no datasets; ``path`` entries update the defaults, ``val`` defaults to no metrics."""
    root = str(tmp_path)
    paths = {'pretrain_network_g': pretrain, 'strict_load_g': True, 'param_key_g': 'params', 'results_root': root,
             'log': root, 'visualization': root}
    if is_train:
        paths.update(experiments_root=root, models=root, training_states=root)
    paths.update(path or {})
    opt = {'name': name, 'model_type': model_type, 'scale': scale or network_g.get('upscale', 4), 'num_gpu': 0,
           'manual_seed': 0, 'dist': False, 'rank': 0, 'world_size': 1, 'is_train': is_train, 'root_path': root,
           'datasets': {}, 'network_g': network_g, 'path': paths, 'val': {'metrics': {}} if val is None else val}
    if train is not None:
        opt['train'] = train
    if pretrain is None and not is_train:
        opt['allow_random_weights'] = True  # these tests check behaviour, not trained figures
    return opt


def write_yaml(path, opt):
    import yaml
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return str(path)


def run_script(args, cwd=ROOT, env=None, timeout=900, check=True):
    """Run a repository script with this interpreter; returns the CompletedProcess (raises on failure if ``check``)."""
    full_env = dict(os.environ, PYTHONUNBUFFERED='1', OMP_NUM_THREADS='1')
    full_env.update(env or {})
    proc = subprocess.run([sys.executable] + list(args), cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}')
    return proc


def train_demo(tmp_path, demo_data, yml, edit=None):
    """Run ``train.py`` on a demo training YAML (``options/train/<yml>``) in ``tmp_path``, its ``datasets/demo``
    paths pointed at ``demo_data``; ``edit(opt)`` may change the options first. Returns (options, experiment dir)."""
    import shutil
    import yaml
    with open(osp.join(ROOT, 'options/train', yml)) as f:
        opt = yaml.safe_load(f)
    for key in ('train', 'val'):
        d = opt['datasets'][key]
        for k in ('dataroot_gt', 'dataroot_lq'):
            d[k] = osp.join(demo_data, osp.relpath(d[k], 'datasets/demo'))
    opt['logger']['use_tb_logger'] = False
    if edit is not None:
        edit(opt)
    shutil.copy(osp.join(ROOT, 'train.py'), tmp_path / 'train.py')
    path = write_yaml(tmp_path / 'demo.yml', opt)
    # minutes alone on 2 cores; a generous limit so that a busy machine slows it down without failing it
    run_script([str(tmp_path / 'train.py'), '-opt', path], cwd=tmp_path, env={'PYTHONPATH': ROOT,
                                                                            'OMP_NUM_THREADS': '2'}, timeout=3600)
    return opt, tmp_path / 'experiments' / opt['name']
