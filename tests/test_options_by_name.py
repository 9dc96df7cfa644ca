"""Shipped options files by name: ``adaptsr-train/-test -opt NAME``, ``adaptsr-bench -opt NAME``, ``--compare NAME``,
and a one-line error with the closest names for a name that is not shipped."""
import os
import os.path as osp
import subprocess
import sys

import pytest

from adaptsr.core.options import OPTION_KINDS, find_options, shipped_options
from conftest import ROOT


@pytest.mark.parametrize('kind', OPTION_KINDS)
def test_every_shipped_file_is_found_by_its_name(kind):
    files = sorted(os.listdir(osp.join(ROOT, 'options', kind)))
    shipped = shipped_options(kind)
    assert sorted(f'{n}.yml' for n in shipped) == [f for f in files if f.endswith('.yml')]
    for name, path in shipped.items():
        assert find_options(name, kind) == path == find_options(name + '.yml', kind)
        assert osp.samefile(path, osp.join(ROOT, 'options', kind, name + '.yml'))


def test_a_path_wins_and_a_wrong_name_suggests_the_close_ones(tmp_path):
    own = tmp_path / 'pcsr_carn_x4.yml'
    own.write_text('name: mine\n')
    assert find_options(str(own), 'test') == str(own)
    with pytest.raises(FileNotFoundError, match=r"'pcsr_carn_x5' does not exist, and no shipped test options have "
                                                r"that name \(did you mean pcsr_carn_x4"):
        find_options('pcsr_carn_x5', 'test')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        find_options(str(tmp_path / 'missing.yml'), 'test')


def test_the_commands_take_a_name(tmp_path):
    """``adaptsr-test -opt NAME`` resolves it before BasicSR reads the file; a wrong name is one line."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p))
    proc = subprocess.run([sys.executable, '-m', 'adaptsr.cli.test', '-opt', 'etds_m6c32_x5'], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("adaptsr-test: options file 'etds_m6c32_x5' does not "
                                                          'exist, and no shipped test options have that name (did '
                                                          'you mean etds_m6c32_x4')
    assert not os.listdir(tmp_path)  # nothing made before the options are known
    proc = subprocess.run([sys.executable, '-m', 'adaptsr.cli.bench', '--compare', 'x5', '--json', 'c.json'],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    shipped = 'bf16_x2, bf16_x4, compile_x4, fsrcnn_pcsr_x4, x2, x4'
    assert f'no shipped compare options have that name (shipped: {shipped})' in proc.stderr


def test_force_yml_indexes_lists():
    """``--force_yml train:phases:0:iters=10`` (a list index; BasicSR 1.4.2 ends in a TypeError) is taken out of argv
    for BasicSR and applied after its parse; a phases' sum in ``total_iter`` follows, and a bad index is named."""
    from adaptsr.compat import _apply_indexed_force_yml, _take_indexed_force_yml
    from adaptsr.core.options import OptionError
    argv = ['train.py', '-opt', 'x.yml', '--force_yml', 'train:ema_decay=0.9', 'train:phases:1:iters=7',
            '--auto_resume']
    taken = _take_indexed_force_yml(argv)
    assert taken == ['train:phases:1:iters=7']
    assert argv == ['train.py', '-opt', 'x.yml', '--force_yml', 'train:ema_decay=0.9', '--auto_resume']
    argv = ['train.py', '--force_yml', 'train:phases:0:iters=3']
    assert _take_indexed_force_yml(argv) == ['train:phases:0:iters=3'] and argv == ['train.py']
    opt = {'train': {'total_iter': 30, 'phases': [{'name': 'a', 'iters': 10}, {'name': 'b', 'iters': 20}]}}
    _apply_indexed_force_yml(opt, taken, 'x.yml')
    assert opt['train']['phases'][1]['iters'] == 7 and opt['train']['total_iter'] == 17
    with pytest.raises(OptionError, match=r'--force_yml train:phases:5:iters=1: x.yml has no such key or index'):
        _apply_indexed_force_yml(opt, ['train:phases:5:iters=1'], 'x.yml')


def test_train_and_test_help_and_dashed_flags(capsys):
    """``adaptsr-train/-test --help`` has a description, examples and BasicSR's flags; dashed spellings reach BasicSR's
    parser as its underscore ones."""
    from adaptsr.cli.pipeline_args import prepare_argv
    from adaptsr.cli.train import __doc__ as train_doc
    with pytest.raises(SystemExit) as exit_:
        prepare_argv('adaptsr-train', train_doc, train=True, argv=['adaptsr-train', '--help'])
    text = capsys.readouterr().out
    assert exit_.value.code == 0 and 'adaptsr-train -opt pcsr_carn_x4_demo' in text
    assert '--auto-resume' in text and '--force-yml' in text and '--auto_resume' not in text
    argv = ['adaptsr-train', '-opt', 'x', '--auto-resume', '--force-yml', 'a=1', '--local-rank', '0']
    assert prepare_argv('adaptsr-train', train_doc, True, argv) == \
        ['adaptsr-train', '-opt', 'x', '--auto_resume', '--force_yml', 'a=1', '--local_rank', '0']
