"""The commands' error cases a new user met (issue "a product outside the clone"): each ends in one line naming the
value at fault, with the way out where there is one."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from conftest import BENCHMARK, ROOT, WEIGHTS, require

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get('PYTHONPATH')) if p))


def _last_line(args, cwd):
    proc = subprocess.run([sys.executable] + args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    return proc.stderr.strip().splitlines()[-1]


def test_a_file_of_another_scale_and_an_official_file_to_convert(tmp_path):
    lr = require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X2/babyx2.png'))
    smsr = require(osp.join(WEIGHTS, 'SMSR/SMSR_x2_model_1000.pt'))
    line = _last_line(['-m', 'adaptsr.cli.infer', lr, '-o', 'a', '--model', smsr, '--scale', '4'], tmp_path)
    assert line == f'adaptsr-infer: {smsr}: SMSR checkpoint is x2 (tail.0 has 12 channels), but the scale is 4'
    carn_m = require(osp.join(WEIGHTS, 'CARN/carn_m.pth'))
    line = _last_line(['-m', 'adaptsr.cli.infer', lr, '-o', 'b', '--model', carn_m], tmp_path)
    assert line.startswith(f'adaptsr-infer: {carn_m}: not the state_dict of a known arch')
    assert line.endswith('may need converting first: adaptsr-convert --method abpn|carn_m|ecbsr|etds|pcsr|smsr')
    assert not os.listdir(tmp_path)


def test_export_without_onnx_says_how_to_install_it(tmp_path):
    from adaptsr.methods.etds.etds_arch import ETDSPlain
    path = str(tmp_path / 'plain.pth')
    torch.save({'params': ETDSPlain(upscale=2, num_block=1, num_feat=8).state_dict()}, path)
    code = ("import sys; sys.modules['onnx'] = None; from adaptsr.cli.export import main; "
            f"main(['--input', {path!r}, '--scale', '2', '--output', 'm.onnx'])")
    line = _last_line(['-c', code], tmp_path)
    assert line.startswith("export: ONNX export needs onnx and onnxruntime: pip install 'adaptsr[deploy]'")
    assert not (tmp_path / 'm.onnx').exists()


def test_flags_are_dashed_and_the_underscore_spellings_still_work(capsys):
    """One CLI style: dashed flags in every command's help, ``-o/--output`` for what it writes; the underscore
    spellings of earlier releases are hidden aliases."""
    import pytest
    from adaptsr.cli import bench, convert, export, infer
    for main in (bench.main, convert.main, export.main, lambda a: infer.parse_args(a)):
        with pytest.raises(SystemExit):
            main(['--help'])
        text = capsys.readouterr().out
        flags = [w for w in text.split() if w.startswith('--')]
        assert flags and not [f for f in flags if '_' in f.split('=')[0].strip('[],')], flags
        assert '-o' in text.split() or '-o,' in text or '-o ' in text
    from adaptsr.utils.argtypes import CLIParser
    parser = CLIParser(prog='x')
    parser.add_argument('--max-images', type=int)
    parser.add_argument('-o', '--output', '--json', dest='json')
    assert vars(parser.parse_args(['--max_images', '3', '--json', 'a.json'])) == {'max_images': 3, 'json': 'a.json'}
    assert vars(parser.parse_args(['--max-images', '4', '-o', 'b.json'])) == {'max_images': 4, 'json': 'b.json'}


def test_a_folder_run_continues_with_skip_existing(tmp_path):
    """A folder with one broken file: the others' rows are written and the command exits 1 with a summary; after the
    file is fixed, ``--skip-existing`` runs only it and keeps the earlier rows and images."""
    import json

    import cv2
    from skimage import data
    photos = tmp_path / 'photos'
    photos.mkdir()
    astronaut = data.astronaut()[:, :, ::-1]
    cv2.imwrite(str(photos / 'a.png'), astronaut[100:132, 150:190])
    cv2.imwrite(str(photos / 'b.png'), astronaut[300:328, 200:236])
    (photos / 'c.png').write_bytes(b'not a png')
    args = ['-m', 'adaptsr.cli.infer', str(photos), '-o', 'sr', '--model', 'bicubic', '--scale', '2', '--quiet']
    line = _last_line(args, tmp_path)
    assert line.startswith('adaptsr-infer: 1 of 3 input(s) failed') and 'c.png' in line
    rows = json.load(open(tmp_path / 'sr' / 'adaptsr_infer.json'))
    assert [r['image'] for r in rows] == ['a.png', 'b.png', 'c.png'] and 'error' in rows[2]
    before = (tmp_path / 'sr' / 'a.png').stat().st_mtime_ns
    cv2.imwrite(str(photos / 'c.png'), astronaut[50:80, 60:90])
    proc = subprocess.run([sys.executable] + args + ['--skip-existing'], cwd=tmp_path, env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.load(open(tmp_path / 'sr' / 'adaptsr_infer.json'))
    assert [r['image'] for r in rows] == ['a.png', 'b.png', 'c.png'] and not any(r.get('error') for r in rows)
    assert rows[2]['sr_w'] == 60 and (tmp_path / 'sr' / 'a.png').stat().st_mtime_ns == before


def test_test_overwrite_replaces_the_results_folder_and_the_default_archives_it(tmp_path, demo_data):
    """``adaptsr-test`` keeps an earlier run's results (BasicSR archives them) unless ``--overwrite``."""
    from conftest import WEIGHTS, require, write_yaml
    opt = {'name': 'ow', 'model_type': 'ETDSModel', 'scale': 4, 'num_gpu': 0,
           'datasets': {'test_1': {'name': 'demo', 'type': 'PairedImageDataset', 'phase': 'test', 'io_backend':
                                   {'type': 'disk'}, 'dataroot_gt': osp.join(demo_data, 'val', 'HR'),
                                   'dataroot_lq': osp.join(demo_data, 'val', 'LR_bicubic', 'X4'),
                                   'filename_tmpl': '{}x4'}},
           'network_g': {'type': 'ETDSPlain', 'upscale': 4, 'num_block': 6, 'num_feat': 32},
           'path': {'pretrain_network_g': require(osp.join(WEIGHTS, 'ETDS/ETDS_M6C32_x4.pth')), 'strict_load_g': True,
                    'param_key_g': 'params'},
           'val': {'save_img': False, 'metrics': {}}}
    yml = write_yaml(tmp_path / 'ow.yml', opt)

    def run(*flags):
        return subprocess.run([sys.executable, '-m', 'adaptsr.cli.test', '-opt', yml, *flags], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)

    assert run().returncode == 0
    (tmp_path / 'results' / 'ow' / 'mine.txt').write_text('kept')
    assert run().returncode == 0
    archived = [p for p in (tmp_path / 'results').iterdir() if p.name.startswith('ow_archived_')]
    assert len(archived) == 1 and (archived[0] / 'mine.txt').read_text() == 'kept'
    (tmp_path / 'results' / 'ow' / 'mine.txt').write_text('replaced')
    proc = run('--overwrite')
    assert proc.returncode == 0 and '--overwrite: removing' in proc.stdout + proc.stderr
    assert not (tmp_path / 'results' / 'ow' / 'mine.txt').exists()
    assert len([p for p in (tmp_path / 'results').iterdir() if p.name.startswith('ow_archived_')]) == 1


