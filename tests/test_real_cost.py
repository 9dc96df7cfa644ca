"""Real cost (``flops_real``: 2 x the multiply-adds that actually ran) beside each paper's convention, and the
cross-method comparison bench (``adaptsr-bench --compare``).

Networks are small and seeded, inputs a real photograph (scikit-image's), so the suite needs no shared files; the
SMSR kernel check uses the official SMSR file where the shared weights are present.
"""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.utils.registry import ARCH_REGISTRY

import adaptsr  # noqa: F401
from adaptsr.core.cost import count_flops, real_flops_counting, run_inference

#: dense archs (small configurations) whose real count is cross-checked against this package's own hook counter
DENSE = {
    'ETDSPlain': {'num_block': 2, 'num_feat': 8, 'upscale': 3},
    'ECBSRPlain': {'num_block': 2, 'num_feat': 8, 'upscale': 4},
    'ESPCN': {'upscale': 3},
    'FSRCNN': {'upscale': 4},
    'ABPNNet': {'num_block': 2, 'num_feat': 8, 'upscale': 2},
    'PCSRCARN': {'num_feat': 16, 'upscale': 4},
    'PCSRFSRCNN': {'upscale': 4},
    'BicubicSR': {'upscale': 4},
}


def _photo(h=20, w=24):
    from skimage import data
    img = cv2.resize(data.astronaut()[40:240, 150:390], (w, h), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].float() / 255


def _net(arch, **kwargs):
    torch.manual_seed(0)
    return ARCH_REGISTRY.get(arch)(**kwargs).eval()


@pytest.mark.parametrize('arch', sorted(DENSE))
def test_real_flops_of_dense_forwards_equal_the_hook_count(arch):
    """torch's FlopCounterMode (the real-cost counter, around the call) = the hook counter's plain 2 x MAC count
    (convolutions, transposed ones per input pixel, matrix products; no norm/PReLU) within 1%, per arch."""
    net = _net(arch, **DENSE[arch])
    x = _photo()
    _, cost = run_inference(net, x)
    if arch == 'BicubicSR':
        assert cost['flops_real'] == 0
        return
    hooks = count_flops(net, x, norm_layers=False, transposed='input')
    assert hooks > 0 and abs(cost['flops_real'] - hooks) <= 0.01 * hooks, arch
    with real_flops_counting(False):  # cached per input shape: reported without counting again
        assert run_inference(net, x)[1]['flops_real'] == cost['flops_real']


def test_ecbsr_cost_at_a_new_size_is_its_plain_form_counted_at_that_size():
    """BasicSR's training-form ECBSR is costed as its re-parameterised plain net, from small probes (no second forward
    at the image's size): exactly the hook count of the plain net at that size, per image of the batch."""
    from adaptsr.methods.baselines.ecbsr_arch import ecbsr_train_to_plain
    net = _net('ECBSR', num_in_ch=3, num_out_ch=3, num_block=2, num_channel=8, with_idt=False, act_type='prelu',
               scale=4)
    x = torch.cat([_photo(29, 37)] * 2)
    _, cost = run_inference(net, x)
    assert cost['flops'] == 2 * count_flops(ecbsr_train_to_plain(net), x[:1])


def test_fsrcnn_paper_convention_counts_the_transposed_conv_at_every_hr_pixel():
    """FSRCNN x4: the papers' convention counts the 9x9 transposed conv at each HR pixel (16x its real work)."""
    net = _net('FSRCNN', upscale=4)
    x = _photo()
    _, cost = run_inference(net, x)
    deconv = next(m for m in net.modules() if isinstance(m, torch.nn.ConvTranspose2d))
    real_deconv = 2 * 81 * deconv.in_channels * deconv.out_channels * 20 * 24
    hooks = count_flops(net, x, norm_layers=False, transposed='output')
    assert hooks - cost['flops_real'] == 15 * real_deconv  # 16 - 1 times the deconv's real count
    assert cost['flops'] > 5 * cost['flops_real']


