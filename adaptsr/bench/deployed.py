"""The deployed-models protocol: PyTorch checkpoints, ONNX (onnxruntime) and TFLite (LiteRT) models side by side on
the benchmark sets, through the bench's one loop (:func:`adaptsr.bench.measure.run_configs`: interleaved image by
image, each image's time the fastest of ``repeats`` after a warm-up run).

Each model is ``label=path``: ``.onnx`` and ``.tflite`` load as ``adaptsr.load`` loads them
(:mod:`adaptsr.api.runtimes`);
a ``.pth`` is the network its checkpoint format builds, run bare in PyTorch fp32 (no tiles, no cost counting), a
``torch_plain`` label prefix its exported form (the format's ``deploy``: e.g. ETDS's equivalent plain net), and a
network with a ``pams`` mode (a bit-mapped checkpoint) its PAMS w8a8 simulation. Reads
``${ADAPTSR_BENCHMARK}/<set>/{HR, LR_bicubic/X<scale>}`` (EDSR layout). The first model is the reference of the
``speedup`` (total seconds over the images of a set) and ``delta_db`` columns.
"""
import json
import os
import os.path as osp

import torch

from adaptsr.api import describe, load
from adaptsr.api.runtimes import NetworkModel
from adaptsr.bench.compare import load_pairs, pair_quality
from adaptsr.bench.measure import run_configs, summarise
from adaptsr.core.errors import LoadError
from adaptsr.utils.atomic import atomic_write
from adaptsr.utils.report import format_table


def load_deployed(label, path, scale, threads):
    """The model of one ``label=path`` entry and a description of how it runs.

    Returns:
        tuple: ``(model, what)``: an object with the model methods the loop uses, and its runtime in words.

    Raises:
        LoadError: an unknown extension, or a model of another scale. ConversionError / CheckpointError: a checkpoint
            that is not recognised or cannot be read.
    """
    ext = osp.splitext(path)[1].lower()
    if ext in ('.onnx', '.tflite'):
        runner = load(path, scale, threads=threads)
        model = runner.model
        if ext == '.onnx':
            import onnxruntime as ort  # the optional runtime, named in the description
            return model, f'onnxruntime {ort.__version__}'
        return model, f'LiteRT, tiles of {model.runner.tile} overlap {model.runner.overlap}'
    if ext not in ('.pth', '.pt'):
        raise LoadError(f'{label}={path}: unknown model extension {ext!r} (.pth, .onnx or .tflite)')
    found = describe(path, scale)
    net = found.build()
    what = f'PyTorch fp32 {type(net).__name__}'
    if 'pams' in getattr(net, 'modes', ()):  # a bit-mapped network: its w8a8 simulation
        net.set_mode('pams')
        what = f'PyTorch {type(net).__name__}, PAMS w8a8 simulation'
    elif label.startswith('torch_plain'):
        plain, info = found.deploy(path)
        if info.get('note'):
            net, what = plain, what + f' -> {type(plain).__name__} (its exported form)'
    return NetworkModel(net.eval(), found.scale), what


def run(models, scale, datasets, threads=2, repeats=3, max_images=None, json_path=None, bench_root=None):
    """Measure ``models`` (``['label=path', ...]``) on ``datasets`` (benchmark set names) and return the rows.

    Raises:
        LoadError: an entry that is not ``label=path``.
    """
    torch.set_num_threads(threads)
    bench_root = bench_root or os.environ['ADAPTSR_BENCHMARK']
    loaded, what = {}, {}
    for entry in models:
        if '=' not in entry:
            raise LoadError(f'--models {entry}: expected label=path')
        label, path = entry.split('=', 1)
        loaded[label], what[label] = load_deployed(label, path, scale, threads)
    rows = []
    for name in datasets:
        pairs = load_pairs({'lr': osp.join(bench_root, name, 'LR_bicubic', f'X{scale}'),
                            'hr': osp.join(bench_root, name, 'HR'), 'max_images': max_images}, scale)
        per_model = run_configs([(m, None) for m in loaded.values()], pairs, 'cpu', repeats=repeats,
                                quality=pair_quality(scale))
        ref = summarise(per_model[0])
        for label, per in zip(loaded, per_model):
            row = summarise(per)
            rows.append({'dataset': name, 'model': label, 'images': row['images'], 'psnr_y': row['psnr_y'],
                         'delta_db': row['psnr_y'] - ref['psnr_y'], 'sec_per_image': row['sec_total'] / row['images'],
                         'speedup': ref['sec_total'] / row['sec_total']})
    if json_path:
        with atomic_write(json_path) as tmp, open(tmp, 'w') as fh:
            json.dump({'models': list(models), 'runtimes': what, 'threads': threads, 'repeats': repeats,
                       'rows': rows}, fh, indent=2)
    print(format_table(rows, ['dataset', 'model', 'images', 'psnr_y', 'delta_db', 'sec_per_image', 'speedup']))
    for label, desc in what.items():
        print(f'  {label}: {desc}')
    return rows
