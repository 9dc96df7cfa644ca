"""val.precision: bf16 inference under autocast with each arch's fp32_modules in float32 (adaptsr.core.precision)."""
import os.path as osp

import numpy as np
import pytest
import skimage.data
import torch
from conftest import ROOT, WEIGHTS, require, run_script

import adaptsr
from adaptsr.core import precision as precision_mod
from adaptsr.core.precision import (PrecisionWarning, check_precision, cpu_bf16_units, inference_precision,
                                    slow_bf16_notice)


@pytest.fixture(scope='module')
def lr():
    """A 48x48 crop of scikit-image's astronaut: (1, 3, 48, 48) in [0, 1]."""
    img = skimage.data.astronaut()[100:148, 200:248].astype(np.float32) / 255
    return torch.from_numpy(img.transpose(2, 0, 1).copy())[None]


class _Toy(torch.nn.Module):
    fp32_modules = ('last', )

    def __init__(self):
        super().__init__()
        self.first, self.last = torch.nn.Conv2d(3, 8, 3, 1, 1), torch.nn.Conv2d(8, 3, 3, 1, 1)
        self.seen = {}
        self.first.register_forward_hook(lambda m, i, o: self.seen.__setitem__('first', o.dtype))
        self.last.register_forward_hook(lambda m, i, o: self.seen.__setitem__('last', o.dtype))

    def forward(self, x):
        return self.last(torch.relu(self.first(x)))


def test_declared_modules_run_in_float32_and_the_rest_in_bf16(lr):
    net = _Toy().eval()
    with torch.no_grad(), inference_precision(net, 'bf16'):
        out = net(lr)
    assert net.seen == {'first': torch.bfloat16, 'last': torch.float32} and out.dtype == torch.float32
    with torch.no_grad():  # the declared module: float32 on the bf16 features
        with torch.autocast('cpu', dtype=torch.bfloat16):
            feat = torch.relu(net.first(lr))
        assert feat.dtype == torch.bfloat16 and torch.equal(out, net.last(feat.float()))
    assert 'forward' not in net.last.__dict__  # the class's forward is back after the block
    with torch.no_grad(), inference_precision(net, 'fp32'):
        net(lr)
    assert net.seen['first'] == torch.float32


def test_unknown_precisions_and_fp16_on_the_cpu_are_refused():
    with pytest.raises(ValueError, match="val.precision: 'bf8' is not a precision"):
        check_precision('bf8')
    with pytest.raises(ValueError, match='fp16 runs on CUDA only'):
        check_precision('fp16', 'cpu')


def test_bf16_on_a_cpu_without_amx_is_named_once_and_kept(lr, monkeypatch):
    """bf16 pays on AMX tiles only: chosen on a CPU with AVX512-BF16 alone, one warning per option (the choice is
    kept and runs); with AMX-BF16, on CUDA and for fp32, none."""
    assert set(cpu_bf16_units()) <= {'amx_bf16', 'avx512_bf16'}
    caps = {'amx_bf16': False, 'avx512_bf16': True}
    monkeypatch.setattr(torch.cpu, 'get_capabilities', lambda: caps)
    monkeypatch.setattr(precision_mod, '_NOTICED', set())
    assert cpu_bf16_units() == ('avx512_bf16', )
    assert slow_bf16_notice('fp32') is None and slow_bf16_notice('bf16', 'cuda') is None
    with pytest.warns(PrecisionWarning, match=r'val.precision: bf16 on this CPU \(AVX512-BF16 only, no AMX-BF16\) '
                      r'may be slower than fp32 .*networks 0.77-0.88x.*adaptsr-bench --compare'):
        model = adaptsr.load(require(osp.join(WEIGHTS, 'ETDS/ETDS_M6C32_x4.pth')), precision='bf16')
    with torch.no_grad():
        assert model(lr).shape == (1, 3, 192, 192)  # kept: it runs in bf16
    said = []
    assert slow_bf16_notice('bf16', where='val.precision', log=said.append) and said == []  # once per option
    assert slow_bf16_notice('bf16', where='train.precision', log=said.append) and len(said) == 1
    caps.update(amx_bf16=True)
    assert cpu_bf16_units() == ('amx_bf16', 'avx512_bf16') and slow_bf16_notice('bf16', where='x') is None
    caps.update(amx_bf16=False, avx512_bf16=False)
    assert 'no bfloat16 unit' in slow_bf16_notice('bf16', where='y', log=said.append)