def test_pcsr_real_flops_follow_the_rows_each_upsampler_ran():
    """PCSR's real count grows linearly with the HR pixels sent to the heavy MLP (rows as run) while both
    upsamplers run (each also has a per-LR-pixel part of its first layer, run once when it has any pixel), by less
    than a heavy row minus a light row of the full MLPs, and differs from the paper's count."""
    net = _net('PCSRNet', encoder='carn', encoder_opt={'num_feat': 16}, heavy_hidden=[32, 32], light_hidden=[8],
               cls_hidden=[8], upscale=4)
    with torch.no_grad():  # spread the classifier's logits, so that the knob moves pixels a few at a time
        net.classifier.imnet.layers[-1].bias.copy_(torch.tensor([0.0, 0.0]))
        net.classifier.imnet.layers[-1].weight.mul_(50)
    x = _photo()
    points = []
    for k in np.linspace(-20, 20, 41):
        _, cost = run_inference(net, x, k=float(k), refine=False)
        if 0 < cost['heavy_px'] < cost['hr_pixels']:
            points.append((cost['heavy_px'], cost['flops_real'], cost['flops']))
    heavy = np.array([p[0] for p in points], float)
    real = np.array([p[1] for p in points], float)
    assert len(set(heavy)) >= 3  # the knob moved pixels between the upsamplers
    slope = np.polyfit(heavy, real, 1)[0]
    assert np.allclose(real, np.polyval(np.polyfit(heavy, real, 1), heavy), rtol=1e-9, atol=1)  # linear in rows
    from adaptsr.core.cost import mlp_flops_per_row
    per_row = mlp_flops_per_row(net.heavy_sampler.imnet.layers) - mlp_flops_per_row(net.light_sampler.imnet.layers)
    assert 0 < slope <= per_row
    assert all(p[1] != p[2] for p in points)


def test_smsr_sparse_kernel_reports_the_work_the_counter_cannot_see():
    """SMSR x2 (official file, a real photo): the compiled sparse kernel's multiply-adds (``flops_custom``) make
    the real count equal to the torch sparse path's, which the counter sees (gathers and matrix products), within
    1%; both below the dense count."""
    from adaptsr.methods.smsr.sparse_conv import load_kernel
    path = osp.join(os.environ.get('ADAPTSR_WEIGHTS', ''), 'SMSR', 'SMSR_x2_model_1000.pt')
    if not osp.isfile(path):
        pytest.skip('official SMSR weights not found (ADAPTSR_WEIGHTS)')
    if load_kernel() is None:
        pytest.skip('the SMSR sparse kernel is not available here')
    from adaptsr.methods.smsr.smsr_arch import SMSRNet
    from adaptsr.core.checkpoint_io import load_checkpoint
    net = SMSRNet(upscale=2)
    net.load_state_dict(load_checkpoint(path), strict=True)
    net.eval()
    net.sparse_max_density = 1.0  # every module on the sparse path
    x = _photo(40, 48)
    net.sparse_kernel = True
    _, kernel_cost = run_inference(net, x)
    net.sparse_kernel = False
    _, torch_cost = run_inference(net, x)
    assert abs(kernel_cost['flops_real'] - torch_cost['flops_real']) <= 0.01 * torch_cost['flops_real']
    assert kernel_cost['flops_real'] < kernel_cost['flops_full']


# ------------------------------------------------------------------------------------------------ compare bench
@pytest.fixture(scope='module')
def compare_setup(tmp_path_factory):
    """Two LR/HR photo pairs (x4, EDSR naming) and two seeded checkpoints (ETDS plain, PCSR)."""
    from basicsr.utils.matlab_functions import imresize
    from skimage import data
    root = tmp_path_factory.mktemp('compare')
    for d in ('HR', 'LR'):
        (root / d).mkdir()
    for i, img in enumerate((data.astronaut(), data.chelsea())):
        hr = img[:96, :128, ::-1]
        cv2.imwrite(str(root / 'HR' / f'img_{i}.png'), hr)
        lr = np.clip(imresize(hr.astype(np.float32) / 255, 0.25), 0, 1)
        cv2.imwrite(str(root / 'LR' / f'img_{i}x4.png'), (lr * 255).round().astype(np.uint8))
    etds = _net('ETDSPlain', num_block=2, num_feat=8, upscale=4)
    torch.save({'params': etds.state_dict()}, str(root / 'etds.pth'))
    pcsr = _net('PCSRNet', encoder='carn', encoder_opt={'num_feat': 16}, heavy_hidden=[16, 16], light_hidden=[8],
                cls_hidden=[8], upscale=4)
    torch.save({'params': pcsr.state_dict()}, str(root / 'pcsr.pth'))
    return root


