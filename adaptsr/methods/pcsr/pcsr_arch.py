"""PCSR: pixel-level classifier with light/heavy MLP upsamplers.

Source: J. Jeong, J. Kim, Y. Jo, S. J. Kim, "Accelerating Image Super-Resolution Networks with Pixel-Level
Classification", ECCV 2024 (arXiv 2407.21448); official code github.com/3587jjh/PCSR. Re-implemented from the paper;
module names follow the official checkpoints so that they load strictly.

How the implementation keeps the FLOPs saving real. Every HR query pixel (I, J) of an integer scale s uses the
LR feature ``Z[I // s, J // s]`` (nearest sampling) plus a 4-vector ``[rel_coord, rel_cell]`` that depends only on
the sub-pixel position ``(I % s, J % s)``. The first Linear layer of each MLP is therefore split into ``W_z Z``
(computed once per LR pixel) plus a per-sub-pixel bias (s^2 rows); hidden layers then run as
matrix products on the gathered rows of the selected pixels only. This is mathematically the paper's LIIF query
(tested against :func:`liif_query`, the literal form); FLOPs are reported in the paper's convention (the first
layer counted per HR pixel), so the executed work is slightly below the reported figure.
"""

import math

import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from adaptsr.core.arch_util import MeanShiftMixin
from adaptsr.core.cost import flops_per_pixel, mlp_flops_per_row
from adaptsr.core.precision import float32
from adaptsr.methods.baselines.carn_arch import CARNM
from adaptsr.methods.baselines.fsrcnn_arch import FSRCNNNet
from adaptsr.methods.baselines.srresnet_arch import SRResNetEncoder

# backbone -> (encoder kwargs, heavy hidden, light hidden, classifier hidden, rgb mean), as in the PCSR paper
PCSR_PRESETS = {
    'carn': (dict(num_feat=52), [74] * 4, [20] * 3, [10, 10], (0.4488, 0.4371, 0.4040)),
    'fsrcnn': (dict(d=48), [58] * 4, [10] * 3, [], (0.0, 0.0, 0.0)),
    'srresnet': (dict(num_feat=58), [170] * 4, [40] * 3, [20, 20], (0.0, 0.0, 0.0)),
}


def build_pcsr_encoder(name, opt):
    """LR feature extractor (N, 3, h, w) -> (N, C, h, w) for PCSR; ``name`` in carn|fsrcnn|srresnet.

    Raises:
        ValueError: unknown backbone name.
    """
    opt = dict(opt or {})
    if name == 'carn':
        return CARNM(no_upsampling=True, **opt)
    if name == 'fsrcnn':
        return FSRCNNNet(no_upsampling=True, **opt)
    if name == 'srresnet':
        return SRResNetEncoder(**opt)
    raise ValueError(f'PCSRNet: unknown encoder {name!r}; expected one of {sorted(PCSR_PRESETS)}')


class MLP(nn.Module):
    """``layers = [Linear, ReLU] * len(hidden) + [Linear]`` (official name ``imnet.layers``)."""

    def __init__(self, in_dim, out_dim, hidden):
        super().__init__()
        layers = []
        last = in_dim
        for h in hidden:
            layers += [nn.Linear(last, h), nn.ReLU(inplace=True)]
            last = h
        layers.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


class Sampler(nn.Module):
    """A LIIF-style per-pixel MLP over ``[z_q, rel_coord, rel_cell]`` (dimension C + 4)."""

    def __init__(self, in_dim, out_dim, hidden):
        super().__init__()
        self.imnet = MLP(in_dim, out_dim, hidden)

    @property
    def layers(self):
        return self.imnet.layers

    def lr_part(self, feat_rows):
        """First layer's feature term ``W_z z`` for LR rows (R, C) -> (R, hidden0)."""
        first = self.layers[0]
        return F.linear(feat_rows, first.weight[:, :feat_rows.shape[1]])

    def subpixel_part(self, code):
        """First layer's coordinate/cell term plus bias for the s^2 sub-pixel codes (s^2, 4) -> (s^2, hidden0)."""
        first = self.layers[0]
        return F.linear(code, first.weight[:, first.in_features - 4:], first.bias)

    def tail(self, pre):
        """Everything after the first Linear (ReLU, hidden layers, output) on pre-activations (..., hidden0)."""
        return self.layers[1:](pre)