def test_bf16_loads_by_knob_and_stays_close_to_fp32(lr):
    path = require(osp.join(WEIGHTS, 'ETDS/ETDS_M6C32_x4.pth'))
    with torch.no_grad():
        ref = adaptsr.load(path)(lr).clamp(0, 1)
        out = adaptsr.load(path, precision='bf16')(lr).clamp(0, 1)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    diff = (out - ref).abs()  # bf16 keeps 8 significant bits: about one 8-bit level on average, PSNR -0.005 dB
    assert 0 < float(diff.mean()) * 255 < 2.0 and float(diff.max()) * 255 < 16


def test_compile_runs_the_compiled_graph_from_the_second_call_and_refuses_adaptive_nets(lr, monkeypatch, tmp_path):
    """``compile=True`` (``--compile``, ``val.compile``): the first call of a size counts the cost eagerly, later
    calls of that size run ``torch.compile``'s graph, with the eager output and cost; an adaptive network (its own
    ``infer``) is refused, naming the option."""
    from adaptsr.core.options import OptionError
    path = require(osp.join(WEIGHTS, 'ETDS/baselines/ESPCN_x4.pth'))
    calls = []
    real_compile = torch.compile

    def counting_compile(module, **kwargs):
        compiled = real_compile(module, **kwargs)

        def run(x):
            calls.append(tuple(x.shape))
            return compiled(x)
        return run

    monkeypatch.setattr(torch, 'compile', counting_compile)
    eager, compiled = adaptsr.load(path), adaptsr.load(path, compile=True)
    with torch.no_grad():
        ref = eager(lr)
        outs = [compiled(lr) for _ in range(2)]
    assert calls == [tuple(lr.shape)]  # the second call only
    assert all(float((out - ref).abs().max()) < 1e-5 for out in outs)
    assert compiled.stats['gflops'] == eager.stats['gflops'] > 0
    with pytest.raises(OptionError, match='val.compile'):
        import yaml
        opt = yaml.safe_load(open(require(osp.join(ROOT, 'options/test/smsr_x2.yml'))))
        opt['val']['compile'] = True
        (tmp_path / 'smsr_compile.yml').write_text(yaml.safe_dump(opt))
        adaptsr.load(str(tmp_path / 'smsr_compile.yml'))
    with pytest.raises(adaptsr.api.LoadError, match='has no knob compile'):  # not offered where it cannot apply
        adaptsr.load(require(osp.join(WEIGHTS, 'SMSR/SMSR_x2_model_1000.pt')), compile=True)
    with pytest.raises(adaptsr.api.LoadError, match='force_yml overrides a test options YAML'):  # never ignored
        adaptsr.load(path, force_yml=['val:compile=true'])


