"""EDSR-baseline in the four forms of the CABM recipe: full precision, PAMS w8a8, CADyQ and CABM (lookup-table bits).

Source: S. Tian et al., "CABM: Content-Aware Bit Mapping for Single Image Super-Resolution Network with Large
Input", CVPR 2023 (github.com/Sheldon04/CABM-pytorch), built on CADyQ (Hong et al., ECCV 2022) and PAMS (Li et al.,
ECCV 2020). Written from specs/cabm.md 3, not from the official code.

One module tree serves every step, so a checkpoint of one step loads strictly into the next: each residual block
holds two :class:`~adaptsr.ops.quant.BitSelector` (``bitsel1`` before the block, ``body.2`` before its second conv;
32 for 16 blocks), 8-bit weight convolutions and the fixed 8-bit ``quant_act3``; ``mode`` picks how they act:

* ``'fp'``: no quantisation (the full-precision EDSR-baseline);
* ``'pams'``: every selector fixed at its 8-bit quantiser, 8-bit weights (PAMS w8a8);
* ``'cadyq'``: selectors choose 4/6/8 bits per patch with their MLPs (CADyQ);
* ``'lut'``: per-patch flags (N, 32) from the edge-to-bit table, set by :meth:`CABMEDSR.set_bit_flags` (CABM).

The key layout is the official CADyQ / CABM one (specs/cabm.md 3.6); :mod:`adaptsr.convert.cabm` maps the official
FP and PAMS layouts in and out.
"""
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

from adaptsr.archs.arch_util import frozen_mean_shift
from adaptsr.ops.quant import ActQuant, BitSelector, QuantConv2d, image_gradient_embedding

RGB_MEAN = (0.4488, 0.4371, 0.4040)
MODES = ('fp', 'pams', 'cadyq', 'lut')


class CABMResBlock(nn.Module):
    """``out = QA3(conv2(sel2(relu(conv1(x'))))) + x'`` with ``x' = sel1(x)`` (CADyQ's block; the selectors and QA3
    are identities in ``fp`` mode)."""

    def __init__(self, num_feat, res_scale, bits, w_bits):
        super().__init__()
        self.bitsel1 = BitSelector(num_feat, bits)
        self.body = nn.Sequential(QuantConv2d(num_feat, num_feat, 3, 1, 1, w_bits=w_bits), nn.ReLU(True),
                                  BitSelector(num_feat, bits), QuantConv2d(num_feat, num_feat, 3, 1, 1, w_bits=w_bits))
        self.quant_act3 = ActQuant(w_bits)
        self.res_scale = res_scale

    def forward(self, x, mode, embed, flags, stats):
        if mode == 'fp':
            y = F.conv2d(x, self.body[0].weight, self.body[0].bias, padding=1).relu()
            y = F.conv2d(y, self.body[3].weight, self.body[3].bias, padding=1)
            stats['feats'].append(y)
            return y * self.res_scale + x
        x, b1, w1, i1 = self.bitsel1(x, embed, None if flags is None else flags[:, 0])
        y = self.body[1](self.body[0](x))
        y, b2, w2, i2 = self.body[2](y, embed, None if flags is None else flags[:, 1])
        y = self.body[3](y)
        stats['feats'].append(y)
        stats['bits'] += [b1, b2]
        stats['weighted'] += [w1, w2]
        stats['index'] += [i1, i2]
        return self.quant_act3(y * self.res_scale) + x