def make_coord(shape, device=None):
    """Pixel-centre coordinates in [-1, 1]: (H, W, 2) with index 0 = row, 1 = column (LIIF convention)."""
    axes = [-1 + (2 * torch.arange(n, device=device, dtype=torch.float32) + 1) / n for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing='ij'), dim=-1)


def subpixel_codes(scale, device=None):
    """``[rel_coord_row, rel_coord_col, rel_cell_row, rel_cell_col]`` for the s x s sub-pixels, (s*s, 4).

    For integer scale s, HR pixel (I, J) with ``a = I % s``, ``b = J % s`` has ``rel_coord = ((2a+1)/s - 1,
    (2b+1)/s - 1)`` and ``rel_cell = (2/s, 2/s)``; row-major over (a, b).
    """
    off = (2 * torch.arange(scale, device=device, dtype=torch.float32) + 1) / scale - 1
    a, b = torch.meshgrid(off, off, indexing='ij')
    cell = torch.full_like(a, 2.0 / scale)
    return torch.stack([a, b, cell, cell], dim=-1).reshape(scale * scale, 4)


def rows_to_image(rows, n, h, w, scale):
    """(N*h*w*s*s, C) rows in LR-major sub-pixel order -> image (N, C, h*s, w*s)."""
    c = rows.shape[-1]
    x = rows.reshape(n, h, w, scale, scale, c).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(n, c, h * scale, w * scale)


def image_to_rows(img, scale):
    """Inverse of :func:`rows_to_image`: (N, C, h*s, w*s) -> (N*h*w*s*s, C)."""
    n, c, hh, ww = img.shape
    h, w = hh // scale, ww // scale
    return img.reshape(n, c, h, scale, w, scale).permute(0, 2, 4, 3, 5, 1).reshape(-1, c)


def liif_query(sampler, feat, coord, cell):
    """Literal LIIF query of the paper (reference for tests and FLOPs cross-checks).

    Args:
        sampler (Sampler): MLP.
        feat (Tensor): LR features (N, C, h, w).
        coord (Tensor): query coordinates (N, Q, 2) in [-1, 1], (row, col).
        cell (Tensor): query cells (N, Q, 2).

    Returns:
        Tensor: (N, Q, out) MLP outputs.
    """
    h, w = feat.shape[-2:]
    grid = coord.flip(-1).unsqueeze(1)
    z_q = F.grid_sample(feat, grid, mode='nearest', align_corners=False)[:, :, 0, :].permute(0, 2, 1)
    lr_coord = make_coord((h, w), feat.device).permute(2, 0, 1).unsqueeze(0).expand(feat.shape[0], 2, h, w)
    x_star = F.grid_sample(lr_coord, grid, mode='nearest', align_corners=False)[:, :, 0, :].permute(0, 2, 1)
    scale_hw = torch.tensor([h, w], device=feat.device, dtype=feat.dtype)
    rel_coord = (coord - x_star) * scale_hw
    rel_cell = cell * scale_hw
    return sampler.imnet(torch.cat([z_q, rel_coord, rel_cell], dim=-1))


