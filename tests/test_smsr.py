"""SMSR: official x2 weights, reference metrics, sparse == masked-dense, training forward, cost, schedules, input."""
import os.path as osp

import pytest
import torch

from adaptsr.methods.smsr.smsr_arch import SMSRNet, smsr_dense_gmacs
from adaptsr.core.checkpoint_io import load_checkpoint
from conftest import BENCHMARK, ROOT, WEIGHTS, read_rgb, require, run_script

SET5 = {'baby': (38.888, 0.242), 'bird': (43.282, 0.377), 'butterfly': (35.382, 0.658), 'head': (35.988, 0.391),
        'woman': (36.415, 0.414)}  # official x2 weights: Y PSNR and kept ratio eta per image
CHANNELS = [[(24, 40), (9, 55), (3, 61), (0, 64)], [(16, 48), (4, 60), (1, 63), (0, 64)],
            [(16, 48), (7, 57), (1, 63), (0, 64)], [(3, 61), (0, 64), (0, 64), (0, 64)],
            [(14, 50), (5, 59), (0, 64), (0, 64)]]


@pytest.fixture(scope='module')
def official():
    sd = load_checkpoint(require(osp.join(WEIGHTS, 'SMSR/SMSR_x2_model_1000.pt')))
    net = SMSRNet(upscale=2)
    net.load_state_dict(sd, strict=True)
    return net.eval()


def pair(name, scale=2, setname='Set5'):
    lq = read_rgb(require(osp.join(BENCHMARK, f'{setname}/LR_bicubic/X{scale}/{name}x{scale}.png')))
    gt = read_rgb(require(osp.join(BENCHMARK, f'{setname}/HR/{name}.png')))
    return lq, gt


def test_official_weights_load_strictly_with_the_published_channel_masks(official):
    sd = load_checkpoint(osp.join(WEIGHTS, 'SMSR/SMSR_x2_model_1000.pt'))
    assert len(sd) == 99 and sum(v.numel() for v in sd.values()) == 987330
    for k, module in enumerate(official.body):
        cd, cs = module.body.hard_channel_masks()
        assert [(int(d.sum()), int(s.sum())) for d, s in zip(cd, cs)] == CHANNELS[k]


def test_set5_reference_per_image_and_sparse_equals_masked_dense(official):
    from adaptsr.bench.measure import quality
    psnrs = []
    for name, (psnr_ref, eta_ref) in SET5.items():
        lq, gt = pair(name)  # Set5 x2 LR sizes are all even: the official even-crop is a no-op here
        with torch.no_grad():
            official.sparse_infer = True
            sparse, cost = official.infer(lq)
            official.sparse_infer = False
            dense = official(lq)
        official.sparse_infer = True
        assert (sparse - dense).abs().max() * 255 <= 1e-3, name  # [0, 255] units, spec 11.4
        q = quality(sparse, gt[..., :lq.shape[2] * 2, :lq.shape[3] * 2], 2)
        assert abs(q['psnr_y'] - psnr_ref) <= 0.002, (name, q)
        eta = cost['eta_px'] / cost['pixels']
        assert abs(eta - eta_ref) <= 0.001, (name, eta)
        assert 0 < cost['flops'] < cost['flops_full']
        psnrs.append(q['psnr_y'])
    assert abs(sum(psnrs) / 5 - 37.991) <= 0.002


def _random_net(seed, spatial=None, channels=None):
    torch.manual_seed(seed)
    net = SMSRNet(upscale=3, num_feat=16, num_module=2)
    with torch.no_grad():
        for m in net.body:
            if spatial is not None:  # force the spatial mask: all active (+) or none (-)
                m.spa_mask[5].bias.copy_(torch.tensor([-spatial, spatial]) * 100.)
            if channels == 'dense':
                m.body.ch_mask[..., 0] = 1.
                m.body.ch_mask[..., 1] = 0.
            elif channels == 'sparse':
                m.body.ch_mask[..., 0] = 0.
                m.body.ch_mask[..., 1] = 1.
    return net.eval()


SPARSE_PATHS = {  # SMSRNet settings of each batch-1 eval path
    'kernel': {'sparse_kernel': True, 'sparse_max_density': 1.0},   # compiled implicit-GEMM kernel
    'gathers': {'sparse_kernel': False, 'sparse_max_density': 1.0},  # torch row gathers + GEMMs
    'split': {'sparse_max_density': 0.0},                            # exact dense-split, above the density limit
}


