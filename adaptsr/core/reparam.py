"""Exact re-parameterisation ("equivalent transformation", ET) of conv nets into plain conv + activation nets.

The pieces every ET converter is built from (ETDS dual stream, ECBSR/ABPN/ETDS-only-ET anchor nets); all act on
conv weights of shape (Cout, Cin, k, k) and biases (Cout,), in float64 for exactness, and return float32.

Source: Chao et al., "Equivalent Transformation and Dual Stream Network Construction for Mobile Image
Super-Resolution", CVPR 2023 (Sec. 3 and appendix), github.com/ECNUSR/ETDS.

The ET relies on non-negative activations carrying the identity: inputs are RGB in [0, 1], so ``relu(x) = x`` on the
pass-through channels. Output clamping is embedded with two ReLU layers:
``u = relu(1 - y)`` (``conv_last'`` = ``-W``, ``1 - b``), then ``v = relu(1 - u) = clamp(y, 0, 1)`` (1x1 ``conv_clip``
= ``-I``, ``+1``).
"""
import torch

from adaptsr.core.errors import ConversionError  # noqa: F401  (importable from here too)

DTYPE = torch.float64


def _d(t):
    return t.detach().to(DTYPE)


def identity_kernel(channels, kernel_size=3):
    """Conv weight (channels, channels, k, k) whose output equals its input (centre tap 1)."""
    w = torch.zeros(channels, channels, kernel_size, kernel_size, dtype=DTYPE)
    c = kernel_size // 2
    w[range(channels), range(channels), c, c] = 1
    return w


def repeat_kernel(in_channels, repeats, kernel_size=3):
    """Conv weight (in_channels * repeats, in_channels, k, k) computing ``repeat_interleave(x, repeats, dim=1)``.

    Followed by ``PixelShuffle(s)`` with ``repeats = s * s`` this is nearest-neighbour upsampling.
    """
    w = torch.zeros(in_channels * repeats, in_channels, kernel_size, kernel_size, dtype=DTYPE)
    c = kernel_size // 2
    for ch in range(in_channels):
        w[ch * repeats:(ch + 1) * repeats, ch, c, c] = 1
    return w


def pad_kernel(weight, kernel_size):
    """Zero-pad a (Cout, Cin, k, k) kernel to ``kernel_size`` (centred), e.g. a 1x1 to a 3x3."""
    k = weight.shape[-1]
    if k == kernel_size:
        return weight
    p = (kernel_size - k) // 2
    return torch.nn.functional.pad(weight, (p, p, p, p))


def block_conv(blocks, biases):
    """One conv from a block matrix of convs: ``blocks[i][j]`` maps input group j to output group i (None = 0).

    Args:
        blocks (list[list[Tensor | None]]): kernels (Cout_i, Cin_j, k, k); every row and column has at least one.
        biases (list[Tensor]): bias (Cout_i,) per output group.

    Returns:
        tuple[Tensor, Tensor]: weight (sum Cout_i, sum Cin_j, k, k), bias (sum Cout_i,), float64.
    """
    rows, cols = len(blocks), len(blocks[0])
    cout = [next(_d(b).shape[0] for b in blocks[i] if b is not None) for i in range(rows)]
    cin = [next(_d(blocks[i][j]).shape[1] for i in range(rows) if blocks[i][j] is not None) for j in range(cols)]
    k = max(_d(b).shape[-1] for row in blocks for b in row if b is not None)
    weight = torch.zeros(sum(cout), sum(cin), k, k, dtype=DTYPE)
    r0 = 0
    for i in range(rows):
        c0 = 0
        for j in range(cols):
            if blocks[i][j] is not None:
                weight[r0:r0 + cout[i], c0:c0 + cin[j]] = pad_kernel(_d(blocks[i][j]), k)
            c0 += cin[j]
        r0 += cout[i]
    return weight, torch.cat([_d(b) for b in biases])


def clip_head(weight, bias, padded_channels=None):
    """Embed ``clamp(conv(x), 0, 1)`` into ``relu(conv_clip(relu(conv_last(x))))``.

    Args:
        weight (Tensor): (K, Cin, k, k) output conv producing ``y`` (before PixelShuffle).
        bias (Tensor): (K,).
        padded_channels (int | None): output channels of the plain model (x3: 28 for K = 27); the extra rows have
            weight 0 and bias 1, which the clip maps to 0 (sliced off before PixelShuffle).

    Returns:
        dict: ``conv_last.weight/bias`` (-W, 1 - b) and ``conv_clip.weight/bias`` (-I, +1), float64.
    """
    weight, bias = _d(weight), _d(bias)
    k_out = weight.shape[0]
    pad = (padded_channels or k_out) - k_out
    if pad < 0:
        raise ConversionError(f'padded_channels {padded_channels} < output channels {k_out}')
    w_last = torch.cat([-weight, torch.zeros(pad, *weight.shape[1:], dtype=DTYPE)])
    b_last = torch.cat([1 - bias, torch.ones(pad, dtype=DTYPE)])
    n = k_out + pad
    return {'conv_last.weight': w_last, 'conv_last.bias': b_last,
            'conv_clip.weight': -identity_kernel(n, 1), 'conv_clip.bias': torch.ones(n, dtype=DTYPE)}


def plain_out_channels(scale, out_channels=3):
    """Output channels of a plain ET model: ``3 s^2``, padded to 28 at x3 (the published x3 models)."""
    k = out_channels * scale * scale
    return 28 if (out_channels == 3 and scale == 3) else k


def to_float32(sd):
    return {k: v.to(torch.float32).contiguous() for k, v in sd.items()}


@torch.no_grad()
def max_abs_diff_255(ref, new, inputs):
    """max |clamp(ref(x), 0, 1) - new(x)| x 255 over ``inputs`` (list of (N, 3, H, W) tensors in [0, 1]).

    ``ref`` may return a tuple (dual-stream nets); its first element is compared.
    """
    worst = 0.0
    for x in inputs:
        a = ref(x)
        a = a[0] if isinstance(a, (tuple, list)) else a
        b = new(x)
        b = b[0] if isinstance(b, (tuple, list)) else b
        worst = max(worst, float((a.clamp(0, 1) - b).abs().max()) * 255)
    return worst


def check_equivalence(ref, new, inputs, tol=0.01, what='converted model', ref_train_mode=False):
    """Run :func:`max_abs_diff_255`; raise :class:`ConversionError` above ``tol`` (grey levels of 0..255).

    ``ref_train_mode``: evaluate ``ref`` in train mode (nets whose eval forward already uses re-parameterised
    weights, e.g. BasicSR's ECBSR, are compared through their multi-branch training forward).

    Returns:
        float: the measured max |difference| x 255.
    """
    ref.train(ref_train_mode)
    new.eval()
    diff = max_abs_diff_255(ref, new, inputs)
    if not diff < tol:
        raise ConversionError(f'{what} is not equivalent to its source: max |difference| x 255 = {diff:.3g} '
                              f'>= tolerance {tol}')
    return diff


def probe_inputs(seed=0, sizes=((4, 64, 64), (1, 37, 23))):
    """Deterministic random test inputs in [0, 1]: ``rand(4, 3, 64, 64)`` (the official check) and an odd size."""
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(n, 3, h, w, generator=g) for n, h, w in sizes]