def adm_heavy_mask(p_heavy, max_iter=20, tol=1e-4):
    """PCSR "adaptive decision making" (ADM): 1-D 2-means on min-max normalised p(heavy).

    Lloyd iterations from the effective initial centroids {mean(d), 0} of the official ``fast_pytorch_kmeans`` call,
    at most ``max_iter`` iterations or until the squared centroid shift is below ``tol``; the heavy cluster is the one
    not containing argmin(d). A flat map (max == min) is all light (the official code asserts instead).

    Args:
        p_heavy (Tensor): probabilities, any shape.

    Returns:
        Tensor: bool mask of the same shape, True = heavy.
    """
    d = p_heavy.reshape(-1).float()
    lo, hi = d.min(), d.max()
    if not bool(hi > lo):
        return torch.zeros_like(p_heavy, dtype=torch.bool)
    d = (d - lo) / (hi - lo)
    total, count = d.sum(), d.numel()
    c0, c1 = float(d.mean()), 0.0
    for _ in range(max_iter):
        # nearer to c1 than to c0 (ties -> c0): in 1-D, the side of the midpoint where c1 lies
        mid = 0.5 * (c0 + c1)
        labels = d > mid if c1 > c0 else (d < mid if c1 < c0 else torch.zeros_like(d, dtype=torch.bool))
        n1 = int(labels.sum())
        s1 = float(torch.where(labels, d, torch.zeros((), dtype=d.dtype)).sum()) if n1 else 0.0
        new0 = (float(total) - s1) / (count - n1) if count - n1 else c0
        new1 = s1 / n1 if n1 else c1
        shift = (new0 - c0)**2 + (new1 - c1)**2
        c0, c1 = new0, new1
        if shift < tol:
            break
    low_label = labels[torch.argmin(d)]
    return (labels != low_label).reshape(p_heavy.shape)


def refine_light_pixels(pred, heavy):
    """PCSR pixel-wise refinement (the PCSR paper, github.com/3587jjh/PCSR): one simultaneous pass.

    A light pixel with at least one heavy pixel in its 3x3 neighbourhood (replicate padding), excluding the
    outermost rows/columns of the image, is replaced by the 3x3 box mean (centre included) of ``pred``.

    Args:
        pred (Tensor): prediction (N, C, H, W).
        heavy (Tensor): bool heavy map (N, 1, H, W).

    Returns:
        Tensor: refined prediction (N, C, H, W); heavy and border pixels unchanged.
    """
    hv = heavy.float()
    near_heavy = F.max_pool2d(F.pad(hv, (1, 1, 1, 1), mode='replicate'), 3, 1) > 0
    mask = near_heavy & ~heavy
    mask[..., 0, :] = False
    mask[..., -1, :] = False
    mask[..., :, 0] = False
    mask[..., :, -1] = False
    if not bool(mask.any()):
        return pred
    box = F.avg_pool2d(F.pad(pred, (1, 1, 1, 1), mode='replicate'), 3, 1)
    return torch.where(mask, box, pred)


