"""APE: adaptive patch exiting, on EDSR (baseline and full), RCAN, VDSR and ECBSR backbones.

Source: S. Wang, J. Liu, K. Chen, X. Li, M. Lu, Y. Guo, "Adaptive Patch Exiting for Scalable Single Image
Super-Resolution", ECCV 2022; github.com/littlepure2333/APE (and the author's DynamicSR). Written from the paper,
not from the official code.

Every backbone is cut into ``num_units`` exit units (EDSR residual blocks, RCAN residual groups, VDSR middle convs,
ECBSR body convs); an exit follows every ``exit_interval`` units. At an exit, one regressor shared by all exits
(``AdaptiveAvgPool2d(1) -> Flatten -> Linear(C, 1) -> Tanh``, keys ``regressor.2.*``) reads the body feature and
predicts the patch's incremental capacity ``1 - tanh(dPSNR)``; the exit's SR is the backbone's own reconstruction
(body-end conv, global skip, tail) applied to that feature, so exits add no layers.

Module names are those of the original backbones (EDSR-PyTorch / RCAN / VDSR in EDSR-PyTorch, and the released
ECBSR files for ``APEECBSR``), so their weights load with only ``regressor.*`` missing;
:func:`adaptsr.methods.ape.formats.basicsr_to_ape` renames BasicSR's ``EDSR``/``RCAN`` checkpoints.
"""
import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

from adaptsr.core.arch_util import frozen_mean_shift
from adaptsr.core.cost import FlopCounter, SizeLaw
from adaptsr.methods.ape.layouts import to_ape_state_dict

RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K mean (EDSR-PyTorch MeanShift), in [0, 1] units


def _upsampler(num_feat, upscale):
    """EDSR-PyTorch ``Upsampler``: conv to ``4 C`` + PixelShuffle(2) per factor 2, or conv to ``9 C`` +
    PixelShuffle(3) (keys ``0, 2`` for x4)."""
    if upscale in (2, 4):
        layers = []
        for _ in range(upscale // 2):
            layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        return nn.Sequential(*layers)
    if upscale == 3:
        return nn.Sequential(nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3))
    raise ValueError(f'upscale must be 2, 3 or 4, got {upscale}')


