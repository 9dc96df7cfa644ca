"""ETDS: dual-stream training network, its plain inference form, and the paper's ablation forms.

Source: Chao, Zhou, Gao, Gong, Yang, Zeng, Dehbi, "Equivalent Transformation and Dual Stream Network Construction
for Mobile Image Super-Resolution", CVPR 2023; github.com/ECNUSR/ETDS (Apache-2.0). Written from the paper; module
names equal the official ones, so the released files load strictly.

Configurations (paper / repo): ETDS-T M5C16, ETDS-S M4C32, ETDS-M M6C32, ETDS-L M7C48; ``num_block`` = M,
``num_feat`` = C = channels of the converted plain model (the training backbone has C - 3, the residual stream 3).

Inputs are RGB in [0, 1] with **no** mean normalisation: the identity stream and the embedded clamp rely on
non-negative inputs.
"""
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

from adaptsr.core.reparam import identity_kernel, plain_out_channels, repeat_kernel

ETDS_CONFIGS = {'T': (5, 16), 'S': (4, 32), 'M': (6, 32), 'L': (7, 48)}  # paper name -> (num_block, num_feat)


def _conv(cin, cout, k=3):
    return nn.Conv2d(cin, cout, k, 1, k // 2)


def _check_common(num_in_ch, num_out_ch, upscale, num_block):
    if num_in_ch != 3 or num_out_ch != 3:
        raise ValueError(f'ETDS archs are RGB only (num_in_ch = num_out_ch = 3), got {num_in_ch}/{num_out_ch}')
    if upscale not in (2, 3, 4):
        raise ValueError(f'upscale must be 2, 3 or 4, got {upscale}')
    if num_block < 1:
        raise ValueError(f'num_block must be >= 1, got {num_block}')


def _check_input(x, name):
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f'{name} expects RGB input (N, 3, H, W), got shape {tuple(x.shape)}')


class _DualStreamBase(nn.Module):
    """Training-form dual stream (the ETDS paper, github.com/ECNUSR/ETDS) with the ablation switches.

    Args:
        upscale (int): 2, 3 or 4.
        num_block (int): M, backbone 3x3 convs between the first and last conv.
        num_feat (int): C of the converted model; the backbone stream has ``C - num_residual_feat`` channels.
        num_residual_feat (int): residual (LF) stream channels (3).
        cross (bool): ``add_residual_convs`` feed the residual stream into the backbone (the full ETDS).
        advanced (bool): ``advanced_residual_convs`` also feed the backbone into the residual stream (ablation;
            not convertible).
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, upscale=4, num_block=6, num_feat=32, num_residual_feat=3,
                 cross=True, advanced=False):
        super().__init__()
        _check_common(num_in_ch, num_out_ch, upscale, num_block)
        if num_residual_feat != num_in_ch:
            raise ValueError(f'num_residual_feat must equal num_in_ch ({num_in_ch}) for the identity stream')
        if num_feat <= num_residual_feat:
            raise ValueError(f'num_feat ({num_feat}) must exceed num_residual_feat ({num_residual_feat})')
        self.upscale, self.num_block, self.num_feat = upscale, num_block, num_feat
        cb, cr, k = num_feat - num_residual_feat, num_residual_feat, num_out_ch * upscale * upscale
        self.conv_first = _conv(num_in_ch, cb)
        self.conv_residual_first = _conv(num_in_ch, cr)
        self.backbone_convs = nn.ModuleList(_conv(cb, cb) for _ in range(num_block))
        self.residual_convs = nn.ModuleList(_conv(cr, cr) for _ in range(num_block))
        if cross:
            self.add_residual_convs = nn.ModuleList(_conv(cr, cb) for _ in range(num_block))
        if advanced:
            self.advanced_residual_convs = nn.ModuleList(_conv(cb, cr) for _ in range(num_block))
        self.conv_last = _conv(cb, k)
        self.conv_residual_last = _conv(cr, k)
        self.reset_residual_stream()

    @torch.no_grad()
    def reset_residual_stream(self):
        """Paper init: residual convs = identity, cross convs = 0, ``conv_residual_last`` = nearest upsampling."""
        cr = self.conv_residual_first.out_channels
        for conv in [self.conv_residual_first, *self.residual_convs]:
            conv.weight.copy_(identity_kernel(cr))
            conv.bias.zero_()
        for name in ('add_residual_convs', 'advanced_residual_convs'):
            for conv in getattr(self, name, []):
                conv.weight.zero_()
                conv.bias.zero_()
        self.conv_residual_last.weight.copy_(repeat_kernel(cr, self.upscale * self.upscale))
        self.conv_residual_last.bias.zero_()

    def forward(self, x):
        """(N, 3, h, w) in [0, 1] -> (HF + LF, LF), each (N, 3, h s, w s), unclamped."""
        _check_input(x, type(self).__name__)
        feat = F.relu(self.conv_first(x))
        res = F.relu(self.conv_residual_first(x))
        cross = getattr(self, 'add_residual_convs', None)
        adv = getattr(self, 'advanced_residual_convs', None)
        for i in range(self.num_block):
            f_new = self.backbone_convs[i](feat)
            if cross is not None:
                f_new = f_new + cross[i](res)
            r_new = self.residual_convs[i](res)
            if adv is not None:
                r_new = r_new + adv[i](feat)
            feat, res = F.relu(f_new), F.relu(r_new)
        lf = F.pixel_shuffle(self.conv_residual_last(res), self.upscale)
        hf = F.pixel_shuffle(self.conv_last(feat), self.upscale)
        return hf + lf, lf


@ARCH_REGISTRY.register()
class ETDSNet(_DualStreamBase):
    """ETDS training form (dual stream); official class ``ETDS``. Converts exactly to :class:`ETDSPlain`.

    Args:
        num_in_ch (int): 3. num_out_ch (int): 3.
        upscale (int): 2, 3 or 4.
        num_block (int): M (T/S/M/L: 5/4/6/7).
        num_feat (int): C of the plain model (T/S/M/L: 16/32/32/48); the backbone stream has C - 3 channels.
        num_residual_feat (int): 3.

    Shapes:
        (N, 3, h, w) in [0, 1] -> tuple (HF + LF, LF), each (N, 3, h * upscale, w * upscale), not clamped.

    Raises:
        ValueError: non-RGB channels, unsupported scale, num_feat <= 3.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, upscale=4, num_block=6, num_feat=32, num_residual_feat=3):
        super().__init__(num_in_ch, num_out_ch, upscale, num_block, num_feat, num_residual_feat)


