"""TFLite (LiteRT) export of a plain SR model, fp32 and full-integer INT8, and a runner for images of any size.

The converter is litert-torch (the PyTorch -> LiteRT converter, formerly ai-edge-torch), from the package index; its
INT8 path is PT2E static quantisation (torchao's ``prepare_pt2e`` / ``convert_pt2e``) with litert-torch's
``PT2EQuantizer``: int8 weights per output channel, int8 activations per tensor (symmetric), calibrated on LR
patches of photographs the user names, and int8 model input/output.

A TFLite model has a fixed input shape here: litert-torch 0.10 lowers ``pixel_shuffle`` through reshapes whose sizes
must be static, and a dynamic-shape export fails. Mobile deployments run fixed shapes anyway; :class:`TFLiteRunner`
runs any image by tiles of that size (overlap 16, each tile kept only in its core, as ``adaptsr-infer --tile``),
which equals the whole-image result for a network whose receptive radius is at most 8 LR pixels (ETDS-M's 8 3x3
convolutions: radius 8) wherever the image is at least one tile wide; a side shorter than a tile is padded by
replicating its border, which changes the pixels near that border slightly.

Source of the deployment target: the ETDS paper (Chao et al., CVPR 2023, Sec. 4: INT8 TFLite on mobile devices) and
its repository github.com/ECNUSR/ETDS (whose INT8 procedure is unpublished, its issue #5).
"""
import os.path as osp

import numpy as np
import torch

from adaptsr.core.tiling import tiled_forward
from adaptsr.utils.atomic import atomic_write

#: tile overlap of :class:`TFLiteRunner` in LR pixels (at most a quarter of the tile)
DEFAULT_OVERLAP = 16


def _require_litert():
    try:
        import litert_torch  # noqa: F401
    except ImportError as err:  # an optional dependency: say which package brings it
        raise ImportError('TFLite export needs litert-torch (pip install litert-torch; scripts/setup_env.sh installs '
                          f'it): {err}') from err


