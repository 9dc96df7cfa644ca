"""safetensors checkpoints (read and written by adaptsr-convert / adaptsr-export) and the fp16 ONNX export."""
import os.path as osp

import numpy as np
import pytest
import safetensors.torch
import skimage.data
import torch
from conftest import WEIGHTS, require

import adaptsr
from adaptsr.api.runtimes import OnnxModel
from adaptsr.cli import convert, export
from adaptsr.core.checkpoint_io import load_checkpoint, save_checkpoint

ETDS_X4 = osp.join(WEIGHTS, 'ETDS/ETDS_M6C32_x4.pth')
CARN_M = osp.join(WEIGHTS, 'CARN/carn_m.pth')


@pytest.fixture(scope='module')
def lr():
    """A 48x48 crop of scikit-image's chelsea photograph: (1, 3, 48, 48) in [0, 1]."""
    img = skimage.data.chelsea()[100:148, 200:248].astype(np.float32) / 255
    return torch.from_numpy(img.transpose(2, 0, 1).copy())[None]


def test_a_converted_safetensors_file_loads_to_the_same_model(tmp_path, lr):
    out = tmp_path / 'carn_m.safetensors'
    convert.main(['--method', 'carn_m', '--scale', '4', '-i', require(CARN_M), '-o', str(out)])
    ckpt = load_checkpoint(str(out))
    assert ckpt['meta']['arch'] == 'PCSRCARN' and ckpt['meta']['scale'] == 4
    pth = tmp_path / 'carn_m.pth'
    convert.main(['--method', 'carn_m', '--scale', '4', '-i', CARN_M, '-o', str(pth)])
    with torch.no_grad():
        assert torch.equal(adaptsr.load(str(out))(lr), adaptsr.load(str(pth))(lr))


def test_a_foreign_flat_safetensors_state_dict_loads(tmp_path, lr):
    """The layout other tools write (a bare state_dict, no adaptsr header): recognised by its keys, scale found."""
    sd = load_checkpoint(require(ETDS_X4))
    sd = sd.get('params_ema', sd.get('params', sd))
    path = tmp_path / 'etds.safetensors'
    safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    runner = adaptsr.load(str(path))
    with torch.no_grad():
        assert torch.equal(runner(lr), adaptsr.load(ETDS_X4)(lr))


def test_save_refuses_to_overwrite_and_a_broken_file_is_named(tmp_path):
    sd = {'w': torch.ones(2)}
    path = str(tmp_path / 'x.safetensors')
    save_checkpoint({'params': sd, 'meta': {'scale': 2}}, path)
    with pytest.raises(FileExistsError):
        save_checkpoint({'params': sd}, path)
    broken = tmp_path / 'broken.safetensors'
    broken.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"a": 1')
    with pytest.raises(ValueError, match='broken.safetensors cannot be read'):
        load_checkpoint(str(broken))


def test_export_safetensors_writes_the_deployed_network(tmp_path, lr, capsys):
    out = tmp_path / 'etds.safetensors'
    export.main(['-i', require(ETDS_X4), '--scale', '4', '-o', str(out)])
    assert 'identical output on a photograph (max |difference| 0)' in capsys.readouterr().out
    assert load_checkpoint(str(out))['meta']['arch'] == 'ETDSPlain'
    with pytest.raises(SystemExit, match='2'):  # --int8 has no safetensors form
        export.main(['-i', ETDS_X4, '--scale', '4', '-o', str(tmp_path / 'b.safetensors'), '--int8', 'b8.onnx'])


def test_fp16_onnx_export_stays_within_one_8bit_level_and_runs_in_adaptsr_infer(tmp_path, capsys):
    pytest.importorskip('onnxruntime')
    fp32, fp16 = tmp_path / 'etds.onnx', tmp_path / 'etds_fp16.onnx'
    export.main(['-i', require(ETDS_X4), '--scale', '4', '-o', str(fp32), '--fp16', str(fp16)])
    assert 'onnxruntime fp16 vs PyTorch fp32' in capsys.readouterr().out
    import onnxruntime as ort
    assert ort.InferenceSession(str(fp16)).get_inputs()[0].type == 'tensor(float16)'
    img = skimage.data.astronaut()[:64, :64].astype(np.float32) / 255
    x = torch.from_numpy(img.transpose(2, 0, 1).copy())[None]
    outs = []
    for path in (fp32, fp16):
        model = OnnxModel(str(path))
        model.lq = x
        model.test()
        outs.append(model.output)
    assert outs[1].dtype == torch.float32 and float((outs[0] - outs[1]).abs().max()) < 1 / 255
