"""``adaptsr-bench`` on every shipped test options file: exit 0 and a row per configuration, scored with the YAML's own
``val.metrics`` under their own names (a new YAML is covered by itself).

Each YAML runs on its first dataset's first image, cropped to a 48x48 LR corner (and its HR), so that the deep APE
backbones fit; those with over 5M parameters (the full EDSR and RCAN) run in the slow suite. The memory probe is
left out (``--no_memory``). A checkpoint the YAML
names that is not here (a model trained by a recipe, an unreleased official file) is replaced by seeded random
weights (``allow_random_weights``): the figures are then meaningless, the path through the bench is the same. A CABM
YAML without its table gets one built from its network on the same crop.
"""
import glob
import json
import os
import os.path as osp

import cv2
import pytest
import yaml

from adaptsr.core.options import locate
from conftest import BENCHMARK, ROOT, require

TEST_YAMLS = sorted(glob.glob(osp.join(ROOT, 'options', 'test', '*.yml')))
LR_SIDE = 48
#: a network with more parameters than this (the full EDSR and RCAN backbones of APE) runs in the slow suite
SLOW_PARAMS = 5e6


def _cases():
    """Every test YAML, the ones with a large network marked slow (its size read on the meta device)."""
    import torch
    from basicsr.archs import build_network
    import adaptsr  # noqa: F401  (registrations)
    cases = []
    for path in TEST_YAMLS:
        with open(path) as f:
            network = yaml.safe_load(f)['network_g']
        with torch.device('meta'):
            params = sum(p.numel() for p in build_network(dict(network)).parameters())
        cases.append(pytest.param(path, id=osp.basename(path),
                                  marks=[pytest.mark.slow] if params > SLOW_PARAMS else []))
    return cases


def _expand(path, demo_data):
    if path.startswith('datasets/demo'):
        return osp.join(demo_data, path[len('datasets/demo/'):])
    path = locate('dataroot', path)  # the default layout under ADAPTSR_*, as adaptsr-bench reads it
    return path if osp.isabs(path) else osp.join(ROOT, path)


def _missing(path):
    return bool(path) and not osp.exists(locate('path', path))


def _crop_first_pair(dopt, scale, out_dir):
    """The dataset's first (LR, HR) pair, cropped to the top-left LR_SIDE LR pixels, under the same file names."""
    from basicsr.data import build_dataset
    item = build_dataset(dict(dopt, phase='test', scale=scale))[0]
    hr_dir, lr_dir = osp.join(out_dir, 'HR'), osp.join(out_dir, 'LR')
    os.makedirs(hr_dir)
    os.makedirs(lr_dir)
    side = LR_SIDE * scale
    hr = cv2.imread(item['gt_path'], cv2.IMREAD_UNCHANGED)[:side, :side]
    cv2.imwrite(osp.join(hr_dir, osp.basename(item['gt_path'])), hr)
    if item['lq_path'] != item['gt_path']:
        lr = cv2.imread(item['lq_path'], cv2.IMREAD_UNCHANGED)[:LR_SIDE, :LR_SIDE]
        cv2.imwrite(osp.join(lr_dir, osp.basename(item['lq_path'])), lr)
    return hr_dir, lr_dir


@pytest.mark.parametrize('yml', _cases())
def test_bench_runs_every_shipped_test_yaml_with_its_own_metrics(tmp_path, yml, demo_data):
    from adaptsr.cli.bench import main
    require(osp.join(BENCHMARK, 'Set5'))
    with open(yml) as f:
        opt = yaml.safe_load(f)
    scale = opt['scale']
    first = sorted(opt['datasets'])[0]
    dopt = opt['datasets'][first]
    for key in [k for k in dopt if k.startswith('dataroot')]:
        dopt[key] = _expand(dopt[key], demo_data)
    dopt['dataroot_gt'], lr_dir = _crop_first_pair(dopt, scale, str(tmp_path / 'data'))
    if 'dataroot_lq' in dopt:
        dopt['dataroot_lq'] = lr_dir
    opt['datasets'] = {first: dopt}
    for key in ('pretrain_network_g', 'pretrain_network_ref'):
        if _missing(opt['path'].get(key)):
            opt['path'][key] = None
            opt['allow_random_weights'] = True
    for entry in (opt.get('network_refs') or {}).values():
        if _missing(entry.get('pretrain')):
            entry.update(pretrain=None, allow_random_weights=True)
    if _missing(opt['path'].get('cabm_lut')):
        import torch
        from basicsr.archs import build_network
        from adaptsr.methods.cabm.bitmap import build_table
        torch.manual_seed(0)
        net = build_network(dict(opt['network_g'], mode='cadyq'))
        table = build_table(net, lr_dir, tile_size=LR_SIDE, step=LR_SIDE - 2, min_tiles=1)
        opt['path']['cabm_lut'] = str(tmp_path / 'cabm_lut.json')
        table.save(opt['path']['cabm_lut'])
    path = tmp_path / osp.basename(yml)
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    out = tmp_path / 'bench.json'
    main(['-opt', str(path), '--json', str(out), '--no_memory', '--threads', '2'], root=str(tmp_path))
    rows = json.loads(out.read_text())['rows']
    budgets = opt['val'].get('budget_sweep') or [None]
    refs = int(opt.get('network_ref') is not None) + len(opt.get('network_refs') or {})
    assert len(rows) >= len(budgets) + refs
    metrics = list(opt['val']['metrics'])
    for row in rows:
        assert row['dataset'] == dopt['name'] and row['images'] == 1
        assert all(isinstance(row[m], float) for m in metrics), (metrics, row)
        assert row['sec_median'] > 0 and row['gflops'] >= 0
    assert (tmp_path / 'bench.csv').exists() and (tmp_path / 'bench.png').exists()


def test_the_bench_takes_the_first_images_by_name_not_in_the_file_systems_order():
    """``adaptsr-bench -opt ... --max-images N`` measures the first N images by name: BasicSR lists a folder in the
    file system's order (on Urban100 here: img_094, img_077, ...), which differs between machines."""
    import adaptsr  # noqa: F401  (BasicSR's import shim, registrations)
    from adaptsr.bench.options_file import iter_images
    from basicsr.data.data_util import paired_paths_from_folder
    lr_dir, hr_dir = require(osp.join(BENCHMARK, 'Urban100/LR_bicubic/X4')), require(osp.join(BENCHMARK, 'Urban100/HR'))
    opt = {'name': 'Urban100', 'type': 'PairedImageDataset', 'dataroot_gt': hr_dir, 'dataroot_lq': lr_dir,
           'filename_tmpl': '{}x4', 'io_backend': {'type': 'disk'}, 'phase': 'val', 'scale': 4}
    listed = [osp.basename(p['lq_path']) for p in paired_paths_from_folder([lr_dir, hr_dir], ['lq', 'gt'], '{}x4')]
    names = [item['name'] for item in iter_images(opt, 3)]
    assert names == ['img_001x4', 'img_002x4', 'img_003x4']
    assert len(listed) == 100 and sorted(listed)[:3] == [n + '.png' for n in names]
