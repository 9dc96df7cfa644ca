"""Quantisers shared by the mixed-precision methods: PAMS weight/activation quantisers, CADyQ bit selectors.

Sources: H. Li et al., "PAMS: Quantized Super-Resolution via Parameterized Max Scale", ECCV 2020
(github.com/colorjam/PAMS); C. Hong et al., "CADyQ: Content-Aware Dynamic Quantization for Image
Super-Resolution", ECCV 2022 (github.com/Cheeun/CADyQ); S. Tian et al., "CABM: Content-Aware Bit Mapping for Single
Image Super-Resolution Network with Large Input", CVPR 2023 (github.com/Sheldon04/CABM-pytorch). Written from
the CABM paper, github.com/Sheldon04/CABM-pytorch, not from the official code.

Conventions: activations are in the network's internal scale (EDSR works on [0, 255] inputs); quantisation is
symmetric and signed (``q = 2^(k-1) - 1`` levels each side, also after ReLU, as PAMS' ``rel_shift=False``); rounding
passes gradients straight through (STE).
"""
import torch
from torch import nn
from torch.nn import functional as F

from adaptsr.core.precision import float32


def round_ste(x):
    """``round(x)`` forward, identity gradient (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


@float32  # float32 arithmetic under val.precision: bf16 (8 significant bits would move the levels)
def quantize_weight(weight, bits=8):
    """Symmetric per-tensor max-abs weight quantisation (PAMS): ``s = max|W| + 1e-8``, ``q = 2^(k-1) - 1``,
    ``round(W q / s) s / q`` with a straight-through gradient.

    Args:
        weight (Tensor): any shape. bits (int): k.

    Returns:
        Tensor: same shape, at most ``2 q + 1`` distinct values.
    """
    scale = weight.detach().abs().max() + 1e-8
    q = 2 ** (bits - 1) - 1
    return round_ste(weight * q / scale) * scale / q


class QuantConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose weight is quantised to ``w_bits`` (8) on every forward; the bias stays in float."""

    def __init__(self, *args, w_bits=8, **kwargs):
        super().__init__(*args, **kwargs)
        self.w_bits = w_bits

    def forward(self, x):
        return F.conv2d(x, quantize_weight(self.weight, self.w_bits), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


class ActQuant(nn.Module):
    """PAMS activation quantiser with a learnable clip ``alpha``.

    ``Q(x) = round(clamp(x, -alpha, alpha) / alpha * q) / q * alpha``, ``q = 2^(k-1) - 1`` (4 bits: +-7 levels, 6:
    +-31, 8: +-127); the gradient reaches ``x`` inside the clip and ``alpha`` through clip and scale.

    Initialisation mode (``init_mode = True``, set by the model during the alpha-init iterations of a phase, and only
    in training): no clamp, ``max_val`` = batch mean of the per-sample ``max|x|`` over (C, H, W), overwritten every
    batch, and ``alpha`` set to it (PAMS' first "epoch").

    Args:
        bits (int): k. alpha (float): initial clip (10, PAMS).

    Shapes:
        x (N, C, H, W) -> same.
    """

    def __init__(self, bits=8, alpha=10.0):
        super().__init__()
        self.bits = int(bits)
        self.alpha = nn.Parameter(torch.tensor([float(alpha)]))
        self.register_buffer('max_val', torch.tensor(0.0))
        self.init_mode = False

    @float32  # in bfloat16 (8 significant bits) x / alpha * q would round before round() does
    def forward(self, x):
        q = 2 ** (self.bits - 1) - 1
        if self.init_mode and self.training:
            with torch.no_grad():
                self.max_val.copy_(x.detach().abs().flatten(1).max(1).values.mean())
                self.alpha.data.fill_(float(self.max_val))
            return round_ste(x / self.alpha * q) / q * self.alpha
        a = torch.minimum(torch.maximum(x, -self.alpha), self.alpha)
        return round_ste(a / self.alpha * q) / q * self.alpha


def image_gradient_embedding(img, img_range=255.0):
    """CADyQ's per-patch image embedding ``1e3 * mean|Sobel_{x,y}(gray(img / img_range))|``.

    Normalised 3x3 Sobel (kernel / 8, as kornia's ``spatial_gradient``) with replicate padding; gray =
    0.299 R + 0.587 G + 0.114 B.

    Args:
        img (Tensor): (N, 3, H, W) RGB in [0, img_range].

    Returns:
        Tensor: (N, 2) = (g_x, g_y).
    """
    gray = (0.299 * img[:, 0:1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3]) / img_range
    kx = torch.tensor([[-1., 0., 1.], [-2., 0., 2.], [-1., 0., 1.]], device=img.device, dtype=img.dtype) / 8
    kernel = torch.stack([kx, kx.t()]).unsqueeze(1)
    grad = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode='replicate'), kernel)
    return 1e3 * grad.abs().mean(dim=(2, 3))


