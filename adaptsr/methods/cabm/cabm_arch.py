"""EDSR-baseline in the four forms of the CABM recipe: full precision, PAMS w8a8, CADyQ and CABM (lookup-table bits).

Source: S. Tian et al., "CABM: Content-Aware Bit Mapping for Single Image Super-Resolution Network with Large
Input", CVPR 2023 (github.com/Sheldon04/CABM-pytorch), built on CADyQ (Hong et al., ECCV 2022) and PAMS (Li et al.,
ECCV 2020). Written from the CABM paper, github.com/Sheldon04/CABM-pytorch, not from the official code.

One module tree serves every step, so a checkpoint of one step loads strictly into the next: each residual block
holds two :class:`~adaptsr.methods.cabm.quant.BitSelector` (``bitsel1`` before the block, ``body.2`` before its
second conv; 32 for 16 blocks), 8-bit weight convolutions and the fixed 8-bit ``quant_act3``; ``mode`` picks how
they act:

* ``'fp'``: no quantisation (the full-precision EDSR-baseline);
* ``'pams'``: every selector fixed at its 8-bit quantiser, 8-bit weights (PAMS w8a8);
* ``'cadyq'``: selectors choose 4/6/8 bits per patch with their MLPs (CADyQ);
* ``'lut'``: per-patch flags (N, 32) from the edge-to-bit table, set by :meth:`CABMEDSR.set_bit_flags` (CABM).

The key layout is the official CADyQ / CABM one (github.com/Sheldon04/CABM-pytorch).
"""
import basicsr.archs  # noqa: F401  (registers BasicSR's own archs, e.g. MSRResNet, as backbones)
import torch
from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

from adaptsr.core.arch_util import frozen_mean_shift
from adaptsr.core.cost import module_flops
from adaptsr.methods.cabm.quant import (ActQuant, BitSelector, QuantConv2d, SelectiveQuantConv2d,
                                        image_gradient_embedding, quantize_convs)

RGB_MEAN = (0.4488, 0.4371, 0.4040)
MODES = ('fp', 'pams', 'cadyq', 'lut')
_SELECTOR_MODE = {'fp': 'fixed', 'pams': 'fixed', 'cadyq': 'dynamic', 'lut': 'flags'}


