"""CABM: quantisers, bit selectors, key layout, edge score, lookup table, BitOPs, phase switching, the whole recipe."""
import io
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from adaptsr.methods.cabm.cabm_arch import CABMEDSR, CABMNet
from adaptsr.methods.cabm.bitmap import EdgeBitTable, build_table, edge_score
from adaptsr.methods.cabm.quant import ActQuant, quantize_weight
from conftest import BENCHMARK, ROOT, WEIGHTS, read_rgb, require


def test_weight_quantisation_is_8bit_max_abs_with_straight_through_gradient():
    w = torch.tensor([-1.0, 0.5, 0.26, 1e-3], requires_grad=True)
    q = quantize_weight(w, 8)
    assert torch.allclose(q * 127 / (1.0 + 1e-8), torch.tensor([-127., 64., 33., 0.]), atol=1e-4)
    q.sum().backward()
    assert torch.equal(w.grad, torch.ones(4))  # STE
    g = torch.randn(64, 64, 3, 3)
    assert len(torch.unique(quantize_weight(g, 8))) <= 255


@pytest.mark.parametrize('bits,levels', [(4, 7), (6, 31), (8, 127)])
def test_activation_levels_clip_and_gradients(bits, levels):
    quant = ActQuant(bits)
    quant.alpha.data.fill_(2.0)
    x = torch.linspace(-3, 3, 1001, requires_grad=True)
    y = quant(x)
    values = torch.unique(torch.round(y.detach() / 2.0 * levels))
    assert values.min() == -levels and values.max() == levels and len(values) == 2 * levels + 1
    (y * torch.linspace(0, 1, 1001)).sum().backward()
    inside = x.detach().abs() < 2.0
    assert torch.allclose(x.grad[inside], torch.linspace(0, 1, 1001)[inside])  # STE inside the clip
    assert (x.grad[~inside] == 0).all() and quant.alpha.grad.abs() > 0  # alpha learns through clip and scale


def test_alpha_initialisation_uses_the_batch_mean_of_per_sample_max():
    quant = ActQuant(8).train()
    x = torch.zeros(2, 3, 4, 4)
    x[0, 1, 2, 2], x[1, 0, 0, 0] = 6.0, -2.0
    quant.init_mode = True
    quant(x)
    assert float(quant.max_val) == 4.0 and float(quant.alpha) == 4.0
    quant.init_mode = False
    assert float(quant(x).max()) == 4.0  # learned mode clips at alpha


def test_cadyq_selector_starts_at_8_bits_and_its_bit_cost_has_gradient():
    torch.manual_seed(0)
    net = CABMEDSR(upscale=4, mode='cadyq')
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X4/birdx4.png')))[..., :24, :24]
    net(lq.repeat(2, 1, 1, 1))
    stats = net.last_stats
    assert stats['fab'].tolist() == [8.0, 8.0] and (stats['flags'] == 2).all()
    stats['weighted_bits'].sum().backward()
    assert net.body[0].bitsel1.net_small[0].weight.grad.abs().sum() > 0


def test_key_layout_equals_the_official_cadyq_state_dict():
    sd = CABMEDSR(upscale=4).state_dict()
    assert len(sd) == 16 * 22 + 14
    for i in (0, 15):
        for sel in (f'body.{i}.bitsel1', f'body.{i}.body.2'):
            for b in (1, 2, 3):
                assert sd[f'{sel}.quant_bit{b}.alpha'].shape == (1,) and sd[f'{sel}.quant_bit{b}.max_val'].shape == ()
            assert sd[f'{sel}.net_small.0.weight'].shape == (3, 66) and sd[f'{sel}.net_small.0.bias'].shape == (3,)
        assert sd[f'body.{i}.body.0.weight'].shape == sd[f'body.{i}.body.3.weight'].shape == (64, 64, 3, 3)
        assert sd[f'body.{i}.quant_act3.alpha'].shape == (1,)
    assert sd['tail.0.0.weight'].shape == sd['tail.0.2.weight'].shape == (256, 64, 3, 3)
    assert sd['tail.1.weight'].shape == (3, 64, 3, 3) and sd['body.16.weight'].shape == (64, 64, 3, 3)
    n = sum(v.numel() for k, v in CABMEDSR(upscale=4).named_parameters()
            if not any(t in k for t in ('alpha', 'net_small', 'mean')))
    assert n == 1517571


