"""Reduced-precision inference: ``val.precision`` (``fp32``, ``bf16``, ``fp16``) of every adaptsr model.

``bf16`` runs the network under ``torch.autocast`` with bfloat16 on the CPU (oneDNN's AMX-BF16 / AVX512-BF16 kernels
where the CPU has them) or CUDA, ``fp16`` under float16 autocast on CUDA only (CPUs have no float16 matrix units).
Convolutions and matrix products run in the reduced type; what must stay exact stays float32:

* the modules an arch names in ``fp32_modules`` (e.g. the last convolution, whose output is the image, or a decision
  that a threshold reads: APE's regressor) run with autocast off on float32 inputs;
* a function or method a method decorates with :func:`float32` (PCSR's classifier logits, CABM's quantisers, SMSR's
  float32 sparse kernel) likewise;
* anything outside ``forward`` (the image-domain bicubic/nearest skip an arch adds, the cost counter) is float32;
* the output is returned as float32 and clamped as before by the caller.

A method adds its own rule by declaring ``fp32_modules`` on its arch (names of submodules, as
``net.get_submodule`` takes them); shared code knows no method. Tensors are in channels_last memory format under
``bf16``/``fp16`` (oneDNN's preferred layout for reduced-precision convolutions).
"""
import contextlib
import functools

import torch

from adaptsr.core.errors import OptionError

#: the accepted values of ``val.precision`` and their compute dtypes
PRECISIONS = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def check_precision(value, device_type='cpu', where='val.precision'):
    """``value`` if it is a precision this device runs, else an error naming it (``where``: the option).

    Raises:
        OptionError: not one of :data:`PRECISIONS`, or ``fp16`` on a CPU.
    """
    if value not in PRECISIONS:
        raise OptionError(f'{where}: {value!r} is not a precision; choose one of {", ".join(PRECISIONS)}')
    if value == 'fp16' and device_type != 'cuda':
        raise OptionError(f'{where}: fp16 runs on CUDA only (CPUs have no float16 matrix units); use bf16 on the CPU')
    return value


def widen(value):
    """The floating tensors in ``value`` (a tensor, or dicts/lists/tuples of them) as float32; anything else as it
    is."""
    if torch.is_tensor(value):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: widen(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(widen(v) for v in value)
    return value


def float32(fn):
    """Decorator: ``fn`` runs with autocast off, its floating tensor arguments widened to float32, so that under
    ``bf16``/``fp16`` it computes exactly as in ``fp32`` (a no-op cast there). The device is the first tensor
    argument's."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        device = next((a.device.type for a in args if torch.is_tensor(a)), 'cpu')
        with torch.autocast(device, enabled=False):
            return fn(*widen(args), **widen(kwargs))

    return run


@contextlib.contextmanager
def inference_precision(net, precision, device_type='cpu'):
    """Run ``net`` in ``precision`` inside the block (see the module docstring); a no-op for ``fp32``.

    Args:
        net (nn.Module): the bare network; its ``fp32_modules`` (names) stay float32.
        precision (str): ``fp32``, ``bf16`` or ``fp16`` (:func:`check_precision`).
        device_type (str): ``cpu`` or ``cuda``.

    Raises:
        OptionError: an unknown precision. ValueError: an ``fp32_modules`` name the network does not have.
    """
    check_precision(precision, device_type)
    if precision == 'fp32':
        yield
        return
    patched = []
    for name in getattr(net, 'fp32_modules', ()):
        try:
            module = net.get_submodule(name)
        except AttributeError:
            raise ValueError(f'{type(net).__name__}.fp32_modules names {name!r}, which the network does not have') \
                from None
        module.forward = float32(module.forward)
        patched.append(module)
    try:
        with torch.autocast(device_type, dtype=PRECISIONS[precision]):
            yield
    finally:
        for module in patched:
            del module.forward  # back to the class's forward
