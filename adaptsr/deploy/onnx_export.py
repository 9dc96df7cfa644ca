"""Export a plain (deployable) network to ONNX with dynamic batch/height/width, verified with onnxruntime.

Uses ``torch.onnx.export(..., dynamo=False)`` (the TorchScript exporter): it needs no extra package and writes the
plain opsets mobile runtimes accept (conv, ReLU/PReLU, slice, DepthToSpace). Source of the deployment flow:
Chao et al., CVPR 2023 (github.com/ECNUSR/ETDS).
"""
import copy
import os.path as osp
import warnings

import numpy as np
import torch

from adaptsr.core.checkpoint_io import check_finite
from adaptsr.utils.atomic import atomic_write

DEFAULT_CHECK_SHAPES = ((1, 3, 64, 64), (2, 3, 37, 53))


def require_onnx():
    """``(onnx, onnxruntime)``, the optional packages of the ONNX export (the ``deploy`` extra).

    Raises:
        ImportError: one is missing; the message says how to install them.
    """
    try:
        import onnx
        import onnxruntime
    except ImportError as err:  # an optional dependency: say which packages bring it
        raise ImportError(f"ONNX export needs onnx and onnxruntime: pip install 'adaptsr[deploy]' (or pip install onnx "
                          f'onnxruntime; scripts/setup_env.sh installs them): {err}') from err
    return onnx, onnxruntime


#: largest max |onnxruntime fp16 - PyTorch fp32| an fp16 export may show: one 8-bit level (pixels in [0, 1])
FP16_TOL = 1 / 255


def export_onnx(net, path, opset=13, check_shapes=DEFAULT_CHECK_SHAPES, tol=1e-5, overwrite=False, seed=0,
                fp16=False, check_inputs=None):
    """Export ``net`` (N, 3, H, W) -> (N, 3, sH, sW) to ``path`` and compare onnxruntime with PyTorch.

    With ``fp16`` the model is exported in half precision, weights, input and output (the form chaiNNer and
    onnxruntime's GPU providers run as "fp16"), and compared with PyTorch's float32 output: it must stay within
    :data:`FP16_TOL` (one 8-bit level), not ``tol``.

    Args:
        net (nn.Module): the network (put in eval mode; a tuple output keeps its first element).
        path (str): output ``.onnx`` file.
        opset (int): ONNX opset (>= 11 for DepthToSpace CRD mode; 13 default).
        check_shapes (tuple): input shapes (N, 3, H, W) checked after export, other than the traced one.
        tol (float): largest allowed max |onnxruntime - PyTorch| (pixel range [0, 1]); raised to twice PyTorch's own
            float32 rounding error (max |PyTorch fp32 - PyTorch fp64|) where that is larger, since no float32
            runtime can agree more closely than that (deep nets with large activations, e.g. ECBSR).
        overwrite (bool): replace an existing ``path``.
        seed (int): seed of the random check inputs in [0, 1].
        fp16 (bool): export in float16 (see above).
        check_inputs (list[ndarray] | None): (N, 3, H, W) float32 inputs in [0, 1] checked instead of random ones of
            ``check_shapes``.

    Returns:
        dict: ``{'path', 'opset', 'max_abs_diff', 'fp32_error', 'tol', 'shapes', 'dtype'}``; ``fp32_error`` is
        max |PyTorch fp32 - PyTorch fp64|, ``dtype`` ``'float32'`` or ``'float16'``.

    Raises:
        FileExistsError: ``path`` exists and not ``overwrite``.
        RuntimeError: onnxruntime output differs by ``tol`` or more (NaN included), or has the wrong shape; the
            file is then not written.
        ValueError: a parameter or buffer of ``net`` holds NaN/Inf (named).
    """
    if osp.exists(path) and not overwrite:
        raise FileExistsError(f'{path!r} exists; choose another output or pass --overwrite')
    net = net.eval().cpu()
    check_finite(net.state_dict(), f'refusing to export {type(net).__name__} to {path}')
    with atomic_write(path) as tmp:
        result = _export_and_check(net, tmp, opset, check_shapes, tol, seed, path, fp16, check_inputs)
    return dict(result, path=path)


def _export_and_check(net, path, opset, check_shapes, tol, seed, name, fp16=False, check_inputs=None):
    onnx, ort = require_onnx()

    class _First(torch.nn.Module):

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            out = self.inner(x)
            return out[0] if isinstance(out, (tuple, list)) else out

    model = _First(net).eval()
    exported = copy.deepcopy(model).half() if fp16 else model
    dummy = torch.rand(1, 3, 32, 32, dtype=torch.float16 if fp16 else torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the TorchScript exporter's deprecation notice
        torch.onnx.export(exported, (dummy, ), path, dynamo=False, opset_version=opset, input_names=['lq'],
                          output_names=['sr'], dynamic_axes={'lq': {0: 'n', 2: 'h', 3: 'w'},
                                                             'sr': {0: 'n', 2: 'sh', 3: 'sw'}})
    onnx.checker.check_model(onnx.load(path))
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    model64 = copy.deepcopy(model).double()
    g = torch.Generator().manual_seed(seed)
    worst = fp32_error = 0.0
    inputs = [torch.from_numpy(np.asarray(a, np.float32)) for a in check_inputs] if check_inputs is not None else \
        [torch.rand(*shape, generator=g) for shape in check_shapes]
    for x in inputs:
        shape = tuple(x.shape)
        with torch.no_grad():
            ref = model(x).numpy()
            ref64 = model64(x.double()).numpy()
        out = session.run(None, {'lq': x.numpy().astype(np.float16 if fp16 else np.float32)})[0].astype(np.float32)
        if out.shape != ref.shape:
            raise RuntimeError(f'{name}: onnxruntime output {out.shape} != PyTorch {ref.shape} for input {shape}')
        diff = float(np.abs(out - ref).max())
        if not (np.isfinite(ref).all() and np.isfinite(diff)):
            raise RuntimeError(f'{name}: NaN/Inf in the PyTorch or onnxruntime output for input {shape}')
        worst = max(worst, diff)
        fp32_error = max(fp32_error, float(np.abs(ref - ref64).max()))
    limit = FP16_TOL if fp16 else max(tol, 2 * fp32_error)
    if not worst < limit:
        raise RuntimeError(f'{name}: onnxruntime{" fp16" if fp16 else ""} differs from PyTorch fp32 by {worst:.3g} >= '
                           f'{limit:.3g} (PyTorch fp32 vs fp64: {fp32_error:.3g})')
    return {'path': path, 'opset': opset, 'max_abs_diff': worst, 'fp32_error': fp32_error, 'tol': limit,
            'shapes': [list(x.shape) for x in inputs], 'dtype': 'float16' if fp16 else 'float32'}
