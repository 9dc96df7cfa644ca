"""APE: exit bookkeeping, frozen features, exactness at threshold 1, backbone loads, cost table, loss, tiling."""
import os.path as osp

import numpy as np
import pytest
import torch

from adaptsr.methods.ape.ape_arch import APEECBSR, APEEDSR, APERCAN, APEVDSR
from conftest import BENCHMARK, ROOT, WEIGHTS, read_rgb, require

ECBSR_FILE = 'ECBSR/ECBSR_M6C40_x4.pth'


def tiny_edsr(seed=0, **kw):
    torch.manual_seed(seed)
    return APEEDSR(num_feat=8, num_block=4, exit_interval=2, upscale=2, res_scale=1.0, **kw).eval()


def ecbsr_sd():
    from adaptsr.core.checkpoint_io import load_checkpoint
    from adaptsr.core.checkpoints import checkpoint_state_dict
    path = require(osp.join(WEIGHTS, ECBSR_FILE))
    return checkpoint_state_dict(load_checkpoint(path), path)


def butterfly_tiles(n=6, size=48):
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X2/butterflyx2.png')))
    return torch.cat([lq[..., 10 * i:10 * i + size, 5 * i:5 * i + size] for i in range(n)])


def test_exit_bookkeeping_thresholds_and_saturated_regressor():
    net = tiny_edsr()
    x = butterfly_tiles(5, 16)
    with torch.no_grad():
        full = net(x)
        sr, ids = net.forward_exit(x, 1.01)
        assert ids.tolist() == [1] * 5 and torch.equal(sr, full)  # never exiting = counted as the last exit
        _, ids = net.forward_exit(x, -1.01)
        assert ids.tolist() == [0] * 5
        net.regressor[2].bias.fill_(100.)  # IC saturates at 1.0: every patch leaves at exit 0 below threshold 1
        _, ids = net.forward_exit(x, 0.999)
        assert ids.tolist() == [0] * 5
        _, ids = net.forward_exit(x, 1.0)  # threshold 1 disables exits even when tanh rounds to 1.0
        assert ids.tolist() == [1] * 5
        net.regressor[2].bias.fill_(-100.)
        _, ids = net.forward_exit(x, 0.999)
        assert ids.tolist() == [1] * 5


@pytest.mark.parametrize('make', [
    lambda: tiny_edsr(1),
    lambda: (torch.manual_seed(2), APERCAN(num_feat=8, num_group=4, num_block=2, reduction=4, upscale=3))[1],
    lambda: (torch.manual_seed(3), APEVDSR(num_feat=8, num_conv=6, exit_interval=1, upscale=2))[1],
    lambda: (torch.manual_seed(4), APEECBSR(num_feat=8, num_block=4, upscale=4))[1]])