class _QuantNetMixin:
    """What the CABM archs share: modes, table flags, alpha initialisation, the per-forward statistics. A subclass
    provides ``selectors()`` (in flag order), ``bits`` and ``num_selectors``."""

    def quantizers(self):
        """Every activation quantiser of the selectors (3 per selector)."""
        return [q for sel in self.selectors() for q in sel.quantizers()]

    def set_mode(self, mode):
        """``'fp'``, ``'pams'``, ``'cadyq'`` or ``'lut'`` (see the module docstring). Raises ValueError otherwise."""
        if mode not in MODES:
            raise ValueError(f'{type(self).__name__} mode must be one of {MODES}, got {mode!r}')
        self.mode = mode
        for sel in self.selectors():
            sel.mode = _SELECTOR_MODE[mode]
            sel.fixed_index = len(self.bits) - 1

    def set_bit_flags(self, flags):
        """Per-sample bit indices for ``lut`` mode: (N, num_selectors) long in {0, 1, 2} (index into ``bits``), in
        the order of :meth:`selectors`. Raises ValueError on another shape."""
        if flags is not None and (flags.dim() != 2 or flags.shape[1] != self.num_selectors):
            raise ValueError(f'bit flags must be (N, {self.num_selectors}), got {tuple(flags.shape)}')
        self.flags = flags

    def complete_fp_state_dict(self, state):
        """A full-precision checkpoint of the backbone (no quantiser or selector key at all, e.g. a released ECBSR
        file) completed with this network's own quantiser and selector entries, so that it loads strictly.

        Returns:
            tuple: (state_dict, number of keys added); ``state`` itself and 0 when it has any quantiser key (a
            checkpoint of a quantised phase stays as it is, and a strict load reports what it lacks).
        """
        prefixes = tuple(n + '.' for n, m in self.named_modules() if isinstance(m, (ActQuant, BitSelector)))
        own = self.state_dict()
        quant_keys = [k for k in own if k.startswith(prefixes)]
        if not quant_keys or any(k.startswith(prefixes) for k in state):
            return state, 0
        return dict(state, **{k: own[k] for k in quant_keys}), len(quant_keys)

    def adapt_state_dict(self, sd, source='?'):
        """Loading hook (:func:`adaptsr.core.checkpoints.load_into`): a full-precision checkpoint of the backbone
        gets the initial quantiser and selector state (:meth:`complete_fp_state_dict`); the alphas are then
        re-initialised from data in the first ``alpha_init_iters`` iterations of a quantised phase."""
        sd, added = self.complete_fp_state_dict(sd)
        if added:
            get_root_logger().info(f'CABM: {source} is a full-precision checkpoint; {added} quantiser keys start '
                                   'from their initial values')
        return sd

    def set_alpha_init(self, active):
        """PAMS' alpha initialisation from data (:class:`~adaptsr.methods.cabm.quant.ActQuant`) on or off."""
        for q in self.quantizers():
            q.init_mode = bool(active)

    @torch.no_grad()
    def infer(self, x, bit_flags=None):
        """Test forward of the current mode and its cost (:mod:`adaptsr.core.cost`).

        Args:
            x (Tensor): LR (N, 3, h, w) in [0, 1] (tiles of one image).
            bit_flags (Tensor | None): ``lut`` mode's per-tile bit indices (N, num_selectors) long (from the
                edge-to-bit table); ignored in the other modes.

        Returns:
            tuple: SR (N, 3, h s, w s) and the cost: ``flops`` = ``flops_full`` (2 x multiply-adds: quantisation
            changes bits, not operations), ``pixels`` (LR), ``tiles``, ``bitops`` (``OPs_fp + 8/32 * FAB/32 *
            OPs_quant`` per tile, multiply-adds; the full-precision count in ``fp`` mode), ``fab_sum`` (sum of the
            tiles' mean activation bits) and ``trace['flags']`` (N, num_selectors) long (CPU) or None.
        """
        if self.mode == 'lut':
            self.set_bit_flags(bit_flags)
        out = self(x)
        n = x.shape[0]
        unquant, quant = self.macs_split(x.shape[2], x.shape[3])
        fab = self.last_stats['fab'].detach().cpu()
        if self.mode == 'fp':
            bitops = n * (unquant + quant)
        else:
            bitops = float(sum(unquant + 8 / 32 * float(f) / 32 * quant for f in fab))
        flags = self.last_stats['flags']
        cost = {'flops': 2 * n * (unquant + quant), 'flops_full': 2 * n * (unquant + quant),
                'pixels': n * x.shape[2] * x.shape[3], 'tiles': n, 'bitops': bitops, 'fab_sum': float(fab.sum()),
                'trace': {'flags': None if flags is None else flags.detach().cpu()}}
        return out, cost

    def _batch_flags(self, x):
        if self.flags is None or self.flags.shape[0] != x.shape[0]:
            got = None if self.flags is None else tuple(self.flags.shape)
            raise ValueError(f'{type(self).__name__} in lut mode needs set_bit_flags((N, {self.num_selectors})) for '
                             f'this batch of {x.shape[0]}, got {got}')
        return self.flags.to(x.device)

    def _stats(self, n, stats, res):
        if stats['bits']:
            bits = torch.stack(stats['bits'], 1).sum(1)
            weighted = torch.stack(stats['weighted'], 1).sum(1)
            index = torch.stack(stats['index'], 1)
        else:
            bits = weighted = res.new_full((n,), 32.0 * self.num_selectors)
            index = None
        return {'bits': bits, 'fab': bits / self.num_selectors, 'weighted_bits': weighted, 'flags': index,
                'res': res, 'feats': stats['feats']}


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
class CABMEDSR(_QuantNetMixin, nn.Module):
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
        self.num_selectors = 2 * num_block
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

    def selectors(self):
        """The 32 selectors in the official order ``block0.sel1, block0.sel2, block1.sel1, ...``."""
        out = []
        for blk in self.body[:self.num_block]:
            out += [blk.bitsel1, blk.body[2]]
        return out

    def quantizers(self):
        """Every activation quantiser (3 per selector and the blocks' ``quant_act3``)."""
        return super().quantizers() + [blk.quant_act3 for blk in self.body[:self.num_block]]

    # forward -----------------------------------------------------------------------------------------------------
    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'CABMEDSR expects RGB input (N, 3, H, W), got shape {tuple(x.shape)}')
        x = x * self.img_range
        flags = None
        if self.mode == 'lut':
            flags = self._batch_flags(x).view(x.shape[0], self.num_block, 2)
        embed = image_gradient_embedding(x, self.img_range) if self.mode == 'cadyq' else None
        stats = {'feats': [], 'bits': [], 'weighted': [], 'index': []}
        head = self.head(self.sub_mean(x))
        res = head
        for i, blk in enumerate(self.body[:self.num_block]):
            res = blk(res, self.mode, embed, None if flags is None else flags[:, i], stats)
        res = self.body[self.num_block](res) + head
        out = self.add_mean(self.tail(res)) / self.img_range
        self.last_stats = self._stats(x.shape[0], stats, res)
        return out

    # cost --------------------------------------------------------------------------------------------------------
    def macs_split(self, h, w):
        """Multiply-adds of one (1, 3, h, w) input: ``(unquantised, quantised)``, the quantised part being the 32
        selector-quantised convolutions (the CABM paper, github.com/Sheldon04/CABM-pytorch)."""
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