def test_edge_score_matches_the_spec_on_a_real_tile_and_never_modifies_the_input():
    lq = read_rgb(require(osp.join(BENCHMARK, 'Urban100/LR_bicubic/X4/img_001x4.png')))[..., :96, :96]
    before = lq.clone()
    assert abs(edge_score(lq) - 89.62) < 0.005
    assert abs(edge_score(lq, bug_compatible=True) - 9.10) < 0.005
    assert torch.equal(lq, before)
    delta = np.zeros((5, 5, 3), np.uint8)
    delta[2, 2] = 100  # gray 100: |laplacian| = 200 at the corners, 800 saturated at the centre
    assert edge_score(delta) == pytest.approx((4 * 200 + 255) / 25)
    assert edge_score(np.full((8, 8, 3), 40, np.uint8), bug_compatible=True) == 0.0  # no zero pixel


def _table(entries):
    table = EdgeBitTable((4, 6, 8), 4)
    for score, cfg in entries:
        table.add(score, cfg)
    return table.finalize()


def test_lookup_walks_down_filters_by_calibration_and_terminates(tmp_path):
    table = _table([(1.0, [2, 2, 2, 2]), (1.0, [0, 2, 2, 2]), (5.5, [0, 0, 0, 0]), (9.0, [1, 1, 1, 1])])
    assert table.lookup(5.57) == [0, 0, 0, 0]          # nearest populated bin below
    assert table.lookup(3.0) == [0, 2, 2, 2]           # walks down to 1.0, lowest FAB first
    assert table.lookup(3.0, select_bit=1) == [2, 2, 2, 2]
    assert table.lookup(9.3, calibration=6.0) == [0, 0, 0, 0]  # bin 9.0 has FAB 6.0, not below 6.0
    assert table.lookup(0.2) == [0, 2, 2, 2]           # no "0.0" bin: the nearest above, no endless loop
    assert table.lookup(3.0, calibration=4.0) == [2, 2, 2, 2]  # nothing below the ceiling: all 8-bit
    assert table.lookup(9.0, select_bit=2) in ([1, 1, 1, 1],)
    path = tmp_path / 'lut.json'
    table.save(str(path))
    with pytest.raises(FileExistsError):
        table.save(str(path))
    loaded = EdgeBitTable.load(str(path))
    assert loaded.table == table.table and json.load(open(path))['version'] == 1
    bad = json.load(open(path))
    bad['format'] = 'something'
    json.dump(bad, open(tmp_path / 'bad.json', 'w'))
    with pytest.raises(ValueError, match='not an adaptsr-cabm-lut file'):
        EdgeBitTable.load(str(tmp_path / 'bad.json'))


def test_table_build_on_real_tiles_records_scores_and_selector_bits(tmp_path):
    img = cv2.imread(require(osp.join(BENCHMARK, 'Set14/LR_bicubic/X4/baboonx4.png')))
    cv2.imwrite(str(tmp_path / 'baboon.png'), img[:60, :100])
    torch.manual_seed(0)
    net = CABMEDSR(upscale=4, mode='lut')
    table = build_table(net, str(tmp_path), tile_size=48, step=46, min_tiles=6)
    assert net.mode == 'lut' and table.meta['tiles'] == 6 and len(table) >= 1
    entry = next(iter(table.table.values()))[0]
    assert entry['bit_config'] == [2] * 32 and entry['FAB'] == 8.0  # CADyQ at init: all 8-bit
    # the same image from a BasicSR LMDB (e.g. the LR sub-images scripts/prepare_data.py writes) gives the same table
    from adaptsr.core.data_prep import AtomicLmdb
    writer = AtomicLmdb(str(tmp_path / 'lr.lmdb'))
    writer.put('baboon', img[:60, :100])
    writer.commit()
    from_lmdb = build_table(net, str(tmp_path / 'lr.lmdb'), tile_size=48, step=46, min_tiles=6)
    assert from_lmdb.table == table.table and from_lmdb.meta['images'] == 1


