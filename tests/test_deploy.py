"""Deployment exports: TFLite fp32 / INT8 (litert-torch) and the PAMS w8a8 model as QDQ ONNX with its learned clips.

Each on a real photograph (scikit-image's), with small seeded networks so that the suite needs no shared files.
"""
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

import adaptsr  # noqa: F401
from adaptsr.methods.cabm.cabm_arch import CABMNet
from adaptsr.methods.etds.etds_arch import ETDSNet
from adaptsr.cli.export import main as export_main
from adaptsr.cli.infer import main as infer_main

pytest.importorskip('onnxruntime')


def _photo(h, w):
    """scikit-image's astronaut, a (1, 3, h, w) float32 crop in [0, 1] (area-downscaled: an LR-like image)."""
    from skimage import data
    img = cv2.resize(data.astronaut()[30:330, 120:420], (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img.transpose(2, 0, 1)[None].astype(np.float32) / 255)


def _psnr(a, b):
    return float(10 * np.log10(1 / np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64))**2)))


@pytest.fixture(scope='module')
def etds_ckpt(tmp_path_factory):
    """A seeded dual-stream ETDS x3 (2 blocks, 8 channels) checkpoint and its equivalent plain network."""
    from adaptsr.methods.etds.formats import et_convert
    torch.manual_seed(0)
    net = ETDSNet(upscale=3, num_block=2, num_feat=8, num_residual_feat=3).eval()
    path = str(tmp_path_factory.mktemp('etds') / 'etds_x3.pth')
    torch.save({'params': net.state_dict()}, path)
    plain, _ = et_convert(net)
    return path, plain.eval()


def test_tflite_fp32_equals_pytorch_and_tiles_to_the_whole_image(tmp_path, etds_ckpt):
    """fp32 TFLite = PyTorch within 1e-4 at its input size, and by tiles (crop merge, overlap 8 >= twice the
    receptive radius 4) on a photo larger than a tile."""
    pytest.importorskip('litert_torch')
    from adaptsr.deploy.tflite_export import TFLiteRunner, export_tflite
    _, plain = etds_ckpt
    res = export_tflite(plain, str(tmp_path / 'm.tflite'), input_size=32)
    assert res['scale'] == 3 and res['max_abs_diff'] < 1e-4
    runner = TFLiteRunner(res['path'], threads=1)
    assert (runner.tile, runner.overlap, runner.int8) == (32, 8, False)
    x = _photo(45, 70)
    with torch.no_grad():
        ref = plain(torch.from_numpy(x)).numpy()
    out = runner(torch.from_numpy(x)).numpy()
    assert out.shape == (1, 3, 135, 210) and np.abs(out - ref).max() < 1e-4
    with pytest.raises(FileExistsError):  # never replaced without overwrite
        export_tflite(plain, res['path'], input_size=32)


def test_tflite_int8_is_full_integer_and_close(tmp_path, etds_ckpt):
    """INT8 TFLite: int8 input/output, calibrated on photo patches of another size than the model's input, within
    30 dB PSNR of fp32 PyTorch on the photo (quantised: not equal)."""
    pytest.importorskip('litert_torch')
    from adaptsr.deploy.tflite_export import TFLiteRunner, quantize_tflite_int8
    _, plain = etds_ckpt
    calib = [_photo(24, 24), _photo(40, 30)]
    res = quantize_tflite_int8(plain, str(tmp_path / 'm8.tflite'), calib, input_size=32)
    runner = TFLiteRunner(res['path'], threads=1)
    assert runner.int8 and runner.input_detail['dtype'] == np.int8 and res['calibration_inputs'] == 2
    x = _photo(45, 70)
    with torch.no_grad():
        ref = plain(torch.from_numpy(x)).numpy()
    out = runner(torch.from_numpy(x)).numpy()
    assert 30 < _psnr(np.clip(out, 0, 1), np.clip(ref, 0, 1)) < 80
    with pytest.raises(ValueError, match='calibration inputs'):
        quantize_tflite_int8(plain, str(tmp_path / 'x.tflite'), [np.zeros((1, 3, 4, 4), np.float32)], 32)


