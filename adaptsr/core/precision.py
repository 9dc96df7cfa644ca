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

bf16 pays on the CPU only where oneDNN has AMX-BF16 tiles for it (Intel Xeon 4th generation and later). With
AVX512-BF16 alone (e.g. Cooper Lake, AMD Zen 4, or a virtual machine that hides AMX) its bfloat16 convolutions are
often slower than float32: :func:`slow_bf16_notice` says so, once per process, where ``bf16`` is chosen on such a CPU.
"""
import contextlib
import functools
import warnings

import torch

from adaptsr.core.errors import OptionError

#: the accepted values of ``val.precision`` and their compute dtypes
PRECISIONS = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


#: the CPU features that run bfloat16 matrix products, fastest first (torch.cpu.get_capabilities / /proc/cpuinfo)
BF16_CPU_UNITS = ('amx_bf16', 'avx512_bf16')
#: measured on a 2-core Xeon with AVX512-BF16 and no AMX (docs/bench.md, "On a CPU without AMX"): bf16 / fp32 speed
_NO_AMX_FIGURES = ('one 3x3 64-channel conv 0.57x, convolutional networks 0.77-0.88x in inference and 0.92x '
                   'in a training step, one with an MLP upsampler 1.35x')
_NOTICED = set()


def flush_denormals():
    """Flush subnormal floats to zero on the CPU (``torch.set_flush_denormal``, the FTZ/DAZ bits of x86's MXCSR), for
    training: masks and gates trained towards zero (Gumbel-softmax sparse masks, quantisers, exit gates) fill the
    activations and gradients with subnormal products, which x86 computes in microcode, tens of times slower. Measured
    on a 2-core Xeon: one training step of a sparse-mask x2 network (batch 8, 32x32 LR) after 600 demo iterations
    1.52 s without, 0.61 s with (0.60-0.67 s at initialisation either way). Values under 1.2e-38 become 0, far below
    what an 8-bit image or a float32 weight update resolves.

    MXCSR is per thread and a new thread copies its creator's: call this before the first parallel operation, so that
    the intra-op thread pool, created then, inherits it (called later, it holds for the calling thread alone).

    Returns:
        bool: whether the CPU supports it (``torch.set_flush_denormal``'s answer: x86 with SSE3).
    """
    return bool(torch.set_flush_denormal(True))


def denormals_flushed():
    """Whether subnormal floats are flushed to zero on the calling thread (by :func:`flush_denormals` or anyone
    else), read from the CPU itself: a float32 conversion of 1e-40 comes out 0 (the training log says so)."""
    return float(torch.tensor([1e-40])) == 0.0


class PrecisionWarning(UserWarning):
    """A reduced precision that this device may run slower than float32 (:func:`slow_bf16_notice`)."""


def cpu_bf16_units():
    """The bfloat16 matrix units of this CPU, as a tuple from :data:`BF16_CPU_UNITS` (empty: none).

    Read from ``torch.cpu.get_capabilities()`` where torch has it, else from the ``flags`` of ``/proc/cpuinfo``
    (empty where neither can be read)."""
    get = getattr(torch.cpu, 'get_capabilities', None)
    if get is not None:
        try:
            caps = get()
            return tuple(u for u in BF16_CPU_UNITS if caps.get(u))
        except Exception:  # noqa: BLE001 (a probe: fall back to the kernel's flags)
            pass
    try:
        with open('/proc/cpuinfo') as f:
            flags = next((line.split(':', 1)[1].split() for line in f if line.startswith('flags')), [])
    except OSError:
        return ()
    return tuple(u for u in BF16_CPU_UNITS if u in flags)


def slow_bf16_notice(precision, device_type='cpu', where='precision', log=None):
    """Warn (once per process and ``where``) where ``bf16`` is chosen on a CPU without AMX-BF16.

    The choice is kept (it is the user's); the warning says what it costs and how to time both.

    Args:
        precision (str): the precision chosen. device_type (str): ``cpu`` or ``cuda``. where (str): the option or
            flag that chose it, named in the warning. log (callable | None): ``log(text)`` says it (e.g. a training
            logger's ``warning``, so that the run's log file holds it); None: a :class:`PrecisionWarning`.

    Returns:
        str | None: the warning's text, or None where there is nothing to say.
    """
    if precision != 'bf16' or device_type != 'cpu':
        return None
    units = cpu_bf16_units()
    if 'amx_bf16' in units:
        return None
    has = 'AVX512-BF16 only' if units else 'no bfloat16 unit'
    text = (f'{where}: bf16 on this CPU ({has}, no AMX-BF16) may be slower than fp32 (bf16/fp32 speed measured on '
            f'such a Xeon: {_NO_AMX_FIGURES}); time both: adaptsr-bench --compare options/compare/bf16_x4.yml')
    if where not in _NOTICED:
        _NOTICED.add(where)
        if log is not None:
            log(text)
        else:
            warnings.warn(text, PrecisionWarning, stacklevel=2)
    return text


def fast_bf16(device_type='cpu'):
    """Whether this device has bfloat16 matrix units that beat float32 on convolutions: CUDA with bf16 support, or a
    CPU with AMX-BF16 (:func:`cpu_bf16_units`); what ``auto`` chooses bf16 on."""
    if device_type == 'cuda':
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return 'amx_bf16' in cpu_bf16_units()


def check_precision(value, device_type='cpu', where='val.precision'):
    """The precision ``value`` names, if this device runs it, else an error naming it (``where``: the option).

    ``auto`` is ``bf16`` where :func:`fast_bf16` holds (CUDA, a CPU with AMX-BF16) and ``fp32`` elsewhere: a
    recipe that runs on several machines in the fastest precision each has.

    Returns:
        str: ``fp32``, ``bf16`` or ``fp16`` (``auto`` resolved).

    Raises:
        OptionError: not one of :data:`PRECISIONS` or ``auto``, or ``fp16`` on a CPU.
    """
    if value == 'auto':
        return 'bf16' if fast_bf16(device_type) else 'fp32'
    if value not in PRECISIONS:
        raise OptionError(f'{where}: {value!r} is not a precision; choose one of {", ".join(PRECISIONS)} or auto')
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
        precision (str): ``fp32``, ``bf16``, ``fp16`` or ``auto`` (:func:`check_precision`).
        device_type (str): ``cpu`` or ``cuda``.

    Raises:
        OptionError: an unknown precision. ValueError: an ``fp32_modules`` name the network does not have.
    """
    precision = check_precision(precision, device_type)
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
