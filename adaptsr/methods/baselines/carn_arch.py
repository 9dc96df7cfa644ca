"""CARN-M, in the ClassSR/PCSR variant (BatchNorm after the 1x1 cascading fusions).

Source: N. Ahn, B. Kang, K.-A. Sohn, "Fast, Accurate, and Lightweight Super-Resolution with Cascading Residual
Network", ECCV 2018 (github.com/nmhkahn/CARN-pytorch); the variant with ``Conv1x1(bias=False) + BatchNorm`` fusions
is the one of ClassSR (XPixelGroup/ClassSR) used as PCSR's backbone (the PCSR paper, github.com/3587jjh/PCSR).
"""
import math

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from adaptsr.core.arch_util import MeanShiftMixin


class EResidualBlock(nn.Module):
    """Efficient residual block: ``relu(x + [conv3x3 g, relu, conv3x3 g, relu, conv1x1](x))``.

    Args:
        nf (int): channels.
        group (int): groups of the two 3x3 convolutions.
    """

    def __init__(self, nf, group=4):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(nf, nf, 3, 1, 1, groups=group), nn.ReLU(inplace=True),
            nn.Conv2d(nf, nf, 3, 1, 1, groups=group), nn.ReLU(inplace=True),
            nn.Conv2d(nf, nf, 1, 1, 0))

    def forward(self, x):
        return torch.relu(self.body(x) + x)


def _fusion(in_ch, nf):
    """1x1 cascading fusion: Conv (no bias) + BatchNorm + ReLU (ClassSR CARN-M)."""
    return nn.Sequential(nn.Conv2d(in_ch, nf, 1, 1, 0, bias=False), nn.BatchNorm2d(nf), nn.ReLU(inplace=True))


def cascade(x, units, fuses):
    """CARN cascading: ``c_k = cat(c_{k-1}, unit_k(o_{k-1}))``, ``o_k = fuse_k(c_k)``, from ``c_0 = o_0 = x``."""
    c = x
    o = x
    for unit, fuse in zip(units, fuses):
        c = torch.cat([c, unit(o)], dim=1)
        o = fuse(c)
    return o


class CARNBlock(nn.Module):
    """CARN-M cascading block: one shared :class:`EResidualBlock` ``b1`` applied three times."""

    def __init__(self, nf, group=4):
        super().__init__()
        self.b1 = EResidualBlock(nf, group)
        self.c1 = _fusion(2 * nf, nf)
        self.c2 = _fusion(3 * nf, nf)
        self.c3 = _fusion(4 * nf, nf)

    def forward(self, x):
        return cascade(x, (self.b1, self.b1, self.b1), (self.c1, self.c2, self.c3))


class UpsampleBlock(nn.Module):
    """``[Conv nf->4nf k3 (groups), ReLU, PixelShuffle(2)] x log2(scale)`` (x3: one ``Conv nf->9nf, PS(3)``)."""

    def __init__(self, nf, scale, group=4):
        super().__init__()
        layers = []
        if scale in (2, 4, 8):
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(nf, 4 * nf, 3, 1, 1, groups=group), nn.ReLU(inplace=True), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(nf, 9 * nf, 3, 1, 1, groups=group), nn.ReLU(inplace=True), nn.PixelShuffle(3)]
        else:
            raise ValueError(f'CARN upsampler supports scale 2, 3, 4 or 8, got {scale}')
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return self.body(x)


class _Upsample(nn.Module):
    """Holder so that state_dict keys read ``upsample.up.body.*`` as in the official checkpoints."""

    def __init__(self, nf, scale, group):
        super().__init__()
        self.up = UpsampleBlock(nf, scale, group)

    def forward(self, x):
        return self.up(x)


class CARNM(nn.Module):
    """CARN-M network (ClassSR variant) on mean-subtracted input; no input normalisation inside.

    Args:
        num_feat (int): channels nf (64 for the original, 52 as PCSR encoder).
        group (int): groups of the 3x3 convolutions.
        upscale (int): scale of the upsampling tail.
        no_upsampling (bool): return the LR features ``o3`` (N, nf, h, w) instead of an image (encoder mode).
    """

    def __init__(self, num_feat=64, group=4, upscale=4, no_upsampling=False):
        super().__init__()
        nf = num_feat
        self.out_channels = nf
        self.no_upsampling = no_upsampling
        self.entry = nn.Conv2d(3, nf, 3, 1, 1)
        self.b1 = CARNBlock(nf, group)
        self.b2 = CARNBlock(nf, group)
        self.b3 = CARNBlock(nf, group)
        self.c1 = _fusion(2 * nf, nf)
        self.c2 = _fusion(3 * nf, nf)
        self.c3 = _fusion(4 * nf, nf)
        if not no_upsampling:
            self.upsample = _Upsample(nf, upscale, group)
            self.exit = nn.Conv2d(nf, 3, 3, 1, 1)

    def forward(self, x):
        o = cascade(self.entry(x), (self.b1, self.b2, self.b3), (self.c1, self.c2, self.c3))
        if self.no_upsampling:
            return o
        return self.exit(self.upsample(o))


@ARCH_REGISTRY.register()
class PCSRCARN(MeanShiftMixin, CARNM):
    """Original CARN-M x``upscale`` (ClassSR variant), the CARN baseline of PCSR; input and output in [0, 1].

    State-dict names match PCSR's ``save/carn-x4/iter_last.pth`` (``entry``, ``b*``, ``c*``, ``upsample.up.body``,
    ``exit``); the official multi-scale ``carn_m.pth`` converts bit-exactly with :mod:`adaptsr.methods.pcsr.formats`.

    Args:
        num_feat (int): channels (64).
        group (int): groups (4).
        upscale (int): scale factor.
        rgb_mean (sequence[float]): mean subtracted from the input and added to the output.

    Shapes:
        (N, 3, h, w) -> (N, 3, h * upscale, w * upscale).
    """

    def __init__(self, num_feat=64, group=4, upscale=4, rgb_mean=(0.4488, 0.4371, 0.4040)):
        super().__init__(num_feat=num_feat, group=group, upscale=upscale, no_upsampling=False)
        self.set_rgb_mean(rgb_mean)

    def forward(self, x):
        return super().forward(x - self.rgb_mean) + self.rgb_mean