def _train_options(tmp_path, precision, **extra):
    from conftest import model_options
    train = {'precision': precision, 'total_iter': 2, **extra, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
             'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0},
             'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5}}
    net = {'type': 'ETDSPlain', 'upscale': 2, 'num_block': 2, 'num_feat': 8}
    return model_options(tmp_path, 'AdaptiveSRModel', net, is_train=True, train=train)


def test_a_bf16_training_step_keeps_float32_weights_gradients_and_loss(tmp_path, lr):
    from basicsr.models import build_model
    opt = _train_options(tmp_path, 'bf16')
    model = build_model(opt)
    assert model.train_dtype == torch.bfloat16
    seen = {}
    model.net_g.conv_first.register_forward_hook(lambda m, i, o: seen.__setitem__('conv', o.dtype))
    gt = torch.nn.functional.interpolate(lr, scale_factor=2, mode='bicubic').clamp(0, 1)
    model.feed_data({'lq': lr, 'gt': gt})
    before = model.net_g.conv_first.weight.detach().clone()
    model.optimize_parameters(1)
    w = model.net_g.conv_first.weight
    assert seen['conv'] == torch.bfloat16 and w.dtype == w.grad.dtype == torch.float32
    assert model.log_dict['l_pix'] > 0 and not torch.equal(before, w.detach())


def test_cpu_training_runs_channels_last_unless_told_and_matches_the_plain_layout(tmp_path, lr):
    """``train.channels_last`` (default on the CPU: oneDNN's float32 convolutions are faster in it): the network and
    the LR batch are in channels_last; a step gives the same loss and weights as in the plain layout, within float32
    rounding; a value that is not a boolean is refused naming the key."""
    from basicsr.models import build_model

    from adaptsr.core.options import OptionError
    gt = torch.nn.functional.interpolate(lr, scale_factor=2, mode='bicubic').clamp(0, 1)
    steps = {}
    for cl in (None, False):
        extra = {} if cl is None else {'channels_last': cl}
        torch.manual_seed(0)
        model = build_model(_train_options(tmp_path, 'fp32', **extra))
        weight = model.net_g.conv_first.weight
        assert model.train_channels_last is (cl is None)
        assert weight.is_contiguous(memory_format=torch.channels_last) is (cl is None)
        model.feed_data({'lq': lr, 'gt': gt})
        assert model.lq.is_contiguous(memory_format=torch.channels_last) is (cl is None)
        model.optimize_parameters(1)
        steps[cl] = (model.log_dict['l_pix'], weight.detach().clone())
    assert abs(steps[None][0] - steps[False][0]) < 1e-6
    assert torch.allclose(steps[None][1], steps[False][1], atol=1e-6)
    with pytest.raises(OptionError, match="train.channels_last: 'yes' is not true or false"):
        build_model(_train_options(tmp_path, 'fp32', channels_last='yes'))


def test_auto_chooses_bf16_only_where_the_device_has_fast_bf16_units(tmp_path, monkeypatch):
    """``auto`` (val.precision, train.precision, --precision): bf16 on a CPU with AMX-BF16 (and CUDA), fp32 on one
    with AVX512-BF16 alone or none; chosen once when the model is built, without the slow-bf16 warning."""
    from basicsr.models import build_model
    caps = {'amx_bf16': True, 'avx512_bf16': True}
    monkeypatch.setattr(torch.cpu, 'get_capabilities', lambda: caps)
    monkeypatch.setattr(precision_mod, '_NOTICED', set())
    assert check_precision('auto') == 'bf16'
    assert build_model(_train_options(tmp_path, 'auto')).train_dtype == torch.bfloat16
    caps.update(amx_bf16=False)
    assert check_precision('auto') == 'fp32' and check_precision('auto', where='train.precision') == 'fp32'
    opt = _train_options(tmp_path, 'auto')
    opt['val']['precision'] = 'auto'
    model = build_model(opt)
    assert model.train_dtype == torch.float32 and model.val_opt['precision'] == 'fp32'
    assert precision_mod._NOTICED == set()
    with pytest.raises(ValueError, match="'Auto' is not a precision; choose one of fp32, bf16, fp16 or auto"):
        check_precision('Auto')


def test_fp16_training_on_the_cpu_is_refused_naming_the_option(tmp_path):
    from basicsr.models import build_model

    from adaptsr.core.options import OptionError
    opt = _train_options(tmp_path, 'fp16')
    with pytest.raises(OptionError, match='train.precision: fp16 runs on CUDA only'):
        build_model(opt)


def test_pcsr_decisions_that_flip_in_bf16_are_counted_and_few():
    """scripts/pcsr_bf16_flips.py on Set5 x4 (2 images) with the official PCSR-CARN: it counts the HR pixels whose
    route differs between fp32 and bf16 per setting; they are a few percent at most and PSNR-Y moves < 0.03 dB."""
    from conftest import BENCHMARK, run_script
    model = require(osp.join(WEIGHTS, 'PCSR/carn-pcsr-phase1/iter_last.pth'))
    proc = run_script(['scripts/pcsr_bf16_flips.py', '--model', model, '--lr',
                       require(osp.join(BENCHMARK, 'Set5/LR_bicubic/X4')), '--hr', osp.join(BENCHMARK, 'Set5/HR'),
                       '--max-images', '2', '--threads', '1'])
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[2:]}
    assert set(rows) == {'k=0', 'k=1', 'ADM'}
    for name, (_, flipped, share, heavy32, heavy16, psnr32, psnr16) in rows.items():
        assert int(flipped) > 0 and float(share.rstrip('%')) < 5, (name, share)  # some flip, few
        assert abs(float(psnr32) - float(psnr16)) < 0.03, name


def test_training_flushes_subnormals_on_every_thread_of_the_pool():
    """flush_denormals (called by adaptsr-train before the pipeline) holds on the intra-op threads as well as the
    calling one: a 1M-element product (split over the pool) of normal floats whose result is subnormal comes out 0;
    without it the same product keeps its subnormal values."""
    code = ('import sys, torch; from adaptsr.core.precision import flush_denormals, denormals_flushed\n'
            'if sys.argv[1] == "1": assert flush_denormals() and denormals_flushed()\n'
            'assert denormals_flushed() == (sys.argv[1] == "1")\n'
            'torch.set_num_threads(2)\n'
            'x = torch.full((1 << 20,), 1e-30).mul(1e-10)\n'
            'print(int((x != 0).sum()), float(torch.tensor([1e-40])))\n')
    out = {flag: run_script(['-c', code, flag]).stdout.split() for flag in ('0', '1')}
    assert out['1'] == ['0', '0.0']
    assert out['0'][0] == str(1 << 20) and float(out['0'][1]) > 0
