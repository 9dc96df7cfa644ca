"""PCSR arch: official weights, equivalences of the fast path, decision rules, refinement, cost model."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F

from adaptsr.methods.baselines.carn_arch import PCSRCARN
from adaptsr.methods.baselines.fsrcnn_arch import PCSRFSRCNN
from adaptsr.methods.pcsr.pcsr_arch import (PCSRNet, adm_heavy_mask, image_to_rows, liif_query, make_coord,
                                     refine_light_pixels, rows_to_image, subpixel_codes)
from adaptsr.core.checkpoint_io import load_checkpoint
from adaptsr.methods.pcsr.formats import convert_carn_m, convert_pcsr
from adaptsr.core.cost import FlopCounter, count_flops, torch_flop_counter
from conftest import BENCHMARK, read_rgb, require


def test_official_checkpoints_load_strictly(weights):
    ck = convert_pcsr(load_checkpoint(require(osp.join(weights, 'PCSR/carn-pcsr-phase1/iter_last.pth'))))
    assert len(ck['params']) == 116
    assert sum(v.numel() for v in ck['params'].values()) == 170230
    PCSRNet(encoder='carn').load_state_dict(ck['params'], strict=True)
    ck = convert_pcsr(load_checkpoint(require(osp.join(weights, 'PCSR/carn-x4/iter_last.pth'))))
    assert len(ck['params']) == 98
    PCSRCARN().load_state_dict(ck['params'], strict=True)


def test_carn_m_converts_and_beats_bicubic(weights):
    """Official multi-scale CARN-M -> PCSRCARN x4 strictly; PSNR-Y on Set5 near CARN-M's published 31.92 dB."""
    from basicsr.metrics import calculate_psnr
    from basicsr.utils import tensor2img
    sd = load_checkpoint(require(osp.join(weights, 'CARN/carn_m.pth')))
    ck = convert_carn_m(sd, scale=4)
    net = PCSRCARN()
    net.load_state_dict(ck['params'], strict=True)
    net.eval()
    psnrs = []
    for name in ('baby', 'bird', 'butterfly', 'head', 'woman'):
        lq = read_rgb(require(osp.join(BENCHMARK, f'Set5/LR_bicubic/X4/{name}x4.png')))
        hr = read_rgb(osp.join(BENCHMARK, f'Set5/HR/{name}.png'))[..., :lq.shape[-2] * 4, :lq.shape[-1] * 4]
        with torch.no_grad():
            sr = net(lq)
        psnrs.append(calculate_psnr(tensor2img([sr]), tensor2img([hr]), crop_border=4, test_y_channel=True))
    assert abs(sum(psnrs) / 5 - 31.92) < 0.1


@pytest.mark.parametrize('encoder,table', [
    ('fsrcnn', {2: [0.1707, 0.8293], 3: [0.1145, 0.8855], 4: [0.0900, 0.9100]}),
    ('carn', {2: [0.4325, 0.5675], 3: [0.3739, 0.6261], 4: [0.3188, 0.6812]}),
    ('srresnet', {2: [0.4219, 0.5781], 3: [0.3560, 0.6440], 4: [0.2955, 0.7045]}),
])
def test_cost_list_matches_paper(encoder, table):
    for scale, expected in table.items():
        got = PCSRNet(encoder=encoder, upscale=scale).cost_list()
        assert got == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize('encoder,consts,original', [
    ('fsrcnn', (19992, 208, 1500, 26564), (PCSRFSRCNN, {}, 457048)),
    ('carn', (466440, 1360, 3960, 41588), (PCSRCARN, {}, 1129344)),
    ('srresnet', (1940796, 3360, 11600, 195500), ('MSRResNet', dict(num_feat=64, num_block=16, upscale=4), 5072256)),
])
def test_per_pixel_flops_match_paper(encoder, consts, original):
    from basicsr.utils.registry import ARCH_REGISTRY
    f = PCSRNet(encoder=encoder).per_pixel_flops()
    assert (f['encoder'], f['classifier'], f['light'], f['heavy']) == consts
    cls, kwargs, per_px = original
    net = ARCH_REGISTRY.get(cls)(**kwargs) if isinstance(cls, str) else cls(**kwargs)
    assert count_flops(net, torch.zeros(1, 3, 16, 16)) == per_px * 256