@ARCH_REGISTRY.register()
class CABMNet(_QuantNetMixin, nn.Module):
    """Any conv backbone in the four CABM forms: the convolutions named by ``quant_layers`` get a per-sample 4/6/8-bit
    input selector and 8-bit weights (:func:`~adaptsr.methods.cabm.quant.quantize_convs`); the rest stays full
    precision.

    The backbone's own modules become this network's children, so its state_dict keys are unchanged (a released
    full-precision file, e.g. ECBSR's ``backbone.{i}.0.weight``, keeps its names) and each quantised conv adds
    ``<conv>.bitsel.*`` (three activation quantisers and the CADyQ MLP).

    Distillation features (``last_stats``): ``feats`` = the output of every quantised conv, ``res`` = the input of
    ``res_layer`` (default: the first full-precision conv after the last quantised one, i.e. the body output the
    upsampler reads).

    Args:
        backbone (dict): the backbone's arch options, ``type`` a registered arch (``ECBSRPlain``, BasicSR's
            ``MSRResNet``, ...) taking (N, 3, h, w) in [0, 1].
        quant_layers (str | list[str]): ``fnmatch`` patterns of Conv2d names, or ``'body'`` (all but the first and
            last Conv2d).
        bits (tuple): candidate activation bits (4, 6, 8). w_bits (int): 8. mode (str): fp / pams / cadyq / lut.
        res_layer (str, optional): module whose input is ``res``. upscale (int, optional): the scale, when neither
            the backbone nor its options have an ``upscale`` / ``scale``.

    Shapes:
        (N, 3, h, w) in [0, 1] -> the backbone's output (N, 3, h s, w s). ``last_stats`` as :class:`CABMEDSR`
        with ``num_selectors`` = the number of quantised convs.

    Raises:
        ValueError: ``backbone`` without a ``type``, a backbone holding parameters outside its submodules, a
            ``quant_layers`` pattern matching no Conv2d, an unknown ``res_layer``, or no known scale.
    """

    #: the forms :meth:`set_mode` takes
    modes = MODES

    def __init__(self, backbone, quant_layers='body', bits=(4, 6, 8), w_bits=8, mode='fp', res_layer=None,
                 upscale=None):
        super().__init__()
        if not isinstance(backbone, dict) or 'type' not in backbone:
            raise ValueError(f'CABMNet: backbone must be an arch options dict with a type, got {backbone!r}')
        opt = dict(backbone)
        net = ARCH_REGISTRY.get(opt.pop('type'))(**opt)
        persistent = [k for k, v in net._buffers.items() if v is not None and k not in net._non_persistent_buffers_set]
        if any(v is not None for v in net._parameters.values()) or persistent:
            raise ValueError(f'CABMNet: {type(net).__name__} holds parameters or saved buffers outside its submodules; '
                             'not wrappable')
        self.bits = tuple(int(b) for b in bits)
        self._ctx = {'mode': 'fp', 'embed': None, 'flags': None, 'stats': None, 'res': None}
        self.quant_names = quantize_convs(net, quant_layers, self._ctx, self.bits, w_bits)
        self.num_selectors = len(self.quant_names)
        for name, child in net.named_children():
            self.add_module(name, child)
        object.__setattr__(self, '_backbone', net)  # not registered: its modules are this network's children
        self.upscale = int(upscale or getattr(net, 'upscale', None) or getattr(net, 'scale', None)
                           or backbone.get('upscale') or backbone.get('scale') or 0)
        if not self.upscale:
            raise ValueError(f'CABMNet: {type(net).__name__} has no upscale/scale attribute; set network_g.upscale')
        modules = list(net.named_modules())
        names = [n for n, _ in modules]
        if res_layer is None:
            last = names.index(self.quant_names[-1])
            res_layer = next((n for n, m in modules[last + 1:] if type(m) is nn.Conv2d), self.quant_names[-1])
        elif res_layer not in names:
            raise ValueError(f'CABMNet: res_layer {res_layer!r} is not a module of {type(net).__name__}')
        self.res_layer = res_layer
        net.get_submodule(res_layer).register_forward_pre_hook(self._keep_res)
        self.flags, self.last_stats, self._macs = None, None, {}
        self.set_mode(mode)

    def _keep_res(self, module, inputs):
        if self._ctx['stats'] is not None:
            self._ctx['res'] = inputs[0]

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self._backbone._apply(fn, recurse=False)  # the backbone's own non-persistent buffers (e.g. an RGB mean)
        return self

    def train(self, mode=True):
        super().train(mode)
        self._backbone.training = mode
        return self

    def selectors(self):
        """The selectors in flag order (the quantised convs in module order)."""
        return [self._backbone.get_submodule(n).bitsel for n in self.quant_names]

    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'CABMNet expects RGB input (N, 3, H, W), got shape {tuple(x.shape)}')
        stats = {'feats': [], 'bits': [], 'weighted': [], 'index': []}
        self._ctx.update(mode=self.mode, stats=stats, res=None,
                         flags=self._batch_flags(x) if self.mode == 'lut' else None,
                         embed=image_gradient_embedding(x, 1.0) if self.mode == 'cadyq' else None)
        try:
            out = self._backbone(x)
            res = self._ctx['res']
        finally:
            self._ctx.update(stats=None, res=None, flags=None, embed=None)  # no tensors kept between forwards
        self.last_stats = self._stats(x.shape[0], stats, res)
        return out

    @torch.no_grad()
    def macs_split(self, h, w):
        """Multiply-adds of one (1, 3, h, w) input: ``(unquantised, quantised)`` convolutions (the quantised part is
        the convs with a selector), measured once per size by hooks on a full-precision forward."""
        if (h, w) not in self._macs:
            split = [0, 0]

            def hook(m, i, o):
                split[isinstance(m, SelectiveQuantConv2d)] += module_flops(m, i, o) // 2

            handles = [m.register_forward_hook(hook) for m in self.modules() if isinstance(m, nn.Conv2d)]
            mode, stash = self.mode, (self.last_stats, self.flags)
            try:
                self.set_mode('fp')
                self(torch.zeros(1, 3, h, w, device=next(self.parameters()).device))
            finally:
                for hd in handles:
                    hd.remove()
                self.set_mode(mode)
                self.last_stats, self.flags = stash
            self._macs[(h, w)] = (float(split[0]), float(split[1]))
        return self._macs[(h, w)]