def test_exited_patches_keep_their_exit_output_and_later_units_skip_them(make):
    """A patch leaving at exit j gets exactly the training forward's j-th exit output (frozen features), and the
    units after an exit run only on the patches still in the batch."""
    net = make().eval()
    x = butterfly_tiles(6, 16)
    with torch.no_grad():
        pooled = []  # a regressor whose decisions differ between patches: spread its exit-0 inputs around 0
        hook = net.regressor[1].register_forward_hook(lambda m, a, o: pooled.append(o))
        net.train()
        net(x)
        hook.remove()
        w = torch.randn_like(net.regressor[2].weight)
        z = pooled[0] @ w.t()
        net.regressor[2].weight.copy_(w / z.std())
        net.regressor[2].bias.fill_(float(-z.mean() / z.std()))
        outs, ics = net(x)
        net.eval()
        thr = float(ics[0].view(-1).sort().values[2]) + 1e-7  # about half the patches leave at exit 0
        seen = []
        hooks = [net.unit(i).register_forward_hook(lambda m, a, o, i=i: seen.append((i, a[0].shape[0])))
                 for i in range(net.num_units)]
        sr, ids = net.forward_exit(x, thr)
        for h in hooks:
            h.remove()
    assert 0 < len(set(ids.tolist())) and ids.min() < net.num_exits - 1  # some patches exit early
    for p, e in enumerate(ids.tolist()):
        assert torch.allclose(sr[p], outs[e][p], atol=1e-5, rtol=0), (p, e)
    for i, batch in seen:  # batch sizes follow the decisions
        assert batch == int((ids >= i // net.exit_interval).sum())


def test_forward_exit_on_the_cpu_runs_in_passes_of_cpu_chunk_patches_with_the_same_exits_and_outputs():
    net = tiny_edsr(seed=4)
    x = butterfly_tiles(11, 16)
    seen = []
    with torch.no_grad():  # a regressor whose exit-0 scores spread around 0, so the decisions differ between patches
        pooled = net.regressor[1](net.regressor[0](net.unit(1)(net.unit(0)(net.embed(x)[1]))))
        z = pooled @ net.regressor[2].weight.t()
        net.regressor[2].weight.div_(z.std())
        net.regressor[2].bias.fill_(float(-z.mean() / z.std()))
        thr = float(net.regressor[3](net.regressor[2](pooled)).median())
        hook = net.unit(0).register_forward_hook(lambda m, a, o: seen.append(a[0].shape[0]))
        net.cpu_chunk = None
        whole, whole_ids = net.forward_exit(x, thr)
        net.cpu_chunk = 3
        sr, ids = net.forward_exit(x, thr)
    hook.remove()
    assert seen == [11, 3, 3, 3, 2]  # one pass of all 11, then passes of at most 3
    assert 0 < int((ids < net.num_exits - 1).sum()) < 11 and torch.equal(ids, whole_ids)
    assert torch.allclose(sr, whole, atol=1e-6, rtol=0)
    # separate exit tails, 6 exits: each patch through its own exit's tail in the regrouped passes too
    torch.manual_seed(0)
    ecb = APEECBSR(upscale=2, num_block=5, num_feat=8, exit_tails='separate').eval()
    with torch.no_grad():
        for tail in ecb.exit_tails:
            tail.weight.normal_(std=0.1)
        ecb.regressor = ByContent(ecb.unit(0)(ecb.embed(x)[1]))  # patches leave at exits 0 and 1 by content
        ecb.cpu_chunk = None
        whole, whole_ids = ecb.forward_exit(x, 0.5)
        ecb.cpu_chunk = 3
        sr, ids = ecb.forward_exit(x, 0.5)
    assert len(set(ids.tolist())) >= 2 and torch.equal(ids, whole_ids)
    assert torch.allclose(sr, whole, atol=1e-6, rtol=0)


class ByContent(torch.nn.Module):
    """A regressor stand-in that decides by each patch's own features (so any grouping of the batch gives the same
    decisions): 1 where a patch's mean feature exceeds the median of ``feats``' (a reference batch), else 0."""

    def __init__(self, feats):
        super().__init__()
        self.cut = float(feats.flatten(1).mean(1).median())

    def forward(self, feats):
        return (feats.flatten(1).mean(1, keepdim=True) > self.cut).float()


def test_threshold_one_reproduces_the_plain_backbone_exactly_on_tiles():
    """Official ECBSR M6C40 weights in APE-ECBSR (regressor random): tiled threshold-1 output == ECBSRPlain on the
    same tiles, bit for bit (batched and laid out as ``forward_exit`` runs them on the CPU: passes of ``cpu_chunk``,
    channels_last), and within float32 rounding of the plain layout; the arch's eval forward == ECBSRPlain on the
    whole image."""
    from adaptsr.methods.baselines.ecbsr_arch import ECBSRPlain
    from adaptsr.core.tiling import tiled_forward
    sd = ecbsr_sd()
    ape = APEECBSR(upscale=4, num_block=6, num_feat=40).eval()
    missing = ape.load_state_dict(sd, strict=False).missing_keys
    assert sorted(missing) == ['regressor.2.bias', 'regressor.2.weight']
    plain = ECBSRPlain(upscale=4, num_block=6, num_feat=40).eval()
    plain.load_state_dict(sd, strict=True)
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set14/LR_bicubic/X4/baboonx4.png')))  # 125 x 120: 46 does not divide
    with torch.no_grad():
        ref = tiled_forward(lambda t: plain(t.contiguous(memory_format=torch.channels_last)), lq, 4, 48, 2,
                            ape.cpu_chunk)
        out = tiled_forward(lambda t: ape.forward_exit(t, 1.0)[0], lq, 4, 48, 2, 500)
        assert torch.equal(out, ref)
        assert torch.allclose(out, tiled_forward(plain, lq, 4, 48, 2, 500), atol=1e-5, rtol=0)
        assert torch.equal(ape(lq), plain(lq))


class FixedScores(torch.nn.Module):
    """A regressor stand-in: these IC scores for the whole batch at the first exit, 0 for the patches after it."""

    def __init__(self, scores):
        super().__init__()
        self.scores = torch.tensor(scores).view(-1, 1)

    def forward(self, feat):
        return self.scores if feat.shape[0] == len(self.scores) else torch.zeros(feat.shape[0], 1)


def test_separate_exit_tails_start_from_the_released_tail_and_each_exit_uses_its_own():
    """``exit_tails='separate'``: the released ECBSR loads with every exit tail a copy of its tail (threshold 1 is the
    released network bit for bit); with distinct tails, each patch of a mixed-exit batch gets its own exit's tail,
    as in the training forward; the cost table is the shared tail's."""
    from adaptsr.methods.baselines.ecbsr_arch import ECBSRPlain
    sd = ecbsr_sd()
    ape = APEECBSR(upscale=4, num_block=6, num_feat=40, exit_tails='separate').eval()
    missing = ape.load_state_dict(ape.adapt_state_dict(sd), strict=False).missing_keys
    assert sorted(missing) == ['regressor.2.bias', 'regressor.2.weight']
    assert all(torch.equal(ape.exit_tails[e].weight, ape.backbone[7][0].weight) for e in range(5))
    plain = ECBSRPlain(upscale=4, num_block=6, num_feat=40).eval()
    plain.load_state_dict(sd, strict=True)
    x = butterfly_tiles(6, 48)
    with torch.no_grad():
        assert torch.equal(ape.forward_exit(x, 1.0)[0], plain(x.contiguous(memory_format=torch.channels_last)))
        for e, tail in enumerate(ape.exit_tails):
            tail.weight.mul_(1 + 0.1 * (e + 1))
        ape.regressor[2].weight.zero_()
        ape.regressor[2].bias.fill_(0.5)  # IC = tanh(0.5) = 0.46 everywhere
        sr, ids = ape.forward_exit(x, 0.3)
        assert ids.tolist() == [0] * 6
        ape.train()
        outs, _ = ape(x)
        ape.eval()
        # forward_exit runs channels_last on the CPU, the training forward not: equal within float32 rounding
        assert torch.allclose(sr, outs[0], atol=1e-5) and not torch.allclose(outs[0], outs[1], atol=1e-3)
        ape.regressor = FixedScores([0.0, 0.9, 0.0, 0.9, 0.0, 0.9])  # patches 1, 3, 5 leave at exit 0
        sr, ids = ape.forward_exit(x, 0.5)
        assert ids.tolist() == [5, 0, 5, 0, 5, 0]
        assert torch.allclose(sr[1::2], outs[0][1::2], atol=1e-5)
        assert torch.allclose(sr[0::2], outs[-1][0::2], atol=1e-5)
    assert ape.exit_flops_table(48) == APEECBSR(upscale=4, num_block=6, num_feat=40).exit_flops_table(48)
    with pytest.raises(ValueError, match="exit_tails must be 'shared' or 'separate'"):
        APEECBSR(exit_tails='own')


def test_backbone_checkpoints_load_and_only_the_regressor_may_be_missing(tmp_path):
    """Released ECBSR file -> APEECBSR via APEModel (strict_load_g false); BasicSR EDSR/RCAN checkpoints and
    DynamicSR ``eedm`` keys are renamed; any other missing key is refused by name."""
    from basicsr.archs.edsr_arch import EDSR
    from basicsr.archs.rcan_arch import RCAN
    from adaptsr.methods.ape.layouts import to_ape_state_dict
    model = _model(tmp_path, pretrain=require(osp.join(WEIGHTS, ECBSR_FILE)))
    net = model.net_g
    sd = ecbsr_sd()
    assert all(torch.equal(net.state_dict()[k], v) for k, v in sd.items())
    broken = {k: v for k, v in sd.items() if k != 'backbone.3.0.weight'}
    torch.save({'params': broken}, tmp_path / 'broken.pth')
    with pytest.raises(RuntimeError, match=r"backbone\.3\.0\.weight"):
        model.load_network(net, str(tmp_path / 'broken.pth'), strict=False)
    x = butterfly_tiles(2, 20)
    torch.manual_seed(0)
    edsr = EDSR(3, 3, num_feat=16, num_block=4, upscale=3, res_scale=0.1).eval()
    ape = APEEDSR(num_feat=16, num_block=4, upscale=3, res_scale=0.1, exit_interval=2).eval()
    assert ape.load_state_dict(to_ape_state_dict(edsr.state_dict(), ape), strict=False).missing_keys == [
        'regressor.2.weight', 'regressor.2.bias']
    rcan = RCAN(3, 3, num_feat=16, num_group=3, num_block=2, squeeze_factor=4, upscale=2).eval()
    ape_rcan = APERCAN(num_feat=16, num_group=3, num_block=2, reduction=4, upscale=2).eval()
    sd_rcan = to_ape_state_dict(dict(rcan.state_dict(), **{'eedm.2.weight': torch.ones(1, 16),
                                                           'eedm.2.bias': torch.zeros(1)}), ape_rcan)
    ape_rcan.load_state_dict(sd_rcan, strict=True)
    with torch.no_grad():
        assert (edsr(x) - ape(x)).abs().max() * 255 < 1e-3  # same network; MeanShift order differs by rounding
        assert (rcan(x) - ape_rcan(x)).abs().max() * 255 < 1e-3
    with pytest.raises(ValueError, match='4 body units'):
        to_ape_state_dict(edsr.state_dict(), APEEDSR(num_feat=16, num_block=8, upscale=3))


def test_exit_flops_table_reproduces_the_paper_gmacs():
    """The paper's cost unit: GMACs per 48x48 LR patch (regressor, MeanShift and bicubic not counted)."""
    g = [v / 2e9 for v in APEEDSR(upscale=2).exit_flops_table(48)]
    assert abs(g[-1] - 93.85) <= 0.1 and abs((g[1] - g[0]) / 4 - 2.72) <= 0.01 and len(g) == 8
    assert abs(APEEDSR(upscale=3).exit_flops_table(48)[-1] / 2e9 - 100.7) <= 0.1
    assert abs(APEEDSR(upscale=4).exit_flops_table(48)[-1] / 2e9 - 115.8) <= 0.1
    rcan = [v / 2e9 for v in APERCAN(upscale=2, num_block=20).exit_flops_table(48)]
    assert abs(rcan[-1] - 35.36) <= 0.1 and abs(rcan[1] - rcan[0] - 3.49) <= 0.01 and len(rcan) == 10
    assert abs(APEVDSR(upscale=2).exit_flops_table(48)[-1] / 2e9 - 6.15) <= 0.03
    assert abs(APEVDSR(upscale=4).exit_flops_table(48)[-1] / 2e9 - 24.6) <= 0.1
    ecb = APEECBSR(upscale=4, num_block=16, num_feat=64).exit_flops_table(48)
    assert abs(ecb[-1] / 2e9 - 1.43) <= 0.01 and abs((ecb[1] - ecb[0]) / 2e9 - 0.085) <= 0.001
    from adaptsr.core.cost import count_flops
    net = tiny_edsr()  # the table equals a hook count of the plain forward, minus the MeanShift convs
    full = count_flops(net, torch.zeros(1, 3, 48, 48), norm_layers=False, transposed='input')
    assert net.exit_flops_table(48)[-1] == full - 2 * 9 * (48 * 48 + 96 * 96)


@pytest.mark.parametrize('arch, kwargs', [
    (APEEDSR, dict(upscale=4, num_feat=16, num_block=4, exit_interval=2)),
    (APERCAN, dict(upscale=3, num_feat=16, num_block=4, num_group=2, reduction=4)),
    (APEVDSR, dict(upscale=2, num_feat=16, num_conv=4, exit_interval=2)),
    (APEECBSR, dict(upscale=4, num_block=4, num_feat=16, exit_interval=2)),
    (APEECBSR, dict(upscale=4, num_block=4, num_feat=16, exit_interval=2, exit_tails='separate')),
])
def test_exit_flops_at_any_size_need_no_forward_at_that_size(arch, kwargs, monkeypatch):
    """The table at an image's size comes from the count's exact law in the size (probes of at most 33 pixels) and
    equals a hook count at that size; a whole image of a new size runs one forward, not a second one to count it."""
    net = arch(**kwargs).eval()
    probed = []
    count = net.count_exit_flops
    monkeypatch.setattr(net, 'count_exit_flops', lambda h, w: probed.append((h, w)) or count(h, w))
    for h, w in ((37, 53), (48, 46), (161, 256), (5, 3)):
        assert net.exit_flops_table(h, w) == [float(v) for v in count(h, w)], (h, w)
    assert net._flops_law.exact and max(max(p) for p in probed) <= 33 and len(probed) == 5
    with torch.no_grad():
        net.infer(torch.rand(1, 3, 29, 31), exit_threshold=1.0)
    assert len(probed) == 5


def test_size_law_falls_back_to_a_count_at_the_size_where_the_law_is_not_bilinear():
    from adaptsr.core.cost import SizeLaw, count_flops
    strided = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, stride=2, padding=1), torch.nn.Conv2d(4, 4, 3))
    sizes = []

    def count_at(h, w):
        sizes.append((h, w))
        return count_flops(strided, torch.zeros(1, 3, h, w))

    law = SizeLaw(count_at)
    assert not law.exact and law(37, 53) == [float(count_flops(strided, torch.zeros(1, 3, 37, 53)))]
    assert sizes[-1] == (37, 53)
    square = SizeLaw(lambda h, w: [h * w * 7, 3 * h + 2, 5])  # a polynomial of each kind is extended exactly
    assert square.exact and square(1001, 999) == [1001 * 999 * 7.0, 3005.0, 5.0]


