"""Nothing lost, nothing silent: non-finite losses, non-finite checkpoints, test-time safety and unreadable inputs.

Grouped by case so that a failure names it; interrupted-training cases live in test_training.py / test_cabm.py.
"""
import os.path as osp

import pytest
import torch

from conftest import BENCHMARK, read_rgb, require

TINY_PCSR = {'type': 'PCSRNet', 'encoder': 'carn', 'encoder_opt': {'num_feat': 16}, 'heavy_hidden': [16, 16],
             'light_hidden': [8], 'cls_hidden': [8], 'upscale': 4}
PHASE = {'name': 'heavy', 'iters': 4, 'forward': 'heavy', 'trainable': ['encoder', 'heavy_sampler'],
         'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'losses': {'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}}}


def _train_model(tmp_path, nonfinite=None):
    from basicsr.models import build_model
    from conftest import model_options
    train = {'phases': [dict(PHASE)]}
    if nonfinite is not None:
        train['nonfinite'] = nonfinite
    return build_model(model_options(tmp_path, 'PCSRModel', dict(TINY_PCSR), is_train=True, train=train))


def _batch():
    lq = read_rgb(require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X4/birdx4.png')))[..., :16, :16]
    gt = read_rgb(osp.join(BENCHMARK, 'Set5/HR/bird.png'))[..., :64, :64]
    return {'lq': lq, 'gt': gt}


def _poisoned():
    batch = _batch()
    batch['lq'] = batch['lq'].clone()
    batch['lq'][..., 3, 3] = float('nan')
    return batch


# --------------------------------------------------------------------------------------------------- NaN / Inf
def test_nonfinite_loss_stops_before_the_step_naming_iteration_term_and_last_checkpoint(tmp_path):
    from adaptsr.models.phased_model import NonFiniteLossError
    model = _train_model(tmp_path)
    model.update_learning_rate(1)
    model.feed_data(_batch())
    model.optimize_parameters(1)
    model.save(0, 1)  # net_g_1.pth + 1.state: the last good checkpoint
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    model.update_learning_rate(2)
    model.feed_data(_poisoned())
    with pytest.raises(NonFiniteLossError) as err:
        model.optimize_parameters(2)
    msg = str(err.value)
    assert "iteration 2 (phase 'heavy')" in msg and 'l_pixel_opt = nan' in msg
    assert str(tmp_path / 'net_g_1.pth') in msg and str(tmp_path / '1.state') in msg
    params = dict(model.net_g.named_parameters())
    assert all(torch.equal(before[k], p) for k, p in params.items())  # no NaN step was taken


def test_nonfinite_skip_policy_skips_the_step_and_trains_on(tmp_path):
    model = _train_model(tmp_path, nonfinite='skip')
    model.update_learning_rate(1)
    model.feed_data(_poisoned())
    before = {k: v.clone() for k, v in model.net_g.state_dict().items()}
    model.optimize_parameters(1)
    assert all(torch.equal(before[k], v) for k, v in model.net_g.state_dict().items())
    model.update_learning_rate(2)
    model.feed_data(_batch())
    model.optimize_parameters(2)
    after = model.net_g.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())


def _nan_checkpoint(tmp_path):
    from adaptsr.archs.pcsr_arch import PCSRNet
    net = PCSRNet(**{k: v for k, v in TINY_PCSR.items() if k != 'type'})
    sd = net.state_dict()
    sd['encoder.entry.weight'][0, 0, 0, 0] = float('nan')
    path = tmp_path / 'diverged.pth'
    torch.save({'params': sd}, path)
    return net, str(path)


def test_a_nonfinite_checkpoint_is_refused_by_load_convert_and_export(tmp_path):
    from adaptsr.convert import check_finite, save_checkpoint
    from adaptsr.convert.onnx_export import export_onnx
    from adaptsr.convert.registry import load_into
    net, path = _nan_checkpoint(tmp_path)
    with pytest.raises(ValueError, match=r'diverged\.pth \[params\]: 1 tensor\(s\) hold NaN or Inf '
                                         r'\(encoder\.entry\.weight\)'):
        load_into(net, path)
    ckpt = torch.load(path, weights_only=True)
    with pytest.raises(ValueError, match=r'refusing to save .*out.pth: 1 tensor.*\(params.encoder.entry.weight\)'):
        save_checkpoint(ckpt, str(tmp_path / 'out.pth'))
    assert not (tmp_path / 'out.pth').exists()
    net.load_state_dict(ckpt['params'])
    with pytest.raises(ValueError, match='refusing to export PCSRNet'):
        export_onnx(net, str(tmp_path / 'out.onnx'))
    assert not (tmp_path / 'out.onnx').exists()
    check_finite({'a': torch.ones(2), 'b': [torch.arange(3)]}, 'fine')  # finite and integer tensors pass


def test_convert_script_refuses_a_nonfinite_checkpoint(tmp_path):
    from conftest import run_script
    _, path = _nan_checkpoint(tmp_path)
    proc = run_script(['scripts/convert_official.py', '--method', 'pcsr', '--input', path, '--output',
                       str(tmp_path / 'converted.pth')], check=False)
    assert proc.returncode != 0
    assert 'NaN or Inf' in proc.stderr and 'encoder.entry.weight' in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / 'converted.pth').exists()