def _probe_input(size, seed=0):
    """A smooth, image-like (1, 3, size, size) input in [0, 1] for the conversion checks."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, size // 8), max(2, size // 8), generator=g)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode='bicubic', align_corners=False).clamp(0, 1)


def export_tflite(net, path, input_size=128, tol=1e-4, overwrite=False):
    """Convert ``net`` to an fp32 TFLite model of input (1, 3, input_size, input_size) and check it against PyTorch.

    Args:
        net (nn.Module): a plain SR network, (N, 3, h, w) in [0, 1] -> (N, 3, h s, w s).
        path (str): the ``.tflite`` file to write (atomically).
        input_size (int): the model's LR input side in pixels.
        tol (float): largest |TFLite - PyTorch| allowed on the check input (pixels in [0, 1]).
        overwrite (bool): replace an existing file.

    Returns:
        dict: ``{'path', 'input_size', 'scale', 'max_abs_diff'}``.

    Raises:
        FileExistsError: ``path`` exists and not ``overwrite``. ImportError: litert-torch is not installed.
        RuntimeError: TFLite differs from PyTorch by ``tol`` or more.
    """
    _require_litert()
    import litert_torch
    if osp.exists(path) and not overwrite:
        raise FileExistsError(f'{path!r} exists; choose another name or pass --overwrite')
    net = net.eval()
    x = _probe_input(input_size)
    with torch.no_grad():
        ref = net(x).numpy()
    model = litert_torch.convert(net, (x, ))
    with atomic_write(path) as tmp:
        model.export(tmp)
    runner = TFLiteRunner(path, threads=1)
    diff = float(np.abs(runner.invoke(x.numpy()) - ref).max())
    if diff >= tol:
        raise RuntimeError(f'{path}: TFLite differs from PyTorch by {diff:.3g} (limit {tol:g})')
    return {'path': path, 'input_size': input_size, 'scale': runner.scale, 'max_abs_diff': diff}


def quantize_tflite_int8(net, path, inputs, input_size=128, overwrite=False):
    """Full-integer INT8 TFLite model of ``net`` by PT2E static quantisation, calibrated on ``inputs``.

    Args:
        net (nn.Module): as :func:`export_tflite`.
        path (str): the ``.tflite`` file to write (atomically).
        inputs (list[ndarray]): calibration inputs, (1, 3, h, w) float32 in [0, 1], any h, w >= 8
            (:func:`adaptsr.deploy.onnx_quant.calibration_inputs`); the observers run on a dynamic-shape export,
            the model is converted at the fixed input size.
        input_size (int): the model's LR input side in pixels.
        overwrite (bool): replace an existing file.

    Returns:
        dict: ``{'path', 'input_size', 'scale', 'calibration_inputs', 'input_quantization'}`` (scale and zero point
        of the int8 input).

    Raises:
        FileExistsError: ``path`` exists and not ``overwrite``. ImportError: litert-torch is not installed.
        ValueError: no calibration input, or one not (1, 3, h, w) with h, w >= 8.
    """
    _require_litert()
    import litert_torch
    from litert_torch.quantize import pt2e_quantizer, quant_config
    from torchao.quantization.pt2e import move_exported_model_to_eval, quantize_pt2e
    if osp.exists(path) and not overwrite:
        raise FileExistsError(f'{path!r} exists; choose another name or pass --overwrite')
    bad = [tuple(x.shape) for x in inputs if x.ndim != 4 or x.shape[:2] != (1, 3) or min(x.shape[2:]) < 8]
    if not inputs or bad:
        raise ValueError(f'calibration inputs must be (1, 3, h, w) with h, w >= 8, got {bad[:3] if bad else "none"}')
    x = _probe_input(input_size)
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
    dims = {2: torch.export.Dim('h', min=8, max=1 << 14), 3: torch.export.Dim('w', min=8, max=1 << 14)}
    exported = torch.export.export(net.eval(), (x, ), dynamic_shapes=(dims, ))
    graph = quantize_pt2e.prepare_pt2e(exported.module(), quantizer)
    with torch.no_grad():
        for item in inputs:
            graph(torch.from_numpy(item))
    graph = move_exported_model_to_eval(quantize_pt2e.convert_pt2e(graph, fold_quantize=False))
    model = litert_torch.convert(graph, (x, ), quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer))
    with atomic_write(path) as tmp:
        model.export(tmp)
    runner = TFLiteRunner(path, threads=1)
    return {'path': path, 'input_size': input_size, 'scale': runner.scale, 'calibration_inputs': len(inputs),
            'input_quantization': runner.input_detail['quantization']}


class TFLiteRunner:
    """Runs a fixed-shape TFLite SR model (fp32 or int8 input/output) on images of any size, by tiles.

    Args:
        path (str): the ``.tflite`` file (:func:`export_tflite` / :func:`quantize_tflite_int8`).
        threads (int, optional): interpreter threads (XNNPACK).
        overlap (int, optional): tile overlap in LR pixels; default min(16, tile // 4).

    Shapes:
        ``__call__``: (N, 3, H, W) float Tensor in [0, 1] -> (N, 3, H s, W s) float Tensor. ``invoke``: one
        (1, 3, t, t) float32 array (t = the model's input side) -> (1, 3, t s, t s).

    Raises:
        ImportError: the LiteRT runtime (ai-edge-litert) is not installed. ValueError: not a one-input model of
            square NCHW RGB input with an integer scale.
    """

    def __init__(self, path, threads=None, overlap=None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as err:
            raise ImportError(f'running {path} needs the LiteRT runtime (pip install ai-edge-litert): {err}') from err
        self.path = path
        self.interpreter = Interpreter(model_path=path, num_threads=threads)
        self.interpreter.allocate_tensors()
        ins, outs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise ValueError(f'{path}: expected one input and one output, found {len(ins)} and {len(outs)}')
        self.input_detail, self.output_detail = ins[0], outs[0]
        shape, out_shape = tuple(ins[0]['shape']), tuple(outs[0]['shape'])
        if len(shape) != 4 or shape[1] != 3 or shape[2] != shape[3] or out_shape[2] % shape[2]:
            raise ValueError(f'{path}: expected a square RGB NCHW input and an integer scale, got input {shape} '
                             f'and output {out_shape}')
        self.tile, self.scale = int(shape[2]), int(out_shape[2] // shape[2])
        self.overlap = min(DEFAULT_OVERLAP, self.tile // 4) if overlap is None else int(overlap)
        self.int8 = ins[0]['dtype'] != np.float32

    def invoke(self, x):
        """One tile: (1, 3, t, t) float32 in [0, 1] -> (1, 3, t s, t s) float32 (int8 models: quantised in and out
        with the model's own scale and zero point)."""
        inp, out = self.input_detail, self.output_detail
        if inp['dtype'] != np.float32:
            scale, zero = inp['quantization']
            info = np.iinfo(inp['dtype'])
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp['dtype'])
        self.interpreter.set_tensor(inp['index'], np.ascontiguousarray(x))
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(out['index'])
        if out['dtype'] != np.float32:
            scale, zero = out['quantization']
            y = (y.astype(np.float32) - zero) * scale
        return y

    def _tile_fn(self, lq):
        t, s = self.tile, self.scale
        outs = []
        for item in lq:
            h, w = item.shape[-2:]
            padded = torch.nn.functional.pad(item[None], (0, t - w, 0, t - h), mode='replicate') \
                if (h, w) != (t, t) else item[None]
            outs.append(torch.from_numpy(self.invoke(padded.float().numpy()))[:, :, :h * s, :w * s])
        return torch.cat(outs)

    def __call__(self, lq):
        return tiled_forward(self._tile_fn, lq, self.scale, self.tile, self.overlap, merge='crop')


__all__ = ['export_tflite', 'quantize_tflite_int8', 'TFLiteRunner']