def test_fast_path_equals_literal_liif_query():
    torch.manual_seed(0)
    net = PCSRNet(encoder='carn').eval()
    lq = torch.rand(2, 3, 13, 11)
    with torch.no_grad():
        for sampler in ('heavy', 'light'):
            dense = net._finish(net._dense(getattr(net, f'{sampler}_sampler'), net._prepare(lq)[1]).reshape(-1, 3),
                                lq - net.rgb_mean, (2, 13, 11))
            ref = net.forward_reference(lq, sampler)
            assert (dense - ref).abs().max() < 1e-5


def test_nearest_gather_and_bilinear_residual_equivalences():
    torch.manual_seed(0)
    h, w, s = 7, 9, 4
    feat = torch.randn(1, 5, h, w)
    coord = make_coord((h * s, w * s)).reshape(1, -1, 2)
    z = F.grid_sample(feat, coord.flip(-1).unsqueeze(1), mode='nearest', align_corners=False)[:, :, 0]
    idx_i = torch.arange(h * s).repeat_interleave(w * s) // s
    idx_j = torch.arange(w * s).repeat(h * s) // s
    assert torch.equal(z[0], feat[0][:, idx_i, idx_j])
    # rel_coord / rel_cell of the literal query == the s*s sub-pixel codes
    codes = subpixel_codes(s)
    assert torch.allclose(codes[:, 0].unique(), torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    assert torch.allclose(codes[:, 2], torch.full((s * s, ), 0.5))
    lr = torch.rand(1, 3, h, w)
    gs = F.grid_sample(lr, coord.flip(-1).unsqueeze(1), mode='bilinear', padding_mode='border',
                       align_corners=False)[:, :, 0].reshape(1, 3, h * s, w * s)
    up = F.interpolate(lr, (h * s, w * s), mode='bilinear', align_corners=False)
    assert (gs - up).abs().max() < 1e-5
    rows = torch.randn(2 * h * w * s * s, 3)
    assert torch.equal(image_to_rows(rows_to_image(rows, 2, h, w, s), s), rows)


def test_k_rule_equals_official_argmax_rule():
    """decide() (heavy iff l1 - l0 > k ln(c1/c0)) == the official ``argmax_j p_j / c_j^k``, ties to light."""
    torch.manual_seed(0)
    net = PCSRNet(encoder='carn')
    c0, c1 = net.cost_list()
    logits = torch.randn(5000, 16, 2) * 3
    prob = torch.softmax(logits.double(), -1)
    for k in (-25, -1, 0, 0.5, 1, 2):
        mask = net.decide(logits[..., 1] - logits[..., 0], k=k, adaptive=False)
        score = prob / torch.tensor([c0, c1], dtype=torch.float64).pow(k)
        official = score[..., 1] > score[..., 0]
        assert (mask != official).float().mean() < 1e-3  # only float ties at the threshold may differ
    assert net.decide(torch.tensor([0.0]), k=0).item() is False  # p1 == p0: light


def test_all_heavy_equals_heavy_path_and_k_minus_25(pcsr_official):
    """A phase-0 model (every pixel heavy) equals the dense heavy path; k = -25 sends >= 99.9% to heavy."""
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set14/LR_bicubic/X4/baboonx4.png')))[..., :60, :70]
    net = pcsr_official
    with torch.no_grad():
        heavy = net.forward_heavy(lq)
        c0, c1 = net.cost_list()
        net_all = PCSRNet(encoder='carn').eval()
        net_all.load_state_dict(net.state_dict())
        net_all.decide = lambda logit, k=None, adaptive=None, n_images=1: torch.ones_like(logit, dtype=torch.bool)
        sr, cost = net_all.infer(lq, refine=False)
        assert cost['trace']['heavy_map'].all() and torch.equal(sr, heavy)
        assert cost['heavy_px'] == cost['hr_pixels'] == sr[0, 0].numel()
        assert cost['flops'] == pytest.approx(cost['flops_full'] + net.per_pixel_flops()['classifier'] *
                                              sr[0, 0].numel())
        sr25, cost25 = net.infer(lq, k=-25, refine=False)
        hmap25 = cost25['trace']['heavy_map']
        assert hmap25.float().mean() >= 0.999
        # without refinement every heavy pixel is the dense heavy path's pixel
        assert ((sr25 - heavy).abs() * hmap25).max() < 1e-5


def test_adm_semantics_and_flat_input():
    torch.manual_seed(0)
    p = torch.cat([torch.rand(6000) * 0.3, 0.7 + torch.rand(4000) * 0.3])
    mask = adm_heavy_mask(p)
    assert torch.equal(mask, p > 0.5)  # well separated clusters: the cut falls in the gap
    assert not adm_heavy_mask(torch.full((100, ), 0.3)).any()
    # reference semantics: Lloyd from {mean, 0}, labels of the last assignment, heavy = not argmin's cluster
    p = torch.sigmoid(torch.randn(20000) * 2)
    d = (p - p.min()) / (p.max() - p.min())
    c = [d.mean().item(), 0.0]
    for _ in range(20):
        lab = (d - c[1]).abs() < (d - c[0]).abs()
        new = [d[~lab].mean().item(), d[lab].mean().item()]
        shift = (new[0] - c[0])**2 + (new[1] - c[1])**2
        c = new
        if shift < 1e-4:
            break
    ref = lab != lab[torch.argmin(d)]
    assert (adm_heavy_mask(p) != ref).sum() <= 2


def test_adaptive_on_flat_image(pcsr_official):
    """A flat image does not crash ADM (the official code asserts max > min) and stays flat after SR.

    Its p(heavy) map is not exactly constant (sub-pixel codes, border padding), so ADM still splits it; an exactly
    constant map gives all light (test_adm_semantics_and_flat_input)."""
    lq = torch.full((1, 3, 24, 20), 0.5)
    sr, cost = pcsr_official.infer(lq, adaptive=True)
    assert torch.isfinite(sr).all() and (sr - 0.5).abs().max() < 0.02
    assert cost['flops'] < cost['flops_full'] + 1360 * sr[0, 0].numel()


def test_refinement_rule():
    pred = torch.arange(1 * 1 * 6 * 7, dtype=torch.float32).reshape(1, 1, 6, 7) ** 1.5
    heavy = torch.zeros(1, 1, 6, 7, dtype=torch.bool)
    heavy[0, 0, 2, 3] = True
    heavy[0, 0, 0, 6] = True
    out = refine_light_pixels(pred, heavy)
    changed = out != pred
    expected = torch.zeros_like(changed)
    expected[0, 0, 1:4, 2:5] = True      # 3x3 around (2, 3) ...
    expected[0, 0, 2, 3] = False         # ... except the heavy pixel itself
    expected[0, 0, 1, 5] = True          # neighbour of (0, 6) that is not on the border
    assert torch.equal(changed, expected)
    box = F.avg_pool2d(F.pad(pred, (1, 1, 1, 1), mode='replicate'), 3, 1)
    assert torch.allclose(out[changed], box[changed])


def test_analytic_flops_equal_hook_counter_on_selective_execution(pcsr_official):
    """Analytic E*hw + C*HW + L*n_light + Hv*n_heavy == module hooks over the literal per-pixel execution."""
    net = pcsr_official
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X4/birdx4.png')))[..., :40, :36]
    for kwargs in ({'k': 0.0}, {'adaptive': True}):
        with torch.no_grad():
            _, cost = net.infer(lq, refine=False, **kwargs)
        hmap, analytic = cost['trace']['heavy_map'], cost['flops']
        n, _, h, w = lq.shape
        coord = make_coord((h * 4, w * 4)).reshape(1, -1, 2)
        cell = torch.full_like(coord, 2 / (h * 4))
        cell[..., 1] = 2 / (w * 4)
        flat = hmap.reshape(-1)
        with torch.no_grad(), FlopCounter(net) as counter:
            feat = net.encoder(lq - net.rgb_mean)
            liif_query(net.classifier, feat, coord, cell)
            liif_query(net.heavy_sampler, feat, coord[:, flat], cell[:, flat])
            liif_query(net.light_sampler, feat, coord[:, ~flat], cell[:, ~flat])
        assert counter.total == analytic


def test_counter_agrees_with_torch_flop_counter_on_dense_forward(pcsr_official, carn_official):
    lq = torch.rand(1, 3, 20, 24)
    for fn, model in ((lambda: pcsr_official.forward_reference(lq, 'heavy'), pcsr_official),
                      (lambda: carn_official(lq), carn_official)):
        with torch.no_grad():
            with torch_flop_counter() as mode:
                fn()
            with FlopCounter(model, norm_layers=False, transposed='input') as ours:
                fn()
            with FlopCounter(model) as paper:
                fn()
        assert ours.total == mode.get_total_flops()
        bn = sum(2 * m.num_features for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)) * 20 * 24
        assert paper.total - ours.total == bn
    # FSRCNN's transposed tail: the papers' count uses output pixels, torch (and true MACs) input pixels
    fsr = PCSRFSRCNN()
    with torch.no_grad(), torch_flop_counter() as mode:
        fsr(lq)
    assert count_flops(fsr, lq, norm_layers=False, transposed='input') == mode.get_total_flops()