def test_compare_bench_rows_fronts_and_plot(compare_setup, tmp_path):
    from adaptsr.cli.bench import main as bench_main
    root = compare_setup
    spec = {'scale': 4, 'threads': 1, 'memory': False,
            'datasets': {'pair': {'lr': str(root / 'LR'), 'hr': str(root / 'HR')}},
            'models': {'bicubic': {'args': ['--model', 'bicubic']},
                       'etds': {'args': ['--model', str(root / 'etds.pth')]},
                       'pcsr': {'args': ['--model', str(root / 'pcsr.pth')],
                                'sweep': {'k0': ['--k', '0'], 'k4': ['--k', '4']}}}}
    path = tmp_path / 'spec.yml'
    path.write_text(yaml.safe_dump(spec))
    out = str(tmp_path / 'cmp.json')
    bench_main(['--compare', str(path), '--json', out])
    rows = json.load(open(out))['rows']
    assert [(r['model'], r['budget']) for r in rows] == [('bicubic', '-'), ('etds', '-'), ('pcsr', 'k0'),
                                                          ('pcsr', 'k4')]
    by = {(r['model'], r['budget']): r for r in rows}
    assert by[('bicubic', '-')]['gflops_real'] == 0 and by[('bicubic', '-')]['front_gflops_real']
    assert by[('etds', '-')]['gflops_real'] == pytest.approx(by[('etds', '-')]['gflops'], rel=1e-6)
    assert by[('pcsr', 'k4')]['gflops_real'] < by[('pcsr', 'k0')]['gflops_real'] < by[('pcsr', 'k0')]['gflops']
    assert all(r['images'] == 2 and np.isfinite(r['psnr_y']) and r['sec_median'] > 0 for r in rows)
    best = max(rows, key=lambda r: r['psnr_y'])  # the best PSNR is on every front
    assert best['front_seconds'] and best['front_gflops_real']
    assert osp.getsize(str(tmp_path / 'cmp.png')) > 0 and osp.getsize(str(tmp_path / 'cmp.csv')) > 0
    with pytest.raises(SystemExit):  # never replaced without --overwrite
        bench_main(['--compare', str(path), '--json', out])


def test_compare_spec_errors_name_the_key(compare_setup, tmp_path):
    from adaptsr.bench.compare import load_spec
    path = tmp_path / 'bad.yml'
    path.write_text(yaml.safe_dump({'scale': 4, 'datasets': {}, 'models': {'m': {'argz': []}}}))
    with pytest.raises(ValueError, match=r'models\.m: .*unknown \[.argz.\]'):
        load_spec(str(path))
    path.write_text(yaml.safe_dump({'scale': 4, 'datasets': {}, 'models': {}, 'thread': 2}))
    with pytest.raises(ValueError, match="unknown keys \\['thread'\\]"):
        load_spec(str(path))


@pytest.mark.parametrize('spec', sorted(f for f in os.listdir(osp.join(osp.dirname(__file__), '..', 'options',
                                                                         'compare')) if f.endswith('.yml')))
def test_shipped_compare_specs_parse(spec, monkeypatch):
    """Every shipped compare spec passes the key checks and names at least two configurations per dataset."""
    from adaptsr.bench.compare import configurations, load_spec
    monkeypatch.setenv('ADAPTSR_BENCHMARK', '/bench')
    monkeypatch.setenv('ADAPTSR_WEIGHTS', '/weights')
    loaded = load_spec(osp.join(osp.dirname(__file__), '..', 'options', 'compare', spec))
    assert len(configurations(loaded)) >= 2 and loaded['datasets']
    assert all(d['lr'].startswith('/bench/') for d in loaded['datasets'].values())