@ARCH_REGISTRY.register()
class ETDSAblationResidual(_DualStreamBase):
    """ETDS ablation "only residual": dual stream without ``add_residual_convs`` (streams never mix).

    Arguments and shapes as :class:`ETDSNet`; converts exactly to :class:`ETDSPlain`.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, upscale=4, num_block=6, num_feat=32, num_residual_feat=3):
        super().__init__(num_in_ch, num_out_ch, upscale, num_block, num_feat, num_residual_feat, cross=False)


@ARCH_REGISTRY.register()
class ETDSAblationAdvancedResidual(_DualStreamBase):
    """ETDS ablation "advanced residual": adds ``advanced_residual_convs`` (backbone -> residual stream), so
    ``r_{i+1} = relu(W_r r_i + W_b2r x_i)``. The residual stream then depends on the backbone, which the equivalent
    transformation cannot express: this form is **not convertible** (the converter raises).

    Arguments and shapes as :class:`ETDSNet`.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, upscale=4, num_block=6, num_feat=32, num_residual_feat=3):
        super().__init__(num_in_ch, num_out_ch, upscale, num_block, num_feat, num_residual_feat, advanced=True)


class _SingleStream(nn.Module):
    """One conv+ReLU stream of ``width`` channels, last conv, optional nearest-upsampling shortcut, PixelShuffle."""

    def __init__(self, num_in_ch, num_out_ch, upscale, num_block, width, shortcut):
        super().__init__()
        _check_common(num_in_ch, num_out_ch, upscale, num_block)
        self.upscale, self.num_block, self.shortcut = upscale, num_block, shortcut
        self.conv_first = _conv(num_in_ch, width)
        self.backbone_convs = nn.ModuleList(_conv(width, width) for _ in range(num_block))
        self.conv_last = _conv(width, num_out_ch * upscale * upscale)

    def forward(self, x):
        _check_input(x, type(self).__name__)
        feat = F.relu(self.conv_first(x))
        for conv in self.backbone_convs:
            feat = F.relu(conv(feat))
        out = self.conv_last(feat)
        if self.shortcut:
            out = out + torch.repeat_interleave(x, self.upscale * self.upscale, dim=1)
        return F.pixel_shuffle(out, self.upscale)


@ARCH_REGISTRY.register()
class ETDSOnlyET(_SingleStream):
    """ETDS ablation "only ET": one conv+ReLU stream of ``num_feat - 3`` channels plus a nearest-upsampling shortcut
    (``repeat_interleave`` of the input); converts exactly to :class:`ETDSPlain` with ``num_feat`` channels.

    Args:
        num_in_ch (int): 3. num_out_ch (int): 3. upscale (int): 2, 3 or 4. num_block (int): M.
        num_feat (int): C of the converted model (stream width C - 3).

    Shapes:
        (N, 3, h, w) in [0, 1] -> (N, 3, h * upscale, w * upscale), not clamped.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, upscale=4, num_block=6, num_feat=32):
        super().__init__(num_in_ch, num_out_ch, upscale, num_block, num_feat - num_in_ch, shortcut=True)


@ARCH_REGISTRY.register()
class ETDSAblationPlain(_SingleStream):
    """ETDS ablation "Plain": conv+ReLU stack of ``num_feat`` channels, last conv and PixelShuffle; no residual
    stream, no shortcut, no clip (the paper's Plain M6C32 baseline).

    Args:
        num_in_ch (int): 3. num_out_ch (int): 3. upscale (int): 2, 3 or 4. num_block (int): M. num_feat (int): C.

    Shapes:
        (N, 3, h, w) in [0, 1] -> (N, 3, h * upscale, w * upscale), not clamped.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, upscale=4, num_block=6, num_feat=32):
        super().__init__(num_in_ch, num_out_ch, upscale, num_block, num_feat, shortcut=False)