@pytest.mark.parametrize('command', ['train', 'test', 'weights', 'prepare', 'export', 'infer', 'bench', 'convert',
                                     'cabm-table'])
def test_help_is_printed_without_importing_torch(command):
    """``--help`` of every console command imports neither torch nor BasicSR (a tenth of a second, not 4-6 s): the
    knob, side-file and converter flags come from the methods' declarations files (``adaptsr.core.model_flags``), a
    room's own command (``adaptsr-cabm-table``) is loaded alone through ``adaptsr.cli.room_command``."""
    module = 'room_command' if command == 'cabm-table' else command
    code = (f"import sys; sys.argv = ['adaptsr-{command}', '--help']\n"
            f"from adaptsr.cli.{module} import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None)\n"
            "print(sorted(m for m in ('torch', 'basicsr', 'cv2') if m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if k != 'ADAPTSR_METHODS'}
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert 'usage: adaptsr-' in proc.stdout and proc.stdout.strip().splitlines()[-1] == '[]'
    # an example continued on the next line keeps its backslash and line break (a lone backslash at a line's end in
    # a docstring that is not raw joins the two lines, the indent between them: a command that cannot be copied)
    joined = [line for line in proc.stdout.splitlines() if re.search(r'\S {5,}--[a-z]', line)]
    assert not joined, f'adaptsr-{command} --help: examples joined into one line: {joined}'
    if command == 'infer':  # every method's knob and side file is offered
        for flag in ('--precision', '--exit-threshold', '--k', '--adaptive', '--calibration', '--cabm-lut'):
            assert flag in proc.stdout, flag
    if command == 'convert':
        for name in ('pcsr', 'carn_m', 'etds', 'ecbsr', 'abpn', 'smsr'):
            assert name in proc.stdout, name


def test_the_declarations_files_are_what_the_registry_holds():
    """The help's flags (read from the rooms' declarations.py without imports) are the registered models' knob flags
    and side files and the registered converters, text for text."""
    import adaptsr  # noqa: F401  (registrations)
    from adaptsr.api.flags import knob_flags
    from adaptsr.core.checkpoints import CONVERTERS
    from adaptsr.core.declarations import side_file_specs
    from adaptsr.core.model_flags import converter_help, knob_flag_specs, side_file_flag_specs
    assert knob_flag_specs() == {dest: spec for dest, (_, spec) in knob_flags().items()}
    assert side_file_flag_specs() == side_file_specs()
    assert converter_help() == {name: text for name, (_, text) in CONVERTERS.items()}


def test_a_room_command_runs_by_its_name(tmp_path):
    """``adaptsr-cabm-table`` dispatches to CABM's table_cli: its own one-line error for a missing checkpoint."""
    from adaptsr.cli.room_command import find_command, main
    room, target, path = find_command('adaptsr-cabm-table')
    assert (room, target) == ('cabm', 'table_cli') and osp.isfile(path)
    with pytest.raises(SystemExit) as err:
        main(['-m', str(tmp_path / 'missing.pth'), '-i', str(tmp_path), '-o', str(tmp_path / 'lut.json')],
             name='adaptsr-cabm-table')
    assert 'adaptsr-cabm-table' in str(err.value) and 'missing.pth' in str(err.value)
    with pytest.raises(SystemExit, match='not a command of any method'):
        find_command('adaptsr-nothing')


def test_a_plain_import_still_registers_everything():
    code = ("import sys; sys.argv = ['adaptsr-train', '--help']; import adaptsr.archs\n"
            "from basicsr.utils.registry import ARCH_REGISTRY; print('ETDSPlain' in ARCH_REGISTRY)")
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == 'True', proc.stderr