def _use_path(net, path):
    if path == 'kernel' and kernel_or_skip() is None:
        return
    for key, value in SPARSE_PATHS[path].items():
        setattr(net, key, value)


def kernel_or_skip():
    """The compiled kernel; skips where this machine has no C++ compiler (CI and the quick start have one)."""
    import shutil
    from adaptsr.methods.smsr.sparse_conv import load_kernel
    kernel = load_kernel()
    if kernel is None:
        if shutil.which('c++') or shutil.which('g++'):
            pytest.fail('a C++ compiler is installed but the sparse convolution kernel did not build')
        pytest.skip('no C++ compiler: the sparse kernel cannot be built here')
    return kernel


@pytest.mark.parametrize('path', SPARSE_PATHS)
@pytest.mark.parametrize('spatial,channels,size', [(None, None, (30, 22)), (1, 'sparse', (30, 22)),
                                                   (-1, 'sparse', (30, 22)), (1, 'dense', (30, 22)),
                                                   (None, 'dense', (29, 23)), (None, 'sparse', (31, 17)),
                                                   (None, 'mixed', (27, 35)), (-1, 'mixed', (9, 7))])
def test_sparse_paths_equal_masked_dense_on_random_nets_and_extremes(path, spatial, channels, size):
    """Each batch-1 path equals masked-dense (0..1 scale, within 1e-5 x 255 units): random masks, all-one (+1) and
    all-zero (-1) spatial masks, all-dense / all-sparse / mixed channels with a 0.5 tie, odd sizes."""
    net = _random_net(3, spatial, channels)
    if channels == 'mixed':
        with torch.no_grad():
            for m in net.body:
                m.body.ch_mask[0, :5, :, 0], m.body.ch_mask[0, :5, :, 1] = 1., 0.    # dense
                m.body.ch_mask[0, 5:9, :, 0], m.body.ch_mask[0, 5:9, :, 1] = 0., 1.  # sparse
                m.body.ch_mask[0, 9, 1, :] = 0.                                      # a tie: dropped
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        net.sparse_infer = False
        dense = net(x)
        net.sparse_infer = True
        _use_path(net, path)
        out = net(x)
    assert out.shape == (1, 3, size[0] * 3, size[1] * 3)
    assert (out - dense).abs().max() <= 1e-5, path
    _, cost = net.infer(x)
    density = sum(cost[f'mask_px_m{k}'] for k in range(net.num_module)) / (net.num_module * cost['pixels'])
    if spatial is not None:
        assert density == (1.0 if spatial > 0 else 0.0)