def test_bitops_follow_the_definition_at_720p():
    unquant, quant = CABMEDSR(upscale=4).macs_split(180, 320)
    assert abs((unquant + quant) / 1e9 - 114.2) < 0.05 and abs(quant / 1e9 - 67.9) < 0.05
    assert abs((unquant + 8 / 32 * 8 / 32 * quant) / 1e9 - 50.5) < 0.05
    assert abs((unquant + 8 / 32 * 5 / 32 * quant) / 1e9 - 48.9) < 0.05


def _model(tmp_path, phases, pretrain=None, network=None):
    from basicsr.models import build_model
    from conftest import model_options
    train = {'cabm': {'alpha_init_iters': 1, 'iters_per_epoch': 2}, 'optim_g': {'type': 'Adam', 'lr': 1e-4},
             'phases': phases}
    network = network or {'type': 'CABMEDSR', 'upscale': 4, 'num_block': 16, 'mode': 'fp'}
    return build_model(model_options(tmp_path, 'CABMModel', network, scale=4, is_train=True, pretrain=pretrain,
                                     train=train))


L1 = {'type': 'L1Loss', 'loss_weight': 255.0}


def test_phases_switch_modes_train_the_right_parameters_and_load_strictly(tmp_path):
    phases = [{'name': 'fp', 'cabm_mode': 'fp', 'iters': 1, 'losses': {'l1': L1}, 'on_end': 'save_phase_model'},
              {'name': 'pams', 'cabm_mode': 'pams', 'iters': 2, 'losses': {'l1': L1},
               'param_lrs': {'alpha': 1e-2}, 'on_end': 'snapshot_teacher'},
              {'name': 'cadyq', 'cabm_mode': 'cadyq', 'iters': 1, 'param_lrs': {'alpha': 1e-4, 'net_small': 1e-3},
               'losses': {'l1': L1, 'bit': {'type': 'CABMBitLoss'}, 'kd': {'type': 'CABMDistillLoss'}}}]
    model = _model(tmp_path, phases)
    net = model.net_g
    gt = read_rgb(require(osp.join(BENCHMARK, 'Set14/HR/baboon.png')))[..., :96, :96].repeat(2, 1, 1, 1)
    lq = read_rgb(osp.join(BENCHMARK, 'Set14/LR_bicubic/X4/baboonx4.png'))[..., :24, :24].repeat(2, 1, 1, 1)
    model.feed_data({'lq': lq, 'gt': gt})
    alpha = net.body[3].bitsel1.quant_bit3.alpha
    model.update_learning_rate(1)
    model.optimize_parameters(1)
    assert net.mode == 'fp' and alpha.grad is None and float(alpha) == 10.0  # quantisers unused in FP
    model.update_learning_rate(2)  # enters pams: alphas initialised from data in its first iteration
    model.optimize_parameters(2)
    max_val = float(net.body[3].bitsel1.quant_bit3.max_val)  # set from the batch, then one Adam step (lr 1e-2)
    assert net.mode == 'pams' and max_val > 20 and abs(float(alpha) - max_val) <= 0.0101
    assert [g['lr'] for g in model.optimizer_g.param_groups] == [1e-4, 1e-2]
    init_alpha = float(alpha)
    model.update_learning_rate(3)
    model.optimize_parameters(3)
    assert float(alpha) != init_alpha  # learned after the init iteration
    assert osp.exists(tmp_path / 'net_g_fp.pth')
    model.update_learning_rate(4)  # enters cadyq: teacher snapshot, 4/6-bit clips seeded from the 8-bit one
    sel = net.body[5].body[2]
    assert model.net_t is not None and model.net_t.mode == 'pams'
    assert not any(p.requires_grad for p in model.net_t.parameters())
    assert float(sel.quant_bit1.alpha) == float(sel.quant_bit3.alpha)
    model.optimize_parameters(4)
    assert {'l_l1', 'l_bit', 'l_kd', 'fab'} <= set(model.log_dict)
    assert sel.net_small[0].weight.grad is not None and sel.net_small[0].weight.grad.abs().sum() > 0
    for name in ('net_g_fp.pth', 'net_t_pams.pth'):  # every phase's file loads strictly into the same arch
        CABMEDSR(upscale=4).load_state_dict(torch.load(tmp_path / name, weights_only=True)['params'], strict=True)


