"""spandrel (chaiNNer's and ComfyUI's loader) loads adaptsr's checkpoints after ``adaptsr.spandrel.install()``: every
official file with the scale its weights give, and the same output as ``adaptsr.load`` (clamped to [0, 1], as
spandrel returns it), on a crop of a real Set5 image."""
import os.path as osp

import pytest
import torch

from adaptsr.api.weights import manifest
from conftest import BENCHMARK, WEIGHTS, read_rgb, require

spandrel = pytest.importorskip('spandrel')
#: files spandrel cannot be told the scale of (FSRCNN's transposed-conv stride) or that need converting first
NOT_FOR_SPANDREL = {name for name, e in manifest().items() if e.get('convert') or e['arch'] == 'FSRCNN'}


@pytest.fixture(scope='module')
def loader():
    import adaptsr.spandrel
    adaptsr.spandrel.install()
    return spandrel.ModelLoader()


@pytest.mark.parametrize('name', sorted(set(manifest()) - NOT_FOR_SPANDREL))
def test_spandrel_loads_the_official_file_as_adaptsr_does(loader, name):
    import adaptsr
    entry = manifest()[name]
    path = require(osp.join(WEIGHTS, entry['file']))
    lr = read_rgb(require(osp.join(BENCHMARK, f'Set5/LR_bicubic/X{entry["scale"]}/birdx{entry["scale"]}.png')))
    lr = lr[..., :32, :28]
    model = loader.load_from_file(path)
    assert model.architecture.id == 'adaptsr' and model.scale == entry['scale'] and entry['arch'] in model.tags
    out = model(lr)
    ref = adaptsr.load(path)(lr).clamp(0, 1)
    assert out.shape == ref.shape == (1, 3, 32 * entry['scale'], 28 * entry['scale'])
    assert float((out - ref).abs().max()) < 1e-5


def test_an_unknown_state_dict_is_left_to_the_other_architectures(loader):
    with pytest.raises(spandrel.UnsupportedModelError):
        loader.load_from_state_dict({'foo.weight': torch.zeros(3, 3)})