def test_kernel_equals_masked_dense_on_real_images_and_keeps_the_psnr(official):
    """Official x2 weights, Set5 and B100 images: the kernel path equals masked-dense within 1e-4 (0..1) and the
    PSNR is unchanged (B100 3096: 33.60 dB with either path)."""
    kernel_or_skip()
    from adaptsr.bench.measure import quality
    for setname, name in (('Set5', 'butterfly'), ('B100', '3096'), ('B100', '148026')):
        lq, gt = pair(name, setname=setname)
        lq = lq[..., :lq.shape[2] // 2 * 2, :lq.shape[3] // 2 * 2]
        gt = gt[..., :lq.shape[2] * 2, :lq.shape[3] * 2]
        with torch.no_grad():
            _use_path(official, 'kernel')
            sparse = official(lq)
            official.sparse_infer = False
            dense = official(lq)
        official.sparse_infer, official.sparse_max_density = True, None
        assert (sparse - dense).abs().max() <= 1e-4, name
        assert abs(quality(sparse, gt, 2)['psnr_y'] - quality(dense, gt, 2)['psnr_y']) <= 1e-3, name


def bf16_kernel_or_skip():
    """The compiled kernel with its bfloat16 path; skips where the CPU has no AVX512-BF16."""
    from adaptsr.methods.smsr.sparse_conv import kernel_has_bf16
    kernel = kernel_or_skip()
    if not kernel_has_bf16(kernel):
        pytest.skip('this CPU (or compiler) has no AVX512-BF16: the kernel has no bfloat16 path here')
    return kernel


def test_bf16_pair_packing_holds_the_float32_packing_in_channel_pairs():
    """``pack_tiles(pair_split=...)``: per tile and tap, the dense then the sparse input channels in pairs (an odd
    segment padded with a zero channel), columns inside the pair; the values are the float32 packing's in bf16."""
    from adaptsr.methods.smsr.sparse_conv import pack_tiles
    torch.manual_seed(0)
    weight = torch.randn(40, 7, 3, 3)  # 5 dense + 2 sparse inputs; 40 outputs -> tiles of 32 and 16 columns (VW 16)
    cols, dest = list(range(40)), [-(c + 1) for c in range(40)]
    flat = pack_tiles(weight, cols, dest, 16)
    paired = pack_tiles(weight, cols, dest, 16, pair_split=5)
    assert paired['weight'].dtype == torch.bfloat16 and torch.equal(paired['widths'], flat['widths'])
    start_f = start_p = 0
    for width in flat['widths'].tolist():
        ref = flat['weight'][start_f:start_f + 9 * 7 * width].view(9, 7, width)
        got = paired['weight'][start_p:start_p + 9 * 8 * width].view(9, 4, width, 2)  # (3 + 1) pairs
        dense = got[:, :3].permute(0, 1, 3, 2).reshape(9, 6, width)   # 5 channels + the zero pad
        sparse = got[:, 3:].permute(0, 1, 3, 2).reshape(9, 2, width)
        assert torch.equal(dense[:, :5], ref[:, :5].to(torch.bfloat16)) and not dense[:, 5].any()
        assert torch.equal(sparse, ref[:, 5:].to(torch.bfloat16))
        start_f, start_p = start_f + 9 * 7 * width, start_p + 9 * 8 * width
    assert start_p == paired['weight'].numel()


@pytest.mark.parametrize('spatial,channels,size', [(None, None, (30, 22)), (1, 'sparse', (18, 24)),
                                                   (-1, 'mixed', (10, 8)), (None, 'mixed', (28, 36))])
def test_bf16_kernel_is_as_accurate_as_bf16_convolutions(spatial, channels, size):
    """The kernel's bfloat16 path (AVX512-BF16) on each block of random nets, odd channel counts included: its
    error against a float64 masked-dense reference on the same bf16-rounded input is within 1.5x that of torch's
    bf16 convolutions (oneDNN, autocast) and within 1% of the output's range (even sizes: a block's mask branch
    halves the map; the network pads odd ones)."""
    from adaptsr.methods.smsr.sparse_conv import PixelSet
    kernel = bf16_kernel_or_skip()
    net = _random_net(7, spatial, channels)
    if channels == 'mixed':
        with torch.no_grad():
            for m in net.body:
                m.body.ch_mask[0, :5, :, 0], m.body.ch_mask[0, :5, :, 1] = 1., 0.
                m.body.ch_mask[0, 5:10, :, 0], m.body.ch_mask[0, 5:10, :, 1] = 0., 1.
                m.body.ch_mask[0, 10, 1, :] = 0.
    torch.manual_seed(1)
    for module in net.body:
        x = torch.rand(1, 16, *size).to(torch.bfloat16)
        spa = (module.spatial_logits(x.float()).diff(dim=1) > 0).float()
        cd, cs = module.body.hard_channel_masks()
        with torch.no_grad():
            ref = module.body.double().forward_masked(x.double(), spa.double(), cd.double(), cs.double())
            module.body.float()
            with torch.autocast('cpu', dtype=torch.bfloat16):
                got = module.body.forward_kernel(x, PixelSet(spa[0, 0] > 0), cd, cs, kernel)
                onednn = module.body.forward_masked(x, spa.to(x.dtype), cd, cs)
        assert got.dtype == torch.bfloat16
        err, err_onednn = (got.double() - ref).abs().max(), (onednn.double() - ref).abs().max()
        assert err <= 1.5 * err_onednn + 1e-6 and err <= 0.01 * ref.abs().max(), (float(err), float(err_onednn))


@pytest.mark.parametrize('path', SPARSE_PATHS)
def test_every_sparse_path_runs_in_bf16(path):
    """Under ``val.precision: bf16`` each batch-1 path (the kernel, the torch gathers, dense-split) runs (the
    gathers' in-place products once mixed bf16 features with float32 weights) and is as close to float32 as
    masked-dense in bf16 is (random net, mixed channel masks, an odd size)."""
    from adaptsr.core.precision import inference_precision
    net = _random_net(3)
    x = torch.rand(1, 3, 27, 35)
    with torch.no_grad():
        net.sparse_infer = False
        ref = net(x)
        with inference_precision(net, 'bf16'):
            masked = net(x).float()
        net.sparse_infer = True
        _use_path(net, path)
        with inference_precision(net, 'bf16'):
            out = net(x).float()
    assert (out - ref).abs().max() <= 2 * (masked - ref).abs().max() + 1e-3, path


def test_bf16_kernel_keeps_the_psnr_of_the_official_weights(official):
    """Official x2 weights under ``val.precision: bf16`` (autocast): the sparse blocks run the kernel's bfloat16
    path (seen in torch.profiler as ``adaptsr::sparse_conv_bf16``) and the PSNR-Y stays within 0.03 dB of float32
    on Set5 butterfly and B100 148026."""
    from adaptsr.bench.measure import psnr_y
    from adaptsr.core.precision import inference_precision
    bf16_kernel_or_skip()
    for setname, name in (('Set5', 'butterfly'), ('B100', '148026')):
        lq, gt = pair(name, setname=setname)
        lq = lq[..., :lq.shape[2] // 2 * 2, :lq.shape[3] // 2 * 2]
        gt = gt[..., :lq.shape[2] * 2, :lq.shape[3] * 2]
        with torch.no_grad():
            fp32 = official(lq).clamp(0, 1)
            with inference_precision(official, 'bf16'), torch.profiler.profile() as prof:
                bf16 = official(lq).float().clamp(0, 1)
        assert any(ev.key == 'adaptsr::sparse_conv_bf16' for ev in prof.key_averages()), name
        assert abs(psnr_y(bf16, gt, 2) - psnr_y(fp32, gt, 2)) <= 0.03, name


def test_kernel_falls_back_to_the_torch_path_with_one_warning(monkeypatch):
    """Where the kernel cannot be built (here: the compiler call fails), one RuntimeWarning names why and SMSR
    runs the torch path with the same result; ``ADAPTSR_SPARSE_KERNEL=0`` turns the kernel off."""
    import warnings
    from torch.utils import cpp_extension
    import adaptsr.methods.smsr.sparse_conv as sc

    def no_compiler(*args, **kwargs):
        raise RuntimeError('Error building extension: c++: command not found')

    monkeypatch.setattr(sc, '_KERNEL', {})
    monkeypatch.setattr(cpp_extension, 'load', no_compiler)
    net = _random_net(4)
    x = torch.rand(1, 3, 20, 18)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with torch.no_grad():
            out = net(x)
            net(x)  # the second forward does not warn again
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and 'c++: command not found' in messages[0] and 'torch path' in messages[0]
    with torch.no_grad():
        net.sparse_infer = False
        assert (out - net(x)).abs().max() <= 1e-5
    monkeypatch.setattr(sc, '_KERNEL', {})
    monkeypatch.setenv('ADAPTSR_SPARSE_KERNEL', '0')
    assert sc.load_kernel() is None


def test_training_forward_with_hard_masks_equals_eval(monkeypatch):
    """tau -> 0 with the noise removed: the training forward (fixed 'prev' index convention) equals masked-dense."""
    import adaptsr.methods.smsr.smsr_arch as arch
    net = _random_net(5)
    x = torch.rand(2, 3, 24, 20)
    with torch.no_grad():
        net.sparse_infer = False
        ref = net(x)

    def hard(logits, tau=1.0, hard=False, dim=-1):
        return torch.nn.functional.one_hot(logits.argmax(dim), logits.shape[dim]).movedim(-1, dim).float()

    monkeypatch.setattr(arch.F, 'gumbel_softmax', hard)
    net.train()
    with torch.no_grad():
        out, sparsity = net(x)
    err_prev = float((out - ref).abs().max())
    assert err_prev < 1e-5
    kept = sparsity.mean()
    net.eval()
    _, cost = net.infer(x)
    assert abs(float(kept) - cost['eta_px'] / cost['pixels']) < 1e-6  # the regularised quantity is the kept ratio
    net.train_mask_index = 'current'
    net.train()
    with torch.no_grad():
        err_current = float((net(x)[0] - ref).abs().max())
    assert err_current > 100 * max(err_prev, 1e-7)  # the pre-fix convention computes something else


def test_mac_counter_matches_paper_convention_and_hooks():
    assert abs(smsr_dense_gmacs(2) - 223.8) <= 0.5 and abs(smsr_dense_gmacs(3) - 100.4) <= 0.5
    assert abs(smsr_dense_gmacs(4) - 57.1) <= 0.5
    smb = 5 * (4 * 9 * 64 * 64 + 256 * 64) * 640 * 360 / 1e9
    assert round(smsr_dense_gmacs(2) - smb + 0.51 * smb, 1) == 131.3
    from adaptsr.core.cost import count_flops
    net = SMSRNet(upscale=2, use_masks=False).eval()
    x = torch.rand(1, 3, 20, 24)
    flops = count_flops(net, x, norm_layers=False, transposed='input')
    # not in the paper's count: the attention's 1x1 convs on one pooled pixel, and the MeanShift 1x1 convs
    extra = 5 * 2 * (64 * 4 + 4 * 64) + 2 * (9 + 9 * 4) * 20 * 24
    _, cost = net.infer(x)
    assert flops == cost['flops'] + extra == cost['flops_full'] + extra


def test_schedules_follow_the_iteration():
    from adaptsr.methods.smsr.smsr_model import smsr_lambda_ramp, smsr_tau
    ramp = {1: 0.0, 1000: 0.0, 1001: 1 / 50, 50001: 1.0, 199001: 1.0, 500001: 1.0}
    tau = {1: 1.0, 1000: 1.0, 1001: 0.998, 50001: 0.9, 199001: 0.602, 500001: 0.4}
    for it in ramp:
        assert abs(smsr_lambda_ramp(it) - ramp[it]) < 1e-12
        assert abs(smsr_tau(it, 'linear') - tau[it]) < 1e-9
        assert smsr_tau(it, 'constant') == 1.0
    with pytest.raises(ValueError, match="tau_schedule must be 'linear' or 'constant'"):
        smsr_tau(1, 'cosine')


def test_odd_sizes_grayscale_and_batches(official):
    lq, _ = pair('bird')
    odd = lq[..., :45, :37]
    with torch.no_grad():
        out = official(odd)
        assert out.shape == (1, 3, 90, 74)
        official.sparse_infer = False
        dense = official(odd)
        official.sparse_infer = True
        assert (out - dense).abs().max() * 255 <= 1e-3
        batch = torch.cat([lq[..., :40, :40], lq[..., 40:80, 40:80]])
        both = official(batch)  # batch > 1: the masked-dense path, per-image masks
        for i in range(2):
            assert (both[i:i + 1] - official(batch[i:i + 1])).abs().max() * 255 <= 1e-3
    with pytest.raises(ValueError, match=r'expects RGB input \(N, 3, H, W\), got shape \(1, 1, 8, 8\)'):
        official(torch.rand(1, 1, 8, 8))


def test_wrong_scale_checkpoint_is_refused(tmp_path):
    src = require(osp.join(WEIGHTS, 'SMSR/SMSR_x2_model_1000.pt'))
    with pytest.raises(AssertionError, match='SMSR checkpoint is x2 .* but --scale is 3'):
        run_script([osp.join(ROOT, 'scripts/convert_official.py'), '--method', 'smsr', '--scale', '3', '--input',
                    src, '--output', str(tmp_path / 'x3.pth')])
    out = tmp_path / 'x2.pth'
    run_script([osp.join(ROOT, 'scripts/convert_official.py'), '--method', 'smsr', '--scale', '2', '--input', src,
                '--output', str(out)])
    from basicsr.models import build_model
    from conftest import model_options
    opt = model_options(tmp_path, 'SMSRModel', {'type': 'SMSRNet', 'upscale': 3}, pretrain=str(out))
    with pytest.raises(ValueError, match='checkpoint is for x2 but the options say scale: 3'):
        build_model(opt)


def test_one_training_iteration_trains_the_masks(tmp_path):
    from basicsr.models import build_model
    from conftest import model_options
    train = {'ema_decay': 0, 'smsr': {'iters_per_epoch': 1, 'lambda_warmup_epochs': 2},
             'optim_g': {'type': 'Adam', 'lr': 1e-4, 'betas': [0.9, 0.999]},
             'phases': [{'name': 'sparse', 'iters': 5, 'losses': {
                 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 255.0},
                 'sparsity_opt': {'type': 'SMSRSparsityLoss', 'loss_weight': 0.1}}}]}
    model = build_model(model_options(tmp_path, 'SMSRModel', {'type': 'SMSRNet', 'upscale': 2, 'num_feat': 16,
                                                              'num_module': 2}, is_train=True, train=train))
    lq, gt = pair('bird')
    model.feed_data({'lq': lq[..., :32, :32], 'gt': gt[..., :64, :64]})
    model.optimize_parameters(3)  # epoch 3 of 1 iteration: ramp 1, tau 1 - 2/500
    net = model.net_g
    assert model.log_dict['tau'] == pytest.approx(0.996) and model.log_dict['lambda_ramp'] == 1.0
    assert float(model.log_dict['l_sparsity_opt']) == pytest.approx(0.1 * float(model.log_dict['kept']), rel=1e-5)
    for name in ('body.0.body.ch_mask', 'body.0.spa_mask.0.weight', 'body.1.body.body.3.weight'):
        assert dict(net.named_parameters())[name].grad.abs().sum() > 0, name
    assert not net.sub_mean.weight.requires_grad and net.sub_mean.weight.grad is None  # MeanShift stays fixed


@pytest.mark.slow
def test_set14_b100_reference(official):
    """Reference values of the official x2 weights (even-crop, Y, crop 2): Set14 33.623 / 0.9179, B100 32.163 /
    0.8992."""
    from adaptsr.methods.etds.etds_dataset import ETDSPairedDataset  # noqa: F401  (registration only)
    from basicsr.data import build_dataset
    from adaptsr.bench.measure import quality
    for name, (p_ref, s_ref) in {'Set14': (33.623, 0.9179), 'B100': (32.163, 0.8992)}.items():
        ds = build_dataset({'name': name, 'type': 'PairedImageDataset', 'phase': 'test', 'scale': 2,
                            'dataroot_gt': osp.join(BENCHMARK, name, 'HR'), 'filename_tmpl': '{}x2',
                            'dataroot_lq': osp.join(BENCHMARK, name, 'LR_bicubic/X2'), 'io_backend': {'type': 'disk'}})
        ps, ss = [], []
        for item in ds:
            lq = item['lq'][None]
            h, w = lq.shape[-2:]
            lq = lq[..., :h - h % 2, :w - w % 2]
            with torch.no_grad():
                q = quality(official(lq), item['gt'][None][..., :lq.shape[2] * 2, :lq.shape[3] * 2], 2)
            ps.append(q['psnr_y'])
            ss.append(q['ssim_y'])
        assert abs(sum(ps) / len(ps) - p_ref) <= 0.002 and abs(sum(ss) / len(ss) - s_ref) <= 0.0002, name


@pytest.mark.slow
def test_demo_training_kept_ratio_falls_as_lambda_ramps_and_beats_bicubic(tmp_path, demo_data):
    """options/train/smsr_x2_demo.yml (600 iterations, lambda ramped over the first 200): the validated kept ratio
    eta falls from one validation to the next while the SR stays well above bicubic."""
    import re
    from conftest import train_demo
    _, exp = train_demo(tmp_path, demo_data, 'smsr_x2_demo.yml')
    log = open(next(exp.glob('train_*.log'))).read()
    etas = [float(v) for v in re.findall(r'# eta: ([0-9.]+)', log)]
    psnrs = [float(v) for v in re.findall(r'# psnr: ([0-9.]+)', log)]
    assert len(etas) >= 4 and etas[0] > etas[2] > etas[3] and etas[-1] < 0.5 * etas[0], etas
    from adaptsr.bench.measure import quality
    from basicsr.utils.registry import ARCH_REGISTRY
    bicubic = ARCH_REGISTRY.get('BicubicSR')(upscale=2)
    ref = []
    for name in ('chelsea', 'coffee'):
        lq = read_rgb(osp.join(demo_data, f'val/LR_bicubic/X2/{name}x2.png'))
        lq = lq[..., :lq.shape[2] // 2 * 2, :lq.shape[3] // 2 * 2]
        gt = read_rgb(osp.join(demo_data, f'val/HR/{name}.png'))[..., :lq.shape[2] * 2, :lq.shape[3] * 2]
        with torch.no_grad():
            ref.append(quality(bicubic(lq), gt, 2)['psnr_y'])
    assert psnrs[-1] > sum(ref) / len(ref) + 0.5, (psnrs, ref)