def test_tflite_export_command_and_infer(tmp_path, etds_ckpt, capsys):
    """``adaptsr-export --output x.tflite --int8 y.tflite`` on a training-form checkpoint (ET first), then
    ``adaptsr-infer --model x.tflite`` on a photo; a wrong --int8 extension or scale is refused naming the file."""
    pytest.importorskip('litert_torch')
    path, plain = etds_ckpt
    fp32, int8 = str(tmp_path / 'm.tflite'), str(tmp_path / 'm8.tflite')
    export_main(['--input', path, '--scale', '3', '--output', fp32, '--int8', int8, '--input-size', '32',
                 '--calib-patch', '24', '--calib-lr'] + ['--calib', _photo_file(tmp_path)])
    assert osp.getsize(fp32) > 0 and osp.getsize(int8) > 0
    out = str(tmp_path / 'sr')
    infer_main([_photo_file(tmp_path), '-o', out, '--model', fp32, '--quiet', '--threads', '1'])
    sr = cv2.imread(osp.join(out, 'photo.png'))
    assert sr.shape == (135, 210, 3)
    with torch.no_grad():
        ref = plain(torch.from_numpy(_photo(45, 70))).clamp(0, 1).numpy()[0].transpose(1, 2, 0)[:, :, ::-1]
    assert np.abs(sr.astype(np.float64) - np.round(ref * 255)).max() <= 1  # the model's own output, 8-bit
    with pytest.raises(SystemExit):
        export_main(['--input', path, '--scale', '3', '--output', str(tmp_path / 'a.tflite'), '--int8',
                     str(tmp_path / 'a.onnx')])
    assert 'a.onnx: must be a .tflite file' in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r'etds_x3.pth: .*x2'):  # another scale
        export_main(['--input', path, '--scale', '2', '--output', str(tmp_path / 'b.tflite')])
    other = str(tmp_path / 'pcsr.pth')  # another arch
    torch.save({'params': {'classifier.imnet.layers.0.weight': torch.zeros(2, 2)}}, other)
    with pytest.raises(SystemExit, match=r'pcsr.pth: not the state_dict of a known arch'):
        export_main(['--input', other, '--scale', '3', '--output', str(tmp_path / 'c.tflite')])
    assert not any(osp.exists(tmp_path / f) for f in ('b.tflite', 'c.tflite'))


def _photo_file(tmp_path):
    f = tmp_path / 'photo.png'
    if not f.exists():
        cv2.imwrite(str(f), (_photo(45, 70)[0].transpose(1, 2, 0)[:, :, ::-1] * 255).round().astype(np.uint8))
    return str(f)


@pytest.fixture(scope='module')
def pams_ckpt(tmp_path_factory):
    """A seeded CABMNet(ECBSRPlain M2C8 x2) whose PAMS clips were initialised from a photo (PAMS' alpha init),
    saved as a checkpoint; returns (path, the network in PAMS w8a8 mode)."""
    torch.manual_seed(0)
    net = CABMNet(backbone={'type': 'ECBSRPlain', 'num_block': 2, 'num_feat': 8, 'upscale': 2}, quant_layers='body',
                  mode='pams')
    net.set_alpha_init(True)
    net.train()
    with torch.no_grad():
        net(torch.from_numpy(_photo(40, 48)))
    net.set_alpha_init(False)
    net.eval()
    path = str(tmp_path_factory.mktemp('pams') / 'pams_x2.pth')
    torch.save({'params': net.state_dict()}, path)
    return path, net


def test_pams_qdq_onnx_computes_the_simulated_pams(tmp_path, pams_ckpt):
    """The PAMS w8a8 export (outputs float, the default) computes adaptsr's PAMS simulation (the quantisation levels
    are the same; a rounding tie may flip one level); with int8 outputs (integer convolutions) it stays close.
    Weights are int8 initialisers on PAMS' grid, the clips are the learned ones."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper
    path, net = pams_ckpt
    fp32, exact, int8 = (str(tmp_path / f) for f in ('fp.onnx', 'exact.onnx', 'int8.onnx'))
    photo = _photo_file(tmp_path)
    export_main(['--input', path, '--scale', '2', '--output', fp32, '--int8', exact,
                 '--calib', photo, '--calib-lr', '--calib-patch', '24'])
    export_main(['--input', path, '--scale', '2', '--output', str(tmp_path / 'fp_b.onnx'), '--int8', int8,
                 '--pams-int8-outputs', '--calib', photo, '--calib-lr', '--calib-patch', '24'])
    x = _photo(45, 70)
    with torch.no_grad():
        sim = net(torch.from_numpy(x)).numpy()
        net.set_mode('fp')
        fp = net(torch.from_numpy(x)).numpy()
        net.set_mode('pams')
    run = {k: ort.InferenceSession(p, providers=['CPUExecutionProvider']).run(None, {'lq': x})[0]
           for k, p in (('fp32', fp32), ('exact', exact), ('int8', int8))}
    assert np.abs(run['fp32'] - fp).max() < 1e-5  # the fp32 export is the full-precision backbone
    assert np.abs(sim - fp).max() > 1e-3  # PAMS is not the fp32 network here
    assert _psnr(run['exact'], sim) > 60 and _psnr(run['exact'], sim) > _psnr(run['int8'], sim) > 35
    model = onnx.load(exact)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    q_weights = [v for k, v in inits.items() if v.dtype == np.int8 and v.ndim == 4]
    assert len(q_weights) == len(net.quant_names) and all(np.abs(w).max() == 127 for w in q_weights)
    scales = sorted(float(v) for k, v in inits.items() if v.dtype == np.float32 and v.ndim == 0 and
                    any(n.op_type == 'QuantizeLinear' and n.input[1] == k for n in model.graph.node))
    alphas = sorted(float(s.quant_bit3.alpha) / 127 for s in net.selectors())
    assert np.allclose(scales, alphas, rtol=1e-6)  # the inputs' scales are the learned clips / 127


def test_pams_export_refuses_tflite(tmp_path, pams_ckpt):
    path, _ = pams_ckpt
    with pytest.raises(SystemExit, match='ONNX only'):
        export_main(['--input', path, '--scale', '2', '--output', str(tmp_path / 'p.tflite')])
