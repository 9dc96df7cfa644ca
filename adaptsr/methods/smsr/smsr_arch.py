"""SMSR: sparse mask super-resolution, with learned spatial x channel masks and real sparse convolution at inference.

Source: L. Wang, X. Dong, Y. Wang, X. Ying, Z. Lin, W. An, Y. Guo, "Exploring Sparsity in Image Super-Resolution
for Efficient Inference", CVPR 2021; github.com/LongguangWang/SMSR (LAVA commit daac49c). Written from the paper;
module names equal the official ones, so the released x2 file loads strictly.

Forms of the sparse mask block (SMB):

* training: Gumbel-softmax spatial and channel masks (soft), temperature ``tau``; the previous layer's channel mask
  selects a layer's input (the fixed index convention; ``train_mask_index='current'`` reproduces the pre-fix code);
* masked-dense inference: hard masks, dense convolutions multiplied by the masks (any batch size; the reference);
* sparse inference (batch 1): dense channels by dense convolutions over the map, everything involving sparse
  channels only at the active pixels (:mod:`adaptsr.methods.smsr.sparse_conv`); equal to masked-dense.
"""
import math

import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

from adaptsr.core.arch_util import frozen_mean_shift
from adaptsr.core.precision import float32
from adaptsr.methods.smsr.sparse_conv import PixelSet, conv3x3_rows, kernel_has_bf16, load_kernel, pack_tiles

RGB_MEAN = (0.4488, 0.4371, 0.4040)
# spatial-mask densities up to which the sparse path beats the exact dense-split form (scripts/profile_smsr.py,
# 2-core x86 CPU, official x2 weights): the compiled kernel and the torch gathers
KERNEL_MAX_DENSITY = 0.85
TORCH_MAX_DENSITY = 0.45
# the kernel's bfloat16 path against the dense-split form in bf16 (``--bf16 --densities``, the same machine: faster
# in all 10 modules at density 0.9, slower in 9 of 10 at 1.0)
KERNEL_BF16_MAX_DENSITY = 0.9