class BitSelector(nn.Module):
    """CADyQ bit selector: three :class:`ActQuant` (``quant_bit1/2/3`` = 4/6/8 bits) and ``net_small`` =
    Linear(C + 2 -> 3) reading ``[g_x, g_y, std_{H,W}(x)]``.

    Modes:

    * ``'dynamic'`` (CADyQ): ``p = softmax(net_small(embed))``; the forward value is the hard (argmax) quantiser's
      output, the gradient flows through the p-weighted mixture of all three; bits = ``b_hard + (b_soft -
      b_soft.detach())`` (STE), ``weighted_bits = bits / b_soft.detach()``;
    * ``'flags'`` (CABM): per-sample indices from the lookup table; each sample runs only its chosen quantiser
      (gradient through that one), ``net_small`` unused;
    * ``'fixed'``: always ``quant_bit{fixed_index + 1}`` (PAMS w8a8 = index 2).

    Args:
        num_feat (int): C. bits (tuple): (4, 6, 8).

    Shapes:
        forward(x (N, C, H, W), embed (N, 2) or None, flags (N,) or None) -> (xq (N, C, H, W), bits (N,),
        weighted_bits (N,), index (N,) long).
    """

    def __init__(self, num_feat=64, bits=(4, 6, 8)):
        super().__init__()
        if len(bits) != 3:
            raise ValueError(f'BitSelector needs three candidate bit-widths, got {bits}')
        self.bits = tuple(int(b) for b in bits)
        for i, b in enumerate(self.bits):
            setattr(self, f'quant_bit{i + 1}', ActQuant(b))
        self.net_small = nn.Sequential(nn.Linear(num_feat + 2, 3))
        with torch.no_grad():
            self.net_small[0].weight.fill_(1.0)
            self.net_small[0].bias.copy_(torch.tensor([0.0, 0.0, 1.0]))
        self.mode = 'dynamic'
        self.fixed_index = 2

    def quantizers(self):
        return [self.quant_bit1, self.quant_bit2, self.quant_bit3]

    def forward(self, x, embed=None, flags=None):
        n = x.shape[0]
        table = torch.tensor(self.bits, dtype=x.dtype, device=x.device)
        if self.mode == 'fixed':
            index = torch.full((n,), self.fixed_index, dtype=torch.long, device=x.device)
            bits = table[index]
            return self.quantizers()[self.fixed_index](x), bits, bits / bits.detach(), index
        if self.mode == 'flags':
            if flags is None or flags.shape != (n,):
                raise ValueError(f'BitSelector in flags mode needs per-sample flags of shape ({n},), got '
                                 f'{None if flags is None else tuple(flags.shape)}')
            out = torch.empty_like(x)
            for i, quant in enumerate(self.quantizers()):
                sel = (flags == i).nonzero().squeeze(1)
                if len(sel):
                    out = out.index_copy(0, sel, quant(x.index_select(0, sel)))
            bits = table[flags]
            return out, bits, bits / bits.detach(), flags
        if embed is None:
            raise ValueError('BitSelector in dynamic mode needs the image embedding (N, 2)')
        std = x.detach().flatten(2).std(dim=2)
        p = F.softmax(self.net_small(torch.cat([embed, std], 1)), dim=1)  # (N, 3)
        index = p.argmax(1)
        qs = torch.stack([quant(x) for quant in self.quantizers()], 1)  # (N, 3, C, H, W)
        mix = (p.view(n, 3, 1, 1, 1) * qs).sum(1)
        hard = qs[torch.arange(n, device=x.device), index]
        b_soft = (p * table).sum(1)
        bits = table[index] + (b_soft - b_soft.detach())
        return mix + (hard - mix).detach(), bits, bits / b_soft.detach(), index