class APEBackbone(nn.Module):
    """Exit machinery shared by the APE archs (not registered).

    Subclasses build their layers and implement :meth:`embed` (LR -> context and the first body feature),
    :meth:`unit` (the i-th exit unit) and :meth:`reconstruct` (context + body feature -> SR in [0, 1]); they call
    :meth:`_init_exits` with the feature width and number of units.

    Forward:
        * training: ``(list_sr, list_ic)``, one SR (N, 3, h s, w s) and one IC (N, 1) in (-1, 1) per exit (the
          plain SR of :meth:`forward_backbone` while ``train_backbone_only`` is set);
        * eval: the plain backbone's SR (every unit), (N, 3, h s, w s) in [0, 1] (unclamped);
        * :meth:`forward_exit`: adaptive inference of a batch of patches.
    """

    def _init_exits(self, num_feat, num_units, exit_interval):
        if exit_interval < 1 or num_units % exit_interval:
            raise ValueError(f'exit_interval must divide the {num_units} exit units, got {exit_interval}')
        self.num_units, self.exit_interval = num_units, exit_interval
        self.num_exits = num_units // exit_interval
        self.regressor = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(num_feat, 1), nn.Tanh())
        self._flops_tables, self._flops_law = {}, None

    #: key prefixes a backbone checkpoint may lack (with ``strict_load_g: false``): the regressor it never had
    optional_key_prefixes = ('regressor.', )
    #: kept in float32 under ``val.precision: bf16`` (:mod:`adaptsr.core.precision`): the exit decision compares the
    #: regressor's score with the threshold
    fp32_modules = ('regressor', )

    def adapt_state_dict(self, sd, source='?'):
        """Any supported backbone/APE state_dict -> this network's names: BasicSR ``EDSR``/``RCAN`` layouts renamed,
        the author's DynamicSR ``eedm.*`` -> ``regressor.*`` (:func:`adaptsr.methods.ape.layouts.to_ape_state_dict`)."""
        return to_ape_state_dict(sd, self, source)

    # subclass interface -------------------------------------------------------------------------------------
    def embed(self, x):
        raise NotImplementedError

    def unit(self, i):
        raise NotImplementedError

    def reconstruct(self, ctx, res):
        raise NotImplementedError

    #: whether :meth:`reconstruct_exit` differs per exit (separate exit tails); ``False``: one shared reconstruction
    separate_exit_tails = False

    def reconstruct_exit(self, ctx, res, exit_id):
        """SR of the features leaving at exit ``exit_id``: :meth:`reconstruct` (shared by every exit) unless the arch
        has separate exit tails."""
        return self.reconstruct(ctx, res)

    def mean_shift_modules(self):
        """Modules left out of the cost (the MeanShift 1x1 convs, the APE paper, github.com/littlepure2333/APE)."""
        return [m for m in (getattr(self, 'sub_mean', None), getattr(self, 'add_mean', None)) if m is not None]

    # forwards ---------------------------------------------------------------------------------------------------
    def _check(self, x):
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f'{type(self).__name__} expects RGB input (N, 3, H, W), got shape {tuple(x.shape)}')

    def is_exit(self, i):
        return (i + 1) % self.exit_interval == 0

    def forward_backbone(self, x):
        """The plain backbone: every unit, then the last exit's reconstruction; no regressor, no early exit.

        Args:
            x (Tensor): (N, 3, h, w) in [0, 1].

        Returns:
            Tensor: SR (N, 3, h s, w s) in [0, 1] (unclamped), with gradients in training (the backbone phase of a
            recipe that trains the backbone before its exits).
        """
        self._check(x)
        ctx, res = self.embed(x)
        for i in range(self.num_units):
            res = self.unit(i)(res)
        return self.reconstruct(ctx, res)

    #: training forward of the plain backbone only (:meth:`forward_backbone`), set by the model for a recipe's
    #: backbone phase (through ``forward``, so a DistributedDataParallel wrapper still syncs the gradients)
    train_backbone_only = False

    def forward(self, x):
        if not self.training or self.train_backbone_only:
            return self.forward_backbone(x)
        self._check(x)
        ctx, res = self.embed(x)
        outs, ics = [], []
        for i in range(self.num_units):
            res = self.unit(i)(res)
            if self.is_exit(i):
                outs.append(self.reconstruct_exit(ctx, res, i // self.exit_interval))
                ics.append(self.regressor(res))
        return outs, ics

    #: patches per pass of :meth:`forward_exit` on the CPU (``None``: the whole batch). The official test stacks 500
    #: 48-pixel tiles per call, which suits a GPU; on the CPU oneDNN runs EDSR-baseline's body 1.8x and its x4
    #: upsampler 1.9x faster on a few tiles at a time, whose activations stay in cache (2 threads: 50 -> 27 and 62 ->
    #: 34 ms per tile, 200 tiles against passes of 4-16). Each tile's exit and output are the same either way.
    cpu_chunk = 8
    #: on the CPU, the patches in channels_last (oneDNN's fast layout; float32 results within rounding, about 5e-7):
    #: EDSR-baseline x4 67 -> 54 ms per tile in passes of 8, mostly in the upsampler
    cpu_channels_last = True

    @torch.no_grad()
    def forward_exit(self, x, threshold):
        """Adaptive inference of a batch of patches (the APE paper, github.com/littlepure2333/APE).

        At each exit the regressor scores the patches still running; those with ``IC >= threshold`` leave the batch
        with their features frozen, so later units run only on the rest. The shared reconstruction then runs once on
        every patch (with separate exit tails: once per exit, on that exit's patches). ``threshold >= 1`` disables
        exiting (IC < 1 mathematically; fp32 tanh can round to 1.0), so it reproduces :meth:`forward` exactly;
        ``threshold <= -1`` exits every patch at the first exit.

        Args:
            x (Tensor): patches (N, 3, p, p) in [0, 1].
            threshold (float): the budget knob ``exit_threshold``.

        Returns:
            tuple: SR (N, 3, p s, p s) and exit ids (N,) long in ``[0, num_exits - 1]`` (never exiting = last).

        On the CPU the batch runs in passes of :attr:`cpu_chunk` patches, in channels_last (:attr:`cpu_channels_last`),
        exit stage by exit stage: the patches still running after an exit are regrouped into full passes for the next
        stage (:meth:`_forward_exit_passes`).
        """
        self._check(x)
        chunk = self.cpu_chunk if x.device.type == 'cpu' else None
        if x.device.type == 'cpu' and self.cpu_channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if chunk and x.shape[0] > chunk:
            return self._forward_exit_passes(x, threshold, chunk)
        return self._forward_exit(x, threshold)

    def _forward_exit_passes(self, x, threshold, chunk):
        """:meth:`forward_exit` in passes of ``chunk`` patches, stage by stage (the units between two exits): after
        each exit the patches still running are regrouped into passes of ``chunk``, so the deeper stages run full
        passes rather than the few survivors of each first pass; the reconstruction runs in passes too. The same
        exits and, within float32 rounding, the same outputs as one pass of the whole batch."""
        n = x.shape[0]  # (slices, indexing and cat keep the input's memory format: channels_last stays)
        parts = [self.embed(x[s:s + chunk]) for s in range(0, n, chunk)]
        ctx, res = torch.cat([c for c, _ in parts]), torch.cat([r for _, r in parts])
        exit_ids = torch.full((n,), self.num_exits - 1, dtype=torch.long, device=x.device)
        active = torch.arange(n, device=x.device)
        stage = self.exit_interval if threshold < 1 else self.num_units  # threshold >= 1: never exits, one stage
        for first in range(0, self.num_units, stage):
            exit_id = (first + stage) // self.exit_interval - 1
            decide = exit_id < self.num_exits - 1  # (threshold >= 1: one stage, ending at the last exit)
            leave = []
            for s in range(0, len(active), chunk):
                rows = active[s:s + chunk]
                cur = res[rows]
                for i in range(first, first + stage):
                    cur = self.unit(i)(cur)
                res[rows] = cur
                if decide:
                    leave.append(self.regressor(cur).view(-1) >= threshold)
            if decide:
                leave = torch.cat(leave)
                exit_ids[active[leave]] = exit_id
                active = active[~leave]
                if not len(active):
                    break
        return self._reconstruct_patches(ctx, res, exit_ids, chunk), exit_ids

    def _reconstruct_patches(self, ctx, res, exit_ids, chunk=None):
        """SR (N, 3, p s, p s) of patches whose features are final: the shared reconstruction on all of them, or with
        separate exit tails each exit's tail on its patches; in passes of ``chunk`` patches (``None``: at once)."""
        n = res.shape[0]
        if not self.separate_exit_tails and chunk is None:
            return self.reconstruct(ctx, res)
        groups = [(e, (exit_ids == e).nonzero().view(-1)) for e in torch.unique(exit_ids).tolist()] \
            if self.separate_exit_tails else [(None, torch.arange(n, device=res.device))]
        sr = None
        for exit_id, rows in groups:
            step = chunk or len(rows)
            for s in range(0, len(rows), step):
                part = rows[s:s + step]
                out = self.reconstruct(ctx[part], res[part]) if exit_id is None else \
                    self.reconstruct_exit(ctx[part], res[part], exit_id)
                if sr is None:
                    sr = out.new_empty((n, ) + out.shape[1:])
                sr[part] = out
        return sr

    def _forward_exit(self, x, threshold):
        ctx, res = self.embed(x)
        n = x.shape[0]
        exit_ids = torch.full((n,), self.num_exits - 1, dtype=torch.long, device=x.device)
        active = torch.arange(n, device=x.device)
        cur, final = res, None
        for i in range(self.num_units):
            cur = self.unit(i)(cur)
            exit_id = i // self.exit_interval
            if not self.is_exit(i) or exit_id == self.num_exits - 1 or threshold >= 1 or not len(active):
                continue
            leave = self.regressor(cur).view(-1) >= threshold
            if bool(leave.any()):
                if final is None:  # the first exit event: every patch is still active, ``cur`` has all N rows
                    final = torch.empty_like(cur)
                final[active[leave]] = cur[leave]
                exit_ids[active[leave]] = exit_id
                active, cur = active[~leave], cur[~leave]
                if not len(active):
                    break
        if final is None:
            res = cur
        else:
            if len(active):
                final[active] = cur
            res = final
        return self._reconstruct_patches(ctx, res, exit_ids), exit_ids

    @torch.no_grad()
    def infer(self, x, exit_threshold=1.0):
        """:meth:`forward_exit` and its cost (:mod:`adaptsr.core.cost`).

        Args:
            x (Tensor): patches (N, 3, p, p) in [0, 1] (tiles of one image).
            exit_threshold (float): the budget knob.

        Returns:
            tuple: SR (N, 3, p s, p s) and the cost: ``flops`` (each patch's exit in :meth:`exit_flops_table`),
            ``flops_full`` (every patch at full depth), ``pixels`` (LR), ``tiles``, ``exit_sum`` (sum of exit ids),
            ``exit_hist_{k}`` (patches leaving at exit k), ``macs_48`` (multiply-adds at the paper's 48x48 patch:
            its GMACs-per-patch unit) and ``trace['exit_ids']`` (N,) long (CPU).
        """
        sr, ids = self.forward_exit(x, exit_threshold)
        table = self.exit_flops_table(x.shape[2], x.shape[3])
        hist = torch.bincount(ids, minlength=self.num_exits).tolist()
        ref = self.exit_flops_table(48, 48)
        cost = {'flops': float(sum(table[e] * c for e, c in enumerate(hist))), 'flops_full': table[-1] * len(ids),
                'pixels': x.shape[0] * x.shape[2] * x.shape[3], 'tiles': len(ids), 'exit_sum': float(ids.sum()),
                'macs_48': float(sum(ref[e] * c for e, c in enumerate(hist))) / 2,
                'trace': {'exit_ids': ids.cpu()}}
        cost.update({f'exit_hist_{e}': c for e, c in enumerate(hist)})
        return sr, cost

    # cost -------------------------------------------------------------------------------------------------------
    def exit_flops_table(self, height=48, width=None):
        """FLOPs (2 x multiply-adds) of one (1, 3, height, width) patch leaving at each exit (the APE paper,
        github.com/littlepure2333/APE).

        Counted by hooks on probe forwards (:meth:`count_exit_flops`) at small sizes and extended to ``height`` x
        ``width`` by the count's exact law in the size (:class:`adaptsr.core.cost.SizeLaw`), so that a whole image
        of a new size costs no second forward; cached per size.

        Returns:
            list[float]: ``num_exits`` values, the last being the full backbone.
        """
        width = height if width is None else width
        key = (height, width)
        if key not in self._flops_tables:
            if self._flops_law is None:
                self._flops_law = SizeLaw(self.count_exit_flops)
            self._flops_tables[key] = self._flops_law(height, width)
        return self._flops_tables[key]

    @torch.no_grad()
    def count_exit_flops(self, height, width):
        """:meth:`exit_flops_table` counted on one probe forward at (1, 3, height, width): the embedding, the units
        run up to each exit and the reconstruction; the regressor, the MeanShift convs and bicubic upsampling are not
        counted (the paper's convention). Returns list[int], one per exit."""
        skip = set(self.mean_shift_modules()) | set(self.regressor.modules())
        x = torch.zeros(1, 3, height, width, device=next(self.parameters()).device)
        with FlopCounter(self, norm_layers=False, transposed='input', skip=skip) as c:
            ctx, res = self.embed(x)
            base, units = c.total, []
            for i in range(self.num_units):
                before = c.total
                res = self.unit(i)(res)
                units.append(c.total - before)
            before = c.total
            self.reconstruct(ctx, res)
            rec = c.total - before
        return [base + sum(units[:(e + 1) * self.exit_interval]) + rec for e in range(self.num_exits)]


class _EDSRResBlock(nn.Module):
    """EDSR-PyTorch ``ResBlock``: ``x + res_scale * conv(relu(conv(x)))`` (keys ``body.0``, ``body.2``)."""

    def __init__(self, num_feat, res_scale):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ReLU(True),
                                  nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.body(x) * self.res_scale


class _MeanShiftTail:
    """Embedding / reconstruction of EDSR and RCAN: ``sub_mean -> head`` and ``add_mean(tail(x + body_end(res)))``;
    ``body`` holds the exit units followed by the body-end conv."""

    def embed(self, x):
        x = self.head(self.sub_mean(x * self.img_range))
        return x, x

    def unit(self, i):
        return self.body[i]

    def reconstruct(self, ctx, res):
        return self.add_mean(self.tail(ctx + self.body[self.num_units](res))) / self.img_range


@ARCH_REGISTRY.register()
class APEEDSR(_MeanShiftTail, APEBackbone):
    """EDSR with adaptive patch exits: the paper's full EDSR (``num_feat=256, num_block=32, res_scale=0.1``,
    ``exit_interval=4``: 8 exits) or EDSR-baseline (``64, 16, 1.0``).

    Args:
        num_in_ch (int): 3. num_out_ch (int): 3. num_feat (int): C. num_block (int): residual blocks.
        upscale (int): 2, 3 or 4. res_scale (float): residual scaling. exit_interval (int): blocks per exit.
        img_range (float): the backbone works in [0, img_range] (255). rgb_mean (tuple): MeanShift mean.

    Shapes:
        (N, 3, h, w) in [0, 1] -> (N, 3, h s, w s). Keys as EDSR-PyTorch: ``sub_mean, head.0, body.{0..B-1}.body.
        {0,2}, body.B`` (body-end conv), ``tail.0.{0,2}`` (upsampler), ``tail.1``, ``add_mean``, ``regressor.2``.
    """

    #: the BasicSR arch whose checkpoints :func:`~adaptsr.methods.ape.layouts.basicsr_to_ape` renames into this one
    basicsr_layout = 'EDSR'

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=256, num_block=32, upscale=4, res_scale=0.1,
                 exit_interval=4, img_range=255., rgb_mean=RGB_MEAN):
        super().__init__()
        if num_in_ch != 3 or num_out_ch != 3:
            raise ValueError(f'APEEDSR is RGB only, got num_in_ch={num_in_ch}, num_out_ch={num_out_ch}')
        self.upscale, self.img_range = upscale, float(img_range)
        self.sub_mean = frozen_mean_shift(-1, self.img_range, rgb_mean)
        self.add_mean = frozen_mean_shift(1, self.img_range, rgb_mean)
        self.head = nn.Sequential(nn.Conv2d(3, num_feat, 3, 1, 1))
        self.body = nn.Sequential(*[_EDSRResBlock(num_feat, res_scale) for _ in range(num_block)],
                                  nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.tail = nn.Sequential(_upsampler(num_feat, upscale), nn.Conv2d(num_feat, 3, 3, 1, 1))
        self._init_exits(num_feat, num_block, exit_interval)


class _RCANChannelAttention(nn.Module):
    """RCAN ``CALayer``: ``x * sigmoid(conv(relu(conv(avgpool(x)))))`` (keys ``conv_du.0``, ``conv_du.2``)."""

    def __init__(self, num_feat, reduction):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(nn.Conv2d(num_feat, num_feat // reduction, 1), nn.ReLU(True),
                                     nn.Conv2d(num_feat // reduction, num_feat, 1), nn.Sigmoid())

    def forward(self, x):
        return x * self.conv_du(self.avg_pool(x))


class _RCAB(nn.Module):
    """RCAN residual channel attention block: ``x + CA(conv(relu(conv(x))))`` (keys ``body.{0,2,3}``)."""

    def __init__(self, num_feat, reduction):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ReLU(True),
                                  nn.Conv2d(num_feat, num_feat, 3, 1, 1), _RCANChannelAttention(num_feat, reduction))

    def forward(self, x):
        return x + self.body(x)


class _RCANGroup(nn.Module):
    """RCAN residual group: ``x + conv(RCAB^B(x))`` (keys ``body.{0..B-1}``, ``body.B``)."""

    def __init__(self, num_feat, num_block, reduction):
        super().__init__()
        self.body = nn.Sequential(*[_RCAB(num_feat, reduction) for _ in range(num_block)],
                                  nn.Conv2d(num_feat, num_feat, 3, 1, 1))

    def forward(self, x):
        return x + self.body(x)


@ARCH_REGISTRY.register()
class APERCAN(_MeanShiftTail, APEBackbone):
    """RCAN with adaptive patch exits at residual-group granularity (paper: 10 groups x 20 RCAB, 64 channels,
    reduction 16, ``exit_interval=1``: 10 exits).

    Args:
        num_in_ch (int): 3. num_out_ch (int): 3. num_feat (int): 64. num_group (int): 10. num_block (int): RCABs
        per group (20). reduction (int): 16. upscale (int): 2, 3 or 4. exit_interval (int): groups per exit.
        img_range (float): 255. rgb_mean (tuple): MeanShift mean.

    Shapes:
        (N, 3, h, w) in [0, 1] -> (N, 3, h s, w s). Keys as the official RCAN: ``body.g.body.b.body.{0,2}``,
        ``body.g.body.b.body.3.conv_du.{0,2}``, ``body.g.body.B``, ``body.G`` (body-end conv), ``head.0``, ``tail``.
    """

    #: the BasicSR arch whose checkpoints :func:`~adaptsr.methods.ape.layouts.basicsr_to_ape` renames into this one
    basicsr_layout = 'RCAN'

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_group=10, num_block=20, reduction=16, upscale=4,
                 exit_interval=1, img_range=255., rgb_mean=RGB_MEAN):
        super().__init__()
        if num_in_ch != 3 or num_out_ch != 3:
            raise ValueError(f'APERCAN is RGB only, got num_in_ch={num_in_ch}, num_out_ch={num_out_ch}')
        self.upscale, self.img_range = upscale, float(img_range)
        self.sub_mean = frozen_mean_shift(-1, self.img_range, rgb_mean)
        self.add_mean = frozen_mean_shift(1, self.img_range, rgb_mean)
        self.head = nn.Sequential(nn.Conv2d(3, num_feat, 3, 1, 1))
        self.body = nn.Sequential(*[_RCANGroup(num_feat, num_block, reduction) for _ in range(num_group)],
                                  nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.tail = nn.Sequential(_upsampler(num_feat, upscale), nn.Conv2d(num_feat, 3, 3, 1, 1))
        self._init_exits(num_feat, num_group, exit_interval)


@ARCH_REGISTRY.register()
class APEVDSR(APEBackbone):
    """VDSR with adaptive patch exits over its middle convs (paper: 20 convs, 64 channels, ``exit_interval=2``: 9
    exits). Runs at HR resolution on the bicubic-upsampled input (torch bicubic inside the net).

    Args:
        num_in_ch (int): 3. num_out_ch (int): 3. num_feat (int): 64. num_conv (int): 20 (first and last included).
        upscale (int): 2, 3 or 4. exit_interval (int): middle convs per exit. img_range (float): 255.
        rgb_mean (tuple): MeanShift mean.

    Shapes:
        (N, 3, h, w) in [0, 1] -> (N, 3, h s, w s). Keys as EDSR-PyTorch's VDSR: ``body.k.0`` (conv; ReLU at 1 in
        all but the last), ``sub_mean``, ``add_mean``.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=20, upscale=4, exit_interval=2,
                 img_range=255., rgb_mean=RGB_MEAN):
        super().__init__()
        if num_in_ch != 3 or num_out_ch != 3:
            raise ValueError(f'APEVDSR is RGB only, got num_in_ch={num_in_ch}, num_out_ch={num_out_ch}')
        self.upscale, self.img_range = upscale, float(img_range)
        self.sub_mean = frozen_mean_shift(-1, self.img_range, rgb_mean)
        self.add_mean = frozen_mean_shift(1, self.img_range, rgb_mean)
        layers = [nn.Sequential(nn.Conv2d(3, num_feat, 3, 1, 1), nn.ReLU(True))]
        layers += [nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ReLU(True)) for _ in range(num_conv - 2)]
        layers += [nn.Sequential(nn.Conv2d(num_feat, 3, 3, 1, 1))]
        self.body = nn.Sequential(*layers)
        self._init_exits(num_feat, num_conv - 2, exit_interval)

    def embed(self, x):
        up = F.interpolate(x, scale_factor=self.upscale, mode='bicubic', align_corners=False)
        up = self.sub_mean(up * self.img_range)
        return up, self.body[0](up)

    def unit(self, i):
        return self.body[i + 1]

    def reconstruct(self, ctx, res):
        return self.add_mean(ctx + self.body[self.num_units + 1](res)) / self.img_range


@ARCH_REGISTRY.register()
class APEECBSR(APEBackbone):
    """ECBSR (re-parameterised form, as the released files) with an exit after every body conv.

    ``backbone.0`` = conv(3 -> C) + PReLU, ``backbone.1..M`` = conv(C -> C) + PReLU (the exit units),
    ``backbone.M+1`` = conv(C -> 3 s^2); ``out = PixelShuffle(backbone.M+1(res) + repeat(x, s^2))``, exactly
    :class:`~adaptsr.methods.baselines.ecbsr_arch.ECBSRPlain`, whose files load with only ``regressor.*`` missing.
    Works in [0, 1] like those files (no MeanShift, no clamp).

    ``exit_tails='separate'`` (an adaptsr variant, not in the paper) gives every exit but the last its own tail
    conv ``exit_tails.{e}`` (C -> 3 s^2, the same cost as the shared one), initialised from ``backbone.M+1`` when a
    checkpoint lacks it. With the backbone frozen, the last exit then stays the released ECBSR exactly: a plain
    network has no residual stream, so one shared tail cannot decode every depth's features (the paper's shared
    tail costs this 6-conv ECBSR 0.9-1.5 dB at full depth, README "APE-ECBSR on the 291 set").

    Args:
        num_in_ch (int): 3. num_out_ch (int): 3. upscale (int): 2, 3 or 4. num_block (int): M.
        num_feat (int): C. act_type (str): ``'prelu'`` or ``'relu'``. exit_interval (int): body convs per exit.
        exit_tails (str): ``'shared'`` (the paper) or ``'separate'``.

    Raises:
        ValueError: a bad ``act_type``/``exit_tails`` or a non-RGB channel count.

    Shapes:
        (N, 3, h, w) in [0, 1] -> (N, 3, h s, w s).
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, upscale=4, num_block=4, num_feat=16, act_type='prelu',
                 exit_interval=1, exit_tails='shared'):
        super().__init__()
        if num_in_ch != 3 or num_out_ch != 3:
            raise ValueError(f'APEECBSR is RGB only, got num_in_ch={num_in_ch}, num_out_ch={num_out_ch}')
        if act_type not in ('prelu', 'relu'):
            raise ValueError(f"act_type must be 'prelu' or 'relu', got {act_type!r}")
        if exit_tails not in ('shared', 'separate'):
            raise ValueError(f"exit_tails must be 'shared' or 'separate', got {exit_tails!r}")
        self.upscale = upscale

        def act():
            return nn.PReLU(num_feat) if act_type == 'prelu' else nn.ReLU()

        layers = [nn.Sequential(nn.Conv2d(3, num_feat, 3, 1, 1), act())]
        layers += [nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, 1, 1), act()) for _ in range(num_block)]
        layers += [nn.Sequential(nn.Conv2d(num_feat, 3 * upscale * upscale, 3, 1, 1))]
        self.backbone = nn.Sequential(*layers)
        self._init_exits(num_feat, num_block, exit_interval)
        self.separate_exit_tails = exit_tails == 'separate'
        if self.separate_exit_tails:
            self.exit_tails = nn.ModuleList(nn.Conv2d(num_feat, 3 * upscale * upscale, 3, 1, 1)
                                            for _ in range(self.num_exits - 1))

    def adapt_state_dict(self, sd, source='?'):
        """As :meth:`APEBackbone.adapt_state_dict`; with separate exit tails, a checkpoint without ``exit_tails.*``
        (the released ECBSR, a shared-tail APE file) starts every exit tail as a copy of ``backbone.M+1``."""
        sd = super().adapt_state_dict(sd, source)
        last = f'backbone.{self.num_units + 1}.0.'
        if self.separate_exit_tails and not any(k.startswith('exit_tails.') for k in sd):
            sd = dict(sd)
            for e in range(self.num_exits - 1):
                sd.update({f'exit_tails.{e}.{k[len(last):]}': v.clone() for k, v in sd.items() if k.startswith(last)})
        return sd

    def embed(self, x):
        return x, self.backbone[0](x)

    def unit(self, i):
        return self.backbone[i + 1]

    def _tail(self, conv, ctx, res):
        """``PixelShuffle(conv(res) + repeat(x, s^2))``: ECBSR's reconstruction through the tail conv ``conv``."""
        s2 = self.upscale * self.upscale
        return F.pixel_shuffle(conv(res) + torch.repeat_interleave(ctx, s2, dim=1), self.upscale)

    def reconstruct(self, ctx, res):
        return self._tail(self.backbone[self.num_units + 1], ctx, res)

    def reconstruct_exit(self, ctx, res, exit_id):
        if not self.separate_exit_tails or exit_id == self.num_exits - 1:
            return self.reconstruct(ctx, res)
        return self._tail(self.exit_tails[exit_id], ctx, res)