class SMSRBlock(nn.Module):
    """Sparse mask block (official ``SMB``): ``num_layer`` 3x3 convs (no bias), each output split into dense and
    sparse channels by the learned ``ch_mask`` (1, C, L, 2), and a 1x1 ``collect`` over their concatenation."""

    def __init__(self, num_feat=64, num_layer=4):
        super().__init__()
        self.num_feat, self.num_layer = num_feat, num_layer
        self.ch_mask = nn.Parameter(torch.rand(1, num_feat, num_layer, 2))
        self.body = nn.ModuleList(nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=False) for _ in range(num_layer))
        self.collect = nn.Conv2d(num_feat * num_layer, num_feat, 1)

    def hard_channel_masks(self):
        """(dense, sparse) 0/1 masks, each (L, C): ``round(softmax(ch_mask))``; a 0.5 tie drops the channel."""
        soft = F.softmax(self.ch_mask.detach(), dim=3)[0].permute(1, 0, 2)  # (L, C, 2)
        hard = torch.round(soft)
        return hard[..., 0], hard[..., 1]

    def forward_train(self, x, spa, tau, mask_index='prev'):
        """Soft masks. ``x`` (B, C, H, W), ``spa`` (B, 1, H, W) soft spatial mask.

        Returns:
            tuple: output (B, C, H, W) and the kept-computation map ``S * cs + cd`` (B, L * C, H, W).
        """
        ch = F.gumbel_softmax(self.ch_mask, tau=tau, hard=False, dim=3)  # (1, C, L, 2), one sample per batch
        cd = [ch[:, :, i, 0].unsqueeze(-1).unsqueeze(-1) for i in range(self.num_layer)]
        cs = [ch[:, :, i, 1].unsqueeze(-1).unsqueeze(-1) for i in range(self.num_layer)]
        feats, sparsity, fea = [], [], x
        for i, conv in enumerate(self.body):
            if i == 0:
                y = conv(fea)
                fea = y * cd[0] + y * cs[0] * spa
            else:
                j = i - 1 if mask_index == 'prev' else i
                yd, ys = conv(fea * cd[j]), conv(fea * cs[j])
                fea = yd * cd[i] + yd * cs[i] * spa + ys * cd[i] * spa + ys * cs[i] * spa
            fea = F.relu(fea)
            feats.append(fea)
            sparsity.append(spa * cs[i] + cd[i])
        return self.collect(torch.cat(feats, 1)), torch.cat(sparsity, 1)

    def forward_masked(self, x, spa, cd, cs):
        """Hard masks, dense convolutions times masks (the reference semantics). ``spa`` (B, 1, H, W) 0/1."""
        feats, fea = [], x
        for i, conv in enumerate(self.body):
            d, s = cd[i].view(1, -1, 1, 1), cs[i].view(1, -1, 1, 1)
            if i == 0:
                fea = conv(fea) * (d + s * spa)
            else:
                pd, ps = cd[i - 1].view(1, -1, 1, 1), cs[i - 1].view(1, -1, 1, 1)
                yd, ys = conv(fea * pd), conv(fea * ps)
                fea = d * (yd + spa * ys) + s * spa * (yd + ys)
            fea = F.relu(fea)
            feats.append(fea)
        return self.collect(torch.cat(feats, 1))

    def forward_split(self, x, spa, cd, cs):
        """Hard masks, exact like :meth:`forward_masked`, at the dense model's cost: each layer runs one convolution
        over its dense input channels and one over its sparse input channels (zero off the mask), both for all
        outputs, then combines them with the spatial mask. The sparse-inference fallback for modules whose mask is
        too dense for the pixel gathers to pay off (``SMSRNet.sparse_max_density``). ``x`` (1, C, H, W)."""
        feats, fea = [], x.contiguous(memory_format=torch.channels_last)
        order = torch.arange(self.num_feat, device=x.device)  # input channel order: dense, then sparse
        n_d = self.num_feat
        cols = []
        for i, conv in enumerate(self.body):
            out_d, out_s = cd[i].nonzero().squeeze(1), cs[i].nonzero().squeeze(1)
            od = len(out_d)
            weight = conv.weight[torch.cat([out_d, out_s])][:, order]
            y = F.conv2d(fea[:, :n_d], weight[:, :n_d], padding=1) if n_d else None
            if n_d < self.num_feat:
                ys = F.conv2d(fea[:, n_d:], weight[:, n_d:], padding=1) * spa
                y = ys if y is None else y + ys  # D->all + spa * (S->all)
            if od < self.num_feat:  # sparse outputs: spa * (D->S + S->S)
                y = torch.cat([y[:, :od], y[:, od:] * spa], 1) if od else y * spa
            fea = y.relu_().contiguous(memory_format=torch.channels_last)
            feats.append(fea)
            cols.append(torch.cat([out_d, out_s]) + i * self.num_feat)
            order, n_d = torch.cat([out_d, out_s]), od
        return F.conv2d(torch.cat(feats, 1), self.collect.weight[:, torch.cat(cols)], self.collect.bias)

    def forward_dense(self, x):
        """Every channel of every layer at every pixel (the network without masks)."""
        feats, fea = [], x
        for conv in self.body:
            fea = F.relu(conv(fea))
            feats.append(fea)
        return self.collect(torch.cat(feats, 1))

    def forward_sparse(self, x, pixels, cd, cs):
        """Batch 1, hard masks: every computation that involves sparse channels runs only at ``pixels``.

        Per layer, dense output channels = one dense conv over the dense input channels, everywhere; at the active
        pixels, one gather of the 3x3 neighbourhoods (dense inputs from the zero-padded channels-last dense map,
        sparse inputs from a compact matrix of the active pixels only) and matrix products give the sparse outputs
        and the sparse inputs' contribution to the dense outputs. Sparse features never exist off the mask. The 1x1
        ``collect`` is split the same way.

        Args:
            x (Tensor): (1, C, H, W) block input. pixels (PixelSet): active pixels of the spatial mask.
            cd, cs (Tensor): (L, C) hard dense / sparse channel masks.

        Returns:
            Tensor: (1, C, H, W), equal to :meth:`forward_masked` up to float rounding.
        """
        h, w = x.shape[-2:]
        n = pixels.n
        dense = x.contiguous(memory_format=torch.channels_last)  # (1, n_d, H, W) dense input channels
        order = torch.arange(self.num_feat, device=x.device)  # input channel order: dense, then sparse
        n_d, n_s = self.num_feat, 0
        compact = None  # (1 + N, n_s) sparse input features at the active pixels, row 0 = zeros
        dense_maps, sparse_feats, d_cols, s_cols = [], [], [], []
        for i, conv in enumerate(self.body):
            out_d, out_s = cd[i].nonzero().squeeze(1), cs[i].nonzero().squeeze(1)
            od, os_ = len(out_d), len(out_s)
            weight = conv.weight[:, order].to(x.dtype)  # bf16 under autocast: in-place addmm_ is not autocast
            if od and n_d:
                new_dense = F.conv2d(dense, weight[out_d, :n_d], padding=1).contiguous(
                    memory_format=torch.channels_last)  # rows below are views of it
            else:
                new_dense = x.new_zeros(1, od, h, w).contiguous(memory_format=torch.channels_last)
            new_compact = x.new_zeros(1 + n, os_)  # row 0 stays zero: the inactive neighbours' features
            new_sparse = new_compact[1:]
            if n and (os_ or (od and n_s)):
                if n_d and os_:  # dense inputs -> sparse outputs
                    rows = F.pad(dense, (1, 1, 1, 1)).permute(0, 2, 3, 1).reshape(-1, n_d)
                    conv3x3_rows(new_sparse, rows, pixels.taps, weight[out_s, :n_d])
                if n_s and os_:  # sparse inputs -> sparse outputs
                    conv3x3_rows(new_sparse, compact, pixels.compact_taps, weight[out_s, n_d:])
                if n_s and od:  # sparse inputs -> dense outputs, at the active pixels only
                    dense_rows = new_dense.permute(0, 2, 3, 1).reshape(-1, od)
                    dense_rows.index_add_(0, pixels.flat, conv3x3_rows(
                        x.new_zeros(n, od), compact, pixels.compact_taps, weight[out_d, n_d:]))
            dense = new_dense.relu_() if od else new_dense
            new_sparse.relu_()
            compact = new_compact
            dense_maps.append(dense)
            sparse_feats.append(new_sparse)
            d_cols.append(out_d + i * self.num_feat)
            s_cols.append(out_s + i * self.num_feat)
            order = torch.cat([out_d, out_s])
            n_d, n_s = od, os_
        wc = self.collect.weight.to(x.dtype)
        d_cols, s_cols = torch.cat(d_cols), torch.cat(s_cols)
        if len(d_cols):
            out = F.conv2d(torch.cat(dense_maps, 1), wc[:, d_cols], self.collect.bias)
        else:
            out = self.collect.bias.to(x.dtype).view(1, -1, 1, 1).expand(1, -1, h, w).contiguous(
                memory_format=torch.channels_last)
        if len(s_cols) and n:
            out = out.contiguous(memory_format=torch.channels_last)
            out.permute(0, 2, 3, 1).reshape(-1, out.shape[1]).index_add_(
                0, pixels.flat, torch.cat(sparse_feats, 1) @ wc[:, s_cols, 0, 0].t())
        return out

    def _kernel_pack(self, cd, cs, vw, bf16=False):
        """Weights of :meth:`forward_kernel` for these channel masks, packed once and cached until a parameter
        changes (eval: masks and weights are fixed). Per layer and per pixel kind: at the inactive pixels, the
        dense outputs from the dense inputs; at the active pixels, every output from every input. ``bf16``: the
        bfloat16 kernel's channel-pair layout (:func:`adaptsr.methods.smsr.sparse_conv.pack_tiles`)."""
        key = (vw, cd.cpu().numpy().tobytes(), cs.cpu().numpy().tobytes()) + tuple(
            (p.data_ptr(), p._version) for p in self.parameters())
        cache = self.__dict__.setdefault('_packed', {})  # per layout: bench runs interleave fp32 and bf16
        if bf16 in cache and cache[bf16][0] == key:
            return cache[bf16][1]
        layers, order = [], torch.arange(self.num_feat, device=cd.device)
        n_d, n_s, d_off, s_off = self.num_feat, 0, 0, 0  # inputs: dense, then sparse (a 0.5 tie drops a channel)
        d_cols, s_cols = [], []
        for i, conv in enumerate(self.body):
            out_d, out_s = cd[i].nonzero().squeeze(1), cs[i].nonzero().squeeze(1)
            od, os_ = len(out_d), len(out_s)
            weight = conv.weight.detach()[:, order]
            dense_dest = [-(c + 1) for c in range(od)]
            split = n_d if bf16 else None
            layers.append({
                'n_d': n_d, 'n_s': n_s, 'od': od, 'os': os_,
                'd_in': d_off - n_d if i else 0, 's_in': s_off - n_s, 'd_out': d_off, 's_out': s_off,
                'inactive': pack_tiles(weight[:, :n_d], out_d.tolist(), dense_dest, vw, pair_split=split),
                'active': pack_tiles(weight, out_s.tolist() + out_d.tolist(), list(range(os_)) + dense_dest, vw,
                                     pair_split=split)})
            d_cols.append(out_d + i * self.num_feat)
            s_cols.append(out_s + i * self.num_feat)
            order, n_d, n_s, d_off, s_off = torch.cat([out_d, out_s]), od, os_, d_off + od, s_off + os_
        d_cols, s_cols = torch.cat(d_cols), torch.cat(s_cols)
        wc, bc = self.collect.weight.detach(), self.collect.bias.detach()
        c_out = wc.shape[0]
        out_cols, out_dest = list(range(c_out)), [-(c + 1) for c in range(c_out)]
        split = len(d_cols) if bf16 else None
        pack = {'layers': layers, 'n_dense': d_off, 'n_sparse': s_off,
                'collect_inactive': pack_tiles(wc[:, d_cols], out_cols, out_dest, vw, bc, pair_split=split),
                'collect_active': pack_tiles(wc[:, torch.cat([d_cols, s_cols])], out_cols, out_dest, vw, bc,
                                             pair_split=split)}
        cache[bf16] = (key, pack)
        return pack

    def forward_kernel(self, x, pixels, cd, cs, kernel):
        """:meth:`forward_sparse` through the C++ implicit-GEMM kernel
        (:func:`adaptsr.methods.smsr.sparse_conv.load_kernel`).

        Every convolution of the block runs in the kernel, twice per layer: over the inactive pixels it computes
        the dense output channels from the dense input channels; over the active pixels, every output channel
        from every input channel. ReLU is fused; each output value is written once. Dense channels of all layers
        live in one channels-last row matrix (H W, sum of dense channels), sparse ones in one compact matrix
        (1 + N, sum of sparse channels) whose row 0 stands for the inactive pixels (zeros); the 1x1 ``collect``
        reads both. No feature map is re-laid out, zero-filled or concatenated.

        A bfloat16 ``x`` (``val.precision: bf16``) runs the kernel's bfloat16 path where it is built (AVX512-BF16:
        bf16 features and weights, float32 accumulation, one rounding per output); elsewhere, and for float32
        ``x``, the float32 kernel with autocast off.

        Args:
            x (Tensor): (1, C, H, W) float32 or bfloat16, CPU. pixels (PixelSet). cd, cs (Tensor): (L, C) hard
                channel masks.
            kernel: the loaded extension.

        Returns:
            Tensor: (1, C, H, W) channels-last in ``x``'s dtype (bf16 path) or float32, equal to
            :meth:`forward_masked` up to float rounding.
        """
        if x.dtype == torch.bfloat16 and kernel_has_bf16(kernel):
            with torch.profiler.record_function('adaptsr::sparse_conv_bf16'):
                return self._forward_kernel(x, pixels, cd, cs, kernel, bf16=True)
        return self._forward_kernel_fp32(x, pixels, cd, cs, kernel)

    @float32  # the float32 kernel: under val.precision: bf16 its inputs are widened, autocast is off inside
    def _forward_kernel_fp32(self, x, pixels, cd, cs, kernel):
        with torch.profiler.record_function('adaptsr::sparse_conv'):  # named in torch.profiler's tables
            return self._forward_kernel(x, pixels, cd, cs, kernel)

    def _forward_kernel(self, x, pixels, cd, cs, kernel, bf16=False):
        h, w = x.shape[-2:]
        pack = self._kernel_pack(cd, cs, kernel.vector_width(), bf16)
        conv = kernel.sparse_conv_bf16 if bf16 else kernel.sparse_conv
        slot, active, inactive = pixels.kernel_index()
        n = pixels.n
        # row strides an odd number of cache lines: rows of neighbouring pixels 4 KiB apart would share L1 sets
        per_line = 64 // x.element_size()
        compact = x.new_empty(1 + n, _odd_lines(pack['n_sparse'], per_line))[:, :pack['n_sparse']]
        compact[0] = 0  # the inactive neighbours
        dense = x.new_empty(h * w, _odd_lines(pack['n_dense'], per_line))[:, :pack['n_dense']]
        src = x.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(h * w, -1)
        for layer in pack['layers']:
            for kind, pix, s_in in (('inactive', inactive, 0), ('active', active, layer['n_s'])):
                p = layer[kind]
                if len(pix) and len(p['dest']):
                    conv(src, layer['d_in'], layer['n_d'], compact, layer['s_in'], s_in, slot, h, w, 3, pix,
                         p['weight'], p['widths'], p['dest'], p['bias'], dense, layer['d_out'], compact,
                         layer['s_out'], True)
            src = dense
        out = x.new_empty(h * w, self.collect.out_channels)
        for kind, pix, s_in in (('inactive', inactive, 0), ('active', active, pack['n_sparse'])):
            p = pack[f'collect_{kind}']
            if len(pix):
                conv(dense, 0, pack['n_dense'], compact, 0, s_in, slot, h, w, 1, pix, p['weight'], p['widths'],
                     p['dest'], p['bias'], out, 0, compact, 0, False)
        return out.view(1, h, w, -1).permute(0, 3, 1, 2)

    def macs_per_pixel_dense(self):
        return self.num_layer * 9 * self.num_feat**2 + self.num_layer * self.num_feat * self.num_feat

    def exact_macs(self, hw, rho, cd, cs):
        """Multiply-adds of the sparse computation (the SMSR paper, github.com/LongguangWang/SMSR): per 3x3 layer
        ``9 HW [Cd_in Cd_out + rho (Cd_in Cs_out + Cs_in (Cd_out + Cs_out))]``, the 1x1 collect alike with 1."""
        total = 0.0
        c_in_d, c_in_s = float(self.num_feat), 0.0
        for i in range(self.num_layer):
            c_out_d, c_out_s = float(cd[i].sum()), float(cs[i].sum())
            total += 9 * hw * (c_in_d * c_out_d + rho * (c_in_d * c_out_s + c_in_s * (c_out_d + c_out_s)))
            c_in_d, c_in_s = c_out_d, c_out_s
        d_all, s_all = float(sum(c.sum() for c in cd)), float(sum(c.sum() for c in cs))
        total += hw * self.num_feat * (d_all + rho * s_all)
        return total


class SMSRChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention (official ``CALayer``): ``x * sigmoid(W2 relu(W1 avgpool(x)))``."""

    def __init__(self, num_feat=64, reduction=16):
        super().__init__()
        self.conv_du = nn.Sequential(nn.Conv2d(num_feat, num_feat // reduction, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(num_feat // reduction, num_feat, 1), nn.Sigmoid())

    def weights(self, x):
        """Per-channel attention weights (N, C, 1, 1) in (0, 1)."""
        return self.conv_du(F.adaptive_avg_pool2d(x, 1))

    def forward(self, x):
        return x * self.weights(x)

    def residual(self, x, skip):
        """``skip + forward(x)`` in one pass over the map (``addcmul``; the official ``body(x) + x``)."""
        return torch.addcmul(skip, x, self.weights(x))


class SMSRModule(nn.Module):
    """Sparse mask module (official ``SMM``): spatial-mask branch, :class:`SMSRBlock`, channel attention, residual."""

    def __init__(self, num_feat=64, num_layer=4):
        super().__init__()
        self.spa_mask = nn.Sequential(
            nn.Conv2d(num_feat, num_feat // 4, 3, 1, 1), nn.ReLU(True), nn.AvgPool2d(2),
            nn.Conv2d(num_feat // 4, num_feat // 4, 3, 1, 1), nn.ReLU(True),
            nn.ConvTranspose2d(num_feat // 4, 2, 3, 2, 1, output_padding=1))
        self.body = SMSRBlock(num_feat, num_layer)
        self.ca = SMSRChannelAttention(num_feat)

    def spatial_logits(self, x):
        return self.spa_mask(x)


@ARCH_REGISTRY.register()
class SMSRNet(nn.Module):
    """SMSR: 5 sparse mask modules between a head and a collect/tail, plus a bicubic skip.

    Args:
        num_in_ch (int): 3. num_out_ch (int): 3.
        num_feat (int): 64. num_module (int): 5. num_layer (int): 4 convs per block.
        upscale (int): 2, 3 or 4.
        img_range (float): the arch works in [0, img_range] (255, the official MeanShift constants); inputs and
            outputs are in [0, 1].
        rgb_mean (tuple): MeanShift mean (DIV2K), in [0, 1] units.
        sparse_infer (bool): eval forward of batch 1 uses the sparse kernels; else (and for batch > 1) masked-dense.
        train_mask_index (str): ``'prev'`` (fixed convention, default) or ``'current'`` (pre-Oct-2021 training code).
        tau (float): Gumbel-softmax temperature of the training forward (set by the model's schedule).
        use_masks (bool): False runs the same network without masks at inference (every channel of every block
            layer computed everywhere, no mask branch): the dense baseline of the bench.
        sparse_max_density (float or None): in sparse inference, a module whose spatial mask density exceeds this
            runs the exact dense-split form instead (:meth:`SMSRBlock.forward_split`); 1.0 forces the sparse path
            everywhere, 0.0 never uses it. None (default): the crossover measured on a 2-core x86 CPU
            (``scripts/profile_smsr.py``) for the path in use, ``KERNEL_MAX_DENSITY`` with the compiled kernel
            (``KERNEL_BF16_MAX_DENSITY`` for its bfloat16 path), ``TORCH_MAX_DENSITY`` (0.45) with the torch gathers.
        sparse_kernel (bool): sparse inference of CPU tensors through the compiled implicit-GEMM kernel
            (:func:`adaptsr.methods.smsr.sparse_conv.load_kernel`, built on first use; under bf16 autocast its
            bfloat16 path where the CPU has AVX512-BF16); False, or where it cannot be built (a one-line warning) or
            used (other devices and dtypes), the torch gather path.

    Shapes:
        (N, 3, h, w) in [0, 1] -> (N, 3, h s, w s). Odd ``h``/``w`` are padded by one replicated row/column (the
        mask branch halves and doubles the resolution) and the output is cropped back.
        Training forward returns ``(sr, sparsity)`` with ``sparsity`` the kept-computation maps of all modules
        (5 B, L C, H, W); its mean is the fraction of the block computation kept.

    Raises:
        ValueError: non-RGB input, unsupported options.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_module=5, num_layer=4, upscale=2,
                 img_range=255., rgb_mean=RGB_MEAN, sparse_infer=True, train_mask_index='prev', tau=1.0,
                 use_masks=True, sparse_max_density=None, sparse_kernel=True):
        super().__init__()
        if num_in_ch != 3 or num_out_ch != 3:
            raise ValueError(f'SMSRNet is RGB only (num_in_ch = num_out_ch = 3), got {num_in_ch}/{num_out_ch}')
        if upscale not in (2, 3, 4):
            raise ValueError(f'upscale must be 2, 3 or 4, got {upscale}')
        if train_mask_index not in ('prev', 'current'):
            raise ValueError(f"train_mask_index must be 'prev' or 'current', got {train_mask_index!r}")
        self.upscale, self.img_range = upscale, float(img_range)
        self.sparse_infer, self.train_mask_index, self.tau = sparse_infer, train_mask_index, float(tau)
        self.use_masks = use_masks
        if sparse_max_density is not None and not 0.0 <= float(sparse_max_density) <= 1.0:
            raise ValueError(f'sparse_max_density must be in [0, 1] or None, got {sparse_max_density}')
        self.sparse_max_density = None if sparse_max_density is None else float(sparse_max_density)
        self.sparse_kernel = bool(sparse_kernel)
        self.num_feat, self.num_module = num_feat, num_module
        self.sub_mean = frozen_mean_shift(-1, self.img_range, rgb_mean)
        self.add_mean = frozen_mean_shift(1, self.img_range, rgb_mean)
        self.head = nn.Sequential(nn.Conv2d(3, num_feat, 3, 1, 1), nn.ReLU(True),
                                  nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.body = nn.ModuleList(SMSRModule(num_feat, num_layer) for _ in range(num_module))
        self.collect = nn.Sequential(nn.Conv2d(num_feat * num_module, num_feat, 1), nn.ReLU(True),
                                     nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.tail = nn.Sequential(nn.Conv2d(num_feat, 3 * upscale * upscale, 3, 1, 1))

    def set_tau(self, tau):
        self.tau = float(tau)

    def forward(self, x):
        """(N, 3, h, w) in [0, 1] -> SR (N, 3, h s, w s); in training also the kept fractions (for the sparsity
        loss). Eval uses hard masks (sparse kernels for batch 1); :meth:`infer` also returns the cost."""
        out, extra = self._forward(x)
        return (out, extra) if self.training else out

    @torch.no_grad()
    def infer(self, x):
        """Eval forward and its cost (:mod:`adaptsr.core.cost`).

        Returns:
            tuple: SR (N, 3, h s, w s) and the cost: ``flops`` (2 x exact MACs under the hard masks), ``flops_full``
            (dense), ``flops_eta`` (the paper's ``nonSMB + eta * SMB``), ``pixels`` (LR), ``eta_px`` (``eta``, the
            kept fraction of the block computation, times ``pixels``), ``mask_px_m{k}`` (active spatial-mask pixels
            of module k), ``flops_custom`` (2 x the multiply-adds run inside the compiled sparse kernel, which
            :func:`adaptsr.core.cost.run_inference`'s real-cost counter cannot see) and ``trace['masks']``
            (num_module hard masks (h, w) of image 0, bool).
        """
        if self.training:
            raise RuntimeError('SMSRNet.infer needs eval mode (hard masks)')
        out, (stats, masks) = self._forward(x)
        cost = self._cost(stats, x.shape)
        cost['trace'] = {'masks': masks}
        return out, cost

    def _forward(self, x):
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'SMSRNet expects RGB input (N, 3, H, W), got shape {tuple(x.shape)}')
        h, w = x.shape[-2:]
        pad_h, pad_w = h % 2, w % 2
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode='replicate')
        x0 = self.sub_mean(x * self.img_range)
        sparse = self.sparse_infer and not self.training and x.shape[0] == 1 and self.use_masks
        # inference runs channels-last: the sparse path gathers rows of channels-last maps, and oneDNN's dense
        # convolutions are as fast or faster in that layout (every eval variant uses it, for a fair comparison)
        feat = self.head(x0 if self.training else x0.contiguous(memory_format=torch.channels_last))
        outs, sparsity, stats, masks = [], [], [], []
        kernel = None
        if sparse and self.sparse_kernel and x.device.type == 'cpu' and x.dtype == torch.float32:
            kernel = load_kernel()
        max_density = self.sparse_max_density
        if max_density is None:
            max_density = KERNEL_MAX_DENSITY if kernel is not None else TORCH_MAX_DENSITY
            if kernel is not None and feat.dtype == torch.bfloat16 and kernel_has_bf16(kernel):
                max_density = KERNEL_BF16_MAX_DENSITY  # against oneDNN's bf16 convolutions
        cur = feat
        for module in self.body:
            if not self.training and not self.use_masks:
                ones = torch.ones(self.body[0].body.num_layer, self.num_feat, device=cur.device)
                y = module.body.forward_dense(cur)
                stats.append((1.0, ones, torch.zeros_like(ones), 0))
                masks.append(torch.ones_like(cur[0, 0, :h, :w], dtype=torch.bool))
                cur = module.ca.residual(y, cur)
                outs.append(cur)
                continue
            logits = module.spatial_logits(cur)
            if self.training:
                spa = F.gumbel_softmax(logits, tau=self.tau, hard=False, dim=1)[:, 1:]
                y, keep = module.body.forward_train(cur, spa, self.tau, self.train_mask_index)
                sparsity.append(keep)
            else:
                spa = (logits[:, 1:] > logits[:, :1]).to(cur.dtype)
                cd, cs = module.body.hard_channel_masks()
                density = float(spa.mean())
                kernel_px = 0
                if sparse and density <= max_density:
                    pixels = PixelSet(spa[0, 0] > 0)
                    if kernel is not None:
                        y = module.body.forward_kernel(cur, pixels, cd, cs, kernel)
                        kernel_px = cur.shape[-2] * cur.shape[-1]
                    else:
                        y = module.body.forward_sparse(cur, pixels, cd, cs)
                elif sparse:
                    y = module.body.forward_split(cur, spa, cd, cs)
                else:
                    y = module.body.forward_masked(cur, spa, cd, cs)
                stats.append((density, cd, cs, kernel_px))
                masks.append(spa[0, 0, :h, :w] > 0)
            cur = module.ca.residual(y, cur)
            outs.append(cur)
        y = self.collect(torch.cat(outs, 1)) + feat
        out = F.pixel_shuffle(self.tail(y), self.upscale) + F.interpolate(x0, scale_factor=self.upscale,
                                                                           mode='bicubic', align_corners=False)
        out = self.add_mean(out) / self.img_range
        if pad_h or pad_w:
            out = out[..., :h * self.upscale, :w * self.upscale]
        if self.training:
            return out, torch.cat(sparsity, 0)
        return out, (stats, masks)

    # ------------------------------------------------------------------------------------------- cost
    def _cost(self, stats, shape):
        """Cost of an eval forward from its hard masks (see :meth:`infer`); ``stats`` holds, per module, the spatial
        density, the dense/sparse channel masks of each layer and the pixels the compiled sparse kernel ran the
        module on (0 when it did not: its work, ``exact_macs`` there, is ``flops_custom``)."""
        n, _, h, w = shape
        hw = float(n * h * w)
        block = self.body[0].body
        smb_dense = block.macs_per_pixel_dense() * hw * self.num_module
        smb_exact, kernel, eta = 0.0, 0.0, []
        for rho, cd, cs, kernel_px in stats:
            smb_exact += block.exact_macs(hw, rho, cd, cs)
            if kernel_px:  # inactive pixels dense -> dense, active ones all -> all: exact_macs on the kernel's map
                kernel += block.exact_macs(float(kernel_px), rho, cd, cs)
            kept = [(float(d.mean()) + rho * float(s.mean())) for d, s in zip(cd, cs)]
            eta.append(sum(kept) / len(kept))
        eta = sum(eta) / len(eta)
        non_smb = self.non_smb_macs_per_pixel(with_masks=self.use_masks) * hw
        cost = {'flops': 2 * (non_smb + smb_exact), 'flops_full': 2 * (non_smb + smb_dense),
                'flops_eta': 2 * (non_smb + eta * smb_dense), 'pixels': hw, 'eta_px': eta * hw,
                'flops_custom': 2 * kernel}
        cost.update({f'mask_px_m{k}': rho * hw for k, (rho, *_) in enumerate(stats)})
        return cost

    def non_smb_macs_per_pixel(self, with_masks=True):
        """See :func:`smsr_non_smb_macs_per_pixel`."""
        return smsr_non_smb_macs_per_pixel(self.upscale, self.num_feat, self.num_module, with_masks)

    def mask_images(self, x):
        """Hard spatial masks of the ``num_module`` modules for ``x`` (1, 3, h, w): (num_module, h, w) in {0, 1}."""
        masks = []
        was = self.training
        self.eval()
        hooks = [m.spa_mask.register_forward_hook(lambda mod, i, o: masks.append((o[:, 1] > o[:, 0]).float()))
                 for m in self.body]
        try:
            with torch.no_grad():
                self(x)
        finally:
            for hk in hooks:
                hk.remove()
            self.train(was)
        h, w = x.shape[-2:]
        return torch.cat(masks)[:, :h, :w]