@ARCH_REGISTRY.register()
class CABMEDSR(nn.Module):
    """EDSR-baseline (16 blocks, 64 channels) with PAMS / CADyQ / CABM quantisation (see the module docstring).

    Args:
        num_in_ch (int): 3. num_out_ch (int): 3. num_feat (int): 64. num_block (int): 16.
        upscale (int): 2, 3 or 4. res_scale (float): 1. img_range (float): 255 (the arch works on [0, 255]).
        rgb_mean (tuple): MeanShift mean. bits (tuple): candidate activation bits (4, 6, 8). w_bits (int): 8.
        mode (str): ``'fp'``, ``'pams'``, ``'cadyq'`` or ``'lut'``.

    Shapes:
        (N, 3, h, w) in [0, 1] -> (N, 3, h s, w s) in [0, 1]. After each forward ``last_stats`` holds ``bits`` (N,)
        (sum over the 32 selectors), ``fab`` (N,) (bits / 32), ``weighted_bits`` (N,), ``flags`` (N, 32) long
        (0/1/2 = 4/6/8 bits), ``res`` (N, C, h, w) (body output after the global skip) and ``feats`` (16 block
        features, before ``res_scale``/QA3), the inputs of the distillation and bit losses.

    Raises:
        ValueError: unknown mode, non-RGB input, missing flags in ``lut`` mode.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=4, res_scale=1.0,
                 img_range=255., rgb_mean=RGB_MEAN, bits=(4, 6, 8), w_bits=8, mode='fp'):
        super().__init__()
        if num_in_ch != 3 or num_out_ch != 3:
            raise ValueError(f'CABMEDSR is RGB only, got num_in_ch={num_in_ch}, num_out_ch={num_out_ch}')
        if upscale not in (2, 3, 4):
            raise ValueError(f'upscale must be 2, 3 or 4, got {upscale}')
        self.upscale, self.img_range, self.num_block = upscale, float(img_range), num_block
        self.bits = tuple(bits)
        self.sub_mean = frozen_mean_shift(-1, self.img_range, rgb_mean)
        self.add_mean = frozen_mean_shift(1, self.img_range, rgb_mean)
        self.head = nn.Sequential(nn.Conv2d(3, num_feat, 3, 1, 1))
        self.body = nn.Sequential(*[CABMResBlock(num_feat, res_scale, bits, w_bits) for _ in range(num_block)],
                                  nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        if upscale in (2, 4):
            up = []
            for _ in range(upscale // 2):
                up += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        else:
            up = [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        self.tail = nn.Sequential(nn.Sequential(*up), nn.Conv2d(num_feat, 3, 3, 1, 1))
        self.flags = None
        self.last_stats = None
        self.set_mode(mode)

    # modes -------------------------------------------------------------------------------------------------------
    def selectors(self):
        """The 32 selectors in the official order ``block0.sel1, block0.sel2, block1.sel1, ...``."""
        out = []
        for blk in self.body[:self.num_block]:
            out += [blk.bitsel1, blk.body[2]]
        return out

    def quantizers(self):
        """Every activation quantiser (3 per selector and the blocks' ``quant_act3``)."""
        out = []
        for sel in self.selectors():
            out += sel.quantizers()
        return out + [blk.quant_act3 for blk in self.body[:self.num_block]]

    def set_mode(self, mode):
        if mode not in MODES:
            raise ValueError(f'CABMEDSR mode must be one of {MODES}, got {mode!r}')
        self.mode = mode
        for sel in self.selectors():
            sel.mode = {'pams': 'fixed', 'cadyq': 'dynamic', 'lut': 'flags'}.get(mode, 'fixed')
            sel.fixed_index = len(self.bits) - 1

    def set_bit_flags(self, flags):
        """Per-sample bit indices for ``lut`` mode: (N, 32) long in {0, 1, 2} (index into ``bits``), order of
        :meth:`selectors`."""
        if flags is not None and (flags.dim() != 2 or flags.shape[1] != 2 * self.num_block):
            raise ValueError(f'bit flags must be (N, {2 * self.num_block}), got {tuple(flags.shape)}')
        self.flags = flags

    def set_alpha_init(self, active):
        """PAMS' alpha initialisation from data (:class:`~adaptsr.ops.quant.ActQuant`) on or off."""
        for q in self.quantizers():
            q.init_mode = bool(active)

    # forward -----------------------------------------------------------------------------------------------------
    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'CABMEDSR expects RGB input (N, 3, H, W), got shape {tuple(x.shape)}')
        x = x * self.img_range
        flags = None
        if self.mode == 'lut':
            if self.flags is None or self.flags.shape[0] != x.shape[0]:
                raise ValueError('CABMEDSR in lut mode needs set_bit_flags((N, 32)) for this batch of '
                                 f'{x.shape[0]}, got {None if self.flags is None else tuple(self.flags.shape)}')
            flags = self.flags.view(x.shape[0], self.num_block, 2).to(x.device)
        embed = image_gradient_embedding(x, self.img_range) if self.mode == 'cadyq' else None
        stats = {'feats': [], 'bits': [], 'weighted': [], 'index': []}
        head = self.head(self.sub_mean(x))
        res = head
        for i, blk in enumerate(self.body[:self.num_block]):
            res = blk(res, self.mode, embed, None if flags is None else flags[:, i], stats)
        res = self.body[self.num_block](res) + head
        out = self.add_mean(self.tail(res)) / self.img_range
        n = x.shape[0]
        if stats['bits']:
            bits = torch.stack(stats['bits'], 1).sum(1)
            weighted = torch.stack(stats['weighted'], 1).sum(1)
            index = torch.stack(stats['index'], 1)
        else:
            bits = weighted = x.new_full((n,), 32.0 * 2 * self.num_block)
            index = None
        self.last_stats = {'bits': bits, 'fab': bits / (2 * self.num_block), 'weighted_bits': weighted,
                           'flags': index, 'res': res, 'feats': stats['feats']}
        return out

    # cost --------------------------------------------------------------------------------------------------------
    def macs_split(self, h, w):
        """Multiply-adds of one (1, 3, h, w) input: ``(unquantised, quantised)``, the quantised part being the 32
        selector-quantised convolutions (specs/cabm.md 6)."""
        c, px = self.head[0].out_channels, h * w
        quant = 2 * self.num_block * 9 * c * c * px
        up_macs, scale_px = 0, px
        for m in self.tail[0]:
            if isinstance(m, nn.Conv2d):
                up_macs += 9 * m.in_channels * m.out_channels * scale_px
            else:
                scale_px *= m.upscale_factor**2
        unquant = 27 * c * px + 9 * c * c * px + up_macs + 9 * c * 3 * scale_px
        return float(unquant), float(quant)