def test_ic_targets_are_detached_and_follow_the_psnr_gains():
    from adaptsr.methods.ape.ape_loss import APEICLoss, ic_targets, per_sample_psnr
    hr = read_rgb(require(osp.join(BENCHMARK, 'Set5/HR/bird.png')))[..., :64, :64].repeat(2, 1, 1, 1)
    outs = [(hr + 0.05 * torch.randn_like(hr)).requires_grad_(), (hr + 0.01 * torch.randn_like(hr)).requires_grad_()]
    t = ic_targets(outs, hr, shave=10)
    p0, p1 = per_sample_psnr(outs[0].detach(), hr, 10), per_sample_psnr(outs[1].detach(), hr, 10)
    assert torch.allclose(t[0], 1 - torch.tanh(p0)) and float(t[0].max()) < 1e-6  # exit 0: about 0 (dead exit)
    assert torch.allclose(t[1], 1 - torch.tanh(p1 - p0))
    assert not t[0].requires_grad and not t[1].requires_grad
    ics = [torch.zeros(2, 1, requires_grad=True), torch.zeros(2, 1, requires_grad=True)]
    loss = APEICLoss()(ics, outs, hr, 10)
    loss.backward()
    assert outs[0].grad is None and outs[1].grad is None  # no gradient through the target
    assert ics[0].grad is not None and abs(float(loss) - float(sum((tt ** 2).mean() for tt in t))) < 1e-6
    remaining = ic_targets(outs, hr, shave=10, target='remaining')
    assert torch.allclose(remaining[0], 1 - torch.tanh((p1 - p0).clamp_min(0)))
    assert torch.equal(remaining[1], torch.ones(2))  # nothing is left to gain at the last exit
    with torch.no_grad():
        loss_rem = APEICLoss(target='remaining')(ics, outs, hr, 10)
    assert abs(float(loss_rem) - float((remaining[0] ** 2).mean() + 1)) < 1e-5
    with pytest.raises(ValueError, match="target must be one of"):
        APEICLoss(target='gain')
    # remaining_mse: the absolute squared error the last exit still removes; a flat patch whose small error is halved
    # (3 dB) keeps a higher target (leaves sooner) than a textured one that gains 1 dB on a large error
    by_mse = ic_targets(outs, hr, shave=10, target='remaining_mse', mse_scale=1000)
    m0, m1 = [((o.detach() - hr)[..., 10:-10, 10:-10] ** 2).flatten(1).mean(1) for o in outs]
    assert torch.allclose(by_mse[0], 1 - torch.tanh(1000 * (m0 - m1).clamp_min(0))) and torch.equal(by_mse[1],
                                                                                                      torch.ones(2))
    flat = [hr + 0.004 * torch.randn_like(hr), hr + 0.004 / 2 ** 0.5 * torch.randn_like(hr)]
    textured = [hr + 0.05 * torch.randn_like(hr), hr + 0.05 * 10 ** -0.05 * torch.randn_like(hr)]
    assert float(ic_targets(flat, hr, 10, target='remaining')[0].mean()) < \
        float(ic_targets(textured, hr, 10, target='remaining')[0].mean())  # by dB the flat patch has more to gain
    assert float(ic_targets(flat, hr, 10, target='remaining_mse')[0].mean()) > \
        float(ic_targets(textured, hr, 10, target='remaining_mse')[0].mean())
    with pytest.raises(ValueError, match='mse_scale must be > 0'):
        APEICLoss(target='remaining_mse', mse_scale=0)
    # psnr_scale: the dB differences scaled before the tanh (1 = the paper)
    assert torch.allclose(ic_targets(outs, hr, 10, target='remaining', psnr_scale=5)[0],
                          1 - torch.tanh(5 * (p1 - p0).clamp_min(0)))
    assert torch.allclose(ic_targets(outs, hr, 10, psnr_scale=0.5)[1], 1 - torch.tanh(0.5 * (p1 - p0)))
    with pytest.raises(ValueError, match='psnr_scale must be > 0'):
        APEICLoss(target='remaining', psnr_scale=-1)
    mse = ((outs[0].detach() - hr)[..., 10:-10, 10:-10] ** 2).mean()
    assert abs(float(p0.mean()) - float(-10 * torch.log10(mse))) < 0.05