def test_lut_mode_needs_a_table_and_flags():
    net = CABMEDSR(upscale=4, mode='lut')
    with pytest.raises(ValueError, match='set_bit_flags'):
        net(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r'bit flags must be \(N, 32\)'):
        net.set_bit_flags(torch.zeros(1, 31, dtype=torch.long))
    with pytest.raises(ValueError, match='mode must be one of'):
        net.set_mode('int4')
    with pytest.raises(ValueError, match='RGB'):
        CABMEDSR(upscale=4)(torch.rand(1, 1, 8, 8))


def test_registered_names():
    import adaptsr.archs  # noqa: F401
    import adaptsr.losses  # noqa: F401
    import adaptsr.models  # noqa: F401
    from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY
    assert 'CABMEDSR' in ARCH_REGISTRY and 'CABMModel' in MODEL_REGISTRY
    assert 'CABMBitLoss' in LOSS_REGISTRY and 'CABMDistillLoss' in LOSS_REGISTRY
    assert osp.exists(osp.join(ROOT, 'options/train/cabm_edsr_baseline_x4_demo.yml'))


ECBSR = {'type': 'ECBSRPlain', 'upscale': 4, 'num_block': 6, 'num_feat': 40, 'act_type': 'prelu'}
SRRESNET = {'type': 'MSRResNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'num_block': 16, 'upscale': 4}


def test_cabmnet_wraps_the_released_ecbsr_with_its_keys_and_its_exact_output(tmp_path):
    """The released full-precision ECBSR file loads strictly (quantiser keys filled from init) and CABMNet in fp mode
    reproduces ECBSRPlain bit for bit; PAMS w8a8 with data-initialised clips, before any training, is close."""
    from basicsr.utils.registry import ARCH_REGISTRY
    from adaptsr.core.checkpoint_io import load_checkpoint
    from adaptsr.core.checkpoints import checkpoint_state_dict
    path = require(osp.join(WEIGHTS, 'ECBSR/ECBSR_M6C40_x4.pth'))
    model = _model(tmp_path, [{'name': 'pams', 'cabm_mode': 'pams', 'iters': 1, 'losses': {'l1': L1}}], path,
                   {'type': 'CABMNet', 'backbone': ECBSR, 'quant_layers': 'body', 'mode': 'fp'})
    net = model.net_g
    assert net.quant_names == [f'backbone.{i}.0' for i in range(1, 7)] and net.res_layer == 'backbone.7.0'
    released = checkpoint_state_dict(load_checkpoint(path), path)
    assert set(released) < set(net.state_dict())
    assert all(torch.equal(net.state_dict()[k], v) for k, v in released.items())
    plain = ARCH_REGISTRY.get('ECBSRPlain')(**{k: v for k, v in ECBSR.items() if k != 'type'})
    plain.load_state_dict(released, strict=True)
    if model.train_channels_last:  # the training model's layout (train.channels_last, on the CPU): the same kernels
        plain.to(memory_format=torch.channels_last)
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X4/birdx4.png')))
    hr = read_rgb(osp.join(BENCHMARK, 'Set5/HR/bird.png'))
    net.eval().set_mode('fp')
    with torch.no_grad():
        fp = net(lq)
        assert torch.equal(fp, plain.eval()(lq))
        assert net.last_stats['fab'].item() == 32.0 and len(net.last_stats['feats']) == 6
        net.train().set_mode('pams')
        net.set_alpha_init(True)
        net(lq)  # PAMS' data initialisation of the clips on the image itself
        net.set_alpha_init(False)
        w8a8 = net.eval()(lq)
    from adaptsr.bench.measure import quality
    p_fp, p_q = quality(fp, hr, 4)['psnr_y'], quality(w8a8, hr, 4)['psnr_y']
    # measured 33.330 vs 33.035 dB: before any PAMS training the data-initialised clips cost 0.30 dB
    assert p_fp > 33.0 and 0 < p_fp - p_q < 0.4 and net.last_stats['fab'].item() == 8.0


def test_a_distilling_pams_phase_learns_from_the_frozen_fp_network_and_a_resumed_run_keeps_it(tmp_path):
    """PAMS with CABMOutputDistillLoss: the teacher is the released ECBSR in fp (frozen, saved as net_t_fp.pth), the
    loss is 255 * mean|SR_w8a8 - SR_fp| and trains weights and clips; a second model (a resume: other weights in
    network_g, same models folder) loads that teacher instead of copying its own weights."""
    path = require(osp.join(WEIGHTS, 'ECBSR/ECBSR_M6C40_x4.pth'))
    phases = [{'name': 'pams', 'cabm_mode': 'pams', 'iters': 2, 'param_lrs': {'alpha': 1e-4},
               'losses': {'kd': {'type': 'CABMOutputDistillLoss'}}}]
    network = {'type': 'CABMNet', 'backbone': ECBSR, 'quant_layers': ['backbone.[1-5].0'], 'mode': 'fp'}
    model = _model(tmp_path, phases, path, network)
    net, teacher = model.net_g, model.net_t
    assert net.quant_names == [f'backbone.{i}.0' for i in range(1, 6)] and net.mode == 'pams'
    assert teacher.mode == 'fp' and not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert osp.exists(tmp_path / 'net_t_fp.pth')
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X4/birdx4.png')))[..., :24, :24].repeat(2, 1, 1, 1)
    gt = read_rgb(osp.join(BENCHMARK, 'Set5/HR/bird.png'))[..., :96, :96].repeat(2, 1, 1, 1)
    with torch.no_grad():
        fp = teacher(lq)
    model.feed_data({'lq': lq, 'gt': gt})
    model.update_learning_rate(1)
    model.optimize_parameters(1)
    conv = net.backbone[3][0]
    expected = 255 * (model.output.detach() - fp).abs().mean()
    assert 0 < float(model.log_dict['l_kd']) and abs(float(model.log_dict['l_kd']) - float(expected)) < 1e-4
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert conv.bitsel.quant_bit3.alpha.grad is not None
    assert torch.equal(teacher(lq), fp)  # the teacher did not move
    trained = tmp_path / 'trained.pth'
    torch.save({'params': net.state_dict()}, trained)
    resumed = _model(tmp_path, phases, str(trained), network)
    assert not torch.equal(resumed.net_g.backbone[3][0].weight, teacher.backbone[3][0].weight)
    assert all(torch.equal(a, b) for a, b in zip(resumed.net_t.state_dict().values(), teacher.state_dict().values()))
    fp_phase = [{'name': 'fp', 'cabm_mode': 'fp', 'iters': 1, 'losses': {'kd': {'type': 'CABMOutputDistillLoss'}}}]
    lone = _model(tmp_path / 'fp', fp_phase, path, network)
    lone.feed_data({'lq': lq, 'gt': gt})
    with pytest.raises(ValueError, match='CABMOutputDistillLoss needs a teacher'):
        lone.optimize_parameters(1)


def test_cabmnet_on_srresnet_is_a_second_paper_backbone_with_32_selectors(tmp_path):
    """BasicSR's MSRResNet (SRResNet without BN) through the recipe's modes: 32 selectors (both convs of its 16
    blocks), the backbone's own keys kept, gradients to the selectors in cadyq and only to the table's quantiser in
    lut, every phase's file loading strictly into the next."""
    net = CABMNet(SRRESNET, quant_layers=['body.*.conv1', 'body.*.conv2'])
    from basicsr.archs.srresnet_arch import MSRResNet
    plain = MSRResNet(**{k: v for k, v in SRRESNET.items() if k != 'type'})
    own = net.state_dict()
    assert net.num_selectors == 32 and net.quant_names[:2] == ['body.0.conv1', 'body.0.conv2']
    assert set(plain.state_dict()) == {k for k in own if '.bitsel.' not in k}
    assert len(own) - len(plain.state_dict()) == 32 * 8 and net.res_layer == 'upconv1'
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set14/LR_bicubic/X4/baboonx4.png')))[..., :24, :24].repeat(2, 1, 1, 1)
    net.set_mode('cadyq')
    net(lq)
    assert net.last_stats['fab'].tolist() == [8.0, 8.0] and net.last_stats['res'].shape == (2, 64, 24, 24)
    net.last_stats['weighted_bits'].sum().backward()
    assert net.body[7].conv2.bitsel.net_small[0].weight.grad.abs().sum() > 0
    net.zero_grad()
    net.set_mode('lut')
    flags = torch.full((2, 32), 2, dtype=torch.long)
    flags[:, 5] = 0  # block 2 conv2 at 4 bits
    net.set_bit_flags(flags)
    net(lq).abs().mean().backward()
    sel = net.body[2].conv2.bitsel
    assert net.last_stats['fab'].tolist() == [7.875, 7.875]
    assert sel.quant_bit1.alpha.grad is not None and sel.quant_bit3.alpha.grad is None
    path = tmp_path / 'cadyq.pth'
    torch.save({'params': net.state_dict()}, path)
    again = CABMNet(SRRESNET, quant_layers=['body.*.conv1', 'body.*.conv2'], mode='lut')
    again.load_state_dict(torch.load(path, weights_only=True)['params'], strict=True)


def test_cabmnet_cost_split_and_errors():
    net = CABMNet(ECBSR)
    unquant, quant = net.macs_split(180, 320)
    px = 180 * 320
    assert quant == 6 * 9 * 40 * 40 * px and unquant == 9 * 3 * 40 * px + 9 * 40 * 48 * px
    with pytest.raises(ValueError, match="pattern 'body.*.conv9' matches no Conv2d"):
        CABMNet(ECBSR, quant_layers=['body.*.conv9'])
    with pytest.raises(ValueError, match='arch options dict'):
        CABMNet('ECBSRPlain')
    with pytest.raises(ValueError, match=r'set_bit_flags\(\(N, 6\)\)'):
        CABMNet(ECBSR, mode='lut')(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r'bit flags must be \(N, 6\)'):
        net.set_bit_flags(torch.zeros(1, 32, dtype=torch.long))


def test_table_from_a_cabmnet_records_its_six_selectors(tmp_path):
    img = cv2.imread(require(osp.join(BENCHMARK, 'Set14/LR_bicubic/X4/baboonx4.png')))
    cv2.imwrite(str(tmp_path / 'baboon.png'), img[:60, :100])
    table = build_table(CABMNet(ECBSR, mode='lut'), str(tmp_path), tile_size=48, step=46, min_tiles=6)
    assert table.num_selectors == 6 and table.meta['tiles'] == 6
    assert next(iter(table.table.values()))[0]['bit_config'] == [2] * 6


def test_a_table_for_another_network_is_refused_at_load(tmp_path):
    from basicsr.models import build_model
    path = tmp_path / 'lut32.json'
    _table([(1.0, [2, 2, 2, 2])]).save(str(path))
    from conftest import model_options
    opt = model_options(tmp_path, 'CABMModel', {'type': 'CABMNet', 'backbone': ECBSR, 'mode': 'lut'}, scale=4,
                        path={'cabm_lut': str(path)})
    with pytest.raises(ValueError, match=r'lut32.json: table for 4 selectors .* \(CABMNet\) has 6'):
        build_model(opt)


@pytest.mark.slow
def test_demo_recipe_runs_all_five_steps_and_ends_with_a_cabm_model_and_its_table(tmp_path, demo_data):
    """options/train/cabm_edsr_baseline_x4_demo.yml: FP -> PAMS -> CADyQ -> table -> CABM on the demo data, then the
    CABM model (table bits) tested on the demo images: above bicubic, fewer than 8 average bits at calibration 100."""
    from basicsr.models import build_model
    from basicsr.utils.registry import ARCH_REGISTRY
    from adaptsr.bench.measure import quality
    from conftest import train_demo

    def edit(opt):
        opt['train']['cabm']['lut_dataroot'] = osp.join(demo_data, 'train/LR_bicubic_sub/X4')

    _, exp = train_demo(tmp_path, demo_data, 'cabm_edsr_baseline_x4_demo.yml', edit)
    models = exp / 'models'
    for name in ('net_g_fp.pth', 'net_t_pams.pth', 'net_g_cadyq.pth', 'net_g_latest.pth', 'cabm_lut.json'):
        assert (models / name).exists(), name
    table = EdgeBitTable.load(str(models / 'cabm_lut.json'))
    assert table.meta['tiles'] == 371 and table.meta['edge_score'] == 'intended' and len(table) > 10
    from conftest import model_options
    test_opt = model_options(tmp_path, 'CABMModel', {'type': 'CABMEDSR', 'upscale': 4, 'mode': 'lut'},
                             pretrain=str(models / 'net_g_latest.pth'), val={'metrics': {}, 'calibration': 100},
                             path={'cabm_lut': str(models / 'cabm_lut.json')})
    model = build_model(test_opt)
    bicubic = ARCH_REGISTRY.get('BicubicSR')(upscale=4)
    gains = []
    for name in ('chelsea', 'coffee'):
        lq = read_rgb(osp.join(demo_data, f'val/LR_bicubic/X4/{name}x4.png'))
        gt = read_rgb(osp.join(demo_data, f'val/HR/{name}.png'))[..., :lq.shape[2] * 4, :lq.shape[3] * 4]
        model.feed_data({'lq': lq, 'gt': gt})
        model.test()
        values = model.cost_metric_values()
        with torch.no_grad():
            gains.append(quality(model.output, gt, 4)['psnr_y'] - quality(bicubic(lq), gt, 4)['psnr_y'])
        assert 4.0 <= values['fab'] < 8.0 and values['gbitops'] < values['gflops'] / 2, (name, values)
    assert sum(gains) / 2 > 0, gains  # 200 full-precision iterations: above bicubic, not a trained model


def test_layer_sensitivity_script_ranks_the_released_ecbsr_convs(tmp_path):
    """scripts/cabm_layer_sensitivity.py: post-training w8a8 of each conv alone, then the recipe's five together, on
    real images; quantising never gains more than noise, the RGB-input head conv loses most (Urban100: -0.40 dB)."""
    from conftest import run_script
    require(osp.join(WEIGHTS, 'ECBSR/ECBSR_M6C40_x4.pth'))
    out = tmp_path / 'rows.json'
    run_script(['scripts/cabm_layer_sensitivity.py', '--opt', 'options/train/cabm_ecbsr_m6c40_x4_demo.yml',
                '--dataset', require(osp.join(BENCHMARK, 'Set5')), '--max_images', '2',
                '--calib_root', osp.join(BENCHMARK, 'Set14/LR_bicubic/X4'), '--json', str(out)],
               env={'ADAPTSR_WEIGHTS': WEIGHTS})
    report = json.loads(out.read_text())
    rows = {r['layers']: r['delta_db'] for r in report['rows']}
    assert list(rows) == [f'backbone.{i}.0' for i in range(8)] + ['backbone.[1-5].0']
    assert report['images'] == 2 and report['fp_psnr_y'] > 30
    assert all(d < 0.01 for d in rows.values()) and min(rows, key=rows.get) == 'backbone.0.0'
    with pytest.raises(AssertionError, match='exists; pass --overwrite to replace it or choose another --json'):
        run_script(['scripts/cabm_layer_sensitivity.py', '--opt', 'options/train/cabm_ecbsr_m6c40_x4_demo.yml',
                    '--json', str(out)], env={'ADAPTSR_WEIGHTS': WEIGHTS})


def test_a_run_killed_in_cadyq_resumes_without_replaying_a_phase_hook(tmp_path, demo_data):
    """The demo recipe (fp -> pams -> cadyq -> cabm, 2 iterations each) stopped in CADyQ (only what it had written by
    iteration 5) and resumed with --auto_resume: no earlier hook runs again (net_g_fp.pth and net_t_pams.pth stay
    byte-identical), and the table and final weights equal the uninterrupted run's."""
    import hashlib
    import shutil
    from conftest import run_script, train_demo

    def edit(opt):
        opt['network_g'].update(num_feat=16, num_block=2)
        opt['datasets']['train'].update(batch_size_per_gpu=2, num_worker_per_gpu=0)
        opt['train']['cabm'].update(lut_dataroot=osp.join(demo_data, 'train/LR_bicubic_sub/X4'), alpha_init_iters=1,
                                    iters_per_epoch=2)
        for phase in opt['train']['phases']:
            phase['iters'] = 2
        opt['train']['total_iter'] = 8
        opt['logger'].update(save_checkpoint_freq=1, print_freq=1)
        opt.pop('val')
        opt['datasets'].pop('val')

    _, exp = train_demo(tmp_path, demo_data, 'cabm_edsr_baseline_x4_demo.yml', edit)
    models, states = exp / 'models', exp / 'training_states'
    full = {name: (models / name).read_bytes() for name in ('net_g_latest.pth', 'cabm_lut.json')}
    digest = {name: hashlib.sha256((models / name).read_bytes()).hexdigest() for name in ('net_g_fp.pth',
                                                                                          'net_t_pams.pth')}
    for it in (6, 7, 8):  # as if killed during iteration 6: nothing after iteration 5 was written
        (states / f'{it}.state').unlink()
        (models / f'net_g_{it}.pth').unlink()
    for name in ('net_g_latest.pth', 'net_g_cadyq.pth', 'cabm_lut.json'):
        (models / name).unlink()
    assert torch.load(states / '5.state', weights_only=False)['phase'] == 'cadyq'
    shutil.copy(tmp_path / 'demo.yml', tmp_path / 'resume.yml')
    proc = run_script([str(tmp_path / 'train.py'), '-opt', str(tmp_path / 'resume.yml'), '--auto_resume'],
                      cwd=tmp_path, env={'PYTHONPATH': ROOT, 'OMP_NUM_THREADS': '2'})  # as train_demo: same sums
    out = proc.stdout + proc.stderr
    assert 'Resuming training from epoch' in out and 'iter: 5.' in out
    assert 'phase fp model saved' not in out and 'teacher saved' not in out
    for name, value in digest.items():
        assert hashlib.sha256((models / name).read_bytes()).hexdigest() == value, name
    a = torch.load(io.BytesIO(full['net_g_latest.pth']), weights_only=True)['params']
    b = torch.load(models / 'net_g_latest.pth', weights_only=True)['params']
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads(full['cabm_lut.json']) == json.loads((models / 'cabm_lut.json').read_bytes())