@ARCH_REGISTRY.register()
class PCSRNet(MeanShiftMixin, nn.Module):
    """PCSR network: backbone encoder, classifier, light and heavy upsamplers (class 0 = light, 1 = heavy).

    Args:
        encoder (str): ``carn`` | ``fsrcnn`` | ``srresnet``.
        encoder_opt (dict, optional): encoder kwargs (default: the paper's size, e.g. ``num_feat: 52`` for CARN).
        heavy_hidden, light_hidden, cls_hidden (list[int], optional): MLP widths (default: the paper's).
        upscale (int): integer scale factor s.
        rgb_mean (sequence[float], optional): data mean (CARN: (0.4488, 0.4371, 0.4040); others 0).
        pixel_batch_size (int): HR pixels per MLP chunk in inference. Chunks that fit in the CPU cache make the
            memory-bound MLP layers much faster (32768 was measured best on a 2-core x86 CPU; the official code used
            300000, which was 24% slower end to end there).
        adm_scope (str): ``batch`` (official: one clustering over all images of a batch) or ``image``.

    Shapes:
        ``forward(lq, mode)`` with lq (N, 3, h, w) in [0, 1]:
        ``'infer'`` -> SR (N, 3, h*s, w*s) (:meth:`infer` also returns its cost);
        ``'heavy'`` -> dense all-heavy SR (phase 0);
        ``'light'`` -> dense all-light SR (an optional warm-up of the light upsampler before phase 1);
        ``'mix'`` -> (SR, p_heavy (N, 1, h*s, w*s)) soft mixture (phase 1).
    """

    def __init__(self, encoder='carn', encoder_opt=None, heavy_hidden=None, light_hidden=None, cls_hidden=None,
                 upscale=4, rgb_mean=None, pixel_batch_size=32768,
                 adm_scope='batch'):
        super().__init__()
        if encoder not in PCSR_PRESETS:
            raise ValueError(f'PCSRNet: unknown encoder {encoder!r}; expected one of {sorted(PCSR_PRESETS)}')
        if int(upscale) != upscale or upscale < 1:
            raise ValueError(f'PCSRNet: upscale must be a positive integer, got {upscale!r}')
        if adm_scope not in ('batch', 'image'):
            raise ValueError(f"PCSRNet: adm_scope must be 'batch' or 'image', got {adm_scope!r}")
        enc_opt, heavy_def, light_def, cls_def, mean_def = PCSR_PRESETS[encoder]
        self.encoder_name = encoder
        self.encoder = build_pcsr_encoder(encoder, encoder_opt if encoder_opt is not None else enc_opt)
        c = self.encoder.out_channels
        self.heavy_sampler = Sampler(c + 4, 3, heavy_hidden if heavy_hidden is not None else heavy_def)
        self.light_sampler = Sampler(c + 4, 3, light_hidden if light_hidden is not None else light_def)
        self.classifier = Sampler(c + 4, 2, cls_hidden if cls_hidden is not None else cls_def)
        self.upscale = int(upscale)
        self.set_rgb_mean(rgb_mean if rgb_mean is not None else mean_def)
        self.pixel_batch_size = int(pixel_batch_size)
        self.adm_scope = adm_scope
        self.register_buffer('codes', subpixel_codes(self.upscale), persistent=False)
        self._per_pixel = None

    # ----------------------------------------------------------------------------------------------- cost model
    def per_pixel_flops(self):
        """Paper-convention FLOPs constants: encoder per LR px, classifier/light/heavy per HR px (dict of float)."""
        if self._per_pixel is None:
            self._per_pixel = {
                'encoder': flops_per_pixel(self.encoder, device=self.codes.device),
                'classifier': mlp_flops_per_row(self.classifier.layers),
                'light': mlp_flops_per_row(self.light_sampler.layers),
                'heavy': mlp_flops_per_row(self.heavy_sampler.layers),
            }
        return self._per_pixel

    def cost_list(self):
        """Normalised class costs ``[E + L, E + Hv] / (2E + L + Hv)`` on a 16x16 LR input (as the official code)."""
        f = self.per_pixel_flops()
        e = f['encoder'] * 256
        n_hr = 256 * self.upscale**2
        light, heavy = e + f['light'] * n_hr, e + f['heavy'] * n_hr
        return [light / (light + heavy), heavy / (light + heavy)]

    def image_flops(self, h, w, n_light, n_heavy, n_images=1):
        """FLOPs of selective inference on ``n_images`` LR images of h x w with the given pixel counts."""
        f = self.per_pixel_flops()
        n_hr = h * w * self.upscale**2
        return (n_images * (f['encoder'] * h * w + f['classifier'] * n_hr) + f['light'] * n_light +
                f['heavy'] * n_heavy)

    # ---------------------------------------------------------------------------------------------- building blocks
    def _prepare(self, lq):
        x = lq - self.rgb_mean
        feat = self.encoder(x)
        n, c, h, w = feat.shape
        rows = feat.permute(0, 2, 3, 1).reshape(n * h * w, c)
        return x, rows, (n, h, w)

    def _base(self, x):
        s = self.upscale
        return F.interpolate(x, size=(x.shape[-2] * s, x.shape[-1] * s), mode='bilinear', align_corners=False)

    def _dense(self, sampler, rows):
        """Sampler on every HR pixel: (R, C) LR rows -> (R, s*s, out)."""
        pre = sampler.lr_part(rows).unsqueeze(1) + sampler.subpixel_part(self.codes).unsqueeze(0)
        return sampler.tail(pre)

    def _selected(self, sampler, lr_part, sub_part, idx, out):
        """Sampler on the HR pixels ``idx`` (flat LR-major sub-pixel indices) only; writes ``out[idx]``."""
        s2 = self.upscale**2
        for start in range(0, idx.numel(), self.pixel_batch_size):
            chunk = idx[start:start + self.pixel_batch_size]
            pre = lr_part.index_select(0, torch.div(chunk, s2, rounding_mode='floor'))
            pre += sub_part.index_select(0, chunk % s2)
            out.index_copy_(0, chunk, sampler.tail(pre))

    def _finish(self, rows, x, nhw):
        n, h, w = nhw
        return rows_to_image(rows, n, h, w, self.upscale) + self._base(x) + self.rgb_mean

    # ------------------------------------------------------------------------------------------------ forwards
    def forward_heavy(self, lq):
        """Dense all-heavy SR (N, 3, H, W) (phase 0, and the 'full model' of PCSR)."""
        x, rows, nhw = self._prepare(lq)
        return self._finish(self._dense(self.heavy_sampler, rows).reshape(-1, 3), x, nhw)

    def forward_light(self, lq):
        """Dense all-light SR (N, 3, H, W): the light upsampler on every HR pixel (a warm-up before phase 1)."""
        x, rows, nhw = self._prepare(lq)
        return self._finish(self._dense(self.light_sampler, rows).reshape(-1, 3), x, nhw)

    def forward_mix(self, lq):
        """Phase-1 soft mixture ``p0 * light + p1 * heavy``; returns (SR (N, 3, H, W), p_heavy (N, 1, H, W))."""
        x, rows, nhw = self._prepare(lq)
        prob = torch.softmax(self._dense(self.classifier, rows), dim=-1)
        heavy = self._dense(self.heavy_sampler, rows)
        light = self._dense(self.light_sampler, rows)
        mix = prob[..., :1] * light + prob[..., 1:] * heavy
        n, h, w = nhw
        p_heavy = rows_to_image(prob[..., 1].reshape(-1, 1), n, h, w, self.upscale)
        return self._finish(mix.reshape(-1, 3), x, nhw), p_heavy

    @float32
    def heavy_logit(self, rows):
        """Classifier logit difference ``l_heavy - l_light`` for every HR pixel: (R, C) LR rows -> (R, s*s).

        Computed in chunks of ``pixel_batch_size`` HR pixels; ``sigmoid`` of it is p(heavy). Always in float32
        (:func:`~adaptsr.core.precision.float32`; the features of a bf16 encoder are widened): under
        ``val.precision: bf16`` the light/heavy decision that the threshold ``k`` reads is not rounded to 8
        significant bits.
        """
        s2 = self.upscale**2
        sub = self.classifier.subpixel_part(self.codes)
        lr_part = self.classifier.lr_part(rows)
        out = rows.new_empty(rows.shape[0], s2)
        step = max(1, self.pixel_batch_size // s2)
        for start in range(0, rows.shape[0], step):
            logits = self.classifier.tail(lr_part[start:start + step].unsqueeze(1) + sub)
            out[start:start + step] = logits[..., 1] - logits[..., 0]
        return out

    def decide(self, logit, k=0.0, adaptive=False, n_images=1):
        """Heavy mask from the logit difference ``l1 - l0`` (any shape), class 1 = heavy.

        k-rule: ``argmax_j p_j / c_j^k`` with ties to light, i.e. heavy iff ``l1 - l0 > k * ln(c1 / c0)`` (the same
        rule without the softmax); ADM: :func:`adm_heavy_mask` on ``p1 = sigmoid(l1 - l0)``.
        """
        k = float(k)
        if adaptive:
            p_heavy = torch.sigmoid(logit)
            if self.adm_scope == 'image' and n_images > 1:
                per_img = p_heavy.reshape(n_images, -1)
                return torch.stack([adm_heavy_mask(p) for p in per_img]).reshape(logit.shape)
            return adm_heavy_mask(p_heavy)
        c0, c1 = self.cost_list()
        return logit > k * math.log(c1 / c0)

    @torch.no_grad()
    def infer(self, lq, k=0.0, adaptive=False, refine=True, heavy_only=False):
        """Selective (adaptive) inference: each upsampler runs only on its own pixels.

        Args:
            lq (Tensor): LR (N, 3, h, w), [0, 1].
            k (float): the budget knob: heavy iff ``p1 / c1^k > p0 / c0^k`` (k = 0: p1 > 0.5; larger k: cheaper).
                A model passes its ``val.k``; this default is what a plain ``net(lq)`` uses.
            adaptive (bool): ADM (2-means on p(heavy)) instead of ``k``.
            refine (bool): pixel-wise refinement of light pixels next to heavy ones.
            heavy_only (bool): the dense all-heavy forward instead (phase 0's network, PCSR's "full model").

        Returns:
            tuple: SR (N, 3, h*s, w*s) (not clamped) and the cost of this call (:mod:`adaptsr.core.cost`):
            ``flops``, ``flops_full`` (encoder + heavy upsampler on every pixel), ``pixels`` (LR), ``hr_pixels``,
            ``heavy_px`` (HR pixels that took the heavy upsampler) and ``trace['heavy_map']`` (N, 1, h*s, w*s)
            (bool).
        """
        n, _, h, w = lq.shape
        hr_pixels = n * h * w * self.upscale**2
        full = self.image_flops(h, w, 0, hr_pixels, n_images=n) - n * self.per_pixel_flops()['classifier'] * \
            h * w * self.upscale**2
        cost = {'flops': full, 'flops_full': full, 'pixels': n * h * w, 'hr_pixels': hr_pixels}
        if heavy_only:
            sr = self.forward_heavy(lq)
            cost.update(heavy_px=hr_pixels, trace={'heavy_map': torch.ones_like(sr[:, :1], dtype=torch.bool)})
            return sr, cost
        x, rows, nhw = self._prepare(lq)
        heavy = self.decide(self.heavy_logit(rows), k, adaptive, n_images=n).reshape(-1)
        heavy_idx = heavy.nonzero().squeeze(1)
        light_idx = (~heavy).nonzero().squeeze(1)
        out = rows.new_empty(heavy.numel(), 3)
        codes = self.codes
        for sampler, idx in ((self.heavy_sampler, heavy_idx), (self.light_sampler, light_idx)):
            if idx.numel():
                self._selected(sampler, sampler.lr_part(rows), sampler.subpixel_part(codes), idx, out)
        sr = self._finish(out, x, nhw)
        heavy_map = rows_to_image(heavy.reshape(-1, 1), n, h, w, self.upscale)
        if refine:
            sr = refine_light_pixels(sr, heavy_map)
        n_heavy = int(heavy_idx.numel())
        cost.update(flops=self.image_flops(h, w, int(light_idx.numel()), n_heavy, n_images=n), heavy_px=n_heavy,
                    trace={'heavy_map': heavy_map})
        return sr, cost

    def forward(self, lq, mode='infer'):
        if mode == 'infer':
            return self.infer(lq)[0]
        if mode == 'heavy':
            return self.forward_heavy(lq)
        if mode == 'light':
            return self.forward_light(lq)
        if mode == 'mix':
            return self.forward_mix(lq)
        raise ValueError(f"PCSRNet.forward: mode must be 'infer', 'heavy', 'light' or 'mix', got {mode!r}")

    def forward_reference(self, lq, sampler='heavy'):
        """Literal paper-form query of one sampler on every HR pixel (tests only): SR (N, 3, H, W)."""
        s = self.upscale
        x = lq - self.rgb_mean
        feat = self.encoder(x)
        n, _, h, w = feat.shape
        hh, ww = h * s, w * s
        coord = make_coord((hh, ww), lq.device).reshape(1, -1, 2).expand(n, -1, -1)
        cell = torch.tensor([2.0 / hh, 2.0 / ww], device=lq.device).expand(n, hh * ww, 2)
        out = liif_query(getattr(self, f'{sampler}_sampler'), feat, coord, cell)
        out = out.reshape(n, hh, ww, 3).permute(0, 3, 1, 2)
        return out + self._base(x) + self.rgb_mean


__all__ = ['PCSRNet', 'adm_heavy_mask', 'refine_light_pixels', 'liif_query']
