"""Options are declared once and checked when they are parsed: a misspelt key is an error that names it."""
import glob
import os
import os.path as osp
import shutil

import pytest
import yaml

from adaptsr.core.options import OptionError, check_options
from conftest import ROOT, run_script, write_yaml


def _load(name):
    with open(osp.join(ROOT, name)) as f:
        return yaml.safe_load(f)


def _misspell(opt, dotted, new_key):
    """Rename the key at ``dotted`` (``a.b.c``; list indices allowed) to ``new_key``."""
    *parents, last = dotted.split('.')
    node = opt
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[new_key] = node.pop(last)
    return opt


@pytest.mark.parametrize('yml,dotted,typo,message', [
    ('options/test/ape_ecbsr_m6c40_x4_bench.yml', 'val.tile_size', 'tile_sise',
     r"val \(APEModel\): unknown key\(s\) 'tile_sise' \(did you mean 'tile_size'"),
    ('options/test/ape_ecbsr_m6c40_x4_bench.yml', 'val.exit_threshold', 'exit_treshold',
     r"val \(APEModel\): unknown key\(s\) 'exit_treshold' \(did you mean 'exit_threshold'"),
    ('options/test/pcsr_carn_x4.yml', 'val.k', 'kk', r"val \(PCSRModel\): unknown key\(s\) 'kk' \(did you mean 'k'"),
    ('options/train/smsr_x2_demo.yml', 'train.smsr.tau_min', 'tau_mn',
     r"train.smsr \(SMSRModel\): unknown key\(s\) 'tau_mn' \(did you mean 'tau_min'"),
    ('options/train/cabm_ecbsr_m6c40_x4_demo.yml', 'train.cabm.lut_dataroot', 'lut_data_root',
     r"train.cabm \(CABMModel\): unknown key\(s\) 'lut_data_root' \(did you mean 'lut_dataroot'"),
    ('options/train/smsr_x2_demo.yml', 'train.smsr', 'smrs',
     r"train \(SMSRModel\): unknown key\(s\) 'smrs' \(did you mean 'smsr'"),
    ('options/train/etds_m4c32_x4_demo.yml', 'network_g.num_block', 'num_blocks',
     r"network_g \(ETDSNet\): unknown key\(s\) 'num_blocks' \(did you mean 'num_block'"),
])
def test_a_misspelt_key_names_itself_and_the_closest_known_one(yml, dotted, typo, message):
    opt = _misspell(_load(yml), dotted, typo)
    with pytest.raises(OptionError, match=message):
        check_options(opt)


def test_a_misspelt_phase_hook_fails_at_parse_time_not_when_its_phase_ends():
    opt = _load('options/train/etds_m4c32_x4_demo.yml')
    last = opt['train']['phases'][-1]
    assert last['on_end'] == 'save_plain_model'
    last['on_end'] = 'save_plain_modle'
    with pytest.raises(ValueError, match=r"train.phases\[1\] \(joint\).on_end: 'save_plain_modle' is not a phase hook "
                                         r"of this model; its hooks: \['save_plain_model'\]"):
        check_options(opt)


def test_total_iter_that_disagrees_with_the_phases_is_refused():
    opt = _load('options/train/pcsr_carn_x4_demo.yml')
    opt['train']['total_iter'] = 1000
    with pytest.raises(OptionError, match=r'train.total_iter = 1000 does not match the sum of train.phases iters '
                                          r'\(900\)'):
        check_options(opt)


def test_declared_defaults_fill_what_the_yaml_leaves_out():
    from basicsr.utils.registry import MODEL_REGISTRY
    from adaptsr.core.options import resolved
    ape = MODEL_REGISTRY.get('APEModel')
    val = resolved({'val': {'exit_threshold': 0.9}}, ape, 'val')
    assert (val['exit_threshold'], val['tile_size'], val['tile_overlap'], val['tile_batch']) == (0.9, 48, 2, 500)
    assert val['crop_mode'] == 'none' and val['cost'] is True and val['save_img'] is False
    assert resolved({'train': {'smsr': {'tau_min': 0.5}}}, MODEL_REGISTRY.get('SMSRModel'), 'smsr')['tau_epochs'] == 500


def test_train_py_refuses_a_typo_before_making_an_experiment_folder(tmp_path):
    opt = _load('options/train/pcsr_carn_x4_demo.yml')
    opt['val']['refien'] = False
    path = write_yaml(tmp_path / 'typo.yml', opt)
    shutil.copy(osp.join(ROOT, 'train.py'), tmp_path / 'train.py')  # the experiment root is the script's folder
    with pytest.raises(AssertionError, match=r"val \(PCSRModel\): unknown key\(s\) 'refien' \(did you mean 'refine'"):
        run_script([str(tmp_path / 'train.py'), '-opt', path], cwd=str(tmp_path), env={'PYTHONPATH': ROOT})
    assert not os.path.exists(tmp_path / 'experiments') and not os.path.exists(tmp_path / 'tb_logger')


SHIPPED = sorted(glob.glob(osp.join(ROOT, 'options', 'train', '*.yml')) +
                 glob.glob(osp.join(ROOT, 'options', 'test', '*.yml')))


@pytest.mark.parametrize('path', SHIPPED, ids=lambda p: osp.relpath(p, osp.join(ROOT, 'options')))
def test_every_shipped_options_file_passes_the_checks_and_builds_its_networks(path):
    """Each options file of the repository: known keys and knob ranges (the parse-time checks), and every
    ``network_*`` (and ``network_refs`` entry) builds with its options."""
    import yaml
    from basicsr.utils.options import ordered_yaml
    from basicsr.utils.registry import ARCH_REGISTRY
    from adaptsr.core.options import check_options, default_env
    default_env(ROOT)
    with open(path) as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    opt['is_train'] = '/options/train/' in path
    check_options(opt)
    nets = [v for k, v in opt.items() if k.startswith('network_') and k != 'network_refs' and isinstance(v, dict)]
    nets += [entry['network'] for entry in (opt.get('network_refs') or {}).values()]
    assert nets, path
    for net in nets:
        kwargs = dict(net)
        ARCH_REGISTRY.get(kwargs.pop('type'))(**kwargs)