class SelectiveQuantConv2d(nn.Conv2d):
    """A convolution whose *input* goes through a :class:`BitSelector` (4/6/8-bit per sample) and whose weight is
    quantised to ``w_bits``: the quantised layer :func:`quantize_convs` puts into any conv backbone.

    The layer keeps ``nn.Conv2d``'s ``weight``/``bias`` names (a full-precision checkpoint of the backbone keeps its
    keys) and adds ``<name>.bitsel.*``. What it does is set per forward by the owning network through ``ctx``, a
    dict shared by all quantised layers of one network: ``mode`` (``'fp'``: plain convolution; ``'pams'``, ``'cadyq'``,
    ``'lut'`` as :class:`BitSelector`'s fixed / dynamic / flags), ``embed`` (N, 2), ``flags`` (N, L) long and
    ``stats`` (lists the layer appends to: ``feats`` its output, ``bits``, ``weighted``, ``index`` (N,) each).

    Args:
        conv (nn.Conv2d): the layer replaced (its weights are copied). index (int): this layer's column in ``flags``.
        ctx (dict): the shared context. bits (tuple): (4, 6, 8). w_bits (int): 8.
    """

    def __init__(self, conv, index, ctx, bits=(4, 6, 8), w_bits=8):
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                         conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode)
        with torch.no_grad():
            self.weight.copy_(conv.weight)
            if conv.bias is not None:
                self.bias.copy_(conv.bias)
        self.bitsel = BitSelector(conv.in_channels, bits)
        self.index, self.ctx, self.w_bits = int(index), ctx, int(w_bits)

    def forward(self, x):
        ctx = self.ctx
        if ctx['mode'] == 'fp':
            y = self._conv_forward(x, self.weight, self.bias)
        else:
            flags = ctx.get('flags')
            x, bits, weighted, index = self.bitsel(x, ctx.get('embed'), None if flags is None else flags[:, self.index])
            y = self._conv_forward(x, quantize_weight(self.weight, self.w_bits), self.bias)
            ctx['stats']['bits'].append(bits)
            ctx['stats']['weighted'].append(weighted)
            ctx['stats']['index'].append(index)
        ctx['stats']['feats'].append(y)
        return y


def quantize_convs(net, patterns, ctx, bits=(4, 6, 8), w_bits=8):
    """Replace, in place, the ``nn.Conv2d`` modules of ``net`` whose names match ``patterns`` by
    :class:`SelectiveQuantConv2d` (in ``named_modules`` order, which is the selector order).

    Args:
        net (nn.Module): any conv backbone. patterns (list[str]): ``fnmatch`` patterns of module names
            (``'body.*.conv1'``), or the string ``'body'``: every Conv2d but the first and the last.
        ctx (dict): the context shared by the new layers (see :class:`SelectiveQuantConv2d`).

    Returns:
        list[str]: the names replaced.

    Raises:
        ValueError: a pattern matches no Conv2d, or nothing is selected.
    """
    from fnmatch import fnmatchcase
    convs = [(n, m) for n, m in net.named_modules() if type(m) is nn.Conv2d]
    if patterns == 'body':
        chosen = [n for n, _ in convs[1:-1]]
    else:
        if isinstance(patterns, str):
            patterns = [patterns]
        for p in patterns:
            if not any(fnmatchcase(n, p) for n, _ in convs):
                raise ValueError(f'quant_layers pattern {p!r} matches no Conv2d of {type(net).__name__}; its convs '
                                 f'are {[n for n, _ in convs]}')
        chosen = [n for n, _ in convs if any(fnmatchcase(n, p) for p in patterns)]
    if not chosen:
        raise ValueError(f'quant_layers {patterns!r} selects no Conv2d of {type(net).__name__}')
    for i, name in enumerate(chosen):
        parent_name, _, child = name.rpartition('.')
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, child, SelectiveQuantConv2d(getattr(parent, child), i, ctx, bits, w_bits))
    return chosen