def test_exit_weights_weigh_each_exits_l1_and_bad_weights_are_named():
    from adaptsr.methods.ape.ape_loss import APEExitL1Loss
    hr = read_rgb(require(osp.join(BENCHMARK, 'Set5/HR/bird.png')))[..., :64, :64]
    outs = [hr + 0.04, hr - 0.02, hr + 0.01]
    plain, weighted = APEExitL1Loss(255.), APEExitL1Loss(255., exit_weights=[0, 1, 4])
    assert abs(float(plain(outs, hr)) - 255 * 0.07) < 1e-3
    assert abs(float(weighted(outs, hr)) - 255 * (0.02 + 4 * 0.01)) < 1e-3
    grads = [o.clone().requires_grad_() for o in outs]
    weighted(grads, hr).backward()
    assert grads[0].grad is None and grads[2].grad.abs().mean() > 3 * grads[1].grad.abs().mean()
    with pytest.raises(ValueError, match='2 entries for 3 exits'):
        APEExitL1Loss(exit_weights=[1, 1])(outs, hr)
    with pytest.raises(ValueError, match='exit_weights must be >= 0'):
        APEExitL1Loss(exit_weights=[1, -1, 1])


def _model(tmp_path, pretrain=None, iters=3):
    from basicsr.models import build_model
    from conftest import model_options
    train = {'optim_g': {'type': 'Adam', 'lr': 1e-4}, 'phases': [
        {'name': 'ape', 'iters': iters, 'losses': {'exit_l1': {'type': 'APEExitL1Loss', 'loss_weight': 255.},
                                                   'ic': {'type': 'APEICLoss', 'loss_weight': 1.}}}]}
    val = {'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True}}}
    return build_model(model_options(tmp_path, 'APEModel', {'type': 'APEECBSR', 'upscale': 4, 'num_block': 6,
                                                            'num_feat': 40}, is_train=True, pretrain=pretrain,
                                     train=train, val=val, path={'strict_load_g': False}))


def test_training_step_moves_every_parameter_and_the_regressor_learns(tmp_path):
    model = _model(tmp_path, pretrain=require(osp.join(WEIGHTS, ECBSR_FILE)))
    gt = read_rgb(require(osp.join(BENCHMARK, 'Set14/HR/baboon.png')))[..., :128, :128]
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set14/LR_bicubic/X4/baboonx4.png')))[..., :32, :32]
    net = model.net_g
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    model.update_learning_rate(1)
    model.feed_data({'lq': lq, 'gt': gt})
    model.optimize_parameters(1)
    assert {'l_exit_l1', 'l_ic', 'ic_0', 'ic_5'} <= set(model.log_dict)
    changed = {n for n, p in net.named_parameters() if not torch.equal(p, before[n])}
    assert changed == set(before)  # all parameters train (the paper's fine-tuning), regressor included


def test_the_three_phase_recipe_trains_the_backbone_then_the_exits_then_the_regressor(tmp_path):
    """options/train/ape_edsr_baseline_x4_291.yml's phases on a tiny EDSR: ``forward: backbone`` trains head, body and
    tail on the final SR alone (one output, no regressor gradient), the exit phase moves every exit's units with the
    exit L1, and the regressor phase moves the regressor alone."""
    from basicsr.models import build_model
    from conftest import model_options
    l1 = {'exit_l1': {'type': 'APEExitL1Loss', 'loss_weight': 255., 'exit_weights': [1, 2]}}
    train = {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'phases': [
        {'name': 'backbone', 'iters': 1, 'forward': 'backbone', 'trainable': ['head', 'body', 'tail'],
         'losses': {'l1': {'type': 'L1Loss', 'loss_weight': 1.0}}},
        {'name': 'exits', 'iters': 1, 'trainable': ['head', 'body', 'tail'], 'losses': l1},
        {'name': 'regressor', 'iters': 1, 'trainable': ['regressor'],
         'losses': {'ic': {'type': 'APEICLoss', 'loss_weight': 1.}}}]}
    net_opt = {'type': 'APEEDSR', 'upscale': 4, 'num_feat': 8, 'num_block': 4, 'res_scale': 1.0, 'exit_interval': 2}
    torch.manual_seed(0)  # a random tiny net can start with its regressor saturated (tanh' = 0: nothing to learn)
    model = build_model(model_options(tmp_path, 'APEModel', net_opt, is_train=True, train=train))
    gt = read_rgb(require(osp.join(BENCHMARK, 'Set14/HR/baboon.png')))[..., :128, :128]
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set14/LR_bicubic/X4/baboonx4.png')))[..., :32, :32]
    net = model.get_bare_model(model.net_g)
    moved, logs = [], []
    for it in (1, 2, 3):
        before = {n: p.detach().clone() for n, p in net.named_parameters()}
        model.update_learning_rate(it)
        model.feed_data({'lq': lq, 'gt': gt})
        model.optimize_parameters(it)
        moved.append({n.split('.')[0] for n, p in net.named_parameters() if not torch.equal(p, before[n])})
        logs.append(set(model.log_dict))
        if it == 1:
            assert model.output.shape == gt.shape  # the final SR alone, not a list of exits
    assert moved[0] == {'head', 'body', 'tail'} and moved[1] == {'head', 'body', 'tail'}
    assert moved[2] == {'regressor'}
    assert logs == [{'l_l1'}, {'l_exit_l1', 'ic_0', 'ic_1'}, {'l_ic', 'ic_0', 'ic_1'}]
    # the saved file describes itself (its training options in meta): adaptsr.load rebuilds this EDSR-APE from it
    # alone, exit interval and residual scaling included, which its weights do not tell
    import adaptsr
    model.save_network(model.net_g, 'net_g', 3)
    path = osp.join(model.opt['path']['models'], 'net_g_3.pth')
    from adaptsr.core.checkpoints import recognise_checkpoint
    found = recognise_checkpoint(path)
    assert (found.arch, found.model_type, found.method, found.scale) == ('APEEDSR', 'APEModel', 'ape', 4)
    assert found.kwargs == {k: v for k, v in net_opt.items() if k != 'type'}
    runner = adaptsr.load(path, exit_threshold=0.5)
    assert runner.opt['model_type'] == 'APEModel'
    net.eval().to(memory_format=torch.contiguous_format)  # training ran channels_last (train.channels_last, CPU)
    with torch.no_grad():
        assert torch.equal(runner.model.get_bare_model(runner.model.net_g).forward_backbone(lq),
                           net.forward_backbone(lq))


def test_a_backbone_phase_refuses_exit_losses_and_unknown_forwards(tmp_path):
    from basicsr.models import build_model
    from adaptsr.core.errors import OptionError
    from conftest import model_options
    net_opt = {'type': 'APEEDSR', 'upscale': 4, 'num_feat': 8, 'num_block': 4, 'exit_interval': 2}
    for phase, message in (({'forward': 'backbone', 'losses': {'ic': {'type': 'APEICLoss'}}},
                            r'train.phases\[0\].losses.ic: a phase with forward: backbone has no exits'),
                           ({'forward': 'exit', 'losses': {'l1': {'type': 'L1Loss'}}},
                            r"train.phases\[0\].forward must be one of \('exits', 'backbone'\), got 'exit'")):
        train = {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'phases': [dict(name='p', iters=1, **phase)]}
        with pytest.raises(OptionError, match=message):
            build_model(model_options(tmp_path, 'APEModel', net_opt, is_train=True, train=train))


def test_tiled_inference_covers_any_size_and_images_smaller_than_a_tile(tmp_path):
    """Model test(): 48/46 tiles cover the whole image (the official code drops the border); sizes that 46 does not
    divide and images smaller than a tile work; costs follow the exit histogram; the exit map is saved."""
    import cv2
    model = _model(tmp_path, pretrain=require(osp.join(WEIGHTS, ECBSR_FILE)))
    lq_full = read_rgb(require(osp.join(BENCHMARK, 'Set14/LR_bicubic/X4/baboonx4.png')))
    net = model.net_g
    for size in ((30, 21), (101, 77), tuple(lq_full.shape[-2:])):
        lq = lq_full[..., :size[0], :size[1]]
        model.feed_data({'lq': lq})
        model.apply_budget(1.0)
        model.test()
        assert model.output.shape[-2:] == (size[0] * 4, size[1] * 4)
        with torch.no_grad():
            net.eval()
            if size == (30, 21):
                # one tile: the image itself (in forward_exit's CPU layout, channels_last)
                assert torch.equal(model.output, net(lq.contiguous(memory_format=torch.channels_last)))
        v = model.cost_metric_values()
        assert v['mean_exit'] == 5 and v['flops_ratio'] == 1.0
    with torch.no_grad():
        net.regressor[2].weight.zero_()
        net.regressor[2].bias.fill_(0.5)  # IC = tanh(0.5) = 0.46 everywhere
    model.apply_budget(0.4)
    model.test()
    v = model.cost_metric_values()
    table = net.exit_flops_table(48)
    assert v['mean_exit'] == 0 and abs(v['flops_ratio'] - table[0] / table[-1]) < 1e-9
    assert v['exit_hist_0'] == 1.0 and abs(v['gmacs_per_patch'] - table[0] / 2e9) < 1e-9
    path = str(tmp_path / 'baboon.png')
    model.save_extra_images(path)
    exits = cv2.imread(str(tmp_path / 'baboon_exits.png'))
    assert exits.shape[:2] == (lq_full.shape[2] * 4 + 22, lq_full.shape[3] * 4)  # the map and its caption bar


def test_official_crop_mode_keeps_the_patch_grid():
    from adaptsr.core.tiling import patch_grid_crop_size
    for n in (48, 93, 94, 100, 140, 141, 500):
        n_patches = (n - 48) // 46 + 1
        assert patch_grid_crop_size(n, 48, 46) == 46 * (n_patches - 1) + 48


def test_bad_input_is_rejected_clearly():
    net = tiny_edsr()
    with pytest.raises(ValueError, match='RGB'):
        net.forward_exit(torch.rand(1, 1, 16, 16), 0.5)
    with pytest.raises(ValueError, match='exit_interval'):
        APEEDSR(num_feat=8, num_block=4, exit_interval=3)
    with pytest.raises(ValueError, match='upscale'):
        APEEDSR(num_feat=8, num_block=4, upscale=5)
    from adaptsr.methods.ape.layouts import basicsr_to_ape
    with pytest.raises(ValueError, match='cannot load into APEEDSR'):
        basicsr_to_ape({'conv_first.weight': 0, 'body.0.residual_group.0.rcab.0.weight': 0}, net)


def test_registered_names():
    import adaptsr.archs  # noqa: F401
    import adaptsr.losses  # noqa: F401
    import adaptsr.models  # noqa: F401
    from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY
    for name in ('APEEDSR', 'APERCAN', 'APEVDSR', 'APEECBSR'):
        assert name in ARCH_REGISTRY
    assert 'APEExitL1Loss' in LOSS_REGISTRY and 'APEICLoss' in LOSS_REGISTRY and 'APEModel' in MODEL_REGISTRY
    assert osp.exists(osp.join(ROOT, 'options/train/ape_ecbsr_m6c40_x4_demo.yml'))


@pytest.mark.slow
def test_demo_training_then_threshold_sweep_trades_psnr_for_flops(tmp_path, demo_data):
    """options/train/ape_ecbsr_m6c40_x4_demo.yml from the official ECBSR weights, then a sweep on Set5 x4: FLOPs and
    PSNR fall together as the threshold falls; threshold 1 stays well above bicubic. (This short fine-tune on the
    demo images leaves the early exits below bicubic: measured 29.38 dB at threshold 1, 27.66 at 0.6, bicubic 28.43.)"""
    from basicsr.models import build_model
    from basicsr.utils.registry import ARCH_REGISTRY
    from adaptsr.bench.measure import quality
    from conftest import train_demo
    require(osp.join(WEIGHTS, ECBSR_FILE))
    opt, exp = train_demo(tmp_path, demo_data, 'ape_ecbsr_m6c40_x4_demo.yml')
    ckpt = exp / 'models' / 'net_g_latest.pth'
    from conftest import model_options
    model = build_model(model_options(tmp_path, 'APEModel', dict(opt['network_g']), pretrain=str(ckpt)))
    bicubic = ARCH_REGISTRY.get('BicubicSR')(upscale=4)
    rows = {}
    for thr in (1.0, 0.99, 0.96, 0.6):
        model.apply_budget(thr)
        psnr, flops, full, bic = [], [], [], []
        for name in ('baby', 'bird', 'butterfly', 'head', 'woman'):
            lq = read_rgb(require(osp.join(BENCHMARK, f'Set5/LR_bicubic/X4/{name}x4.png')))
            gt = read_rgb(osp.join(BENCHMARK, f'Set5/HR/{name}.png'))[..., :lq.shape[2] * 4, :lq.shape[3] * 4]
            model.feed_data({'lq': lq, 'gt': gt})
            model.test()
            psnr.append(quality(model.output, gt, 4)['psnr_y'])
            flops.append(model.cost['flops'])
            full.append(model.cost['flops_full'])
            with torch.no_grad():
                bic.append(quality(bicubic(lq), gt, 4)['psnr_y'])
        rows[thr] = (sum(psnr) / 5, sum(flops) / sum(full), sum(bic) / 5)
    (p1, r1, b), (p99, r99, _), (p96, r96, _), (p6, r6, _) = (rows[t] for t in (1.0, 0.99, 0.96, 0.6))
    assert r1 == 1.0 and p1 > b + 0.5, rows
    assert r1 > r99 >= r96 >= r6 and r6 < 0.8, rows  # FLOPs fall with the threshold ...
    assert p1 > p99 > p6, rows                        # ... and PSNR with them


def test_exit_oracle_bounds_the_exit_decisions_on_set5(tmp_path):
    """scripts/ape_exit_oracle.py on the released ECBSR as an APE network (separate tails, all the released tail):
    its full-depth PSNR is the released network's on the same 48-pixel tiles, the FLOPs saving grows with the
    multiplier up to every tile at exit 0, and the headline point keeps its PSNR budget."""
    import json
    from adaptsr.methods.baselines.ecbsr_arch import ECBSRPlain
    from adaptsr.core.tiling import tiled_forward
    from adaptsr.bench.measure import quality
    from conftest import run_script
    sd = ecbsr_sd()
    ape = APEECBSR(upscale=4, num_block=6, num_feat=40, exit_tails='separate').eval()
    ape.load_state_dict(ape.adapt_state_dict(sd), strict=False)
    torch.save({'params': ape.state_dict()}, tmp_path / 'ape.pth')
    lr_dir, hr_dir = require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X4')), require(osp.join(BENCHMARK, 'Set5/HR'))
    report = tmp_path / 'oracle.json'
    proc = run_script(['scripts/ape_exit_oracle.py', '--model', str(tmp_path / 'ape.pth'), '--lr', lr_dir, '--hr',
                       hr_dir, '--scale', '4', '--max-images', '2', '--threads', '1', '--json', str(report)])
    result = json.loads(report.read_text())
    assert 'oracle: at most' in proc.stdout and result['images'] == 2
    plain = ECBSRPlain(upscale=4, num_block=6, num_feat=40).eval()
    plain.load_state_dict(sd, strict=True)
    psnr = []
    for name in sorted(n for n in __import__('os').listdir(hr_dir))[:2]:  # load_pairs' order: sorted LR names
        stem = osp.splitext(name)[0]
        lq = read_rgb(osp.join(lr_dir, f'{stem}x4.png'))
        gt = read_rgb(osp.join(hr_dir, name))[..., :lq.shape[-2] * 4, :lq.shape[-1] * 4]
        with torch.no_grad():
            sr = tiled_forward(lambda t: plain(t.contiguous(memory_format=torch.channels_last)), lq, 4, 48, 2,
                               tile_batch=8)  # the oracle's batches and layout on the CPU
        psnr.append(quality(sr.clamp(0, 1), gt, 4)['psnr_y'])
    assert abs(result['full_psnr_y'] - sum(psnr) / 2) < 1e-6
    savings = [p['saving'] for p in result['points']]
    assert all(b >= a - 1e-9 for a, b in zip(savings, savings[1:]))
    last = result['points'][-1]
    assert last['exit_share'][0] == 1.0 and savings[0] == 0.0
    table = ape.exit_flops_table(48)
    assert last['saving'] == pytest.approx(1 - table[0] / table[-1], abs=0.02)  # border tiles are smaller
    assert result['best']['psnr_y'] >= result['full_psnr_y'] - 0.15


def test_the_oracle_rebuilds_an_image_from_recorded_tiles_exactly_as_a_run_with_those_exits():
    """scripts/ape_exit_oracle.py scores each sweep point from the tile outputs its first pass recorded: the image it
    composes for a per-tile exit choice equals the one a forward with those exits gives, bit for bit."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('ape_exit_oracle', osp.join(ROOT, 'scripts', 'ape_exit_oracle.py'))
    oracle = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(oracle)
    net = tiny_edsr(seed=3)
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X2/butterflyx2.png')))[..., :70, :90]
    tiles = []
    for e in range(net.num_exits):
        tiles.append([])
        oracle.run(net, lq, 2, 24, 2, 5, lambda call, row, e=e: e, record=tiles[-1])
    choice = lambda call, row: (call * 7 + row * 3) % net.num_exits  # noqa: E731  (every exit used)
    expected, _ = oracle.run(net, lq, 2, 24, 2, 5, choice)
    assert torch.equal(oracle.compose(lq, 2, 24, 2, 5, tiles, choice), expected)


def test_the_oracle_scores_a_regressors_threshold_rule_as_forward_exit_runs_it(tmp_path):
    """scripts/ape_exit_oracle.py records each regressor's score of every tile at every exit in its full-depth pass;
    the image it composes for a threshold (each tile at the first exit whose score reaches it) is the one
    ``forward_exit`` gives with that threshold, and a checkpoint whose exits differ is refused by name."""
    import importlib.util
    from adaptsr.core.tiling import tiled_forward
    spec = importlib.util.spec_from_file_location('ape_exit_oracle', osp.join(ROOT, 'scripts', 'ape_exit_oracle.py'))
    oracle = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(oracle)
    net = APEEDSR(num_feat=8, num_block=8, exit_interval=2, upscale=2, res_scale=1.0).eval()  # 4 exits
    torch.manual_seed(5)
    torch.nn.init.normal_(net.regressor[2].weight, std=2.0)  # scores spread over (-1, 1)
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X2/butterflyx2.png')))[..., :70, :90]
    tiles, scores = [], []
    for e in range(net.num_exits):
        tiles.append([])
        oracle.run(net, lq, 2, 24, 2, 5, lambda call, row, e=e: e, record=tiles[-1], regressors=[net.regressor],
                   scores=scores if e == net.num_exits - 1 else None)
    assert len(scores) == len(tiles[0]) and scores[0].shape == (1, net.num_exits, tiles[0][0].shape[0])
    pooled = np.concatenate([s[0, :-1].ravel() for s in scores])
    assert not np.isnan(pooled).any() and pooled.std() > 0.05
    for t in np.quantile(pooled, [0.3, 0.7]).tolist() + [1.0]:
        choice = lambda call, row, t=t: int(oracle.threshold_exit(scores[call][0], t)[row])  # noqa: E731
        composed = oracle.compose(lq, 2, 24, 2, 5, tiles, choice)
        with torch.no_grad():
            expected = tiled_forward(lambda x: net.forward_exit(x, t)[0], lq, 2, 24, 2, tile_batch=5)
        assert torch.allclose(composed, expected, atol=1e-5), t
    other = APEEDSR(num_feat=8, num_block=8, exit_interval=2, upscale=2, res_scale=1.0)
    meta = {'trained_with': {'network_g': {'type': 'APEEDSR', 'num_feat': 8, 'num_block': 8, 'exit_interval': 2,
                                           'upscale': 2, 'res_scale': 1.0}, 'model_type': 'APEModel', 'scale': 2}}
    torch.save({'params': other.state_dict(), 'meta': meta}, tmp_path / 'other.pth')
    with pytest.raises(SystemExit, match='not the same network as --model apart from the regressor'):
        oracle.load_regressor(str(tmp_path / 'other.pth'), net, 2)
    same = {k: v.clone() for k, v in net.state_dict().items()}
    same['regressor.2.bias'] += 1
    torch.save({'params': same, 'meta': meta}, tmp_path / 'same.pth')
    assert float(oracle.load_regressor(str(tmp_path / 'same.pth'), net, 2)[2].bias) == pytest.approx(
        float(net.regressor[2].bias) + 1)


def test_exit_timing_sends_every_tile_to_its_planned_exit_on_both_paths():
    """scripts/ape_exit_timing.py's stand-in regressor makes ``forward_exit``'s code send each tile to the exit planned
    for it (run_image checks the exits it took), in one pass and in the CPU's passes of ``cpu_chunk``, and the images
    are the same on both paths."""
    import importlib.util
    spec = importlib.util.spec_from_file_location('ape_exit_timing', osp.join(ROOT, 'scripts', 'ape_exit_timing.py'))
    timing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(timing)
    net = APEEDSR(num_feat=8, num_block=8, exit_interval=2, upscale=2, res_scale=1.0).eval()  # 4 exits
    net.regressor = timing.PlannedExits()
    net.cpu_chunk = 3
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X2/butterflyx2.png')))[..., :100, :100]
    plans = {}

    def plan_of(call, n):
        return plans.setdefault(call, (torch.arange(n) * 7 + call) % net.num_exits)

    out = {p: timing.run_image(net, lq, 2, plan_of, p, tile_batch=500) for p in ('batch', 'cpu')}
    assert sorted(set(torch.cat(list(plans.values())).tolist())) == [0, 1, 2, 3]  # the planned exits were taken
    assert torch.allclose(out['batch'], out['cpu'], atol=1e-5)


def test_the_oracle_probe_fits_on_the_even_images_and_scores_the_odd_ones(tmp_path):
    """``scripts/ape_exit_oracle.py --probe``: ridge regressors on the pooled exit features and the LR tiles' content
    (per-pixel and oracle-weighted targets), fitted on the even-numbered images, scored exactly on the odd-numbered
    ones beside the oracle and the own regressor there. At ``lam = 0`` no tile leaves early (the predicted added error
    is positive): full depth, 0 saved; at the largest multiplier every tile leaves at exit 0, the same image as the
    oracle's every-tile-at-exit-0 point; one image is refused by name."""
    import json
    from conftest import run_script
    torch.manual_seed(0)
    net = APEEDSR(num_feat=8, num_block=8, exit_interval=2, upscale=2, res_scale=1.0).eval()
    meta = {'trained_with': {'network_g': {'type': 'APEEDSR', 'num_feat': 8, 'num_block': 8, 'exit_interval': 2,
                                           'upscale': 2, 'res_scale': 1.0}, 'model_type': 'APEModel', 'scale': 2}}
    torch.save({'params': net.state_dict(), 'meta': meta}, tmp_path / 'ape.pth')
    lr_dir, hr_dir = require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X2')), require(osp.join(BENCHMARK, 'Set5/HR'))
    args = ['scripts/ape_exit_oracle.py', '--model', str(tmp_path / 'ape.pth'), '--lr', lr_dir, '--hr', hr_dir,
            '--scale', '2', '--threads', '1', '--probe']
    proc = run_script(args + ['--max-images', '4', '--json', str(tmp_path / 'oracle.json')])
    probe = json.loads((tmp_path / 'oracle.json').read_text())['probe']
    assert probe['fit_images'] == 2 and probe['held_images'] == 2
    assert 'probe ridge on mean+std: ' in proc.stdout and 'probe oracle: ' in proc.stdout
    for name in ('mean', 'mean+std', 'LR content', 'LR content, weighted', 'mean + LR content, weighted'):
        rows = probe[name]['points']
        assert np.isfinite(probe[name]['r2'])
        assert rows[0]['saving'] == 0.0 and rows[0]['psnr_y'] == pytest.approx(probe['held_full_psnr_y'], abs=1e-9)
        assert rows[-1]['exit_share'][0] == 1.0
        assert rows[-1]['psnr_y'] == pytest.approx(probe['oracle'][-1]['psnr_y'], abs=1e-9)
    proc = run_script(args + ['--max-images', '1'], check=False)
    assert proc.returncode == 2 and '--probe fits on half of the images' in proc.stderr
