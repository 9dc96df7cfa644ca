"""FLOPs accounting shared by every method, and the cost contract of adaptsr's inference.

The contract: :func:`run_inference` is the one way a model runs a test forward and learns what it cost. An arch
with adaptive inference implements ``infer(lq, **knobs) -> (sr, cost)``, where ``cost`` describes exactly that
call:

* ``flops`` (FLOPs spent), ``flops_full`` (FLOPs of the full, non-adaptive model on the same input) and ``pixels``
  (LR pixels of the call) are present for every method;
* method extras are additive counts too (e.g. PCSR's ``heavy_px``, APE's ``exit_hist_{k}``, CABM's ``bitops``), so
  the costs of the tiles of an image add up (:func:`sum_costs`); ratios are derived from the sums afterwards;
* the optional ``trace`` entry holds per-call tensors that are not summed (PCSR's heavy map, APE's exit ids, SMSR's
  masks, CABM's bit flags), for pictures and histograms.

A plain network has no ``infer``: its cost is counted by hooks on the forward that produced the output (cached per
input shape), or by a function registered for its class with :func:`register_dense_cost` (e.g. BasicSR's ``ECBSR``,
whose eval forward uses functional convolutions that hooks cannot see).

Convention (unless a method's spec says otherwise): FLOPs = 2 x multiply-adds, counted by forward hooks on leaf
modules with parameters, on the actual inputs of a forward pass:

* ``Conv2d`` / ``ConvTranspose2d``: ``2 * kh * kw * (Cin / groups) * Cout * Hout * Wout`` (bias not counted; for a
  transposed conv this is the thop-style count the PCSR/ClassSR papers used, which is larger than its real MACs);
* ``Linear``: ``2 * rows * in * out`` (so running an MLP on a subset of rows is counted as such);
* ``BatchNorm``: ``2 * numel``; ``PReLU``: ``numel``;
* not counted: parameter-free ops (ReLU, pooling, interpolation, grid_sample, additions, softmax).

``count_flops(..., norm_layers=False, transposed='input')`` gives the plain 2 x MAC count of convolutions and
matrix products, which is what :class:`torch.utils.flop_counter.FlopCounterMode` reports; the tests use it to
cross-check this counter.

Real cost (``flops_real``). The papers' conventions differ (PCSR counts a transposed convolution at every output
pixel, APE counts GMACs per patch without its regressor, SMSR an eta-weighted dense cost, CABM BitOPs), so every
cost also carries ``flops_real``: 2 x the multiply-adds that actually ran in that call, counted by one counter,
:class:`torch.utils.flop_counter.FlopCounterMode`, around the call itself (every convolution, transposed ones per
input pixel, and every matrix product with the rows it really had: PCSR's MLPs on their own pixels, APE's exits and
regressor, CADyQ's selectors), plus ``flops_custom`` that an arch reports for work done in its own compiled kernels,
which that counter cannot see (SMSR's sparse convolution). Element-wise work (activations, additions, sampling) is
not counted. Counting slows a forward down (PyTorch dispatch per op, about 20% on PCSR), so timed runs switch it off
with :func:`real_flops_counting` and count in a separate run.
"""
import weakref
from contextlib import contextmanager, nullcontext
from fractions import Fraction

import torch
from torch import nn

_NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def module_flops(module, inputs, output, norm_layers=True, transposed='output'):
    """FLOPs of one forward of a single module under this module's convention (0 for uncounted types), as a
    forward hook sees it: ``module``, its ``inputs`` tuple and ``output``."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        out_px = output.shape[0] * output.shape[2] * output.shape[3]
        return 2 * kh * kw * (module.in_channels // module.groups) * module.out_channels * out_px
    if isinstance(module, nn.ConvTranspose2d):
        kh, kw = module.kernel_size
        ref = output if transposed == 'output' else inputs[0]
        px = ref.shape[0] * ref.shape[2] * ref.shape[3]
        return 2 * kh * kw * (module.in_channels // module.groups) * module.out_channels * px
    if isinstance(module, nn.Linear):
        rows = output.numel() // module.out_features
        return 2 * rows * module.in_features * module.out_features
    if norm_layers and isinstance(module, _NORM_TYPES):
        return 2 * output.numel()
    if norm_layers and isinstance(module, nn.PReLU):
        return output.numel()
    return 0


class FlopCounter:
    """Context manager that sums the FLOPs of every forward of ``model``'s leaf modules while active.

    Args:
        model (nn.Module): the network to watch.
        norm_layers (bool): count BatchNorm (2 x numel) and PReLU (numel); the papers' convention.
        transposed (str): ``'output'`` (papers' convention) or ``'input'`` (real MACs) pixels for ConvTranspose2d.
        skip (iterable[nn.Module]): modules not counted (e.g. a method's MeanShift convs or its decision head).

    Attributes:
        total (int): FLOPs counted so far.
    """

    def __init__(self, model, norm_layers=True, transposed='output', skip=()):
        self.model = model
        self.skip = set(skip)
        self.norm_layers = norm_layers
        self.transposed = transposed
        self.total = 0
        self._handles = []

    def _hook(self, module, inputs, output):
        self.total += module_flops(module, inputs, output, self.norm_layers, self.transposed)

    def __enter__(self):
        for m in self.model.modules():
            if m not in self.skip and len(list(m.children())) == 0 and any(True for _ in m.parameters(recurse=False)):
                self._handles.append(m.register_forward_hook(self._hook))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles = []
        return False


@torch.no_grad()
def count_flops(model, *inputs, norm_layers=True, transposed='output', **kwargs):
    """FLOPs of one forward ``model(*inputs, **kwargs)`` under this module's convention.

    Args:
        model (nn.Module): network (its mode is left unchanged).
        *inputs: forward inputs, e.g. an LR tensor (N, C, H, W).
        norm_layers (bool): see :class:`FlopCounter`.
        transposed (str): see :class:`FlopCounter`.

    Returns:
        int: FLOPs (2 x multiply-adds).
    """
    with FlopCounter(model, norm_layers=norm_layers, transposed=transposed) as counter:
        model(*inputs, **kwargs)
    return counter.total


def _register_inplace_products():
    """torch's counter knows ``addmm`` and ``baddbmm`` but not their in-place forms (``out.addmm_(a, b)``, which
    SMSR's sparse path uses per 3x3 tap); give them the same formula, once."""
    from torch.utils import flop_counter
    for inplace, base in ((torch.ops.aten.addmm_, torch.ops.aten.addmm),
                          (torch.ops.aten.baddbmm_, torch.ops.aten.baddbmm)):
        if inplace not in flop_counter.flop_registry:
            flop_counter.register_flop_formula(inplace, get_raw=True)(flop_counter.flop_registry[base])


@contextmanager
def torch_flop_counter():
    """:class:`torch.utils.flop_counter.FlopCounterMode` without its printed table (and with the in-place matrix
    products counted); yields the mode."""
    from torch.utils.flop_counter import FlopCounterMode
    _register_inplace_products()
    mode = FlopCounterMode(display=False)
    with mode:
        yield mode


def flops_per_pixel(model, in_channels=3, size=16, device='cpu'):
    """FLOPs per input pixel of a fully convolutional ``model`` (exact for stride-1 'same' convolutions).

    Args:
        model (nn.Module): network taking (1, in_channels, size, size).
        in_channels (int): input channels.
        size (int): probe size in pixels.

    Returns:
        float: FLOPs / (size * size).
    """
    x = torch.zeros(1, in_channels, size, size, device=device)
    return count_flops(model, x) / float(size * size)


class SizeLaw:
    """A count that is a bilinear polynomial of the input size, ``a h w + b h + c w + d`` (the FLOPs of stride-1
    convolutions with any padding, whose outputs are ``(h + p) x (w + q)`` pixels, and of PixelShuffle upsamplers after
    them), known from four small probes and checked by a fifth, so that the count at an image's size costs no forward
    at that size.

    Args:
        count_at (callable): ``(h, w) -> number or list of numbers``, the exact count on a (1, C, h, w) input.
        probes (tuple): two heights and two widths (pixels) of the fitting probes; the check runs at ``(h1 + h0 + 1,
            w1 + 2 w0 + 1)``.

    Attributes:
        exact (bool): the check probe matched the fitted polynomial exactly; otherwise (a strided layer, whose
            output size is not linear in the input's, or a probe the network refuses) :meth:`__call__` calls
            ``count_at`` at the asked size.
    """

    def __init__(self, count_at, probes=((8, 16), (8, 16))):
        (h0, h1), (w0, w1) = probes
        self._count_at, self._h, self._w = count_at, (h0, h1), (w0, w1)
        hc, wc = h1 + h0 + 1, w1 + 2 * w0 + 1  # odd: a stride-2 layer's output size is not linear there
        try:
            self._corners = [[self._as_list(count_at(h, w)) for w in (w0, w1)] for h in (h0, h1)]
            self.exact = self._fit(hc, wc) == [Fraction(v) for v in self._as_list(count_at(hc, wc))]
        except (RuntimeError, ValueError):  # a network that takes no such probe (e.g. sizes in multiples of 64)
            self.exact = False

    @staticmethod
    def _as_list(value):
        return list(value) if isinstance(value, (list, tuple)) else [value]

    def _fit(self, h, w):
        (h0, h1), (w0, w1) = self._h, self._w
        th, tw = Fraction(h - h0, h1 - h0), Fraction(w - w0, w1 - w0)
        (f00, f01), (f10, f11) = self._corners
        return [Fraction(a) * (1 - th) * (1 - tw) + Fraction(b) * (1 - th) * tw + Fraction(c) * th * (1 - tw)
                + Fraction(d) * th * tw for a, b, c, d in zip(f00, f01, f10, f11)]

    def __call__(self, h, w):
        """The count at a (1, C, h, w) input: list of float (one per value ``count_at`` returns)."""
        if not self.exact:
            return [float(v) for v in self._as_list(self._count_at(h, w))]
        return [float(v) for v in self._fit(h, w)]


def mlp_flops_per_row(layers):
    """FLOPs per row of a stack of ``nn.Linear`` layers (2 x in x out each)."""
    return sum(2 * m.in_features * m.out_features for m in layers if isinstance(m, nn.Linear))


_DENSE_COST = {}
_DENSE_CACHE = weakref.WeakKeyDictionary()


def register_dense_cost(arch_cls):
    """Decorator: ``fn(net, lq) -> FLOPs`` is the cost of a plain forward of ``arch_cls`` (and its subclasses)."""

    def deco(fn):
        _DENSE_COST[arch_cls] = fn
        return fn

    return deco


_COUNT_REAL = [True]


@contextmanager
def real_flops_counting(enabled=True):
    """Within the block, :func:`run_inference` counts ``flops_real`` (``enabled``) or not (timed runs); a plain
    network's count is cached per input shape and reported either way once known."""
    previous = _COUNT_REAL[0]
    _COUNT_REAL[0] = bool(enabled)
    try:
        yield
    finally:
        _COUNT_REAL[0] = previous


def plain_cost(flops, lq):
    """The cost dict of a non-adaptive forward on ``lq`` (N, C, h, w): spent = full = ``flops``."""
    return {'flops': flops, 'flops_full': flops, 'pixels': lq.shape[0] * lq.shape[2] * lq.shape[3]}


@torch.no_grad()
def run_inference(net, lq, compiled=None, **knobs):
    """One test forward of ``net`` on ``lq`` and its cost (see the module docstring).

    Args:
        net (nn.Module): bare network in eval mode.
        lq (Tensor): LR input (N, 3, h, w) in [0, 1].
        compiled (callable | None): a plain network only: ``torch.compile(net)``, run instead of ``net`` when this
            input shape's cost is known already (the counters need the eager modules: the first call per shape).
        **knobs: the method's inference options (passed to ``net.infer``; a plain network takes none).

    Returns:
        tuple[Tensor, dict]: SR (N, 3, h s, w s) (the first output of a network that returns a tuple) and the cost.

    Raises:
        TypeError: knobs given to a network without ``infer``.
    """
    count = _COUNT_REAL[0]
    if hasattr(net, 'infer'):
        if compiled is not None:
            raise TypeError(f'{type(net).__name__} decides per input (infer): it is not compiled')
        if not count:
            out, cost = net.infer(lq, **knobs)
            cost.pop('flops_custom', None)
            return out, cost
        with torch_flop_counter() as mode:
            out, cost = net.infer(lq, **knobs)
        cost['flops_real'] = mode.get_total_flops() + cost.pop('flops_custom', 0)
        return out, cost
    if knobs:
        raise TypeError(f'{type(net).__name__} has no adaptive inference; it takes no {sorted(knobs)}')
    cache = _DENSE_CACHE.setdefault(net, {})
    key = tuple(lq.shape)
    flops, real = cache.get(key, (None, None))
    if flops is not None and (real is not None or not count):
        out = (net if compiled is None else compiled)(lq)
    else:
        fn = next((f for cls, f in _DENSE_COST.items() if isinstance(net, cls)), None)
        with FlopCounter(net) as counter, (torch_flop_counter() if count else nullcontext()) as mode:
            out = net(lq)
        flops = fn(net, lq) if fn is not None else counter.total
        real = mode.get_total_flops() if count else None
        cache[key] = (flops, real)
    out = out[0] if isinstance(out, (tuple, list)) else out
    cost = plain_cost(flops, lq)
    if real is not None:
        cost['flops_real'] = real
    return out, cost


def sum_costs(costs):
    """Add up the costs of several calls (the tiles of one image): numeric fields summed, traces listed.

    Returns:
        tuple[dict, list[dict]]: the summed cost and the list of per-call ``trace`` dicts (empty ones left out).

    Raises:
        TypeError: a field that is neither a number nor ``trace`` (the contract's fields are additive counts).
    """
    total, traces = {}, []
    for cost in costs:
        for key, value in cost.items():
            if key == 'trace':
                if value:
                    traces.append(value)
            elif isinstance(value, (int, float)):
                total[key] = total.get(key, 0) + value
            else:
                raise TypeError(f'cost field {key!r} must be a number (an additive count), got {type(value).__name__}')
    return total, traces