@ARCH_REGISTRY.register()
class ETDSPlain(nn.Module):
    """Plain inference form of ETDS (official ``ETDSForInference``), also the target of every ET conversion.

    ``y = act(conv_first(I))``, ``y = act(backbone_convs[i](y))``, ``y = relu(conv_last(y))``,
    ``y = relu(conv_clip(y))`` (1x1), x3 drops the dummy 28th channel, then PixelShuffle. The clamp to [0, 1] is
    embedded in ``conv_last``/``conv_clip`` (the ETDS paper, github.com/ECNUSR/ETDS).

    Args:
        num_in_ch (int): 3. num_out_ch (int): 3. upscale (int): 2, 3 or 4.
        num_block (int): M. num_feat (int): C.
        act_type (str): ``'relu'`` (ETDS, ABPN) or ``'prelu'`` (ECBSR converted by ET: per-channel PReLU after the
            first and backbone convs, modules ``act_first`` and ``backbone_acts.{i}``).
        tail_feat (int | None): output channels of the last backbone conv when they differ from C (ABPN's ET: its
            conv to 3 s^2 channels before the output conv, plus the pass-through channels; the official
            ``ABPN_ET_M4C28`` files); None: C.

    Shapes:
        (N, 3, h, w) in [0, 1] -> (N, 3, h * upscale, w * upscale) in [0, 1].

    Raises:
        ValueError: non-RGB input or options, unsupported scale or ``act_type``.
    """

    #: kept in float32 under ``val.precision: bf16`` (:mod:`adaptsr.core.precision`): the output convs form the image
    #: from the pass-through channels, and rounding them to 8 significant bits costs 0.09 dB at x2 (B100, M7C48)
    fp32_modules = ('conv_last', 'conv_clip')

    def __init__(self, num_in_ch=3, num_out_ch=3, upscale=4, num_block=6, num_feat=32, act_type='relu',
                 tail_feat=None):
        super().__init__()
        _check_common(num_in_ch, num_out_ch, upscale, num_block)
        if act_type not in ('relu', 'prelu'):
            raise ValueError(f"act_type must be 'relu' or 'prelu', got {act_type!r}")
        self.upscale, self.act_type = upscale, act_type
        self.out_keep = num_out_ch * upscale * upscale
        k = plain_out_channels(upscale, num_out_ch)
        tail = num_feat if tail_feat is None else int(tail_feat)
        widths = [num_feat] * num_block + [tail]
        self.conv_first = _conv(num_in_ch, num_feat)
        self.backbone_convs = nn.ModuleList(_conv(widths[i], widths[i + 1]) for i in range(num_block))
        self.conv_last = _conv(tail, k)
        self.conv_clip = _conv(k, k, 1)
        if act_type == 'prelu':
            self.act_first = nn.PReLU(num_feat)
            self.backbone_acts = nn.ModuleList(nn.PReLU(widths[i + 1]) for i in range(num_block))

    def _act(self, module_list, i, x):
        if self.act_type == 'relu':
            return F.relu(x)
        return (self.act_first if module_list is None else module_list[i])(x)

    def forward(self, x):
        _check_input(x, type(self).__name__)
        y = self._act(None, 0, self.conv_first(x))
        acts = getattr(self, 'backbone_acts', None)
        for i, conv in enumerate(self.backbone_convs):
            y = self._act(acts, i, conv(y))
        y = F.relu(self.conv_clip(F.relu(self.conv_last(y))))
        return F.pixel_shuffle(y[:, :self.out_keep], self.upscale)


def etds_macs_per_pixel(num_block, num_feat, upscale):
    """Multiply-adds per LR pixel of the plain model (the ETDS paper, github.com/ECNUSR/ETDS; the paper's "FLOPs"):
    ``27 C + 9 M C^2 + 9 C K + K^2`` with ``K = 3 s^2`` (28 at x3). Bias, ReLU and PixelShuffle are not counted."""
    k = plain_out_channels(upscale)
    return 27 * num_feat + 9 * num_block * num_feat**2 + 9 * num_feat * k + k * k