def _odd_lines(n, per_line=16):
    """The smallest row length >= ``n`` elements (and >= one line) that is an odd number of 64-byte cache lines
    (``per_line`` elements each: 16 float32, 32 bfloat16)."""
    lines = max(1, -(-n // per_line))
    return per_line * (lines if lines % 2 else lines + 1)


def smsr_non_smb_macs_per_pixel(upscale, num_feat=64, num_module=5, with_masks=True):
    """SMSR multiply-adds per LR pixel outside the sparse blocks (head, mask branches, collect, tail; the channel
    attention's convolutions act on one pooled pixel and are not counted); the transposed conv counted by its input
    pixels, the pooled conv at 1/4, as the paper counts them. ``with_masks=False``: without the mask branches."""
    c, s2 = num_feat, upscale**2
    mask = 9 * c * (c // 4) + 9 * (c // 4)**2 / 4 + 9 * (c // 4) * 2 / 4 if with_masks else 0
    collect = num_module * c * c + 9 * c * c
    return 27 * c + 9 * c * c + num_module * mask + collect + 9 * c * 3 * s2


def smsr_dense_gmacs(upscale, hr_size=(720, 1280), num_feat=64, num_module=5, num_layer=4):
    """Dense SMSR multiply-adds (G) for an ``hr_size`` output: the paper's 720p convention."""
    lr_px = math.ceil(hr_size[0] / upscale) * math.ceil(hr_size[1] / upscale)
    smb = num_layer * 9 * num_feat**2 + num_layer * num_feat * num_feat
    return (smsr_non_smb_macs_per_pixel(upscale, num_feat, num_module) + num_module * smb) * lr_px / 1e9
